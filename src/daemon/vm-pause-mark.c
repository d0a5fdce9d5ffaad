/* vm-pause-mark.c: a snapshot's freeze/pause marker, and what reconcile()
 * does with one a dead vireod left (see vm-pause-mark.h). */
#include "daemon/vm-pause-mark.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "util/util.h"

#define MARK_FILE "snapshot-pause.json"
#define MARK_MAX 4096

static char *mark_path(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *dir = vo_vm_run_dir(d, vm_id);
    return vo_asprintf("%s/" MARK_FILE, dir);
}

void vo_snapshot_mark(VoDaemon *d, const char *vm_id, const char *name, bool frozen,
                      bool paused)
{
    _cleanup_free_ char *path = mark_path(d, vm_id);
    json_t *doc = json_pack("{s:b, s:b}", "frozen", frozen, "paused", paused);
    char *text = json_dumps(doc, JSON_COMPACT);
    int r = text ? vo_write_file_atomic(path, text, strlen(text)) : -ENOMEM;
    if (r < 0)
        log_warn("vm %s: cannot write %s (a vireod that dies inside the snapshot's pause "
                 "would not undo it): %s", name, path, strerror(-r));
    free(text);
    json_decref(doc);
}

void vo_snapshot_unmark(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *path = mark_path(d, vm_id);
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(errno));
}

void vo_snapshot_mark_recover(VoVm *vm, VoHvInstance *hv, const char *vm_id, const char *name)
{
    VoDaemon *d = vm->d;
    _cleanup_free_ char *path = mark_path(d, vm_id), *text = NULL;
    if (vo_read_file(path, MARK_MAX, &text, NULL) < 0)
        return; /* none: no snapshot was cut short */
    json_t *doc = json_loads(text, 0, NULL);
    /* An unreadable marker (never written half: tmp + rename) is taken as
     * the most a snapshot does: frozen and paused. */
    bool frozen = !json_is_object(doc) || json_is_true(json_object_get(doc, "frozen"));
    bool paused = !json_is_object(doc) || json_is_true(json_object_get(doc, "paused"));
    json_decref(doc);
    log_warn("vm %s: vireod stopped inside a snapshot's freeze/pause (%s): undoing it",
             name, path);
    /* Resumed first: a paused guest's agent cannot answer the thaw. */
    VoHvInfo info = {0};
    if (paused && d->driver->info(hv, &info) >= 0 && info.paused) {
        int r = info.io_error ? -EIO : d->driver->resume(hv);
        if (r < 0)
            log_warn("vm %s: left paused: %s", name,
                     info.io_error ? "QEMU reports a disk I/O error" : strerror(-r));
        else
            log_info("vm %s: resumed (vireod had paused it for the snapshot)", name);
    }
    if (frozen) {
        vo_vm_agent_thaw(vm, hv); /* an agent that does not answer is logged there */
        log_info("vm %s: asked the guest agent to thaw its file systems", name);
    }
    vo_snapshot_unmark(d, vm_id);
}
