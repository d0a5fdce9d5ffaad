/* store-etcd-watch.c: the etcd backend's watches (part of store-etcd.c):
 * one streaming POST /v3/watch per watch on a thread of its own, its events
 * queued for the caller (bounded: beyond it the watch is lost and the
 * caller re-lists), restarted after a break from the revision after the
 * last event, compactions found and reported. */
#include "state/store.h"
#include "state/store-etcd-internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/test-hold.h"
#include "util/util.h"

/* What a watch queues for a caller that does not read: beyond it the watch
 * ends with VO_STORE_ECOMPACTED (changes lost; re-list). */
#define WATCH_MAX_QUEUED_BYTES (64u << 20)
#define WATCH_MAX_QUEUED_EVENTS 1000000u
/* A dead peer is noticed within seconds, not the kernel's ~10 minutes:
 * keepalive probes after 3 s idle, every 2 s; unacknowledged data gives up
 * after 10 s. */
#define TCP_KEEPIDLE_S 3L
#define TCP_KEEPINTVL_S 2L
#define TCP_USER_TIMEOUT_MS 10000

/* ---- watches ---- */

/* The watch lost changes (a compaction, or its caller fell too far behind):
 * it ends, and watch_next says VO_STORE_ECOMPACTED once the queue is read.
 * Under w->lock. */
static void watch_lost(VoStoreWatch *w)
{
    w->compacted = true;
    pthread_cond_broadcast(&w->cond);
}

/* What one queued change counts in w->queued_bytes: its strings. */
static size_t event_bytes(const VoStoreEvent *ev)
{
    return strlen(ev->key) + (ev->value ? strlen(ev->value) : 0) +
           (ev->prev_value ? strlen(ev->prev_value) : 0);
}

static void watch_queue_event(VoStoreWatch *w, json_t *e)
{
    json_t *kv = json_object_get(e, "kv"), *prev = json_object_get(e, "prev_kv");
    size_t klen = 0;
    _cleanup_free_ char *k = vo_etcd_json_b64(kv, "key", &klen);
    if (!k || klen < w->ekey_len || memcmp(k, w->ekey, w->ekey_len) != 0)
        return;
    const char *type = json_string_value(json_object_get(e, "type"));
    bool del = type && !strcmp(type, "DELETE");
    size_t vlen = 0, plen = 0; /* (counted by event_bytes: the values are text) */
    VoStoreEvent ev = {
        .rev = vo_etcd_json_i64(kv, "mod_revision"),
        .kind = del ? VO_STORE_DELETE : VO_STORE_PUT,
        .key = vo_asprintf("%s%s", w->prefix, k + w->ekey_len),
        .value = del ? NULL : vo_etcd_json_b64(kv, "value", &vlen),
        .prev_value = json_is_object(prev) ? vo_etcd_json_b64(prev, "value", &plen) : NULL,
    };
    w->queued_bytes += event_bytes(&ev);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        VoStoreEvent *n = realloc(w->ev, w->cap * sizeof(*n));
        if (!n)
            abort();
        w->ev = n;
    }
    w->ev[w->n++] = ev;
}

/* For a log line. */
static const char *json_dumps_or(json_t *res)
{
    const char *reason = json_string_value(json_object_get(res, "cancel_reason"));
    return reason ? reason : "";
}

/* One line of the stream ({"result":{...}}), under w->lock. false: the
 * stream is no good (an error, a cancel, a full queue): end it. */
static bool watch_line(VoStoreWatch *w, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    json_t *res = json_object_get(j, "result");
    bool ok = json_is_object(res);
    bool created = ok && json_is_true(json_object_get(res, "created"));
    if (created)
        w->stream_created = true;
    if (ok && json_is_true(json_object_get(res, "canceled"))) {
        if (vo_etcd_json_i64(res, "compact_revision") > 0)
            watch_lost(w);
        else
            log_debug("etcd watch on '%s' canceled: %s", w->prefix,
                      json_dumps_or(res));
        ok = false;
    }
    json_t *events = json_object_get(res, "events");
    if (ok && json_array_size(events) > 0) {
        size_t i;
        json_t *e;
        int64_t last = 0;
        json_array_foreach(events, i, e) {
            watch_queue_event(w, e);
            last = vo_etcd_json_i64(json_object_get(e, "kv"), "mod_revision");
        }
        /* A revision's events come in one answer: resume after it. */
        if (last >= w->next_rev)
            w->next_rev = last + 1;
        if (w->queued_bytes > WATCH_MAX_QUEUED_BYTES || w->n > WATCH_MAX_QUEUED_EVENTS) {
            log_warn("etcd watch on '%s': %zu changes (%zu bytes) not read: dropping it",
                     w->prefix, w->n, w->queued_bytes);
            watch_lost(w);
            ok = false;
        }
    } else if (ok && !created && w->stream_checked) {
        /* A progress notice: every change up to its revision was sent. */
        int64_t rev = vo_etcd_header_rev(res);
        if (rev >= w->next_rev)
            w->next_rev = rev + 1;
    }
    json_decref(j);
    pthread_cond_broadcast(&w->cond);
    return ok;
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    VoStoreWatch *w = userdata;
    size_t n = size * nmemb;
    Buf b = { w->buf, w->buf_len, w->buf_cap, false };
    size_t k = vo_etcd_buf_write(ptr, 1, n, &b);
    w->buf = b.data;
    w->buf_len = b.len;
    w->buf_cap = b.cap;
    if (k != n) {
        log_warn("etcd watch on '%s': a line beyond %u MiB: dropping it", w->prefix,
                 MAX_ANSWER_BYTES >> 20);
        pthread_mutex_lock(&w->lock);
        watch_lost(w);
        pthread_mutex_unlock(&w->lock);
        return 0;
    }
    size_t start = 0;
    bool ok = true;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->buf_len && ok; i++) {
        if (w->buf[i] != '\n')
            continue;
        if (i > start)
            ok = watch_line(w, w->buf + start, i - start);
        start = i + 1;
    }
    bool stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    memmove(w->buf, w->buf + start, w->buf_len - start);
    w->buf_len -= start;
    return ok && !stop ? n : 0;
}

/* A dead peer (its host gone, no RST) breaks the stream within seconds. */
static int watch_sockopt(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
    (void)userdata;
    if (purpose == CURLSOCKTYPE_IPCXN) {
        unsigned int ms = TCP_USER_TIMEOUT_MS;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
    }
    return CURL_SOCKOPT_OK;
}

/* How many queued changes may be handed out: those before a stream whose
 * start is not yet checked against compaction (its own could follow a gap).
 * Caller holds w->lock. */
static size_t deliverable(VoStoreWatch *w)
{
    if (!w->unchecked_from)
        return w->n;
    size_t k = 0;
    while (k < w->n && w->ev[k].rev < w->unchecked_from)
        k++;
    return k;
}

/* The queued changes of revision start and later go (this stream's), and
 * their bytes from the queue's count. Caller holds w->lock. */
static void drop_events_from(VoStoreWatch *w, int64_t start)
{
    size_t keep = 0;
    while (keep < w->n && w->ev[keep].rev < start)
        keep++;
    for (size_t i = keep; i < w->n; i++) {
        w->queued_bytes -= event_bytes(&w->ev[i]);
        free(w->ev[i].key);
        free(w->ev[i].value);
        free(w->ev[i].prev_value);
    }
    w->n = keep;
}

/* etcd starts a watch at a compaction revision C although the delete at C
 * is gone (it cancels only one that starts before C): a range at start - 1
 * decides (it fails once start - 1 < C). 0: nothing lost. */
static int watch_check_start(VoStoreWatch *w, int64_t start)
{
    return start > 1 ? vo_etcd_probe_rev(w->s, start - 1) : 0;
}

/* One streaming POST /v3/watch from w->next_rev until it ends or stop. */
static void watch_stream(VoStoreWatch *w, size_t e)
{
    EtcdStore *s = w->s;
    pthread_mutex_lock(&w->lock);
    int64_t start = w->next_rev;
    w->stream_created = w->stream_checked = false;
    w->unchecked_from = start;
    json_t *create = vo_etcd_range_request(w->ekey, w->ekey_len, w->eend, 0);
    json_object_set_new(create, "start_revision", json_integer(start));
    json_object_set_new(create, "prev_kv", json_true());
    json_object_set_new(create, "progress_notify", json_true());
    pthread_mutex_unlock(&w->lock);
    json_t *req = json_pack("{s:o}", "create_request", create);
    _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    _cleanup_free_ char *url = vo_asprintf("%s/v3/watch", s->endpoints[e]);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* A member that lost its leader cancels the watch (it would go quiet). */
    struct curl_slist *h2 = headers ? curl_slist_append(headers, "Grpc-Metadata-hasleader: true")
                                    : NULL;
    if (h2)
        headers = h2;
    CURL *c = curl_easy_init();
    if (!c || !h2 || !body) {
        curl_slist_free_all(headers);
        if (c)
            curl_easy_cleanup(c);
        return;
    }
    vo_etcd_setup_handle(s, c, url, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_S);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, watch_sockopt);
    w->buf_len = 0;
    curl_multi_add_handle(w->multi, c);
    int running = 1;
    bool checked = false, lost = false;
    for (;;) {
        curl_multi_perform(w->multi, &running);
        int left;
        while (curl_multi_info_read(w->multi, &left))
            ; /* the end is !running; how it ended changes nothing */
        pthread_mutex_lock(&w->lock);
        bool stop = w->stop || w->compacted, created = w->stream_created;
        pthread_mutex_unlock(&w->lock);
        if (!running || stop)
            break;
        if (created && !checked) {
            /* What came with the creation is queued before the check (held
             * back from the caller until it is done: deliverable). Tests
             * hold here (etcd-watch-check) for the changes to come, and
             * read while the check is held (etcd-watch-checking). */
            vo_test_hold("etcd-watch-check");
            curl_multi_perform(w->multi, &running);
            vo_test_hold("etcd-watch-checking");
            int k = watch_check_start(w, start);
            pthread_mutex_lock(&w->lock);
            if (k == VO_STORE_ECOMPACTED) {
                /* Changes before this stream's are whole; its own follow a gap. */
                drop_events_from(w, start);
                watch_lost(w);
                lost = true;
            } else if (k < 0) {
                /* Unchecked: this stream's changes come again from start. */
                drop_events_from(w, start);
                w->next_rev = start;
                if (!w->created && !w->connect_error)
                    w->connect_error = k;
            } else {
                w->created = w->stream_checked = true;
            }
            w->unchecked_from = 0; /* checked, or its changes dropped */
            pthread_cond_broadcast(&w->cond);
            pthread_mutex_unlock(&w->lock);
            if (k < 0)
                break; /* lost, or unknown: a new stream checks again */
            checked = true;
            continue;
        }
        curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(w->multi, c);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    pthread_mutex_lock(&w->lock);
    if (w->unchecked_from) {
        /* Ended before its start was checked: its changes come again, from
         * a stream that checks. */
        drop_events_from(w, start);
        w->next_rev = start;
        w->unchecked_from = 0;
    }
    if (!w->created && !w->connect_error && !w->compacted)
        w->connect_error = -EAGAIN;
    bool stop = w->stop;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    /* A stream that failed or was canceled (a member without a leader, say)
     * tries the next endpoint. */
    if (!stop && !lost)
        vo_etcd_endpoint_failed(s, e);
}

/* Waits up to ms for stop (or cond), under w->lock. */
static void timed_wait(VoStoreWatch *w, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cond, &w->lock, &ts);
}

static void *watch_thread(void *userdata)
{
    VoStoreWatch *w = userdata;
    for (;;) {
        watch_stream(w, vo_etcd_endpoint_first(w->s));
        pthread_mutex_lock(&w->lock);
        /* A broken stream (etcd restarted, a member lost) resumes where it
         * ended (checked against compaction again); a compaction or stop
         * ends the watch. */
        if (!w->stop && !w->compacted)
            timed_wait(w, 500);
        bool done = w->stop || w->compacted;
        pthread_mutex_unlock(&w->lock);
        if (done)
            return NULL;
    }
}

static void watch_stop(VoStoreWatch *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->multi)
        curl_multi_wakeup(w->multi);
}

void vo_etcd_watch_close(VoStoreWatch *w)
{
    if (!w)
        return;
    watch_stop(w);
    if (w->thread_started)
        pthread_join(w->thread, NULL);
    EtcdStore *s = w->s;
    pthread_mutex_lock(&s->lock);
    for (VoStoreWatch **p = &s->watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    vo_store_events_free(w->ev, w->n);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->buf);
    free(w->prefix);
    free(w->ekey);
    free(w->eend);
    free(w);
    vo_etcd_store_unref(s);
}

int vo_etcd_watch_open(VoStore *base, const char *prefix, int64_t after_rev,
                    VoStoreWatch **ret)
{
    EtcdStore *s = (EtcdStore *)base;
    if (!prefix || after_rev < 0 || !ret)
        return -EINVAL;
    pthread_once(&vo_etcd_curl_once, vo_etcd_curl_init_once);
    VoStoreWatch *w = vo_malloc0(sizeof(*w));
    w->s = s;
    w->prefix = vo_strdup(prefix);
    w->ekey = vo_etcd_map_key(s, prefix);
    w->ekey_len = strlen(w->ekey);
    w->eend = vo_etcd_prefix_end(w->ekey);
    w->next_rev = after_rev + 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->multi = curl_multi_init();
    pthread_mutex_lock(&s->lock);
    bool closing = s->closing;
    if (!closing) {
        s->refs++;
        w->next = s->watches;
        s->watches = w;
    }
    pthread_mutex_unlock(&s->lock);
    if (closing) {
        if (w->multi)
            curl_multi_cleanup(w->multi);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->prefix);
        free(w->ekey);
        free(w->eend);
        free(w);
        return -ECANCELED;
    }

    int r = 0;
    if (!w->multi || pthread_create(&w->thread, NULL, watch_thread, w) != 0)
        r = -ENOMEM;
    else
        w->thread_started = true;
    /* Wait for etcd to take the watch, so it sees every later change (and
     * for the thread's check that after_rev is not compacted). */
    int64_t give_up = vo_now_ms() + s->timeout_ms;
    pthread_mutex_lock(&w->lock);
    while (r == 0 && !w->created && !w->compacted && !w->connect_error && !w->canceled &&
           vo_now_ms() < give_up)
        timed_wait(w, (int)(give_up - vo_now_ms()));
    if (r == 0 && !w->created && !w->compacted)
        r = w->canceled ? -ECANCELED : w->connect_error < 0 ? w->connect_error : -EAGAIN;
    pthread_mutex_unlock(&w->lock);
    if (r < 0) {
        vo_etcd_watch_close(w);
        return r;
    }
    *ret = w;
    return 0;
}

int vo_etcd_watch_next(VoStoreWatch *w, int timeout_ms, VoStoreEvent **ret_events,
                    size_t *ret_n)
{
    if (!w || !ret_events || !ret_n)
        return -EINVAL;
    *ret_events = NULL;
    *ret_n = 0;
    int64_t give_up = vo_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        if (w->canceled) {
            pthread_mutex_unlock(&w->lock);
            return -ECANCELED;
        }
        size_t k = deliverable(w);
        if (k > 0 && k == w->n) {
            *ret_events = w->ev;
            *ret_n = w->n;
            w->ev = NULL;
            w->n = w->cap = 0;
            w->queued_bytes = 0;
            break;
        }
        if (k > 0) { /* the checked part; the unchecked stream's stay (and count) */
            *ret_events = vo_malloc0(k * sizeof(**ret_events));
            memcpy(*ret_events, w->ev, k * sizeof(**ret_events));
            for (size_t i = 0; i < k; i++)
                w->queued_bytes -= event_bytes(&w->ev[i]);
            memmove(w->ev, w->ev + k, (w->n - k) * sizeof(*w->ev));
            w->n -= k;
            *ret_n = k;
            break;
        }
        if (w->compacted) {
            pthread_mutex_unlock(&w->lock);
            return VO_STORE_ECOMPACTED;
        }
        int64_t left = give_up - vo_now_ms();
        if (w->woken || left <= 0)
            break;
        timed_wait(w, (int)(left > 600000 ? 600000 : left));
    }
    w->woken = false;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void vo_etcd_watch_wake(VoStoreWatch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->woken = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}
