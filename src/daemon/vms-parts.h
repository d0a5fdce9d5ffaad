/* vms-parts.h: what the parts of the VM service (vms.c and the files split
 * from it: vm-save.c, vm-json.c, vm-watch.c, vm-start.c, vm-stop.c,
 * vm-delete.c, vm-create.c, vm-edit.c, vm-adopt.c, vm-fenced.c,
 * vm-startup.c; and vm-register.c, a VM registered while it is made)
 * share with one another and with nothing else. They were one file's own
 * (static) helpers before vms.c was split, now named vo_vm_* as every
 * global of the daemon is; each is described where it is defined. Other
 * files use vms.h and vm-internal.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/vm-internal.h"
#include "jobs/tasks.h"
#include "util/threads.h"

/* How long a stop (and a migrated VM's forgetting) waits for QEMU's exit. */
#define VO_VM_STOP_EXIT_WAIT_MS 10000

/* vms.c: states, the object, the registry, a task's arguments, queueing. */
extern const char *const vo_vm_state_names[];
int vo_vm_state_from_string(const char *s, VoVmState *ret);
VoVm *vo_vm_new(VoDaemon *d);
VoVm *vo_vm_new_defined(VoDaemon *d, VoVmSpec *spec);
char *vo_vm_id_dup(VoVm *vm);
extern void (*vo_vm_gone_hook)(VoDaemon *d);
void vo_vm_registry_add_locked(VoDaemon *d, VoVm *vm);
void vo_vm_registry_add(VoDaemon *d, VoVm *vm);
void vo_vm_registry_remove_locked(VoDaemon *d, VoVm *vm);
void vo_vm_registry_remove(VoDaemon *d, VoVm *vm);
bool vo_vm_is_provisioning(VoVm *vm);

/* The arguments of a VM's task (start, stop, pause, resume, reboot,
 * delete, create): vo_vm_op_args references the VM, vo_vm_op_args_free frees. */
typedef struct {
    VoVm *vm;
    bool force;
    int timeout_s;
    char *base_disk, *base_format, *base_image;
    char *pool; /* create: the boot disk's pool */
    char *disk_volume; /* create: an existing volume as the boot disk */
    uint64_t disk_size;
    bool full_clone, keep_disks;
    bool boot_once; /* start: boot once_dev first, this run only */
    VoBootDev once_dev;
    bool ha_start; /* start: an HA restart (ha-retry.h), not a user's start */
    const char *paused_reason; /* resume: only a VM paused so (static; NULL: any) */
} VoVmOpArgs;

void vo_vm_op_args_free(void *p);
VoVmOpArgs *vo_vm_op_args(VoVm *vm);
int vo_vm_submit_op(VoDaemon *d, VoVm *vm, const char *kind, const char *also, bool unbounded,
              VoTaskFn fn, void *args, VoTaskFreeFn free_args, json_t **ret_task,
              char **ret_error);

/* vm-save.c: the VM's documents. */
json_t *vo_vm_ha_restarts_of_doc(json_t *doc);
int vo_vm_write(VoVm *vm, const char *text, bool forget);
int64_t vo_vm_measure_disks(VoVm *vm);

/* vm-watch.c: the loop's watch; the driver instances' release threads
 * (vireod's end waits for them, vo_vms_release_all). */
extern VoThreadCount vo_vm_releases;
void vo_vm_watch(VoVm *vm);

/* vm-start.c */
int vo_vm_start_request(VoDaemon *d, VoVm *vm, bool unbounded, bool ha, json_t **ret_task,
             char **ret_error);

/* vm-create.c */
int vo_vm_check_new_name(const char *name, char **ret_error);

/* vm-register.c: why a first write of a new VM's documents failed (r), in
 * words; *r changed to what the API answers (-EEXIST: a name taken
 * meanwhile, maybe on another host; -EAGAIN: its MAC claims lapsed). */
char *vo_vm_register_write_error(VoDaemon *d, const VoVmSpec *spec, int *r);
