/* migrate-checks.c: the checks before a live migration (or a cold move,
 * move.c) is accepted (migrate.h, migrate-internal.h): the target host
 * (chosen, or named and compatible: CPU, devices, networks and their
 * projects), the disks (shared, or on this host's own pools and mirrored
 * along: the target's pool, no snapshots, reachable), the CD-ROM and the
 * UEFI NVRAM. Each refusal is a 4xx with what to fix. */
#include "daemon/migrate.h"
#include "daemon/migrate-internal.h"
#include "daemon/vm-job.h"

#include <string.h>

#include "cluster/migrate-compat.h"
#include "daemon/migrate-target.h"
#include "daemon/object-projects.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "storage/volume-path.h"
#include "util/util.h"

static int collect_network(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    const char *slash = strrchr(key, '/');
    vo_strv_push(userdata, vo_strdup(slash ? slash + 1 : key));
    return 0;
}

static json_t *host_record(VoDaemon *d, const char *host_id)
{
    _cleanup_free_ char *key = vo_asprintf("cluster/hosts/%s", host_id), *text = NULL;
    return vo_store_get(d->store, key, &text, NULL) >= 0 ? json_loads(text, 0, NULL) : NULL;
}

/* The project of each of the target's own networks ("" for none; a
 * cluster network is of scope "cluster", the same on both hosts, and reads
 * as none here), or NULL when one cannot be read: the target's prepare
 * then has the last word, as for any network. */
static char **target_network_projects(VoDaemon *d, const char *target_id, char **nets)
{
    char **projects = vo_malloc0((vo_strv_len(nets) + 1) * sizeof(char *));
    for (size_t i = 0; nets[i]; i++) {
        char *project = NULL;
        if (vo_host_network_project(d, target_id, nets[i], &project) < 0) {
            vo_strv_free(projects);
            return NULL;
        }
        projects[i] = project ? project : vo_strdup("");
    }
    return projects;
}

/* Before the target is asked to prepare (cluster/migrate-compat.h): 409
 * (-EBUSY) with every reason the VM cannot run there. */
int vo_migrate_check_compat(VoDaemon *d, VoVm *vm, const VoVmSpec *spec, const char *target_id,
                            const char *target_name, const char *verb, char **ret_error)
{
    /* On the HTTP thread: a VM busy with another task is refused at once
     * (409); the monitoring and balancing samplers' moment is waited for
     * (daemon/vm-job.h). */
    int r = vo_vm_job_wait_brief(vm, VO_VM_JOB_BRIEF_WAIT_MS, verb, ret_error);
    if (r < 0)
        return r;
    VoHvInstance *hv = vm->hv;
    _cleanup_free_ char *layout = NULL, *lerror = NULL;
    if (hv && d->driver->layout(hv, &layout, &lerror) < 0)
        log_warn("vm %s: no layout for the compatibility check: %s", spec->name, lerror);
    vo_vm_job_end_brief(vm);
    _cleanup_strv_ char **nets = vo_malloc0(sizeof(char *));
    _cleanup_free_ char *prefix = vo_asprintf("h/%s/networks/", target_id);
    (void)vo_store_list(d->cluster_store, prefix, collect_network, &nets);
    _cleanup_strv_ char **projects = target_network_projects(d, target_id, nets);
    VoMigrateCompat c = { .source_record = host_record(d, d->host_id),
                          .target_record = host_record(d, target_id), .spec = spec,
                          .layout = layout, .target_networks = (const char *const *)nets,
                          .target_network_projects = (const char *const *)projects };
    _cleanup_free_ char *reasons = NULL;
    r = vo_migrate_compat_check(&c, &reasons);
    json_decref(c.source_record);
    json_decref(c.target_record);
    if (r < 0)
        return vo_error_set(ret_error, -EBUSY, "VM '%s' cannot move to host '%s': %s",
                            spec->name, target_name, reasons ? reasons : strerror(-r));
    return 0;
}

void vo_migrate_local_disks_free(LocalDisk *disks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(disks[i].pool);
        free(disks[i].name);
        free(disks[i].format);
        free(disks[i].image);
    }
    free(disks);
}

/* The target's pool for local disks: a pool of its own there (not
 * shared, not for backups). 409 otherwise. */
static int check_target_pool(VoDaemon *d, const char *target_id, const char *target_name,
                             const char *pool, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("h/%s/pools/%s", target_id, pool), *text = NULL;
    int r = vo_store_get(d->cluster_store, key, &text, NULL);
    if (r == -ENOENT) {
        _cleanup_free_ char *shared = vo_asprintf("cluster/pools/%s", pool);
        bool is_shared = vo_store_get(d->cluster_store, shared, NULL, NULL) >= 0;
        return vo_error_set(ret_error, -EBUSY, "pool: host '%s' has no pool '%s' of its own%s "
                            "(see vireo pool list on it; --pool names the pool there that "
                            "local disks go to)", target_name, pool,
                            is_shared ? " (it is a shared pool)" : "");
    }
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read host '%s''s pool '%s': %s", target_name,
                            pool, strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    const char *type = json_string_value(json_object_get(doc, "type"));
    bool backup = type && !strcmp(type, VO_BACKUP_POOL_TYPE);
    json_decref(doc);
    if (backup)
        return vo_error_set(ret_error, -EBUSY, "pool: '%s' on host '%s' is a backup pool: "
                            "volumes go to a dir pool", pool, target_name);
    return 0;
}

/* A VM with local disks and snapshots: its snapshots live inside those
 * disks' qcow2 files (internal snapshots, memory state in disk 0), and
 * a mirror copies only what the guest sees now, so the destination's
 * files would have none while the snapshot documents went along. 409
 * (-EBUSY) saying what to do instead. */
static int check_no_snapshots(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    size_t n = 0;
    _cleanup_free_ char *prefix = vo_key_snapshots_prefix(spec->id);
    int r = vo_store_count(d->store, prefix, &n);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read VM '%s''s snapshots: %s", spec->name,
                            strerror(-r));
    if (n == 0)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' has %zu snapshot%s, kept inside its disks "
                        "on this host's own pools: a live migration copies only the disks' "
                        "current state, so they would be lost; delete them first (vireo "
                        "snapshot list %s), or stop the VM and use vireo vm move, which "
                        "copies the whole files", spec->name, n, n == 1 ? "" : "s",
                        spec->name);
}

/* A shared pool (dir or rbd) that the target's host record says it does
 * not reach (pools_unreachable: its NFS mount missing, its Ceph monitors
 * not answering): 409 naming the pool and the target's reason, before the
 * destination's QEMU would wait on it. No record: 0 (the host check and
 * the destination's prepare answer for it). */
static int check_target_reaches(VoDaemon *d, const char *target_id, const char *target_name,
                                const char *key, const char *pool, char **ret_error)
{
    _cleanup_free_ char *record_key = vo_asprintf("cluster/hosts/%s", target_id);
    _cleanup_free_ char *text = NULL;
    if (vo_store_get(d->store, record_key, &text, NULL) < 0)
        return 0;
    json_t *record = json_loads(text, 0, NULL);
    const char *why = json_string_value(
        json_object_get(json_object_get(record, "pools_unreachable"), pool));
    int r = why ? vo_error_set(ret_error, -EBUSY, "disk %s: host '%s' cannot reach pool '%s': "
                               "%s (vireo pool show %s on that host)", key, target_name, pool,
                               why, pool)
                : 0;
    json_decref(record);
    return r;
}

/* The VM's disks and UEFI NVRAM on this host's own pools (to be
 * mirrored; the NVRAM as slot VO_HV_NVRAM_SLOT), after the checks: no
 * kernel or initrd from such a volume, no CD-ROM medium on one
 * (vo_migrate_check_cdrom), the target's pool exists, no volume of the
 * same name in it there. 409 (-EBUSY) with what to fix. */
int vo_migrate_check_local_disks(VoDaemon *d, const VoVmSpec *spec, const char *target_id,
                                 const char *target_name, const char *pool,
                                 LocalDisk **ret_disks, size_t *ret_n, char **ret_error)
{
    int r = vo_migrate_check_cdrom(d, spec, "vm migrate", ret_error);
    if (r < 0)
        return r;
    LocalDisk *disks = vo_malloc0(sizeof(*disks) * (spec->n_disks + 2));
    size_t n = 0;
    const size_t nvram_at = spec->n_disks + 2;
    for (size_t i = 0; r >= 0 && i < VO_MIGRATE_VOLUMES(spec); i++) {
        const char *key = vo_migrate_volume_at(spec, i);
        if (!key)
            continue;
        _cleanup_free_ char *vpool = NULL, *vname = NULL;
        if (vo_volume_key_split(key, &vpool, &vname) < 0) {
            r = vo_error_set(ret_error, -EINVAL, "disk '%s' is not POOL/NAME", key);
            break;
        }
        json_t *doc = NULL;
        _cleanup_free_ char *error = NULL;
        bool shared = vo_pool_get_json(d, vpool, &doc, &error) >= 0 &&
                      json_is_true(json_object_get(doc, "shared"));
        json_decref(doc);
        if (shared) {
            r = check_target_reaches(d, target_id, target_name, key, vpool, ret_error);
            continue;
        }
        if (i >= spec->n_disks && i < nvram_at) {
            r = vo_error_set(ret_error, -EBUSY, "boot file '%s' is on pool '%s', which is this "
                             "host's own: only disks are copied by a migration (keep the "
                             "kernel and initrd in an image or a shared pool)", key, vpool);
            break;
        }
        json_t *vol = NULL;
        if ((r = vo_volume_get_json(d, vpool, vname, &vol, &error)) < 0) {
            r = vo_error_set(ret_error, r == -ENOENT ? -EBUSY : r, "disk %s: %s", key, error);
            break;
        }
        const char *image = json_string_value(json_object_get(vol, "image"));
        bool from_volume = json_is_string(json_object_get(vol, "backing_volume"));
        json_int_t size = json_integer_value(json_object_get(vol, "virtual_size_bytes"));
        disks[n] = (LocalDisk){
            .slot = i < spec->n_disks ? spec->disks[i].slot : VO_HV_NVRAM_SLOT,
            .pool = vo_strdup(vpool), .name = vo_strdup(vname),
            .format = vo_strdup(json_string_value(json_object_get(vol, "format"))),
            .size = size > 0 ? (uint64_t)size : 0, .image = vo_strdup(image),
            /* a clone of a volume is copied whole: it stands alone there */
            .flatten = from_volume };
        json_decref(vol);
        n++;
        if (!disks[n - 1].size || !disks[n - 1].format) {
            r = vo_error_set(ret_error, -EBUSY, "disk %s: its size cannot be read", key);
            break;
        }
        _cleanup_free_ char *there = vo_asprintf("h/%s/volumes/%s/%s", target_id, pool, vname);
        if (vo_store_get(d->cluster_store, there, NULL, NULL) >= 0)
            r = vo_error_set(ret_error, -EBUSY, "disk %s: host '%s' has a volume '%s/%s' "
                             "already (volumes keep their names: rename or delete that one, "
                             "or pick another pool with --pool)", key, target_name, pool,
                             vname);
    }
    if (r >= 0 && n)
        r = check_no_snapshots(d, spec, ret_error);
    if (r >= 0 && n)
        r = check_target_pool(d, target_id, target_name, pool, ret_error);
    if (r < 0) {
        vo_migrate_local_disks_free(disks, n);
        return r;
    }
    *ret_disks = disks;
    *ret_n = n;
    return 0;
}

int vo_migrate_find_target(VoDaemon *d, VoVm *vm, const char *to, const char *pool,
                           VoClusterHost *ret, char **ret_error)
{
    if (!d->cluster_store)
        return vo_error_set(ret_error, -EBUSY, "this host is not in a cluster: there is no "
                            "host to move the VM to");
    _cleanup_free_ char *picked = NULL;
    if (!to) { /* the manager's choice with placement's rules */
        _cleanup_free_ char *vm_id = vo_vm_id(vm), *why = NULL;
        int p = vo_migrate_pick_target(d, vm_id, d->host_id, pool, &picked, &why);
        if (p < 0)
            return vo_error_set(ret_error, p == -ENOENT ? -EBUSY : p,
                                "no target host for the VM: %s", why ? why : strerror(-p));
        to = picked;
    }
    VoClusterHost h = { 0 };
    int r = vo_cluster_host_find(d, to, &h);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -EINVAL, "to: no host '%s' in the cluster (see vireo "
                            "host list)", to);
    if (r < 0)
        return vo_error_set(ret_error, r, "to: cannot look host '%s' up: %s", to, strerror(-r));
    if (!strcmp(h.id, d->host_id)) {
        vo_cluster_host_clear(&h);
        return vo_error_set(ret_error, -EINVAL, "to: host '%s' is where the VM runs already",
                            to);
    }
    if (!h.online || !h.url) {
        r = vo_error_set(ret_error, -EBUSY, "to: host '%s' is offline", h.name);
        vo_cluster_host_clear(&h);
        return r;
    }
    *ret = h;
    return 0;
}

int vo_migrate_check_disks(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    int r = vo_migrate_check_cdrom(d, spec, "vm move", ret_error);
    if (r < 0)
        return r;
    for (size_t i = 0; i < VO_MIGRATE_VOLUMES(spec); i++) {
        const char *key = vo_migrate_volume_at(spec, i);
        if (!key)
            continue;
        _cleanup_free_ char *pool = strndup(key, strcspn(key, "/"));
        if (!pool)
            abort();
        json_t *doc = NULL;
        _cleanup_free_ char *error = NULL;
        bool shared = vo_pool_get_json(d, pool, &doc, &error) >= 0 &&
                      json_is_true(json_object_get(doc, "shared"));
        json_decref(doc);
        if (!shared)
            return vo_error_set(ret_error, -EBUSY, "%s '%s' is on pool '%s', which is this "
                                "host's own", i < spec->n_disks ? "disk"
                                              : i < spec->n_disks + 2 ? "boot file"
                                                                      : "UEFI NVRAM",
                                key, pool);
    }
    return 0;
}

const char *vo_migrate_volume_at(const VoVmSpec *spec, size_t i)
{
    return i < spec->n_disks        ? spec->disks[i].volume
           : i == spec->n_disks     ? spec->kernel_from.volume
           : i == spec->n_disks + 1 ? spec->initrd_from.volume
           : i == spec->n_disks + 2 && spec->firmware == VO_FIRMWARE_UEFI ? spec->nvram
                                                                          : NULL;
}

int vo_migrate_check_cdrom(VoDaemon *d, const VoVmSpec *spec, const char *what,
                           char **ret_error)
{
    if (!spec->cdrom || vo_volume_is_shared(d, spec->cdrom))
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' has ISO volume '%s' in its CD-ROM drive, "
                        "on this host's own pool: %s does not copy CD-ROM media (other VMs "
                        "may use it); eject it first (vireo vm cdrom eject %s), or put the "
                        "ISO in a shared pool", spec->name, spec->cdrom, what, spec->name);
}

int vo_migrate_check_nvram(VoDaemon *d, const VoVmSpec *spec, const char *what,
                           char **ret_error)
{
    if (spec->firmware != VO_FIRMWARE_UEFI)
        return 0;
    _cleanup_free_ char *path = NULL, *format = NULL, *error = NULL;
    const char *missing = !spec->nvram ? "has no NVRAM volume"
                          : vo_volume_lookup(d, spec->nvram, &path, &format, NULL, &error) < 0
                              ? "names an NVRAM volume that does not exist"
                          /* a file's (rbd and iSCSI volumes have no path here) */
                          : path && path[0] == '/' && access(path, F_OK) < 0
                              ? "has lost its NVRAM volume's file"
                              : NULL;
    if (!missing)
        return 0;
    return vo_error_set(ret_error, -EBUSY, "VM '%s' boots UEFI but %s%s%s%s: %s does not "
                        "move it without its UEFI variables; give it a fresh NVRAM first "
                        "(its boot entries start over: vireo vm set %s --firmware bios, then "
                        "vireo vm set %s --firmware uefi)", spec->name, missing,
                        spec->nvram ? " ('" : "", spec->nvram ? spec->nvram : "",
                        spec->nvram ? "')" : "", what, spec->name, spec->name);
}
