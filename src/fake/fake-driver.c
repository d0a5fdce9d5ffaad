/* fake-driver.c: an in-memory hypervisor driver for control-plane tests and
 * scale simulations (vireod --driver fake). VMs "run" without any process; a
 * small state file in the VM's run dir lets them survive a vireod restart.
 * Faults are injected per operation: a file $VIREO_FAKE_FAULTS/<op> holding an
 * errno name (e.g. "EIO") makes the next <op> fail with it, once; "N EIO"
 * the next N times. $VIREO_FAKE_FAULTS/start@NAME does so for the starts of
 * VM NAME alone. A file
 * $VIREO_FAKE_FAULTS/<op>.hold makes every <op> wait while it exists (at most
 * two minutes), after creating <op>.held: a test sees the operation under way
 * and lets it go by removing the .hold file. While a file
 * $VIREO_FAKE_FAULTS/acpi-ignored exists, guests ignore the power button (a
 * stop then waits for its timeout). While $VIREO_FAKE_FAULTS/no-ovmf exists the
 * host has no OVMF (fake_firmware_check).
 * Events: each fake VM has a FIFO "fake-events" in its run dir, its event
 * source. A test writes QMP event messages to it, one JSON object a line
 * (e.g. {"event":"BLOCK_IO_ERROR","data":{...,"action":"stop"}} then
 * {"event":"STOP"}), and the VM reports them like QEMU would (STOP and
 * RESUME also pause and continue it); the fake's own pause, resume, reset
 * and power-off emit STOP, RESUME, RESET and SHUTDOWN there too.
 *
 * Live migration is played out step by step: each migrate_query of a source
 * moves a quarter of the VM's memory, so the fourth query after
 * migrate_start sees it completed; fault "migration" makes the migration
 * under way fail at the next query. A destination reports "active" (waiting)
 * for its first three queries and "completed" (everything arrived, still
 * paused) from the fourth on, until its migrate_finish, which resumes it only
 * when asked to.
 *
 * Load (the DRS samples): a running fake VM uses no CPU and half its memory
 * unless its run dir holds "fake-load", {"cpu": CORES, "wait": CORES,
 * "mem_mib": MIB, "mem_source": "guest" | "balloon" | "rss"} (each may be
 * left out; the source says "rss" then): its CPU time then grows by "cpu"
 * cores per second while it runs (not paused), and its time waiting for a
 * CPU by "wait" cores per second (what a saturated host denies it), read
 * each time load is asked. */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>

#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hypervisor/driver.h"
#include "qemu/qemu-backup.h"
#include "qemu/qemu-events.h"
#include "qmp/qmp.h"
#include "util/fault-file.h"
#include "util/test-hold.h"
#include "util/sha256.h"
#include "util/util.h"

struct VoHvInstance {
    int exit_fd; /* eventfd written when the VM "exits" */
    int events_fd; /* the fake-events FIFO, open read-write, non-blocking */
    atomic_bool paused; /* also set by events_read on the loop thread */
    atomic_bool io_error; /* paused by an I/O error (a STOP with reason io-error) */
    bool clean_exit;
    char *state_path;
    char *events_buf; /* a partial line read from the FIFO */
    size_t events_len;
    VoQemuEventState event_state;
    uint32_t disk_slots, nic_slots; /* plugged devices, one bit per slot */
    bool nvram;                       /* a UEFI VM's NVRAM flash */
    VoHvResources res; /* vCPUs and memory, set from the spec at start */
    /* Load: the synthetic CPU time so far, when it was last advanced
     * (monotonic ms; 0: not yet), and the run dir's "fake-load" file. */
    uint64_t load_cpu_ns, load_wait_ns;
    int64_t load_at_ms;
    char *load_path;
    /* Live migration: this side's state (see the top of the file). */
    bool incoming;     /* started by migrate_prepare */
    VoHvMigrationStatus migration;
    unsigned migration_steps;
    bool migration_was_running;
    char *migration_error;
    /* Local disks: the source's mirrors (disk slots mirrored, queries seen,
     * a failure; completed at the switch-over) and the destination's
     * exports (the slots served; bit 32: the NVRAM, VO_HV_NVRAM_SLOT). */
    uint64_t mirror_slots, export_slots;
    unsigned mirror_steps;
    bool mirror_completed;
    char *mirror_error;
};

static int take_fault(const char *op)
{
    return vo_test_fault(op);
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
    vm->load_path = vo_asprintf("%s/fake-load", run_dir);
    _cleanup_free_ char *fifo = vo_asprintf("%s/fake-events", run_dir);
    vm->events_fd = -1;
    if (mkfifo(fifo, 0600) < 0 && errno != EEXIST)
        log_warn("fake driver: cannot make %s: %s", fifo, strerror(errno));
    else if ((vm->events_fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
        log_warn("fake driver: cannot open %s: %s", fifo, strerror(errno));
    return vm;
}

/* Sends a QMP-style event on the VM's own event source (one write of a
 * short line: atomic on a FIFO), with the time it happened, as QEMU does. */
static void emit(VoHvInstance *vm, const char *line)
{
    if (vm->events_fd < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    _cleanup_free_ char *framed =
        vo_asprintf("{\"timestamp\":{\"seconds\":%lld,\"microseconds\":%ld},%s\n",
                    (long long)ts.tv_sec, ts.tv_nsec / 1000, line + 1);
    if (write(vm->events_fd, framed, strlen(framed)) < 0)
        log_warn("fake driver: cannot emit an event: %s", strerror(errno));
}

static void fake_release(VoHvInstance *vm)
{
    if (!vm)
        return;
    close(vm->exit_fd);
    if (vm->events_fd >= 0)
        close(vm->events_fd);
    free(vm->events_buf);
    free(vm->state_path);
    free(vm->load_path);
    free(vm->migration_error);
    free(vm->mirror_error);
    free(vm);
}

/* The devices a VM has at start (or when vireod re-attaches). */
static void plug_spec(VoHvInstance *vm, const VoVmSpec *spec)
{
    vm->disk_slots = vm->nic_slots = 0;
    for (size_t i = 0; i < spec->n_disks; i++)
        vm->disk_slots |= 1u << (spec->disks[i].slot % 32);
    for (size_t i = 0; i < spec->n_nics; i++)
        vm->nic_slots |= 1u << (spec->nics[i].slot % 32);
    vm->nvram = spec->firmware == VO_FIRMWARE_UEFI && spec->nvram;
}

/* Like QEMU with vireo's argv: with vCPU hot-plug only vCPU 0 is a boot
 * vCPU, and memory can go from the minimum (balloon) up to max_memory_mib. */
static void resources_from_spec(VoHvInstance *vm, const VoVmSpec *spec)
{
    bool vcpu_hp = vo_vm_spec_vcpu_hotplug(spec);
    vm->res = (VoHvResources){ .vcpus = spec->vcpus, .min_vcpus = vcpu_hp ? 1 : spec->vcpus,
                               .max_vcpus = spec->max_vcpus, .memory_mib = spec->memory_mib,
                               .boot_memory_mib = spec->memory_mib,
                               .boot_memory_kib = spec->memory_mib << 10,
                               .min_memory_mib = VO_VM_MIN_MEMORY_MIB,
                               .max_memory_mib = spec->max_memory_mib };
}

static int fake_start(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir,
                      const int *tap_fds, VoHvInstance **ret, char **ret_error)
{
    _cleanup_free_ char *own = vo_asprintf("start@%s", spec->name);
    int r = take_fault(own); /* this VM's starts alone */
    if (r >= 0)
        r = take_fault("start");
    if (r < 0) {
        *ret_error = vo_asprintf("injected fault: start fails with %s", strerror(-r));
        return r;
    }
    r = vo_mkdir_p(run_dir, 0750);
    if (r < 0)
        return r;
    VoHvInstance *vm = instance_new(run_dir);
    plug_spec(vm, spec);
    resources_from_spec(vm, spec);
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
    plug_spec(vm, spec);
    resources_from_spec(vm, spec);
    *ret = vm;
    return 0;
}

static int fake_info(VoHvInstance *vm, VoHvInfo *ret)
{
    *ret = (VoHvInfo){ .pid = 0, .accel = VO_ACCEL_TCG, .paused = vm->paused,
                       .io_error = vm->paused && vm->io_error };
    return 0;
}

static int set_paused(VoHvInstance *vm, bool paused, const char *op)
{
    int r = take_fault(op);
    if (r < 0)
        return r;
    vm->paused = paused;
    vm->io_error = false;
    save_state(vm);
    return 0;
}

static int fake_pause(VoHvInstance *vm)
{
    int r = set_paused(vm, true, "pause");
    if (r >= 0)
        emit(vm, "{\"event\":\"STOP\"}");
    return r;
}

static int fake_resume(VoHvInstance *vm)
{
    int r = set_paused(vm, false, "resume");
    if (r >= 0)
        emit(vm, "{\"event\":\"RESUME\"}");
    /* A hold point after the RESUME (resumed.hold): what QEMU does right
     * after a cont, before the caller goes on. */
    if (r >= 0)
        vo_test_hold("resumed");
    return r;
}

static int fake_reset(VoHvInstance *vm)
{
    int r = take_fault("reset");
    if (r >= 0)
        emit(vm, "{\"event\":\"RESET\",\"data\":{\"guest\":false,"
                 "\"reason\":\"host-qmp-system-reset\"}}");
    return r;
}

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

static bool acpi_ignored(void)
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    _cleanup_free_ char *path = dir ? vo_asprintf("%s/acpi-ignored", dir) : NULL;
    return path && access(path, F_OK) == 0;
}

static int fake_powerdown(VoHvInstance *vm)
{
    if (acpi_ignored())
        return 0;
    emit(vm, "{\"event\":\"SHUTDOWN\",\"data\":{\"guest\":true,"
             "\"reason\":\"guest-shutdown\"}}");
    return end_vm(vm, true, "powerdown");
}
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

/* A fake VM holds no image open, so its disks are backed up for real, the
 * way a stopped VM's are (qemu-storage-daemon); fault "backup" fails it. */
static int fake_backup(VoHvInstance *vm, const VoHvBackupPlan *plan, VoHvBackupResult *ret,
                       char **ret_error)
{
    int r = take_fault("backup");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: backup fails with %s", strerror(-r));
    return vo_qemu_backup_offline(plan, ret, ret_error);
}

/* Hot-plug: a slot bit per device; faults disk_attach, disk_detach,
 * nic_attach, nic_detach (ETIMEDOUT plays a guest that does not let go). */
static int plug(uint32_t *slots, unsigned slot, bool in, const char *op, const char *what,
                char **ret_error)
{
    int r = take_fault(op);
    if (r < 0) {
        *ret_error = r == -ETIMEDOUT
                         ? vo_asprintf("the guest did not release %s %u (injected fault)", what, slot)
                         : vo_asprintf("injected fault: %s fails with %s", op, strerror(-r));
        return r;
    }
    uint32_t bit = 1u << (slot % 32);
    if (in == !!(*slots & bit)) {
        *ret_error = vo_asprintf("%s %u is %s", what, slot, in ? "already plugged" : "not plugged");
        return in ? -EEXIST : -ENOENT;
    }
    *slots ^= bit;
    return 0;
}

static int fake_disk_attach(VoHvInstance *vm, const VoVmSpec *spec, size_t index,
                            char **ret_error)
{
    return plug(&vm->disk_slots, spec->disks[index].slot, true, "disk_attach", "disk", ret_error);
}

static int fake_disk_detach(VoHvInstance *vm, unsigned slot, char **ret_error)
{
    return plug(&vm->disk_slots, slot, false, "disk_detach", "disk", ret_error);
}

/* The fake has no media: a change always succeeds. */
static int fake_cdrom_change(VoHvInstance *vm, const char *path, char **ret_error)
{
    (void)vm;
    (void)path;
    (void)ret_error;
    return 0;
}

static int fake_nic_attach(VoHvInstance *vm, const VoVmSpec *spec, const VoNicSpec *nic,
                           int tap_fd, char **ret_error)
{
    return plug(&vm->nic_slots, nic->slot, true, "nic_attach", "NIC", ret_error);
}

static int fake_nic_detach(VoHvInstance *vm, unsigned slot, char **ret_error)
{
    return plug(&vm->nic_slots, slot, false, "nic_detach", "NIC", ret_error);
}

/* vCPU and memory hot-plug within the ranges of resources_from_spec; faults
 * set_vcpus and set_memory (ETIMEDOUT plays a guest that does not respond:
 * nothing changes). */
static int fake_query_resources(VoHvInstance *vm, bool wait, VoHvResources *ret)
{
    /* Only a hold point (query_resources.hold): a test holds a task that
     * has done its driver call and not yet ended, e.g. a resume after cont. */
    vo_test_hold("query_resources");
    *ret = vm->res;
    return 0;
}

/* A rate of "fake-load" (cores): 0 when left out or not a positive number. */
static double fake_cores(json_t *doc, const char *key)
{
    json_t *v = json_object_get(doc, key);
    return json_is_number(v) && json_number_value(v) > 0 ? json_number_value(v) : 0;
}

/* The synthetic load (see the top of the file). */
static int fake_load(VoHvInstance *vm, VoHvLoad *ret)
{
    _cleanup_free_ char *text = NULL;
    json_t *doc = vo_read_file(vm->load_path, 4096, &text, NULL) >= 0
                      ? json_loads(text, 0, NULL) : NULL;
    json_t *mem = json_object_get(doc, "mem_mib");
    int64_t now = vo_now_ms();
    if (vm->load_at_ms && !vm->paused) {
        double seconds = (double)(now - vm->load_at_ms) / 1e3;
        vm->load_cpu_ns += (uint64_t)(fake_cores(doc, "cpu") * seconds * 1e9);
        vm->load_wait_ns += (uint64_t)(fake_cores(doc, "wait") * seconds * 1e9);
    }
    vm->load_at_ms = now;
    VoHvMemSource source = VO_HV_MEM_RSS;
    (void)vo_hv_mem_source_from_string(json_string_value(json_object_get(doc, "mem_source")),
                                       &source);
    *ret = (VoHvLoad){ .cpu_ns = vm->load_cpu_ns, .wait_ns = vm->load_wait_ns, .at_ms = now,
                       .mem_used_mib = json_is_integer(mem) && json_integer_value(mem) >= 0
                                           ? (uint64_t)json_integer_value(mem)
                                           : vm->res.memory_mib / 2,
                       .mem_source = source };
    ret->rss_mib = ret->mem_used_mib;
    json_decref(doc);
    return 0;
}

/* Monitoring counters: the synthetic load's CPU time and memory, and the
 * disk counters of "fake-load" ("rd_bytes", "wr_bytes", "rd_ops",
 * "wr_ops", each optional, 0 when left out). */
static int fake_stats(VoHvInstance *vm, VoHvStats *ret)
{
    /* A hold point (stats.hold): a test holds a monitoring sample, which
     * holds the VM's job lock meanwhile. */
    vo_test_hold("stats");
    VoHvLoad l;
    fake_load(vm, &l);
    *ret = (VoHvStats){ .cpu_ns = l.cpu_ns, .rss_bytes = l.mem_used_mib << 20,
                        .balloon_bytes = vm->res.memory_mib << 20, .have_balloon = true,
                        .have_disk = true };
    _cleanup_free_ char *text = NULL;
    json_t *doc = vo_read_file(vm->load_path, 4096, &text, NULL) >= 0
                      ? json_loads(text, 0, NULL) : NULL;
    json_int_t v;
    if ((v = json_integer_value(json_object_get(doc, "rd_bytes"))) > 0)
        ret->rd_bytes = (uint64_t)v;
    if ((v = json_integer_value(json_object_get(doc, "wr_bytes"))) > 0)
        ret->wr_bytes = (uint64_t)v;
    if ((v = json_integer_value(json_object_get(doc, "rd_ops"))) > 0)
        ret->rd_ops = (uint64_t)v;
    if ((v = json_integer_value(json_object_get(doc, "wr_ops"))) > 0)
        ret->wr_ops = (uint64_t)v;
    json_decref(doc);
    return 0;
}

static int fake_set_vcpus(VoHvInstance *vm, unsigned n, unsigned *ret_now, char **ret_error)
{
    int r = take_fault("set_vcpus");
    if (r >= 0 && (n < vm->res.min_vcpus || n > vm->res.max_vcpus))
        r = -ERANGE;
    if (r < 0)
        *ret_error = r == -ERANGE ? vo_asprintf("the VM can have %u..%u vCPUs", vm->res.min_vcpus,
                                                vm->res.max_vcpus)
                                  : vo_asprintf("injected fault: set_vcpus fails with %s", strerror(-r));
    else
        vm->res.vcpus = n;
    *ret_now = vm->res.vcpus;
    return r;
}

static int fake_set_memory(VoHvInstance *vm, uint64_t mib, uint64_t *ret_now_mib, char **ret_error)
{
    int r = take_fault("set_memory");
    if (r >= 0 && (mib < vm->res.min_memory_mib || mib > vm->res.max_memory_mib))
        r = -ERANGE;
    if (r < 0)
        *ret_error = r == -ERANGE ? vo_asprintf("the VM can have %llu..%llu MiB",
                                                (unsigned long long)vm->res.min_memory_mib,
                                                (unsigned long long)vm->res.max_memory_mib)
                                  : vo_asprintf("injected fault: set_memory fails with %s", strerror(-r));
    else
        vm->res.memory_mib = mib;
    *ret_now_mib = vm->res.memory_mib;
    return r;
}

static int fake_exit_fd(VoHvInstance *vm) { return vm->exit_fd; }

static int fake_events_fd(VoHvInstance *vm) { return vm->events_fd; }

/* One line from the FIFO: parsed like a QMP event; STOP and RESUME change
 * what the fake VM reports as paused, as they do in QEMU. */
static void fake_event_line(VoHvInstance *vm, const char *line, size_t n, VoHvEventFn fn,
                            void *userdata)
{
    json_t *msg = NULL;
    VoHvEvent ev;
    if (vo_qmp_parse_line(line, n, &msg) < 0 || !msg)
        return;
    int r = vo_qemu_event_parse(&vm->event_state, msg, &ev);
    if (r == 0) {
        if (ev.type == VO_HV_EVENT_STOP || ev.type == VO_HV_EVENT_RESUME) {
            vm->paused = ev.type == VO_HV_EVENT_STOP;
            vm->io_error = vm->paused && ev.reason && !strcmp(ev.reason, "io-error");
            save_state(vm);
        }
        fn(vm, &ev, userdata);
    } else {
        log_warn("fake driver: event line not understood (%s)", strerror(-r));
    }
    json_decref(msg);
}

static int fake_events_read(VoHvInstance *vm, VoHvEventFn fn, void *userdata)
{
    if (vm->events_fd < 0)
        return -ECONNRESET;
    char chunk[4096];
    for (;;) {
        ssize_t k = read(vm->events_fd, chunk, sizeof(chunk));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break; /* EAGAIN: all read (the FIFO is open for writing here too) */
        if (vm->events_len + (size_t)k > (1 << 20)) {
            log_warn("fake driver: event line too long; dropped");
            vm->events_len = 0;
        }
        vm->events_buf = realloc(vm->events_buf, vm->events_len + (size_t)k);
        if (!vm->events_buf)
            abort();
        memcpy(vm->events_buf + vm->events_len, chunk, (size_t)k);
        vm->events_len += (size_t)k;
    }
    size_t start = 0;
    for (size_t i = 0; i < vm->events_len; i++)
        if (vm->events_buf[i] == '\n') {
            fake_event_line(vm, vm->events_buf + start, i - start, fn, userdata);
            start = i + 1;
        }
    if (start > 0) {
        memmove(vm->events_buf, vm->events_buf + start, vm->events_len - start);
        vm->events_len -= start;
    }
    return 0;
}
static const char *fake_console_socket(VoHvInstance *vm) { return NULL; }

static void fake_reap(VoHvInstance *vm, bool *ret_clean, char **ret_reason)
{
    *ret_clean = vm->clean_exit;
    *ret_reason = vo_strdup(vm->clean_exit ? "guest powered off" : "killed");
}

/* ---- Live migration --------------------------------------------------------- */

/* TLS asked for by op (VoHvMigrationTls of migrate_prepare, migrate_start,
 * mirror_export or mirror_start; NULL: plain, nothing): checked like QEMU's
 * (absolute, readable files) and recorded, one line per use, in
 * "fake-migration-tls" in the VM's run dir: "<op> <ca_cert> <cert> <key>
 * <hostname or ->". */
static int record_tls(const VoHvInstance *vm, const char *op, const VoHvMigrationTls *tls,
                      char **ret_error)
{
    if (!tls)
        return 0;
    const char *files[] = { tls->ca_cert, tls->cert, tls->key };
    for (size_t i = 0; i < ELEMENTSOF(files); i++)
        if (!files[i] || files[i][0] != '/' || access(files[i], R_OK) < 0)
            return vo_error_set(ret_error, -EINVAL,
                                "the migration's TLS file '%s' is not an absolute path to a "
                                "readable file", files[i] ? files[i] : "");
    _cleanup_free_ char *dir = vo_strdup(vm->state_path);
    *strrchr(dir, '/') = 0;
    _cleanup_free_ char *path = vo_asprintf("%s/fake-migration-tls", dir);
    FILE *f = fopen(path, "ae");
    if (!f)
        return vo_error_set(ret_error, -errno, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "%s %s %s %s %s\n", op, tls->ca_cert, tls->cert, tls->key,
            tls->hostname && tls->hostname[0] ? tls->hostname : "-");
    fclose(f);
    return 0;
}

/* The fake's layout: the slots plugged and the vCPUs and memory it has. */
static int fake_layout(VoHvInstance *vm, char **ret_layout, char **ret_error)
{
    int r = take_fault("layout");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: layout fails with %s", strerror(-r));
    json_t *doc = json_pack("{s:s, s:I, s:I, s:i, s:I}", "driver", "fake", "disk_slots",
                            (json_int_t)vm->disk_slots, "nic_slots", (json_int_t)vm->nic_slots,
                            "vcpus", (int)vm->res.vcpus, "memory_mib",
                            (json_int_t)vm->res.memory_mib);
    *ret_layout = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return 0;
}

static int check_uri(const char *uri, char **ret_error)
{
    if (uri && (!strncmp(uri, "tcp:", 4) || !strncmp(uri, "unix:/", 6)))
        return 0;
    return vo_error_set(ret_error, -EINVAL,
                        "migration URI '%s' must be tcp:HOST:PORT or unix:/ABSOLUTE/PATH",
                        uri ? uri : "");
}

static int fake_migrate_prepare(VoHvDriver *d, const VoVmSpec *spec, const char *layout,
                                const char *run_dir, const int *tap_fds, const char *uri,
                                bool post_copy, const VoHvMigrationTls *tls, VoHvInstance **ret,
                                char **ret_error)
{
    if (post_copy) /* no post-copy here (ops left NULL): the caller refuses it first */
        return vo_error_set(ret_error, -EOPNOTSUPP, "the fake driver has no post-copy");
    int r = take_fault("migrate_prepare");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: migrate_prepare fails with %s",
                            strerror(-r));
    r = check_uri(uri, ret_error);
    if (r < 0)
        return r;
    json_int_t disks = 0, nics = 0, memory = 0;
    int vcpus = 0;
    const char *driver = NULL;
    json_t *doc = layout ? json_loads(layout, 0, NULL) : NULL;
    r = json_unpack(doc, "{s:s, s:I, s:I, s:i, s:I}", "driver", &driver, "disk_slots", &disks,
                    "nic_slots", &nics, "vcpus", &vcpus, "memory_mib", &memory) < 0 ||
        strcmp(driver, "fake") ? -EINVAL : 0;
    json_decref(doc);
    if (r < 0)
        return vo_error_set(ret_error, r, "the layout is not a fake driver's layout");
    VoHvInstance *vm = NULL;
    r = fake_start(d, spec, run_dir, tap_fds, &vm, ret_error);
    if (r < 0)
        return r;
    if (vm->disk_slots != (uint32_t)disks || vm->nic_slots != (uint32_t)nics) {
        fake_release(vm);
        return vo_error_set(ret_error, -EINVAL, "the spec's disks or NICs differ from the "
                            "running VM's layout");
    }
    r = record_tls(vm, "migrate_prepare", tls, ret_error);
    if (r < 0) {
        fake_release(vm);
        return r;
    }
    vm->res.vcpus = (unsigned)vcpus;
    vm->res.memory_mib = (uint64_t)memory;
    vm->incoming = true;
    vm->migration = VO_HV_MIGRATION_ACTIVE;
    *ret = vm;
    return 0;
}

static bool migrating(const VoHvInstance *vm)
{
    return vm->migration == VO_HV_MIGRATION_SETUP || vm->migration == VO_HV_MIGRATION_ACTIVE;
}

static int fake_migrate_start(VoHvInstance *vm, const char *uri, const VoHvMigrationOptions *opts,
                              char **ret_error)
{
    int r = take_fault("migrate_start");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: migrate_start fails with %s",
                            strerror(-r));
    r = check_uri(uri, ret_error);
    if (r < 0)
        return r;
    if (migrating(vm) || vm->incoming)
        return vo_error_set(ret_error, -EBUSY, "a migration is already under way");
    if (vm->mirror_slots && (vm->mirror_steps < 4 || vm->mirror_error))
        return vo_error_set(ret_error, -EBUSY, "the disks are not in sync yet");
    r = record_tls(vm, "migrate_start", opts ? opts->tls : NULL, ret_error);
    if (r < 0)
        return r;
    vm->migration = VO_HV_MIGRATION_SETUP;
    vm->migration_steps = 0;
    vm->migration_was_running = !vm->paused;
    free(vm->migration_error);
    vm->migration_error = NULL;
    return 0;
}

static int fake_migrate_query(VoHvInstance *vm, VoHvMigrationProgress *ret)
{
    uint64_t total = vm->res.memory_mib << 20;
    if (vm->incoming && migrating(vm) && ++vm->migration_steps >= 4)
        vm->migration = VO_HV_MIGRATION_COMPLETED;
    if (!vm->incoming && migrating(vm)) {
        int r = take_fault("migration");
        if (r < 0) {
            vm->migration = VO_HV_MIGRATION_FAILED;
            vm->migration_error = vo_asprintf("injected fault: migration fails with %s",
                                              strerror(-r));
        } else if (++vm->migration_steps >= 4) {
            vm->migration = VO_HV_MIGRATION_COMPLETED;
            vm->mirror_completed = vm->mirror_slots != 0; /* at the switch-over */
            vm->paused = true; /* like QEMU's postmigrate */
            save_state(vm);
        } else {
            vm->migration = VO_HV_MIGRATION_ACTIVE;
        }
    }
    unsigned steps = vm->migration_steps > 4 ? 4 : vm->migration_steps;
    bool completed = vm->migration == VO_HV_MIGRATION_COMPLETED;
    *ret = (VoHvMigrationProgress){
        .status = vm->migration,
        .total = vm->incoming ? 0 : total,
        .transferred = vm->incoming ? 0 : total / 4 * steps,
        .remaining = vm->incoming || completed ? 0 : total - total / 4 * steps,
        .dirty_pages_rate = migrating(vm) && !vm->incoming ? 100 : 0,
        .page_size = 4096,
        .expected_downtime_ms = migrating(vm) && !vm->incoming ? 10 : 0,
        .downtime_ms = completed ? 10 : 0,
        .total_time_ms = 100 * (uint64_t)steps,
        .passes = steps,
        .error = vm->migration_error ? vo_strdup(vm->migration_error) : NULL,
    };
    return 0;
}

static int fake_migrate_cancel(VoHvInstance *vm, char **ret_error)
{
    int r = take_fault("migrate_cancel");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: migrate_cancel fails with %s",
                            strerror(-r));
    if (migrating(vm) && !vm->incoming)
        vm->migration = VO_HV_MIGRATION_CANCELLED;
    vm->mirror_slots = 0; /* the disk mirrors too, in any phase */
    return 0;
}

static int fake_migrate_finish(VoHvInstance *vm, VoHvMigrationSide side, bool succeeded,
                               bool resume, char **ret_error)
{
    int r = take_fault("migrate_finish");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: migrate_finish fails with %s",
                            strerror(-r));
    if (side == VO_HV_MIGRATION_DESTINATION) {
        vm->incoming = false;
        vm->migration = succeeded ? VO_HV_MIGRATION_COMPLETED : VO_HV_MIGRATION_FAILED;
        if (!succeeded)
            return end_vm(vm, false, "kill");
        vm->paused = !resume;
        vm->export_slots = 0; /* the NBD server stops */
        save_state(vm);
        return 0;
    }
    if (succeeded)
        return end_vm(vm, true, "kill");
    vm->mirror_slots = 0;
    if (vm->migration_was_running) {
        vm->paused = false;
        save_state(vm);
    }
    vm->migration_was_running = false; /* once, as QEMU's (qemu-migrate.c) */
    return 0;
}

/* The fake's "RAM": what its layout says it has; a fault "memory_digest"
 * fails it, and a file "digest-differs" in its run dir changes it (a test
 * of a migration whose memory does not compare). */
static int fake_memory_digest(VoHvInstance *vm, char ret[65], char **ret_error)
{
    int r = take_fault("memory_digest");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: memory_digest fails with %s",
                            strerror(-r));
    _cleanup_free_ char *layout = NULL;
    if ((r = fake_layout(vm, &layout, ret_error)) < 0)
        return r;
    _cleanup_free_ char *dir = vo_strdup(vm->state_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    _cleanup_free_ char *differs = vo_asprintf("%s/digest-differs", dir);
    _cleanup_free_ char *text = vo_asprintf("%s%s", layout, access(differs, F_OK) == 0 ? "!" : "");
    vo_sha256_data(text, strlen(text), ret);
    return 0;
}

/* Local disks, played like migrate_*: each mirror_query moves a quarter of
 * every disk (FAKE_DISK_BYTES each); the fourth sees them all ready.
 * Faults: mirror_export and mirror_start fail that op once; mirror makes a
 * disk's mirror fail at the next query. */
#define FAKE_DISK_BYTES (1ull << 30)

static int mirror_slots_of(const VoHvInstance *vm, const VoHvMirrorPlan *plan, uint64_t *ret,
                           char **ret_error)
{
    *ret = 0;
    if (!plan || !plan->n_disks)
        return vo_error_set(ret_error, -EINVAL, "a disk mirror needs at least one disk");
    int r = check_uri(plan->uri, ret_error);
    if (r < 0)
        return r;
    for (size_t i = 0; i < plan->n_disks; i++) {
        unsigned slot = plan->disks[i].slot;
        if (slot == VO_HV_NVRAM_SLOT && vm->nvram) {
            *ret |= 1ull << 32;
            continue;
        }
        if (slot >= 32 || !(vm->disk_slots & (1u << slot)))
            return vo_error_set(ret_error, -ENOENT, "the VM has no disk in slot %u", slot);
        *ret |= 1ull << slot;
    }
    return 0;
}

static int fake_mirror_export(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error)
{
    int r = take_fault("mirror_export");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: mirror_export fails with %s",
                            strerror(-r));
    uint64_t slots;
    r = mirror_slots_of(vm, plan, &slots, ret_error);
    if (r < 0)
        return r;
    if (!vm->incoming)
        return vo_error_set(ret_error, -EINVAL, "only a migration's destination exports disks");
    r = record_tls(vm, "mirror_export", plan->tls, ret_error);
    if (r < 0)
        return r;
    vm->export_slots = slots;
    return 0;
}

static int fake_mirror_start(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error)
{
    int r = take_fault("mirror_start");
    if (r < 0)
        return vo_error_set(ret_error, r, "injected fault: mirror_start fails with %s",
                            strerror(-r));
    uint64_t slots;
    r = mirror_slots_of(vm, plan, &slots, ret_error);
    if (r < 0)
        return r;
    if (vm->mirror_slots || vm->incoming || migrating(vm))
        return vo_error_set(ret_error, -EBUSY, "the disks are being mirrored already");
    r = record_tls(vm, "mirror_start", plan->tls, ret_error);
    if (r < 0)
        return r;
    vm->mirror_slots = slots;
    vm->mirror_steps = 0;
    vm->mirror_completed = false;
    free(vm->mirror_error);
    vm->mirror_error = NULL;
    return 0;
}

static int fake_mirror_query(VoHvInstance *vm, VoHvMirrorProgress *ret)
{
    *ret = (VoHvMirrorProgress){ 0 };
    if (!vm->mirror_slots) {
        ret->error = vo_strdup("no disk mirror is under way");
        return -ENOENT;
    }
    if (!vm->mirror_error && !vm->mirror_completed) {
        int r = take_fault("mirror");
        if (r < 0)
            vm->mirror_error = vo_asprintf("injected fault: the mirror of a disk fails with %s",
                                           strerror(-r));
        else if (vm->mirror_steps < 4)
            vm->mirror_steps++;
    }
    size_t n = (size_t)__builtin_popcountll(vm->mirror_slots);
    ret->n_disks = n;
    ret->total = FAKE_DISK_BYTES * n;
    ret->transferred = FAKE_DISK_BYTES / 4 * vm->mirror_steps * n;
    ret->n_ready = vm->mirror_steps >= 4 && !vm->mirror_error ? n : 0;
    ret->ready = ret->n_ready == n;
    if (vm->mirror_error) {
        ret->error = vo_strdup(vm->mirror_error);
        return -EIO;
    }
    return 0;
}

/* A fixed list: QEMU 10.0's x86 types the tests use, aliases included. */
static char **fake_machines(VoHvDriver *d)
{
    (void)d;
    static const char *const list[] = { "pc", "pc-i440fx-10.0", "pc-q35-10.0", "q35" };
    char **v = vo_malloc0((ELEMENTSOF(list) + 1) * sizeof(char *));
    for (size_t i = 0; i < ELEMENTSOF(list); i++)
        v[i] = vo_strdup(list[i]);
    return v;
}

/* The version QEMU's driver would read, as the fake's machine types are
 * 10.0's. */
static char *fake_version(VoHvDriver *d)
{
    (void)d;
    return vo_strdup("10.0.2");
}

/* Every firmware, unless $VIREO_FAKE_FAULTS/no-ovmf exists: then a host
 * without OVMF (UEFI refused, as the QEMU driver refuses it without the
 * ovmf package). */
static int fake_firmware_check(VoHvDriver *d, VoFirmware firmware, bool secure_boot,
                               char **ret_error)
{
    (void)d;
    (void)secure_boot;
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    _cleanup_free_ char *marker = dir ? vo_asprintf("%s/no-ovmf", dir) : NULL;
    if (firmware != VO_FIRMWARE_UEFI || !marker || access(marker, F_OK) < 0)
        return 0;
    return vo_error_set(ret_error, -EINVAL, "firmware uefi: OVMF is not installed on this "
                        "host (fake driver: %s exists)", marker);
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
        .backup = fake_backup,
        .disk_attach = fake_disk_attach,
        .cdrom_change = fake_cdrom_change,
        .disk_detach = fake_disk_detach,
        .nic_attach = fake_nic_attach,
        .nic_detach = fake_nic_detach,
        .query_resources = fake_query_resources,
        .load = fake_load,
        .set_vcpus = fake_set_vcpus,
        .set_memory = fake_set_memory,
        .events_fd = fake_events_fd,
        .events_read = fake_events_read,
        .exit_fd = fake_exit_fd,
        .reap = fake_reap,
        .console_socket = fake_console_socket,
        .release = fake_release,
        .layout = fake_layout,
        .migrate_prepare = fake_migrate_prepare,
        .migrate_start = fake_migrate_start,
        .migrate_query = fake_migrate_query,
        .migrate_cancel = fake_migrate_cancel,
        .migrate_finish = fake_migrate_finish,
        .memory_digest = fake_memory_digest,
        .mirror_export = fake_mirror_export,
        .mirror_start = fake_mirror_start,
        .mirror_query = fake_mirror_query,
        .machines = fake_machines,
        .version = fake_version,
        .firmware_check = fake_firmware_check,
        .stats = fake_stats,
        .kvm_usable = false,
        .kvm_reason = vo_strdup("fake driver"),
    };
    *ret = d;
    return 0;
}
