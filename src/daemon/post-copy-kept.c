/* post-copy-kept.c: the "post-copy source kept" mark (post-copy-kept.h). */
#include "daemon/post-copy-kept.h"

#include <string.h>

#include "fence/fence-state.h"
#include "jobs/tasks.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

void vo_post_copy_kept_mark(VoDaemon *d, const char *vm_id, const char *name, const char *to,
                            pid_t pid)
{
    /* The mark first, then off the kill list: the fence skips a marked
     * QEMU it still lists. */
    int r = vo_fence_post_copy_mark(d->run_dir, vm_id, to, pid);
    if (r < 0)
        log_error("vm %s: cannot mark its QEMU here as a post-copy source (%s): a fencing "
                  "of this host would kill it", name, strerror(-r));
    else
        log_info("vm %s: its QEMU here is the source of a post-copy to host %s: kept until "
                 "the destination has every page", name, to);
    r = vo_fence_ha_remove(d->run_dir, vm_id);
    if (r < 0)
        log_warn("vm %s: cannot take its QEMU off the fence's HA list: %s", name, strerror(-r));
}

void vo_post_copy_kept_unmark(VoDaemon *d, const char *vm_id)
{
    int r = vo_fence_post_copy_unmark(d->run_dir, vm_id);
    if (r < 0)
        log_warn("vm %s: cannot remove its post-copy source mark: %s", vm_id, strerror(-r));
}

bool vo_post_copy_kept(VoDaemon *d, const char *vm_id, pid_t pid, char **ret_to)
{
    return vo_fence_post_copy_marked(d->run_dir, vm_id, pid, ret_to) > 0;
}

bool vo_post_copy_source_needed(VoDaemon *d, const char *vm_id, const char *to)
{
    if (!to || !d->cluster_store)
        return true;
    _cleanup_free_ char *key = vo_asprintf("h/%s/vms/%s", to, vm_id);
    return vo_store_get_linear(d->cluster_store, key, NULL) != -ENOENT;
}

int vo_post_copy_incoming_gone(VoDaemon *d, VoHvInstance *hv, const char *vm_id,
                               const char *migration, char **ret_error)
{
    VoHvMigrationProgress p = { 0 };
    int r = d->driver->migrate_query(hv, &p);
    free(p.error);
    /* A QEMU that took a migration in reports it (active, post-copy,
     * paused, completed, failed) for as long as it runs; "none" is a QEMU
     * booted afresh. A query without an answer (its main loop waits on a
     * page) cannot tell. */
    if (r < 0 || p.status != VO_HV_MIGRATION_NONE)
        return 0;
    log_warn("VM %s: asked to recover post-copy migration %s, but its QEMU here was started "
             "afresh (it took no migration in): that migration's guest is gone", vm_id,
             migration);
    return vo_error_set(ret_error, -EIDRM, "VM %s runs here from a later start, not from "
                        "migration %s: that migration's guest is gone", vm_id, migration);
}

void vo_post_copy_kept_gone(VoDaemon *d, const char *vm_id, const char *name, const char *to,
                            const char *why)
{
    char *message = vo_asprintf("the post-copy source QEMU of VM '%s' kept here is no longer "
                                "needed: host '%s' runs the VM from a later start (%s); it "
                                "ended", name, to, why);
    log_warn("vm %s: %s", name, message);
    _cleanup_free_ char *key = vo_asprintf("vm/%s", vm_id);
    VoTaskDesc desc = { .kind = "migrate", .target = name, .target_id = vm_id,
                        .keys = { key } };
    vo_tasks_note(d->tasks, &desc, message,
                  json_pack("{s:s, s:s, s:s}", "vm", vm_id, "settled", "source ended",
                            "to", to));
}
