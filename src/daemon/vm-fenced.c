/* vm-fenced.c: this host's VMs after its fence acted (part of the VM
 * service, vms.c; docs/ha.md): the VMs the fence killed reconciled with the
 * store, those HA recovery moved away forgotten, and the fenced host's own
 * HA restarts (the same restart serves a VM a migration left crashed,
 * queued until the HA retrier runs: vo_ha_retry_restart_crashed). */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"
#include "daemon/ha-retry.h"

#include "daemon/post-copy-kept.h"
#include "state/keys.h"
#include "util/test-hold.h"

/* The loop both passes share: each of this host's VMs looked up in the
 * store under its lock (after a save made outside it, vm-save-later.c: its
 * own saves do not pass this read with an older revision); one whose
 * document left this host's namespace is forgotten here. reconcile: the
 * pass right after the fence acted (every VM read, the revision of one
 * still ours taken, a QEMU still here killed); else the pass once the
 * fenced state ended (a VM with a QEMU here, or being deleted or migrated,
 * not read: their own paths forget it). The store's first error: no VM
 * is read after it. */
static int forget_moved_off(VoDaemon *d, bool reconcile)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        VoVm *vm = vms[i];
        pthread_mutex_lock(&vm->lock);
        _cleanup_free_ char *id = vo_strdup(vm->spec->id);
        _cleanup_free_ char *name = vo_strdup(vm->spec->name);
        _cleanup_free_ char *key = vo_key_vm(id);
        vo_vm_save_settle_first(vm);
        bool own_path = !reconcile &&
                        (vm->hv || vm->deleted || vm->migrated_away || vm->migration_task);
        bool read = r >= 0 && !own_path;
        int64_t rev = 0;
        int g = read ? vo_store_get(d->store, key, NULL, &rev) : 0;
        if (reconcile && read && g >= 0 && !vm->migrated_away)
            /* Still ours; the manager may have written its ha_state while
             * this host was away: the next save compares at that revision. */
            vm->rev = rev;
        /* Only a migrated-away VM's QEMU can be a post-copy source (never
         * continued here), and only the one its mark names. (Not read once
         * the fenced state ended: g is never -ENOENT for one then.) */
        bool away = vm->migrated_away;
        pid_t pid = vm->info.pid;
        pthread_mutex_unlock(&vm->lock);
        _cleanup_free_ char *to = NULL;
        if (g == -ENOENT && away && vo_post_copy_kept(d, id, pid, &to)) {
            /* Moved away by a post-copy migration whose source QEMU is
             * here: paused, its disks no longer written, it holds pages
             * the destination's guest lacks. Ended only once that guest is
             * gone (the VM restarted elsewhere or deleted). */
            if (vo_post_copy_source_needed(d, id, to)) {
                log_warn("vm %s: no longer this host's, but its QEMU here is the source of a "
                         "post-copy to host %s and holds pages the destination lacks: kept",
                         name, to ? to : "(unknown)");
                vo_vm_unref(vm);
                continue;
            }
            log_warn("vm %s: its post-copy source QEMU here is no longer needed (the VM is "
                     "gone from host %s: restarted elsewhere or deleted): ended", name, to);
        }
        if (g == -ENOENT && reconcile) {
            /* Moved away by HA recovery while this host was fenced. A QEMU
             * still here (one the fence did not list) must not run on: the
             * VM is the other host's now. */
            log_info("vm %s: no longer this host's (restarted elsewhere while this host "
                     "was fenced): forgotten here", name);
            pthread_mutex_lock(&vm->lock);
            if (vm->hv) {
                log_warn("vm %s: its QEMU still ran here: killed", name);
                (void)d->driver->kill(vm->hv);
            }
            pthread_mutex_unlock(&vm->lock);
        } else if (g == -ENOENT)
            log_info("vm %s: no longer this host's (moved away by the manager as this host's "
                     "fenced state ended): forgotten here", name);
        if (g == -ENOENT)
            vo_vm_forget_migrated(vm);
        else if (g < 0)
            r = g;
        vo_vm_unref(vm);
    }
    free(vms);
    return r;
}

int vo_vms_reconcile_fenced(VoDaemon *d)
{
    return forget_moved_off(d, true);
}

int vo_vms_forget_moved_off_fenced(VoDaemon *d)
{
    return forget_moved_off(d, false);
}

/* How long a VM the fence killed may still look running here. */
#define FENCED_EXIT_WAIT_MS 5000

void vo_vms_restart_fenced(VoDaemon *d, char **killed)
{
    for (size_t i = 0; killed && killed[i]; i++) {
        _cleanup_vm_ VoVm *vm = vo_vms_find(d, killed[i]);
        if (!vm)
            continue; /* moved away (restarted elsewhere) */
        pthread_mutex_lock(&vm->lock);
        /* The fence's SIGKILL may not have been seen here yet (the QEMU's
         * exit is handled on the loop thread, and the fenced state can end
         * within a few hundred ms of the fencing): until it is, the VM still
         * looks running and would be left dead (bench/chaos found it). */
        if (!vo_vm_wait_exit(vm, FENCED_EXIT_WAIT_MS))
            log_warn("ha: vm %s was killed by this host's fence but its QEMU's end was not "
                     "seen within %d s", vm->spec->name, FENCED_EXIT_WAIT_MS / 1000);
        bool again = vm->spec->ha && vm->state == VO_VM_CRASHED && !vm->migrated_away;
        pthread_mutex_unlock(&vm->lock);
        if (again)
            vo_vm_ha_restart_here(d, vm, "was killed by this host's fence",
                                  "killed by this host's fence again");
    }
}

/* One restart at a time: the fenced host's own restart (hosts' thread)
 * and a migration's crashed VM queued for the HA retrier (its thread) may
 * both take the same VM (a fence killed a migration's source QEMU); the
 * second, once the first's start is submitted (followed) or made, finds it
 * under way or no longer crashed: not counted, not started twice. */
static pthread_mutex_t restart_lock = PTHREAD_MUTEX_INITIALIZER;

/* Under restart_lock. */
static void restart_here_locked(VoDaemon *d, VoVm *vm, const char *what, const char *again_why)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name), *id = vo_strdup(vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *point = vo_asprintf("ha_restart@%s", name);
    vo_test_hold(point); /* tests hold a restart while the other one comes */
    pthread_mutex_lock(&vm->lock);
    bool crashed = vm->state == VO_VM_CRASHED;
    pthread_mutex_unlock(&vm->lock);
    if (!crashed) {
        log_info("ha: vm %s %s, but is not started again: it is no longer crashed", name, what);
        return;
    }
    if (vo_ha_retry_start_under_way(d, id)) {
        log_info("ha: vm %s %s, but is not started again: its HA start is under way", name,
                 what);
        return;
    }
    if (!vo_ha_retry_count_start(vm)) { /* crashed this way again and again */
        vo_ha_retry_give_up(d, id, name, 0, again_why);
        return;
    }
    json_t *task = NULL;
    _cleanup_free_ char *error = NULL;
    if (vo_vm_start_request(d, vm, true, true, &task, &error) < 0) {
        log_warn("ha: vm %s %s and is still this host's, but cannot be started again: %s",
                 name, what, error);
        /* marked by vo_vm_start_request; tried again after a backoff */
        vo_ha_retry_failed(d, id, name, error);
    } else {
        const char *task_id = json_string_value(json_object_get(task, "id"));
        log_info("ha: vm %s %s and is still this host's: started again here (task %s)", name,
                 what, task_id ?: "?");
        vo_ha_retry_follow(d, id, name, task_id); /* a failed start is tried again */
    }
    json_decref(task);
}

void vo_vm_ha_restart_here(VoDaemon *d, VoVm *vm, const char *what, const char *again_why)
{
    pthread_mutex_lock(&restart_lock);
    restart_here_locked(d, vm, what, again_why);
    pthread_mutex_unlock(&restart_lock);
}
