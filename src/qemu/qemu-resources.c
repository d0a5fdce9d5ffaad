/* qemu-resources.c: vCPU and memory hot-plug of a running QEMU VM (the
 * driver's query_resources, set_vcpus and set_memory ops).
 *
 * vCPUs: QEMU lists every possible vCPU slot (query-hotpluggable-cpus); a
 * plugged one has a qom-path. vireo names slot k (in socket/core/thread
 * order) "vcpu<k>": qemu-argv.c cold-plugs vCPUs 1..N-1 with these ids when
 * hot-plug is on, and new ones are device_add'ed the same way, so every vCPU
 * but the boot CPUs (only vCPU 0 then) can be unplugged, highest first. An
 * unplug is a request to the guest (ACPI eject); it is done when the slot is
 * empty again.
 *
 * Memory: the boot memory (-m) stays; above it a virtio-mem device's
 * requested-size is set and its size followed until the guest has plugged
 * (or unplugged) that much; below it the balloon takes the rest. QEMU's
 * balloon counts only the boot memory (virtio-mem is not part of what it
 * sees), so its target is min(new size, boot size), set after virtio-mem
 * settled, and always: raising memory deflates it again.
 *
 * Both record what changed in the VM's hardware layout (qemu-layout.h); new
 * vCPU threads join their cgroup (qemu-cgroup.h). */
#include <poll.h>
#include <string.h>

#include "qemu/qemu-argv.h"
#include "qemu/qemu-cgroup.h"
#include "qemu/qemu-instance.h"
#include "qemu/qemu-resources.h"
#include "util/util.h"

#define VCPU_UNPLUG_TIMEOUT_MS 30000
#define MEMORY_SETTLE_TIMEOUT_MS 30000
#define POLL_INTERVAL_MS 100

/* Caller holds qmp_lock. */
static int run(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret, char **ret_error)
{
    if (!vm->qmp)
        return -ENOTCONN;
    return vo_qmp_execute(vm->qmp, cmd, args, QMP_TIMEOUT_MS, ret, ret_error);
}

/* ---- vCPUs ----------------------------------------------------------------- */

typedef struct {
    json_t *props;       /* borrowed from the query's answer */
    const char *path;    /* qom-path when plugged, else NULL */
    const char *type;
    long long key;       /* socket, core, thread: the slot's order */
} CpuSlot;

static long long prop(json_t *props, const char *name)
{
    return json_integer_value(json_object_get(props, name));
}

static int cmp_slot(const void *a, const void *b)
{
    long long ka = ((const CpuSlot *)a)->key, kb = ((const CpuSlot *)b)->key;
    return ka < kb ? -1 : ka > kb;
}

/* The VM's vCPU slots in order; *ret_answer keeps what they point into.
 * Caller holds qmp_lock. */
static int list_cpu_slots(VoHvInstance *vm, json_t **ret_answer, CpuSlot **ret_slots,
                          size_t *ret_n, char **ret_error)
{
    json_t *answer = NULL;
    int r = run(vm, "query-hotpluggable-cpus", NULL, &answer, ret_error);
    if (r < 0)
        return r;
    size_t n = json_array_size(answer), i;
    CpuSlot *slots = vo_malloc0(sizeof(CpuSlot) * (n + 1));
    json_t *entry;
    json_array_foreach(answer, i, entry) {
        json_t *props = json_object_get(entry, "props");
        slots[i] = (CpuSlot){ .props = props,
                              .path = json_string_value(json_object_get(entry, "qom-path")),
                              .type = json_string_value(json_object_get(entry, "type")),
                              .key = (prop(props, "socket-id") * 1024 + prop(props, "die-id")) *
                                         1048576 +
                                     prop(props, "core-id") * 1024 + prop(props, "thread-id") };
    }
    qsort(slots, n, sizeof(CpuSlot), cmp_slot);
    *ret_answer = answer;
    *ret_slots = slots;
    *ret_n = n;
    return 0;
}

/* A vCPU vireo plugged as a device (so it can be unplugged). */
static bool slot_is_device(const CpuSlot *s, size_t index)
{
    char id[32];
    vo_qemu_vcpu_id((unsigned)index, id);
    _cleanup_free_ char *path = vo_asprintf("/machine/peripheral/%s", id);
    return s->path && !strcmp(s->path, path);
}

static void count_cpus(const CpuSlot *slots, size_t n, VoHvResources *ret)
{
    ret->vcpus = ret->min_vcpus = 0;
    ret->max_vcpus = (unsigned)n;
    for (size_t i = 0; i < n; i++) {
        if (!slots[i].path)
            continue;
        ret->vcpus++;
        if (!slot_is_device(&slots[i], i))
            ret->min_vcpus++;
    }
    if (ret->min_vcpus == 0)
        ret->min_vcpus = 1;
}

/* Caller holds qmp_lock. */
static int query_cpus(VoHvInstance *vm, VoHvResources *ret, char **ret_error)
{
    json_t *answer = NULL;
    CpuSlot *slots = NULL;
    size_t n = 0;
    int r = list_cpu_slots(vm, &answer, &slots, &n, ret_error);
    if (r < 0)
        return r;
    count_cpus(slots, n, ret);
    free(slots);
    json_decref(answer);
    return 0;
}

/* Caller holds qmp_lock. */
static int plug_cpu(VoHvInstance *vm, const CpuSlot *slot, size_t index, char **ret_error)
{
    char id[32];
    vo_qemu_vcpu_id((unsigned)index, id);
    json_t *args = json_pack("{s:s, s:s}", "driver", slot->type, "id", id);
    json_object_update(args, slot->props);
    int r = run(vm, "device_add", args, NULL, ret_error);
    json_decref(args);
    return r;
}

/* Asks the guest to release vCPU index and waits (bounded) until its slot is
 * empty. Caller holds qmp_lock; it is released while waiting. */
static int unplug_cpu(VoHvInstance *vm, size_t index, char **ret_error)
{
    char id[32];
    vo_qemu_vcpu_id((unsigned)index, id);
    json_t *args = json_pack("{s:s}", "id", id);
    int r = run(vm, "device_del", args, NULL, ret_error);
    json_decref(args);
    if (r < 0)
        return r;
    int64_t deadline = vo_now_ms() + VCPU_UNPLUG_TIMEOUT_MS;
    for (;;) {
        json_t *answer = NULL;
        CpuSlot *slots = NULL;
        size_t n = 0;
        r = list_cpu_slots(vm, &answer, &slots, &n, ret_error);
        if (r < 0)
            return r;
        bool gone = index >= n || !slots[index].path;
        free(slots);
        json_decref(answer);
        if (gone)
            return 0;
        if (vo_now_ms() > deadline) {
            *ret_error = vo_asprintf("the guest did not release vCPU %zu within %d s (does it "
                                     "handle ACPI CPU hot-unplug?)",
                                     index, VCPU_UNPLUG_TIMEOUT_MS / 1000);
            return -ETIMEDOUT;
        }
        pthread_mutex_unlock(&vm->qmp_lock);
        poll(NULL, 0, POLL_INTERVAL_MS);
        pthread_mutex_lock(&vm->qmp_lock);
    }
}

int vo_qemu_set_vcpus(VoHvInstance *vm, unsigned n, unsigned *ret_now, char **ret_error)
{
    pthread_mutex_lock(&vm->qmp_lock);
    json_t *answer = NULL;
    CpuSlot *slots = NULL;
    size_t n_slots = 0;
    VoHvResources res = { 0 };
    int r = list_cpu_slots(vm, &answer, &slots, &n_slots, ret_error);
    if (r >= 0) {
        count_cpus(slots, n_slots, &res);
        if (n > res.max_vcpus) {
            *ret_error = vo_asprintf("the VM can have at most %u vCPUs", res.max_vcpus);
            r = -ERANGE;
        } else if (n < res.min_vcpus) {
            *ret_error = vo_asprintf("the VM has %u boot vCPUs, which cannot be unplugged",
                                     res.min_vcpus);
            r = -ERANGE;
        }
    }
    /* Plug into the lowest free slots, unplug the highest of vireo's. */
    for (size_t i = 0; r >= 0 && res.vcpus < n && i < n_slots; i++)
        if (!slots[i].path && (r = plug_cpu(vm, &slots[i], i, ret_error)) >= 0)
            res.vcpus++;
    for (size_t i = n_slots; r >= 0 && res.vcpus > n && i-- > 0;)
        if (slot_is_device(&slots[i], i) && (r = unplug_cpu(vm, i, ret_error)) >= 0)
            res.vcpus--;
    free(slots);
    json_decref(answer);
    _cleanup_free_ char *ignored = NULL;
    if (query_cpus(vm, &res, &ignored) >= 0)
        *ret_now = res.vcpus;
    vo_qemu_layout_changed(vm); /* also after a partial change */
    vo_qemu_cgroup_place_vcpus_or_warn(vm, NULL); /* new vCPU threads join their cgroup */
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}

/* ---- memory ------------------------------------------------------------------ */

typedef struct {
    uint64_t base;                   /* bytes of boot memory, as QEMU has it */
    uint64_t boot;                   /* the same in whole MiB: a TCG VM's boot memory has a few
                                      * KiB more (qemu-argv.c, boot_pad_kib), not counted */
    bool has_vmem, has_balloon;
    uint64_t vmem_size, vmem_max;    /* bytes */
    uint64_t actual;                 /* bytes the guest has: virtio-mem + boot less balloon */
    uint64_t balloon_actual;         /* boot memory less what the balloon holds */
} MemoryState;

/* Caller holds qmp_lock. */
static int query_memory(VoHvInstance *vm, MemoryState *ret, char **ret_error)
{
    *ret = (MemoryState){ 0 };
    json_t *summary = NULL, *devices = NULL, *balloon = NULL;
    int r = run(vm, "query-memory-size-summary", NULL, &summary, ret_error);
    if (r < 0)
        return r;
    ret->base = (uint64_t)json_integer_value(json_object_get(summary, "base-memory"));
    ret->boot = ret->base & ~(((uint64_t)1 << 20) - 1);
    json_decref(summary);
    r = run(vm, "query-memory-devices", NULL, &devices, ret_error);
    if (r < 0)
        return r;
    size_t i;
    json_t *dev;
    json_array_foreach(devices, i, dev) {
        json_t *data = json_object_get(dev, "data");
        const char *id = json_string_value(json_object_get(data, "id"));
        if (strcmp(json_string_value(json_object_get(dev, "type")) ?: "", "virtio-mem") ||
            strcmp(id ?: "", VO_QEMU_VIRTIO_MEM_ID))
            continue;
        ret->has_vmem = true;
        ret->vmem_size = (uint64_t)json_integer_value(json_object_get(data, "size"));
        ret->vmem_max = (uint64_t)json_integer_value(json_object_get(data, "max-size"));
    }
    json_decref(devices);
    ret->balloon_actual = ret->base;
    /* No balloon device: an error, which only says so. */
    if (run(vm, "query-balloon", NULL, &balloon, NULL) >= 0) {
        ret->has_balloon = true;
        ret->balloon_actual = (uint64_t)json_integer_value(json_object_get(balloon, "actual"));
        json_decref(balloon);
    }
    ret->actual = ret->balloon_actual + ret->vmem_size;
    return 0;
}

static void memory_to_resources(const MemoryState *m, VoHvResources *ret)
{
    ret->memory_mib = m->actual >> 20;
    ret->boot_memory_mib = m->base >> 20;
    ret->boot_memory_kib = m->base >> 10;
    ret->max_memory_mib = (m->base + m->vmem_max) >> 20;
    ret->min_memory_mib = m->has_balloon ? VO_VM_MIN_MEMORY_MIB : m->base >> 20;
}

int vo_qemu_query_resources(VoHvInstance *vm, bool wait, VoHvResources *ret)
{
    if (wait)
        pthread_mutex_lock(&vm->qmp_lock);
    else if (pthread_mutex_trylock(&vm->qmp_lock) != 0)
        return -EAGAIN;
    _cleanup_free_ char *error = NULL;
    MemoryState m;
    int r = query_cpus(vm, ret, &error);
    if (r >= 0)
        r = query_memory(vm, &m, &error);
    pthread_mutex_unlock(&vm->qmp_lock);
    if (r < 0)
        return r;
    memory_to_resources(&m, ret);
    return 0;
}

/* Sets the virtio-mem device's requested size and waits (bounded) until the
 * guest has plugged or unplugged that much. Caller holds qmp_lock; it is
 * released while waiting. */
static int settle_virtio_mem(VoHvInstance *vm, uint64_t bytes, char **ret_error)
{
    json_t *args = json_pack("{s:s, s:s, s:I}", "path", "/machine/peripheral/" VO_QEMU_VIRTIO_MEM_ID,
                             "property", "requested-size", "value", (json_int_t)bytes);
    int r = run(vm, "qom-set", args, NULL, ret_error);
    json_decref(args);
    int64_t deadline = vo_now_ms() + MEMORY_SETTLE_TIMEOUT_MS;
    while (r >= 0) {
        MemoryState m;
        r = query_memory(vm, &m, ret_error);
        if (r < 0 || m.vmem_size == bytes)
            break;
        if (vo_now_ms() > deadline) {
            *ret_error = vo_asprintf("the guest did not %s its hot-pluggable memory to %llu MiB "
                                     "within %d s (it has %llu MiB of it)",
                                     m.vmem_size < bytes ? "grow" : "shrink",
                                     (unsigned long long)(bytes >> 20),
                                     MEMORY_SETTLE_TIMEOUT_MS / 1000,
                                     (unsigned long long)(m.vmem_size >> 20));
            return -ETIMEDOUT;
        }
        pthread_mutex_unlock(&vm->qmp_lock);
        poll(NULL, 0, POLL_INTERVAL_MS);
        pthread_mutex_lock(&vm->qmp_lock);
    }
    return r;
}

/* Sets the balloon so the guest keeps target bytes of its boot memory
 * (target at most the boot size) and waits (bounded) for it. Caller holds
 * qmp_lock; it is released while waiting. */
static int settle_balloon(VoHvInstance *vm, uint64_t target, char **ret_error)
{
    json_t *args = json_pack("{s:I}", "value", (json_int_t)target);
    int r = run(vm, "balloon", args, NULL, ret_error);
    json_decref(args);
    int64_t deadline = vo_now_ms() + MEMORY_SETTLE_TIMEOUT_MS;
    while (r >= 0) {
        MemoryState m;
        r = query_memory(vm, &m, ret_error);
        if (r < 0)
            break;
        if (m.balloon_actual == target)
            break;
        if (vo_now_ms() > deadline) {
            *ret_error = vo_asprintf("the guest's balloon did not reach %llu MiB of its boot "
                                     "memory within %d s (it has %llu MiB; is the "
                                     "virtio_balloon driver loaded?)",
                                     (unsigned long long)(target >> 20),
                                     MEMORY_SETTLE_TIMEOUT_MS / 1000,
                                     (unsigned long long)(m.balloon_actual >> 20));
            return -ETIMEDOUT;
        }
        pthread_mutex_unlock(&vm->qmp_lock);
        poll(NULL, 0, POLL_INTERVAL_MS);
        pthread_mutex_lock(&vm->qmp_lock);
    }
    return r;
}

int vo_qemu_set_memory(VoHvInstance *vm, uint64_t mib, uint64_t *ret_now_mib, char **ret_error)
{
    uint64_t bytes = mib << 20;
    pthread_mutex_lock(&vm->qmp_lock);
    MemoryState m;
    int r = query_memory(vm, &m, ret_error);
    if (r >= 0 && !m.has_vmem && !m.has_balloon) {
        *ret_error = vo_strdup("the VM was started without memory hot-plug");
        r = -EOPNOTSUPP;
    } else if (r >= 0 && bytes > m.boot + m.vmem_max) {
        *ret_error = vo_asprintf("the VM can have at most %llu MiB",
                                 (unsigned long long)((m.boot + m.vmem_max) >> 20));
        r = -ERANGE;
    } else if (r >= 0 && bytes < m.boot && !m.has_balloon) {
        *ret_error = vo_asprintf("the VM has no balloon: it keeps its boot memory (%llu MiB)",
                                 (unsigned long long)(m.boot >> 20));
        r = -ERANGE;
    }
    /* The balloon is given all of the boot memory back (its padding too)
     * unless the VM shrinks below the boot size. */
    if (r >= 0 && m.has_vmem)
        r = settle_virtio_mem(vm, bytes > m.boot ? bytes - m.boot : 0, ret_error);
    if (r >= 0 && m.has_balloon)
        r = settle_balloon(vm, bytes < m.boot ? bytes : m.base, ret_error);
    _cleanup_free_ char *ignored = NULL;
    if (query_memory(vm, &m, &ignored) >= 0)
        *ret_now_mib = m.actual >> 20;
    vo_qemu_layout_changed(vm); /* also after a partial change */
    pthread_mutex_unlock(&vm->qmp_lock);
    return r;
}
