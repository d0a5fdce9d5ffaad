/* vm-json.c: a VM as the API shows it (part of the VM service, vms.c): one
 * VM's view (GET /v1/vms/{vm}), the listing and its summary view
 * (GET /v1/vms), and the VMs of one project. */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"

#include <string.h>

#include "conf/cloud-init.h"
#include "cluster/ha-plan.h"
#include "util/time-format.h"

/* The VM as the API shows it, but for its disks' paths. */
static json_t *vm_json_locked_view(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    json_t *o = vo_vm_spec_to_json(vm->spec);
    vo_cloud_init_json_redact(json_object_get(o, "cloud_init"));
    json_object_set_new(o, "state", json_string(vo_vm_state_names[vm->state]));
    json_object_set_new(o, "created_at", vo_time_json(vm->created_at));
    if ((vm->state == VO_VM_RUNNING || vm->state == VO_VM_PAUSED) && vm->hv) {
        json_object_set_new(o, "pid", json_integer(vm->info.pid));
        if (vm->info.has_uid) /* per-VM uids: which one is its (docs/security.md) */
            json_object_set_new(o, "qemu_uid", json_integer(vm->info.uid));
        json_object_set_new(o, "accel_active", json_string(vo_accel_to_string(vm->info.accel)));
        json_object_set_new(o, "started_at", vo_time_json(vm->started_at));
        json_object_set_new(o, "uptime_s", json_integer((vo_wall_ms() - vm->started_at) / 1000));
    }
    if (vm->exit_reason && !vo_vm_state_active(vm->state))
        json_object_set_new(o, "exit_reason", json_string(vm->exit_reason));
    if (vm->state_reason)
        json_object_set_new(o, "state_reason", json_string(vm->state_reason));
    if (vm->resets && vo_vm_state_active(vm->state)) {
        json_object_set_new(o, "resets", json_integer(vm->resets));
        json_object_set_new(o, "last_reset_at", vo_time_json(vm->last_reset_at));
    }
    if (vm->problem)
        json_object_set_new(o, "problem", json_string(vm->problem));
    json_object_set_new(o, "ha", json_boolean(vm->spec->ha));
    json_object_set_new(o, "project", json_string(vo_vm_spec_project(vm->spec)));
    if (vm->ha_state)
        json_object_set_new(o, "ha_state", json_string(vm->ha_state));
    if (vm->san_state)
        json_object_set_new(o, "san_state", json_string(vm->san_state));
    if (json_array_size(vm->ha_restarts)) /* the restart limit's count */
        json_object_set_new(o, VO_HA_RESTARTS_FIELD, vo_ha_restarts_json(vm->ha_restarts));
    if (vm->ha_start_failed) /* its HA start failed: the retries follow it */
        json_object_set_new(o, VO_HA_START_FAILED_FIELD, json_true());
    if (vm->migration_task)
        json_object_set_new(o, "migration", json_pack("{s:s, s:s}", "task", vm->migration_task,
                                                      "to", vm->migration_to ?: ""));
    pthread_mutex_unlock(&vm->lock);
    return o;
}

/* Each disk also shows its file on this host (read-only; not in the spec).
 * Looked up with no VM lock held: storage's lock is taken after them. */
json_t *vo_vm_to_json(VoVm *vm)
{
    json_t *o = vm_json_locked_view(vm);
    vo_vm_json_add_disk_paths(vm->d, json_object_get(o, "disks"));
    return o;
}

static int cmp_vm_json_name(const void *a, const void *b)
{
    const char *na = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(na, nb);
}

/* The fields a listing shows (GET /v1/vms?view=summary), built straight from
 * the VM rather than cut out of its full document: for a list of thousands
 * of VMs that is most of the daemon's work. */
static json_t *vm_summary_json(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    const VoVmSpec *s = vm->spec;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "state", json_string(vo_vm_state_names[vm->state]));
    json_object_set_new(o, "vcpus", json_integer(s->vcpus));
    json_object_set_new(o, "memory_mib", json_integer((json_int_t)s->memory_mib));
    json_object_set_new(o, "accel", json_string(vo_accel_to_string(s->accel)));
    json_object_set_new(o, "autostart", json_boolean(s->autostart));
    json_object_set_new(o, "ha", json_boolean(s->ha));
    json_object_set_new(o, "project", json_string(vo_vm_spec_project(s)));
    if ((vm->state == VO_VM_RUNNING || vm->state == VO_VM_PAUSED) && vm->hv) {
        json_object_set_new(o, "pid", json_integer(vm->info.pid));
        json_object_set_new(o, "accel_active", json_string(vo_accel_to_string(vm->info.accel)));
        json_object_set_new(o, "uptime_s", json_integer((vo_wall_ms() - vm->started_at) / 1000));
    }
    pthread_mutex_unlock(&vm->lock);
    return o;
}

json_t *vo_vms_list_json(VoDaemon *d, bool summary)
{
    pthread_mutex_lock(&d->vms_lock);
    size_t n = d->n_vms;
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        items[k++] = summary ? vm_summary_json(d->vms[i]) : vm_json_locked_view(d->vms[i]);
    pthread_mutex_unlock(&d->vms_lock);
    for (size_t i = 0; !summary && i < k; i++)
        vo_vm_json_add_disk_paths(d, json_object_get(items[i], "disks"));
    qsort(items, k, sizeof(json_t *), cmp_vm_json_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    return arr;
}

char *vo_vm_project(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *project = vo_strdup(vo_vm_spec_project(vm->spec));
    pthread_mutex_unlock(&vm->lock);
    return project;
}

void vo_vms_json_by_project(json_t *arr, const char *project)
{
    for (size_t i = 0; i < json_array_size(arr);) {
        json_t *vm = json_array_get(arr, i);
        const char *p = json_string_value(json_object_get(vm, "project"));
        if (!p)
            json_object_set_new(vm, "project", json_string(p = "default"));
        if (project && strcmp(p, project))
            json_array_remove(arr, i);
        else
            i++;
    }
}
