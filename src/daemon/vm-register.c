/* vm-register.c: a new VM registered while it is being made (provisioning),
 * as a create registers one at its request: its name claimed here and in
 * the cluster, its MACs, networks, group and project room taken in one
 * write of its relations, before any disk is made; so two requests of one
 * new name get one 202 and one 409 at once. Its document is written once it
 * is made (vo_vm_register_done); a failure unregisters it, and the name is
 * free again. Used by vm create (vm-create.c) and vm clone (vm-clone.c). */
#include <errno.h>
#include <string.h>

#include "daemon/vm-internal.h"
#include "daemon/vms-parts.h"
#include "state/relations.h"
#include "util/util.h"

/* Also vo_vm_define's (vms-parts.h). */
char *vo_vm_register_write_error(VoDaemon *d, const VoVmSpec *spec, int *r)
{
    char *refused = vo_vm_save_refusal(*r);
    if (*r == -ENOTUNIQ) {
        free(refused);
        *r = -EEXIST;
        return vo_vm_name_taken_message(d, spec->name);
    }
    if (*r == VO_RELATIONS_ECLAIM) {
        free(refused);
        *r = -EAGAIN;
        return vo_vm_mac_claim_lapsed(spec->name);
    }
    if (refused)
        return refused;
    if (*r == -EIDRM) {
        *r = -EBUSY;
        return vo_asprintf("group '%s' is being deleted", spec->group);
    }
    return vo_asprintf("cannot save VM '%s': %s", spec->name, strerror(-*r));
}

int vo_vm_register_provisioning(VoDaemon *d, VoVmSpec *spec, const VoMacClaims *mac_claims,
                                int64_t disk_bytes, VoVm **ret_vm, char **ret_error)
{
    /* Its networks are held until it is registered, where a network delete
     * sees it (as vo_vm_create). */
    int r = vo_vm_claim_networks(d, spec, ret_error);
    if (r < 0) {
        vo_vm_spec_free(spec);
        return r == -ENOENT ? -EINVAL : r;
    }
    VoVm *vm = vo_vm_new_defined(d, spec);
    vm->provisioning = true;
    vm->disk_bytes = disk_bytes;
    pthread_mutex_lock(&d->vms_lock);
    if (vo_vms_find_locked(d, spec->name)) {
        *ret_error = vo_vm_name_taken_message(d, spec->name);
        r = -EEXIST;
    } else {
        pthread_mutex_lock(&vm->lock);
        vm->check_quota = true;      /* its project's room is taken now, with its name */
        vm->mac_claims = mac_claims; /* and its MACs, made its own */
        r = vo_vm_write(vm, NULL, false);
        vm->check_quota = false;
        vm->mac_claims = NULL;
        pthread_mutex_unlock(&vm->lock);
        if (r < 0)
            *ret_error = vo_vm_register_write_error(d, spec, &r);
    }
    if (r >= 0)
        vo_vm_registry_add_locked(d, vm); /* the registry's reference */
    vo_vm_release_networks(d, spec);
    pthread_mutex_unlock(&d->vms_lock);
    if (r < 0) {
        vo_vm_unref(vm);
        return r;
    }
    *ret_vm = vo_vm_ref(vm);
    return 0;
}

int vo_vm_register_done(VoVm *vm, VoVmSpec *next, char **ret_error)
{
    _cleanup_free_ char *dir = vo_vm_state_dir(vm->d, next->id);
    int r = vo_mkdir_p(dir, 0750);
    if (r < 0) {
        vo_vm_spec_free(next);
        return vo_error_set(ret_error, r, "cannot create %s: %s", dir, strerror(-r));
    }
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *was = vm->spec;
    vm->spec = next;
    r = vm->deleted ? -ENOENT : vo_vm_save(vm);
    if (r >= 0)
        vm->provisioning = false;
    else { /* as it was registered: its relations go with that spec */
        vm->spec = was;
        was = next;
        *ret_error = r == -ENOENT ? vo_asprintf("VM '%s' was deleted meanwhile", vm->spec->name)
                                  : vo_vm_register_write_error(vm->d, vm->spec, &r);
    }
    pthread_mutex_unlock(&vm->lock);
    vo_vm_spec_free(was);
    return r;
}

void vo_vm_unregister_provisioning(VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->deleted = true; /* a delete queued meanwhile finds it gone */
    (void)vo_vm_write(vm, NULL, true); /* the relations written when it was registered */
    _cleanup_free_ char *dir = vo_vm_state_dir(vm->d, vm->spec->id);
    pthread_mutex_unlock(&vm->lock);
    (void)vo_rm_rf(dir);
    vo_vm_registry_remove(vm->d, vm);
}
