/* qemu-mirror.c: live migration of local disks with QEMU, the driver's
 * mirror_* ops (see driver.h and docs/internals.md, "Live migration of
 * local disks"). Libvirt's order: the destination (started paused with
 * -incoming defer) turns on late-block-activate, starts an NBD server and
 * exports each disk writable; the source opens each export as an NBD node
 * and mirrors its disk into it (blockdev-mirror, copy mode write-blocking);
 * once every job is ready the memory migration runs with
 * pause-before-switchover; at pre-switchover the ready mirrors are
 * completed (block-job-cancel of a ready mirror completes it, in sync) and
 * the migration continues (migrate-continue; with post-copy the daemon
 * continues it once the store gave the VM away, so every write after the
 * switch-over lands on the destination's disks); the destination's NBD server
 * stops when it takes over. A cancel or failure cancels the jobs (the
 * guest paused meanwhile: abort_mirror) and drops the NBD nodes: the source
 * runs on with its own disks. Every QMP
 * round-trip runs under the VM's qmp_lock. */
#include "qemu/qemu-mirror.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-instance.h"
#include "qemu/qemu-migrate.h"
#include "qemu/qemu-tls.h"
#include "util/util.h"

#define MIRROR_WAIT_MS 60000 /* for jobs to conclude after a cancel */

struct VoQemuMirror {
    unsigned *slots; /* the disks mirrored, in the plan's order */
    size_t n;
    bool completed; /* the switch-over completed every job */
};

void vo_qemu_mirror_free(VoQemuMirror *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

static char *job_id(unsigned slot) { return vo_asprintf("vireo-mirror-disk%u", slot); }
static char *nbd_node(unsigned slot) { return vo_asprintf("vireo-nbd-disk%u", slot); }

/* The block node a plan's slot names: a disk's, or the NVRAM flash's. */
static void mirror_node(unsigned slot, char ret[32])
{
    if (slot == VO_HV_NVRAM_SLOT)
        snprintf(ret, 32, "%s", VO_QEMU_FW_VARS_NODE);
    else
        vo_qemu_disk_node(slot, ret);
}

/* What a plan's slot is, for messages: "disk N", or the NVRAM (never
 * "disk 4000", which the VM has not). */
static void mirror_what(unsigned slot, char ret[32])
{
    if (slot == VO_HV_NVRAM_SLOT)
        snprintf(ret, 32, "the UEFI NVRAM");
    else
        snprintf(ret, 32, "disk %u", slot);
}

static char *export_name(const VoHvMirrorDisk *disk)
{
    return disk->export ? vo_strdup(disk->export) : vo_asprintf("disk%u", disk->slot);
}

/* plan->uri as a QAPI SocketAddress: flat (blockdev-add's "server") or
 * legacy ({type, data}: nbd-server-start's "addr"). */
static int socket_address(const char *uri, bool legacy, json_t **ret, char **ret_error)
{
    int r = vo_qemu_migration_uri_check(uri, ret_error);
    if (r < 0)
        return r;
    json_t *data;
    const char *type;
    if (!strncmp(uri, "unix:", 5)) {
        type = "unix";
        data = json_pack("{s:s}", "path", uri + 5);
    } else {
        const char *host = uri + 4, *colon = strrchr(host, ':');
        _cleanup_free_ char *h = strndup(host, (size_t)(colon - host));
        if (!h)
            abort();
        size_t len = strlen(h);
        if (len >= 2 && h[0] == '[' && h[len - 1] == ']') { /* [IPv6] */
            memmove(h, h + 1, len - 2);
            h[len - 2] = 0;
        }
        type = "inet";
        data = json_pack("{s:s, s:s}", "host", h, "port", colon + 1);
    }
    if (legacy) {
        *ret = json_pack("{s:s, s:o}", "type", type, "data", data);
    } else {
        json_object_set_new(data, "type", json_string(type));
        *ret = data;
    }
    return 0;
}

static int plan_check(const VoHvMirrorPlan *plan, char **ret_error)
{
    if (!plan || !plan->n_disks)
        return vo_error_set(ret_error, -EINVAL, "a disk mirror needs at least one disk");
    json_t *addr = NULL;
    int r = socket_address(plan->uri, false, &addr, ret_error);
    json_decref(addr);
    return r;
}

int vo_qemu_mirror_export(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error)
{
    json_t *addr = NULL;
    int r = plan_check(plan, ret_error);
    if (r >= 0)
        r = vo_qemu_tls_check(plan->tls, plan->uri, false, ret_error);
    if (r < 0 || (r = socket_address(plan->uri, true, &addr, ret_error)) < 0)
        return r;
    /* The destination's disks are activated only when it runs (cont), not
     * when the memory stream ends. */
    json_t *caps = json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability",
                             "late-block-activate", "state", 1);
    json_t *start = json_pack("{s:o}", "addr", addr);
    pthread_mutex_lock(&vm->qmp_lock);
    r = vo_qemu_command(vm, "migrate-set-capabilities", caps, NULL, ret_error);
    if (r >= 0) /* over TLS: the server only takes clients with a cluster certificate */
        r = vo_qemu_tls_nbd(vm, plan->tls, true, start, ret_error);
    if (r >= 0)
        r = vo_qemu_command(vm, "nbd-server-start", start, NULL, ret_error);
    bool started = r >= 0;
    for (size_t i = 0; r >= 0 && i < plan->n_disks; i++) {
        char node[32];
        mirror_node(plan->disks[i].slot, node);
        _cleanup_free_ char *name = export_name(&plan->disks[i]);
        _cleanup_free_ char *id = vo_asprintf("vireo-export-disk%u", plan->disks[i].slot);
        json_t *args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", id,
                                 "node-name", node, "name", name, "writable", 1);
        r = vo_qemu_command(vm, "block-export-add", args, NULL, ret_error);
        json_decref(args);
    }
    /* Stopping the server removes the exports made so far. */
    if (r < 0 && started)
        (void)vo_qemu_command(vm, "nbd-server-stop", NULL, NULL, NULL);
    vm->nbd_serving = r >= 0;
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(caps);
    json_decref(start);
    return r;
}

/* Finds job id in a query-jobs answer. */
static json_t *find_job(json_t *jobs, const char *id)
{
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
        if (!strcmp(json_string_value(json_object_get(job, "id")) ?: "", id))
            return job;
    return NULL;
}

static const char *job_status(json_t *job)
{
    return json_string_value(json_object_get(job, "status")) ?: "";
}

/* Waits (bounded) until every job of m is concluded (or gone); the first
 * error a job concluded with goes to *ret_error. Caller holds qmp_lock. */
static int wait_concluded(VoHvInstance *vm, const VoQemuMirror *m, char **ret_error)
{
    int64_t deadline = vo_now_ms() + MIRROR_WAIT_MS;
    for (;;) {
        json_t *jobs = NULL;
        int r = vo_qemu_command(vm, "query-jobs", NULL, &jobs, ret_error);
        if (r < 0)
            return r;
        bool all = true;
        for (size_t i = 0; i < m->n; i++) {
            _cleanup_free_ char *id = job_id(m->slots[i]);
            json_t *job = find_job(jobs, id);
            if (job && strcmp(job_status(job), "concluded"))
                all = false;
            const char *error = json_string_value(json_object_get(job, "error"));
            char what[32];
            mirror_what(m->slots[i], what);
            if (error && r >= 0)
                r = vo_error_set(ret_error, -EIO, "the mirror of %s failed: %s", what, error);
        }
        json_decref(jobs);
        if (all)
            return r;
        if (vo_now_ms() > deadline) {
            if (r < 0 && ret_error) /* the timeout says more */
                free(TAKE_PTR(*ret_error));
            return vo_error_set(ret_error, -ETIMEDOUT, "the disk mirrors did not end in %d s",
                                MIRROR_WAIT_MS / 1000);
        }
        /* QEMU announces each job status change: look again as soon as it
         * says anything, at the latest in 50 ms. */
        struct pollfd p = { .fd = vo_qmp_fd(vm->qmp), .events = POLLIN };
        if (poll(&p, 1, 50) > 0)
            (void)vo_qmp_pump(vm->qmp);
    }
}

static void dismiss_all(VoHvInstance *vm, const VoQemuMirror *m)
{
    for (size_t i = 0; i < m->n; i++) {
        _cleanup_free_ char *id = job_id(m->slots[i]);
        json_t *args = json_pack("{s:s}", "id", id);
        (void)vo_qemu_command(vm, "job-dismiss", args, NULL, NULL);
        json_decref(args);
    }
}

/* Whether a job of m has not concluded yet (jobs: a query-jobs answer). */
static bool any_running(const VoQemuMirror *m, json_t *jobs)
{
    for (size_t i = 0; i < m->n; i++) {
        _cleanup_free_ char *id = job_id(m->slots[i]);
        json_t *job = find_job(jobs, id);
        if (job && strcmp(job_status(job), "concluded"))
            return true;
    }
    return false;
}

/* Stops the vCPUs of a running guest (QEMU drains every request of its
 * disks on the way); true when it did, and so cont is owed. Caller holds
 * qmp_lock. */
static bool stop_guest(VoHvInstance *vm)
{
    json_t *status = NULL;
    bool running = vo_qemu_command(vm, "query-status", NULL, &status, NULL) >= 0 &&
                   json_is_true(json_object_get(status, "running"));
    json_decref(status);
    return running && vo_qemu_command(vm, "stop", NULL, NULL, NULL) >= 0;
}

/* Cancels whatever of m still runs, waits for it, dismisses the jobs and
 * drops the NBD nodes, then frees m. Caller holds qmp_lock.
 *
 * The guest does not write meanwhile: its vCPUs stop (every request it
 * has in flight drained) before a job is cancelled and run again once the
 * jobs and nodes are gone. A write-blocking mirror sends each guest write
 * to the target as part of the write; QEMU 10.0 force-cancelling one while
 * such writes were in flight (a cancel just after the job turned ready,
 * the guest writing) corrupted its heap: the QEMU aborted at a later QMP
 * command ("corrupted double-linked list"), the VM crashed. The pause is
 * as long as the cancel (tens of ms). */
static int abort_mirror(VoHvInstance *vm, VoQemuMirror *m, size_t n_nodes, char **ret_error)
{
    json_t *jobs = NULL;
    int r = vo_qemu_command(vm, "query-jobs", NULL, &jobs, ret_error);
    bool resume = r >= 0 && any_running(m, jobs) && stop_guest(vm);
    for (size_t i = 0; r >= 0 && i < m->n; i++) {
        _cleanup_free_ char *id = job_id(m->slots[i]);
        json_t *job = find_job(jobs, id);
        if (!job || !strcmp(job_status(job), "concluded"))
            continue;
        /* force: a ready mirror is aborted, not completed. */
        json_t *args = json_pack("{s:s, s:b}", "device", id, "force", 1);
        r = vo_qemu_command(vm, "block-job-cancel", args, NULL, ret_error);
        json_decref(args);
    }
    json_decref(jobs);
    if (r >= 0) {
        _cleanup_free_ char *job_error = NULL; /* a cancelled job's error is expected */
        int w = wait_concluded(vm, m, &job_error);
        if (w == -ETIMEDOUT || w == -ENOTCONN) {
            r = w;
            if (ret_error)
                *ret_error = TAKE_PTR(job_error);
        }
    }
    dismiss_all(vm, m);
    for (size_t i = 0; i < n_nodes; i++) {
        _cleanup_free_ char *node = nbd_node(m->slots[i]);
        json_t *args = json_pack("{s:s}", "node-name", node);
        (void)vo_qemu_command(vm, "blockdev-del", args, NULL, NULL);
        json_decref(args);
    }
    _cleanup_free_ char *cont_error = NULL;
    if (resume && vo_qemu_command(vm, "cont", NULL, NULL, &cont_error) < 0)
        log_warn("QEMU (pid %d): the guest paused while its disk mirrors were cancelled "
                 "does not run again: %s", (int)vm->pid, cont_error);
    vo_qemu_mirror_free(m);
    return r;
}

static int cancel_leftovers(VoHvInstance *vm, char **ret_error);

int vo_qemu_mirror_start(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error)
{
    json_t *server = NULL;
    int r = plan_check(plan, ret_error);
    if (r >= 0)
        r = vo_qemu_tls_check(plan->tls, plan->uri, true, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->qmp_lock);
    if (vm->mirror) {
        pthread_mutex_unlock(&vm->qmp_lock);
        return vo_error_set(ret_error, -EBUSY, "the disks are being mirrored already");
    }
    if (vm->mirror_unknown) /* an earlier vireod's, which would clash by name */
        (void)cancel_leftovers(vm, NULL);
    bool had_tls = vo_qemu_tls_active(vm);
    VoQemuMirror *m = vo_malloc0(sizeof(*m));
    m->slots = vo_malloc0(sizeof(*m->slots) * plan->n_disks);
    size_t nodes = 0;
    for (size_t i = 0; r >= 0 && i < plan->n_disks; i++) {
        const VoHvMirrorDisk *disk = &plan->disks[i];
        char device[32];
        mirror_node(disk->slot, device);
        _cleanup_free_ char *node = nbd_node(disk->slot);
        _cleanup_free_ char *name = export_name(disk);
        _cleanup_free_ char *id = job_id(disk->slot);
        (void)socket_address(plan->uri, false, &server, NULL);
        json_t *add = json_pack("{s:s, s:s, s:o, s:s}", "driver", "nbd", "node-name", node,
                                "server", server, "export", name);
        r = vo_qemu_tls_nbd(vm, plan->tls, false, add, ret_error);
        if (r >= 0)
            r = vo_qemu_command(vm, "blockdev-add", add, NULL, ret_error);
        json_decref(add);
        if (r < 0)
            break;
        m->slots[m->n++] = disk->slot;
        nodes++;
        /* write-blocking: once in sync, every guest write reaches the
         * destination before it completes, so the mirror converges under
         * any write load. auto-dismiss off: a job that failed stays to be
         * asked about. */
        json_t *mirror = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "job-id", id, "device",
                                   device, "target", node, "sync",
                                   disk->top_only ? "top" : "full", "copy-mode",
                                   "write-blocking", "auto-dismiss", 0);
        if (plan->speed)
            json_object_set_new(mirror, "speed", json_integer((json_int_t)plan->speed));
        r = vo_qemu_command(vm, "blockdev-mirror", mirror, NULL, ret_error);
        json_decref(mirror);
    }
    if (r < 0) {
        /* The last node may have no job: abort_mirror finds none for it. */
        (void)abort_mirror(vm, m, nodes, NULL);
        if (!had_tls)
            (void)vo_qemu_tls_remove(vm, NULL);
    } else {
        vm->mirror = m;
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

static uint64_t u64(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* query-jobs read into ret. Caller holds qmp_lock. */
static int mirror_progress(VoHvInstance *vm, VoHvMirrorProgress *ret)
{
    *ret = (VoHvMirrorProgress){ 0 };
    const VoQemuMirror *m = vm->mirror;
    if (!m) {
        ret->error = vo_strdup("no disk mirror is under way");
        return -ENOENT;
    }
    json_t *jobs = NULL;
    int r = vo_qemu_command(vm, "query-jobs", NULL, &jobs, &ret->error);
    if (r < 0)
        return r;
    ret->n_disks = m->n;
    for (size_t i = 0; i < m->n; i++) {
        _cleanup_free_ char *id = job_id(m->slots[i]);
        json_t *job = find_job(jobs, id);
        const char *error = json_string_value(json_object_get(job, "error"));
        const char *status = job_status(job);
        if (!error && (!job || !strcmp(status, "concluded") || !strcmp(status, "aborting")) &&
            !m->completed)
            error = job ? "the job ended" : "the job is gone";
        if (error && !ret->error) {
            char what[32];
            mirror_what(m->slots[i], what);
            ret->error = vo_asprintf("the mirror of %s failed: %s", what, error);
            r = -EIO;
        }
        ret->transferred += u64(job, "current-progress");
        ret->total += u64(job, "total-progress");
        if (!strcmp(status, "ready") || m->completed)
            ret->n_ready++;
    }
    ret->ready = r >= 0 && ret->n_ready == m->n;
    json_decref(jobs);
    return r;
}

int vo_qemu_mirror_query(VoHvInstance *vm, VoHvMirrorProgress *ret)
{
    pthread_mutex_lock(&vm->qmp_lock);
    int r = mirror_progress(vm, ret);
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

int vo_qemu_mirror_check_ready(VoHvInstance *vm, char **ret_error)
{
    if (!vm->mirror)
        return 0;
    VoHvMirrorProgress p;
    int r = mirror_progress(vm, &p);
    if (r >= 0 && !p.ready)
        r = vo_error_set(ret_error, -EBUSY,
                         "the disks are not in sync yet (%zu of %zu ready): wait until "
                         "mirror_query says ready",
                         p.n_ready, p.n_disks);
    else if (r < 0)
        r = vo_error_set(ret_error, r, "%s", p.error);
    free(p.error);
    return r;
}

int vo_qemu_mirror_complete(VoHvInstance *vm, char **ret_error)
{
    VoQemuMirror *m = vm->mirror;
    if (!m || m->completed)
        return 0;
    int r = vo_qemu_mirror_check_ready(vm, ret_error);
    /* A ready mirror cancelled (without force) completes: the vCPUs are
     * stopped, so the target is in sync once the job concludes. */
    for (size_t i = 0; r >= 0 && i < m->n; i++) {
        _cleanup_free_ char *id = job_id(m->slots[i]);
        json_t *args = json_pack("{s:s}", "device", id);
        r = vo_qemu_command(vm, "block-job-cancel", args, NULL, ret_error);
        json_decref(args);
    }
    if (r >= 0)
        r = wait_concluded(vm, m, ret_error);
    if (r >= 0) {
        m->completed = true;
        dismiss_all(vm, m);
    }
    if (r < 0) /* the source goes on: QEMU resumes it once cancelled */
        (void)vo_qemu_command(vm, "migrate_cancel", NULL, NULL, NULL);
    return r;
}

int vo_qemu_mirror_switchover(VoHvInstance *vm, char **ret_error)
{
    if (!vm->mirror || vm->mirror->completed)
        return 0;
    int r = vo_qemu_mirror_complete(vm, ret_error);
    if (r >= 0) {
        json_t *args = json_pack("{s:s}", "state", "pre-switchover");
        r = vo_qemu_command(vm, "migrate-continue", args, NULL, ret_error);
        json_decref(args);
        if (r < 0)
            (void)vo_qemu_command(vm, "migrate_cancel", NULL, NULL, NULL);
    }
    return r;
}

/* The slot of a name "<prefix><slot>" (a job or NBD node of ours), or -1. */
static long slot_of(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (!name || strncmp(name, prefix, n) || name[n] < '0' || name[n] > '9')
        return -1;
    char *end = NULL;
    unsigned long v = strtoul(name + n, &end, 10);
    return *end || v > 4096 ? -1 : (long)v;
}

static void add_slot(VoQemuMirror *m, long slot)
{
    if (slot < 0)
        return;
    for (size_t i = 0; i < m->n; i++)
        if (m->slots[i] == (unsigned)slot)
            return;
    m->slots = realloc(m->slots, (m->n + 1) * sizeof(*m->slots));
    if (!m->slots)
        abort();
    m->slots[m->n++] = (unsigned)slot;
}

/* Mirrors this instance does not know of (vm->mirror_unknown: re-attached):
 * those of an earlier vireod that died mid-migration (what it made is known
 * only in memory, so a re-attached VM may still carry its jobs, with
 * auto-dismiss off, and NBD nodes, on which every later migration would
 * fail by name). Found by name, then cancelled and dropped as a cancel
 * does. Caller holds qmp_lock. */
static int cancel_leftovers(VoHvInstance *vm, char **ret_error)
{
    vm->mirror_unknown = false;
    VoQemuMirror *m = vo_malloc0(sizeof(*m));
    json_t *jobs = NULL, *nodes = NULL, *flat = json_pack("{s:b}", "flat", 1), *x;
    size_t i;
    if (vo_qemu_command(vm, "query-jobs", NULL, &jobs, NULL) >= 0)
        json_array_foreach(jobs, i, x)
            add_slot(m, slot_of(json_string_value(json_object_get(x, "id")),
                                "vireo-mirror-disk"));
    if (vo_qemu_command(vm, "query-named-block-nodes", flat, &nodes, NULL) >= 0)
        json_array_foreach(nodes, i, x)
            add_slot(m, slot_of(json_string_value(json_object_get(x, "node-name")),
                                "vireo-nbd-disk"));
    json_decref(jobs);
    json_decref(nodes);
    json_decref(flat);
    if (!m->n) {
        vo_qemu_mirror_free(m);
        return 0;
    }
    log_warn("QEMU (pid %d) carries the disk mirrors of an earlier migration (%zu disk(s)): "
             "cancelled", (int)vm->pid, m->n);
    return abort_mirror(vm, m, m->n, ret_error);
}

int vo_qemu_mirror_cancel(VoHvInstance *vm, char **ret_error)
{
    VoQemuMirror *m = vm->mirror;
    if (!m)
        return vm->mirror_unknown ? cancel_leftovers(vm, ret_error) : 0;
    vm->mirror = NULL;
    return abort_mirror(vm, m, m->n, ret_error);
}

int vo_qemu_mirror_stop_server(VoHvInstance *vm, char **ret_error)
{
    if (!vm->nbd_serving) {
        /* Re-attached: an incoming VM an earlier vireod prepared may still
         * serve its disks (an error says it does not). */
        if (vm->mirror_unknown)
            (void)vo_qemu_command(vm, "nbd-server-stop", NULL, NULL, NULL);
        return 0;
    }
    int r = vo_qemu_command(vm, "nbd-server-stop", NULL, NULL, ret_error);
    if (r >= 0)
        vm->nbd_serving = false;
    return r;
}
