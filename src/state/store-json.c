/* store-json.c: reading store documents as JSON objects (store-json.h). */
#include "state/store-json.h"

#include <string.h>

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *o = json_loads(value, 0, NULL);
    const char *slash = strrchr(key, '/');
    if (json_is_object(o) && slash && slash[1])
        json_object_set_new(userdata, slash + 1, o);
    else
        json_decref(o);
    return 0;
}

int vo_store_list_objects(VoStore *s, const char *prefix, json_t *into)
{
    return vo_store_list(s, prefix, collect, into);
}
