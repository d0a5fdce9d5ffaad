/* mac-index-copy.c: the MAC-ghost sweep's copy of the MAC index
 * (mac-index-copy.h): {key: {"text", "rev"}} of the held entries, a whole
 * read at a revision and a watch from that revision after it. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/mac-index-copy.h"
#include "util/util.h"

struct VoMacIndexCopy {
    VoStore *s;
    char *prefix;
    json_t *entries;    /* {key: {"text", "rev"}}: the held ones */
    VoStoreWatch *watch; /* NULL: read whole at the next update */
};

VoMacIndexCopy *vo_mac_index_copy_new(VoStore *s, const char *prefix)
{
    VoMacIndexCopy *c = vo_malloc0(sizeof(*c));
    *c = (VoMacIndexCopy){ .s = s, .prefix = vo_strdup(prefix), .entries = json_object() };
    return c;
}

static void drop_watch(VoMacIndexCopy *c)
{
    if (c->watch)
        c->s->ops->watch_close(c->watch);
    c->watch = NULL;
}

void vo_mac_index_copy_free(VoMacIndexCopy *c)
{
    if (!c)
        return;
    drop_watch(c);
    json_decref(c->entries);
    free(c->prefix);
    free(c);
}

/* key's entry is text at rev now (text NULL: deleted). Only an entry that
 * names a VM is kept: a claim in progress (no "vm_id") is never a ghost. */
static void set_entry(json_t *entries, const char *key, const char *text, int64_t rev)
{
    if (text && strstr(text, "\"vm_id\""))
        json_object_set_new(entries, key, json_pack("{s:s, s:I}", "text", text, "rev",
                                                    (json_int_t)rev));
    else
        json_object_del(entries, key);
}

typedef struct {
    json_t *entries;
    size_t bytes;
} Read;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    Read *rd = userdata;
    rd->bytes += strlen(key) + strlen(value);
    set_entry(rd->entries, key, value, rev);
    return 0;
}

/* The whole index at one revision, and a watch from it. */
static int read_whole(VoMacIndexCopy *c, size_t *bytes)
{
    drop_watch(c);
    Read rd = { .entries = json_object() };
    int64_t rev = 0;
    int r = c->s->ops->list(c->s, c->prefix, collect, &rd, &rev);
    *bytes += rd.bytes;
    if (r >= 0 && (r = c->s->ops->watch_open(c->s, c->prefix, rev, &c->watch)) < 0)
        c->watch = NULL;
    if (r < 0) {
        json_decref(rd.entries);
        return r;
    }
    json_decref(c->entries);
    c->entries = rd.entries;
    return 0;
}

int vo_mac_index_copy_update(VoMacIndexCopy *c, size_t *ret_bytes)
{
    size_t bytes = 0;
    int r = 0;
    if (!c->watch)
        r = read_whole(c, &bytes);
    for (size_t n = 1; r >= 0 && n > 0;) {
        VoStoreEvent *events = NULL;
        n = 0;
        r = c->s->ops->watch_next(c->watch, 0, &events, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
            const VoStoreEvent *e = &events[i];
            bytes += strlen(e->key) + (e->value ? strlen(e->value) : 0) +
                     (e->prev_value ? strlen(e->prev_value) : 0);
            set_entry(c->entries, e->key, e->kind == VO_STORE_PUT ? e->value : NULL, e->rev);
        }
        vo_store_events_free(events, n);
    }
    if (r == VO_STORE_ECOMPACTED) /* changes lost: read whole again, now */
        r = read_whole(c, &bytes);
    if (r < 0)
        drop_watch(c);
    if (ret_bytes)
        *ret_bytes = bytes;
    return r;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t vo_mac_index_copy_after(VoMacIndexCopy *c, const char *after, size_t max,
                               VoStoreListFn fn, void *userdata)
{
    size_t n = 0;
    const char **keys = vo_malloc0(sizeof(*keys) * (json_object_size(c->entries) + 1));
    const char *key;
    json_t *e;
    json_object_foreach(c->entries, key, e)
        if (!after || strcmp(key, after) > 0)
            keys[n++] = key;
    qsort(keys, n, sizeof(*keys), compare_keys);
    size_t done = 0;
    for (; done < n && done < max; done++) {
        e = json_object_get(c->entries, keys[done]);
        fn(keys[done], json_string_value(json_object_get(e, "text")),
           json_integer_value(json_object_get(e, "rev")), userdata);
    }
    free(keys);
    return done;
}

size_t vo_mac_index_copy_size(const VoMacIndexCopy *c)
{
    return json_object_size(c->entries);
}
