/* vms-parts.h: what the parts of the VM service (vms.c and the files split
 * from it: vm-save.c, vm-json.c, vm-watch.c) share with one another and with
 * nothing else. They were one file's own (static) helpers before vms.c was
 * split, and keep their names from then; each is described where it is
 * defined. Other files use vms.h and vm-internal.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon/vm-internal.h"
#include "jobs/tasks.h"
#include "util/threads.h"

/* vms.c: states, the object, the registry, a task's arguments, queueing. */
extern const char *const state_names[];
char *vm_id(VoVm *vm);

/* vm-save.c: the VM's documents. */
json_t *ha_restarts_of_doc(json_t *doc);
int write_vm(VoVm *vm, const char *text, bool forget);
int64_t measure_disks(VoVm *vm);

/* vm-watch.c: the loop's watch; the driver instances' release threads
 * (vireod's end waits for them, vo_vms_release_all). */
extern VoThreadCount releases;
void watch_vm(VoVm *vm);
