/* store-etcd.c: the etcd backend of the store (store.h), spoken through
 * etcd 3.4's JSON gateway (POST /v3/kv/..., /v3/watch, /v3/lease/...) with
 * libcurl and jansson: key mapping into the vireo/ namespace, transactions
 * with the failing compare found from ranges in the failure branch, one
 * streaming watch per thread, leases as one POST per renewal, compaction,
 * reads without a quorum (serializable, marked stale; a probe sees it back).
 * docs/internals.md ("etcd backend") describes the mapping and quirks.
 * This file: reads, transactions, leases, compaction, opening and closing a
 * handle; store-etcd-call.c: the gateway's requests (encoding, key mapping,
 * curl handles, endpoints, errors); store-etcd-quorum.c: whether the
 * cluster has a quorum, and its probe; store-etcd-watch.c: watches.
 * They share store-etcd-internal.h. */
#include "state/store.h"
#include "state/store-etcd-internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

#define DEFAULT_TIMEOUT_MS 8000
#define LIST_PAGE 500

int64_t vo_etcd_header_rev(json_t *answer)
{
    return vo_etcd_json_i64(json_object_get(answer, "header"), "revision");
}

/* A range of one etcd key (or [key, end)) as of rev (0: now). */
json_t *vo_etcd_range_request(const char *key, size_t key_len, const char *end, int64_t rev)
{
    json_t *req = json_object();
    json_object_set_new(req, "key", vo_etcd_b64_json(key, key_len));
    if (end)
        json_object_set_new(req, "range_end", vo_etcd_b64_json(end, strlen(end)));
    if (rev > 0)
        json_object_set_new(req, "revision", json_integer(rev));
    return req;
}

/* 0 when the store still holds revision rev, VO_STORE_ECOMPACTED when a
 * compaction dropped it (a range at rev says so), else -errno. */
int vo_etcd_probe_rev(EtcdStore *s, int64_t rev)
{
    json_t *req = vo_etcd_range_request(s->prefix, strlen(s->prefix), NULL, rev);
    json_object_set_new(req, "count_only", json_true());
    json_t *ans = NULL;
    int r = vo_etcd_call(s, "/v3/kv/range", req, &ans);
    json_decref(ans);
    return r == -EINVAL ? 0 : r; /* a future revision: not compacted */
}

/* ---- reads ---- */

static int etcd_get(VoStore *base, const char *key, char **ret_value, int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!key)
        return -EINVAL;
    if (ret_value)
        *ret_value = NULL;
    _cleanup_free_ char *ek = vo_etcd_map_key(s, key);
    json_t *ans = NULL;
    int r = vo_etcd_call_read(s, "/v3/kv/range", vo_etcd_range_request(ek, strlen(ek), NULL, 0),
                              &ans);
    if (r < 0)
        return r;
    json_t *kv = json_array_get(json_object_get(ans, "kvs"), 0);
    if (!kv) {
        json_decref(ans);
        return -ENOENT;
    }
    if (ret_value && !(*ret_value = vo_etcd_json_b64(kv, "value", &(size_t){ 0 }))) {
        json_decref(ans);
        return -EBADMSG;
    }
    if (ret_rev)
        *ret_rev = vo_etcd_json_i64(kv, "mod_revision");
    json_decref(ans);
    return 0;
}

static int etcd_list(VoStore *base, const char *prefix, VoStoreListFn fn, void *userdata,
                     int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!prefix || !fn)
        return -EINVAL;
    _cleanup_free_ char *ek = vo_etcd_map_key(s, prefix);
    _cleanup_free_ char *end = vo_etcd_prefix_end(ek);
    size_t ek_len = strlen(ek);
    _cleanup_free_ char *from = vo_strdup(ek);
    size_t from_len = ek_len;
    int64_t rev = 0, page = LIST_PAGE;
    for (;;) {
        /* Later pages read at the first page's revision: one snapshot. */
        json_t *req = vo_etcd_range_request(from, from_len, end, rev);
        json_object_set_new(req, "limit", json_integer(page));
        json_t *ans = NULL;
        int r = vo_etcd_call_read(s, "/v3/kv/range", req, &ans);
        if (r == -EMSGSIZE && page > 1) {
            page /= 2; /* large documents: fewer at a time */
            continue;
        }
        if (r == VO_STORE_ECOMPACTED)
            r = -EAGAIN; /* compacted between pages: walk again */
        if (r < 0)
            return r;
        if (rev == 0) {
            rev = vo_etcd_header_rev(ans);
            if (ret_rev)
                *ret_rev = rev;
        }
        json_t *kvs = json_object_get(ans, "kvs");
        size_t i;
        json_t *kv;
        json_array_foreach(kvs, i, kv) {
            size_t klen = 0;
            _cleanup_free_ char *k = vo_etcd_json_b64(kv, "key", &klen);
            _cleanup_free_ char *v = vo_etcd_json_b64(kv, "value", &(size_t){ 0 });
            if (!k || !v || klen < ek_len || memcmp(k, ek, ek_len) != 0) {
                json_decref(ans);
                return -EBADMSG;
            }
            _cleanup_free_ char *key = vo_asprintf("%s%s", prefix, k + ek_len);
            r = fn(key, v, vo_etcd_json_i64(kv, "mod_revision"), userdata);
            if (r != 0) {
                json_decref(ans);
                return r;
            }
            if (i + 1 == json_array_size(kvs)) {
                /* The next page starts just after this key. */
                free(from);
                from = vo_malloc0(klen + 2);
                memcpy(from, k, klen);
                from_len = klen + 1;
            }
        }
        bool more = json_is_true(json_object_get(ans, "more")) && json_array_size(kvs) > 0;
        json_decref(ans);
        if (!more)
            return 0;
    }
}

static int etcd_revision(VoStore *base, int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!ret_rev)
        return -EINVAL;
    json_t *req = vo_etcd_range_request(s->prefix, strlen(s->prefix), NULL, 0);
    json_object_set_new(req, "count_only", json_true());
    json_t *ans = NULL;
    int r = vo_etcd_call(s, "/v3/kv/range", req, &ans);
    if (r < 0)
        return r;
    *ret_rev = vo_etcd_header_rev(ans);
    json_decref(ans);
    return 0;
}

/* ---- transactions ---- */

/* Which compare failed: the failure branch read every compared key at the
 * transaction's revision (etcd does not say which compare was false). */
static int failed_compare(const VoStoreCompare *cmps, size_t n_cmps, json_t *ans,
                          size_t *ret_failed)
{
    json_t *responses = json_object_get(ans, "responses");
    for (size_t i = 0; i < n_cmps; i++) {
        json_t *range = json_object_get(json_array_get(responses, i), "response_range");
        json_t *kv = json_array_get(json_object_get(range, "kvs"), 0);
        int r = 0;
        if (cmps[i].expected_rev == VO_REV_NEW)
            r = kv ? -EEXIST : 0;
        else if (!kv)
            r = -ENOENT;
        else if (vo_etcd_json_i64(kv, "mod_revision") != cmps[i].expected_rev)
            r = -ESTALE;
        if (r < 0) {
            if (ret_failed)
                *ret_failed = i;
            return r;
        }
    }
    return -ESTALE; /* not reached: a compare was false */
}

static int etcd_txn(VoStore *base, const VoStoreCompare *cmps, size_t n_cmps,
                    const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    EtcdStore *s = (EtcdStore *)base;
    if ((n_cmps && !cmps) || (n_ops && !ops))
        return -EINVAL;
    if (n_cmps > VO_STORE_ETCD_MAX_TXN_OPS || n_ops > VO_STORE_ETCD_MAX_TXN_OPS)
        return -E2BIG;
    for (size_t i = 0; i < n_cmps; i++)
        if (!cmps[i].key || cmps[i].expected_rev < VO_REV_NEW)
            return -EINVAL;
    for (size_t i = 0; i < n_ops; i++) {
        if (!ops[i].key || ops[i].lease < 0 ||
            (ops[i].kind == VO_STORE_PUT && !ops[i].value) ||
            (ops[i].kind != VO_STORE_PUT && ops[i].kind != VO_STORE_DELETE))
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ops[i].key, ops[j].key) == 0)
                return -EINVAL;
    }

    json_t *compare = json_array(), *success = json_array(), *failure = json_array();
    for (size_t i = 0; i < n_cmps; i++) {
        _cleanup_free_ char *ek = vo_etcd_map_key(s, cmps[i].key);
        json_t *c = json_object();
        json_object_set_new(c, "key", vo_etcd_b64_json(ek, strlen(ek)));
        json_object_set_new(c, "result", json_string("EQUAL"));
        if (cmps[i].expected_rev == VO_REV_NEW) {
            json_object_set_new(c, "target", json_string("CREATE"));
            json_object_set_new(c, "create_revision", json_integer(0));
        } else {
            json_object_set_new(c, "target", json_string("MOD"));
            json_object_set_new(c, "mod_revision", json_integer(cmps[i].expected_rev));
        }
        json_array_append_new(compare, c);
        json_t *rr = vo_etcd_range_request(ek, strlen(ek), NULL, 0);
        json_object_set_new(rr, "keys_only", json_true());
        json_array_append_new(failure, json_pack("{s:o}", "request_range", rr));
    }
    for (size_t i = 0; i < n_ops; i++) {
        _cleanup_free_ char *ek = vo_etcd_map_key(s, ops[i].key);
        json_t *o = json_object();
        json_object_set_new(o, "key", vo_etcd_b64_json(ek, strlen(ek)));
        if (ops[i].kind == VO_STORE_PUT) {
            json_object_set_new(o, "value", vo_etcd_b64_json(ops[i].value, strlen(ops[i].value)));
            if (ops[i].lease)
                json_object_set_new(o, "lease", json_integer(ops[i].lease));
            json_array_append_new(success, json_pack("{s:o}", "request_put", o));
        } else {
            json_array_append_new(success, json_pack("{s:o}", "request_delete_range", o));
        }
    }
    json_t *req = json_pack("{s:o, s:o, s:o}", "compare", compare, "success", success,
                            "failure", failure);
    json_t *ans = NULL;
    int r = vo_etcd_call_write(s, "/v3/kv/txn", req, &ans);
    /* A put's lease is unknown (expired): not a compare, nothing written. */
    if (r == -ENOENT)
        return -EKEYEXPIRED;
    if (r < 0)
        return r;
    if (json_is_true(json_object_get(ans, "succeeded"))) {
        if (ret_rev)
            *ret_rev = vo_etcd_header_rev(ans);
        r = 0;
    } else {
        r = failed_compare(cmps, n_cmps, ans, ret_failed);
    }
    json_decref(ans);
    return r;
}

/* ---- leases ---- */

static int etcd_lease_grant(VoStore *base, int ttl_ms, int64_t *ret_lease)
{
    EtcdStore *s = (EtcdStore *)base;
    if (ttl_ms <= 0 || !ret_lease)
        return -EINVAL;
    json_t *ans = NULL;
    json_t *req = json_pack("{s:I}", "TTL", (json_int_t)((ttl_ms + 999) / 1000));
    int r = vo_etcd_call_write(s, "/v3/lease/grant", req, &ans);
    if (r < 0)
        return r;
    *ret_lease = vo_etcd_json_i64(ans, "ID");
    const char *err = json_string_value(json_object_get(ans, "error"));
    json_decref(ans);
    return *ret_lease > 0 && !(err && *err) ? 0 : -EIO;
}

static int etcd_lease_keepalive(VoStore *base, int64_t lease)
{
    EtcdStore *s = (EtcdStore *)base;
    if (lease <= 0)
        return -EINVAL;
    json_t *ans = NULL;
    int r = vo_etcd_call_write(s, "/v3/lease/keepalive",
                               json_pack("{s:I}", "ID", (json_int_t)lease), &ans);
    if (r < 0)
        return r;
    /* An expired or unknown lease answers without a TTL. */
    r = vo_etcd_json_i64(ans, "TTL") > 0 ? 0 : -ENOENT;
    json_decref(ans);
    return r;
}

static int etcd_lease_revoke(VoStore *base, int64_t lease)
{
    EtcdStore *s = (EtcdStore *)base;
    if (lease <= 0)
        return -EINVAL;
    json_t *ans = NULL;
    int r = vo_etcd_call_write(s, "/v3/lease/revoke", json_pack("{s:I}", "ID", (json_int_t)lease),
                               &ans);
    json_decref(ans);
    return r;
}

/* ---- compaction ---- */

static int etcd_compact(VoStore *base, int64_t rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (rev <= 0)
        return -EINVAL;
    json_t *ans = NULL;
    /* physical: answered once the log is dropped for good. */
    int r = vo_etcd_call_write(s, "/v3/kv/compaction",
                       json_pack("{s:I, s:b}", "revision", (json_int_t)rev, "physical", 1), &ans);
    json_decref(ans);
    if (r == VO_STORE_ECOMPACTED)
        return 0; /* already compacted past rev */
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    if (rev > s->compacted)
        s->compacted = rev;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* etcd does not report its compaction revision C; a range at revision r
 * fails exactly when r < C, so C is the lowest revision a range still
 * reads (searched from the last one known; it only grows). */
static int etcd_compacted(VoStore *base, int64_t *ret_rev)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!ret_rev)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int64_t known = s->compacted;
    pthread_mutex_unlock(&s->lock);
    int r = vo_etcd_probe_rev(s, known > 0 ? known : 1);
    if (r == 0) {
        *ret_rev = known; /* 0 when a range at 1 works: nothing to resume from is lost */
        return 0;
    }
    if (r != VO_STORE_ECOMPACTED)
        return r;
    int64_t lo = (known > 0 ? known : 1) + 1, hi = 0;
    if ((r = etcd_revision(base, &hi)) < 0)
        return r;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        r = vo_etcd_probe_rev(s, mid);
        if (r == 0)
            hi = mid;
        else if (r == VO_STORE_ECOMPACTED)
            lo = mid + 1;
        else
            return r;
    }
    pthread_mutex_lock(&s->lock);
    if (hi > s->compacted)
        s->compacted = hi;
    pthread_mutex_unlock(&s->lock);
    *ret_rev = hi;
    return 0;
}

/* ---- open and close ---- */

static void store_free(EtcdStore *s)
{
    for (size_t i = 0; i < s->n_idle; i++)
        curl_easy_cleanup(s->idle[i]);
    vo_strv_free(s->endpoints);
    free(s->prefix);
    free(s->ca_file);
    free(s->cert_file);
    free(s->key_file);
    vo_etcd_quorum_unref(s->quorum);
    pthread_cond_destroy(&s->probe_cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void vo_etcd_store_unref(EtcdStore *s)
{
    pthread_mutex_lock(&s->lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last)
        store_free(s);
}

/* Watches still open see -ECANCELED from now on (their threads end); the
 * store's memory goes with the last of them. */
static void etcd_close(VoStore *base)
{
    EtcdStore *s = (EtcdStore *)base;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    for (VoStoreWatch *w = s->watches; w; w = w->next) {
        pthread_mutex_lock(&w->lock);
        w->canceled = true;
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (w->multi)
            curl_multi_wakeup(w->multi);
    }
    pthread_cond_broadcast(&s->probe_cond);
    bool join = s->probe_joinable;
    s->probe_joinable = false;
    pthread_mutex_unlock(&s->lock);
    if (join) /* ends within its read's timeout (PROBE_TIMEOUT_MS) */
        pthread_join(s->probe, NULL);
    vo_etcd_store_unref(s);
}

static const VoStoreOps etcd_ops = {
    .name = "etcd",
    .unavailable_message = "cluster has no quorum",
    .unknown_message = "cluster has no quorum or did not answer in time: the change may or may "
                       "not have been made; read it before trying again",
    .close = etcd_close,
    .get = etcd_get,
    .list = etcd_list,
    .txn = etcd_txn,
    .revision = etcd_revision,
    .watch_open = vo_etcd_watch_open,
    .watch_next = vo_etcd_watch_next,
    .watch_wake = vo_etcd_watch_wake,
    .watch_close = vo_etcd_watch_close,
    .lease_grant = etcd_lease_grant,
    .lease_keepalive = etcd_lease_keepalive,
    .lease_revoke = etcd_lease_revoke,
    .compact = etcd_compact,
    .compacted = etcd_compacted,
    .stale_since = vo_etcd_stale_since,
    .request_timeout_ms = vo_etcd_request_timeout_ms,
};

int vo_store_open_etcd(const VoEtcdOptions *o, VoStore **ret)
{
    if (!o || !o->endpoints || !ret || o->timeout_ms < 0)
        return -EINVAL;
    if (o->host_id && (!*o->host_id || strchr(o->host_id, '/')))
        return -EINVAL;
    EtcdStore *s = vo_malloc0(sizeof(*s));
    s->base.ops = &etcd_ops;
    s->refs = 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->probe_cond, &attr);
    pthread_condattr_destroy(&attr);
    s->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    s->prefix = o->host_id ? vo_asprintf("vireo/h/%s/", o->host_id) : vo_strdup("vireo/");
    s->ca_file = o->ca_file ? vo_strdup(o->ca_file) : NULL;
    s->cert_file = o->cert_file ? vo_strdup(o->cert_file) : NULL;
    s->key_file = o->key_file ? vo_strdup(o->key_file) : NULL;
    _cleanup_free_ char *list = vo_strdup(o->endpoints);
    char *save = NULL;
    for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        e += strspn(e, " ");
        size_t n = strlen(e);
        while (n && (e[n - 1] == '/' || e[n - 1] == ' '))
            e[--n] = '\0';
        if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) {
            store_free(s);
            return -EINVAL;
        }
        vo_strv_pushf(&s->endpoints, "%s", e);
    }
    s->n_endpoints = vo_strv_len(s->endpoints);
    if (s->n_endpoints == 0) {
        store_free(s);
        return -EINVAL;
    }
    _cleanup_free_ char *key = vo_strdup("");
    for (size_t i = 0; i < s->n_endpoints; i++) {
        char *more = vo_asprintf("%s%s%s", key, i ? "," : "", s->endpoints[i]);
        free(key);
        key = more;
    }
    s->quorum = vo_etcd_quorum_ref(key);
    *ret = &s->base;
    return 0;
}
