/* vm-claim-mark.c: the destination's claim mark in a VM's document
 * (vm-claim-mark.h). */
#include "state/vm-claim-mark.h"

#include <jansson.h>
#include <string.h>

char *vo_vm_doc_claim_mark(const char *text, const char *migration)
{
    json_t *doc = json_loads(text, 0, NULL);
    char *marked = NULL;
    if (json_is_object(doc) &&
        json_object_set_new(doc, VO_VM_CLAIMED_IN_FIELD, json_string(migration)) == 0)
        marked = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return marked;
}

bool vo_vm_doc_claimed_in(const char *text, const char *migration)
{
    json_t *doc = json_loads(text, 0, NULL);
    const char *mark = json_string_value(json_object_get(doc, VO_VM_CLAIMED_IN_FIELD));
    bool marked = mark && migration && !strcmp(mark, migration);
    json_decref(doc);
    return marked;
}
