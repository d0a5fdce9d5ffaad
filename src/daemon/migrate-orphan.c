/* migrate-orphan.c: a live migration that left its guest in no QEMU, both
 * sides gone (migrate-orphan.h; docs/internals.md, "Both sides gone"). */
#include "daemon/migrate-orphan.h"

#include <string.h>
#include <unistd.h>

#include "daemon/cluster-view.h"
#include "daemon/ha-retry.h"
#include "daemon/migrate.h"
#include "daemon/post-copy-kept.h"
#include "daemon/vm-internal.h"
#include "daemon/vms.h"
#include "jobs/tasks.h"
#include "util/util.h"

/* The destination's question is short: its watcher thread asks it. */
#define ASK_TIMEOUT_MS 5000
/* How long the adopted VM's dead QEMU may take to be seen ended. */
#define EXIT_WAIT_MS 10000

bool vo_migration_source_holds(VoDaemon *d, const char *vm_id)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (vm) {
        pthread_mutex_lock(&vm->lock);
        bool busy = vm->hv || vm->migration_task;
        pthread_mutex_unlock(&vm->lock);
        if (busy)
            return true;
    }
    /* A kept intent: its settling (the background, a start) may still
     * find, hand over or take back a QEMU of the VM. */
    _cleanup_free_ char *intent = vo_asprintf("%s/migrations/%s.json", d->run_dir, vm_id);
    if (access(intent, F_OK) == 0)
        return true;
    return vo_post_copy_kept(d, vm_id, -1, NULL);
}

int vo_migration_source_gone(VoDaemon *d, const char *source_host, const char *vm_id,
                             char **ret_error)
{
    VoClusterHost h = { 0 };
    int r = source_host ? vo_cluster_host_get(d, source_host, &h) : -ENOENT;
    if (r < 0)
        return vo_error_set(ret_error, r, "its source host %s is not known here",
                            source_host ? source_host : "(none)");
    if (!h.online || !h.url) {
        r = vo_error_set(ret_error, -EHOSTDOWN, "its source host %s is offline", h.name);
        vo_cluster_host_clear(&h);
        return r;
    }
    _cleanup_free_ char *path = vo_asprintf("/v1/migrations/outgoing/%s/source", vm_id);
    json_t *answer = NULL;
    r = vo_migrate_peer_call_timeout(d, h.url, "GET", path, NULL, ASK_TIMEOUT_MS, &answer,
                                     ret_error);
    vo_cluster_host_clear(&h);
    if (r < 0)
        return r;
    json_t *holds = json_object_get(answer, "holds");
    int gone = json_is_false(holds) ? 1 : 0;
    json_decref(answer);
    return gone;
}

void vo_migration_orphan_crashed(VoDaemon *d, const char *vm_id, const char *migration,
                                 const char *source_host)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find(d, vm_id);
    if (!vm)
        return;
    _cleanup_free_ char *source = vo_host_name_of(d, source_host);
    char *why = vo_asprintf("its live migration %s from host %s ended with the guest in no "
                            "QEMU: the incoming QEMU here never held it and the source's is "
                            "gone", migration, source ? source : source_host);
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (!vo_vm_wait_exit(vm, EXIT_WAIT_MS) && vm->hv) /* never held the guest: nothing to keep */
        (void)d->driver->kill(vm->hv);
    (void)vo_vm_wait_exit(vm, EXIT_WAIT_MS);
    free(vm->exit_reason);
    vm->exit_reason = vo_strdup(why);
    bool crashed = !vm->hv;
    if (crashed)
        vo_vm_set_state(vm, VO_VM_CRASHED); /* saved: the document's owner records it */
    bool ha = crashed && vm->spec->ha;
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    pthread_mutex_unlock(&vm->job);
    log_warn("vm %s: %s: crashed%s", name, why, ha ? "; HA starts it again here" : "");
    _cleanup_free_ char *key = vo_asprintf("vm/%s", vm_id);
    VoTaskDesc desc = { .kind = "migrate", .target = name, .target_id = vm_id,
                        .keys = { key } };
    char *message = vo_asprintf("VM '%s' crashed: %s", name, why);
    free(why);
    vo_tasks_note(d->tasks, &desc, message,
                  json_pack("{s:s, s:s, s:s, s:s}", "vm", vm_id, "migration", migration,
                            "from", source ? source : source_host, "settled", "crashed"));
    if (ha) /* at vireod's start: once the fence and the HA retrier run */
        vo_ha_retry_restart_crashed(d, vm, "lost its guest in a live migration",
                                    "its guest lost in a live migration");
}
