/* ha-recover.c: the manager's HA recovery loop (ha-recover.h). The pure
 * parts (which VMs, their order, the restart limit) are cluster/ha-plan.c;
 * this file reads the store, moves and asks the hosts. Each step is logged
 * and recorded as a task of kind "ha" on the manager (so it shows in the
 * task list and the event stream): "host NAME offline", "vm NAME restarted
 * on HOST after N ms", "vm NAME: unplaceable: ...". */
#include "daemon/ha-recover.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "api/forward.h"
#include "cluster/ha-plan.h"
#include "cluster/peer-client.h"
#include "daemon/cluster-place.h"
#include "daemon/cluster-view.h"
#include "daemon/hosts.h"
#include "daemon/migrate-target.h"
#include "daemon/vm-internal.h"
#include "state/vm-move.h"
#include "util/periodic.h"
#include "util/test-hold.h"
#include "util/util.h"

#define PEER_TIMEOUT_MS 15000
/* How long a recovery waits for the start task on the chosen host. */
#define START_WAIT_MS 60000

static VoPeriodic runner = VO_PERIODIC_INIT;

/* The loop's memory while this host is manager (the loop thread only):
 * {host id: monotonic ms its record was first seen missing} and the last
 * ha_state written per VM id. The restart limit's count is not here: it
 * is the VM document's "ha_restarts" (cluster/ha-plan.h), written in the
 * move's transaction, so a new manager or a restarted vireod sees it. */
static json_t *down_since;
/* {host id: true}: hosts this manager saw online (a member that never had
 * a record, one joining say, is not announced offline for nothing). */
static json_t *seen_online;
static json_t *said;
/* VMs this manager moved to a live host whose hand-over failed (the
 * /v1/migrations/moved or start call got no answer or was refused, or the
 * start task failed): {vm id: {"host" (id), "name", "from" (the down
 * host's name), "fenced" (true: "from" was online but fenced), "since",
 * "due"}}. Looked at again (follow_handovers): a
 * VM left there landed and not started is handed over again; one whose
 * host fenced itself is placed again elsewhere. Cleared with the role; a
 * new manager fills it from the documents (seed_handovers). */
static json_t *handovers;
/* handovers and said belong to the round's thread, which holds this lock
 * through each round; a hand-over worker takes it only to put back a VM
 * whose hand-over failed (job_put_back). Taken before workers_lock. */
static pthread_mutex_t handovers_lock = PTHREAD_MUTEX_INITIALIZER;
/* Set while vo_ha_recover_stop waits for the hand-over workers. */
static atomic_bool workers_stop;
/* Whether handovers was filled from the documents since this host holds
 * the role. */
static bool handovers_seeded;
#define HANDOVER_RETRY_MS 2000
/* A host that keeps not answering is asked less often (a call can take
 * PEER_TIMEOUT_MS, holding its hand-over worker): doubling up to this. */
#define HANDOVER_RETRY_MAX_MS 30000

/* Adds a VM to handovers (the caller holds handovers_lock), due again after
 * the backoff of its failed tries so far. */
static void handover_add(const char *vm_id, const char *host_id, const char *name,
                         const char *from, bool from_fenced, int64_t since_ms,
                         json_int_t failed)
{
    int64_t wait = failed > 5 ? HANDOVER_RETRY_MAX_MS : (int64_t)HANDOVER_RETRY_MS << failed;
    if (wait > HANDOVER_RETRY_MAX_MS)
        wait = HANDOVER_RETRY_MAX_MS;
    json_object_set_new(handovers, vm_id,
                        json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I}", "host", host_id,
                                  "name", name, "from", from, "fenced", from_fenced, "since",
                                  (json_int_t)since_ms, "due",
                                  (json_int_t)(vo_now_ms() + wait), "failed", failed));
}

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *o = json_loads(value, 0, NULL);
    const char *slash = strrchr(key, '/');
    if (json_is_object(o) && slash)
        json_object_set_new(userdata, slash + 1, json_pack("{s:o, s:I}", "doc", o, "rev",
                                                           (json_int_t)rev));
    else
        json_decref(o);
    return 0;
}

/* ---- the record of each step: a task of kind "ha" ---- */

void vo_ha_note(VoDaemon *d, const char *target, const char *target_id, json_t *result,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *message = NULL;
    if (vasprintf(&message, fmt, ap) < 0)
        abort();
    va_end(ap);
    log_info("ha: %s", message);
    json_object_set_new(result, "message", json_string(message));
    _cleanup_free_ char *key = vo_asprintf("ha/%s", target_id);
    VoTaskDesc desc = { .kind = "ha", .target = target, .target_id = target_id,
                        .keys = { key }, .unbounded = true };
    vo_tasks_note(d->tasks, &desc, message, result);
}

/* ---- one VM ---- */

/* Writes ha_state into the VM's document on the down host, once per text,
 * compared at its revision and with the host's live record still absent,
 * as it was when the round judged the host down: a host back meanwhile has
 * read the document at the revision it knows, and a note landing after
 * that would refuse every later save of the VM there (a stale revision)
 * until its vireod restarted. Not on a host online but fenced (src_fenced):
 * its vireod owns the document and compares its next save at the revision
 * it knows (read again when its fenced state ends), so a note written after
 * that read would refuse every later save of the VM there (start, retries,
 * give-up) until vireod restarted; the manager's task says it instead. */
static void say(VoDaemon *d, const VoHaCandidate *c, json_t *vm_doc, const char *text,
                bool src_fenced)
{
    const char *was = json_string_value(json_object_get(said, c->vm_id));
    if (was && !strcmp(was, text))
        return;
    json_object_set_new(said, c->vm_id, json_string(text));
    if (src_fenced)
        return;
    json_t *doc = json_deep_copy(vm_doc);
    json_object_set_new(doc, "ha_state", json_string(text));
    _cleanup_free_ char *value = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", c->host_id, c->vm_id);
    _cleanup_free_ char *live = vo_asprintf("cluster/hosts/%s", c->host_id);
    _cleanup_free_ char *point = vo_asprintf("ha_note@%s", c->name);
    const VoStoreCompare cmps[] = { { .key = key, .expected_rev = c->rev },
                                    { .key = live, .expected_rev = VO_REV_NEW } };
    const VoStoreOp op = { .kind = VO_STORE_PUT, .key = key, .value = value };
    size_t failed = 0;
    vo_test_hold(point); /* tests bring the host back here */
    int r = vo_store_txn(d->cluster_store, cmps, 2, &op, 1, NULL, &failed);
    if (r < 0) {
        json_object_del(said, c->vm_id); /* a next round notes it again if still so */
        log_warn("ha: cannot note on VM %s that it is %s: %s", c->name, text,
                 r == -EEXIST && failed == 1 ? "its host is back online" : strerror(-r));
    }
}

/* One call to host h; *unanswered (if given) is set when h did not answer
 * at all (no connection, no answer in time), as against an answer refusing. */
static int peer_json(VoDaemon *d, const VoClusterHost *h, const char *method, const char *path,
                     json_t *body, json_t **ret, char **ret_error, bool *unanswered)
{
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *headers[] = { "Content-Type: application/json", VO_FORWARDED_HEADER ": 1",
                              NULL };
    VoPeerResponse resp = { 0 };
    int r = vo_peer_request(&d->peer_tls, h->url, method, path, headers, text,
                            text ? strlen(text) : 0, PEER_TIMEOUT_MS, &resp);
    if (r < 0) {
        r = vo_error_set(ret_error, r, "host %s did not answer: %s", h->name,
                         resp.error ? resp.error : strerror(-r));
        if (unanswered)
            *unanswered = true;
    } else if (resp.status / 100 != 2) {
        _cleanup_free_ char *why = vo_peer_answer_text(&resp);
        r = vo_error_set(ret_error, -EIO, "host %s answered %d: %s", h->name, resp.status, why);
    } else if (ret)
        *ret = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
    vo_peer_response_clear(&resp);
    return r;
}

/* One look at the start task on the chosen host: 1 while it runs, 0 when
 * it succeeded, or the -errno of its failure. */
static int start_poll(VoDaemon *d, const VoClusterHost *h, bool local, const char *task_id,
                      char **ret_error)
{
    json_t *t = NULL;
    if (local)
        t = vo_tasks_get_json(d->tasks, task_id);
    else {
        _cleanup_free_ char *path = vo_asprintf("/v1/tasks/%s", task_id), *error = NULL;
        (void)peer_json(d, h, "GET", path, NULL, &t, &error, NULL);
    }
    const char *state = json_string_value(json_object_get(t, "state"));
    int r = 1;
    if (state && !strcmp(state, "succeeded"))
        r = 0;
    else if (state && !strcmp(state, "failed")) {
        const char *why = json_string_value(json_object_get(json_object_get(t, "error"),
                                                            "message"));
        r = vo_error_set(ret_error, -EIO, "its start on host %s failed: %s", h->name,
                         why ? why : "?");
    }
    json_decref(t);
    return r;
}

/* Registers the moved VM on h and starts it there: the start task's id.
 * *unanswered is set when h did not answer a call. */
static int adopt_and_start(VoDaemon *d, const VoClusterHost *h, bool local, const char *vm_id,
                           const char *name, char **ret_task, char **ret_error,
                           bool *unanswered)
{
    json_t *task = NULL;
    int r;
    /* Tests lose the start call's answer here, the VM registered there. */
    _cleanup_free_ char *point = vo_asprintf("ha_handover@%s", name);
    if (local) {
        r = vo_vm_adopt_moved(d, vm_id, ret_error);
        if (r == -EEXIST) { /* registered by an earlier hand-over */
            free(*ret_error);
            *ret_error = NULL;
            r = 0;
        }
        if (r < 0)
            return r;
        if ((r = vo_test_fault(point)) < 0)
            return vo_error_set(ret_error, r, "test fault: no answer from host %s", h->name);
        vo_hosts_refresh(d);
        _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
        if (!vm)
            return vo_error_set(ret_error, -ENOENT, "VM %s is not registered here", vm_id);
        r = vo_vm_start(d, vm, &task, ret_error);
    } else {
        json_t *body = json_pack("{s:s}", "vm", vm_id);
        r = peer_json(d, h, "POST", "/v1/migrations/moved", body, NULL, ret_error, unanswered);
        json_decref(body);
        if (r < 0)
            return r;
        if ((r = vo_test_fault(point)) < 0)
            return vo_error_set(ret_error, r, "test fault: no answer from host %s", h->name);
        _cleanup_free_ char *path = vo_asprintf("/v1/vms/%s/start", vm_id);
        json_t *answer = NULL, *empty = json_object();
        r = peer_json(d, h, "POST", path, empty, &answer, ret_error, unanswered);
        json_decref(empty);
        task = json_incref(json_object_get(answer, "task"));
        json_decref(answer);
    }
    if (r >= 0) {
        const char *id = json_string_value(json_object_get(task, "id"));
        if (id)
            *ret_task = vo_strdup(id);
        else
            r = vo_error_set(ret_error, -EIO, "host %s started no task", h->name);
    }
    json_decref(task);
    return r;
}

/* ---- hand-overs, off the round: one worker thread per chosen host ----
 * The peer calls of a hand-over (register, start, wait for the start task)
 * can each take PEER_TIMEOUT_MS on a host that does not answer (its vireod
 * stopped while its fence keeps its lease). Made in the round, they held up
 * the recovery of every other down host's VMs, up to 15 s per hand-over
 * due. The round now only decides and moves (the store); the hand-overs
 * to each host are queued to that host's own worker, which makes them in
 * order; when the host did not answer one, it is not asked for
 * UNANSWERED_REST_MS: the hand-overs to it meanwhile go back to handovers,
 * due after their backoff. */
#define UNANSWERED_REST_MS 10000

typedef struct {
    VoDaemon *d;
    char *host_id;
    /* Hand-overs not yet taken: {"vm","host","name","from","fenced","since",
     * "failed" (tries that failed so far), "again" (a follow-up, not the
     * first)}. */
    json_t *queue;
    pthread_t thread;
    bool running, joinable;
    int64_t unanswered_at; /* when the host last did not answer (its thread's) */
} Worker;

static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static Worker **workers;
static size_t n_workers;
/* {vm id: true}: queued or being handed over (then not in handovers). */
static json_t *inflight;

/* A VM handed over, its start task not ended yet. */
typedef struct {
    char *task_id;
    json_t *job;
    int64_t until; /* given up then (START_WAIT_MS) */
} Started;

/* Whether a VM's hand-over is queued or under way. */
static bool in_flight(const char *vm_id)
{
    pthread_mutex_lock(&workers_lock);
    bool r = json_object_get(inflight, vm_id) != NULL;
    pthread_mutex_unlock(&workers_lock);
    return r;
}

/* A job's hand-over ended: the round may queue that VM again. */
static void job_done(json_t *job)
{
    pthread_mutex_lock(&workers_lock);
    json_object_del(inflight, json_string_value(json_object_get(job, "vm")));
    pthread_mutex_unlock(&workers_lock);
}

/* A hand-over that failed: back to handovers (the round follows it),
 * unless the round put the VM there meanwhile: that entry is newer (the
 * chosen host went down during the hand-over and the VM moved on; the
 * failed one, on the host it left, would be dropped as gone from there,
 * and the VM never handed over to its new host). Under handovers_lock
 * from before the VM leaves inflight: the round sees it in one or the
 * other. */
static void job_put_back(VoDaemon *d, json_t *job, json_int_t failed)
{
    pthread_mutex_lock(&handovers_lock);
    job_done(job);
    if (handovers && vo_hosts_is_manager(d) &&
        !json_object_get(handovers, json_string_value(json_object_get(job, "vm"))))
        handover_add(json_string_value(json_object_get(job, "vm")),
                     json_string_value(json_object_get(job, "host")),
                     json_string_value(json_object_get(job, "name")),
                     json_string_value(json_object_get(job, "from")),
                     json_is_true(json_object_get(job, "fenced")),
                     json_integer_value(json_object_get(job, "since")), failed);
    pthread_mutex_unlock(&handovers_lock);
}

/* One hand-over's failure, recorded: a first one as a task of kind "ha", a
 * follow-up's in the log. */
static void job_failed(VoDaemon *d, const char *host_name, json_t *job, const char *error)
{
    const char *name = json_string_value(json_object_get(job, "name"));
    const char *from = json_string_value(json_object_get(job, "from"));
    json_int_t failed = json_integer_value(json_object_get(job, "failed"));
    if (json_is_true(json_object_get(job, "again"))) {
        log_warn("ha: vm %s: its hand-over to host %s failed again: %s", name, host_name,
                 error);
        job_put_back(d, job, failed + 1);
        return;
    }
    vo_ha_note(d, name, json_string_value(json_object_get(job, "vm")),
               json_pack("{s:s, s:s, s:s}", "vm", name, "host", host_name, "from", from),
               "vm %s moved to host %s (host %s %s) but not started: %s", name, host_name,
               from, json_is_true(json_object_get(job, "fenced")) ? "fenced" : "offline",
               error);
    job_put_back(d, job, 0);
}

/* Records how a start task ended: r (0, or its -errno with error). */
static void finish(VoDaemon *d, const VoClusterHost *h, Started *s, int r, const char *error)
{
    const char *name = json_string_value(json_object_get(s->job, "name"));
    const char *from = json_string_value(json_object_get(s->job, "from"));
    int64_t ms = vo_now_ms() - json_integer_value(json_object_get(s->job, "since"));
    if (r < 0) {
        vo_ha_note(d, name, json_string_value(json_object_get(s->job, "vm")),
             json_pack("{s:s, s:s, s:s}", "vm", name, "host", h->name, "from", from),
             "vm %s moved to host %s (host %s %s) but not started: %s", name, h->name, from,
             json_is_true(json_object_get(s->job, "fenced")) ? "fenced" : "offline", error);
        job_put_back(d, s->job, 0);
    } else {
        vo_ha_note(d, name, json_string_value(json_object_get(s->job, "vm")),
             json_pack("{s:s, s:s, s:s, s:I}", "vm", name, "host", h->name, "from", from,
                       "ms", (json_int_t)ms),
             "vm %s restarted on %s after %lld ms", name, h->name, (long long)ms);
        job_done(s->job);
    }
}

/* Moves the jobs queued to w to the end of jobs: whether there were any
 * (none taken once the workers stop). */
static bool worker_take_more(Worker *w, json_t *jobs)
{
    pthread_mutex_lock(&workers_lock);
    bool more = json_array_size(w->queue) && !atomic_load(&workers_stop);
    if (more) {
        json_array_extend(jobs, w->queue);
        json_array_clear(w->queue);
    }
    pthread_mutex_unlock(&workers_lock);
    return more;
}

/* One hand-over to w's host (h, looked up as hr): registered and started
 * there, the start task's id in *ret_task; a failure recorded and put back. */
static bool hand_over_one(Worker *w, const VoClusterHost *h, int hr, bool local, json_t *job,
                          char **ret_task)
{
    VoDaemon *d = w->d;
    const char *host_name = h->name ? h->name : w->host_id;
    const char *vm_id = json_string_value(json_object_get(job, "vm"));
    const char *name = json_string_value(json_object_get(job, "name"));
    _cleanup_free_ char *error = NULL;
    int r;
    if (atomic_load(&workers_stop) || !vo_hosts_is_manager(d)) {
        job_done(job); /* a next manager takes it up from its document */
        return false;
    }
    int64_t rest = w->unanswered_at ? w->unanswered_at + UNANSWERED_REST_MS - vo_now_ms() : 0;
    bool unanswered = false;
    if (rest > 0)
        r = vo_error_set(&error, -EHOSTUNREACH,
                         "not asked: host %s did not answer a call %lld s ago", host_name,
                         (long long)((UNANSWERED_REST_MS - rest) / 1000));
    else if (hr < 0 || (!local && !h->url))
        r = vo_error_set(&error, hr < 0 ? hr : -EHOSTUNREACH, "host %s cannot be reached (%s)",
                         host_name, hr < 0 ? strerror(-hr) : "no address");
    else
        r = adopt_and_start(d, h, local, vm_id, name, ret_task, &error, &unanswered);
    if (unanswered)
        w->unanswered_at = vo_now_ms();
    if (r < 0) {
        job_failed(d, host_name, job, error);
        return false;
    }
    if (json_is_true(json_object_get(job, "again")))
        log_info("ha: vm %s: handed over to host %s again", name, host_name);
    return true;
}

/* Hands the jobs over to w's host (register and start each), then follows
 * their start tasks together (they run in parallel there) until each
 * ended or was given up (START_WAIT_MS); the jobs queued meanwhile are
 * handed over as they come (the round moves a down host's VMs one after
 * the other), not after the wait: a start that never ends holds up no
 * other hand-over to the host for a minute. */
static void hand_over_batch(Worker *w, json_t *jobs)
{
    VoDaemon *d = w->d;
    VoClusterHost h = { 0 };
    int hr = vo_cluster_host_get(d, w->host_id, &h);
    bool local = hr >= 0 && !strcmp(h.id, d->host_id);
    Started *starts = NULL;
    size_t n_starts = 0, i = 0;
    for (;;) {
        for (; i < json_array_size(jobs) || worker_take_more(w, jobs); i++) {
            json_t *job = json_array_get(jobs, i);
            char *task_id = NULL;
            if (!hand_over_one(w, &h, hr, local, job, &task_id))
                continue;
            starts = realloc(starts, sizeof(*starts) * (n_starts + 1));
            if (!starts)
                abort();
            starts[n_starts++] = (Started){ .task_id = task_id, .job = job,
                                            .until = vo_now_ms() + START_WAIT_MS };
        }
        if (!n_starts)
            break;
        for (size_t k = 0; k < n_starts;) {
            _cleanup_free_ char *error = NULL;
            int r = start_poll(d, &h, local, starts[k].task_id, &error);
            if (r > 0 && (vo_now_ms() >= starts[k].until || atomic_load(&workers_stop)))
                r = vo_error_set(&error, -ETIMEDOUT,
                                 "its start on host %s did not end within %d s", h.name,
                                 START_WAIT_MS / 1000);
            if (r > 0) {
                k++;
                continue;
            }
            finish(d, &h, &starts[k], r, error);
            free(starts[k].task_id);
            starts[k] = starts[--n_starts];
        }
        if (n_starts) {
            struct timespec ts = { 0, 50 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    free(starts);
    vo_cluster_host_clear(&h);
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&workers_lock);
        json_t *jobs = w->queue;
        if (!json_array_size(jobs) || atomic_load(&workers_stop)) {
            w->running = false;
            pthread_mutex_unlock(&workers_lock);
            return NULL;
        }
        w->queue = json_array();
        pthread_mutex_unlock(&workers_lock);
        hand_over_batch(w, jobs);
        json_decref(jobs);
    }
}

/* Queues the hand-over of a VM moved to host_id to that host's worker (the
 * round's thread, handovers_lock held). When it is already under way, or
 * no thread could be made, it stays in handovers (due after its backoff). */
static void handover_start(VoDaemon *d, const char *vm_id, const char *host_id,
                           const char *name, const char *from, bool from_fenced,
                           int64_t since_ms, json_int_t failed, bool again)
{
    pthread_mutex_lock(&workers_lock);
    int r = json_object_get(inflight, vm_id) ? -EBUSY : 0;
    Worker *w = NULL;
    for (size_t i = 0; r == 0 && i < n_workers && !w; i++)
        if (!strcmp(workers[i]->host_id, host_id))
            w = workers[i];
    if (r == 0 && !w) {
        w = vo_malloc0(sizeof(*w));
        *w = (Worker){ .d = d, .host_id = vo_strdup(host_id), .queue = json_array() };
        workers = realloc(workers, sizeof(*workers) * (n_workers + 1));
        if (!workers)
            abort();
        workers[n_workers++] = w;
    }
    if (r == 0 && !w->running) {
        if (w->joinable) /* it has ended (not running): joined at once */
            pthread_join(w->thread, NULL);
        w->joinable = false;
        r = -pthread_create(&w->thread, NULL, worker_main, w);
        w->joinable = w->running = r == 0;
    }
    if (r == 0) {
        json_array_append_new(w->queue,
                              json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:b}", "vm", vm_id,
                                        "host", host_id, "name", name, "from", from, "fenced",
                                        from_fenced, "since", (json_int_t)since_ms, "failed",
                                        failed, "again", again));
        json_object_set_new(inflight, vm_id, json_true());
    }
    pthread_mutex_unlock(&workers_lock);
    if (r < 0) {
        if (r != -EBUSY)
            log_warn("ha: vm %s: no thread to hand it over to host %s: %s", name, host_id,
                     strerror(-r));
        handover_add(vm_id, host_id, name, from, from_fenced, since_ms, failed);
    }
}

/* Ends the workers (vo_ha_recover_stop, the round's thread ended): each
 * finishes the call under way. */
static void workers_end(void)
{
    atomic_store(&workers_stop, true);
    for (size_t i = 0; i < n_workers; i++) {
        if (workers[i]->joinable)
            pthread_join(workers[i]->thread, NULL);
        json_decref(workers[i]->queue);
        free(workers[i]->host_id);
        free(workers[i]);
    }
    free(workers);
    workers = NULL;
    n_workers = 0;
    json_decref(inflight);
    inflight = NULL;
}

/* Places and moves one VM, and queues its hand-over to the chosen host's
 * worker: true when it moved. src_fenced: its host is online but fenced,
 * its live record at revision src_record_rev. */
static bool recover_one(VoDaemon *d, const VoHaCandidate *c, json_t *vm_doc,
                        const char *down_name, int64_t since_ms, bool src_fenced,
                        int64_t src_record_rev)
{
    int64_t now = vo_wall_ms(), next = 0;
    const char *away = src_fenced ? "fenced" : "offline";
    json_t *restarts = json_object_get(vm_doc, VO_HA_RESTARTS_FIELD);
    if (!vo_ha_restarts_allow(restarts, now, &next)) {
        _cleanup_free_ char *text = vo_asprintf(
            "restart limit: restarted %d times within %d minutes; left where it was (host %s, "
            "%s) until %lld s from now", VO_HA_MAX_RESTARTS, VO_HA_WINDOW_MS / 60000,
            down_name, away, (long long)((next - now + 999) / 1000));
        const char *was = json_string_value(json_object_get(said, c->vm_id));
        if (!was || strncmp(was, "restart limit", 13))
            vo_ha_note(d, c->name, c->vm_id, json_object(), "vm %s: %s", c->name, text);
        say(d, c, vm_doc, text, src_fenced);
        return false;
    }
    json_t *doc = NULL;
    _cleanup_free_ char *error = NULL;
    const char *group = json_string_value(json_object_get(vm_doc, "ha_group"));
    int r = vo_migrate_target_place_group(d, c->vm_id, c->host_id, group, &doc, &error);
    const char *to = json_string_value(json_object_get(json_object_get(doc, "host"), "id"));
    if (r < 0 || !to) {
        _cleanup_free_ char *text = vo_asprintf("unplaceable: %s", error ? error : "no host");
        const char *was = json_string_value(json_object_get(said, c->vm_id));
        if (!was || strcmp(was, text))
            vo_ha_note(d, c->name, c->vm_id, json_object(), "vm %s (host %s %s): %s", c->name,
                 down_name, away, text);
        say(d, c, vm_doc, text, src_fenced);
        json_decref(doc);
        return false;
    }
    VoClusterHost h = { 0 };
    r = vo_cluster_host_get(d, to, &h);
    json_decref(doc);
    bool local = r >= 0 && !strcmp(h.id, d->host_id);
    if (r < 0 || (!local && !h.url)) {
        log_warn("ha: vm %s: the chosen host %s cannot be reached (no address)", c->name, to);
        vo_cluster_host_clear(&h);
        return false;
    }
    const char *gone = src_fenced ? "fenced itself" : "went offline";
    _cleanup_free_ char *reason = vo_asprintf("host %s %s", down_name, gone);
    _cleanup_free_ char *state = vo_asprintf("restarted on %s (host %s %s)", h.name, down_name,
                                             gone);
    json_t *counted = vo_ha_restarts_add(restarts, now); /* in the move's transaction */
    VoVmMoveDown down = { .exit_reason = reason, .ha_state = state, .ha_restarts = counted,
                          .src_fenced = src_fenced, .src_record_rev = src_record_rev };
    int64_t new_rev = 0;
    _cleanup_free_ char *point = vo_asprintf("ha_move@%s", c->name);
    vo_test_hold(point); /* tests end the source's fenced state here */
    r = vo_vm_move_from_down_txn(d->cluster_store, c->vm_id, c->host_id, h.id, c->rev, &down,
                                 &new_rev, &error);
    json_decref(counted);
    if (r < 0) { /* changed, or the host came back: the next round looks again */
        log_warn("ha: vm %s not moved to host %s: %s", c->name, h.name, error);
        vo_cluster_host_clear(&h);
        return false;
    }
    json_object_del(said, c->vm_id);
    handover_start(d, c->vm_id, h.id, c->name, down_name, src_fenced, since_ms, 0, false);
    vo_cluster_host_clear(&h);
    return true;
}

/* ---- hand-overs that failed ---- */

/* Whether a VM document on a host online says the VM waits there for a
 * start nobody made: HA, not running, and landed there by a recovery and
 * not started since (its host's first save drops "ha_landed"), or its HA
 * start failed there (marked: that host follows it, unless it fenced
 * itself). */
static bool handover_waiting(json_t *doc)
{
    const char *state = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                          "state"));
    bool landed = json_is_true(json_object_get(doc, "ha_landed"));
    bool marked = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    return json_is_true(json_object_get(doc, "ha")) && state &&
           (!strcmp(state, "crashed") || !strcmp(state, "stopped")) && (landed || marked);
}

/* A new manager's handovers, from the VM documents of the hosts online:
 * those landed there and waiting (handover_waiting). An earlier manager
 * that died or lost the role after a move, before or while handing the VM
 * over, left it there, unstarted and followed by nobody. (One marked
 * only, its HA start failed there, is its host's retries': not taken up,
 * lest one no host follows, moved by a user say, be read every 2 s.)
 * false when a host's documents could not be read (tried again at the
 * next round). */
static bool seed_handovers(VoDaemon *d, json_t *records)
{
    const char *host_id;
    json_t *rec;
    json_object_foreach(records, host_id, rec) {
        json_t *docs = json_object();
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/vms/", host_id);
        int r = vo_store_list(d->cluster_store, prefix, collect, docs);
        const char *vm_id;
        json_t *e;
        json_object_foreach(docs, vm_id, e) {
            json_t *doc = json_object_get(e, "doc");
            if (r < 0 || json_object_get(handovers, vm_id) || in_flight(vm_id) ||
                !handover_waiting(doc) ||
                !json_is_true(json_object_get(doc, "ha_landed")))
                continue;
            const char *name = json_string_value(json_object_get(json_object_get(doc, "spec"),
                                                                 "name"));
            /* Its move's exit_reason: "host NAME went offline" (or "fenced itself"). */
            const char *why = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                                "exit_reason"));
            char from[256] = "?";
            if (why)
                (void)sscanf(why, "host %255s", from);
            const char *host = json_string_value(json_object_get(json_object_get(rec, "doc"),
                                                                 "name"));
            log_info("ha: vm %s waits unstarted on host %s: followed by this manager",
                     name ? name : vm_id, host ? host : host_id);
            handover_add(vm_id, host_id, name ? name : vm_id, from,
                         why && strstr(why, "fenced itself"), vo_now_ms(), 0);
        }
        json_decref(docs);
        if (r < 0)
            return false;
    }
    return true;
}

/* One VM of handovers, due: what its document on its host says now
 * decides (the round's thread, handovers_lock held). */
static void follow_handover(VoDaemon *d, const char *vm_id, json_t *e, json_t *records)
{
    const char *host_id = json_string_value(json_object_get(e, "host"));
    const char *name = json_string_value(json_object_get(e, "name"));
    int64_t since = json_integer_value(json_object_get(e, "since"));
    json_int_t failed = json_integer_value(json_object_get(e, "failed"));
    _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", host_id, vm_id), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->cluster_store, key, &text, &rev);
    if (r == -ENOENT) { /* deleted, or moved on */
        json_object_del(handovers, vm_id);
        return;
    }
    json_t *rec = json_object_get(records, host_id);
    json_t *doc = r < 0 ? NULL : json_loads(text, 0, NULL);
    bool marked = json_is_true(json_object_get(doc, VO_HA_START_FAILED_FIELD));
    bool waiting = handover_waiting(doc);
    const char *rec_state = json_string_value(json_object_get(json_object_get(rec, "doc"),
                                                              "state"));
    bool fenced = rec_state && !strcmp(rec_state, "fenced");
    /* Followed while it waits on a host online (its host follows a marked
     * one itself, but not while it is fenced); ends once it started, was
     * given up, deleted or moved, or its host went down (the down host's
     * recovery then takes it: vo_ha_wanted). */
    bool again = r < 0 || (waiting && rec);
    bool placed_again = r >= 0 && waiting && rec && fenced;
    if (placed_again) {
        /* It starts nothing until it holds a new lease: placed again. */
        const char *host_name = json_string_value(json_object_get(json_object_get(rec, "doc"),
                                                                  "name"));
        VoHaCandidate c = { .vm_id = vm_id, .host_id = host_id, .name = name, .rev = rev,
                            .priority = vo_ha_priority(doc) };
        log_info("ha: vm %s: its host %s fenced itself before starting it: placed again", name,
                 host_name ? host_name : host_id);
        json_incref(e);
        json_object_del(handovers, vm_id); /* recover_one hands it over to its new host */
        again = !recover_one(d, &c, doc, host_name ? host_name : host_id, since, true,
                             json_integer_value(json_object_get(rec, "rev"))) &&
                !json_object_get(handovers, vm_id);
        if (again)
            json_object_set(handovers, vm_id, e);
        json_decref(e);
    } else if (r >= 0 && again && !marked) {
        /* Still landed and not started on a host online: handed over again
         * (the VM's registration there is idempotent), by its host's worker. */
        json_object_del(handovers, vm_id); /* (e is the caller's too) */
        handover_start(d, vm_id, host_id, name, json_string_value(json_object_get(e, "from")),
                       json_is_true(json_object_get(e, "fenced")), since, failed, true);
        json_decref(doc);
        return;
    }
    json_decref(doc);
    int64_t wait = failed > 5 ? HANDOVER_RETRY_MAX_MS : (int64_t)HANDOVER_RETRY_MS << failed;
    if (again) /* e is in handovers */
        json_object_set_new(e, "due", json_integer(vo_now_ms() + (wait < HANDOVER_RETRY_MAX_MS
                                                                      ? wait
                                                                      : HANDOVER_RETRY_MAX_MS)));
    else if (!placed_again) /* (placed again: its entry is recover_one's, if any) */
        json_object_del(handovers, vm_id);
}

/* The due entries of handovers. */
static void follow_handovers(VoDaemon *d, json_t *records)
{
    json_t *ids = json_array();
    const char *vm_id;
    json_t *e;
    json_object_foreach(handovers, vm_id, e)
        if (json_integer_value(json_object_get(e, "due")) <= vo_now_ms())
            json_array_append_new(ids, json_string(vm_id));
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        if (vo_periodic_stopping(&runner) || !vo_hosts_is_manager(d))
            break;
        e = json_object_get(handovers, json_string_value(id));
        json_incref(e);
        if (e)
            follow_handover(d, json_string_value(id), e, records);
        json_decref(e);
    }
    json_decref(ids);
}

/* ---- one round ---- */

typedef struct {
    json_t *docs; /* {vm id: {"doc","rev"}} of one down host */
    char *host_id, *host_name;
    int64_t since;
} Down;

static void round_once(VoDaemon *d)
{
    /* The manager's snapshot (watched, in memory): no store read 4 times
     * a second. */
    json_t *members = NULL, *records = NULL;
    if (vo_cluster_hosts_read(d, &members, &records) < 0)
        return;
    int64_t now = vo_now_ms();
    /* Hosts back online are no longer down. */
    const char *id;
    json_t *m;
    void *tmp;
    json_object_foreach_safe(down_since, tmp, id, m)
        if (json_object_get(records, id) || !json_object_get(members, id))
            json_object_del(down_since, id);
    json_object_foreach(records, id, m)
        json_object_set_new(seen_online, id, json_true());
    Down *downs = vo_malloc0(sizeof(Down) * (json_object_size(members) + 1));
    size_t n_downs = 0, n_cands = 0;
    json_object_foreach(members, id, m) {
        if (json_object_get(records, id) || !strcmp(id, d->host_id))
            continue;
        const char *name = json_string_value(json_object_get(json_object_get(m, "doc"),
                                                             "name"));
        if (!json_object_get(down_since, id))
            json_object_set_new(down_since, id, json_pack("{s:I, s:b}", "since",
                                                          (json_int_t)now, "said", false));
        json_t *ds = json_object_get(down_since, id);
        Down *dn = &downs[n_downs];
        *dn = (Down){ .docs = json_object(), .host_id = vo_strdup(id),
                      .host_name = vo_strdup(name ? name : id),
                      .since = json_integer_value(json_object_get(ds, "since")) };
        _cleanup_free_ char *prefix = vo_asprintf("h/%s/vms/", id);
        if (vo_store_list(d->cluster_store, prefix, collect, dn->docs) < 0) {
            json_decref(dn->docs);
            free(dn->host_id);
            free(dn->host_name);
            continue;
        }
        bool has_ha = false;
        const char *vm_id;
        json_t *e;
        json_object_foreach(dn->docs, vm_id, e)
            has_ha = has_ha || vo_ha_wanted(json_object_get(e, "doc"));
        if (!json_is_true(json_object_get(ds, "said")) &&
            (has_ha || json_object_get(seen_online, id))) {
            json_object_set_new(ds, "said", json_true());
            vo_ha_note(d, dn->host_name, id, json_pack("{s:s}", "host", dn->host_name),
                 "host %s offline", dn->host_name);
        }
        n_cands += json_object_size(dn->docs);
        n_downs++;
    }
    VoHaCandidate *cands = vo_malloc0(sizeof(*cands) * (n_cands + 1));
    size_t n = 0;
    for (size_t i = 0; i < n_downs; i++) {
        const char *vm_id;
        json_t *e;
        json_object_foreach(downs[i].docs, vm_id, e) {
            json_t *doc = json_object_get(e, "doc");
            if (!vo_ha_wanted(doc))
                continue;
            cands[n++] = (VoHaCandidate){
                .vm_id = vm_id, .host_id = downs[i].host_id, .priority = vo_ha_priority(doc),
                .name = json_string_value(json_object_get(json_object_get(doc, "spec"), "name")),
                .rev = json_integer_value(json_object_get(e, "rev")) };
        }
    }
    vo_ha_order(cands, n);
    if (!handovers_seeded)
        handovers_seeded = seed_handovers(d, records);
    /* Moved one after the other (in priority order), each handed over by
     * its new host's worker (in that order there; the start tasks waited
     * for together): no peer call here. */
    for (size_t i = 0; i < n && !vo_periodic_stopping(&runner) && vo_hosts_is_manager(d);
         i++) {
        const Down *dn = NULL;
        for (size_t k = 0; k < n_downs && !dn; k++)
            if (!strcmp(downs[k].host_id, cands[i].host_id))
                dn = &downs[k];
        json_t *doc = json_object_get(json_object_get(dn->docs, cands[i].vm_id), "doc");
        if (!cands[i].name)
            cands[i].name = cands[i].vm_id;
        (void)recover_one(d, &cands[i], doc, dn->host_name, dn->since, false, 0);
    }
    follow_handovers(d, records);
    free(cands);
    for (size_t i = 0; i < n_downs; i++) {
        json_decref(downs[i].docs);
        free(downs[i].host_id);
        free(downs[i].host_name);
    }
    free(downs);
    json_decref(members);
    json_decref(records);
}

/* Whether this host was the manager at the last round (the runner's
 * thread only). */
static bool was_manager;

static void recover_round(void *userdata)
{
    VoDaemon *d = userdata;
    bool manager = vo_hosts_is_manager(d);
    pthread_mutex_lock(&handovers_lock);
    if (manager && !was_manager)
        log_info("ha: this host is the manager: it restarts the HA VMs of hosts that go "
                 "offline");
    if (!manager && was_manager) { /* a new manager starts afresh */
        json_object_clear(down_since);
        json_object_clear(seen_online);
        json_object_clear(said);
        json_object_clear(handovers);
        handovers_seeded = false;
    }
    was_manager = manager;
    if (manager)
        round_once(d);
    pthread_mutex_unlock(&handovers_lock);
}

int vo_ha_recover_start(VoDaemon *d)
{
    if (!d->cluster || !d->cluster_store || vo_periodic_started(&runner))
        return 0;
    down_since = json_object();
    seen_online = json_object();
    said = json_object();
    handovers = json_object();
    inflight = json_object();
    atomic_store(&workers_stop, false);
    handovers_seeded = false;
    was_manager = false;
    int r = vo_periodic_start(&runner, recover_round, d, VO_HA_RECOVER_PERIOD_MS);
    if (r < 0) {
        json_decref(down_since);
        json_decref(seen_online);
        json_decref(said);
        json_decref(handovers);
        json_decref(inflight);
        down_since = seen_online = said = handovers = inflight = NULL;
    }
    return r;
}

void vo_ha_recover_stop(VoDaemon *d)
{
    (void)d;
    if (!vo_periodic_stop(&runner))
        return;
    workers_end();
    json_decref(down_since);
    json_decref(seen_online);
    json_decref(said);
    json_decref(handovers);
    down_since = seen_online = said = handovers = NULL;
}
