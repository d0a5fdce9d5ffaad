/* migrate.c: the source side of a live migration (migrate.h; the protocol
 * and its failure cases: docs/internals.md, "Live migration"). The task
 * holds the VM's job lock from start to end: the destination prepares a
 * paused incoming QEMU (peer call), the driver streams memory there, both
 * sides end paused (QEMU's postmigrate here, -S there), their RAM is
 * compared when asked, then one transaction moves the VM's documents to
 * the destination's namespace (state/vm-move.h); only then does the
 * destination continue the VM and this QEMU quit. Any failure before that
 * transaction leaves the VM running here as before and nothing there. */
#include "daemon/migrate.h"
#include "daemon/drs-settings.h"
#include "daemon/vm-job.h"

#include <openssl/evp.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/peer-client.h"
#include "conf/names.h"
#include "cluster/migrate-compat.h"
#include "cluster/migrate-converge.h"
#include "daemon/cluster-view.h"
#include "daemon/migrate-resettle.h"
#include "daemon/migrate-safe.h"
#include "daemon/post-copy-kept.h"
#include "daemon/migrate-target.h"
#include "daemon/object-projects.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/keys.h"
#include "state/vm-move.h"
#include "state/vm-move-settle.h"
#include "storage/volume-path.h"
#include "util/util.h"

#define PEER_TIMEOUT_MS 30000
/* A prepare with local disks may copy a linked clone's base image first. */
#define PREPARE_DISKS_TIMEOUT_MS (20 * 60 * 1000)
#define ALIVE_EVERY_MS 10000 /* the disk phase tells the destination it goes on */
#define POLL_MS 200
/* The memory phase is asked more often: the guest is paused from QEMU's
 * completion (or its pre-switchover stop, local disks) until this loop sees
 * it and the destination continues, so each poll's wait is downtime. */
#define MEMORY_POLL_MS 10
#define PROGRESS_EVERY_MS 1000
#define COMMIT_TRIES 5
#define CANCEL_WAIT_MS 30000
/* Post-copy: how long the device state may take to reach the destination
 * once the switch-over goes on, and how long the rest of RAM may make no
 * progress at all before the post-copy phase counts as broken. */
#define POST_COPY_SWITCH_WAIT_MS 120000
#define POST_COPY_STALL_MS (5 * 60 * 1000)
#define QUERY_TRIES 5 /* migrate_query errors in a row before the migration counts as failed */
#define SETTLE_GIVE_UP_MS 120000 /* an unknown switch outcome: how long the store is asked */
#define PENDING "(being queued)" /* vm->migration_task until the task has an id */
#define CONSOLE_LOG_SENT (256 * 1024) /* the tail of the console log sent along */

/* ---- peer calls ------------------------------------------------------------ */

/* METHOD url+path with a JSON body; 0 with the peer's 2xx answer in *ret
 * (may be NULL), or -errno with *ret_error (its error message, or why it
 * could not be reached). */
int vo_migrate_peer_call_timeout(VoDaemon *d, const char *url, const char *method,
                                 const char *path, json_t *body, int timeout_ms, json_t **ret,
                                 char **ret_error)
{
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *headers[] = { "Content-Type: application/json", NULL };
    VoPeerResponse resp = { 0 };
    int r = vo_peer_request(&d->peer_tls, url, method, path, headers, text,
                            text ? strlen(text) : 0, timeout_ms, &resp);
    if (r < 0) {
        vo_error_set(ret_error, r, "%s", resp.error ? resp.error : strerror(-r));
        vo_peer_response_clear(&resp);
        return r;
    }
    json_t *doc = resp.body ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (resp.status < 200 || resp.status > 299) {
        const char *msg = json_string_value(
            json_object_get(json_object_get(doc, "error"), "message"));
        r = resp.status == 409 ? -EBUSY : resp.status == 404 ? -ENOENT
            : resp.status < 500 ? -EINVAL : -EIO;
        vo_error_set(ret_error, r, "%s (HTTP %d)", msg ? msg : "no reason given", resp.status);
        json_decref(doc);
    } else if (ret) {
        *ret = doc;
    } else {
        json_decref(doc);
    }
    vo_peer_response_clear(&resp);
    return r;
}

int vo_migrate_peer_call(VoDaemon *d, const char *url, const char *method, const char *path,
                         json_t *body, json_t **ret, char **ret_error)
{
    return vo_migrate_peer_call_timeout(d, url, method, path, body, PEER_TIMEOUT_MS, ret,
                                        ret_error);
}

/* ---- the task ------------------------------------------------------------- */

/* A disk on a pool of this host's own: mirrored to the destination. */
typedef struct {
    unsigned slot;
    char *pool, *name; /* here */
    char *format;
    uint64_t size;     /* virtual */
    char *image;       /* a linked clone of this image: the destination gets an
                        * overlay on its copy of it (only the top moves) */
    bool flatten;      /* the destination's copy stands alone */
} LocalDisk;

typedef struct {
    VoVm *vm;
    VoMigrateArgs opts;
    char *to_id, *to_name, *to_url;
    char *pool; /* the destination's pool for local disks */
    LocalDisk *disks;
    size_t n_disks;
    uint64_t disk_bytes;    /* what the mirrors sent (0: every disk shared) */
    VoMigrateIntent intent; /* RUN_DIR/migrations/<vm>.json while it runs */
    json_t *spec;           /* the intent's spec (held) */
    bool keep_intent;       /* ended with the source paused, the outcome unknown: the
                             * next start settles it from the intent */
    char *intent_vm, *intent_name, *intent_mig;
} MigrateTask;

const VoHvMigrationTls *vo_migration_tls(VoDaemon *d, VoHvMigrationTls *buf)
{
    if (!d->cluster || !d->peer_tls.cert_file)
        return NULL;
    /* No host name: the destination's certificate must carry the address
     * of the URI it listens on (a host certificate carries its address). */
    *buf = (VoHvMigrationTls){ .ca_cert = d->peer_tls.ca_file, .cert = d->peer_tls.cert_file,
                               .key = d->peer_tls.key_file };
    return buf;
}

static void migrate_task_free(void *p)
{
    MigrateTask *m = p;
    for (size_t i = 0; i < m->n_disks; i++) {
        free(m->disks[i].pool);
        free(m->disks[i].name);
        free(m->disks[i].format);
        free(m->disks[i].image);
    }
    free(m->disks);
    free(m->pool);
    json_decref(m->spec);
    free(m->intent_vm);
    free(m->intent_name);
    free(m->intent_mig);
    vo_vm_unref(m->vm);
    free(m->to_id);
    free(m->to_name);
    free(m->to_url);
    free(m);
}

/* The tail of the VM's console log as base64 (malloc'd), or NULL. */
static char *console_tail_b64(VoDaemon *d, VoVm *vm)
{
    _cleanup_free_ char *path = vo_vm_console_log_path(d, vm);
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0) {
        fclose(f);
        return NULL;
    }
    long from = size > CONSOLE_LOG_SENT ? size - CONSOLE_LOG_SENT : 0;
    (void)fseek(f, from, SEEK_SET);
    unsigned char *buf = vo_malloc0((size_t)(size - from) + 1);
    size_t n = fread(buf, 1, (size_t)(size - from), f);
    fclose(f);
    char *out = vo_malloc0(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, buf, (int)n);
    free(buf);
    return out;
}

static uint64_t dirty_rate_bytes(const VoHvMigrationProgress *p)
{
    return p->dirty_pages_rate * (p->page_size ? p->page_size : 4096);
}

static json_t *progress_json(const char *phase, const VoHvMigrationProgress *p, int64_t start)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "phase", phase, "bytes_sent",
                     (json_int_t)p->transferred, "bytes_total", (json_int_t)p->total,
                     "bytes_remaining", (json_int_t)p->remaining, "dirty_rate_bytes",
                     (json_int_t)dirty_rate_bytes(p),
                     "expected_downtime_ms", (json_int_t)p->expected_downtime_ms,
                     "elapsed_ms", (json_int_t)(vo_now_ms() - start), "cpu_throttle_percent",
                     (int)p->throttle_pct);
}

/* Ends the migration attempt with the VM still here: the destination's
 * incoming VM is aborted (best effort: a destination that died holds
 * nothing), this QEMU resumed when it ran before. */
static void undo(VoDaemon *d, MigrateTask *m, VoHvInstance *hv, const char *abort_path)
{
    _cleanup_free_ char *error = NULL, *aerror = NULL;
    /* Post-copy's stop before the switch-over: cancelled first (QEMU then
     * resumes the source itself), and waited for (bounded). */
    VoHvMigrationProgress p = { 0 };
    if (m->opts.post_copy && d->driver->migrate_query(hv, &p) >= 0 && p.at_switchover) {
        if (d->driver->migrate_cancel(hv, &error) < 0)
            log_warn("migration to %s: cancelling at the switch-over: %s", m->to_name, error);
        for (int64_t until = vo_now_ms() + CANCEL_WAIT_MS;
             vo_now_ms() < until && (p.status == VO_HV_MIGRATION_ACTIVE ||
                                     p.status == VO_HV_MIGRATION_CANCELLING);) {
            (void)poll(NULL, 0, POLL_MS);
            free(p.error);
            p = (VoHvMigrationProgress){ 0 };
            if (d->driver->migrate_query(hv, &p) < 0)
                break;
        }
    }
    free(p.error);
    free(error);
    error = NULL;
    if (abort_path && vo_migrate_peer_call(d, m->to_url, "DELETE", abort_path, NULL, NULL, &aerror) < 0)
        log_warn("migration to %s: aborting the destination failed: %s", m->to_name, aerror);
    if (d->driver->migrate_finish(hv, VO_HV_MIGRATION_SOURCE, false, false, &error) < 0)
        log_warn("migration to %s: resuming the source failed: %s", m->to_name, error);
}

void vo_migrate_clear_mark(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    free(vm->migration_task);
    vm->migration_task = NULL;
    free(vm->migration_to);
    vm->migration_to = NULL;
    pthread_mutex_unlock(&vm->lock);
}

/* The intent file's phase (migrate-recover.c): written before the step. */
static void intent_phase(MigrateTask *m, const char *phase, int64_t rev)
{
    if (!m->intent.vm)
        return;
    m->intent.phase = phase;
    m->intent.rev = rev;
    (void)vo_migration_intent_save(m->vm->d, &m->intent);
}

/* The prepare request's "disks" (migrate-incoming.c, make_disks). */
static json_t *disks_json(const MigrateTask *m)
{
    json_t *a = json_array();
    for (size_t i = 0; i < m->n_disks; i++) {
        const LocalDisk *x = &m->disks[i];
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I}", "slot", (json_int_t)x->slot, "name",
                              x->name, "pool", m->pool, "format", x->format, "size",
                              (json_int_t)x->size);
        if (x->image && !x->flatten)
            json_object_set_new(o, "image", json_string(x->image));
        json_array_append_new(a, o);
    }
    return a;
}

/* The disk phase: every local disk mirrored into the destination's export
 * until all are in sync (then writes go to both sides until the switch).
 * 0; -ECANCELED when the task was cancelled; else -errno with *ret_error.
 * On any failure the caller's undo cancels the mirrors (migrate_finish). */
static int copy_disks(VoTask *t, MigrateTask *m, VoHvInstance *hv, const char *nbd_uri,
                      const char *alive_path, int64_t start, char **ret_error)
{
    VoDaemon *d = m->vm->d;
    VoHvMirrorDisk *plan = vo_malloc0(sizeof(*plan) * m->n_disks);
    for (size_t i = 0; i < m->n_disks; i++)
        plan[i] = (VoHvMirrorDisk){ .slot = m->disks[i].slot,
                                    .top_only = m->disks[i].image && !m->disks[i].flatten };
    VoHvMigrationTls tls; /* between hosts: mutual TLS, as the memory stream */
    VoHvMirrorPlan p = { .uri = nbd_uri, .disks = plan, .n_disks = m->n_disks,
                         .speed = m->opts.bandwidth, .tls = vo_migration_tls(d, &tls) };
    int r = d->driver->mirror_start(hv, &p, ret_error);
    free(plan);
    if (r < 0)
        return r;
    int64_t shown = 0, pinged = vo_now_ms();
    for (;;) {
        VoHvMirrorProgress q = { 0 };
        r = d->driver->mirror_query(hv, &q);
        if (r < 0 || q.error) {
            r = vo_error_set(ret_error, r < 0 ? r : -EIO, "copying the disks failed: %s",
                             q.error ? q.error : strerror(-r));
            free(q.error);
            return r;
        }
        if (q.ready) {
            m->disk_bytes = q.transferred;
            vo_task_set_details(t, 50, "disks in sync",
                                json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "phase", "disks",
                                          "bytes_sent", (json_int_t)q.transferred,
                                          "bytes_total", (json_int_t)q.total, "disks",
                                          (json_int_t)q.n_disks, "disks_ready",
                                          (json_int_t)q.n_ready, "elapsed_ms",
                                          (json_int_t)(vo_now_ms() - start)));
            return 0;
        }
        if (vo_task_cancelled(t))
            return -ECANCELED;
        if (vo_now_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = vo_now_ms();
            int pct = q.total ? (int)(5 + 45 * (q.transferred > q.total ? q.total
                                                                          : q.transferred) /
                                              q.total)
                              : 5;
            vo_task_set_details(t, pct, "copying disks",
                                json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "phase", "disks",
                                          "bytes_sent", (json_int_t)q.transferred,
                                          "bytes_total", (json_int_t)q.total, "disks",
                                          (json_int_t)q.n_disks, "disks_ready",
                                          (json_int_t)q.n_ready, "elapsed_ms",
                                          (json_int_t)(vo_now_ms() - start)));
        }
        if (vo_now_ms() - pinged >= ALIVE_EVERY_MS) {
            pinged = vo_now_ms();
            _cleanup_free_ char *perr = NULL;
            int k = vo_migrate_peer_call(d, m->to_url, "POST", alive_path, NULL, NULL, &perr);
            if (k == -ENOENT)
                return vo_error_set(ret_error, -EIO, "the destination dropped the incoming "
                                    "VM: %s", perr);
        }
        (void)poll(NULL, 0, POLL_MS);
    }
}

static void moving_end(VoDaemon *d, MigrateTask *m, bool moved)
{
    for (size_t i = 0; i < m->n_disks; i++) {
        _cleanup_free_ char *key = vo_asprintf("%s/%s", m->disks[i].pool, m->disks[i].name);
        vo_volume_moving_end(d, key, moved);
    }
}

/* The local volumes' moves of the switch: here -> the destination's pool
 * (flattened as copied), or back (a take-back). */
static VoVolumeMove *volume_moves(const MigrateTask *m, bool back)
{
    VoVolumeMove *v = vo_malloc0(sizeof(*v) * (m->n_disks + 1));
    for (size_t i = 0; i < m->n_disks; i++) {
        char *here = vo_asprintf("%s/%s", m->disks[i].pool, m->disks[i].name);
        char *there = vo_asprintf("%s/%s", m->pool, m->disks[i].name);
        v[i] = (VoVolumeMove){ .from = back ? there : here, .to = back ? here : there,
                               .flatten = !back && m->disks[i].flatten };
    }
    return v;
}

static void volume_moves_free(VoVolumeMove *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].from);
        free((char *)v[i].to);
    }
    free(v);
}

/* An error of the ownership transaction after which it may still have
 * been applied: every one but a refusal (a compare failed, too big, the
 * destination offline) and -EAGAIN (the store was not reached: nothing
 * changed). */
static bool switch_outcome_unknown(int r)
{
    /* -EBUSY: refused on a volume's or network's project move mark. */
    return r != -ESTALE && r != -ENOENT && r != -EEXIST && r != -E2BIG && r != -EHOSTDOWN &&
           r != -EAGAIN && r != -EBUSY;
}

/* The switch's outcome was unknown: settled by the store (vm-move-settle.h).
 * 0 with *new_rev: the VM moved, go on. A negative errno other than
 * -ETIMEDOUT / -EIO: proven not moved (fenced; vm->rev follows the fence),
 * so the source may run on. -ETIMEDOUT / -EIO: still unknown. */
static int settle_switch(VoTask *t, VoDaemon *d, MigrateTask *m, VoVm *vm, const char *name,
                         const char *vm_id, int64_t rev, int64_t *new_rev, char **error)
{
    log_warn("vm %s: the switch to host %s has an unknown outcome (%s): asking the store",
             name, m->to_name, *error);
    vo_task_set_details(t, 93, "settling the ownership switch",
                        json_pack("{s:s, s:s}", "phase", "switchover", "to", m->to_name));
    int64_t src_rev = 0;
    _cleanup_free_ char *serr = NULL;
    if (vo_migrate_fault("settle-unknown")) { /* test: the store says nothing in time */
        free(*error);
        *error = NULL;
        return vo_error_set(error, -ETIMEDOUT, "test fault: the store did not say in time");
    }
    int s = vo_vm_move_settle(d->cluster_store, vm_id, d->host_id, m->to_id, rev,
                              SETTLE_GIVE_UP_MS, new_rev, &src_rev, &serr);
    free(*error);
    *error = NULL;
    if (s == 1) {
        log_info("vm %s: the switch to host %s was applied", name, m->to_name);
        return 0;
    }
    if (s == 0) {
        pthread_mutex_lock(&vm->lock);
        vm->rev = src_rev;
        pthread_mutex_unlock(&vm->lock);
        return vo_error_set(error, -EAGAIN, "the ownership transaction got no answer and was "
                            "not applied");
    }
    *error = TAKE_PTR(serr);
    return s;
}

/* The destination did not confirm its commit: the VM's documents are moved
 * back (compared at new_rev: only while the destination has not claimed
 * them; migrate-incoming.c claims with a write before it continues the
 * guest). 0: back here (vm->rev follows); 1: the destination claimed them,
 * the source must end; negative: unknown, neither side may run it here. */
static int take_back(VoDaemon *d, MigrateTask *m, VoVm *vm, const char *name,
                     const char *vm_id, int64_t new_rev, char **error)
{
    _cleanup_free_ char *berr = NULL;
    int64_t back_rev = 0, fenced = 0;
    if (vo_migrate_fault("take-back-unknown")) { /* test: the store says nothing in time */
        log_warn("vm %s: taking it back from host %s: test fault: no answer", name, m->to_name);
        return -ETIMEDOUT;
    }
    VoVolumeMove *back = volume_moves(m, true); /* local volumes come back too */
    int64_t give_up = vo_now_ms() + SETTLE_GIVE_UP_MS;
    int r;
    for (;;) {
        free(berr);
        berr = NULL;
        r = vo_vm_move_volumes_txn(d->cluster_store, vm_id, m->to_id, d->host_id, new_rev,
                                   back, m->n_disks, &back_rev, &berr);
        /* The store not reached (no quorum: in a small cluster the
         * destination's etcd member may have died with its vireod), or a
         * volume's project move under way (its mark lives at most
         * VO_OBJECT_MOVE_TTL_MS): nothing changed, asked again rather than
         * left paused. */
        if ((r != -EAGAIN && r != -EBUSY) || vo_now_ms() > give_up)
            break;
        (void)poll(NULL, 0, 1000);
    }
    volume_moves_free(back, m->n_disks);
    if (r == -ESTALE || r == -ENOENT)
        return 1;
    if (r < 0 && switch_outcome_unknown(r)) {
        int s = vo_vm_move_settle(d->cluster_store, vm_id, m->to_id, d->host_id, new_rev,
                                  SETTLE_GIVE_UP_MS, &back_rev, &fenced, &berr);
        if (s == 0)
            return 1; /* fenced at the destination: it is the destination's */
        if (s == -EIO) {
            /* Its document there changed and none is here: the destination
             * claimed it (the claim rewrites it) when it is still there. */
            _cleanup_free_ char *there = vo_asprintf("h/%s/vms/%s", m->to_id, vm_id);
            if (vo_store_get_linear(d->cluster_store, there, NULL) >= 0)
                return 1;
        }
        r = s == 1 ? 0 : s;
    }
    if (r < 0) {
        log_warn("vm %s: taking it back from host %s failed: %s", name, m->to_name, berr);
        return r;
    }
    pthread_mutex_lock(&vm->lock);
    vm->rev = back_rev;
    vm->migrated_away = false;
    pthread_mutex_unlock(&vm->lock);
    (void)error;
    return 0;
}

/* Guest RAM compared on both sides (both paused: the source stopped, the
 * destination not yet continued). 0, or -errno with *error. */
static int verify_memory(VoDaemon *d, MigrateTask *m, VoHvInstance *hv, const char *digest_path,
                         char **error)
{
    char here[65] = "";
    json_t *answer = NULL;
    int r = d->driver->memory_digest ? d->driver->memory_digest(hv, here, error)
                                     : vo_error_set(error, -EOPNOTSUPP, "driver has no digest");
    if (r >= 0)
        r = vo_migrate_peer_call(d, m->to_url, "POST", digest_path, NULL, &answer, error);
    const char *there = json_string_value(json_object_get(answer, "digest"));
    if (r >= 0 && (!there || strcmp(there, here)))
        r = vo_error_set(error, -EIO, "guest RAM differs between source (sha256 %s) and "
                         "destination (sha256 %s)", here, there ? there : "none");
    json_decref(answer);
    return r;
}

int vo_migrate_continue_switchover(VoDaemon *d, VoHvInstance *hv, bool *ret_post_copy,
                                   char **error)
{
    *ret_post_copy = false;
    int r = d->driver->migrate_continue(hv, error);
    int64_t deadline = vo_now_ms() + POST_COPY_SWITCH_WAIT_MS;
    while (r >= 0) {
        VoHvMigrationProgress p = { 0 };
        r = d->driver->migrate_query(hv, &p);
        _cleanup_free_ char *why = p.error;
        if (r < 0)
            return vo_error_set(error, r, "%s", why ? why : strerror(-r));
        if (p.status == VO_HV_MIGRATION_COMPLETED)
            return 0;
        if (p.post_copy && !p.post_copy_paused && !p.post_copy_recovering) {
            *ret_post_copy = true;
            return 0;
        }
        if (p.status != VO_HV_MIGRATION_ACTIVE || p.post_copy_paused)
            return vo_error_set(error, -EIO, "the switch-over failed (%s): %s",
                                p.post_copy_paused ? "post-copy paused"
                                                   : vo_hv_migration_status_to_string(p.status),
                                why ? why : "no reason given");
        if (vo_now_ms() > deadline)
            return vo_error_set(error, -ETIMEDOUT, "the device state did not reach the "
                                "destination within %d s", POST_COPY_SWITCH_WAIT_MS / 1000);
        (void)poll(NULL, 0, MEMORY_POLL_MS);
    }
    return r;
}

int vo_migrate_finish_post_copy(VoTask *t, VoDaemon *d, VoHvInstance *hv, int64_t start,
                                VoHvMigrationProgress *fin, char **error)
{
    uint64_t last = 0;
    int64_t moved_at = vo_now_ms(), shown = 0;
    int errors = 0, stall_ms = vo_migrate_post_copy_stall_ms(POST_COPY_STALL_MS);
    for (;;) {
        free(fin->error);
        *fin = (VoHvMigrationProgress){ 0 };
        int r = d->driver->migrate_query(hv, fin);
        if (r < 0 && ++errors >= QUERY_TRIES)
            return vo_error_set(error, r, "QEMU does not answer: %s",
                                fin->error ? fin->error : strerror(-r));
        if (r >= 0) {
            errors = 0;
            if (fin->status == VO_HV_MIGRATION_COMPLETED)
                return 0;
            if (fin->status != VO_HV_MIGRATION_ACTIVE || fin->post_copy_paused)
                return vo_error_set(error, -EIO, "%s: %s",
                                    fin->post_copy_paused
                                        ? "post-copy paused"
                                        : vo_hv_migration_status_to_string(fin->status),
                                    fin->error ? fin->error : "no reason given");
            if (fin->transferred != last) {
                last = fin->transferred;
                moved_at = vo_now_ms();
            }
        }
        if (vo_now_ms() - moved_at > stall_ms)
            return vo_error_set(error, -ETIMEDOUT, "no page sent for %d s", stall_ms / 1000);
        if (t && vo_now_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = vo_now_ms();
            vo_task_set_details(t, 96, "post-copy: the rest of memory",
                                progress_json("post-copy", fin, start));
        }
        (void)poll(NULL, 0, POLL_MS);
    }
}

/* The VM is the destination's: this QEMU quits, the VM leaves the table
 * (its post-copy mark too), the job ends, moved local volumes' files go. */
static void end_source(VoDaemon *d, MigrateTask *m, VoVm *vm, VoHvInstance *hv,
                       const char *name)
{
    _cleanup_free_ char *ferror = NULL;
    if (d->driver->migrate_finish(hv, VO_HV_MIGRATION_SOURCE, true, false, &ferror) < 0)
        log_warn("vm %s: ending the source QEMU: %s", name, ferror);
    vo_migrate_clear_mark(vm);
    vo_vm_forget_migrated(vm);
    pthread_mutex_unlock(&vm->job);
    moving_end(d, m, true); /* their documents are the destination's: files go */
}

/* Post-copy that broke and could not be recovered: both QEMUs stay, each
 * holding memory the other lacks (the destination's guest waits on the
 * pages it reads); the intent too, from which the background (and a vireod
 * start) tries the recovery again (migrate-resettle.h, migrate-recover.c).
 * The VM stays in the table, moved away, its run dir (QEMU's monitor)
 * kept. Ends the job. */
static int keep_both(VoTask *t, VoDaemon *d, MigrateTask *m, VoVm *vm, VoHvInstance *hv,
                     const char *name, const char *vm_id, const char *error)
{
    if (!vo_post_copy_source_needed(d, vm_id, m->to_id)) {
        /* The destination's guest is gone (the manager restarted the VM
         * elsewhere from its disks after the destination died, or it was
         * deleted): these pages are needed by nobody. */
        log_warn("vm %s: post-copy to host %s could not be recovered (%s) and the VM is no "
                 "longer there (restarted elsewhere or deleted): its source QEMU here ends",
                 name, m->to_name, error);
        end_source(d, m, vm, hv, name);
        return vo_task_fail(t, -EIO, "post-copy of VM '%s' to host '%s' broke and could not "
                            "be recovered: %s. The VM is no longer at host '%s' (restarted "
                            "elsewhere or deleted), so the source QEMU here ended", name,
                            m->to_name, error, m->to_name);
    }
    log_error("vm %s: post-copy to host %s could not be recovered: %s; both QEMUs are kept",
              name, m->to_name, error);
    m->keep_intent = true;
    vo_migrate_clear_mark(vm);
    pthread_mutex_unlock(&vm->job);
    vo_migrate_resettle_later(d, vm_id, name, m->intent.migration);
    return vo_task_fail(t, -EIO, "post-copy of VM '%s' to host '%s' broke and could not be "
                        "recovered: %s. Both QEMUs are kept paused: the guest's memory is "
                        "split between the hosts, so neither may be stopped. vireod tries "
                        "the recovery again in the background (after 2 s, then less often, "
                        "up to every minute) and ends this QEMU once the rest of memory is "
                        "there, as soon as the link between them works again "
                        "(docs/cluster.md, \"Post-copy\")", name, m->to_name, error);
}

static int task_migrate_run(VoTask *t, void *userdata);

/* The task; its intent file goes at its end, whatever the outcome (a
 * vireod that dies keeps it for the next start). */
static int task_migrate(VoTask *t, void *userdata)
{
    MigrateTask *m = userdata;
    int r = task_migrate_run(t, userdata);
    if (m->intent.vm && !m->keep_intent)
        vo_migration_intent_drop(m->vm->d, m->intent.vm);
    return r;
}

static int task_migrate_run(VoTask *t, void *userdata)
{
    MigrateTask *m = userdata;
    VoVm *vm = m->vm;
    VoDaemon *d = vm->d;
    int64_t start = vo_now_ms();
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *vm_id = vo_strdup(vm->spec->id);
    VoVmState state = vm->state;
    VoHvInstance *hv = vm->hv;
    bool gone = vm->migrated_away;
    /* Why it ended, when it did since the request was taken (its QEMU
     * exited or was killed): the refusal says so. */
    _cleanup_free_ char *ended = !gone && vm->exit_reason ? vo_strdup(vm->exit_reason) : NULL;
    json_t *doc = gone ? NULL : vo_vm_document_locked(vm);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    /* Again under the job: a CD-ROM insert queued before the migration ran
     * first. */
    _cleanup_free_ char *cd_error = NULL;
    int cd = vo_migrate_check_cdrom(d, now, "vm migrate", &cd_error);
    vo_vm_spec_free(now);
    if (cd < 0 && !gone) {
        json_decref(doc);
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, cd, "%s", cd_error);
    }
    if (gone || !hv || (state != VO_VM_RUNNING && state != VO_VM_PAUSED)) {
        json_decref(doc);
        vo_migrate_clear_mark(vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, -EBUSY, "VM '%s' is not running here (it is %s%s%s)", name,
                            gone ? "migrated away" : vo_vm_state_to_string(state),
                            ended ? ": " : "", ended ? ended : "");
    }
    bool resume = state == VO_VM_RUNNING;
    char mig_id[37];
    (void)vo_uuid_generate(mig_id);
    _cleanup_free_ char *base_path = vo_asprintf("/v1/migrations/incoming/%s", mig_id);
    _cleanup_free_ char *digest_path = vo_asprintf("%s/digest", base_path);
    _cleanup_free_ char *commit_path = vo_asprintf("%s/commit", base_path);
    _cleanup_free_ char *alive_path = vo_asprintf("%s/alive", base_path);
    _cleanup_free_ char *error = NULL, *layout = NULL;
    json_t *answer = NULL;
    int r;

    /* 1. The destination: a paused incoming QEMU on the same hardware. */
    vo_task_set_details(t, 2, "preparing the destination",
                        json_pack("{s:s, s:s}", "phase", "prepare", "to", m->to_name));
    r = d->driver->layout(hv, &layout, &error);
    if (r < 0) {
        json_decref(doc);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, r, "cannot read VM '%s''s hardware layout: %s", name, error);
    }
    m->spec = json_incref(json_object_get(doc, "spec"));
    m->intent_vm = vo_strdup(vm_id);
    m->intent_name = vo_strdup(name);
    m->intent_mig = vo_strdup(mig_id);
    m->intent = (VoMigrateIntent){ .role = VO_MIGRATE_ROLE_SOURCE, .vm = m->intent_vm,
                                   .name = m->intent_name, .migration = m->intent_mig,
                                   .peer = m->to_id, .peer_url = m->to_url, .resume = resume,
                                   .spec = m->spec };
    intent_phase(m, "prepare", 0);
    json_t *req = json_pack("{s:s, s:o, s:s, s:s, s:b}", "id", mig_id, "vm", doc, "layout",
                            layout, "source_host", d->host_id, "resume", resume);
    if (m->n_disks)
        json_object_set_new(req, "disks", disks_json(m));
    if (m->opts.post_copy)
        json_object_set_new(req, "post_copy", json_true());
    r = vo_migrate_peer_call_timeout(d, m->to_url, "POST", "/v1/migrations/incoming", req,
                                     m->n_disks ? PREPARE_DISKS_TIMEOUT_MS : PEER_TIMEOUT_MS,
                                     &answer, &error);
    json_decref(req);
    const char *uri = json_string_value(json_object_get(answer, "uri"));
    const char *nbd_uri = json_string_value(json_object_get(answer, "nbd_uri"));
    if (r >= 0 && !uri)
        r = vo_error_set(&error, -EPROTO, "the destination answered no URI");
    if (r >= 0 && m->n_disks && !nbd_uri) {
        r = vo_error_set(&error, -EPROTO, "the destination answered no disk export");
        _cleanup_free_ char *aerror = NULL;
        (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
    }
    if (r < 0) {
        json_decref(answer);
        /* No answer (a timeout, a 5xx): it may have prepared all the same. */
        if (r != -EINVAL && r != -EBUSY && r != -ENOENT && r != -EEXIST) {
            _cleanup_free_ char *aerror = NULL;
            (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
        }
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, r, "host '%s' cannot take VM '%s': %s", m->to_name, name, error);
    }
    _cleanup_free_ char *uri_copy = vo_strdup(uri);
    _cleanup_free_ char *nbd_copy = vo_strdup(nbd_uri);
    int64_t at_prepared = vo_now_ms(); /* the phases' ends, for the result's phases_ms */
    json_decref(answer);
    answer = NULL;

    /* 1b. Local disks: mirrored there until in sync, in the same task. */
    if (m->n_disks) {
        vo_task_set_details(t, 5, "copying disks",
                            json_pack("{s:s, s:I, s:I}", "phase", "disks", "bytes_sent",
                                      (json_int_t)0, "bytes_total", (json_int_t)0));
        log_info("vm %s: copying %zu local disk(s) to host %s (%s)", name, m->n_disks,
                 m->to_name, nbd_copy);
        intent_phase(m, "disks", 0);
        r = copy_disks(t, m, hv, nbd_copy, alive_path, start, &error);
        if (r < 0) {
            _cleanup_free_ char *cerr = NULL;
            if (d->driver->migrate_cancel(hv, &cerr) < 0) /* the mirrors */
                log_warn("vm %s: migrate_cancel: %s", name, cerr);
            undo(d, m, hv, base_path);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            if (r == -ECANCELED) {
                log_info("vm %s: migration to %s cancelled while copying disks; the VM runs "
                         "on here", name, m->to_name);
                return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
            }
            log_warn("vm %s: migration to %s failed: %s", name, m->to_name, error);
            return vo_task_fail(t, r, "migration of VM '%s' to host '%s' failed (the VM "
                                "runs on here): %s", name, m->to_name, error);
        }
    }

    /* 2. Memory. */
    int64_t at_disks = vo_now_ms();
    VoHvMigrationOptions opts = {
        .max_bandwidth = m->opts.bandwidth ? m->opts.bandwidth : VO_MIGRATE_UNLIMITED_BANDWIDTH,
        .downtime_limit_ms = m->opts.max_downtime_ms ? m->opts.max_downtime_ms
                                                     : VO_MIGRATE_DEFAULT_DOWNTIME_MS,
        .auto_converge = true,
        .force_converge = m->opts.force_converge,
        .post_copy = m->opts.post_copy,
        .post_copy_bandwidth = vo_migrate_test_post_copy_bandwidth(),
    };
    unsigned converge_s = m->opts.converge_timeout_s ? m->opts.converge_timeout_s
                                                     : VO_MIGRATE_DEFAULT_CONVERGE_TIMEOUT_S;
    VoHvMigrationTls tls;
    opts.tls = vo_migration_tls(d, &tls); /* between hosts: mutual TLS */
    if (vo_task_cancelled(t)) { /* cancelled while the destination prepared */
        _cleanup_free_ char *aerror = NULL;
        (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, false);
        return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
    }
    log_info("vm %s: migrating to host %s (%s)", name, m->to_name, uri_copy);
    intent_phase(m, "memory", 0);
    r = d->driver->migrate_start(hv, uri_copy, &opts, &error);
    if (r < 0) {
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        return vo_task_fail(t, r, "cannot start migrating VM '%s': %s", name, error);
    }
    int64_t at_migrate = vo_now_ms();
    VoHvMigrationProgress p = { 0 };
    int64_t shown = 0, cancel_at = 0, memory_start = vo_now_ms(), switch_start = 0;
    bool cancelled = false, unconfirmed = false, post_copy_asked = false, post_copy_on = false;
    _cleanup_free_ char *stuck = NULL; /* did not converge in time: why */
    unsigned max_throttle = 0;
    int query_errors = 0;
    for (;;) {
        free(p.error);
        p.error = NULL;
        r = d->driver->migrate_query(hv, &p);
        if (r < 0 && ++query_errors < QUERY_TRIES) { /* it may have completed all the same */
            (void)poll(NULL, 0, POLL_MS);
            continue;
        }
        if (r < 0)
            break;
        query_errors = 0;
        if (p.status == VO_HV_MIGRATION_COMPLETED || p.status == VO_HV_MIGRATION_FAILED ||
            p.status == VO_HV_MIGRATION_CANCELLED)
            break;
        if (p.at_switchover && !cancelled && !stuck)
            break; /* post-copy: both paused before the switch-over (below) */
        if (!cancelled && vo_task_cancelled(t)) {
            cancelled = true;
            cancel_at = vo_now_ms();
            _cleanup_free_ char *cerr = NULL;
            if (d->driver->migrate_cancel(hv, &cerr) < 0)
                log_warn("vm %s: migrate_cancel: %s", name, cerr);
        }
        if (p.throttle_pct > max_throttle)
            max_throttle = p.throttle_pct;
        if (!p.switching)
            switch_start = 0;
        else if (!switch_start)
            switch_start = vo_now_ms();
        VoConvergeView converge = { .progress = &p, .elapsed_ms = vo_now_ms() - memory_start,
                                    .switching_ms = switch_start ? vo_now_ms() - switch_start : 0,
                                    .limit_s = converge_s, .max_throttle = max_throttle,
                                    .force = m->opts.force_converge };
        /* Post-copy: once the first full pass is sent (QEMU's second dirty
         * sync), the rest follows after the switch-over instead. */
        if (m->opts.post_copy && !post_copy_asked && !cancelled && !stuck &&
            p.status == VO_HV_MIGRATION_ACTIVE && !p.switching && p.passes >= 2) {
            post_copy_asked = true;
            _cleanup_free_ char *perr = NULL;
            post_copy_on = d->driver->migrate_start_post_copy(hv, &perr) >= 0;
            if (!post_copy_on) /* asked once: the converge limit still holds */
                log_warn("vm %s: the switch to post-copy was refused (pre-copy goes on): %s",
                         name, perr);
            else
                log_info("vm %s: switching to post-copy after %llu MiB", name,
                         (unsigned long long)(p.transferred >> 20));
        }
        if (!cancelled && !stuck && !post_copy_on && vo_migrate_not_converging(&converge)) {
            /* Not converged within the limit: aborted as a cancel is. */
            stuck = vo_migrate_not_converged_why(&converge);
            log_warn("vm %s: migration to %s %s", name, m->to_name, stuck);
            cancel_at = vo_now_ms();
            _cleanup_free_ char *cerr = NULL;
            if (d->driver->migrate_cancel(hv, &cerr) < 0)
                log_warn("vm %s: migrate_cancel: %s", name, cerr);
        }
        if (p.status == VO_HV_MIGRATION_ACTIVE && p.transferred > 0 &&
            vo_migrate_fault("exit-in-memory")) /* test: the source dies mid-copy */
            _exit(70);
        if ((cancelled || stuck) && vo_now_ms() - cancel_at > CANCEL_WAIT_MS) {
            unconfirmed = true; /* no final status: not resumed over a cancel under way */
            break;
        }
        if (vo_now_ms() - shown >= PROGRESS_EVERY_MS) {
            shown = vo_now_ms();
            int pct = p.total ? (int)(5 + 85 * (p.transferred > p.total ? p.total
                                                                          : p.transferred) /
                                              p.total)
                              : 5;
            json_t *det = progress_json("memory", &p, start);
            json_object_set_new(det, "converge_timeout_s", json_integer(converge_s));
            /* The throttle in the words too: the CLI's progress line shows them. */
            _cleanup_free_ char *copying =
                p.throttle_pct ? vo_asprintf("copying memory (vCPUs throttled %u%%%s)",
                                             p.throttle_pct,
                                             m->opts.force_converge ? ", --force-converge" : "")
                               : vo_strdup("copying memory");
            vo_task_set_details(t, pct, cancelled ? "cancelling"
                                        : stuck   ? "aborting: not converging"
                                                  : copying, det);
        }
        (void)poll(NULL, 0, MEMORY_POLL_MS);
    }
    /* A cancel that raced the completion is still honoured: the switch has
     * not happened. */
    bool at_switch = r >= 0 && p.status == VO_HV_MIGRATION_ACTIVE && p.at_switchover;
    if (r >= 0 && (p.status == VO_HV_MIGRATION_COMPLETED || at_switch) && vo_task_cancelled(t))
        cancelled = true;
    if (r < 0 || (p.status != VO_HV_MIGRATION_COMPLETED && !at_switch) || cancelled) {
        _cleanup_free_ char *why = p.error ? vo_strdup(p.error)
                                   : r < 0 ? vo_strdup(strerror(-r))
                                           : vo_asprintf("the migration ended %s",
                                                         vo_hv_migration_status_to_string(p.status));
        free(p.error);
        if (unconfirmed) {
            _cleanup_free_ char *aerror = NULL;
            (void)vo_migrate_peer_call(d, m->to_url, "DELETE", base_path, NULL, NULL, &aerror);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, -ETIMEDOUT, "%s%scancelled, but QEMU did not confirm the "
                                "cancel within %d s: VM '%s' stays here as QEMU has it (see "
                                "vireo vm show; vireo vm resume if it is paused)",
                                stuck ? stuck : "", stuck ? "; " : "", CANCEL_WAIT_MS / 1000,
                                name);
        }
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        if (cancelled) {
            log_info("vm %s: migration to %s cancelled; the VM runs on here", name, m->to_name);
            return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
        }
        if (stuck)
            return vo_task_fail(t, -ETIMEDOUT, "migration of VM '%s' to host '%s' failed (the "
                                "VM runs on here): %s", name, m->to_name, stuck);
        log_warn("vm %s: migration to %s failed: %s", name, m->to_name, why);
        return vo_task_fail(t, r < 0 ? r : -EIO, "migration of VM '%s' to host '%s' failed "
                            "(the VM runs on here): %s", name, m->to_name, why);
    }
    free(p.error);
    p.error = NULL;
    int64_t at_completed = vo_now_ms();
    /* Not written to the store now: the guest is paused until the
     * destination continues it (the switch's own transaction is enough). */
    vo_task_set_details_unwritten(t, 92, "switching over",
                                  progress_json("switchover", &p, start));

    /* 3. Both sides paused: RAM compared when asked (post-copy: after the
     * switch-over, below, when the destination has the device state and
     * fetches what it lacks as it is read). */
    bool verified = false;
    if (m->opts.verify_memory && !at_switch) {
        r = verify_memory(d, m, hv, digest_path, &error);
        if (r < 0) {
            undo(d, m, hv, base_path);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, r, "memory check of VM '%s' failed (the VM runs on here): %s",
                                name, error);
        }
        verified = true;
    }

    /* 4. The ownership switch, before the destination runs. The last
     * moment a cancel is honoured. */
    int64_t at_verified = vo_now_ms();
    if (vo_task_cancelled(t)) {
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        log_info("vm %s: migration to %s cancelled; the VM runs on here", name, m->to_name);
        return vo_task_fail(t, -ECANCELED, "cancelled: VM '%s' runs on here", name);
    }
    if (vo_migrate_fault("commit-early")) { /* test: the destination must not believe us */
        pthread_mutex_lock(&vm->lock);
        json_t *early = json_pack("{s:I, s:b}", "rev", (json_int_t)vm->rev, "resume", resume);
        pthread_mutex_unlock(&vm->lock);
        _cleanup_free_ char *eerr = NULL;
        int e = vo_migrate_peer_call(d, m->to_url, "POST", commit_path, early, NULL, &eerr);
        json_decref(early);
        if (e >= 0) {
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            return vo_task_fail(t, -EIO, "test fault: the destination took a commit before "
                                "the switch");
        }
        log_info("vm %s: test fault: an early commit was refused: %s", name, eerr);
    }
    pthread_mutex_lock(&vm->lock);
    (void)vo_vm_save_flush(vm); /* a save due (vm-save-later.c) before the switch */
    int64_t rev = vm->rev;
    vm->migrated_away = true; /* no write of its documents from here on */
    pthread_mutex_unlock(&vm->lock);
    intent_phase(m, "switch", rev);
    int64_t new_rev = 0;
    VoVolumeMove *vols = volume_moves(m, false);
    r = 0;
    for (size_t i = 0; i < m->n_disks; i++)
        if (r >= 0)
            r = vo_volume_moving_begin(d, vols[i].from, &error);
    if (r < 0) {
        /* an intent could not be recorded: no switch */
    } else if (vo_migrate_fault("txn-lost")) { /* test: the txn never reached etcd */
        r = vo_error_set(&error, VO_STORE_EUNKNOWN, "test fault: no answer to the transaction");
    } else {
        r = vo_vm_move_volumes_txn(d->cluster_store, vm_id, d->host_id, m->to_id, rev, vols,
                                   m->n_disks, &new_rev, &error);
        if (r >= 0 && vo_migrate_fault("txn-unknown")) /* test: applied, answer lost */
            r = vo_error_set(&error, VO_STORE_EUNKNOWN, "test fault: the answer was lost");
    }
    volume_moves_free(vols, m->n_disks);
    if (r < 0 && switch_outcome_unknown(r)) {
        r = settle_switch(t, d, m, vm, name, vm_id, rev, &new_rev, &error);
        if (r == -ETIMEDOUT || r == -EIO) {
            /* Whether the VM is the destination's is unknown: neither side
             * runs it (the destination's watcher continues it if the store
             * says it is its own). The moving volumes' intents stay: the
             * start-up sweep removes their files if their documents left. */
            log_error("vm %s: %s; the source stays paused", name, error);
            m->keep_intent = true; /* settled from it (migrate-resettle.h) */
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            vo_migrate_resettle_later(d, vm_id, name, mig_id);
            return vo_task_fail(t, r, "the switch of VM '%s' to host '%s' has an unknown "
                                "outcome: %s; the source QEMU stays paused (never resumed "
                                "while the VM may be the destination's) until the store "
                                "answers: vireod asks it again in the background", name,
                                m->to_name, error);
        }
    }
    if (r >= 0)
        intent_phase(m, "switched", rev);
    /* Post-copy: from here this QEMU holds what the destination lacks (the
     * device state, then the pages it has not fetched): nothing but the
     * migration may end it, not even a fencing (post-copy-kept.h). */
    if (r >= 0 && at_switch) {
        pthread_mutex_lock(&vm->lock);
        pid_t pid = vm->info.pid;
        pthread_mutex_unlock(&vm->lock);
        vo_post_copy_kept_mark(d, vm_id, name, m->to_id, pid);
    }
    if (r >= 0 && vo_migrate_fault("exit-after-txn")) /* test: the source dies here */
        _exit(70);
    if (r < 0)
        moving_end(d, m, false);
    if (r < 0) {
        pthread_mutex_lock(&vm->lock);
        vm->migrated_away = false;
        pthread_mutex_unlock(&vm->lock);
        undo(d, m, hv, base_path);
        vo_migrate_clear_mark(vm);
        vo_vm_job_end(vm, true);
        return vo_task_fail(t, r, "the switch of VM '%s' to host '%s' failed (the VM runs on "
                            "here): %s", name, m->to_name, error);
    }

    /* 4b. Post-copy: the switch-over goes on now that the store gives the
     * VM to the destination; RAM is compared once the device state is there. */
    bool in_post_copy = false;
    _cleanup_free_ char *verify_error = NULL; /* too late to undo: the task fails at its end */
    int resume_tries = vo_migrate_resume_tries(); /* post-copy recoveries, the whole budget */
    if (at_switch) {
        r = vo_migrate_continue_switchover(d, hv, &in_post_copy, &error);
        if (r >= 0 && in_post_copy && vo_migrate_fault("post-copy-hold")) {
            /* test: held here, in post-copy, until released (its link
             * broken meanwhile), and until QEMU saw it break */
            vo_migrate_fault_wait("post-copy-release", 300000);
            _cleanup_free_ char *ignored = NULL;
            (void)vo_migrate_wait_post_copy_paused(d, hv, false, &ignored);
        }
        /* A stream that broke already is mended before the RAM compare
         * (the destination's hash would wait for its pages) and the
         * commit. */
        VoHvMigrationProgress mid = { 0 };
        if (r >= 0 && in_post_copy && d->driver->migrate_query(hv, &mid) >= 0 &&
            (mid.post_copy_paused || mid.post_copy_recovering)) {
            log_warn("vm %s: post-copy to host %s broke before its commit: recovering", name,
                     m->to_name);
            if (vo_migrate_resume_post_copy(d, hv, m->to_url, mig_id, vm_id, name,
                                            &resume_tries, &error) < 0) {
                free(mid.error);
                return keep_both(t, d, m, vm, hv, name, vm_id, error);
            }
        }
        free(mid.error);
        if (r >= 0 && m->opts.verify_memory) {
            verified = verify_memory(d, m, hv, digest_path, &verify_error) >= 0;
            if (!verified)
                log_error("vm %s: memory check after the switch-over failed: %s", name,
                          verify_error);
        }
        if (r >= 0)
            log_info("vm %s: switched over to host %s%s", name, m->to_name,
                     in_post_copy ? " (post-copy: the rest of memory follows)" : "");
    }

    /* 5. The destination continues the VM; this QEMU ends. Never resumed
     * here again: the documents say the VM is the destination's. */
    int64_t at_switched = vo_now_ms();
    bool commit_unanswered = false;
    _cleanup_free_ char *console = console_tail_b64(d, vm);
    json_t *commit = json_pack("{s:I, s:b}", "rev", (json_int_t)new_rev, "resume", resume);
    if (console)
        json_object_set_new(commit, "console_log_b64", json_string(console));
    for (int i = 0; r >= 0 && i < COMMIT_TRIES; i++) {
        free(error);
        error = NULL;
        /* A commit is idempotent: a retry of one that was applied answers 200. */
        if (vo_migrate_fault("commit-lost")) { /* test: the destination never answers */
            r = vo_error_set(&error, -EIO, "test fault: the commit got no answer");
            break;
        }
        r = vo_migrate_peer_call(d, m->to_url, "POST", commit_path, commit, NULL, &error);
        if (r >= 0 || r == -EINVAL)
            break; /* done, or a request it cannot read */
        (void)poll(NULL, 0, 1000);
    }
    json_decref(commit);
    if (r < 0 && in_post_copy) {
        /* The source cannot take it back (QEMU will not cancel post-copy),
         * and the store gives it to the destination, whose watcher claims
         * and continues it; the rest of RAM still goes from here. */
        log_error("vm %s: host %s did not answer the commit in post-copy (%s): its own "
                  "watcher continues the VM", name, m->to_name, error);
        commit_unanswered = true;
        r = 0;
    }
    if (r < 0) {
        int b = take_back(d, m, vm, name, vm_id, new_rev, &error);
        if (b == 0) { /* the documents are here again: the source runs on */
            vo_post_copy_kept_unmark(d, vm_id);
            moving_end(d, m, false); /* the volumes' files stay here */
            undo(d, m, hv, base_path);
            vo_migrate_clear_mark(vm);
            vo_vm_job_end(vm, true);
            return vo_task_fail(t, -EIO, "host '%s' did not take VM '%s' over (%s); the VM "
                                "was given back and runs on here", m->to_name, name, error);
        }
        if (b < 0) {
            log_error("vm %s: the destination did not commit and the VM could not be taken "
                      "back: %s; the source stays paused", name, error);
            m->keep_intent = true; /* settled from it (migrate-resettle.h) */
            vo_migrate_clear_mark(vm);
            pthread_mutex_unlock(&vm->job);
            vo_migrate_resettle_later(d, vm_id, name, mig_id);
            return vo_task_fail(t, b, "VM '%s' now belongs to host '%s' but its destination "
                                "did not take it over: %s; the source QEMU stays paused "
                                "(never resumed: two copies must not run) until the store "
                                "says where the VM is: vireod asks it again in the "
                                "background", name, m->to_name, error);
        }
        /* b == 1: the destination claimed it (its watcher continues it). */
        log_info("vm %s: host %s claimed the VM itself", name, m->to_name);
    }
    int64_t at_committed = vo_now_ms();
    VoHvMigrationProgress fin = { 0 };
    _cleanup_free_ char *post_copy_broke = NULL;
    /* A stream that breaks is recovered (bounded): the guest's memory is
     * split between the hosts, so neither QEMU may end while it is. */
    while (in_post_copy &&
           vo_migrate_finish_post_copy(t, d, hv, start, &fin, &post_copy_broke) < 0) {
        log_error("vm %s: post-copy to host %s broke: %s", name, m->to_name, post_copy_broke);
        if (!vo_migrate_post_copy_recoverable(&fin))
            break; /* failed outright: nothing to recover */
        free(post_copy_broke);
        post_copy_broke = NULL;
        if (vo_migrate_resume_post_copy(d, hv, m->to_url, mig_id, vm_id, name, &resume_tries,
                                        &post_copy_broke) < 0) {
            free(fin.error);
            return keep_both(t, d, m, vm, hv, name, vm_id, post_copy_broke);
        }
    }
    if (!in_post_copy)
        (void)d->driver->migrate_query(hv, &fin);
    free(fin.error);
    int64_t at_post_copied = vo_now_ms();
    end_source(d, m, vm, hv, name);
    vo_drs_note_moved(d, vm_id, m->to_id); /* DRS's cooldown counts from here */
    if (verify_error)
        return vo_task_fail(t, -EIO, "memory check of VM '%s' after the switch-over failed "
                            "(the VM runs on host '%s'): %s", name, m->to_name, verify_error);
    if (post_copy_broke)
        return vo_task_fail(t, -EIO, "post-copy of VM '%s' to host '%s' broke after the VM "
                            "moved there (%s): it runs there with memory pages that never "
                            "arrived, and must be restarted (vireo vm stop --force, then vireo "
                            "vm start)", name, m->to_name, post_copy_broke);
    int64_t total = vo_now_ms() - start;
    json_t *result = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "vm", vm_id, "to",
                               m->to_name, "total_time_ms", (json_int_t)total,
                               "migration_time_ms", (json_int_t)fin.total_time_ms,
                               "downtime_ms", (json_int_t)fin.downtime_ms, "bytes",
                               (json_int_t)fin.transferred, "memory_verified", verified);
    /* The disks' part (the local disks mirrored): 0 when every disk is on
     * a shared pool (dir or rbd), which the destination opens itself. */
    json_object_set_new(result, "disk_bytes", json_integer((json_int_t)m->disk_bytes));
    json_object_set_new(result, "disks_copied", json_integer((json_int_t)m->n_disks));
    /* Post-copy: whether the phase ran (a pre-copy may converge first) and
     * how long the rest of RAM took after the destination continued. */
    if (m->opts.post_copy)
        json_object_set_new(result, "post_copy",
                            json_pack("{s:b, s:I, s:b}", "ran", in_post_copy, "after_switch_ms",
                                      (json_int_t)(at_post_copied - at_committed),
                                      "commit_unanswered", commit_unanswered));
    /* Where the time went (ms), in order: each phase from the end of the
     * one before; the guest is paused from the end of "memory" (QEMU's own
     * downtime before that) to the end of "commit" (the destination runs). */
    json_object_set_new(result, "phases_ms",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "prepare",
                                  (json_int_t)(at_prepared - start), "disks",
                                  (json_int_t)(at_disks - at_prepared), "memory_setup",
                                  (json_int_t)(at_migrate - at_disks), "memory",
                                  (json_int_t)(at_completed - at_migrate), "verify",
                                  (json_int_t)(at_verified - at_completed), "switch",
                                  (json_int_t)(at_switched - at_verified), "commit",
                                  (json_int_t)(at_committed - at_switched), "finish",
                                  (json_int_t)(start + total - at_committed)));
    if (m->n_disks) {
        json_t *moved = json_array();
        for (size_t i = 0; i < m->n_disks; i++)
            json_array_append_new(moved, json_sprintf("%s/%s", m->pool, m->disks[i].name));
        json_object_set_new(result, "volumes", moved);
    }
    if (m->opts.force_converge) /* what the forced convergence did */
        json_object_set_new(result, "force_converge",
                            json_pack("{s:i, s:i, s:b, s:i}", "cpu_throttle_initial",
                                      VO_HV_FORCE_THROTTLE_INITIAL, "cpu_throttle_increment",
                                      VO_HV_FORCE_THROTTLE_INCREMENT, "tailslow", 1,
                                      "max_throttle_percent", (int)max_throttle));
    if (vo_task_cancelled(t)) /* too late: the VM had switched hosts already */
        json_object_set_new(result, "cancel", json_string("too late: the VM had switched "
                                                          "hosts when the cancel came"));
    vo_task_set_result(t, result);
    vo_task_set_details(t, 100, "done", progress_json("done", &fin, start));
    log_info("vm %s: migrated to host %s in %lld ms (downtime %llu ms)", name, m->to_name,
             (long long)total, (unsigned long long)fin.downtime_ms);
    return 0;
}

/* ---- checks and submit ------------------------------------------------------ */

static int collect_network(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    const char *slash = strrchr(key, '/');
    vo_strv_push(userdata, vo_strdup(slash ? slash + 1 : key));
    return 0;
}

static json_t *host_record(VoDaemon *d, const char *host_id)
{
    _cleanup_free_ char *key = vo_asprintf("cluster/hosts/%s", host_id), *text = NULL;
    return vo_store_get(d->store, key, &text, NULL) >= 0 ? json_loads(text, 0, NULL) : NULL;
}

/* The project of each of the target's own networks ("" for none; a
 * cluster network is of scope "cluster", the same on both hosts, and reads
 * as none here), or NULL when one cannot be read: the target's prepare
 * then has the last word, as for any network. */
static char **target_network_projects(VoDaemon *d, const char *target_id, char **nets)
{
    char **projects = vo_malloc0((vo_strv_len(nets) + 1) * sizeof(char *));
    for (size_t i = 0; nets[i]; i++) {
        char *project = NULL;
        if (vo_host_network_project(d, target_id, nets[i], &project) < 0) {
            vo_strv_free(projects);
            return NULL;
        }
        projects[i] = project ? project : vo_strdup("");
    }
    return projects;
}

/* Before the target is asked to prepare (cluster/migrate-compat.h): 409
 * (-EBUSY) with every reason the VM cannot run there. */
int vo_migrate_check_compat(VoDaemon *d, VoVm *vm, const VoVmSpec *spec, const char *target_id,
                            const char *target_name, const char *verb, char **ret_error)
{
    /* On the HTTP thread: a VM busy with another task is refused at once
     * (409); the monitoring and balancing samplers' moment is waited for
     * (daemon/vm-job.h). */
    int r = vo_vm_job_wait_brief(vm, VO_VM_JOB_BRIEF_WAIT_MS, verb, ret_error);
    if (r < 0)
        return r;
    VoHvInstance *hv = vm->hv;
    _cleanup_free_ char *layout = NULL, *lerror = NULL;
    if (hv && d->driver->layout(hv, &layout, &lerror) < 0)
        log_warn("vm %s: no layout for the compatibility check: %s", spec->name, lerror);
    vo_vm_job_end_brief(vm);
    _cleanup_strv_ char **nets = vo_malloc0(sizeof(char *));
    _cleanup_free_ char *prefix = vo_asprintf("h/%s/networks/", target_id);
    (void)vo_store_list(d->cluster_store, prefix, collect_network, &nets);
    _cleanup_strv_ char **projects = target_network_projects(d, target_id, nets);
    VoMigrateCompat c = { .source_record = host_record(d, d->host_id),
                          .target_record = host_record(d, target_id), .spec = spec,
                          .layout = layout, .target_networks = (const char *const *)nets,
                          .target_network_projects = (const char *const *)projects };
    _cleanup_free_ char *reasons = NULL;
    r = vo_migrate_compat_check(&c, &reasons);
    json_decref(c.source_record);
    json_decref(c.target_record);
    if (r < 0)
        return vo_error_set(ret_error, -EBUSY, "VM '%s' cannot move to host '%s': %s",
                            spec->name, target_name, reasons ? reasons : strerror(-r));
    return 0;
}

static void local_disks_free(LocalDisk *disks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(disks[i].pool);
        free(disks[i].name);
        free(disks[i].format);
        free(disks[i].image);
    }
    free(disks);
}

/* The target's pool for local disks: a pool of its own there (not
 * shared, not for backups). 409 otherwise. */
static int check_target_pool(VoDaemon *d, const char *target_id, const char *target_name,
                             const char *pool, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("h/%s/pools/%s", target_id, pool), *text = NULL;
    int r = vo_store_get(d->cluster_store, key, &text, NULL);
    if (r == -ENOENT) {
        _cleanup_free_ char *shared = vo_asprintf("cluster/pools/%s", pool);
        bool is_shared = vo_store_get(d->cluster_store, shared, NULL, NULL) >= 0;
        return vo_error_set(ret_error, -EBUSY, "pool: host '%s' has no pool '%s' of its own%s "
                            "(see vireo pool list on it; --pool names the pool there that "
                            "local disks go to)", target_name, pool,
                            is_shared ? " (it is a shared pool)" : "");
    }
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read host '%s''s pool '%s': %s", target_name,
                            pool, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    const char *type = json_string_value(json_object_get(doc, "type"));
    bool backup = type && !strcmp(type, VO_BACKUP_POOL_TYPE);
    json_decref(doc);
    if (backup)
        return vo_error_set(ret_error, -EBUSY, "pool: '%s' on host '%s' is a backup pool: "
                            "volumes go to a dir pool", pool, target_name);
    return 0;
}

/* A VM with local disks and snapshots: its snapshots live inside those
 * disks' qcow2 files (internal snapshots, memory state in disk 0), and
 * a mirror copies only what the guest sees now, so the destination's
 * files would have none while the snapshot documents went along. 409
 * (-EBUSY) saying what to do instead. */
static int check_no_snapshots(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    size_t n = 0;
    _cleanup_free_ char *prefix = vo_key_snapshots_prefix(spec->id);
    int r = vo_store_count(d->store, prefix, &n);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read VM '%s''s snapshots: %s", spec->name,
                            strerror(-r));
    if (n == 0)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' has %zu snapshot%s, kept inside its disks "
                        "on this host's own pools: a live migration copies only the disks' "
                        "current state, so they would be lost; delete them first (vireo "
                        "snapshot list %s), or stop the VM and use vireo vm move, which "
                        "copies the whole files", spec->name, n, n == 1 ? "" : "s",
                        spec->name);
}

/* A shared pool (dir or rbd) that the target's host record says it does
 * not reach (pools_unreachable: its NFS mount missing, its Ceph monitors
 * not answering): 409 naming the pool and the target's reason, before the
 * destination's QEMU would wait on it. No record: 0 (the host check and
 * the destination's prepare answer for it). */
static int check_target_reaches(VoDaemon *d, const char *target_id, const char *target_name,
                                const char *key, const char *pool, char **ret_error)
{
    _cleanup_free_ char *record_key = vo_asprintf("cluster/hosts/%s", target_id);
    _cleanup_free_ char *text = NULL;
    if (vo_store_get(d->store, record_key, &text, NULL) < 0)
        return 0;
    json_t *record = json_loads(text, 0, NULL);
    const char *why = json_string_value(
        json_object_get(json_object_get(record, "pools_unreachable"), pool));
    int r = why ? vo_error_set(ret_error, -EBUSY, "disk %s: host '%s' cannot reach pool '%s': "
                               "%s (vireo pool show %s on that host)", key, target_name, pool,
                               why, pool)
                : 0;
    json_decref(record);
    return r;
}

/* The VM's disks and UEFI NVRAM on this host's own pools (to be
 * mirrored; the NVRAM as slot VO_HV_NVRAM_SLOT), after the checks: no
 * kernel or initrd from such a volume, no CD-ROM medium on one
 * (vo_migrate_check_cdrom), the target's pool exists, no volume of the
 * same name in it there. 409 (-EBUSY) with what to fix. */
static int check_disks(VoDaemon *d, const VoVmSpec *spec, const char *target_id,
                       const char *target_name, const char *pool, LocalDisk **ret_disks,
                       size_t *ret_n, char **ret_error)
{
    int r = vo_migrate_check_cdrom(d, spec, "vm migrate", ret_error);
    if (r < 0)
        return r;
    LocalDisk *disks = vo_malloc0(sizeof(*disks) * (spec->n_disks + 2));
    size_t n = 0;
    const size_t nvram_at = spec->n_disks + 2;
    for (size_t i = 0; r >= 0 && i < VO_MIGRATE_VOLUMES(spec); i++) {
        const char *key = vo_migrate_volume_at(spec, i);
        if (!key)
            continue;
        _cleanup_free_ char *vpool = NULL, *vname = NULL;
        if (vo_volume_key_split(key, &vpool, &vname) < 0) {
            r = vo_error_set(ret_error, -EINVAL, "disk '%s' is not POOL/NAME", key);
            break;
        }
        json_t *doc = NULL;
        _cleanup_free_ char *error = NULL;
        bool shared = vo_pool_get_json(d, vpool, &doc, &error) >= 0 &&
                      json_is_true(json_object_get(doc, "shared"));
        json_decref(doc);
        if (shared) {
            r = check_target_reaches(d, target_id, target_name, key, vpool, ret_error);
            continue;
        }
        if (i >= spec->n_disks && i < nvram_at) {
            r = vo_error_set(ret_error, -EBUSY, "boot file '%s' is on pool '%s', which is this "
                             "host's own: only disks are copied by a migration (keep the "
                             "kernel and initrd in an image or a shared pool)", key, vpool);
            break;
        }
        json_t *vol = NULL;
        if ((r = vo_volume_get_json(d, vpool, vname, &vol, &error)) < 0) {
            r = vo_error_set(ret_error, r == -ENOENT ? -EBUSY : r, "disk %s: %s", key, error);
            break;
        }
        const char *image = json_string_value(json_object_get(vol, "image"));
        bool from_volume = json_is_string(json_object_get(vol, "backing_volume"));
        json_int_t size = json_integer_value(json_object_get(vol, "virtual_size_bytes"));
        disks[n] = (LocalDisk){
            .slot = i < spec->n_disks ? spec->disks[i].slot : VO_HV_NVRAM_SLOT,
            .pool = vo_strdup(vpool), .name = vo_strdup(vname),
            .format = vo_strdup(json_string_value(json_object_get(vol, "format"))),
            .size = size > 0 ? (uint64_t)size : 0, .image = vo_strdup(image),
            /* a clone of a volume is copied whole: it stands alone there */
            .flatten = from_volume };
        json_decref(vol);
        n++;
        if (!disks[n - 1].size || !disks[n - 1].format) {
            r = vo_error_set(ret_error, -EBUSY, "disk %s: its size cannot be read", key);
            break;
        }
        _cleanup_free_ char *there = vo_asprintf("h/%s/volumes/%s/%s", target_id, pool, vname);
        if (vo_store_get(d->cluster_store, there, NULL, NULL) >= 0)
            r = vo_error_set(ret_error, -EBUSY, "disk %s: host '%s' has a volume '%s/%s' "
                             "already (volumes keep their names: rename or delete that one, "
                             "or pick another pool with --pool)", key, target_name, pool,
                             vname);
    }
    if (r >= 0 && n)
        r = check_no_snapshots(d, spec, ret_error);
    if (r >= 0 && n)
        r = check_target_pool(d, target_id, target_name, pool, ret_error);
    if (r < 0) {
        local_disks_free(disks, n);
        return r;
    }
    *ret_disks = disks;
    *ret_n = n;
    return 0;
}

int vo_migrate_find_target(VoDaemon *d, VoVm *vm, const char *to, VoClusterHost *ret,
                           char **ret_error)
{
    if (!d->cluster_store)
        return vo_error_set(ret_error, -EBUSY, "this host is not in a cluster: there is no "
                            "host to move the VM to");
    _cleanup_free_ char *picked = NULL;
    if (!to) { /* the manager's choice with placement's rules */
        _cleanup_free_ char *vm_id = vo_vm_id(vm), *why = NULL;
        int p = vo_migrate_pick_target(d, vm_id, d->host_id, &picked, &why);
        if (p < 0)
            return vo_error_set(ret_error, p == -ENOENT ? -EBUSY : p,
                                "no target host for the VM: %s", why ? why : strerror(-p));
        to = picked;
    }
    VoClusterHost h = { 0 };
    int r = vo_cluster_host_find(d, to, &h);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -EINVAL, "to: no host '%s' in the cluster (see vireo "
                            "host list)", to);
    if (r < 0)
        return vo_error_set(ret_error, r, "to: cannot look host '%s' up: %s", to, strerror(-r));
    if (!strcmp(h.id, d->host_id)) {
        vo_cluster_host_clear(&h);
        return vo_error_set(ret_error, -EINVAL, "to: host '%s' is where the VM runs already",
                            to);
    }
    if (!h.online || !h.url) {
        r = vo_error_set(ret_error, -EBUSY, "to: host '%s' is offline", h.name);
        vo_cluster_host_clear(&h);
        return r;
    }
    *ret = h;
    return 0;
}

int vo_vm_migrate(VoDaemon *d, VoVm *vm, const VoMigrateArgs *args, json_t **ret_task,
                  char **ret_error)
{
    /* A UEFI VM's NVRAM goes along: on a shared pool the destination opens
     * the same volume; on a local one it is mirrored with the local disks
     * (check_disks). One without an NVRAM would start there with a fresh
     * one: refused. */
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *now = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    int r = vo_migrate_check_nvram(d, now, "vm migrate", ret_error);
    vo_vm_spec_free(now);
    if (r < 0)
        return r;
    VoClusterHost h = { 0 };
    r = vo_migrate_find_target(d, vm, args->to, &h, ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    VoVmState s = vm->state;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    _cleanup_free_ char *busy = vo_strdup(vm->migration_task);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    if (!busy) { /* held from here: a second migrate is refused */
        vm->migration_task = vo_strdup(PENDING);
        vm->migration_to = vo_strdup(h.name);
    }
    pthread_mutex_unlock(&vm->lock);
    const char *pool = args->pool ? args->pool : VO_DEFAULT_POOL;
    LocalDisk *disks = NULL;
    size_t n_disks = 0;
    if (busy)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' is migrating already (task %s)", name,
                         busy);
    else if (s != VO_VM_RUNNING && s != VO_VM_PAUSED)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' is %s, not running: use vireo vm move "
                         "for a stopped VM", name, vo_vm_state_to_string(s));
    else
        r = check_disks(d, spec, h.id, h.name, pool, &disks, &n_disks, ret_error);
    if (r >= 0 && args->post_copy && n_disks)
        r = vo_error_set(ret_error, -EINVAL, "post-copy needs every disk of VM '%s' on a "
                         "shared pool (%zu local disk(s) would be mirrored): migrate it "
                         "without --post-copy", name, n_disks);
    if (r >= 0 && args->post_copy &&
        (!d->driver->migrate_start_post_copy || !d->driver->migrate_continue))
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver has no post-copy",
                         d->driver->name);
    if (r >= 0)
        r = vo_migrate_check_compat(d, vm, spec, h.id, h.name, "migrate", ret_error);
    vo_vm_spec_free(spec);
    if (r < 0) {
        local_disks_free(disks, n_disks);
        if (!busy)
            vo_migrate_clear_mark(vm);
        vo_cluster_host_clear(&h);
        return r;
    }
    MigrateTask *m = vo_malloc0(sizeof(*m));
    *m = (MigrateTask){ .vm = vo_vm_ref(vm), .opts = *args, .to_id = TAKE_PTR(h.id),
                        .to_name = TAKE_PTR(h.name), .to_url = TAKE_PTR(h.url),
                        .pool = vo_strdup(pool), .disks = disks, .n_disks = n_disks };
    m->opts.to = NULL;
    m->opts.pool = NULL;
    vo_cluster_host_clear(&h);
    r = vo_vm_submit(d, vm, "migrate", task_migrate, m, migrate_task_free, ret_task, ret_error);
    if (r < 0) {
        vo_migrate_clear_mark(vm);
        return r;
    }
    pthread_mutex_lock(&vm->lock);
    if (vm->migration_task && !strcmp(vm->migration_task, PENDING)) { /* not over already */
        free(vm->migration_task);
        vm->migration_task = vo_strdup(json_string_value(json_object_get(*ret_task, "id")));
    }
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

int vo_migrate_check_disks(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    int r = vo_migrate_check_cdrom(d, spec, "vm move", ret_error);
    if (r < 0)
        return r;
    for (size_t i = 0; i < VO_MIGRATE_VOLUMES(spec); i++) {
        const char *key = vo_migrate_volume_at(spec, i);
        if (!key)
            continue;
        _cleanup_free_ char *pool = strndup(key, strcspn(key, "/"));
        if (!pool)
            abort();
        json_t *doc = NULL;
        _cleanup_free_ char *error = NULL;
        bool shared = vo_pool_get_json(d, pool, &doc, &error) >= 0 &&
                      json_is_true(json_object_get(doc, "shared"));
        json_decref(doc);
        if (!shared)
            return vo_error_set(ret_error, -EBUSY, "%s '%s' is on pool '%s', which is this "
                                "host's own", i < spec->n_disks ? "disk"
                                              : i < spec->n_disks + 2 ? "boot file"
                                                                      : "UEFI NVRAM",
                                key, pool);
    }
    return 0;
}

const char *vo_migrate_volume_at(const VoVmSpec *spec, size_t i)
{
    return i < spec->n_disks        ? spec->disks[i].volume
           : i == spec->n_disks     ? spec->kernel_from.volume
           : i == spec->n_disks + 1 ? spec->initrd_from.volume
           : i == spec->n_disks + 2 && spec->firmware == VO_FIRMWARE_UEFI ? spec->nvram
                                                                          : NULL;
}

int vo_migrate_check_cdrom(VoDaemon *d, const VoVmSpec *spec, const char *what,
                           char **ret_error)
{
    if (!spec->cdrom || vo_volume_is_shared(d, spec->cdrom))
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' has ISO volume '%s' in its CD-ROM drive, "
                        "on this host's own pool: %s does not copy CD-ROM media (other VMs "
                        "may use it); eject it first (vireo vm cdrom eject %s), or put the "
                        "ISO in a shared pool", spec->name, spec->cdrom, what, spec->name);
}

int vo_migrate_check_nvram(VoDaemon *d, const VoVmSpec *spec, const char *what,
                           char **ret_error)
{
    if (spec->firmware != VO_FIRMWARE_UEFI)
        return 0;
    _cleanup_free_ char *path = NULL, *format = NULL, *error = NULL;
    const char *missing = !spec->nvram ? "has no NVRAM volume"
                          : vo_volume_lookup(d, spec->nvram, &path, &format, NULL, &error) < 0
                              ? "names an NVRAM volume that does not exist"
                          /* a file's (rbd and iSCSI volumes have no path here) */
                          : path && path[0] == '/' && access(path, F_OK) < 0
                              ? "has lost its NVRAM volume's file"
                              : NULL;
    if (!missing)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' boots UEFI but %s%s%s%s: %s does not "
                        "move it without its UEFI variables; give it a fresh NVRAM first "
                        "(its boot entries start over: vireo vm set %s --firmware bios, then "
                        "vireo vm set %s --firmware uefi)", spec->name, missing,
                        spec->nvram ? " ('" : "", spec->nvram ? spec->nvram : "",
                        spec->nvram ? "')" : "", what, spec->name, spec->name);
}
