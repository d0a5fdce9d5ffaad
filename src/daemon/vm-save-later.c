/* vm-save-later.c: saves of a VM's document that the loop thread hands
 * off, so that it never waits for the store (an etcd busy for seconds held
 * every other VM's events, timers and exits behind one write). The loop
 * sets the state in memory (shown by the API at once) and marks a save
 * due; a thread of that VM's own (at most one at a time) writes the
 * document as it is when the write starts, again while more changes came
 * meanwhile. The write is made outside vm->lock; every other write of the
 * VM waits for it first (vo_vm_save_settle, vm->lock held), so writes of
 * one VM never overlap and each compares the revision the one before it
 * left. See docs/internals.md, "Saves off the loop". */
#include "daemon/vm-internal.h"

#include <stdatomic.h>
#include <string.h>

#include "util/threads.h"
#include "util/util.h"

/* The save threads running; vireod's end waits for them (bounded). */
static VoThreadCount savers;
/* When (monotonic ms) a save thread last started or ended a round: what
 * vireod's end measures a save in flight by. */
static _Atomic int64_t saves_moved_ms;

static void *save_thread(void *userdata)
{
    VoVm *vm = userdata;
    pthread_mutex_lock(&vm->lock); /* after a task's write, which holds it */
    /* Each round writes the state of its start; a change made while it
     * wrote is due again. A failed save is logged and not tried again
     * (as the loop's save before): the VM's next change writes all of it.
     * A task's write meanwhile covers what is due (vo_vm_write). */
    while (vm->save_due) {
        atomic_store(&saves_moved_ms, vo_now_ms());
        (void)vo_vm_save_unlocked(vm);
        atomic_store(&saves_moved_ms, vo_now_ms());
    }
    vm->saver_running = false;
    pthread_mutex_unlock(&vm->lock);
    vo_vm_unref(vm);
    vo_thread_done(&savers);
    return NULL;
}

void vo_vm_save_later(VoVm *vm)
{
    if (vm->migrated_away) /* its documents are the destination's now */
        return;
    vm->save_due = true;
    if (vm->saver_running)
        return; /* it takes this change too */
    vm->saver_running = true;
    int r = vo_thread_spawn_counted(&savers, save_thread, vo_vm_ref(vm));
    if (r < 0) { /* no thread: save now, as before */
        log_warn("vm %s: cannot start a thread to save it (%s); saving it now", vm->spec->name,
                 strerror(-r));
        vm->saver_running = false;
        vo_vm_unref(vm); /* not the last: the caller holds one */
        (void)vo_vm_save(vm);
    }
}

void vo_vm_save_settle(VoVm *vm)
{
    /* vm->lock stays held: the save thread's write needs only save_lock to
     * end, and its result is taken up here. */
    pthread_mutex_lock(&vm->save_lock);
    while (vm->saving)
        pthread_cond_wait(&vm->save_done, &vm->save_lock);
    pthread_mutex_unlock(&vm->save_lock);
    vo_vm_save_landed_take(vm);
}

void vo_vm_save_settle_first(VoVm *vm)
{
    pthread_mutex_lock(&vm->save_lock);
    while (vm->saving) {
        /* Both let go (vm->lock is taken first, as the save thread does):
         * the loop may handle the VM's events meanwhile. */
        pthread_mutex_unlock(&vm->lock);
        pthread_cond_wait(&vm->save_done, &vm->save_lock);
        pthread_mutex_unlock(&vm->save_lock);
        pthread_mutex_lock(&vm->lock);
        pthread_mutex_lock(&vm->save_lock);
    }
    pthread_mutex_unlock(&vm->save_lock);
    vo_vm_save_landed_take(vm);
}

int vo_vm_save_flush(VoVm *vm)
{
    vo_vm_save_settle(vm);
    return vm->save_due ? vo_vm_save(vm) : 0;
}

int vo_vms_saves_wait(int stuck_ms)
{
    /* Rounds that go on, slow as they may be, are waited for: a save is
     * given up only when no round has started or ended for stuck_ms. */
    int64_t began = vo_now_ms(); /* a thread not at its first round yet counts from here */
    for (;;) {
        int64_t moved = atomic_load(&saves_moved_ms);
        if (atomic_load(&savers.pending) == 0 ||
            vo_now_ms() - (moved > began ? moved : began) >= stuck_ms)
            break;
        vo_threads_wait(&savers, 100);
    }
    return atomic_load(&savers.pending);
}
