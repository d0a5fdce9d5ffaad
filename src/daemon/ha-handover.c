/* ha-handover.c: the HA hand-overs (ha-recover.h): a VM the round moved
 * off a down host is registered and started on its new host by one of that
 * host's own worker threads (peer calls, or this vireod's own calls when
 * the new host is this one), which then follows the start task. A
 * hand-over that failed goes back to the round's table of failed ones
 * (ha-handover-follow.c). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "api/forward.h"
#include "cluster/peer-client.h"
#include "daemon/cluster-view.h"
#include "daemon/ha-recover-internal.h"
#include "daemon/ha-recover.h"
#include "daemon/hosts.h"
#include "daemon/vm-internal.h"
#include "util/test-hold.h"
#include "util/util.h"

#define PEER_TIMEOUT_MS 15000
/* How long a recovery waits for the start task on the chosen host. */
#define START_WAIT_MS 60000

/* Set while vo_ha_recover_stop waits for the hand-over workers. */
static atomic_bool workers_stop;

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

/* One look at the start task on the chosen host: 1 while it runs (or h
 * did not answer: *unanswered set), 0 when it succeeded, or the -errno of
 * its failure. */
static int start_poll(VoDaemon *d, const VoClusterHost *h, bool local, const char *task_id,
                      char **ret_error, bool *unanswered)
{
    json_t *t = NULL;
    if (local)
        t = vo_tasks_get_json(d->tasks, task_id);
    else {
        _cleanup_free_ char *path = vo_asprintf("/v1/tasks/%s", task_id), *error = NULL;
        (void)peer_json(d, h, "GET", path, NULL, &t, &error, unanswered);
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

/* ---- hand-overs, off the round: worker threads per chosen host ----
 * The peer calls of a hand-over (register, start, wait for the start task)
 * can each take PEER_TIMEOUT_MS on a host that does not answer (its vireod
 * stopped while its fence keeps its lease). Made in the round, they held up
 * the recovery of every other down host's VMs, up to 15 s per hand-over
 * due. The round now only decides and moves (the store); the hand-overs
 * to each host are queued to that host's own workers, up to
 * WORKERS_PER_HOST of them: a hand-over goes to one not in a call, so a
 * call that hangs (that host's answer to one VM's start) holds up no other
 * VM's hand-over to the same host (with one worker per host, each waited
 * out the hung call's timeout behind it). When the host did not answer a
 * call and answered none since that call began, it is not asked for
 * UNANSWERED_REST_MS: the hand-overs to it meanwhile go back to handovers,
 * due after their backoff. */
#define UNANSWERED_REST_MS 10000
#define WORKERS_PER_HOST 4

typedef struct {
    VoDaemon *d;
    char *host_id;
    /* Hand-overs not yet taken: {"vm","host","name","from","fenced","since",
     * "failed" (tries that failed so far), "again" (a follow-up, not the
     * first)}. */
    json_t *queue;
    pthread_t thread;
    bool running, joinable;
    bool busy; /* a hand-over taken and not yet made, or in a call (workers_lock) */
} Worker;

/* What the workers of one host know of its answers (workers_lock). */
typedef struct {
    char *host_id;
    int64_t unanswered_at; /* when a call to it last went unanswered (it then rests) */
    int64_t answered_at;   /* when it last answered a call */
} Target;

static pthread_mutex_t workers_lock = PTHREAD_MUTEX_INITIALIZER;
static Worker **workers;
static size_t n_workers;
static Target **targets;
static size_t n_targets;
/* {vm id: true}: queued or being handed over (then not in handovers). */
static json_t *inflight;

/* host_id's Target, made when missing (workers_lock held). */
static Target *target_of(const char *host_id)
{
    for (size_t i = 0; i < n_targets; i++)
        if (!strcmp(targets[i]->host_id, host_id))
            return targets[i];
    Target *t = vo_malloc0(sizeof(*t));
    t->host_id = vo_strdup(host_id);
    targets = realloc(targets, sizeof(*targets) * (n_targets + 1));
    if (!targets)
        abort();
    targets[n_targets++] = t;
    return t;
}

/* How long w's host still rests after a call it did not answer (ms; <= 0:
 * it may be asked). */
static int64_t target_rest_ms(const Worker *w)
{
    pthread_mutex_lock(&workers_lock);
    int64_t at = target_of(w->host_id)->unanswered_at;
    pthread_mutex_unlock(&workers_lock);
    return at ? at + UNANSWERED_REST_MS - vo_now_ms() : 0;
}

/* Whether w is busy: taken a hand-over it has not yet made, or in a call
 * to its host (a new hand-over goes to another worker then). */
static void worker_busy(Worker *w, bool busy)
{
    pthread_mutex_lock(&workers_lock);
    w->busy = busy;
    pthread_mutex_unlock(&workers_lock);
}

/* A call of w's, begun at began_ms, ended: unanswered, or answered (done or
 * refused). An unanswered call makes the host rest unless another call got
 * an answer since this one began (the host answers; this call hung). */
static void target_note(Worker *w, int64_t began_ms, bool unanswered)
{
    pthread_mutex_lock(&workers_lock);
    Target *t = target_of(w->host_id);
    int64_t now = vo_now_ms();
    if (!unanswered)
        t->answered_at = now;
    else if (t->answered_at < began_ms)
        t->unanswered_at = now;
    pthread_mutex_unlock(&workers_lock);
}

/* A VM handed over, its start task not ended yet. */
typedef struct {
    char *task_id;
    json_t *job;
    int64_t until; /* given up then (START_WAIT_MS) */
} Started;

bool vo_ha_handover_in_flight(const char *vm_id)
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
    vo_ha_handovers_lock();
    job_done(job);
    vo_ha_handovers_put_back(d, json_string_value(json_object_get(job, "vm")),
                             json_string_value(json_object_get(job, "host")),
                             json_string_value(json_object_get(job, "name")),
                             json_string_value(json_object_get(job, "from")),
                             json_is_true(json_object_get(job, "fenced")),
                             json_integer_value(json_object_get(job, "since")), failed);
    vo_ha_handovers_unlock();
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

/* Moves the first hand-over queued to w to the end of jobs, w busy with
 * it: whether there was one (none taken once the workers stop). One at a
 * time: the rest stay queued, where the round sees w busy. */
static bool worker_take_one(Worker *w, json_t *jobs)
{
    pthread_mutex_lock(&workers_lock);
    bool more = json_array_size(w->queue) && !atomic_load(&workers_stop);
    if (more) {
        json_array_append(jobs, json_array_get(w->queue, 0));
        json_array_remove(w->queue, 0);
        w->busy = true;
    }
    pthread_mutex_unlock(&workers_lock);
    return more;
}

/* Whether a hand-over waits in w's queue (to be taken: not once the
 * workers stop). */
static bool worker_has_queued(Worker *w)
{
    pthread_mutex_lock(&workers_lock);
    bool queued = json_array_size(w->queue) > 0 && !atomic_load(&workers_stop);
    pthread_mutex_unlock(&workers_lock);
    return queued;
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
        worker_busy(w, false);
        job_done(job); /* a next manager takes it up from its document */
        return false;
    }
    int64_t rest = target_rest_ms(w);
    bool unanswered = false;
    if (rest > 0)
        r = vo_error_set(&error, -EHOSTUNREACH,
                         "not asked: host %s did not answer a call %lld s ago", host_name,
                         (long long)((UNANSWERED_REST_MS - rest) / 1000));
    else if (hr < 0 || (!local && !h->url))
        r = vo_error_set(&error, hr < 0 ? hr : -EHOSTUNREACH, "host %s cannot be reached (%s)",
                         host_name, hr < 0 ? strerror(-hr) : "no address");
    else {
        int64_t began = vo_now_ms();
        r = adopt_and_start(d, h, local, vm_id, name, ret_task, &error, &unanswered);
        target_note(w, began, unanswered);
    }
    worker_busy(w, false);
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
        for (; i < json_array_size(jobs) || worker_take_one(w, jobs); i++) {
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
        /* A hand-over queued meanwhile first: a poll may wait out the
         * peer timeout. */
        for (size_t k = 0; k < n_starts && !worker_has_queued(w);) {
            if (atomic_load(&workers_stop)) {
                /* vireod stops: no call (each may wait out the peer
                 * timeout, and the stop waits for this worker) and no
                 * note (the start did not fail: the chosen host follows
                 * it itself, ha-retry.h). */
                job_done(starts[k].job);
                free(starts[k].task_id);
                starts[k] = starts[--n_starts];
                continue;
            }
            _cleanup_free_ char *error = NULL;
            int64_t began = vo_now_ms();
            bool unanswered = false;
            worker_busy(w, true);
            int r = start_poll(d, &h, local, starts[k].task_id, &error, &unanswered);
            worker_busy(w, false);
            target_note(w, began, unanswered);
            if (r > 0 && vo_now_ms() >= starts[k].until)
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
        if (!json_array_size(w->queue) || atomic_load(&workers_stop)) {
            w->running = false;
            pthread_mutex_unlock(&workers_lock);
            return NULL;
        }
        pthread_mutex_unlock(&workers_lock);
        json_t *jobs = json_array();
        hand_over_batch(w, jobs);
        json_decref(jobs);
    }
}

/* The worker of host_id a new hand-over goes to (workers_lock held): one
 * that is not busy and has nothing queued, else a new one while the host
 * has fewer than WORKERS_PER_HOST, else the one with the fewest queued. */
static Worker *worker_for(VoDaemon *d, const char *host_id)
{
    Worker *least = NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_workers; i++) {
        Worker *w = workers[i];
        if (strcmp(w->host_id, host_id))
            continue;
        n++;
        if (!w->busy && !json_array_size(w->queue))
            return w;
        if (!least || json_array_size(w->queue) < json_array_size(least->queue))
            least = w;
    }
    if (least && n >= WORKERS_PER_HOST)
        return least;
    Worker *w = vo_malloc0(sizeof(*w));
    *w = (Worker){ .d = d, .host_id = vo_strdup(host_id), .queue = json_array() };
    workers = realloc(workers, sizeof(*workers) * (n_workers + 1));
    if (!workers)
        abort();
    workers[n_workers++] = w;
    return w;
}

void vo_ha_handover_start(VoDaemon *d, const char *vm_id, const char *host_id,
                          const char *name, const char *from, bool from_fenced,
                          int64_t since_ms, json_int_t failed, bool again)
{
    pthread_mutex_lock(&workers_lock);
    int r = json_object_get(inflight, vm_id) ? -EBUSY : 0;
    Worker *w = r == 0 ? worker_for(d, host_id) : NULL;
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
        vo_ha_handovers_add(vm_id, host_id, name, from, from_fenced, since_ms, failed);
    }
}

void vo_ha_handover_workers_end(void)
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
    for (size_t i = 0; i < n_targets; i++) {
        free(targets[i]->host_id);
        free(targets[i]);
    }
    free(targets);
    targets = NULL;
    n_targets = 0;
    json_decref(inflight);
    inflight = NULL;
}

void vo_ha_handover_workers_begin(void)
{
    inflight = json_object();
    atomic_store(&workers_stop, false);
}
