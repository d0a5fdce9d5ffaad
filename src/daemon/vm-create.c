/* vm-create.c: a new VM (part of the VM service, vms.c): vo_vm_create's
 * checks and the create task (its boot disk cloned or made, or an existing
 * volume), and vo_vm_define, which registers a VM from a spec made
 * elsewhere (import, restore, clone). */
#include "daemon/vms.h"
#include "daemon/vms-parts.h"
#include "daemon/vm-internal.h"

#include <ctype.h>
#include <string.h>

#include "conf/cloud-init.h"
#include "conf/names.h"
#include "daemon/fence.h"
#include "daemon/images.h"
#include "daemon/migrate-safe.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "daemon/sweep.h"
#include "state/keys.h"

/* disk (taken) becomes the VM's first disk, and the VM's document is
 * written with it. 0 or the write's error. */
static int prepend_boot_disk(VoVm *vm, VoDiskSpec disk)
{
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *s = vm->spec;
    VoDiskSpec *disks = vo_malloc0(sizeof(VoDiskSpec) * (s->n_disks + 1));
    disks[0] = disk;
    memcpy(disks + 1, s->disks, sizeof(VoDiskSpec) * s->n_disks);
    free(s->disks);
    s->disks = disks;
    s->n_disks++;
    int r = vo_vm_write(vm, NULL, false);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* The create task's boot disk when it is an existing volume (an iSCSI LUN):
 * claimed as a disk add claims it, checked free of other VMs (unless
 * shareable), then named in the VM's definition (which records the VM as
 * its user) before the claim ends. Not owned: the VM's delete keeps it. */
static int boot_disk_existing(VoVm *vm, const char *key, char **ret_error)
{
    VoDaemon *d = vm->d;
    _cleanup_free_ char *path = NULL, *format = NULL;
    bool shareable = false;
    int r = vo_volume_attach_claim(d, key, &path, &format, &shareable, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *user = vo_vms_volume_user(d, key);
    if (user && !shareable)
        r = vo_error_set(ret_error, -EBUSY, "volume '%s' is already attached to VM '%s' (mark "
                         "it shareable to share it)", key, user);
    if (r >= 0)
        r = vo_volume_attach_confirm(d, key, ret_error);
    if (r >= 0) {
        r = prepend_boot_disk(vm, (VoDiskSpec){ .volume = vo_strdup(key),
                                                .format = !strcmp(format, "raw") ? VO_DISK_RAW
                                                                                 : VO_DISK_QCOW2,
                                                .shareable = shareable, .slot = 0 });
        if (r < 0)
            *ret_error = vo_asprintf("cannot save the VM: %s", strerror(-r));
    }
    vo_volume_attach_release(d, key);
    return r;
}

static int task_create(VoTask *t, void *userdata)
{
    VoVmOpArgs *a = userdata;
    VoVm *vm = a->vm;
    VoDaemon *d = vm->d;
    /* The job lock for the whole create: a (forced) delete waits for it, or
     * ran before, and then nothing is made or saved. */
    pthread_mutex_lock(&vm->job);
    pthread_mutex_lock(&vm->lock);
    bool gone = vm->deleted;
    pthread_mutex_unlock(&vm->lock);
    if (gone) {
        pthread_mutex_unlock(&vm->job);
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, -ENOENT, "VM '%s' was deleted before it was created", name);
    }
    _cleanup_free_ char *id = vo_vm_id_dup(vm), *name = vo_vm_name(vm);
    _cleanup_free_ char *dir = vo_vm_state_dir(d, id);
    _cleanup_free_ char *error = NULL, *volume = NULL, *path = NULL;
    const char *pool = a->pool ? a->pool : VO_DEFAULT_POOL;
    int r = vo_mkdir_p(dir, 0750);
    /* An image of another host is copied here first (copy on first use). */
    VoImage *img = NULL;
    if (r >= 0 && !a->base_image) {
        /* blank: an empty disk */
    } else if (r >= 0 && (r = vo_image_ensure_local(d, a->base_image, t, &error)) >= 0 &&
        (r = vo_image_get(d, a->base_image, &img, NULL)) >= 0) {
        free(a->base_disk);
        free(a->base_format);
        a->base_disk = vo_strdup(img->disk);
        a->base_format = vo_strdup(img->format);
        vo_image_free(img);
    } else if (r < 0 && !error)
        error = vo_asprintf("image '%s' is gone: %s", a->base_image, strerror(-r));
    if (r >= 0 && a->disk_volume) {
        r = boot_disk_existing(vm, a->disk_volume, &error);
    } else if (r >= 0) {
        vo_task_progress(t, 30, a->full_clone ? "copying the image" : "creating a linked clone");
        volume = vo_volume_free_name(d, pool, name);
        r = volume ? 0 : -ENOSPC;
    }
    /* The volumes it makes, recorded before each is made: the next start
     * removes them when vireod stopped before the VM's document was saved. */
    _cleanup_strv_ char **made = NULL;
    if (r >= 0 && !a->disk_volume) {
        vo_strv_pushf(&made, "%s/%s", pool, volume);
        if ((r = vo_intent_vm_volumes(d, id, NULL, made)) < 0)
            error = vo_asprintf("cannot record the create in the store: %s", strerror(-r));
    }
    if (r >= 0 && !a->disk_volume) {
        /* The boot disk (vo_vm_create made the VM without one), named and
         * recorded as used by this VM just before its volume is made, so
         * nothing can take that volume from it once it exists. */
        r = prepend_boot_disk(vm, (VoDiskSpec){ .volume = vo_asprintf("%s/%s", pool, volume),
                                                .format = vo_pool_is_rbd(d, pool) ? VO_DISK_RAW
                                                                                  : VO_DISK_QCOW2,
                                                .owned = true, .slot = 0 });
        if (r >= 0 && !a->base_image)
            r = vo_volume_create_empty(d, pool, volume, "qcow2", a->disk_size, t, &path,
                                       &error);
        else if (r >= 0) {
            /* Not from an image being deleted (its files and bases go). */
            r = vo_image_name_check_free(d, a->base_image, &error);
            if (r >= 0)
                r = vo_volume_create_from_base(d, pool, volume, a->base_disk,
                                               a->base_format, a->base_image, a->full_clone,
                                               a->disk_size, t, &path, &error);
        }
        if (r >= 0 && vo_migrate_fault("create-exit-after-disk")) /* test: vireod dies */
            _exit(70);
    }
    _cleanup_free_ char *nvram = NULL;
    if (r >= 0 && vm->spec->firmware == VO_FIRMWARE_UEFI) {
        vo_task_progress(t, 80, "making the UEFI NVRAM");
        r = vo_vm_nvram_make(vm, pool, &nvram, &error);
        if (r >= 0) { /* made: recorded (a moment after) */
            vo_strv_pushf(&made, "%s", nvram);
            if ((r = vo_intent_vm_volumes(d, id, NULL, made)) < 0)
                error = vo_asprintf("cannot record the create in the store: %s", strerror(-r));
        }
    }
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        r = vo_vm_save(vm);
        vm->provisioning = false;
        pthread_mutex_unlock(&vm->lock);
    }
    if (r < 0) {
        (void)vo_rm_rf(dir);
        pthread_mutex_lock(&vm->lock);
        vm->deleted = true; /* a delete queued meanwhile finds it gone */
        (void)vo_vm_write(vm, NULL, true); /* the relations written when it was registered */
        pthread_mutex_unlock(&vm->lock);
        /* The boot disk made before the NVRAM or the save failed goes too
         * (once its relation to the VM is gone: else it is "attached"). */
        _cleanup_free_ char *ignored = NULL;
        if (path) {
            _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, volume);
            if (vo_volume_remove_now(d, key, &ignored) < 0)
                log_warn("vm %s: kept volume %s: %s", name, key, ignored);
            free(TAKE_PTR(ignored));
        }
        if (nvram && vo_volume_remove_now(d, nvram, &ignored) < 0)
            log_warn("vm %s: kept volume %s: %s", name, nvram, ignored);
        if (made)
            vo_intent_vm_end(d, id);
        vo_vm_registry_remove(d, vm);
        pthread_mutex_unlock(&vm->job);
        return vo_task_fail(t, r, "cannot create VM '%s': %s", name,
                            error ? error : strerror(-r));
    }
    if (made)
        vo_intent_vm_end(d, id); /* the VM's document owns them now */
    pthread_mutex_unlock(&vm->job);
    log_info("vm %s: created (%s)", name, id);
    vo_networks_refresh_hosts(d);
    return 0;
}

/* A new name (create, define, rename) that reads as an id is refused: a
 * VM is found by name or id, across the hosts of a cluster too, and such a
 * name would be ambiguous. Names given before stay. */
int vo_vm_check_new_name(const char *name, char **ret_error)
{
    if (name && vo_uuid_valid(name))
        return vo_error_set(ret_error, -EINVAL, "name: '%s' looks like a VM id (a UUID); "
                            "give the VM a name that does not", name);
    return 0;
}

/* disk_volume (the boot disk an existing volume): usable as one, and
 * attached to no other VM (unless shareable); the create task claims it. */
static int check_disk_volume(VoDaemon *d, const VoVmCreateArgs *args, char **ret_error)
{
    const char *key = args->disk_volume;
    if (args->blank || args->pool || args->disk_size_bytes || args->full_clone)
        return vo_error_set(ret_error, -EINVAL, "disk_volume: the boot disk is volume '%s' as "
                            "it is: leave out blank, pool, disk_size_bytes and full_clone", key);
    _cleanup_free_ char *path = NULL, *format = NULL;
    bool shareable = false;
    int r = vo_volume_lookup(d, key, &path, &format, &shareable, ret_error);
    if (r < 0)
        return r == -ENOENT ? -EINVAL : r;
    /* Its pool's reach (by the pool's name: the key is POOL/NAME). */
    const char *slash = strchr(key, '/');
    _cleanup_free_ char *pool = vo_asprintf("%.*s", slash ? (int)(slash - key) : 0, key);
    if ((r = vo_pool_check_reachable(d, pool, ret_error)) < 0)
        return r;
    if (vo_volume_is_base(d, key))
        return vo_error_set(ret_error, -EBUSY, "volume '%s' backs linked clones: attaching it "
                            "would let a VM write under them; clone it instead", key);
    _cleanup_free_ char *user = vo_vms_volume_user(d, key);
    if (user && !shareable)
        return vo_error_set(ret_error, -EBUSY, "volume '%s' is already attached to VM '%s' "
                            "(mark it shareable to share it)", key, user);
    return 0;
}

int vo_vm_create(VoDaemon *d, const VoVmCreateArgs *args, json_t **ret_task, json_t **ret_vm,
                 char **ret_error)
{
    if (!vo_name_valid(args->name)) {
        *ret_error = vo_asprintf("name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and "
                                 "'-', not starting with '-'",
                                 args->name ? args->name : "");
        return -EINVAL;
    }
    if (vo_vm_check_new_name(args->name, ret_error) < 0)
        return -EINVAL;
    int r = vo_fence_check_start(d, ret_error);
    if (r < 0)
        return r;
    VoImage *img = NULL;
    if (args->blank && !args->disk_size_bytes)
        return vo_error_set(ret_error, -EINVAL, "disk_size_bytes: a blank VM needs the size of "
                            "its empty disk");
    if (args->cdrom && (r = vo_volume_check_iso(d, args->cdrom, ret_error)) < 0)
        return -EINVAL;
    if (args->disk_volume && (r = check_disk_volume(d, args, ret_error)) < 0)
        return r;
    if (args->blank) {
        /* No image: an empty disk, booted by the firmware (from the CD-ROM). */
        img = vo_malloc0(sizeof(*img));
        r = 0;
    } else /* another host's own image: the create task copies it here first */
        r = vo_image_find_anywhere(d, args->image, &img);
    if (r < 0) {
        *ret_error = r == -ENOENT ? vo_asprintf("image '%s' does not exist (see: vireo image list)",
                                                args->image)
                                  : vo_asprintf("image '%s' is unusable", args->image);
        return r == -ENOENT ? -EINVAL : -EIO;
    }
    /* An image of a shared pool: its files must be reachable from here. */
    if (img->pool && (r = vo_pool_check_reachable(d, img->pool, ret_error)) < 0) {
        vo_image_free(img);
        return r;
    }
    /* The boot disk's pool: one of this host's, reachable here. */
    if (args->pool) {
        json_t *pool_doc = NULL;
        _cleanup_free_ char *pool_error = NULL;
        r = vo_pool_get_json(d, args->pool, &pool_doc, &pool_error);
        bool usable = r >= 0 &&
                      strcmp(json_string_value(json_object_get(pool_doc, "type")) ?: "", "backup");
        json_decref(pool_doc);
        if (!usable) {
            vo_image_free(img);
            return vo_error_set(ret_error, -EINVAL, "pool: '%s' is not a pool for disks here "
                                "(see vireo pool list)", args->pool);
        }
        if ((r = vo_pool_check_reachable(d, args->pool, ret_error)) < 0) {
            vo_image_free(img);
            return r;
        }
    }
    if (args->disk_size_bytes && args->disk_size_bytes < img->size_bytes) {
        *ret_error = vo_asprintf("disk_size_bytes: %llu is smaller than image '%s' (%llu bytes)",
                                 (unsigned long long)args->disk_size_bytes, img->name,
                                 (unsigned long long)img->size_bytes);
        vo_image_free(img);
        return -EINVAL;
    }

    VoVmSpec *spec = vo_malloc0(sizeof(*spec));
    char id[37];
    if (vo_uuid_generate(id) < 0)
        abort();
    spec->id = vo_strdup(id);
    spec->name = vo_strdup(args->name);
    spec->image = vo_strdup(img->name);
    spec->has_cdrom = args->has_cdrom || args->cdrom;
    spec->cdrom = vo_strdup(args->cdrom);
    memcpy(spec->boot, args->boot, sizeof(spec->boot));
    spec->n_boot = args->n_boot;
    spec->vcpus = args->vcpus;
    spec->memory_mib = args->memory_mib;
    spec->max_vcpus = args->max_vcpus ? args->max_vcpus : args->vcpus;
    spec->max_memory_mib = args->max_memory_mib ? args->max_memory_mib : args->memory_mib;
    spec->accel = args->accel;
    spec->machine = vo_strdup("q35");
    /* Firmware: asked for, else the image's preference, else SeaBIOS. UEFI's
     * NVRAM volume is made by the create task. */
    const char *firmware = args->firmware ? args->firmware : img->firmware;
    if (firmware && vo_firmware_from_string(firmware, &spec->firmware) < 0) {
        *ret_error = vo_asprintf("firmware: '%s' is not one of bios, uefi", firmware);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return -EINVAL;
    }
    spec->secure_boot = args->secure_boot;
    spec->project = args->project && strcmp(args->project, "default") ? vo_strdup(args->project)
                                                                      : NULL;
    /* A display: asked for, else VGA for an ISO install (a CD in the drive),
     * else none (the serial console). */
    if (args->display && vo_display_from_string(args->display, &spec->display) < 0) {
        *ret_error = vo_asprintf("display: '%s' is not one of vga, virtio, none", args->display);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return -EINVAL;
    }
    if (!args->display && args->cdrom)
        spec->display = VO_DISPLAY_VGA;
    /* cloud-init: as asked, else a seed with the defaults (the VM's name as
     * its hostname) when the image wants one. */
    if (args->cloud_init) {
        if (vo_cloud_init_from_json(args->cloud_init, &spec->cloud_init, ret_error) < 0) {
            vo_vm_spec_free(spec);
            vo_image_free(img);
            return -EINVAL;
        }
    } else if (img->cloud_init)
        spec->cloud_init = vo_malloc0(sizeof(VoCloudInit));
    /* Direct boot: the image's kernel and initrd, by the image's name. */
    spec->kernel_from.image = img->kernel && img->name ? vo_strdup(img->name) : NULL;
    spec->initrd_from.image = img->initrd && img->name ? vo_strdup(img->name) : NULL;
    spec->cmdline = vo_strdup(img->cmdline);
    spec->autostart = args->autostart;
    spec->group = vo_strdup(args->group);
    spec->ha = args->ha;
    spec->ha_priority = args->ha_priority;
    spec->ha_group = vo_strdup(args->ha_group);
    spec->disks = vo_malloc0(sizeof(VoDiskSpec));
    /* The boot disk is added by the create task once it made and named its
     * volume (the first free name then): until then the VM has no disk, so
     * a volume made meanwhile under that name is not taken for this VM's.
     * Validated with a stand-in. */
    spec->disks[0] = (VoDiskSpec){ .volume = args->disk_volume
                                                 ? vo_strdup(args->disk_volume)
                                                 : vo_asprintf("%s/disk", args->pool ? args->pool
                                                                                     : VO_DEFAULT_POOL),
                                   .format = VO_DISK_QCOW2 };
    spec->n_disks = 1;
    /* One NIC per network asked for; by default one on the default network
     * (or QEMU's user-mode networking on a host where it could not be made). */
    static const char *const default_nets[] = { VO_DEFAULT_NETWORK };
    static const char *const user_net[] = { "user" };
    const char *const *nets = args->networks;
    size_t n_nets = args->n_networks;
    if (!nets) {
        nets = vo_network_exists(d, VO_DEFAULT_NETWORK) ? default_nets : user_net;
        n_nets = 1;
    }
    for (size_t i = 0; i < n_nets && !*ret_error; i++)
        if (strcmp(nets[i], "user") && !vo_network_exists(d, nets[i]))
            *ret_error = vo_asprintf("network '%s' does not exist (see: vireo network list)",
                                     nets[i]);
    if (!*ret_error && args->n_macs > n_nets)
        *ret_error = vo_asprintf("macs: %zu MACs for %zu NIC%s (one per network, in order)",
                                 args->n_macs, n_nets, n_nets == 1 ? "" : "s");
    r = *ret_error ? -EINVAL : 0;
    /* Each NIC's MAC is claimed in the cluster (mac-claims.h) and the claims
     * compared in the VM's first write, which makes them its own. */
    VoMacClaims *mac_claims = NULL;
    spec->nics = vo_malloc0(sizeof(VoNicSpec) * (n_nets + 1));
    for (size_t i = 0; r >= 0 && i < n_nets && i < VO_VM_MAX_NICS; i++) {
        char mac[18];
        const char *given = i < args->n_macs ? args->macs[i] : NULL;
        if (given) {
            _cleanup_free_ char *field = vo_asprintf("macs[%zu]", i);
            r = vo_vms_claim_given_mac(d, &mac_claims, args->name, field, given, spec->nics, i,
                                       ret_error);
            for (int k = 0; r >= 0 && k < 18; k++)
                mac[k] = (char)tolower((unsigned char)given[k]);
        } else if ((r = vo_vms_claim_new_mac(d, &mac_claims, args->name, spec->nics, i,
                                             mac)) < 0)
            *ret_error = r == -EEXIST ? vo_strdup("cannot find an unused MAC")
                                      : vo_asprintf("cannot claim a new MAC in the store: %s",
                                                    strerror(-r));
        if (r < 0 && r != -EEXIST && !given) /* the store's: never an unclaimed MAC */
            r = -EAGAIN;
        if (r < 0)
            break;
        spec->nics[i] = (VoNicSpec){ .mac = vo_strdup(mac), .network = vo_strdup(nets[i]),
                                      .slot = (unsigned)i };
        spec->n_nics++;
    }
    if (r >= 0)
        r = vo_vm_spec_validate(spec, &d->limits, ret_error);
    if (r >= 0)
        r = vo_vm_firmware_check(d, spec, ret_error);
    if (r >= 0 && spec->ha) /* its ISO must be where every host reaches it */
        r = vo_vm_ha_check_cdrom(d, spec->name, spec->cdrom, ret_error);
    if (r >= 0 && spec->ha) { /* its boot disk must be made where every host reaches it */
        _cleanup_free_ char *ha_error = NULL;
        r = vo_vm_ha_check_disks(d, spec, &ha_error);
        if (r < 0)
            *ret_error = vo_asprintf("ha: VM '%s' cannot be highly available: its boot disk "
                                     "would be made in pool '%s', which is not a shared pool "
                                     "(give --pool with a shared pool)", spec->name,
                                     args->pool ? args->pool : VO_DEFAULT_POOL);
    }
    free(TAKE_PTR(spec->disks[0].volume));
    spec->n_disks = 0;
    if (r >= 0 && spec->accel == VO_ACCEL_KVM && !d->driver->kvm_usable) {
        *ret_error = vo_asprintf("accel: kvm was requested but KVM is not usable on this host "
                                 "(%s); use auto or tcg", d->driver->kvm_reason);
        r = -ENODEV;
    }
    if (r < 0) {
        vo_mac_claims_release(mac_claims);
        vo_vm_spec_free(spec);
        vo_image_free(img);
        return r;
    }

    /* Registered as provisioning (vm-register.c): its name, MACs,
     * networks, group and project room taken before the task makes its
     * disk. Its boot disk's virtual size counts from then: as asked, else
     * the existing volume's, else the image's (read before the registry's
     * lock: the volume's document asks who uses it). */
    int64_t disk_bytes = args->disk_size_bytes ? (int64_t)args->disk_size_bytes
                         : args->disk_volume   ? vo_vm_volume_virtual_size(d, args->disk_volume)
                                               : (int64_t)img->size_bytes;
    VoVm *vm = NULL;
    r = vo_vm_register_provisioning(d, spec, mac_claims, disk_bytes, &vm, ret_error);
    vo_mac_claims_release(mac_claims);
    if (r < 0) {
        vo_image_free(img);
        return r;
    }

    VoVmOpArgs *a = vo_vm_op_args(vm);
    a->base_disk = vo_strdup(img->disk);
    a->base_format = vo_strdup(img->format);
    a->base_image = vo_strdup(img->name);
    a->disk_size = args->disk_size_bytes;
    a->full_clone = args->full_clone;
    a->pool = vo_strdup(args->pool);
    a->disk_volume = vo_strdup(args->disk_volume);
    vo_image_free(img);
    *ret_vm = vo_vm_to_json(vm);
    r = vo_vm_submit(d, vm, "create", task_create, a, vo_vm_op_args_free, ret_task, ret_error);
    if (r < 0) { /* refused (the queue is full): the name is free again */
        vo_vm_unregister_provisioning(vm);
        json_decref(*ret_vm);
        *ret_vm = NULL;
    }
    vo_vm_unref(vm);
    return r;
}

char *vo_vm_mac_claim_lapsed(const char *name)
{
    return vo_asprintf("the claims on VM '%s''s MAC addresses lapsed before it was saved (this "
                       "host did not renew them in time; another VM may have taken a MAC "
                       "since): try again", name);
}

int vo_vm_define(VoDaemon *d, VoVmSpec *spec, const VoMacClaims *mac_claims, char **ret_error)
{
    int r = vo_vm_spec_validate(spec, &d->limits, ret_error);
    if (r >= 0)
        r = vo_vm_check_new_name(spec->name, ret_error);
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r;
    }
    r = vo_vm_claim_networks(d, spec, ret_error); /* see vo_vm_create */
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r == -ENOENT ? -EINVAL : r;
    }
    VoVm *vm = vo_vm_new_defined(d, spec);
    vm->disk_bytes = -1; /* its disks exist: they count from its first save */
    vm->disk_bytes = vo_vm_measure_disks(vm);
    _cleanup_free_ char *dir = vo_vm_state_dir(d, spec->id);
    pthread_mutex_lock(&d->vms_lock);
    if (vo_vms_find_locked(d, spec->name)) {
        *ret_error = vo_vm_name_taken_message(d, spec->name);
        r = -EEXIST;
    }
    if (r >= 0 && (r = vo_mkdir_p(dir, 0750)) < 0)
        *ret_error = vo_asprintf("cannot create %s: %s", dir, strerror(-r));
    if (r >= 0) {
        pthread_mutex_lock(&vm->lock);
        vm->check_quota = true;
        vm->mac_claims = mac_claims;
        r = vo_vm_save(vm);
        vm->check_quota = false;
        vm->mac_claims = NULL;
        pthread_mutex_unlock(&vm->lock);
        if (r < 0)
            *ret_error = vo_vm_register_write_error(d, spec, &r);
    }
    if (r >= 0)
        vo_vm_registry_add_locked(d, vm);
    vo_vm_release_networks(d, spec);
    pthread_mutex_unlock(&d->vms_lock);
    if (r < 0) {
        (void)vo_rm_rf(dir);
        vo_vm_unref(vm);
        return r;
    }
    log_info("vm %s: defined (%s)", spec->name, spec->id);
    vo_networks_refresh_hosts(d);
    return 0;
}
