/* vm-display.c: a running VM's display (spec->display): a screenshot (PNG),
 * key presses, where its VNC servers listen (the API's WebSocket and
 * vireo console --vnc relay to them) and the one-time VNC password of the
 * one that asks for a password. Each holds the VM's job lock (a brief
 * hold, daemon/vm-job.h), so the QEMU instance stays while it is used. */
#include <string.h>
#include <sys/random.h>

#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"
#include "util/util.h"

/* The running (or paused) VM's instance, with the job lock held; NULL with
 * *ret_error (-EBUSY: 409) when the VM has no display, is not running or
 * is busy with a task. what: "take a screenshot of" etc. End with
 * vo_vm_job_end_brief. */
static VoHvInstance *hold_display(VoVm *vm, const char *what, int *ret_r, char **ret_error)
{
    if ((*ret_r = vo_vm_job_wait_brief(vm, VO_VM_JOB_BRIEF_WAIT_MS, what, ret_error)) < 0)
        return NULL;
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = NULL;
    if (vm->spec->display == VO_DISPLAY_NONE)
        *ret_r = vo_error_set(ret_error, -EBUSY, "cannot %s VM '%s': it has no display (give "
                              "it one while it is stopped: vireo vm set %s --display vga)",
                              what, vm->spec->name, vm->spec->name);
    else if (vm->state != VO_VM_RUNNING && vm->state != VO_VM_PAUSED)
        *ret_r = vo_error_set(ret_error, -EBUSY, "cannot %s VM '%s': it is %s, not running",
                              what, vm->spec->name, vo_vm_state_to_string(vm->state));
    else if (!vm->hv)
        *ret_r = vo_error_set(ret_error, -EBUSY, "cannot %s VM '%s': it is not running", what,
                              vm->spec->name);
    else
        hv = vm->hv;
    pthread_mutex_unlock(&vm->lock);
    if (!hv)
        vo_vm_job_end_brief(vm);
    return hv;
}

int vo_vm_screenshot(VoVm *vm, char **ret_png, size_t *ret_len, char **ret_error)
{
    int r = 0;
    VoHvInstance *hv = hold_display(vm, "take a screenshot of", &r, ret_error);
    if (!hv)
        return r;
    if (!vm->d->driver->screendump)
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver cannot take screenshots",
                         vm->d->driver->name);
    else
        r = vm->d->driver->screendump(hv, ret_png, ret_len, ret_error);
    vo_vm_job_end_brief(vm);
    return r;
}

int vo_vm_send_keys(VoVm *vm, json_t *combos, char **ret_error)
{
    int r = 0;
    VoHvInstance *hv = hold_display(vm, "send keys to", &r, ret_error);
    if (!hv)
        return r;
    if (!vm->d->driver->send_keys)
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver cannot send keys",
                         vm->d->driver->name);
    else
        r = vm->d->driver->send_keys(hv, combos, ret_error);
    vo_vm_job_end_brief(vm);
    return r;
}

int vo_vm_vnc_socket(VoVm *vm, bool password, char **ret_path, char **ret_error)
{
    int r = 0;
    VoHvInstance *hv = hold_display(vm, "open the graphical console of", &r, ret_error);
    if (!hv)
        return r;
    const char *path = vm->d->driver->vnc_socket ? vm->d->driver->vnc_socket(hv, password) : NULL;
    if (!vm->d->driver->vnc_socket)
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver has no VNC server",
                         vm->d->driver->name);
    else if (!path)
        r = vo_error_set(ret_error, -EBUSY, "VM '%s' has no VNC server that asks for a "
                         "password (its QEMU was started by an older vireod); stop and start "
                         "it to get one", vm->spec->name);
    else
        *ret_path = vo_strdup(path);
    vo_vm_job_end_brief(vm);
    return r;
}

/* VNC authentication uses at most 8 characters (its DES key); these are
 * told apart easily when read aloud or off a screen (56 of them: 46 bits). */
static int new_vnc_password(char ret[VO_VNC_PASSWORD_LEN + 1])
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const unsigned n = sizeof(alphabet) - 1, limit = 256 / n * n; /* no modulo bias */
    size_t got = 0;
    while (got < VO_VNC_PASSWORD_LEN) {
        unsigned char b[32];
        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
            return -EIO;
        for (size_t i = 0; i < sizeof(b) && got < VO_VNC_PASSWORD_LEN; i++)
            if (b[i] < limit)
                ret[got++] = alphabet[b[i] % n];
    }
    ret[VO_VNC_PASSWORD_LEN] = 0;
    return 0;
}

int vo_vm_vnc_ticket(VoVm *vm, unsigned ttl_seconds, char **ret_password, char **ret_error)
{
    int r = 0;
    VoHvInstance *hv = hold_display(vm, "set a VNC password on", &r, ret_error);
    if (!hv)
        return r;
    char password[VO_VNC_PASSWORD_LEN + 1];
    if (!vm->d->driver->vnc_ticket)
        r = vo_error_set(ret_error, -EOPNOTSUPP, "the %s driver has no VNC server",
                         vm->d->driver->name);
    else if ((r = new_vnc_password(password)) < 0)
        r = vo_error_set(ret_error, r, "cannot make a VNC password: %s", strerror(-r));
    else
        r = vm->d->driver->vnc_ticket(hv, password, ttl_seconds, ret_error);
    vo_vm_job_end_brief(vm);
    if (r >= 0)
        *ret_password = vo_strdup(password);
    return r;
}
