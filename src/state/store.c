/* store.c: the parts of the store interface (store.h) that every backend
 * shares, written on top of its ops table: one-key put/delete as transactions,
 * freeing watch events, closing. */
#include "state/store.h"

#include <stdlib.h>

int vo_store_put_lease(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                       int64_t lease, int64_t *ret_rev)
{
    if (!s || !key || !value || expected_rev < VO_REV_ANY || lease < 0)
        return -EINVAL;
    VoStoreCompare cmp = { key, expected_rev };
    VoStoreOp op = { VO_STORE_PUT, key, value, lease };
    int64_t rev = 0;
    int r = vo_store_txn(s, &cmp, expected_rev == VO_REV_ANY ? 0 : 1, &op, 1, &rev, NULL);
    if (r == 0 && ret_rev)
        *ret_rev = rev;
    return r;
}

int vo_store_put(VoStore *s, const char *key, const char *value, int64_t expected_rev,
                 int64_t *ret_rev)
{
    return vo_store_put_lease(s, key, value, expected_rev, 0, ret_rev);
}

static int count_key(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    (void)value;
    (void)rev;
    (*(size_t *)userdata)++;
    return 0;
}

int vo_store_count(VoStore *s, const char *prefix, size_t *ret_n)
{
    *ret_n = 0;
    return vo_store_list(s, prefix, count_key, ret_n);
}

int vo_store_delete(VoStore *s, const char *key, int64_t expected_rev)
{
    if (!s || !key || (expected_rev <= 0 && expected_rev != VO_REV_ANY))
        return -EINVAL;
    VoStoreOp op = { VO_STORE_DELETE, key, NULL, 0 };
    for (;;) {
        /* A transaction's delete of a missing key changes nothing, so "any
         * revision" is the revision the key has now, retried if it moved. */
        int64_t rev = expected_rev;
        if (expected_rev == VO_REV_ANY) {
            int r = vo_store_get(s, key, NULL, &rev);
            if (r < 0)
                return r;
        }
        VoStoreCompare cmp = { key, rev };
        int r = vo_store_txn(s, &cmp, 1, &op, 1, NULL, NULL);
        if (r == -ESTALE && expected_rev == VO_REV_ANY)
            continue;
        return r;
    }
}

static _Thread_local int64_t stale_read_since;

void vo_store_stale_reset(void)
{
    stale_read_since = 0;
}

int64_t vo_store_stale_read(void)
{
    return stale_read_since;
}

void vo_store_stale_note(int64_t since_ms)
{
    /* The oldest: the answer may be as old as that. */
    if (since_ms > 0 && (stale_read_since == 0 || since_ms < stale_read_since))
        stale_read_since = since_ms;
}

void vo_store_events_free(VoStoreEvent *events, size_t n)
{
    for (size_t i = 0; events && i < n; i++) {
        free(events[i].key);
        free(events[i].value);
        free(events[i].prev_value);
    }
    free(events);
}

VoStore *vo_store_close(VoStore *s)
{
    if (s)
        s->ops->close(s);
    return NULL;
}
