/* vm-job.h: a VM's job lock (vm->job) for what runs outside the VM's tasks
 * (jobs/job-lock.h). The samplers (monitoring, DRS load, the loop's events)
 * only try it and never wait. The API's quick operations on a running VM (a
 * screenshot, a guest agent call, a change queued under the lock, the
 * migration's check) wait for it a bounded moment while samplers or other
 * quick operations hold it, and are refused at once (-EBUSY, 409) naming the
 * task when one of the VM's tasks holds it: an HTTP thread never waits
 * behind a migration or a backup. Lock order: called holding none of the
 * VM's locks (vm->job comes first); the loop thread only tries. */
#pragma once

#include <stdbool.h>

#include "daemon/vms.h"

/* How long a quick operation waits for the samplers. */
#define VO_VM_JOB_BRIEF_WAIT_MS 2000

/* A sampler's try (never waits): true when held; end with
 * vo_vm_job_end_brief (which reads the run state again when an event was
 * missed meanwhile, a QMP query), or, on the loop thread, which never asks
 * the hypervisor, vo_vm_job_release_brief (a plain unlock). */
bool vo_vm_job_try_brief(VoVm *vm);
void vo_vm_job_release_brief(VoVm *vm);

/* A quick operation's hold, waiting at most wait_ms: 0 when held (end with
 * vo_vm_job_end_brief), or -EBUSY with *ret_error ("cannot VERB VM 'NAME':
 * it is busy with another task (KIND, task ID) ..." when a task holds it,
 * "... busy with another operation ..." when it stayed held). verb: "take a
 * screenshot of", "migrate", ... */
int vo_vm_job_wait_brief(VoVm *vm, int wait_ms, const char *verb, char **ret_error);
/* Ends it: vo_vm_job_end(vm, false), then the VM's brief count. */
void vo_vm_job_end_brief(VoVm *vm);
