/* snapshots.c: VM snapshots (see snapshots.h). All of a VM's disks must be
 * qcow2 (internal snapshots), or all RBD images (RBD snapshots, disks only:
 * snapshot-rbd.c). Operations run as tasks under the VM's job lock, so a
 * snapshot never races a start, stop or another snapshot. */
#include "daemon/snapshots.h"

#include <limits.h>
#include <string.h>

#include "conf/names.h"
#include "daemon/vm-pause-mark.h"
#include "daemon/snapshot-boot-memory.h"
#include "daemon/snapshot-rbd.h"
#include "daemon/vm-internal.h"
#include "qemu/qemu-backup.h"
#include "state/keys.h"
#include "storage/qemu-img.h"
#include "storage/volume-path.h"
#include "util/spawn.h"
#include "util/time-format.h"
#include "util/util.h"

/* Why an RBD-backed VM's snapshot has no memory state. */
#define RBD_NO_MEMORY                                                                        \
    "memory: a snapshot of a VM on RBD disks holds its disks only (the memory state is "   \
    "kept in a qcow2 disk 0); leave memory out"

/* Device state and the file's own growth beyond the guest's RAM. */
#define VO_SNAPSHOT_STATE_MARGIN_MIB 16

/* ---- documents ------------------------------------------------------------ */

static char *snap_key(const char *vm_id, const char *name)
{
    return vo_asprintf("snapshots/%s/%s", vm_id, name);
}

/* ret_rev (may be NULL): the document's revision, VO_REV_NEW when missing. */
static json_t *load_doc(VoDaemon *d, const char *key, int64_t *ret_rev)
{
    _cleanup_free_ char *text = NULL;
    int64_t rev = VO_REV_NEW;
    if (ret_rev)
        *ret_rev = VO_REV_NEW;
    if (vo_store_get(d->store, key, &text, &rev) < 0)
        return NULL;
    if (ret_rev)
        *ret_rev = rev;
    return json_loads(text, 0, NULL);
}

/* expected_rev: VO_REV_NEW or the revision last read (writers of a VM's
 * snapshot documents hold its job lock, so a mismatch is a bug, not a race). */
static int save_doc(VoDaemon *d, const char *key, json_t *doc, int64_t expected_rev)
{
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    return vo_store_put(d->store, key, text, expected_rev, NULL);
}

static char *current_of(VoDaemon *d, const char *vm_id)
{
    _cleanup_free_ char *key = vo_key_snapshot_current(vm_id);
    json_t *doc = load_doc(d, key, NULL);
    char *name = vo_strdup(json_string_value(json_object_get(doc, "name")));
    json_decref(doc);
    return name;
}

static void set_current(VoDaemon *d, const char *vm_id, const char *name)
{
    _cleanup_free_ char *key = vo_key_snapshot_current(vm_id);
    int64_t rev = VO_REV_NEW;
    json_decref(load_doc(d, key, &rev));
    if (!name) {
        if (rev != VO_REV_NEW)
            (void)vo_store_delete(d->store, key, rev);
        return;
    }
    json_t *doc = json_pack("{s:s}", "name", name);
    (void)save_doc(d, key, doc, rev);
    json_decref(doc);
}

typedef struct {
    json_t *all;  /* array of documents */
    json_t *revs; /* their revisions, in the same order */
} SnapList;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    SnapList *l = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    if (doc) {
        json_array_append_new(l->all, doc);
        json_array_append_new(l->revs, json_integer(rev));
    }
    return 0;
}

/* ret_revs (may be NULL): each document's revision. */
static json_t *all_of(VoDaemon *d, const char *vm_id, json_t **ret_revs)
{
    SnapList l = { json_array(), json_array() };
    _cleanup_free_ char *prefix = vo_key_snapshots_prefix(vm_id);
    (void)vo_store_list(d->store, prefix, collect, &l);
    if (ret_revs)
        *ret_revs = l.revs;
    else
        json_decref(l.revs);
    return l.all;
}

static int64_t rev_at(json_t *revs, size_t i)
{
    return json_integer_value(json_array_get(revs, i));
}

static char *vm_id_of(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    char *id = vo_strdup(vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    return id;
}

json_t *vo_snapshots_list_json(VoDaemon *d, VoVm *vm)
{
    _cleanup_free_ char *id = vm_id_of(vm);
    _cleanup_free_ char *current = current_of(d, id);
    json_t *all = all_of(d, id, NULL);
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        json_t *children = json_array();
        size_t k;
        json_t *c;
        json_array_foreach(all, k, c)
            if (!strcmp(json_string_value(json_object_get(c, "parent")) ?: "", name))
                json_array_append_new(children, json_string(json_string_value(json_object_get(c, "name"))));
        json_object_set_new(s, "children", children);
        json_object_set_new(s, "current", json_boolean(current && !strcmp(current, name)));
        json_object_del(s, "hardware"); /* internal: see hardware_of() */
        json_object_del(s, VO_SNAPSHOT_BOOT_MEMORY_KEY);
        if (!json_object_get(s, "parent"))
            json_object_set_new(s, "parent", json_null());
    }
    return json_pack("{s:o, s:o}", "snapshots", all, "current",
                     current ? json_string(current) : json_null());
}

int vo_snapshot_get_json(VoDaemon *d, VoVm *vm, const char *name, json_t **ret,
                         char **ret_error)
{
    json_t *list = vo_snapshots_list_json(d, vm);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(list, "snapshots"), i, s)
        if (!strcmp(json_string_value(json_object_get(s, "name")), name)) {
            *ret = json_incref(s);
            json_decref(list);
            return 0;
        }
    json_decref(list);
    *ret_error = vo_asprintf("snapshot '%s' does not exist", name);
    return -ENOENT;
}

void vo_snapshots_forget(VoDaemon *d, const char *vm_id)
{
    json_t *revs = NULL;
    json_t *all = all_of(d, vm_id, &revs);
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) {
        _cleanup_free_ char *key = snap_key(vm_id, json_string_value(json_object_get(s, "name")));
        (void)vo_store_delete(d->store, key, rev_at(revs, i));
    }
    json_decref(all);
    json_decref(revs);
    set_current(d, vm_id, NULL);
}

/* ---- the work ------------------------------------------------------------- */

/* qemu-img snapshot FLAG [TAG] on the qcow2 volume path (a file or a LUN). */
static int img_snapshot(const char *path, const char *flag, const char *tag, char **ret_out)
{
    _cleanup_strv_ char **argv = NULL;
    _cleanup_free_ char *name = NULL;
    vo_strv_pushf(&argv, "qemu-img");
    vo_strv_pushf(&argv, "snapshot");
    int r = vo_img_open_args(&argv, path, "qcow2", &name, ret_out);
    if (r < 0)
        return r;
    vo_strv_pushf(&argv, "%s", tag ? "-q" : "-U");
    vo_strv_pushf(&argv, "%s", flag);
    if (tag)
        vo_strv_pushf(&argv, "%s", tag);
    vo_strv_pushf(&argv, "%s", name);
    return vo_spawn_wait(argv, 600000, ret_out);
}

/* The tags of the internal snapshots in the qcow2 volume at path, one per
 * snapshot (a tag twice when two have it); NULL: none, or unreadable. */
static char **snapshot_tags(const char *path)
{
    _cleanup_free_ char *out = NULL;
    char **tags = NULL;
    if (img_snapshot(path, "-l", NULL, &out) < 0 || !out)
        return NULL;
    /* Lines: "ID  TAG  VM-SIZE  DATE  ..." under two header lines; the ID
     * is a number, the tag the second column. */
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char id[64], name[256];
        if (sscanf(line, "%63s %255s", id, name) == 2 && strspn(id, "0123456789") == strlen(id))
            vo_strv_pushf(&tags, "%s", name);
    }
    return tags;
}

/* Whether the qcow2 volume at path holds internal snapshot tag. */
static bool has_snapshot(const char *path, const char *tag)
{
    _cleanup_strv_ char **tags = snapshot_tags(path);
    for (char **t = tags; t && *t; t++)
        if (!strcmp(*t, tag))
            return true;
    return false;
}

int vo_snapshots_drop_internal(const char *path, char **ret_error)
{
    _cleanup_strv_ char **tags = snapshot_tags(path);
    for (char **t = tags; t && *t; t++) { /* a tag twice: -d drops one each time */
        _cleanup_free_ char *out = NULL;
        int r = img_snapshot(path, "-d", *t, &out);
        if (r < 0)
            return vo_error_set(ret_error, r, "qemu-img snapshot -d '%s' on %s: %s", *t, path,
                                out && *out ? out : strerror(-r));
    }
    return 0;
}

/* The file of disk i of spec; i == n_disks: its UEFI NVRAM (qcow2, in every
 * snapshot like a disk), NULL when it has none. */
static const char *snapshot_file(const VoVmSpec *spec, size_t i)
{
    return i < spec->n_disks ? spec->disks[i].path : spec->nvram_path;
}

/* qemu-img snapshot -c/-a/-d on every disk (and the NVRAM) of a stopped VM.
 * A revert checks first that every disk has the snapshot, so it never stops
 * half-way; a delete skips disks that do not have it (added after it was
 * taken); so do a revert and a delete on an NVRAM made after it (firmware
 * switched to uefi later: it keeps its contents). */
static int offline(const VoVmSpec *spec, const char *flag, const char *tag, char **ret_error)
{
    if (!strcmp(flag, "-a"))
        for (size_t i = 0; i < spec->n_disks; i++)
            if (!has_snapshot(spec->disks[i].path, tag)) {
                *ret_error = vo_asprintf("disk %zu (%s) has no snapshot '%s' (added after it "
                                         "was taken?): nothing was reverted", i,
                                         spec->disks[i].path, tag);
                return -ENOENT;
            }
    /* The backup bitmaps go first: qemu-img refuses to revert a file that
     * has one ("Device has active dirty bitmaps"), and the revert makes
     * them wrong anyway (it drops the backup base: the next backup is
     * full); on a qcow2 layer on an iSCSI LUN as well. */
    for (size_t i = 0; !strcmp(flag, "-a") && i < spec->n_disks; i++) {
        const VoDiskSpec *disk = &spec->disks[i];
        int r = disk->format == VO_DISK_QCOW2
                    ? vo_img_bitmaps_remove(disk->path, VO_BACKUP_BITMAP_PREFIX, ret_error)
                    : 0;
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i <= spec->n_disks; i++) {
        const char *file = snapshot_file(spec, i);
        if (!file || (strcmp(flag, "-c") && !has_snapshot(file, tag)))
            continue;
        _cleanup_free_ char *out = NULL;
        int r = img_snapshot(file, flag, tag, &out);
        if (r < 0) {
            for (size_t n = out ? strlen(out) : 0; n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ');)
                out[--n] = 0;
            *ret_error = vo_asprintf("qemu-img snapshot %s on %s: %s", flag, file,
                                     out && *out ? out : strerror(-r));
            return r;
        }
    }
    return 0;
}

/* Free bytes of the file system holding the boot disk (*ret_dir: its
 * directory); ULLONG_MAX when unknown. */
static unsigned long long boot_disk_room(const VoVmSpec *spec, char **ret_dir)
{
    *ret_dir = spec->n_disks ? vo_strdup(spec->disks[0].path) : NULL;
    char *slash = *ret_dir ? strrchr(*ret_dir, '/') : NULL;
    unsigned long long avail = 0;
    if (!slash)
        return ULLONG_MAX;
    slash[slash == *ret_dir] = 0; /* "/x" -> "/" */
    return vo_fs_usage(*ret_dir, NULL, &avail, NULL) < 0 ? ULLONG_MAX : avail;
}

/* A snapshot of a running VM writes its memory state (at most its RAM) into
 * the boot disk's file. Refused at once when that file system cannot hold
 * it: a save that runs out of space mid-way fills the pool, and every other
 * VM writing there would stop on ENOSPC. */
static int check_room_for_memory(VoVm *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    _cleanup_free_ char *dir = NULL, *unresolved = NULL;
    _cleanup_vm_spec_ VoVmSpec *spec = NULL;
    /* Unknown (its volume is gone): the task fails on that. */
    unsigned long long avail = vo_vm_resolve(vm->d, stored, &spec, &unresolved) < 0
                                   ? ULLONG_MAX : boot_disk_room(spec, &dir);
    unsigned long long need = (stored->memory_mib + VO_SNAPSHOT_STATE_MARGIN_MIB) << 20;
    if (avail >= need)
        return 0;
    return vo_error_set(ret_error, -ENOSPC,
                        "not enough space for the memory state: %s has %llu MiB free and a "
                        "snapshot of this running VM may need up to %llu MiB",
                        dir, avail >> 20, need >> 20);
}

/* The VM's hardware as its memory state depends on: a memory snapshot loads
 * only into a QEMU with the same devices (QEMU would otherwise fail after
 * overwriting part of the guest's RAM). Hot-plug changes it. */
static char *hardware_of(const VoVmSpec *spec, bool paths)
{
    char *hw = vo_asprintf("machine=%s vcpus=%u/%u memory=%llu/%llu disks=", spec->machine,
                           spec->vcpus, spec->max_vcpus, (unsigned long long)spec->memory_mib,
                           (unsigned long long)spec->max_memory_mib);
    for (size_t i = 0; i < spec->n_disks; i++) {
        /* Disks by volume; vireod before specs named volumes wrote their paths. */
        const char *disk = paths ? spec->disks[i].path : spec->disks[i].volume;
        char *next = vo_asprintf("%s%u:%s,", hw, spec->disks[i].slot, disk ? disk : "?");
        free(hw);
        hw = next;
    }
    char *next = vo_asprintf("%s nics=", hw);
    free(hw);
    hw = next;
    for (size_t i = 0; i < spec->n_nics; i++) {
        next = vo_asprintf("%s%u:%s,", hw, spec->nics[i].slot, spec->nics[i].mac);
        free(hw);
        hw = next;
    }
    return hw;
}

/* 0 when snapshot doc's memory state fits spec's hardware; -EBUSY (message
 * in *ret_error) when a device was plugged or unplugged since. */
static int check_same_hardware(json_t *doc, const VoVmSpec *spec, char **ret_error)
{
    const char *then = json_string_value(json_object_get(doc, "hardware"));
    _cleanup_free_ char *now = hardware_of(spec, false);
    if (!then || !strcmp(then, now))
        return 0;
    /* Taken by an older vireod (disks by path): compared with this host's
     * paths, which only a resolved spec has (the task checks again). */
    bool legacy = strstr(then, ":/") != NULL;
    if (legacy && (!spec->n_disks || !spec->disks[0].path))
        return 0;
    _cleanup_free_ char *now_paths = legacy ? hardware_of(spec, true) : NULL;
    if (now_paths && !strcmp(then, now_paths))
        return 0;
    return vo_error_set(ret_error, -EBUSY,
                        "the VM's hardware changed since snapshot '%s' was taken (a disk, NIC, "
                        "vCPU or memory change): its memory state loads only into the hardware "
                        "it was saved from; put that back first (then: %s; now: %s)",
                        json_string_value(json_object_get(doc, "name")), then, now);
}

/* 0 when snapshot doc's memory state fits the boot memory of the VM's QEMU
 * hv (snapshot-boot-memory.h); else -EBUSY or the driver's error. */
static int check_same_boot_memory(VoDaemon *d, VoHvInstance *hv, json_t *doc, char **ret_error)
{
    VoHvResources res;
    int r = d->driver->query_resources(hv, true, &res);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the VM's memory sizes from QEMU: %s",
                            strerror(-r));
    return vo_snapshot_boot_memory_check(doc, res.boot_memory_kib, ret_error);
}

typedef struct {
    VoVm *vm;
    char *name, *description;
    bool memory, force;
} SnapOp;

static void snap_op_free(void *p)
{
    SnapOp *op = p;
    vo_vm_unref(op->vm);
    free(op->name);
    free(op->description);
    free(op);
}

/* Under the job lock: the VM's state, a copy of its spec with this host's
 * paths and its QEMU. When a volume or image cannot be resolved, *ret_spec
 * is the copy without paths and *ret_r and *ret_error say why. */
/* If-Match of a snapshot revert or delete (the snapshot's revision), under
 * the VM's job lock that every write of the VM's snapshots holds: 0, or
 * -VO_EIFMATCH with *ret_error. */
static int snapshot_if_match(VoTask *t, const char *name, int64_t rev, char **ret_error)
{
    int64_t want = vo_task_if_match(t);
    if (want <= 0 || want == rev)
        return 0;
    return vo_error_set(ret_error, -VO_EIFMATCH, "snapshot '%s' changed: it is at revision "
                        "%lld, not %lld (If-Match); nothing was done: read it again", name,
                        (long long)rev, (long long)want);
}

static VoHvInstance *snapshot_of_state(VoVm *vm, VoVmSpec **ret_spec, bool *ret_active,
                                       int *ret_r, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *stored = vo_vm_spec_copy(vm->spec);
    *ret_active = vo_vm_state_active(vm->state);
    VoHvInstance *hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);
    *ret_r = vo_vm_resolve(vm->d, stored, ret_spec, ret_error);
    if (*ret_r < 0)
        *ret_spec = TAKE_PTR(stored);
    vo_vm_spec_free(stored);
    return hv;
}

static int task_create(VoTask *t, void *userdata)
{
    SnapOp *op = userdata;
    VoVm *vm = op->vm;
    VoDaemon *d = vm->d;
    _cleanup_free_ char *error = NULL;
    VoVmSpec *spec = NULL;
    bool active = false;
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    if (vo_vm_check_if_match(t, vm) < 0)
        return -VO_EIFMATCH;
    pthread_mutex_unlock(&vm->lock);
    int r = 0;
    VoHvInstance *hv = snapshot_of_state(vm, &spec, &active, &r, &error);
    int rbd = r < 0 ? 0 : vo_snapshot_rbd_check(d, spec, &error);
    if (rbd < 0)
        r = rbd;
    _cleanup_free_ char *key = snap_key(spec->id, op->name);
    bool quiesced = false;
    _cleanup_free_ char *quiesce_reason = NULL;
    json_t *existing = r < 0 ? NULL : load_doc(d, key, NULL);
    if (r < 0) {
        /* error says which volume or image */
    } else if (existing) { /* another create of the same name got here first */
        json_decref(existing);
        error = vo_asprintf("snapshot '%s' already exists", op->name);
        r = -EEXIST;
    } else if (op->memory && !active) {
        error = vo_strdup("a snapshot with memory needs the VM running");
        r = -EBUSY;
    } else if (op->memory && rbd) {
        error = vo_strdup(RBD_NO_MEMORY);
        r = -EINVAL;
    } else if (active && hv) {
        /* The guest's file systems frozen around the instant (guest agent);
         * thawed again whatever the save did. */
        pthread_mutex_lock(&vm->lock);
        bool paused = vm->state == VO_VM_PAUSED;
        pthread_mutex_unlock(&vm->lock);
        if (paused)
            quiesce_reason = vo_strdup("the VM is paused: its guest cannot freeze its file "
                                       "systems");
        else {
            /* Kept while frozen/paused: a vireod that dies in between
             * undoes them when it re-attaches the VM (vm-pause-mark.h). */
            vo_snapshot_mark(d, spec->id, spec->name, true, rbd);
            vo_task_progress(t, 5, "freezing the guest's file systems (guest agent)");
            quiesced = vo_vm_agent_freeze(vm, hv, &quiesce_reason);
        }
        vo_task_progress(t, 10, rbd ? "making RBD snapshots (VM paused)" : "saving disks and memory");
        /* RBD: the VM paused for the instant (unless it is paused already). */
        r = rbd ? vo_snapshot_rbd_create(d, spec, op->name, paused ? NULL : hv, &error)
                : d->driver->snapshot(hv, "save", op->name, spec, &error);
        if (quiesced)
            vo_vm_agent_thaw(vm, hv);
        if (!paused)
            vo_snapshot_unmark(d, spec->id);
        _cleanup_free_ char *dir = NULL;
        if (r < 0 && !rbd && boot_disk_room(spec, &dir) < (1 << 20)) {
            free(error);
            error = vo_asprintf("%s ran out of space while the memory state was written; the "
                                "VM runs on and its disks keep their data", dir);
            r = -ENOSPC;
        }
    } else {
        vo_task_progress(t, 10, "saving disks");
        r = rbd ? vo_snapshot_rbd_create(d, spec, op->name, NULL, &error)
                : offline(spec, "-c", op->name, &error);
    }
    if (r >= 0) {
        _cleanup_free_ char *parent = current_of(d, spec->id);
        json_t *doc = json_pack("{s:s, s:b, s:b, s:o}", "name", op->name, "memory",
                                active && op->memory, "vm_running", active, "created_at",
                                vo_time_json(vo_wall_ms()));
        json_object_set_new(doc, "parent", parent ? json_string(parent) : json_null());
        json_object_set_new(doc, "description",
                            op->description ? json_string(op->description) : json_null());
        /* Whether the guest's file systems were frozen at the instant. */
        json_object_set_new(doc, "quiesced", json_boolean(quiesced));
        json_object_set_new(doc, "quiesce_reason",
                            quiesced ? json_null()
                            : quiesce_reason ? json_string(quiesce_reason)
                                             : json_string("the VM was not running"));
        _cleanup_free_ char *hardware = active ? hardware_of(spec, false) : NULL;
        if (hardware)
            json_object_set_new(doc, "hardware", json_string(hardware));
        /* Unrecorded (QEMU did not answer): checked as whole MiB at a load. */
        VoHvResources res;
        if (active && op->memory && hv && d->driver->query_resources(hv, true, &res) >= 0)
            vo_snapshot_boot_memory_record(doc, res.boot_memory_kib);
        r = save_doc(d, key, doc, VO_REV_NEW);
        json_decref(doc);
        if (r >= 0)
            set_current(d, spec->id, op->name);
    }
    pthread_mutex_unlock(&vm->job);
    if (r < 0)
        r = vo_task_fail(t, r, "cannot snapshot VM '%s': %s", spec->name,
                         error ? error : strerror(-r));
    vo_vm_spec_free(spec);
    return r;
}

static int task_revert(VoTask *t, void *userdata)
{
    SnapOp *op = userdata;
    VoVm *vm = op->vm;
    VoDaemon *d = vm->d;
    _cleanup_free_ char *error = NULL, *key = NULL;
    VoVmSpec *spec = NULL;
    bool active = false;
    pthread_mutex_lock(&vm->job);
    int r = 0;
    VoHvInstance *hv = snapshot_of_state(vm, &spec, &active, &r, &error);
    int rbd = r < 0 ? 0 : vo_snapshot_rbd_check(d, spec, &error);
    if (rbd < 0)
        r = rbd;
    key = snap_key(spec->id, op->name);
    int64_t rev = VO_REV_NEW;
    json_t *doc = load_doc(d, key, &rev);
    bool memory = json_is_true(json_object_get(doc, "memory"));
    if (r < 0) {
        /* error says which volume or image */
    } else if (!doc) {
        error = vo_asprintf("snapshot '%s' does not exist", op->name);
        r = -ENOENT;
    } else if ((r = snapshot_if_match(t, op->name, rev, &error)) < 0) {
        /* refused: nothing changed */
    } else if (memory && active && (r = check_same_hardware(doc, spec, &error)) < 0) {
        /* refused: error says why */
    } else if (memory && active && hv && (r = check_same_boot_memory(d, hv, doc, &error)) < 0) {
        /* refused before QEMU reverts the disks: error says why */
    } else if (active && !op->force) {
        error = vo_strdup("the VM runs: reverting discards its current state; pass force");
        r = -EBUSY;
    } else if (memory && active && hv) {
        vo_task_progress(t, 10, "loading disks and memory");
        r = d->driver->snapshot(hv, "load", op->name, spec, &error);
        if (r >= 0)
            (void)d->driver->resume(hv); /* back to running at that instant */
        /* That instant had the guest's file systems frozen: thaw them. */
        if (r >= 0 && json_is_true(json_object_get(doc, "quiesced")))
            vo_vm_agent_thaw(vm, hv);
    } else if (memory) {
        error = vo_strdup("start the VM first: a snapshot with memory is loaded into a running VM");
        r = -EBUSY;
    } else {
        if (active)
            r = vo_vm_stop_locked(t, vm, true, 0);
        if (r >= 0) {
            vo_task_progress(t, 50, "reverting disks");
            r = rbd ? vo_snapshot_rbd_revert(d, spec, op->name, &error)
                    : offline(spec, "-a", op->name, &error);
        }
    }
    json_decref(doc);
    if (r >= 0) {
        set_current(d, spec->id, op->name);
        /* The disks changed behind the backup bitmaps' back: the base of the
         * next incremental backup goes. Deleted here by its key (the backup
         * service sits above this one); VO_REV_ANY: no base is valid any
         * more, whichever revision it has. */
        _cleanup_free_ char *base = vo_key_backup_base(spec->id);
        (void)vo_store_delete(d->store, base, VO_REV_ANY);
    }
    pthread_mutex_unlock(&vm->job);
    if (r < 0)
        r = vo_task_fail(t, r, "cannot revert VM '%s' to '%s': %s", spec->name, op->name,
                         error ? error : strerror(-r));
    vo_vm_spec_free(spec);
    return r < 0 ? r : 0;
}

static int task_delete(VoTask *t, void *userdata)
{
    SnapOp *op = userdata;
    VoVm *vm = op->vm;
    VoDaemon *d = vm->d;
    _cleanup_free_ char *error = NULL;
    VoVmSpec *spec = NULL;
    bool active = false;
    pthread_mutex_lock(&vm->job);
    int r = 0;
    VoHvInstance *hv = snapshot_of_state(vm, &spec, &active, &r, &error);
    int rbd = r < 0 ? 0 : vo_snapshot_rbd_check(d, spec, &error);
    if (rbd < 0)
        r = rbd;
    _cleanup_free_ char *key = snap_key(spec->id, op->name);
    int64_t rev = VO_REV_NEW;
    json_t *doc = load_doc(d, key, &rev);
    _cleanup_free_ char *parent = vo_strdup(json_string_value(json_object_get(doc, "parent")));
    if (r >= 0 && !doc) {
        r = -ENOENT;
        error = vo_asprintf("snapshot '%s' does not exist", op->name);
    }
    if (r >= 0)
        r = snapshot_if_match(t, op->name, rev, &error);
    json_decref(doc);
    if (r >= 0 && rbd)
        r = vo_snapshot_rbd_delete(d, spec, op->name, &error);
    else if (r >= 0 && active && hv)
        r = d->driver->snapshot(hv, "delete", op->name, spec, &error);
    else if (r >= 0)
        r = offline(spec, "-d", op->name, &error);
    if (r >= 0) {
        /* Its children now hang off its parent; the tree stays whole. */
        json_t *revs = NULL;
        json_t *all = all_of(d, spec->id, &revs);
        size_t i;
        json_t *s;
        json_array_foreach(all, i, s) {
            const char *p = json_string_value(json_object_get(s, "parent"));
            if (p && !strcmp(p, op->name)) {
                json_object_set_new(s, "parent", parent ? json_string(parent) : json_null());
                _cleanup_free_ char *child = snap_key(spec->id, json_string_value(json_object_get(s, "name")));
                (void)save_doc(d, child, s, rev_at(revs, i));
            }
        }
        json_decref(all);
        json_decref(revs);
        (void)vo_store_delete(d->store, key, rev);
        _cleanup_free_ char *current = current_of(d, spec->id);
        if (current && !strcmp(current, op->name))
            set_current(d, spec->id, parent);
    }
    pthread_mutex_unlock(&vm->job);
    vo_vm_spec_free(spec);
    if (r < 0)
        return vo_task_fail(t, r, "cannot delete snapshot '%s': %s", op->name,
                            error ? error : strerror(-r));
    return 0;
}

/* ---- entry points ----------------------------------------------------------- */

/* 1: the VM's disks are RBD images (RBD snapshots), 0: all qcow2, -EINVAL
 * with *ret_error otherwise. */
static int check_disks(VoVm *vm, char **ret_error)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_vm_spec_ VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    pthread_mutex_unlock(&vm->lock);
    int r = vo_snapshot_rbd_check(vm->d, spec, ret_error);
    for (size_t i = 0; i < spec->n_disks && r == 0; i++)
        if (spec->disks[i].format != VO_DISK_QCOW2) {
            *ret_error = vo_asprintf("disk %zu of VM '%s' is raw: snapshots need qcow2 disks "
                                     "(or all disks in rbd pools)", i, spec->name);
            r = -EINVAL;
        }
    return r;
}

static SnapOp *snap_op(VoVm *vm, const char *name)
{
    SnapOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->name = vo_strdup(name);
    return op;
}

int vo_snapshot_create(VoDaemon *d, VoVm *vm, const char *name, bool memory,
                       const char *description, json_t **ret_task, char **ret_error)
{
    if (!vo_name_valid(name)) {
        *ret_error = vo_asprintf("name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and "
                                 "'-', not starting with '-'", name ? name : "");
        return -EINVAL;
    }
    /* Any state, but not a VM kept with a problem (or being made or deleted). */
    int r = vo_vm_precheck(vm, ACTIVE_STATES | INACTIVE_STATES, "snapshot", ret_error);
    int rbd = r < 0 ? r : check_disks(vm, ret_error);
    if (r < 0 || rbd < 0)
        return r < 0 ? r : rbd;
    if (memory && rbd) {
        *ret_error = vo_strdup(RBD_NO_MEMORY);
        return -EINVAL;
    }
    if (memory && !vo_vm_is_active(vm)) {
        *ret_error = vo_strdup("a snapshot with memory needs the VM running");
        return -EBUSY;
    }
    if (vo_vm_is_active(vm) && !rbd) {
        r = check_room_for_memory(vm, ret_error);
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *id = vm_id_of(vm);
    _cleanup_free_ char *key = snap_key(id, name);
    json_t *existing = load_doc(d, key, NULL);
    if (existing) {
        json_decref(existing);
        *ret_error = vo_asprintf("snapshot '%s' already exists", name);
        return -EEXIST;
    }
    SnapOp *op = snap_op(vm, name);
    op->memory = memory;
    op->description = vo_strdup(description);
    return vo_vm_submit(d, vm, "snapshot-create", task_create, op, snap_op_free, ret_task,
                        ret_error);
}

static int exists_or_fail(VoDaemon *d, VoVm *vm, const char *name, char **ret_error)
{
    _cleanup_free_ char *id = vm_id_of(vm);
    _cleanup_free_ char *key = snap_key(id, name);
    json_t *doc = load_doc(d, key, NULL);
    if (!doc) {
        *ret_error = vo_asprintf("snapshot '%s' does not exist", name);
        return -ENOENT;
    }
    json_decref(doc);
    return 0;
}

int vo_snapshot_revert(VoDaemon *d, VoVm *vm, const char *name, bool force, json_t **ret_task,
                       char **ret_error)
{
    int r = vo_vm_precheck(vm, ACTIVE_STATES | INACTIVE_STATES, "revert a snapshot of",
                           ret_error);
    if (r >= 0)
        r = exists_or_fail(d, vm, name, ret_error);
    if (r < 0)
        return r;
    bool active = vo_vm_is_active(vm);
    if (active && !force) {
        *ret_error = vo_strdup("the VM runs: reverting discards its current state; pass force "
                               "(--force) to do it");
        return -EBUSY;
    }
    _cleanup_free_ char *id = vm_id_of(vm);
    _cleanup_free_ char *key = snap_key(id, name);
    json_t *doc = load_doc(d, key, NULL);
    bool memory = json_is_true(json_object_get(doc, "memory"));
    if (memory && active) {
        pthread_mutex_lock(&vm->lock);
        r = check_same_hardware(doc, vm->spec, ret_error);
        pthread_mutex_unlock(&vm->lock);
    }
    json_decref(doc);
    if (r < 0)
        return r;
    if (memory && !active) {
        *ret_error = vo_strdup("start the VM first: a snapshot with memory is loaded into a "
                               "running VM");
        return -EBUSY;
    }
    SnapOp *op = snap_op(vm, name);
    op->force = force;
    return vo_vm_submit(d, vm, "snapshot-revert", task_revert, op, snap_op_free, ret_task,
                        ret_error);
}

int vo_snapshot_delete(VoDaemon *d, VoVm *vm, const char *name, json_t **ret_task,
                       char **ret_error)
{
    int r = vo_vm_precheck(vm, ACTIVE_STATES | INACTIVE_STATES, "delete a snapshot of",
                           ret_error);
    if (r >= 0)
        r = exists_or_fail(d, vm, name, ret_error);
    if (r < 0)
        return r;
    return vo_vm_submit(d, vm, "snapshot-delete", task_delete, snap_op(vm, name), snap_op_free,
                        ret_task, ret_error);
}
