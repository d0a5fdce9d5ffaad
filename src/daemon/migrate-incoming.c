/* migrate-incoming.c: the destination side of a live migration
 * (migrate.h; docs/internals.md, "Live migration"), driven by the source
 * host through peer routes (/v1/migrations/incoming/...). prepare starts a
 * paused incoming QEMU from the source's VM document and hardware layout,
 * on taps of the same networks, listening on this host's cluster address;
 * digest hashes its RAM; commit (after the source's ownership transaction)
 * adopts it into the VM table and continues it; abort kills it and removes
 * what prepare made. An incoming VM that hears nothing for
 * VO_MIGRATION_INCOMING_IDLE_MS (its stream idle, no call) is aborted by
 * its watcher thread: a source that vanished leaves nothing behind. */
#include "daemon/migrate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/names.h"
#include "daemon/networks.h"
#include "daemon/vm-internal.h"
#include "util/util.h"

#define COMPLETE_WAIT_MS 60000
#define WATCH_EVERY_MS 1000

typedef struct Incoming Incoming;
struct Incoming {
    Incoming *next;
    char *id, *vm_id, *vm_name;
    VoVmSpec *spec;  /* as stored (names, no paths) */
    json_t *status;
    VoHvInstance *hv;
    int64_t touched_ms; /* last sign of the source */
    bool busy;          /* a call is using it (the watcher leaves it be) */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    Incoming *list;
    bool watcher;
} in = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };

/* Caller holds in.lock. */
static Incoming *find_locked(const char *id)
{
    for (Incoming *x = in.list; x; x = x->next)
        if (!strcmp(x->id, id) || !strcmp(x->vm_id, id))
            return x;
    return NULL;
}

static void unlink_locked(Incoming *x)
{
    for (Incoming **p = &in.list; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            return;
        }
}

static void incoming_free(Incoming *x)
{
    free(x->id);
    free(x->vm_id);
    free(x->vm_name);
    vo_vm_spec_free(x->spec);
    json_decref(x->status);
    free(x);
}

/* Takes the record id for a call: waits while another call has it. NULL
 * with -ENOENT when there is none. */
static Incoming *take(const char *id)
{
    pthread_mutex_lock(&in.lock);
    Incoming *x;
    while ((x = find_locked(id)) && x->busy)
        pthread_cond_wait(&in.changed, &in.lock);
    if (x) {
        x->busy = true;
        x->touched_ms = vo_now_ms();
    }
    pthread_mutex_unlock(&in.lock);
    return x;
}

static void give_back(Incoming *x, bool done)
{
    pthread_mutex_lock(&in.lock);
    x->busy = false;
    x->touched_ms = vo_now_ms();
    if (done)
        unlink_locked(x);
    pthread_cond_broadcast(&in.changed);
    pthread_mutex_unlock(&in.lock);
    if (done)
        incoming_free(x);
}

/* Kills the incoming QEMU and removes its run and state dirs. */
static void destroy(VoDaemon *d, Incoming *x)
{
    _cleanup_free_ char *error = NULL;
    if (x->hv) {
        if (d->driver->migrate_finish(x->hv, VO_HV_MIGRATION_DESTINATION, false, false,
                                      &error) < 0)
            log_warn("incoming VM %s: %s", x->vm_name, error);
        /* The process is gone (SIGKILL) once its exit fd turns readable. */
        int fd = d->driver->exit_fd(x->hv);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (fd >= 0)
            (void)poll(&p, 1, 10000);
        bool clean;
        _cleanup_free_ char *reason = NULL;
        d->driver->reap(x->hv, &clean, &reason);
        d->driver->release(x->hv);
        x->hv = NULL;
    }
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, x->vm_id);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, x->vm_id);
    (void)vo_rm_rf(run_dir);
    (void)vo_rm_rf(state_dir);
}

/* Aborts incoming VMs the source forgot: no call and no stream for
 * VO_MIGRATION_INCOMING_IDLE_MS. One thread while any exists. */
static void *watcher_main(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&in.lock);
    while (in.list) {
        int64_t now = vo_now_ms();
        Incoming *stale = NULL;
        for (Incoming *x = in.list; x && !stale; x = x->next) {
            if (x->busy)
                continue;
            VoHvMigrationProgress p = { 0 };
            if (x->hv && d->driver->migrate_query(x->hv, &p) >= 0 &&
                (p.status == VO_HV_MIGRATION_ACTIVE || p.status == VO_HV_MIGRATION_SETUP))
                x->touched_ms = now; /* the stream flows */
            free(p.error);
            if (now - x->touched_ms > VO_MIGRATION_INCOMING_IDLE_MS)
                stale = x;
        }
        if (stale) {
            unlink_locked(stale);
            pthread_mutex_unlock(&in.lock);
            log_warn("incoming VM %s (migration %s): nothing from its source for %d s: aborted",
                     stale->vm_name, stale->id, VO_MIGRATION_INCOMING_IDLE_MS / 1000);
            destroy(d, stale);
            incoming_free(stale);
            pthread_mutex_lock(&in.lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += WATCH_EVERY_MS / 1000;
        pthread_cond_timedwait(&in.changed, &in.lock, &ts);
    }
    in.watcher = false;
    pthread_mutex_unlock(&in.lock);
    return NULL;
}

/* A TCP port free on address now: bound to port 0, read back, closed.
 * QEMU binds it a moment later (a race with another program taking it in
 * between: then migrate-incoming fails and the migration is refused). */
static int free_port(const char *address, int *ret_port, char **ret_error)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
        return vo_error_set(ret_error, -EINVAL, "cluster address '%s' is not IPv4", address);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return vo_error_set(ret_error, -e, "no free port on %s: %s", address, strerror(e));
    }
    close(fd);
    *ret_port = ntohs(sa.sin_port);
    return 0;
}

int vo_migration_prepare(VoDaemon *d, json_t *body, json_t **ret, char **ret_error)
{
    const char *id = NULL, *layout = NULL, *source = NULL;
    json_t *doc = NULL;
    int resume = 1;
    json_error_t jerr;
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:s, s:o, s:s, s:s, s?b}", "id", &id, "vm",
                                &doc, "layout", &layout, "source_host", &source, "resume",
                                &resume) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad incoming migration: %s", jerr.text);
    if (!vo_uuid_valid(id))
        return vo_error_set(ret_error, -EINVAL, "id: not a UUID");
    if (!d->host_address)
        return vo_error_set(ret_error, -EBUSY, "this host has no cluster address");
    VoVmSpec *spec = NULL;
    int r = vo_vm_spec_from_json(json_object_get(doc, "spec"), &spec, ret_error);
    if (r < 0)
        return r;
    _cleanup_vm_ VoVm *here = vo_vms_find(d, spec->id);
    pthread_mutex_lock(&in.lock);
    bool twice = find_locked(spec->id) || find_locked(id);
    pthread_mutex_unlock(&in.lock);
    if (here || twice) {
        r = vo_error_set(ret_error, -EEXIST, "VM '%s' (%s) is on this host already%s",
                         spec->name, spec->id, twice ? " (an incoming migration)" : "");
        vo_vm_spec_free(spec);
        return r;
    }
    Incoming *x = vo_malloc0(sizeof(*x));
    *x = (Incoming){ .id = vo_strdup(id), .vm_id = vo_strdup(spec->id),
                     .vm_name = vo_strdup(spec->name), .spec = spec,
                     .status = json_incref(json_object_get(doc, "status")),
                     .touched_ms = vo_now_ms() };
    _cleanup_free_ char *run_dir = vo_vm_run_dir(d, spec->id);
    _cleanup_free_ char *state_dir = vo_vm_state_dir(d, spec->id);
    _cleanup_free_ char *uri = NULL;
    VoVmSpec *resolved = NULL;
    int *taps = NULL, port = 0;
    r = vo_mkdir_p(run_dir, 0700);
    if (r >= 0)
        r = vo_mkdir_p(state_dir, 0700);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot make the VM's directories: %s", strerror(-r));
    if (r >= 0)
        r = vo_vm_resolve(d, spec, &resolved, ret_error);
    if (r >= 0)
        r = vo_vm_open_taps(d, resolved, &taps, ret_error);
    if (r >= 0)
        r = free_port(d->host_address, &port, ret_error);
    if (r >= 0) {
        uri = vo_asprintf("tcp:%s:%d", d->host_address, port);
        VoHvMigrationTls tls; /* between hosts: mutual TLS */
        r = d->driver->migrate_prepare(d->driver, resolved, layout, run_dir, taps, uri,
                                       vo_migration_tls(d, &tls), &x->hv, ret_error);
    }
    if (taps)
        vo_vm_close_taps(taps, resolved->n_nics); /* QEMU holds its own copies */
    vo_vm_spec_free(resolved);
    if (r < 0) {
        destroy(d, x);
        incoming_free(x);
        return r;
    }
    pthread_mutex_lock(&in.lock);
    x->next = in.list;
    in.list = x;
    bool start_watcher = !in.watcher;
    in.watcher = true;
    pthread_mutex_unlock(&in.lock);
    if (start_watcher) {
        pthread_t th;
        if (pthread_create(&th, NULL, watcher_main, d) == 0)
            pthread_detach(th);
        else {
            pthread_mutex_lock(&in.lock);
            in.watcher = false;
            pthread_mutex_unlock(&in.lock);
        }
    }
    log_info("incoming VM %s from host %s: waiting on %s (migration %s)", x->vm_name, source,
             uri, id);
    *ret = json_pack("{s:s, s:s}", "id", id, "uri", uri);
    return 0;
}

/* Waits (bounded) until the incoming stream is complete. */
static int wait_complete(VoDaemon *d, Incoming *x, char **ret_error)
{
    int64_t deadline = vo_now_ms() + COMPLETE_WAIT_MS;
    for (;;) {
        VoHvMigrationProgress p = { 0 };
        int r = d->driver->migrate_query(x->hv, &p);
        _cleanup_free_ char *why = p.error;
        if (r < 0)
            return vo_error_set(ret_error, r, "the incoming VM does not answer: %s",
                                why ? why : strerror(-r));
        if (p.status == VO_HV_MIGRATION_COMPLETED)
            return 0;
        if (p.status == VO_HV_MIGRATION_FAILED || p.status == VO_HV_MIGRATION_CANCELLED)
            return vo_error_set(ret_error, -EIO, "the incoming migration %s: %s",
                                vo_hv_migration_status_to_string(p.status),
                                why ? why : "no reason given");
        if (vo_now_ms() > deadline)
            return vo_error_set(ret_error, -ETIMEDOUT, "the incoming migration is not "
                                "complete after %d s", COMPLETE_WAIT_MS / 1000);
        (void)poll(NULL, 0, 100);
    }
}

int vo_migration_digest(VoDaemon *d, const char *id, json_t **ret, char **ret_error)
{
    Incoming *x = take(id);
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    char digest[65] = "";
    int r = wait_complete(d, x, ret_error);
    if (r >= 0)
        r = d->driver->memory_digest
                ? d->driver->memory_digest(x->hv, digest, ret_error)
                : vo_error_set(ret_error, -EOPNOTSUPP, "the driver cannot digest memory");
    give_back(x, false);
    if (r >= 0)
        *ret = json_pack("{s:s}", "digest", digest);
    return r;
}

/* The console log the source had, so it continues here. */
static void write_console_log(VoDaemon *d, const char *vm_id, const char *b64)
{
    size_t n = strlen(b64);
    unsigned char *buf = vo_malloc0(n + 1);
    int len = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
    while (len > 0 && n > 0 && b64[n - 1] == '=') { /* DecodeBlock counts the padding */
        len--;
        n--;
    }
    _cleanup_free_ char *path = vo_asprintf("%s/vms/%s/console.log", d->state_dir, vm_id);
    if (len > 0 && vo_write_file_atomic(path, (const char *)buf, (size_t)len) < 0)
        log_warn("incoming VM %s: cannot write its console log", vm_id);
    free(buf);
}

int vo_migration_commit(VoDaemon *d, const char *id, json_t *body, char **ret_error)
{
    json_int_t rev = 0;
    int resume = 1;
    const char *console = NULL;
    json_error_t jerr;
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:I, s?b, s?s}", "rev", &rev, "resume",
                                &resume, "console_log_b64", &console) < 0)
        return vo_error_set(ret_error, -EINVAL, "bad commit: %s", jerr.text);
    Incoming *x = take(id);
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    int r = wait_complete(d, x, ret_error);
    if (r < 0) {
        give_back(x, false);
        return r;
    }
    if (console)
        write_console_log(d, x->vm_id, console);
    VoVm *vm = NULL;
    VoHvInstance *hv = x->hv;
    r = vo_vm_adopt_incoming(d, vo_vm_spec_copy(x->spec), x->status, rev, hv, &vm, ret_error);
    if (r < 0) {
        give_back(x, false);
        return r;
    }
    x->hv = NULL; /* the VM's now */
    _cleanup_free_ char *name = vo_strdup(x->vm_name);
    give_back(x, true);
    pthread_mutex_lock(&vm->job);
    _cleanup_free_ char *error = NULL;
    r = d->driver->migrate_finish(hv, VO_HV_MIGRATION_DESTINATION, true, resume, &error);
    pthread_mutex_lock(&vm->lock);
    if (r >= 0) {
        vm->info.paused = !resume;
        vo_vm_set_state_reason(vm, resume ? VO_VM_RUNNING : VO_VM_PAUSED,
                               resume ? NULL : VO_VM_REASON_USER);
    } else {
        log_error("vm %s: migrated here but cannot continue: %s", name, error);
    }
    pthread_mutex_unlock(&vm->lock);
    vo_vm_refresh_live(vm, hv);
    vo_vm_job_end(vm, true);
    vo_vm_unref(vm);
    vo_networks_refresh_hosts(d);
    log_info("vm %s: migrated here (%s)", name, resume ? "running" : "paused");
    if (r < 0)
        return vo_error_set(ret_error, r, "the VM is here but did not continue: %s", error);
    return 0;
}

int vo_migration_abort(VoDaemon *d, const char *id, char **ret_error)
{
    Incoming *x = take(id);
    if (!x)
        return vo_error_set(ret_error, -ENOENT, "no incoming migration %s", id);
    log_info("incoming VM %s (migration %s): aborted by its source", x->vm_name, x->id);
    destroy(d, x);
    give_back(x, true);
    return 0;
}
