/* qemu-migrate.c: live migration with QEMU, the driver's migrate_* and
 * layout ops (see driver.h and docs/internals.md, "Driver"). Libvirt's
 * order: the destination starts paused with -incoming defer (qemu-driver.c)
 * and is told where to listen with migrate-incoming; the source gets its
 * capabilities and parameters, then migrate; both are watched with
 * query-migrate; the end resumes the destination (cont, when the VM ran on
 * the source) and ends the source (quit), or, after a failure, resumes the
 * source (when it ran before). Every QMP round-trip runs
 * under the VM's qmp_lock. */
#include "qemu/qemu-migrate.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "qemu/qemu-instance.h"
#include "qemu/qemu-tls.h"
#include "util/cancel.h"
#include "util/util.h"

int vo_qemu_layout_text(VoHvInstance *vm, char **ret_layout, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vm->layout ? vo_qemu_layout_refresh(vm, ret_error)
                       : vo_error_set(ret_error, -ENODATA, "the VM's hardware layout is unknown");
    if (r >= 0)
        *ret_layout = vo_qemu_layout_to_text(vm->layout);
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

int vo_qemu_migration_uri_check(const char *uri, char **ret_error)
{
    const char *colon = uri && !strncmp(uri, "tcp:", 4) ? strrchr(uri + 4, ':') : NULL;
    if (colon && colon > uri + 4 && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1))
        return 0;
    if (uri && !strncmp(uri, "unix:/", 6) && strlen(uri) < 5 + 108)
        return 0;
    return vo_error_set(ret_error, -EINVAL,
                        "migration URI '%s' must be tcp:HOST:PORT or unix:/ABSOLUTE/PATH",
                        uri ? uri : "");
}

static json_t *capability(const char *name, bool on)
{
    return json_pack("{s:s, s:b}", "capability", name, "state", on);
}

int vo_qemu_migrate_incoming(VoHvInstance *vm, const char *uri, bool post_copy,
                             char **ret_error)
{
    int r = vo_qemu_migration_uri_check(uri, ret_error);
    if (r < 0)
        return r;
    /* exit-on-error off: a failed incoming migration stays to be asked
     * about (query-migrate's error-desc); the caller kills the instance. */
    json_t *args = json_pack("{s:s, s:b}", "uri", uri, "exit-on-error", 0);
    pthread_mutex_lock(&vm->qmp_lock);
    /* Post-copy needs its capability on both sides, before the stream
     * starts; QEMU refuses it where the kernel has no userfaultfd. */
    if (post_copy) {
        json_t *caps = json_pack("{s:[o]}", "capabilities", capability("postcopy-ram", true));
        _cleanup_free_ char *error = NULL;
        r = vo_qemu_command(vm, "migrate-set-capabilities", caps, NULL, &error);
        json_decref(caps);
        if (r < 0)
            r = vo_error_set(ret_error, -EOPNOTSUPP, "this host cannot take a post-copy "
                             "migration (QEMU: %s)", error);
    }
    if (r >= 0)
        r = vo_qemu_command(vm, "migrate-incoming", args, NULL, ret_error);
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(args);
    return r;
}

/* QEMU's defaults (migration/options.c: MAX_THROTTLE, DEFAULT_MIGRATE_SET_DOWNTIME). */
#define QEMU_MIGRATE_MAX_BANDWIDTH (128ull << 20)
#define QEMU_MIGRATE_DOWNTIME_LIMIT_MS 300

int vo_qemu_migrate_start(VoHvInstance *vm, const char *uri, const VoHvMigrationOptions *opts,
                          char **ret_error)
{
    static const VoHvMigrationOptions defaults = { 0 };
    if (!opts)
        opts = &defaults;
    int r = vo_qemu_migration_uri_check(uri, ret_error);
    if (r >= 0)
        r = vo_qemu_tls_check(opts->tls, uri, true, ret_error);
    if (r < 0)
        return r;
    /* "events": QEMU announces each state change (MIGRATION). Post-copy
     * only when asked (the destination has it on too: migrate_prepare). */
    json_t *caps = json_pack("{s:[o, o, o]}", "capabilities", capability("events", true),
                             capability("auto-converge", opts->auto_converge),
                             capability("postcopy-ram", opts->post_copy));
    /* Always both: QEMU keeps what an earlier attempt set, so 0 (the
     * default) is said explicitly. */
    /* The throttle too: QEMU's defaults, or harder and sooner when a
     * forced convergence is asked for (tail-slow: the throttle grows with
     * how far the dirty rate beats the bandwidth, not 10% a round). */
    /* The bandwidth asked for holds for post-copy's background push too
     * (0, QEMU's default: unlimited); pages the destination asks for
     * share it. */
    bool force = opts->auto_converge && opts->force_converge;
    json_t *params = json_pack(
        "{s:I, s:I, s:I, s:i, s:i, s:b}", "max-bandwidth",
        (json_int_t)(opts->max_bandwidth ? opts->max_bandwidth : QEMU_MIGRATE_MAX_BANDWIDTH),
        "max-postcopy-bandwidth",
        (json_int_t)(opts->post_copy_bandwidth ? opts->post_copy_bandwidth
                                               : opts->max_bandwidth),
        "downtime-limit",
        (json_int_t)(opts->downtime_limit_ms ? opts->downtime_limit_ms
                                             : QEMU_MIGRATE_DOWNTIME_LIMIT_MS),
        "cpu-throttle-initial", force ? VO_HV_FORCE_THROTTLE_INITIAL : VO_HV_THROTTLE_INITIAL,
        "cpu-throttle-increment",
        force ? VO_HV_FORCE_THROTTLE_INCREMENT : VO_HV_THROTTLE_INCREMENT,
        "cpu-throttle-tailslow", force);
    json_t *migrate = json_pack("{s:s}", "uri", uri), *status = NULL;

    pthread_mutex_lock(&vm->qmp_lock);
    bool had_tls = vo_qemu_tls_active(vm); /* made by the disks' mirrors */
    r = vo_qemu_command(vm, "query-status", NULL, &status, ret_error);
    bool running = r >= 0 && json_is_true(json_object_get(status, "running"));
    /* Local disks being mirrored (qemu-mirror.c): only once all are in
     * sync, and the migration waits at pre-switchover for their completion.
     * Always said, so nothing carries over from an earlier attempt. */
    if (r >= 0)
        r = vo_qemu_mirror_check_ready(vm, ret_error);
    /* Post-copy stops there too: the caller moves the VM's ownership
     * while both sides are paused and nothing ran at the destination, then
     * lets it go on (migrate_continue). */
    json_array_append_new(json_object_get(caps, "capabilities"),
                          capability("pause-before-switchover",
                                     vm->mirror != NULL || opts->post_copy));
    vm->migration_post_copy = opts->post_copy;
    if (r >= 0)
        r = vo_qemu_command(vm, "migrate-set-capabilities", caps, NULL, ret_error);
    if (r >= 0) /* over TLS: tls-creds and tls-hostname; plain: none named */
        r = vo_qemu_tls_outgoing(vm, opts->tls, params, ret_error);
    if (r >= 0)
        r = vo_qemu_command(vm, "migrate-set-parameters", params, NULL, ret_error);
    if (r >= 0)
        r = vo_qemu_command(vm, "migrate", migrate, NULL, ret_error);
    /* Only a migration that started: a start QEMU refused (one already
     * under way, its vCPUs stopped for the switch-over) must not change what
     * the failure of that one resumes. */
    if (r >= 0)
        vm->migration_was_running = running;
    else if (!had_tls)
        (void)vo_qemu_tls_remove(vm, NULL);
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(status);
    json_decref(caps);
    json_decref(params);
    json_decref(migrate);
    return r;
}

int vo_qemu_migration_status(const char *word, VoHvMigrationStatus *ret)
{
    static const struct {
        const char *word;
        VoHvMigrationStatus status;
    } map[] = {
        { "none", VO_HV_MIGRATION_NONE },
        { "setup", VO_HV_MIGRATION_SETUP },
        { "active", VO_HV_MIGRATION_ACTIVE },
        /* QEMU 10.2: the package of device state sent, the destination
         * loading it and not running yet; a failure here resumes the
         * source (with no return path QEMU skips it). */
        { "postcopy-device", VO_HV_MIGRATION_ACTIVE },
        { "postcopy-active", VO_HV_MIGRATION_ACTIVE },
        { "postcopy-paused", VO_HV_MIGRATION_ACTIVE },
        { "postcopy-recover-setup", VO_HV_MIGRATION_ACTIVE },
        { "postcopy-recover", VO_HV_MIGRATION_ACTIVE },
        { "pre-switchover", VO_HV_MIGRATION_ACTIVE },
        { "device", VO_HV_MIGRATION_ACTIVE },
        { "wait-unplug", VO_HV_MIGRATION_ACTIVE },
        { "colo", VO_HV_MIGRATION_ACTIVE },
        { "completed", VO_HV_MIGRATION_COMPLETED },
        /* Newer QEMU: an error seen, its clean-up under way; failed
         * follows (nothing may change its capabilities meanwhile). */
        { "failing", VO_HV_MIGRATION_FAILING },
        { "failed", VO_HV_MIGRATION_FAILED },
        { "cancelling", VO_HV_MIGRATION_CANCELLING },
        { "cancelled", VO_HV_MIGRATION_CANCELLED },
    };
    for (size_t i = 0; word && i < ELEMENTSOF(map); i++)
        if (!strcmp(word, map[i].word)) {
            *ret = map[i].status;
            return 0;
        }
    return -EINVAL;
}

int vo_qemu_migration_status_read(const char *word, VoHvMigrationProgress *ret)
{
    int r = vo_qemu_migration_status(word, &ret->status);
    if (r < 0)
        return r;
    /* postcopy-device counts as both: the guest paused at its switch-over
     * (the converge limit spares it) and a post-copy whose source must stay,
     * for once the destination runs it pulls the rest of RAM from there. */
    ret->switching = !strcmp(word, "pre-switchover") || !strcmp(word, "device") ||
                     !strcmp(word, "postcopy-device");
    ret->post_copy = !strncmp(word, "postcopy-", 9);
    ret->post_copy_paused = !strcmp(word, "postcopy-paused");
    ret->post_copy_recovering = !strncmp(word, "postcopy-recover", 16);
    return 0;
}

static uint64_t u64(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

int vo_qemu_migrate_query(VoHvInstance *vm, VoHvMigrationProgress *ret)
{
    *ret = (VoHvMigrationProgress){ 0 };
    json_t *info = NULL;
    _cleanup_free_ char *error = NULL;
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vo_qemu_command(vm, "query-migrate", NULL, &info, &error);
    /* Before any migration QEMU answers {} (no status). */
    const char *word = r >= 0 ? json_string_value(json_object_get(info, "status")) : NULL;
    /* Paused before the switch-over with disk mirrors: they complete (the
     * vCPUs are stopped: the destination's disks are whole), then it goes
     * on; with post-copy it stays held for the daemon's switch (libvirt's
     * order: the block jobs end before the switch-over's migrate-continue,
     * so no write lands on the source's disks after it). */
    bool held = word && !strcmp(word, "pre-switchover");
    int m = !held || !vm->mirror      ? 0
            : vm->migration_post_copy ? vo_qemu_mirror_complete(vm, &error)
                                      : vo_qemu_mirror_switchover(vm, &error);
    /* Read under the lock: a cancel on another thread drops vm->mirror. */
    bool at_switchover = held && (!vm->mirror || vm->migration_post_copy);
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0) {
        ret->error = TAKE_PTR(error);
        return r;
    }
    if (m < 0) {
        ret->status = VO_HV_MIGRATION_FAILED;
        ret->error = TAKE_PTR(error);
        json_decref(info);
        return 0;
    }
    if (word && vo_qemu_migration_status_read(word, ret) < 0) {
        ret->error = vo_asprintf("QEMU reports an unknown migration status '%s'", word);
        json_decref(info);
        return -EPROTO;
    }
    ret->at_switchover = at_switchover;
    json_t *ram = json_object_get(info, "ram");
    ret->transferred = u64(ram, "transferred");
    ret->remaining = u64(ram, "remaining");
    ret->total = u64(ram, "total");
    ret->dirty_pages_rate = u64(ram, "dirty-pages-rate");
    ret->page_size = u64(ram, "page-size");
    ret->passes = u64(ram, "dirty-sync-count");
    ret->expected_downtime_ms = u64(info, "expected-downtime");
    ret->throttle_pct = (unsigned)u64(info, "cpu-throttle-percentage");
    ret->downtime_ms = u64(info, "downtime");
    ret->total_time_ms = u64(info, "total-time");
    const char *desc = json_string_value(json_object_get(info, "error-desc"));
    if (desc)
        ret->error = vo_strdup(desc);
    json_decref(info);
    return 0;
}

/* The wait's slices: the monitor's lock is free between two (any other
 * caller waits at most one), and a cancel is seen after at most one. */
#define MIGRATE_WAIT_SLICE_MS 50

int vo_qemu_migrate_wait(VoHvInstance *vm, int timeout_ms, bool cancellable, bool passes)
{
    /* On the command monitor, which gets every event too ("events" is on
     * for every migration: vo_qemu_migrate_start). Under the lock in each
     * slice, so an event another caller reads meanwhile is queued, never
     * missed: it ends the next slice at once. */
    const char *events = passes ? "MIGRATION|MIGRATION_PASS" : "MIGRATION";
    int64_t deadline = vo_now_ms() + timeout_ms;
    for (;;) {
        if (cancellable && vo_cancelled())
            return -ECANCELED;
        int64_t left = deadline - vo_now_ms();
        int slice = left <= 0 ? 0 : left < MIGRATE_WAIT_SLICE_MS ? (int)left
                                                                 : MIGRATE_WAIT_SLICE_MS;
        pthread_mutex_lock(&vm->qmp_lock);
        int r = vm->qmp ? vo_qmp_wait_event(vm->qmp, events, NULL, NULL, slice, NULL)
                        : -ENOTCONN;
        pthread_mutex_unlock(&vm->qmp_lock);
        if (r != -ETIMEDOUT || left <= slice)
            return r;
    }
}

int vo_qemu_migrate_start_post_copy(VoHvInstance *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vm->migration_post_copy
                ? vo_qemu_command(vm, "migrate-start-postcopy", NULL, NULL, ret_error)
                : vo_error_set(ret_error, -EINVAL, "the migration was not started with "
                               "post-copy allowed");
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

int vo_qemu_migrate_continue(VoHvInstance *vm, char **ret_error)
{
    json_t *args = json_pack("{s:s}", "state", "pre-switchover");
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vo_qemu_command(vm, "migrate-continue", args, NULL, ret_error);
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(args);
    return r;
}

/* command {uri} (and resume: true when asked), uri checked first; out of
 * band when oob (migrate-recover: a destination blocked on a missing page
 * answers nothing in band). */
static int uri_command(VoHvInstance *vm, const char *command, const char *uri, bool resume,
                       bool oob, char **ret_error)
{
    int r = vo_qemu_migration_uri_check(uri, ret_error);
    if (r < 0)
        return r;
    json_t *args = json_pack("{s:s}", "uri", uri);
    if (resume)
        json_object_set_new(args, "resume", json_true());
    pthread_mutex_lock(&vm->qmp_lock);
    r = oob ? vo_qemu_command_oob(vm, command, args, NULL, ret_error)
            : vo_qemu_command(vm, command, args, NULL, ret_error);
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(args);
    return r;
}

int vo_qemu_migrate_recover(VoHvInstance *vm, const char *uri, char **ret_error)
{
    return uri_command(vm, "migrate-recover", uri, false, true, ret_error);
}

int vo_qemu_migrate_resume(VoHvInstance *vm, const char *uri, char **ret_error)
{
    /* The capabilities and parameters (TLS too) of the paused migration
     * stay: QEMU resumes it with them. */
    return uri_command(vm, "migrate", uri, true, false, ret_error);
}

int vo_qemu_migrate_pause(VoHvInstance *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vo_qemu_command_oob(vm, "migrate-pause", NULL, NULL, ret_error);
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

int vo_qemu_migrate_cancel(VoHvInstance *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vo_qemu_command(vm, "migrate_cancel", NULL, NULL, ret_error);
    /* Local disks: their mirrors are cancelled too, in any phase. */
    if (r >= 0)
        r = vo_qemu_mirror_cancel(vm, ret_error);
    /* Then the TLS credentials (a stream still closing keeps its own); a
     * failure there is only logged: the migration is cancelled. */
    if (r >= 0)
        (void)vo_qemu_tls_remove(vm, NULL);
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

static int kill_now(VoHvInstance *vm, char **ret_error)
{
    if (vm->pidfd >= 0 && syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0) < 0 &&
        errno != ESRCH)
        return vo_error_set(ret_error, -errno, "cannot kill QEMU (pid %d): %s", (int)vm->pid,
                            strerror(errno));
    return 0;
}

int vo_qemu_migrate_finish(VoHvInstance *vm, VoHvMigrationSide side, bool succeeded,
                           bool resume, char **ret_error)
{
    int r = 0;
    /* A destination that did not get the VM holds nothing worth keeping. */
    if (side == VO_HV_MIGRATION_DESTINATION && !succeeded) {
        vm->tls_object = false;
        vo_qemu_tls_dir_remove(vm->run_dir);
        return kill_now(vm, ret_error);
    }
    pthread_mutex_lock(&vm->qmp_lock);
    if (side == VO_HV_MIGRATION_DESTINATION) {
        /* It waits paused (-S) whatever the source was: a VM that was paused
         * there stays paused here. */
        r = vo_qemu_mirror_stop_server(vm, ret_error);
        if (resume && r >= 0)
            r = vo_qemu_command(vm, "cont", NULL, NULL, ret_error);
        /* The NICs announce their new place now that the guest runs (a
         * RARP per NIC, and a virtio guest's own gratuitous ARP): QEMU's
         * announce at the end of the incoming migration ran while the VM
         * still waited paused, so bridges and peers would learn the move
         * only from the guest's next packet. QEMU's default rounds. */
        if (resume && r >= 0) {
            json_t *announce = json_pack("{s:i, s:i, s:i, s:i}", "initial", 50, "max", 550,
                                         "rounds", 5, "step", 100);
            _cleanup_free_ char *aerror = NULL;
            if (vo_qemu_command(vm, "announce-self", announce, NULL, &aerror) < 0)
                log_warn("migrated VM: announce-self failed: %s", aerror);
            json_decref(announce);
        }
        /* The streams are over: no credentials stay (logged if they do).
         * After cont, not before: the guest waits paused until then. A
         * post-copy still under way keeps them: a recovery of its stream
         * (migrate-recover) listens with them again. */
        json_t *info = NULL;
        const char *word = r >= 0 && vm->tls_object &&
                                   vo_qemu_command(vm, "query-migrate", NULL, &info, NULL) >= 0
                               ? json_string_value(json_object_get(info, "status"))
                               : NULL;
        if (r >= 0 && !(word && !strncmp(word, "postcopy-", 9)))
            (void)vo_qemu_tls_remove(vm, NULL);
        json_decref(info);
    } else if (succeeded) {
        /* The VM runs on the destination now: this copy ends (its disks
         * were handed over at the switch). */
        int q = vm->qmp ? vo_qmp_quit(vm->qmp, QMP_TIMEOUT_MS) : -ENOTCONN;
        if (q < 0) {
            log_warn("QMP quit of a migrated-away VM failed (%s): killing it", strerror(-q));
            r = kill_now(vm, ret_error);
        }
        vm->tls_object = false;
        vo_qemu_tls_dir_remove(vm->run_dir);
    } else {
        /* Mirrors left (a failure before any cancel) end first; the VM
         * runs on here even when that fails. */
        _cleanup_free_ char *mirror_error = NULL;
        int c = vo_qemu_mirror_cancel(vm, &mirror_error);
        /* Back where it was: running here (cont also takes its disks back).
         * Once: an attempt that fails before its migrate_start (the disk
         * phase) owes no cont, whatever an earlier attempt's guest did. */
        if (vm->migration_was_running)
            r = vo_qemu_command(vm, "cont", NULL, NULL, ret_error);
        vm->migration_was_running = false;
        (void)vo_qemu_tls_remove(vm, NULL); /* logged if it fails */
        if (r >= 0 && c < 0)
            r = vo_error_set(ret_error, c, "%s", mirror_error ?: "the disk mirrors failed to end");
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}
