/* fake-driver.c: an in-memory hypervisor driver for control-plane tests and
 * scale simulations (vireod --driver fake). VMs "run" without any process; a
 * small state file in the VM's run dir lets them survive a vireod restart.
 * Faults are injected per operation: a file $VIREO_FAKE_FAULTS/<op> holding an
 * errno name (e.g. "EIO") makes the next <op> fail with it, once. */
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>

#include "hypervisor/driver.h"
#include "util/util.h"

struct VoHvInstance {
    int exit_fd; /* eventfd written when the VM "exits" */
    bool paused, clean_exit;
    char *state_path;
};

static int take_fault(const char *op)
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    if (!dir)
        return 0;
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, op);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 64, &text, NULL) < 0)
        return 0;
    (void)unlink(path);
    static const struct { const char *name; int err; } errnos[] = {
        { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "ENOMEM", ENOMEM }, { "EBUSY", EBUSY },
        { "ETIMEDOUT", ETIMEDOUT },
    };
    for (size_t i = 0; i < ELEMENTSOF(errnos); i++)
        if (!strncmp(text, errnos[i].name, strlen(errnos[i].name)))
            return -errnos[i].err;
    return -EIO;
}

static void save_state(VoHvInstance *vm)
{
    const char *s = vm->paused ? "paused\n" : "running\n";
    (void)vo_write_file_atomic(vm->state_path, s, strlen(s));
}

static VoHvInstance *instance_new(const char *run_dir)
{
    VoHvInstance *vm = vo_malloc0(sizeof(*vm));
    vm->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->state_path = vo_asprintf("%s/fake.state", run_dir);
    return vm;
}

static void fake_release(VoHvInstance *vm)
{
    if (!vm)
        return;
    close(vm->exit_fd);
    free(vm->state_path);
    free(vm);
}

static int fake_start(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir,
                      const int *tap_fds, VoHvInstance **ret, char **ret_error)
{
    int r = take_fault("start");
    if (r < 0) {
        *ret_error = vo_asprintf("injected fault: start fails with %s", strerror(-r));
        return r;
    }
    r = vo_mkdir_p(run_dir, 0750);
    if (r < 0)
        return r;
    VoHvInstance *vm = instance_new(run_dir);
    vm->paused = true; /* like QEMU -S until resumed */
    save_state(vm);
    *ret = vm;
    return 0;
}

static int fake_attach(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir,
                       VoHvInstance **ret)
{
    VoHvInstance *vm = instance_new(run_dir);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(vm->state_path, 64, &text, NULL) < 0) {
        fake_release(vm);
        return -ESRCH;
    }
    vm->paused = !strncmp(text, "paused", 6);
    *ret = vm;
    return 0;
}

static int fake_info(VoHvInstance *vm, VoHvInfo *ret)
{
    *ret = (VoHvInfo){ .pid = 0, .accel = VO_ACCEL_TCG, .paused = vm->paused };
    return 0;
}

static int set_paused(VoHvInstance *vm, bool paused, const char *op)
{
    int r = take_fault(op);
    if (r < 0)
        return r;
    vm->paused = paused;
    save_state(vm);
    return 0;
}

static int fake_pause(VoHvInstance *vm) { return set_paused(vm, true, "pause"); }
static int fake_resume(VoHvInstance *vm) { return set_paused(vm, false, "resume"); }
static int fake_reset(VoHvInstance *vm) { return take_fault("reset"); }

static int end_vm(VoHvInstance *vm, bool clean, const char *op)
{
    int r = take_fault(op);
    if (r < 0)
        return r;
    vm->clean_exit = clean;
    (void)unlink(vm->state_path);
    uint64_t one = 1;
    return write(vm->exit_fd, &one, sizeof(one)) < 0 ? -errno : 0;
}

static int fake_powerdown(VoHvInstance *vm) { return end_vm(vm, true, "powerdown"); }
static int fake_kill(VoHvInstance *vm) { return end_vm(vm, false, "kill"); }
/* The fake VM holds no image open: the caller resizes the file itself. */
static int fake_resize_disk(VoHvInstance *vm, unsigned slot, uint64_t size) { return -EOPNOTSUPP; }
static int fake_snapshot(VoHvInstance *vm, const char *op, const char *tag, const VoVmSpec *spec,
                         char **ret_error)
{
    int r = take_fault("snapshot");
    if (r < 0)
        *ret_error = vo_asprintf("injected fault: snapshot fails with %s", strerror(-r));
    return r;
}

static int fake_exit_fd(VoHvInstance *vm) { return vm->exit_fd; }
static const char *fake_console_socket(VoHvInstance *vm) { return NULL; }

static void fake_reap(VoHvInstance *vm, bool *ret_clean, char **ret_reason)
{
    *ret_clean = vm->clean_exit;
    *ret_reason = vo_strdup(vm->clean_exit ? "guest powered off" : "killed");
}

int vo_fake_driver_new(VoHvDriver **ret)
{
    VoHvDriver *d = vo_malloc0(sizeof(*d));
    *d = (VoHvDriver){
        .name = "fake",
        .start = fake_start,
        .attach = fake_attach,
        .info = fake_info,
        .pause = fake_pause,
        .resume = fake_resume,
        .powerdown = fake_powerdown,
        .reset = fake_reset,
        .kill = fake_kill,
        .resize_disk = fake_resize_disk,
        .snapshot = fake_snapshot,
        .exit_fd = fake_exit_fd,
        .reap = fake_reap,
        .console_socket = fake_console_socket,
        .release = fake_release,
        .kvm_usable = false,
        .kvm_reason = vo_strdup("fake driver"),
    };
    *ret = d;
    return 0;
}
