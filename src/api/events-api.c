/* events-api.c: GET /v1/events, every document change as Server-Sent Events
 * (util/sse.h formats them). A stream is a store watch from a revision: the
 * one in Last-Event-ID or ?since=, else the current one, so a client that
 * resumes with the last id it saw misses nothing and sees nothing twice.
 *
 * Threads. MHD runs one thread per connection and pulls the body from
 * stream_read on it, which blocks in watch_next (the store's condition
 * variable: an event goes out as soon as its write commits) for at most a
 * heartbeat interval. A small thread per stream polls the client's socket
 * and wakes the watch when the client goes away; vo_api_events_shutdown wakes
 * every stream when vireod stops.
 *
 * In a cluster the stream watches the raw etcd handle (d->cluster_store):
 * every host's documents (h/<host-id>/<key>, mapped to kinds and ids as a
 * host's own keys are), the hosts' live records (cluster/hosts/<id>, kind
 * "host") and their member documents (cluster/members/<id>, kind "host"
 * too: the maintenance flag of an offline host), each event with "host"
 * (the host's name). Revisions are etcd's,
 * one counter for the whole cluster, so an id seen on one host resumes on
 * any other. A standalone host's stream has its one live record as kind
 * "host" too (local_key_object), so a client follows hosts the same way
 * everywhere. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "api/handlers.h"
#include "cluster/any-door.h"
#include "conf/cloud-init.h"
#include "daemon/cluster-view.h"
#include "util/sse.h"
#include "util/time-format.h"
#include "util/util.h"

/* A comment line at least this often while nothing happens, so neither
 * vireod's idle timeout (30 s) nor a proxy closes an idle stream. */
#define HEARTBEAT_MS 15000
#define MAX_KINDS 16
#define CATCH_UP_MS 5000
#define HOST_RECORDS_PREFIX "cluster/hosts/"

typedef struct EventStream {
    VoStore *store;
    VoDaemon *d;
    bool raw;         /* a cluster's raw handle: keys h/<host-id>/... */
    json_t *host_names; /* raw: {host id: name}, filled as ids are seen */
    VoStoreWatch *w;
    char *kinds[MAX_KINDS + 1]; /* NULL-terminated; none: every kind */
    char *object;               /* NULL: every object */
    int fd;                     /* the client's socket (MHD's) */
    int stop_pipe[2];
    pthread_t hangup_thread;
    bool hangup_running;
    atomic_bool gone; /* the client hung up */
    bool ended;       /* nothing more to send after pending */
    bool follow;      /* false (?follow=false): end once caught up */
    /* A raw stream with follow=false: etcd's watch delivers what is there
     * already from a thread of its own, so "caught up" is having seen the
     * revision that was current at the start (the watch then covers every
     * key, so every revision shows), within CATCH_UP_MS. */
    int64_t catch_up_rev, catch_up_until;
    char *pending;
    size_t pending_len, pending_off;
    int64_t last_sent_ms;
    VoSseIds ids; /* event ids "R" / "R.k" (util/sse.h) */
    /* The stream has sent everything of revisions <= seen_rev (a watch that
     * timed out had read up to the store's revision before it waited); a
     * heartbeat carries it as its id, so a client of a quiet, filtered
     * stream resumes from there, not from its last event (maybe compacted
     * away meanwhile). id_rev: the last id sent. */
    int64_t seen_rev, id_rev;
    /* The store's "no quorum since" last said in a comment line (0: has one). */
    int64_t stale_said;
    struct EventStream *next;
} EventStream;

/* How long vireod's shutdown waits for the streams to end properly (their
 * last chunk sent) before it closes their connections anyway. */
#define SHUTDOWN_WAIT_MS 1000

static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t streams_gone = PTHREAD_COND_INITIALIZER;
static EventStream *streams; /* open streams (streams_lock) */
static bool shutting_down;   /* streams_lock */

void vo_api_events_shutdown(void)
{
    pthread_mutex_lock(&streams_lock);
    shutting_down = true;
    for (EventStream *s = streams; s; s = s->next)
        s->store->ops->watch_wake(s->w);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += SHUTDOWN_WAIT_MS / 1000;
    while (streams && pthread_cond_timedwait(&streams_gone, &streams_lock, &deadline) == 0)
        ;
    pthread_mutex_unlock(&streams_lock);
}

static bool stopping(void)
{
    pthread_mutex_lock(&streams_lock);
    bool r = shutting_down;
    pthread_mutex_unlock(&streams_lock);
    return r;
}

static void pending_add(EventStream *s, const char *text)
{
    size_t n = strlen(text);
    if (s->pending_off == s->pending_len)
        s->pending_off = s->pending_len = 0;
    char *p = realloc(s->pending, s->pending_len + n + 1);
    if (!p)
        abort();
    s->pending = p;
    memcpy(p + s->pending_len, text, n + 1);
    s->pending_len += n;
}

static bool wanted(const EventStream *s, const char *kind, const char *id)
{
    if (s->object && strcmp(s->object, id))
        return false;
    if (!s->kinds[0])
        return true;
    for (size_t i = 0; s->kinds[i]; i++)
        if (!strcmp(s->kinds[i], kind))
            return true;
    return false;
}

/* A standalone host's key: its documents as util/sse.h maps them, and its
 * live record (hosts.h: "cluster/hosts/<id>", state, maintenance, load) as
 * kind "host" with its id, as a cluster's raw keys are (cluster/any-door.h). */
static bool local_key_object(const char *key, const char **ret_kind, const char **ret_id)
{
    size_t n = strlen(HOST_RECORDS_PREFIX);
    if (!strncmp(key, HOST_RECORDS_PREFIX, n)) {
        if (!key[n] || strchr(key + n, '/'))
            return false;
        *ret_kind = "host";
        *ret_id = key + n;
        return true;
    }
    return vo_sse_key_object(key, ret_kind, ret_id);
}

/* host_buf (raw streams): the id of the host the key is of. */
static bool event_wanted(const EventStream *s, const VoStoreEvent *e, const char **ret_kind,
                         const char **ret_id, char host_buf[static 64])
{
    if (s->raw)
        return vo_cluster_key_object(e->key, host_buf, 64, ret_kind, ret_id) &&
               wanted(s, *ret_kind, *ret_id);
    return local_key_object(e->key, ret_kind, ret_id) && wanted(s, *ret_kind, *ret_id);
}

/* A document as a reader of events may see it: the cloud-init user data
 * and password hash in a spec (of a VM, a backup) left out, as vm show
 * leaves them out (an admin's: GET /v1/vms/{vm}/cloud-init). NULL: value
 * as it is. */
static char *redacted(const char *value)
{
    if (!value || !strstr(value, "\"cloud_init\""))
        return NULL;
    json_t *doc = json_loads(value, 0, NULL);
    json_t *ci = json_object_get(json_object_get(doc, "spec"), "cloud_init");
    char *text = NULL;
    if (json_object_get(ci, "user_data") || json_object_get(ci, "password_hash")) {
        vo_cloud_init_json_redact(ci);
        text = json_dumps(doc, JSON_COMPACT);
    }
    json_decref(doc);
    return text;
}

/* The name of host id, as events show it (the id until a member document
 * names it). */
static const char *host_name(EventStream *s, const char *id)
{
    json_t *name = json_object_get(s->host_names, id);
    if (!name) {
        _cleanup_free_ char *found = vo_host_name_of(s->d, id);
        if (found) /* unknown ones are looked up again: a host joining */
            json_object_set_new(s->host_names, id, json_string(found));
        name = json_object_get(s->host_names, id);
    }
    return name ? json_string_value(name) : id;
}

/* A watch batch holds every change of each revision in it (state/store.h),
 * so whether more events of a revision follow on this stream is known. */
static void add_events(EventStream *s, const VoStoreEvent *events, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *kind, *id, *other_kind, *other_id;
        char host[64], other_host[64];
        if (!event_wanted(s, &events[i], &kind, &id, host))
            continue;
        bool more = false;
        for (size_t j = i + 1; j < n && events[j].rev == events[i].rev && !more; j++)
            more = event_wanted(s, &events[j], &other_kind, &other_id, other_host);
        unsigned index = 0;
        if (!vo_sse_ids_next(&s->ids, events[i].rev, more, &index))
            continue; /* the client saw it before it resumed */
        _cleanup_free_ char *value = redacted(events[i].value);
        char *ev = vo_sse_format_change_host(events[i].rev, index, kind, id,
                                             events[i].kind == VO_STORE_DELETE,
                                             value ? value : events[i].value,
                                             s->raw ? host_name(s, host) : NULL);
        pending_add(s, ev);
        free(ev);
        if (!index) /* "R": all of R is sent */
            s->id_rev = events[i].rev;
    }
    /* A batch holds whole revisions: every one of them is done with (sent
     * or not wanted). */
    if (n > 0 && events[n - 1].rev > s->seen_rev)
        s->seen_rev = events[n - 1].rev;
}

/* An error after the stream started: one "error" event, then the end. */
static void add_error(EventStream *s, VoErrorCode code, const char *message)
{
    json_t *doc = json_pack("{s:{s:s, s:s}}", "error", "code", vo_error_code_name(code),
                            "message", message);
    char *data = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *ev = vo_asprintf("event: error\ndata: %s\n\n", data);
    pending_add(s, ev);
    free(ev);
    free(data);
    s->ended = true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    EventStream *s = cls;
    for (;;) {
        if (s->pending_off < s->pending_len) {
            size_t n = s->pending_len - s->pending_off;
            if (n > max)
                n = max;
            memcpy(buf, s->pending + s->pending_off, n);
            s->pending_off += n;
            s->last_sent_ms = vo_now_ms();
            return (ssize_t)n;
        }
        if (atomic_load(&s->gone))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->ended || stopping())
            return MHD_CONTENT_READER_END_OF_STREAM;
        int64_t wait = HEARTBEAT_MS - (vo_now_ms() - s->last_sent_ms);
        if (!s->follow && s->catch_up_rev > 0) {
            if (s->seen_rev >= s->catch_up_rev || vo_now_ms() >= s->catch_up_until) {
                s->ended = true;
                continue;
            }
            wait = s->catch_up_until - vo_now_ms();
        } else if (!s->follow)
            wait = 0; /* only what is there already */
        else if (wait <= 0) {
            if (s->seen_rev > s->id_rev) {
                /* An id without data: the client's last event id moves on,
                 * no event is dispatched (the SSE standard). */
                char *beat = vo_asprintf(": keepalive\nid: %lld\n\n", (long long)s->seen_rev);
                pending_add(s, beat);
                free(beat);
                s->id_rev = s->seen_rev;
            } else
                pending_add(s, ": keepalive\n\n");
            continue;
        }
        /* Without a quorum the stream says so (a comment line: clients that
         * do not look are not disturbed), and again when it is back. */
        int64_t stale = vo_store_stale_since(s->store);
        if (stale != s->stale_said) {
            char when[32];
            vo_time_format(stale, when);
            char *line = stale ? vo_asprintf(": cluster has no quorum since %s: changes "
                                             "elsewhere may not show until it is back\n\n",
                                             when)
                               : vo_strdup(": cluster has a quorum again\n\n");
            pending_add(s, line);
            free(line);
            s->stale_said = stale;
            continue;
        }
        VoStoreEvent *events = NULL;
        size_t n = 0;
        int64_t before = 0;
        /* (A linearizable read: not tried while the quorum is known lost.) */
        if (stale || s->store->ops->revision(s->store, &before) < 0)
            before = 0;
        int r = s->store->ops->watch_next(s->w, (int)wait, &events, &n);
        /* Nothing came: the watch read the log up to at least `before` (a
         * wake from a hang-up or shutdown ends the stream anyway). */
        if (r == 0 && n == 0 && !atomic_load(&s->gone) && before > s->seen_rev &&
            !s->catch_up_rev)
            s->seen_rev = before;
        if (r == VO_STORE_ECOMPACTED)
            add_error(s, VO_ERR_REVISION_COMPACTED,
                      "this stream fell behind the store's change log; read the documents "
                      "again and open a new stream");
        else if (r < 0)
            s->ended = true; /* -ECANCELED: the store is closing */
        else {
            add_events(s, events, n);
            vo_store_events_free(events, n);
            if (!s->follow && n == 0 && !s->catch_up_rev)
                s->ended = true; /* caught up */
        }
    }
}

/* Waits for the client to hang up (or the stream to end) and wakes the watch. */
static void *hangup_main(void *userdata)
{
    EventStream *s = userdata;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = s->fd, .events = POLLRDHUP },
                                 { .fd = s->stop_pipe[0], .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (pfd[1].revents)
            return NULL;
        if (pfd[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
            atomic_store(&s->gone, true);
            s->store->ops->watch_wake(s->w);
            return NULL;
        }
    }
}

static void stream_free(void *cls)
{
    EventStream *s = cls;
    pthread_mutex_lock(&streams_lock);
    for (EventStream **p = &streams; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    if (!streams)
        pthread_cond_broadcast(&streams_gone);
    pthread_mutex_unlock(&streams_lock);
    if (s->hangup_running) {
        (void)!write(s->stop_pipe[1], "x", 1);
        pthread_join(s->hangup_thread, NULL);
    }
    if (s->stop_pipe[0] >= 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    if (s->w)
        s->store->ops->watch_close(s->w);
    for (size_t i = 0; s->kinds[i]; i++)
        free(s->kinds[i]);
    json_decref(s->host_names);
    free(s->object);
    free(s->pending);
    free(s);
}

typedef struct {
    EventStream *s;
    size_t n;
    char *error;
} KindArgs;

static bool wanted_kind(const EventStream *s, const char *kind)
{
    for (size_t i = 0; s->kinds[i]; i++)
        if (!strcmp(s->kinds[i], kind))
            return true;
    return false;
}

/* MHD_get_connection_values callback: every kind= argument, comma lists too. */
static enum MHD_Result collect_kind(void *cls, enum MHD_ValueKind vk, const char *key,
                                    const char *value)
{
    KindArgs *a = cls;
    if (strcmp(key, "kind") || a->error)
        return MHD_YES;
    _cleanup_free_ char *copy = vo_strdup(value ? value : "");
    char *save = NULL;
    size_t named = 0;
    for (char *k = strtok_r(copy, ",", &save); k; k = strtok_r(NULL, ",", &save), named++) {
        /* Hosts' live records: kind "host" (local_key_object). */
        if (strcmp(k, "host") && !vo_sse_kind_known(k)) {
            _cleanup_free_ char *known = vo_strdup("");
            for (size_t i = 0; vo_sse_kinds[i]; i++) {
                char *more = vo_asprintf("%s%s%s", known, i ? ", " : "", vo_sse_kinds[i]);
                free(known);
                known = more;
            }
            a->error = vo_asprintf("kind: '%s' is not one of %s, host", k, known);
            return MHD_NO;
        }
        bool dup = false;
        for (size_t i = 0; i < a->n; i++)
            dup = dup || !strcmp(a->s->kinds[i], k);
        if (!dup && a->n < MAX_KINDS)
            a->s->kinds[a->n++] = vo_strdup(k);
    }
    if (!named) /* "", ",": no kind at all (not "every kind") */
        a->error = vo_strdup("kind: empty; name one of the kinds (vm, volume, ...)");
    return a->error ? MHD_NO : MHD_YES;
}

/* The oldest revision a stream can resume after (the compaction point); 0
 * when unknown. */
static int64_t oldest_resumable(VoStore *store)
{
    int64_t compacted = 0;
    return store->ops->compacted(store, &compacted) < 0 ? 0 : compacted;
}

/* The revision the stream starts after: Last-Event-ID, else since=, else
 * the current one; "R.k" (the first k events of R were seen) starts after
 * R-1 and skips those (*ret_ids). False with rep filled when malformed or in
 * the future. */
static bool start_revision(VoRequest *req, VoReply *rep, VoStore *store, int64_t *ret_rev,
                           VoSseIds *ret_ids)
{
    int64_t current = 0;
    int r = store->ops->revision(store, &current);
    if (r < 0) {
        vo_reply_errno(rep, r, "cannot read the store's revision");
        return false;
    }
    const char *last = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
    const char *since = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "since");
    const char *what = last ? "Last-Event-ID" : "since";
    const char *text = last ? last : since;
    if (!text) {
        *ret_rev = current;
        return true;
    }
    int64_t rev = 0;
    unsigned index = 0;
    if (vo_sse_parse_event_id(text, &rev, &index) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "%s: '%s' is not a revision (an event's id: 0, 1, ..., or R.K)", what,
                       text);
        return false;
    }
    if (rev > current) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                       "%s: revision %lld is newer than the store's (%lld); was vireod's state "
                       "replaced? Read the documents again and stream without it",
                       what, (long long)rev, (long long)current);
        return false;
    }
    *ret_rev = index ? rev - 1 : rev;
    if (index)
        *ret_ids = (VoSseIds){ .skip_rev = rev, .skip_n = index };
    return true;
}

void vo_api_events(VoRequest *req, VoReply *rep)
{
    VoDaemon *d = req->d;
    VoStore *store = d->cluster_store ? d->cluster_store : d->store;
    EventStream *s = vo_malloc0(sizeof(*s));
    s->store = store;
    s->d = d;
    s->raw = d->cluster_store != NULL;
    s->host_names = json_object();
    s->fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    KindArgs ka = { .s = s };
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_kind, &ka);
    if (ka.error) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s", ka.error);
        free(ka.error);
        stream_free(s);
        return;
    }
    const char *object = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "object");
    if (object && !object[0]) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "object: empty; name an object's id");
        stream_free(s);
        return;
    }
    s->object = object ? vo_strdup(object) : NULL;
    const char *follow = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "follow");
    s->follow = true;
    if (follow && (!strcmp(follow, "false") || !strcmp(follow, "0") || !strcmp(follow, "no")))
        s->follow = false;
    else if (follow && strcmp(follow, "true") && strcmp(follow, "1") && strcmp(follow, "yes")) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "follow: '%s' is not true or false", follow);
        stream_free(s);
        return;
    }
    int64_t after = 0;
    if (!start_revision(req, rep, store, &after, &s->ids)) {
        stream_free(s);
        return;
    }
    s->seen_rev = s->id_rev = after;
    /* One kind (and object): watch only its keys; the filter stays exact. */
    _cleanup_free_ char *prefix = NULL;
    if (s->raw && !s->follow) { /* every key: see catch_up_rev */
        if (store->ops->revision(store, &s->catch_up_rev) < 0 || s->catch_up_rev <= after)
            s->catch_up_rev = 0; /* nothing to catch up with */
        s->catch_up_until = vo_now_ms() + CATCH_UP_MS;
    } else if (ka.n == 1 && !strcmp(s->kinds[0], "host") && s->raw)
        prefix = vo_strdup("cluster/"); /* records and member documents (any-door.h) */
    else if (ka.n == 1 && !strcmp(s->kinds[0], "host"))
        prefix = vo_asprintf(HOST_RECORDS_PREFIX "%s", s->object ? s->object : "");
    else if (s->raw) /* every host's documents: no prefix names one kind */
        prefix = ka.n > 0 && !wanted_kind(s, "host") ? vo_strdup("h/") : NULL;
    else if (ka.n == 1)
        prefix = vo_asprintf("%s%s", vo_sse_kind_prefix(s->kinds[0]),
                             s->object ? s->object : "");
    int r = store->ops->watch_open(store, prefix ? prefix : "", after, &s->w);
    /* What is already there is read now, so a compacted revision is a 410
     * before the stream starts rather than an error event inside it. */
    VoStoreEvent *events = NULL;
    size_t n = 0;
    if (r >= 0)
        r = store->ops->watch_next(s->w, 0, &events, &n);
    if (r == VO_STORE_ECOMPACTED) {
        int64_t oldest = oldest_resumable(store);
        vo_reply_error(rep, VO_ERR_REVISION_COMPACTED,
                       "revision %lld is older than the store's change log keeps (the oldest "
                       "to resume after is %lld); read the documents again and stream from now "
                       "(no Last-Event-ID or since)",
                       (long long)after, (long long)oldest);
        if (oldest > 0) {
            rep->header_name = "Vireo-Oldest-Revision";
            snprintf(rep->header_value, sizeof(rep->header_value), "%lld", (long long)oldest);
        }
        stream_free(s);
        return;
    }
    if (r < 0) {
        vo_reply_errno(rep, r, "cannot watch the store");
        stream_free(s);
        return;
    }
    char *hello = vo_asprintf(": vireo events after revision %lld\n\n", (long long)after);
    pending_add(s, hello);
    free(hello);
    add_events(s, events, n);
    vo_store_events_free(events, n);

    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = info ? info->connect_fd : -1;
    if (s->fd >= 0 && pipe2(s->stop_pipe, O_CLOEXEC) == 0 &&
        pthread_create(&s->hangup_thread, NULL, hangup_main, s) == 0)
        s->hangup_running = true;
    else
        log_warn("events: cannot watch the client's connection; the stream ends at its next "
                 "write after the client leaves");
    pthread_mutex_lock(&streams_lock);
    s->next = streams;
    streams = s;
    if (shutting_down)
        s->ended = true;
    pthread_mutex_unlock(&streams_lock);

    s->last_sent_ms = vo_now_ms();
    rep->status = 200;
    rep->stream_fn = stream_read;
    rep->stream_cls = s;
    rep->stream_free = stream_free;
    rep->content_type = "text/event-stream";
}
