/* vm-job.c: brief holds of a VM's job lock (vm-job.h): the samplers' try,
 * and the quick operations' bounded wait that tells a sampler's moment from
 * a task's hold (the task registry knows which task runs on the VM). */
#include "daemon/vm-job.h"

#include <errno.h>

#include "daemon/vm-internal.h"
#include "jobs/job-lock.h"
#include "state/keys.h"
#include "util/util.h"

bool vo_vm_job_try_brief(VoVm *vm)
{
    return vo_job_lock_try_brief(&vm->job, &vm->job_brief);
}

void vo_vm_job_release_brief(VoVm *vm)
{
    vo_job_lock_release_brief(&vm->job, &vm->job_brief);
}

typedef struct {
    VoVm *vm;
    char *task_id, *task_kind;
} Holder;

/* Whether one of the VM's tasks runs now (it holds the job lock, or is
 * about to take it): its id and kind kept for the message. */
static bool task_holds(void *userdata)
{
    Holder *h = userdata;
    free(h->task_id);
    free(h->task_kind);
    h->task_id = h->task_kind = NULL;
    pthread_mutex_lock(&h->vm->lock);
    _cleanup_free_ char *key = vo_key_vm_task(h->vm->spec->id);
    pthread_mutex_unlock(&h->vm->lock);
    return vo_tasks_running_with_key(h->vm->d->tasks, key, &h->task_id, &h->task_kind) > 0;
}

int vo_vm_job_wait_brief(VoVm *vm, int wait_ms, const char *verb, char **ret_error)
{
    Holder h = { .vm = vm };
    int r = vo_job_lock_wait_brief(&vm->job, &vm->job_brief, wait_ms, task_holds, &h);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm); /* a task may be replacing the spec */
        if (r == -EBUSY)
            vo_error_set(ret_error, -EBUSY, "cannot %s VM '%s': it is busy with another task "
                         "(%s, task %s); try again once it is done (vireo task show %s)",
                         verb, name, h.task_kind, h.task_id, h.task_id);
        else
            vo_error_set(ret_error, -EBUSY, "cannot %s VM '%s': it is busy with another "
                         "operation; try again", verb, name);
        r = -EBUSY;
    }
    free(h.task_id);
    free(h.task_kind);
    return r;
}

void vo_vm_job_end_brief(VoVm *vm)
{
    vo_vm_job_end(vm, false);
    vo_job_lock_brief_done(&vm->job_brief);
}
