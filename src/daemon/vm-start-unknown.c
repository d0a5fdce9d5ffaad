/* vm-start-unknown.c: a "starting" save of unknown outcome put back
 * (vm-start-unknown.h). */
#include "daemon/vm-start-unknown.h"

#include <poll.h>
#include <string.h>

#include "state/keys.h"
#include "state/store.h"
#include "util/test-hold.h"
#include "util/util.h"

#define UNDO_TRIES 3
#define UNDO_WAIT_MS 1000

/* The stored document's state at *ret_rev: 1 when it says "starting", 0
 * when it says something else, or -errno (-ENOENT: no document). */
static int stored_starting(VoVm *vm, const char *key, int64_t *ret_rev)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(vm->d->store, key, &text, ret_rev);
    if (r < 0)
        return r;
    json_t *doc = json_loads(text, 0, NULL);
    const char *state = json_string_value(json_object_get(json_object_get(doc, "status"),
                                                          "state"));
    r = state && !strcmp(state, "starting");
    json_decref(doc);
    return r;
}

void vo_vm_unsaved_start_undo(VoVm *vm)
{
    _cleanup_free_ char *key = vo_key_vm(vm->spec->id);
    _cleanup_free_ char *name = vo_strdup(vm->spec->name);
    int r = -EAGAIN;
    int64_t rev = 0;
    vm->start_unknown = false; /* its save below must not take this path */
    for (int i = 0; i < UNDO_TRIES; i++) {
        if (i > 0) { /* the store did not answer: a little later */
            pthread_mutex_unlock(&vm->lock);
            (void)poll(NULL, 0, UNDO_WAIT_MS);
            pthread_mutex_lock(&vm->lock);
        }
        /* Tests make every read-back go unanswered here. */
        _cleanup_free_ char *point = vo_asprintf("start_read_back@%s", name);
        r = vo_test_fault(point);
        if (r >= 0)
            r = stored_starting(vm, key, &rev);
        if (r != -EAGAIN && r != VO_STORE_EUNKNOWN && r != -ETIMEDOUT)
            break;
    }
    if (r < 0) {
        vm->start_unknown = true;
        log_warn("vm %s: whether its unanswered save of \"starting\" landed is unknown (%s): "
                 "its document may say starting until its next save, which takes it up",
                 name, strerror(-r));
        return;
    }
    if (rev == vm->rev || r == 0) {
        /* Still in flight, it may land later (etcd applies a timed-out
         * proposal late): the next save refused for it takes it up. */
        vm->start_unknown = rev == vm->rev;
        log_info("vm %s: its unanswered save of \"starting\" did not land%s", name,
                 rev == vm->rev ? "" : " (its document was changed by another writer)");
        return;
    }
    /* It landed: the document, and its relations, as the VM is. With no
     * relations known as stored, the save rewrites every one of them. */
    int64_t was_rev = vm->rev;
    json_t *was_uses = vm->uses;
    vm->rev = rev;
    vm->uses = vo_vm_mac_index_of(was_uses); /* held: a save puts only the index's own */
    r = vo_vm_save(vm);
    if (r < 0) {
        json_decref(vm->uses);
        vm->uses = was_uses;
        vm->rev = was_rev;
        log_warn("vm %s: its unanswered save of \"starting\" landed; putting its state back "
                 "failed: %s", name, strerror(-r));
        return;
    }
    json_decref(was_uses);
    log_info("vm %s: its unanswered save of \"starting\" landed: its document is put back "
             "(nothing was started)", name);
}

bool vo_vm_unsaved_start_landed(VoVm *vm)
{
    if (!vm->start_unknown)
        return false;
    _cleanup_free_ char *key = vo_key_vm(vm->spec->id);
    int64_t rev = 0;
    int r = stored_starting(vm, key, &rev);
    if (r < 0 && r != -ENOENT)
        return false; /* the store did not answer: the next refusal reads again */
    vm->start_unknown = false;
    if (r != 1 || rev == vm->rev) {
        log_info("vm %s: its save was refused (stale revision); its document %s: not "
                 "rewritten", vm->spec->name, r == -ENOENT ? "is no longer this host's"
                                                           : "was changed by another writer");
        return false;
    }
    log_info("vm %s: its earlier unanswered save of \"starting\" had landed (revision %lld): "
             "saved again on it", vm->spec->name, (long long)rev);
    vm->rev = rev;
    json_t *macs = vo_vm_mac_index_of(vm->uses); /* held: a save puts only the index's own */
    json_decref(vm->uses);
    vm->uses = macs; /* the lost write's relations: each rewritten */
    return true;
}
