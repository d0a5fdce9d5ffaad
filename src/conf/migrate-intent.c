/* migrate-intent.c: the intent file of a live migration and the decision
 * at start (migrate-intent.h). */
#include "conf/migrate-intent.h"

#include <string.h>

#include "util/util.h"

json_t *vo_migrate_intent_to_json(const VoMigrateIntent *i)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "role",
                          i->role == VO_MIGRATE_ROLE_SOURCE ? "source" : "destination", "vm",
                          i->vm, "name", i->name, "migration", i->migration, "peer", i->peer,
                          "phase", i->phase, "resume", i->resume, "rev", (json_int_t)i->rev);
    if (o && i->back_rev > 0)
        json_object_set_new(o, "back_rev", json_integer(i->back_rev));
    if (o && i->peer_url)
        json_object_set_new(o, "peer_url", json_string(i->peer_url));
    if (o && i->spec)
        json_object_set(o, "spec", i->spec);
    return o;
}

int vo_migrate_intent_from_json(json_t *doc, VoMigrateIntent *ret, char **ret_error)
{
    const char *role = NULL;
    json_int_t rev = 0, back_rev = 0;
    int resume = 0;
    json_error_t jerr;
    *ret = (VoMigrateIntent){ 0 };
    if (!doc || json_unpack_ex(doc, &jerr, 0,
                               "{s:s, s:s, s:s, s:s, s:s, s:s, s?b, s?I, s?I, s?s, s?o}",
                               "role", &role, "vm", &ret->vm, "name", &ret->name, "migration",
                               &ret->migration, "peer", &ret->peer, "phase", &ret->phase,
                               "resume", &resume, "rev", &rev, "back_rev", &back_rev,
                               "peer_url", &ret->peer_url, "spec", &ret->spec) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad migration intent: %s",
                            doc ? jerr.text : "not JSON");
    if (!strcmp(role, "source"))
        ret->role = VO_MIGRATE_ROLE_SOURCE;
    else if (!strcmp(role, "destination"))
        ret->role = VO_MIGRATE_ROLE_DESTINATION;
    else
        return vo_error_set(ret_error, -EINVAL, "bad migration intent: role '%s'", role);
    ret->resume = resume;
    ret->rev = rev;
    ret->back_rev = back_rev;
    return 0;
}

VoMigrateRecover vo_migrate_recover_decide(const VoMigrateIntent *i, bool vm_here,
                                           bool vm_at_peer)
{
    if (i->role == VO_MIGRATE_ROLE_DESTINATION)
        return vm_here ? VO_MIGRATE_RECOVER_CONTINUE : VO_MIGRATE_RECOVER_DESTROY;
    if (vm_here) /* the switch may have been sent: the store settles it */
        return !strcmp(i->phase, "switch") || !strcmp(i->phase, "switched")
                   ? VO_MIGRATE_RECOVER_SETTLE : VO_MIGRATE_RECOVER_RESUME;
    /* Its documents left: only the switch moves them. Where they are not at
     * the peer either, nothing here is touched (a guest we cannot place). */
    return vm_at_peer ? VO_MIGRATE_RECOVER_QUIT : VO_MIGRATE_RECOVER_NOTHING;
}

const char *vo_migrate_recover_to_string(VoMigrateRecover r)
{
    switch (r) {
    case VO_MIGRATE_RECOVER_NOTHING: return "nothing";
    case VO_MIGRATE_RECOVER_RESUME: return "resume";
    case VO_MIGRATE_RECOVER_SETTLE: return "settle";
    case VO_MIGRATE_RECOVER_QUIT: return "quit";
    case VO_MIGRATE_RECOVER_CONTINUE: return "continue";
    case VO_MIGRATE_RECOVER_DESTROY: return "destroy";
    }
    return "?";
}
