/* store-etcd-quorum.c: whether the cluster behind a handle's endpoints has
 * a quorum (part of the store's etcd backend, store-etcd.c): shared by the
 * handles on the same endpoints, seen lost by a failed linearizable read or
 * write, probed then until it is back, with reads answered serializable
 * (stale) meanwhile. */
#include "state/store.h"
#include "state/store-etcd-internal.h"

#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

static pthread_mutex_t quorum_lock = PTHREAD_MUTEX_INITIALIZER;
static Quorum *quorums;

/* ---- quorum ---- */

static int64_t quorum_lost_since(EtcdStore *s)
{
    pthread_mutex_lock(&quorum_lock);
    int64_t since = s->quorum->lost_since;
    pthread_mutex_unlock(&quorum_lock);
    return since;
}

static void quorum_back(EtcdStore *s)
{
    pthread_mutex_lock(&quorum_lock);
    int64_t since = s->quorum->lost_since;
    s->quorum->lost_since = 0;
    pthread_mutex_unlock(&quorum_lock);
    if (since)
        log_info("etcd: the cluster has a quorum again (lost for %lld s); reads are "
                 "linearizable again",
                 (long long)((vo_wall_ms() - since) / 1000));
}

static void *probe_thread(void *userdata)
{
    EtcdStore *s = userdata;
    pthread_mutex_lock(&s->lock);
    while (!s->closing) {
        struct timespec until = vo_deadline_ms(CLOCK_MONOTONIC, PROBE_EVERY_MS);
        pthread_cond_timedwait(&s->probe_cond, &s->lock, &until);
        if (s->closing)
            break;
        pthread_mutex_unlock(&s->lock);
        int r = 0; /* another handle's read may have seen it back */
        if (quorum_lost_since(s) != 0) {
            json_t *req = vo_etcd_range_request(s->prefix, strlen(s->prefix), NULL, 0);
            json_object_set_new(req, "count_only", json_true());
            json_t *ans = NULL;
            r = vo_etcd_call_ex(s, "/v3/kv/range", req, CALL_PROBE, &ans);
            json_decref(ans);
        }
        pthread_mutex_lock(&s->lock);
        /* Back. A loss noted since then found this probe still running and
         * started none (probe_start_locked): then this one goes on. */
        if (r == 0 && quorum_lost_since(s) == 0)
            break;
    }
    s->probing = false;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Starts this handle's probe unless one runs. Under s->lock. */
static void probe_start_locked(EtcdStore *s)
{
    if (s->probing || s->closing)
        return;
    if (s->probe_joinable) { /* a finished one: joined by this thread alone */
        pthread_t done = s->probe;
        s->probe_joinable = false;
        pthread_mutex_unlock(&s->lock);
        pthread_join(done, NULL);
        pthread_mutex_lock(&s->lock);
        if (s->probing || s->probe_joinable || s->closing)
            return;
    }
    if (pthread_create(&s->probe, NULL, probe_thread, s) == 0)
        s->probing = s->probe_joinable = true;
}

/* What a request's outcome says of the quorum: a linearizable read or a
 * write that got no answer (-EAGAIN, VO_STORE_EUNKNOWN: etcd's own timeout
 * or ours) marks it lost, a linearizable read answered marks it back (a
 * write does not: an isolated 3.4 leader renews leases by itself). */
void vo_etcd_quorum_seen(EtcdStore *s, CallKind kind, int r)
{
    if (kind == CALL_LOCAL)
        return;
    if (r == 0 && (kind == CALL_READ || kind == CALL_PROBE)) {
        quorum_back(s);
        return;
    }
    if (kind == CALL_PROBE || (r != -EAGAIN && r != VO_STORE_EUNKNOWN))
        return;
    pthread_mutex_lock(&quorum_lock);
    bool news = s->quorum->lost_since == 0;
    if (news)
        s->quorum->lost_since = vo_wall_ms();
    pthread_mutex_unlock(&quorum_lock);
    if (news)
        log_warn("etcd: no quorum (a %s got no answer); reads answer from a member, possibly "
                 "stale, until a quorum answers again",
                 kind == CALL_WRITE ? "write" : "linearizable read");
    pthread_mutex_lock(&s->lock);
    probe_start_locked(s);
    pthread_mutex_unlock(&s->lock);
}

/* A read (req stolen): linearizable while the quorum is not known lost;
 * without one, serializable (from a member), noted as stale in the
 * calling thread. */
int vo_etcd_call_read(EtcdStore *s, const char *path, json_t *req, json_t **ret)
{
    int r = -EAGAIN;
    if (quorum_lost_since(s) == 0) {
        r = vo_etcd_call(s, path, json_incref(req), ret);
        if (r != -EAGAIN) {
            json_decref(req);
            return r;
        }
    }
    json_object_set_new(req, "serializable", json_true());
    r = vo_etcd_call_ex(s, path, req, CALL_LOCAL, ret);
    if (r == 0) {
        int64_t since = quorum_lost_since(s);
        /* Lost and back in between: this answer is still a member's. */
        vo_store_stale_note(since ? since : vo_wall_ms());
        /* Make sure someone watches for the quorum's return. */
        pthread_mutex_lock(&s->lock);
        probe_start_locked(s);
        pthread_mutex_unlock(&s->lock);
    }
    return r;
}

int64_t vo_etcd_stale_since(VoStore *base)
{
    return quorum_lost_since((EtcdStore *)base);
}

int vo_etcd_request_timeout_ms(VoStore *base)
{
    EtcdStore *s = (EtcdStore *)base;
    int64_t ms = (int64_t)s->timeout_ms * (int64_t)(s->n_endpoints ? s->n_endpoints : 1);
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

Quorum *vo_etcd_quorum_ref(const char *endpoints)
{
    pthread_mutex_lock(&quorum_lock);
    Quorum *q = quorums;
    while (q && strcmp(q->endpoints, endpoints) != 0)
        q = q->next;
    if (!q) {
        q = vo_malloc0(sizeof(*q));
        q->endpoints = vo_strdup(endpoints);
        q->next = quorums;
        quorums = q;
    }
    q->refs++;
    pthread_mutex_unlock(&quorum_lock);
    return q;
}

void vo_etcd_quorum_unref(Quorum *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&quorum_lock);
    if (--q->refs == 0) {
        for (Quorum **p = &quorums; *p; p = &(*p)->next)
            if (*p == q) {
                *p = q->next;
                break;
            }
        free(q->endpoints);
        free(q);
    }
    pthread_mutex_unlock(&quorum_lock);
}
