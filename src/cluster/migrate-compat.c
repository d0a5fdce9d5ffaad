/* migrate-compat.c: the checks before a VM moves (see migrate-compat.h).
 * The host records are read as placement reads them (place-snapshot.c),
 * and the CPU, memory and vCPU rules and their words are placement's own
 * (placement.h), so a move and a create judge a host alike. */
#include "cluster/migrate-compat.h"

#include <string.h>

#include "cluster/place-snapshot.h"
#include "cluster/placement.h"
#include "util/util.h"

/* At most this many machine types are named when the VM's is missing. */
#define MAX_MACHINES_NAMED 6

typedef struct {
    char **items;
} Reasons;

static void add(Reasons *r, char *text)
{
    vo_strv_push(&r->items, text);
}

/* A record as placement sees it: 0, or -EINVAL with *ret_error. */
static int host_from_record(json_t *record, VoPlaceHost *ret, char **ret_error)
{
    VoPlaceHostDocs docs = { .member = record, .record = record };
    VoPlaceSnapshot snap = { 0 };
    char **warnings = NULL;
    int r = vo_place_snapshot_build(&docs, 1, VO_PLACE_SPREAD, NULL, &snap, &warnings, ret_error);
    if (r >= 0 && warnings) {
        *ret_error = vo_strdup(warnings[0]);
        r = -EINVAL;
    }
    vo_strv_free(warnings);
    if (r >= 0) {
        *ret = snap.hosts[0];
        snap.hosts[0] = (VoPlaceHost){ 0 };
    }
    vo_place_snapshot_clear(&snap);
    return r;
}

static const char *name_of(json_t *record)
{
    const char *n = json_string_value(json_object_get(record, "name"));
    return n ? n : json_string_value(json_object_get(record, "id"));
}

static void check_state(Reasons *out, const VoPlaceHost *t, json_t *source, json_t *target)
{
    if (t->state != VO_HOST_ONLINE)
        add(out, vo_asprintf("host %s is %s", t->name,
                             t->state == VO_HOST_MAINTENANCE ? "in maintenance"
                                                             : vo_host_state_to_string(t->state)));
    const char *sid = json_string_value(json_object_get(source, "id"));
    const char *tid = json_string_value(json_object_get(target, "id"));
    if (sid && tid && !strcmp(sid, tid))
        add(out, vo_asprintf("host %s is the VM's own host (the source)", t->name));
}

static const char *accel_name(VoAccel a)
{
    return a == VO_ACCEL_KVM ? "kvm" : "tcg";
}

/* Running VM: the accelerator it runs with (the layout's, else the
 * source's) must be the target's. Stopped: a VM that asks for kvm needs a
 * kvm host. */
static void check_accel(Reasons *out, const VoPlaceHost *t, json_t *layout, const VoVmSpec *spec,
                        const VoPlaceHost *s)
{
    VoAccel vm;
    if (layout) {
        const char *a = json_string_value(json_object_get(layout, "accel"));
        if (!a || vo_accel_from_string(a, &vm) < 0 || vm == VO_ACCEL_AUTO) {
            if (!s)
                return;
            vm = s->accel;
        }
    } else if (spec->accel == VO_ACCEL_KVM)
        vm = VO_ACCEL_KVM;
    else
        return;
    if (vm != t->accel)
        add(out, vo_asprintf("accelerator: the VM %s %s, host %s has %s",
                             layout ? "runs with" : "needs", accel_name(vm), t->name,
                             accel_name(t->accel)));
}

/* The CPU: a "host" CPU only on a host with the source's model and flags
 * (what differs: the model, flags the target lacks, flags it has beyond);
 * a named model: every flag the layout says it needs ("cpu_flags"). */
static void check_cpu(Reasons *out, const VoPlaceHost *t, json_t *layout, const VoPlaceHost *s)
{
    const char *cpu = layout ? json_string_value(json_object_get(layout, "cpu")) : NULL;
    if (!cpu)
        return; /* stopped, or the machine's default model: nothing host-bound */
    VoPlaceRequest req = { .cpu_model = (char *)cpu };
    if (!strcmp(cpu, "host")) {
        if (!s) {
            add(out, vo_strdup("CPU: the VM runs with CPU model host, and the source's record "
                               "(its CPU model and flags) cannot be read"));
            return;
        }
        req.cpu_host_model = s->cpu_model;
        req.cpu_flags = s->cpu_flags;
        if (vo_place_cpu_check(t, &req) == VO_PLACE_FITS)
            return;
        VoPlaceVerdict v = { .why = VO_PLACE_CPU_MODEL };
        if (strcmp(t->cpu_model ? t->cpu_model : "", s->cpu_model ? s->cpu_model : "")) {
            _cleanup_free_ char *w = vo_place_verdict_text(t, &req, &v);
            add(out, vo_asprintf("CPU: host %s's %s", t->name, w));
        }
        if (!vo_place_strv_has_all(s->cpu_flags, t->cpu_flags)) {
            v.why = VO_PLACE_CPU_FLAGS_MISSING;
            _cleanup_free_ char *w = vo_place_verdict_text(t, &req, &v);
            add(out, vo_asprintf("CPU (host, needs an identical host): host %s %s", t->name, w));
        }
        if (!vo_place_strv_has_all(t->cpu_flags, s->cpu_flags)) {
            v.why = VO_PLACE_CPU_FLAGS_EXTRA;
            _cleanup_free_ char *w = vo_place_verdict_text(t, &req, &v);
            add(out, vo_asprintf("CPU (host, needs an identical host): host %s %s", t->name, w));
        }
        return;
    }
    _cleanup_strv_ char **flags = vo_place_strv_of_json(json_object_get(layout, "cpu_flags"));
    req.cpu_flags = flags;
    if (vo_place_cpu_check(t, &req) == VO_PLACE_FITS)
        return;
    VoPlaceVerdict v = { .why = VO_PLACE_CPU_FLAGS_MISSING };
    _cleanup_free_ char *w = vo_place_verdict_text(t, &req, &v);
    add(out, vo_asprintf("CPU model %s: host %s %s", cpu, t->name, w));
}

/* Whether the JSON array list holds the string s. */
static bool has_string(json_t *list, const char *s)
{
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
        if (json_is_string(x) && !strcmp(json_string_value(x), s))
            return true;
    return false;
}

/* Running VM on TCG with memory hot-plug: its boot memory must be padded
 * (memory.boot_pad_kib, qemu-argv.c "TCG and a second RAM block"); a QEMU
 * an older vireod started has none, and loses guest writes in a migration
 * or aborts. Said here, on the source, as a target of any version takes it. */
static void check_boot_padding(Reasons *out, json_t *layout)
{
    json_t *memory = json_object_get(layout, "memory");
    json_int_t boot = json_integer_value(json_object_get(memory, "boot_mib"));
    json_int_t max = json_integer_value(json_object_get(memory, "max_mib"));
    if (strcmp(json_string_value(json_object_get(layout, "accel")) ?: "", "tcg") || max <= boot ||
        json_integer_value(json_object_get(memory, "boot_pad_kib")) > 0)
        return;
    add(out, vo_strdup("memory: the VM runs with TCG and memory hot-plug and was started by a "
                       "vireod without TCG's boot-memory padding (QEMU would lose the guest's "
                       "writes during the copy, or abort): stop and start it once"));
}

/* The machine type (the layout's resolved one, e.g. pc-q35-10.0, or the
 * spec's for a stopped VM) among the target's "machines". */
static void check_machine(Reasons *out, const VoPlaceHost *t, json_t *target, json_t *layout,
                          const VoVmSpec *spec)
{
    const char *machine = layout ? json_string_value(json_object_get(layout, "machine")) : NULL;
    if (!machine)
        machine = spec->machine;
    if (!machine)
        return;
    json_t *list = json_object_get(target, "machines");
    if (!json_is_array(list)) {
        add(out, vo_asprintf("machine type %s: host %s does not say which machine types it has "
                             "(its vireod is older)", machine, t->name));
        return;
    }
    if (has_string(list, machine))
        return;
    size_t i;
    json_t *m;
    char *named = NULL;
    size_t n = 0;
    json_array_foreach(list, i, m) {
        if (!json_is_string(m) || n++ >= MAX_MACHINES_NAMED)
            continue;
        char *x = vo_asprintf("%s%s%s", named ? named : "", named ? ", " : "",
                              json_string_value(m));
        free(named);
        named = x;
    }
    if (n > MAX_MACHINES_NAMED) {
        char *x = vo_asprintf("%s and %zu more", named, n - MAX_MACHINES_NAMED);
        free(named);
        named = x;
    }
    add(out, vo_asprintf("machine type %s is not available on host %s (it has: %s)", machine,
                         t->name, named ? named : "none"));
    free(named);
}

/* A UEFI VM needs OVMF on the target (its record's "firmware": "uefi",
 * or "uefi-secure-boot" for secure boot). A BIOS VM boots anywhere. */
static void check_firmware(Reasons *out, const VoPlaceHost *t, json_t *target,
                           const VoVmSpec *spec)
{
    if (spec->firmware != VO_FIRMWARE_UEFI)
        return;
    const char *want = spec->secure_boot ? "uefi-secure-boot" : "uefi";
    json_t *list = json_object_get(target, "firmware");
    if (!json_is_array(list)) {
        add(out, vo_asprintf("firmware: the VM boots UEFI, and host %s does not say which "
                             "firmware it has (its vireod is older)", t->name));
        return;
    }
    if (has_string(list, want))
        return;
    add(out, vo_asprintf("firmware: the VM boots UEFI%s, and host %s has no OVMF%s (install "
                         "the ovmf package there)", spec->secure_boot ? " with secure boot" : "",
                         t->name, spec->secure_boot ? " with secure boot" : ""));
}

static void check_networks(Reasons *out, const VoPlaceHost *t, const VoVmSpec *spec,
                           const char *const *nets, const char *const *projects)
{
    const char *project = vo_vm_spec_project(spec);
    for (size_t i = 0; i < spec->n_nics; i++) {
        const char *net = spec->nics[i].network;
        if (!net || !strcmp(net, "user"))
            continue;
        bool seen = false; /* named once even when several NICs use it */
        for (size_t k = 0; k < i && !seen; k++)
            seen = spec->nics[k].network && !strcmp(spec->nics[k].network, net);
        if (seen)
            continue;
        size_t k = 0;
        while (nets && nets[k] && strcmp(nets[k], net))
            k++;
        if (!nets || !nets[k])
            add(out, vo_asprintf("network %s (NIC %u) does not exist on host %s", net,
                                 spec->nics[i].slot, t->name));
        else if (projects && projects[k][0] && strcmp(projects[k], project))
            add(out, vo_asprintf("network %s (NIC %u) on host %s belongs to project '%s' and "
                                 "the VM to project '%s'", net, spec->nics[i].slot, t->name,
                                 projects[k], project));
    }
}

static void check_room(Reasons *out, const VoPlaceHost *t, const VoVmSpec *spec)
{
    VoPlaceRequest req = { .vcpus = spec->vcpus, .memory_mib = spec->memory_mib };
    VoPlaceVerdict v = { .why = VO_PLACE_MEMORY, .free = vo_place_memory_free(t) };
    if (req.memory_mib > v.free) {
        _cleanup_free_ char *w = vo_place_verdict_text(t, &req, &v);
        add(out, vo_asprintf("memory: host %s %s", t->name, w));
    }
    v = (VoPlaceVerdict){ .why = VO_PLACE_VCPUS, .free = vo_place_vcpus_free(t) };
    if (req.vcpus > v.free) {
        _cleanup_free_ char *w = vo_place_verdict_text(t, &req, &v);
        add(out, vo_asprintf("vCPUs: host %s %s", t->name, w));
    }
}

static char *join(char **v)
{
    size_t len = 1;
    for (size_t i = 0; v && v[i]; i++)
        len += strlen(v[i]) + 2;
    char *s = vo_malloc0(len), *p = s;
    for (size_t i = 0; v && v[i]; i++)
        p += sprintf(p, "%s%s", i ? "; " : "", v[i]);
    return s;
}

int vo_migrate_compat_check(const VoMigrateCompat *c, char **ret_reasons)
{
    *ret_reasons = NULL;
    if (!c || !c->spec)
        return vo_error_set(ret_reasons, -EINVAL, "no VM definition to check");
    json_t *layout = NULL;
    if (c->layout) {
        layout = json_loads(c->layout, 0, NULL);
        if (!json_is_object(layout)) {
            json_decref(layout);
            return vo_error_set(ret_reasons, -EINVAL, "the VM's hardware layout is not a JSON "
                                "object");
        }
    }
    Reasons out = { 0 };
    if (!c->target_record) {
        add(&out, vo_strdup("the target host is offline (it has no live record)"));
    } else {
        VoPlaceHost t = { 0 }, s = { 0 };
        _cleanup_free_ char *error = NULL, *serror = NULL;
        bool have_source = c->source_record &&
                           host_from_record(c->source_record, &s, &serror) >= 0;
        if (host_from_record(c->target_record, &t, &error) < 0) {
            const char *n = name_of(c->target_record);
            add(&out, vo_asprintf("host %s: its record cannot be read: %s", n ? n : "?", error));
        } else {
            check_state(&out, &t, c->source_record, c->target_record);
            check_accel(&out, &t, layout, c->spec, have_source ? &s : NULL);
            check_cpu(&out, &t, layout, have_source ? &s : NULL);
            check_machine(&out, &t, c->target_record, layout, c->spec);
            check_boot_padding(&out, layout);
            check_firmware(&out, &t, c->target_record, c->spec);
            check_networks(&out, &t, c->spec, c->target_networks, c->target_network_projects);
            check_room(&out, &t, c->spec);
        }
        vo_place_host_clear(&t);
        vo_place_host_clear(&s);
    }
    json_decref(layout);
    if (!out.items || !out.items[0]) {
        vo_strv_free(out.items);
        return 0;
    }
    *ret_reasons = join(out.items);
    vo_strv_free(out.items);
    return -EXDEV;
}
