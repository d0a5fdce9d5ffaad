/* vm.c: the `vireo vm ...` commands: create, lifecycle actions, delete, show,
 * list, edit, template and the `vm disk` and `vm nic` groups, each a request
 * to /v1/vms. */
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "wait.h"

static const char *const accel_choices[] = { "auto", "kvm", "tcg", NULL };

/* --max-vcpus and --max-memory into body as max_vcpus / max_memory_mib. */
static bool add_max_options(json_t *body, const char *max_vcpus, const char *max_memory)
{
    uint64_t v;
    if (max_vcpus && !cli_parse_uint("--max-vcpus", max_vcpus, 1, INT32_MAX, &v))
        return false;
    if (max_vcpus)
        json_object_set_new(body, "max_vcpus", json_integer((json_int_t)v));
    if (max_memory && !cli_parse_mib("--max-memory", max_memory, &v))
        return false;
    if (max_memory)
        json_object_set_new(body, "max_memory_mib", json_integer((json_int_t)v));
    return true;
}

/* --ha-priority N: -1000..1000 (higher is restarted first). */
static bool add_ha_priority(json_t *body, const char *text)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < -1000 || v > 1000) {
        cli_error("--ha-priority: '%s' is not a number from -1000 to 1000", text);
        return false;
    }
    json_object_set_new(body, "ha_priority", json_integer(v));
    return true;
}

/* --boot "cdrom,disk,network" as the API's list (vireod checks the
 * words). */
static json_t *boot_order_json(const char *text)
{
    json_t *arr = json_array();
    _cleanup_free_ char *copy = vo_strdup(text);
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(w));
    return arr;
}

static int vm_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *image = NULL, *vcpus = NULL, *memory = NULL, *disk = NULL,
               *accel = NULL, *max_vcpus = NULL, *max_memory = NULL, *group = NULL,
               *host = NULL, *pool = NULL, *cdrom = NULL, *boot = NULL, *ha_priority = NULL,
               *ha_group = NULL, *firmware = NULL, *display = NULL, *disk_volume = NULL,
               *project = NULL;
    bool autostart = false, full_clone = false, async = false, blank = false, ha = false;
    bool secure_boot = false;
    CliCloudInitOpts ci = { 0 };
    _cleanup_strv_ char **networks = NULL, **macs = NULL;
    const CliOption opts[] = {
        { "--image", &image, NULL },   { "--vcpus", &vcpus, NULL },
        { "--memory", &memory, NULL }, { "--disk-size", &disk, NULL },
        { "--max-vcpus", &max_vcpus, NULL }, { "--max-memory", &max_memory, NULL },
        { "--accel", &accel, NULL },   { "--autostart", NULL, &autostart },
        { "--full-clone", NULL, &full_clone },
        { "--group", &group, NULL },   { "--host", &host, NULL },
        { "--project", &project, NULL },
        { "--pool", &pool, NULL },     { "--disk", &disk_volume, NULL },
        { "--blank", NULL, &blank },   { "--cdrom", &cdrom, NULL },
        { "--boot", &boot, NULL },
        { "--firmware", &firmware, NULL }, { "--secure-boot", NULL, &secure_boot },
        { "--display", &display, NULL },
        { "--ha", NULL, &ha },         { "--ha-priority", &ha_priority, NULL },
        { "--ha-group", &ha_group, NULL },
        CLI_CLOUD_INIT_OPTIONS(ci),
        { "--async", NULL, &async },   { NULL, NULL, NULL },
    };
    const CliListOption lists[] = { { "--network", &networks }, { "--mac", &macs },
                                    { NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_lists(cmd, argc, argv, opts, lists, &name, 1, &exit_status))
        return exit_status;

    json_t *body = json_pack("{s:s}", "name", name);
    uint64_t v;
    bool ok = true;
    if (image)
        json_object_set_new(body, "image", json_string(image));
    if (ok && vcpus && (ok = cli_parse_uint("--vcpus", vcpus, 1, INT32_MAX, &v)))
        json_object_set_new(body, "vcpus", json_integer((json_int_t)v));
    if (ok && memory && (ok = cli_parse_mib("--memory", memory, &v)))
        json_object_set_new(body, "memory_mib", json_integer((json_int_t)v));
    if (ok && (max_vcpus || max_memory))
        ok = add_max_options(body, max_vcpus, max_memory);
    if (ok && disk && (ok = cli_parse_bytes("--disk-size", disk, &v)))
        json_object_set_new(body, "disk_size_bytes", json_integer((json_int_t)v));
    if (ok && accel && (ok = cli_parse_choice("--accel", accel, accel_choices)))
        json_object_set_new(body, "accel", json_string(accel));
    if (autostart)
        json_object_set_new(body, "autostart", json_true());
    if (full_clone)
        json_object_set_new(body, "full_clone", json_true());
    if (group)
        json_object_set_new(body, "group", json_string(group));
    if (host)
        json_object_set_new(body, "host", json_string(host));
    if (project)
        json_object_set_new(body, "project", json_string(project));
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    if (disk_volume)
        json_object_set_new(body, "disk_volume", json_string(disk_volume));
    if (blank)
        json_object_set_new(body, "blank", json_true());
    if (cdrom) /* "none": an empty drive */
        json_object_set_new(body, "cdrom", json_string(strcmp(cdrom, "none") ? cdrom : ""));
    if (firmware) /* vireod checks the word */
        json_object_set_new(body, "firmware", json_string(firmware));
    if (secure_boot)
        json_object_set_new(body, "secure_boot", json_true());
    if (display) /* vireod checks the word */
        json_object_set_new(body, "display", json_string(display));
    if (boot)
        json_object_set_new(body, "boot", boot_order_json(boot));
    if (ha)
        json_object_set_new(body, "ha", json_true());
    if (ok && ha_priority)
        ok = add_ha_priority(body, ha_priority);
    if (ha_group)
        json_object_set_new(body, "ha_group", json_string(ha_group));
    if (networks) {
        json_t *arr = json_array();
        for (char **n = networks; *n; n++)
            json_array_append_new(arr, json_string(*n));
        json_object_set_new(body, "networks", arr);
    }
    if (macs) { /* vireod checks each; "auto": a new one (null) */
        json_t *arr = json_array();
        for (char **m = macs; *m; m++)
            json_array_append_new(arr, strcmp(*m, "auto") ? json_string(*m) : json_null());
        json_object_set_new(body, "macs", arr);
    }
    if (ok && cli_cloud_init_given(&ci)) {
        json_t *o = json_object();
        json_object_set_new(body, "cloud_init", o);
        ok = cli_cloud_init_apply(&ci, o);
    }
    if (!ok) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    int r = run_action("POST", "/v1/vms", body, async, name, "created");
    json_decref(body);
    return r;
}

/* start, reboot, pause, resume: POST /v1/vms/NAME/VERB without a body. */
static int vm_simple_action(const CliCommand *cmd, int argc, char **argv)
{
    static const struct {
        const char *verb, *done;
    } words[] = {
        { "start", "started" },
        { "reboot", "rebooted" },
        { "pause", "paused" },
        { "resume", "resumed" },
    };
    const char *name = NULL;
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;

    const char *done = cmd->verb;
    for (size_t i = 0; i < ELEMENTSOF(words); i++)
        if (strcmp(words[i].verb, cmd->verb) == 0)
            done = words[i].done;
    _cleanup_free_ char *suffix = vo_asprintf("/%s", cmd->verb);
    _cleanup_free_ char *path = api_path("vms", name, suffix);
    return run_action("POST", path, NULL, async, name, done);
}

/* vm start NAME [--boot-once DEV]: POST /v1/vms/NAME/start. */
static int vm_start(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *once = NULL;
    bool async = false;
    const CliOption opts[] = { { "--boot-once", &once, NULL }, { "--async", NULL, &async },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    static const char *const devs[] = { "disk", "cdrom", "network", NULL };
    if (once && !cli_parse_choice("--boot-once", once, devs))
        return CLI_EXIT_USAGE;
    json_t *body = once ? json_pack("{s:s}", "boot_once", once) : NULL;
    _cleanup_free_ char *path = api_path("vms", name, "/start");
    int r = run_action("POST", path, body, async, name, "started");
    json_decref(body);
    return r;
}

static int vm_stop(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *timeout = NULL;
    bool force = false, async = false;
    const CliOption opts[] = {
        { "--force", NULL, &force },
        { "--timeout", &timeout, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;

    uint64_t t = 0;
    if (timeout && !cli_parse_uint("--timeout", timeout, 0, INT32_MAX, &t))
        return CLI_EXIT_USAGE;
    json_t *body = json_object();
    if (force)
        json_object_set_new(body, "force", json_true());
    if (timeout)
        json_object_set_new(body, "timeout_s", json_integer((json_int_t)t));
    _cleanup_free_ char *path = api_path("vms", name, "/stop");
    int r = run_action("POST", path, body, async, name, "stopped");
    json_decref(body);
    return r;
}

static int vm_delete(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    bool force = false, keep_disks = false, async = false;
    const CliOption opts[] = {
        { "--force", NULL, &force },
        { "--keep-disks", NULL, &keep_disks },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    const char *query = force && keep_disks ? "?force=true&keep_disks=true"
                        : force             ? "?force=true"
                        : keep_disks        ? "?keep_disks=true"
                                            : NULL;
    _cleanup_free_ char *path = api_path("vms", name, query);
    return run_action("DELETE", path, NULL, async, name,
                      keep_disks ? "deleted (its disks are kept)" : "deleted");
}

static char *vm_memory_str(const json_t *vm)
{
    json_t *m = json_object_get(vm, "memory_mib");
    return json_is_integer(m) && json_integer_value(m) >= 0
               ? fmt_mib((uint64_t)json_integer_value(m))
               : NULL;
}

/* "2 (max 4; 2 plugged now)": the definition's count, its hot-plug maximum
 * and, while the VM runs, what QEMU has. */
static char *vm_vcpus_detail(const json_t *vm)
{
    json_t *n = json_object_get(vm, "vcpus"), *max = json_object_get(vm, "max_vcpus");
    json_t *plugged = json_object_get(vm, "vcpus_plugged");
    if (!json_is_integer(n))
        return NULL;
    _cleanup_free_ char *max_part = json_is_integer(max) && json_integer_value(max) != json_integer_value(n)
        ? vo_asprintf("max %lld", (long long)json_integer_value(max)) : NULL;
    _cleanup_free_ char *now_part = json_is_integer(plugged) && json_integer_value(plugged) != json_integer_value(n)
        ? vo_asprintf("%lld plugged now", (long long)json_integer_value(plugged)) : NULL;
    return vo_asprintf("%lld%s%s%s%s%s", (long long)json_integer_value(n),
                       max_part || now_part ? " (" : "", max_part ? max_part : "",
                       max_part && now_part ? "; " : "", now_part ? now_part : "",
                       max_part || now_part ? ")" : "");
}

/* "256 MiB (max 1 GiB; guest has 192 MiB)", like vm_vcpus_detail. */
static char *vm_memory_detail(const json_t *vm)
{
    json_t *m = json_object_get(vm, "memory_mib"), *max = json_object_get(vm, "max_memory_mib");
    json_t *actual = json_object_get(vm, "memory_actual_mib");
    if (!json_is_integer(m) || json_integer_value(m) < 0)
        return NULL;
    _cleanup_free_ char *mem = fmt_mib((uint64_t)json_integer_value(m));
    _cleanup_free_ char *max_str = json_is_integer(max) && json_integer_value(max) > json_integer_value(m)
        ? fmt_mib((uint64_t)json_integer_value(max)) : NULL;
    _cleanup_free_ char *actual_str = json_is_integer(actual) && json_integer_value(actual) >= 0 &&
        json_integer_value(actual) != json_integer_value(m)
        ? fmt_mib((uint64_t)json_integer_value(actual)) : NULL;
    return vo_asprintf("%s%s%s%s%s%s%s%s", mem, max_str || actual_str ? " (" : "",
                       max_str ? "max " : "", max_str ? max_str : "",
                       max_str && actual_str ? "; " : "", actual_str ? "guest has " : "",
                       actual_str ? actual_str : "", max_str || actual_str ? ")" : "");
}

static char *vm_uptime_str(const json_t *vm)
{
    json_t *u = json_object_get(vm, "uptime_s");
    return json_is_integer(u) ? fmt_duration(json_integer_value(u)) : NULL;
}

/* "MAC on NETWORK, IP ADDR (tap TAP)", the address and tap when known. */
static char *nic_str(const json_t *nic)
{
    const char *ip = jstr(nic, "ip"), *tap = jstr(nic, "tap");
    return vo_asprintf("%s on %s%s%s%s%s%s", jstr(nic, "mac") ? jstr(nic, "mac") : "?",
                       jstr(nic, "network") ? jstr(nic, "network") : "?", ip ? ", IP " : "",
                       ip ? ip : "", tap ? " (tap " : "", tap ? tap : "", tap ? ")" : "");
}

static void print_list_field(const char *key, const json_t *items, bool disks)
{
    size_t i;
    json_t *item;
    if (json_array_size(items) == 0) {
        out_kv(stdout, key, "none");
        return;
    }
    json_array_foreach(items, i, item) {
        _cleanup_free_ char *line = NULL;
        if (disks)
            line = vo_asprintf("%s (%s%s)", jstr(item, "path") ? jstr(item, "path") : "?",
                               jstr(item, "format") ? jstr(item, "format") : "?",
                               json_is_true(json_object_get(item, "readonly")) ? ", read-only" : "");
        else
            line = nic_str(item);
        out_kv(stdout, i == 0 ? key : "", line);
    }
}

static int vm_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path("vms", name, NULL);
    json_t *vm = NULL;
    if (api_call("GET", path, NULL, &vm) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, vm);
        json_decref(vm);
        return CLI_EXIT_OK;
    }

    const char *accel = jstr(vm, "accel"), *active = jstr(vm, "accel_active");
    _cleanup_free_ char *accel_str =
        active ? vo_asprintf("%s (active: %s)", accel ? accel : "?", active) : NULL;
    _cleanup_free_ char *pid = jint_str(vm, "pid");
    _cleanup_free_ char *qemu_uid = jint_str(vm, "qemu_uid");
    _cleanup_free_ char *uptime = vm_uptime_str(vm);
    _cleanup_free_ char *vcpus = vm_vcpus_detail(vm);
    _cleanup_free_ char *memory = vm_memory_detail(vm);
    json_t *autostart = json_object_get(vm, "autostart");
    /* A paused VM says why: "paused (io-error)". */
    const char *reason = jstr(vm, "state_reason");
    _cleanup_free_ char *state =
        reason ? vo_asprintf("%s (%s)", jstr(vm, "state") ? jstr(vm, "state") : "?", reason) : NULL;
    _cleanup_free_ char *resets = jint_str(vm, "resets");
    _cleanup_free_ char *resets_str =
        resets ? vo_asprintf("%s (last at %s)", resets, jstr(vm, "last_reset_at") ?: "?") : NULL;

    out_kv(stdout, "name:", jstr(vm, "name"));
    out_kv(stdout, "id:", jstr(vm, "id"));
    out_kv(stdout, "state:", state ? state : jstr(vm, "state"));
    out_kv(stdout, "image:", jstr(vm, "image"));
    out_kv(stdout, "group:", jstr(vm, "group"));
    out_kv(stdout, "accel:", accel_str ? accel_str : accel);
    out_kv(stdout, "pid:", pid);
    out_kv(stdout, "qemu uid:", qemu_uid);
    out_kv(stdout, "uptime:", uptime);
    out_kv(stdout, "resets:", resets_str);
    out_kv(stdout, "vcpus:", vcpus);
    out_kv(stdout, "memory:", memory);
    print_list_field("disks:", json_object_get(vm, "disks"), true);
    print_list_field("nics:", json_object_get(vm, "nics"), false);
    json_t *cdrom = json_object_get(vm, "cdrom");
    if (cdrom) /* a CD-ROM drive: its ISO volume, or empty */
        out_kv(stdout, "cdrom:", jstr(cdrom, "volume") ? jstr(cdrom, "volume") : "(empty)");
    const char *firmware = jstr(vm, "firmware") ? jstr(vm, "firmware") : "bios";
    _cleanup_free_ char *fw = vo_asprintf("%s%s%s%s", firmware,
                                          json_is_true(json_object_get(vm, "secure_boot"))
                                              ? " (secure boot)" : "",
                                          jstr(vm, "nvram") ? ", NVRAM " : "",
                                          jstr(vm, "nvram") ? jstr(vm, "nvram") : "");
    out_kv(stdout, "firmware:", fw);
    out_kv(stdout, "display:", jstr(vm, "display") ? jstr(vm, "display") : "none");
    json_t *boot = json_object_get(vm, "boot");
    if (json_is_array(boot)) {
        _cleanup_free_ char *order = NULL;
        size_t i;
        json_t *w;
        json_array_foreach(boot, i, w) {
            char *next = vo_asprintf("%s%s%s", order ? order : "", order ? "," : "",
                                     json_string_value(w) ? json_string_value(w) : "?");
            free(order);
            order = next;
        }
        out_kv(stdout, "boot:", order);
    }
    out_kv(stdout, "autostart:", json_is_boolean(autostart) ? (json_is_true(autostart) ? "yes" : "no")
                                                            : NULL);
    if (json_is_true(json_object_get(vm, "ha"))) {
        _cleanup_free_ char *prio = jint_str(vm, "ha_priority");
        _cleanup_free_ char *ha = vo_asprintf("on (priority %s%s%s)", prio ? prio : "0",
                                              jstr(vm, "ha_group") ? ", group " : "",
                                              jstr(vm, "ha_group") ?: "");
        out_kv(stdout, "ha:", ha);
    } else
        out_kv(stdout, "ha:", "off");
    out_kv(stdout, "ha state:", jstr(vm, "ha_state"));
    out_kv(stdout, "san state:", jstr(vm, "san_state")); /* a lost iSCSI target */
    json_t *restarts = json_object_get(vm, "ha_restarts");
    if (json_array_size(restarts)) {
        /* Those of the last week before the last one (docs/ha.md): not
         * only those the limit in force counts. */
        _cleanup_free_ char *text = vo_asprintf(
            "%zu (first %s, last %s)", json_array_size(restarts),
            json_string_value(json_array_get(restarts, 0)) ?: "?",
            json_string_value(json_array_get(restarts, json_array_size(restarts) - 1)) ?: "?");
        out_kv(stdout, "ha restarts:", text);
    }
    out_kv(stdout, "created:", jstr(vm, "created_at"));
    out_kv(stdout, "exit reason:", jstr(vm, "exit_reason"));
    if (jstr(vm, "problem")) /* an old definition naming unknown host paths */
        out_kv(stdout, "problem:", jstr(vm, "problem"));
    json_t *mig = json_object_get(vm, "migration");
    if (json_is_object(mig)) { /* a live migration under way */
        _cleanup_free_ char *m = vo_asprintf("to host %s (task %s)", jstr(mig, "to") ?: "?",
                                             jstr(mig, "task") ?: "?");
        out_kv(stdout, "migrating:", m);
    }
    cli_vm_print_guest(vm);
    json_decref(vm);
    return CLI_EXIT_OK;
}

static int vm_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    /* Both forms list the summary of each VM (the table's fields plus id, pid
     * and autostart), as `vireo vm show NAME` gives one VM in full: a list of
     * thousands of full documents is ~20x the bytes and the time. */
    const char *host = NULL, *project = NULL;
    const CliOption opts[] = { { "--host", &host, NULL }, { "--project", &project, NULL },
                               { NULL, NULL, NULL } };
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    _cleanup_free_ char *escaped = host ? api_escape(host) : NULL;
    _cleanup_free_ char *escaped_project = project ? api_escape(project) : NULL;
    _cleanup_free_ char *path = vo_asprintf("/v1/vms?view=summary%s%s%s%s",
                                            host ? "&host=" : "", host ? escaped : "",
                                            project ? "&project=" : "",
                                            project ? escaped_project : "");
    if (!api_read_path(path, &doc, &exit_status))
        return exit_status;
    /* HOST: the host that has the VM (in a cluster, any host lists them all). */
    static const char *const headers[] = { "NAME", "HOST", "STATE", "VCPUS", "MEMORY", "ACCEL",
                                           "UPTIME" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *vm;
    json_array_foreach(json_object_get(doc, "vms"), i, vm) {
        _cleanup_free_ char *vcpus = jint_str(vm, "vcpus");
        _cleanup_free_ char *memory = vm_memory_str(vm);
        _cleanup_free_ char *uptime = vm_uptime_str(vm);
        const char *accel = jstr(vm, "accel_active") ? jstr(vm, "accel_active") : jstr(vm, "accel");
        /* A VM of an offline host: its last known state, marked so; one
         * whose post-copy recovery failed: the host keeping its source
         * (`vireo vm migrate NAME --resume` retries it). */
        const char *host_state = jstr(vm, "host_state");
        const char *state_now = jstr(vm, "state") ? jstr(vm, "state") : "?";
        const char *paused_at = jstr(json_object_get(vm, "post_copy_paused"), "source_host");
        _cleanup_free_ char *state =
            host_state && strcmp(host_state, "online")
                ? vo_asprintf("%s (host %s)", state_now, host_state)
            : paused_at ? vo_asprintf("%s (post-copy, source kept on %s)", state_now, paused_at)
                        : vo_strdup(jstr(vm, "state"));
        const char *cells[] = { jstr(vm, "name"), jstr(vm, "host"), state, vcpus, memory, accel,
                                uptime };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

/* --cpu-limit CORES (a decimal, 0 for none) into body as cpu_limit; the
 * API checks its range. */
static bool add_cpu_limit(json_t *body, const char *text)
{
    char *end = NULL;
    double cores = strtod(text, &end);
    if (end == text || *end || !(cores >= 0 && cores <= 1e6)) {
        cli_error("--cpu-limit: '%s' is not a number of cores (e.g. 1.5; 0: no limit)", text);
        return false;
    }
    json_object_set_new(body, "cpu_limit", json_real(cores));
    return true;
}

static int vm_edit(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *new_name = NULL, *vcpus = NULL, *memory = NULL;
    const char *max_vcpus = NULL, *max_memory = NULL;
    const char *ha = NULL, *ha_priority = NULL, *ha_group = NULL, *firmware = NULL;
    const char *secure_boot = NULL, *display = NULL, *project = NULL;
    const char *cpu_weight = NULL, *cpu_limit = NULL, *boot = NULL;
    bool autostart = false, no_autostart = false, async = false;
    const CliOption opts[] = {
        { "--name", &new_name, NULL },
        { "--boot", &boot, NULL },
        { "--project", &project, NULL },
        { "--cpu-weight", &cpu_weight, NULL },
        { "--cpu-limit", &cpu_limit, NULL },
        { "--display", &display, NULL },
        { "--firmware", &firmware, NULL },
        { "--secure-boot", &secure_boot, NULL },
        { "--ha", &ha, NULL },
        { "--ha-priority", &ha_priority, NULL },
        { "--ha-group", &ha_group, NULL },
        { "--vcpus", &vcpus, NULL },
        { "--memory", &memory, NULL },
        { "--max-vcpus", &max_vcpus, NULL },
        { "--max-memory", &max_memory, NULL },
        { "--async", NULL, &async },
        { "--autostart", NULL, &autostart },
        { "--no-autostart", NULL, &no_autostart },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (autostart && no_autostart)
        return cli_usage_error("vm edit", "--autostart and --no-autostart contradict each other");
    if (!new_name && !vcpus && !memory && !max_vcpus && !max_memory && !autostart &&
        !no_autostart && !ha && !ha_priority && !ha_group && !firmware && !secure_boot &&
        !display && !project && !cpu_weight && !cpu_limit && !boot)
        return cli_usage_error(strcmp(cmd->verb, "set") ? "vm edit" : "vm set", "nothing to change: give --name, --vcpus, --memory, "
                                          "--max-vcpus, --max-memory, --autostart, "
                                          "--no-autostart, --ha, --ha-priority, --ha-group, "
                                          "--firmware, --secure-boot, --display, --project, "
                                          "--cpu-weight, --cpu-limit or --boot");
    if (secure_boot && strcmp(secure_boot, "on") && strcmp(secure_boot, "off")) {
        cli_error("--secure-boot: '%s' is not on or off", secure_boot);
        return CLI_EXIT_USAGE;
    }
    if (ha && strcmp(ha, "on") && strcmp(ha, "off")) {
        cli_error("--ha: '%s' is not on or off", ha);
        return CLI_EXIT_USAGE;
    }
    if (new_name && !new_name[0]) {
        cli_error("--name: must not be empty");
        return CLI_EXIT_USAGE;
    }

    json_t *body = json_object();
    uint64_t v;
    bool ok = true;
    if (new_name)
        json_object_set_new(body, "name", json_string(new_name));
    if (ok && vcpus && (ok = cli_parse_uint("--vcpus", vcpus, 1, INT32_MAX, &v)))
        json_object_set_new(body, "vcpus", json_integer((json_int_t)v));
    if (ok && memory && (ok = cli_parse_mib("--memory", memory, &v)))
        json_object_set_new(body, "memory_mib", json_integer((json_int_t)v));
    if (ok && (max_vcpus || max_memory))
        ok = add_max_options(body, max_vcpus, max_memory);
    if (autostart || no_autostart)
        json_object_set_new(body, "autostart", json_boolean(autostart));
    if (ha)
        json_object_set_new(body, "ha", json_boolean(!strcmp(ha, "on")));
    if (ok && ha_priority)
        ok = add_ha_priority(body, ha_priority);
    if (ha_group) /* "" takes the VM out of its HA group */
        json_object_set_new(body, "ha_group", json_string(ha_group));
    if (ok && cpu_weight && (ok = cli_parse_uint("--cpu-weight", cpu_weight, 0, 10000, &v)))
        json_object_set_new(body, "cpu_weight", json_integer((json_int_t)v));
    if (ok && cpu_limit)
        ok = add_cpu_limit(body, cpu_limit);
    if (firmware)
        json_object_set_new(body, "firmware", json_string(firmware));
    if (secure_boot)
        json_object_set_new(body, "secure_boot", json_boolean(!strcmp(secure_boot, "on")));
    if (display)
        json_object_set_new(body, "display", json_string(display));
    if (project)
        json_object_set_new(body, "project", json_string(project));
    if (boot) /* "default": the default order (disk, then the CD-ROM) */
        json_object_set_new(body, "boot", strcmp(boot, "default") ? boot_order_json(boot)
                                                                   : json_null());
    if (!ok) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }

    _cleanup_free_ char *path = api_path("vms", name, NULL);
    json_t *vm = NULL;
    int r = api_call("PATCH", path, body, &vm);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    /* A running VM's vCPUs and memory change in a task (hot-plug). */
    if (json_object_get(vm, "task")) {
        _cleanup_free_ char *what = vo_asprintf("PATCH %s", path);
        int status = run_task(vm, what, async, name, "updated");
        json_decref(vm);
        return status;
    }
    if (cli_globals.json)
        out_json(stdout, vm);
    else if (new_name && strcmp(new_name, name) != 0)
        printf("%s: updated (now named %s)\n", name, new_name);
    else if (boot && strcmp(jstr(vm, "state") ?: "", "stopped"))
        printf("%s: updated (the boot order takes effect at its next start)\n", name);
    else
        printf("%s: updated\n", name);
    json_decref(vm);
    return CLI_EXIT_OK;
}

static int vm_template(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    json_t *body = json_pack("{s:s}", "image", args[1]);
    _cleanup_free_ char *path = api_path("vms", args[0], "/template");
    _cleanup_free_ char *done = vo_asprintf("saved as image %s", args[1]);
    int r = run_action("POST", path, body, async, args[0], done);
    json_decref(body);
    return r;
}

static int vm_clone(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL };
    const char *pool = NULL;
    bool async = false, full = false, linked = false;
    const CliOption opts[] = { { "--full", NULL, &full },
                               { "--linked", NULL, &linked },
                               { "--pool", &pool, NULL },
                               { "--async", NULL, &async },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    if (full && linked)
        return cli_usage_error("vm clone", "--full and --linked exclude each other");
    /* --full says what is done by default */
    json_t *body = json_pack("{s:s, s:b}", "name", args[1], "full", !linked);
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    _cleanup_free_ char *path = api_path("vms", args[0], "/clone");
    _cleanup_free_ char *done = vo_asprintf("cloned as VM %s", args[1]);
    int r = run_action("POST", path, body, async, args[0], done);
    json_decref(body);
    return r;
}

/* POST path with body (taken) for a task on the VM name: with --async,
 * --json or no task in the answer, run_task says it (done: its word) and
 * *ret_followed is false; else the task is followed to its end, its last
 * state in *ret_final (to decref) for the caller to say. The exit status. */
static int post_task(const char *path, json_t *body, bool async, const char *name,
                     const char *done, bool *ret_followed, json_t **ret_final)
{
    *ret_followed = false;
    *ret_final = NULL;
    json_t *doc = NULL;
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    json_t *task = json_object_get(doc, "task");
    int status;
    if (async || cli_globals.json || !json_is_object(task)) {
        _cleanup_free_ char *what = vo_asprintf("POST %s", path);
        status = run_task(doc, what, async, name, done);
    } else {
        *ret_followed = true;
        status = task_outcome(task, name, ret_final);
    }
    json_decref(doc);
    return status;
}

/* vm migrate --resume: POST /v1/vms/NAME/migrate {"resume": true}: the
 * recovery of the VM's paused post-copy retried where its source QEMU is
 * kept, the task followed (without --async). */
static int vm_migrate_resume(const char *name, bool async, bool other_options)
{
    if (other_options) {
        cli_error("--resume takes no other option but --async: it retries the recovery "
                  "of the migration under way");
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *path = api_path("vms", name, "/migrate");
    json_t *final = NULL;
    bool followed = false;
    int status = post_task(path, json_pack("{s:b}", "resume", true), async, name,
                           "post-copy recovered", &followed, &final);
    if (followed && status == CLI_EXIT_OK)
        printf("%s: post-copy recovered: the rest of memory reached its host\n", name);
    json_decref(final);
    return status;
}

/* vm migrate: POST /v1/vms/NAME/migrate, then (without --async) the task
 * followed to its end and its result said in one line. */
static int vm_migrate(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *to = NULL, *downtime = NULL, *bandwidth = NULL, *pool = NULL;
    const char *converge = NULL;
    bool verify = false, async = false, force = false, post_copy = false, resume = false;
    const CliOption opts[] = {
        { "--to", &to, NULL },
        { "--resume", NULL, &resume },
        { "--pool", &pool, NULL },
        { "--max-downtime", &downtime, NULL },
        { "--bandwidth", &bandwidth, NULL },
        { "--converge-timeout", &converge, NULL },
        { "--force-converge", NULL, &force },
        { "--post-copy", NULL, &post_copy },
        { "--verify-memory", NULL, &verify },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (resume)
        return vm_migrate_resume(name, async, to || pool || downtime || bandwidth || converge ||
                                              force || verify || post_copy);
    json_t *body = json_object();
    uint64_t v;
    bool ok = true;
    if (to)
        json_object_set_new(body, "to", json_string(to));
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    if (downtime && (ok = cli_parse_uint("--max-downtime", downtime, 1, 60000, &v)))
        json_object_set_new(body, "max_downtime_ms", json_integer((json_int_t)v));
    if (ok && bandwidth) {
        /* "100M/s" or "100M": bytes per second. */
        _cleanup_free_ char *b = vo_strdup(bandwidth);
        size_t n = strlen(b);
        if (n > 2 && !strcmp(b + n - 2, "/s"))
            b[n - 2] = 0;
        if ((ok = cli_parse_bytes("--bandwidth", b, &v)))
            json_object_set_new(body, "bandwidth", json_integer((json_int_t)v));
    }
    if (ok && converge &&
        (ok = cli_parse_uint("--converge-timeout", converge, 1, 86400, &v)))
        json_object_set_new(body, "converge_timeout_s", json_integer((json_int_t)v));
    if (force)
        json_object_set_new(body, "force_converge", json_true());
    if (verify)
        json_object_set_new(body, "verify_memory", json_true());
    if (post_copy)
        json_object_set_new(body, "post_copy", json_true());
    if (!ok) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }
    _cleanup_free_ char *path = api_path("vms", name, "/migrate");
    json_t *final = NULL;
    bool followed = false;
    int status = post_task(path, body, async, name, "migrated", &followed, &final);
    if (!followed)
        return status;
    json_t *res = json_object_get(final, "result");
    if (status == CLI_EXIT_OK && res) {
        printf("%s: migrated to %s in %lld ms (downtime %lld ms, %.1f MiB sent%s)\n", name,
               json_string_value(json_object_get(res, "to")) ?: "?",
               (long long)json_integer_value(json_object_get(res, "total_time_ms")),
               (long long)json_integer_value(json_object_get(res, "downtime_ms")),
               (double)json_integer_value(json_object_get(res, "bytes")) / (1 << 20),
               json_is_true(json_object_get(res, "memory_verified"))
                   ? ", guest memory verified identical" : "");
        json_t *fc = json_object_get(res, "force_converge");
        if (json_is_object(fc))
            printf("%s: vCPUs throttled up to %lld%% to converge (--force-converge)\n", name,
                   (long long)json_integer_value(json_object_get(fc, "max_throttle_percent")));
        json_t *pc = json_object_get(res, "post_copy");
        if (json_is_true(json_object_get(pc, "ran")))
            printf("%s: post-copy: the rest of memory followed in %lld ms after it ran on "
                   "the new host\n", name,
                   (long long)json_integer_value(json_object_get(pc, "after_switch_ms")));
        else if (json_is_object(pc))
            printf("%s: post-copy not needed: the memory copy converged first\n", name);
    } else if (status == CLI_EXIT_OK) {
        printf("%s: migrated\n", name);
    }
    json_decref(final);
    return status;
}

/* vm move: POST /v1/vms/NAME/move, then (without --async) the task
 * followed to its end and its result said in one line. */
static int vm_move(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *to = NULL, *pool = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--to", &to, NULL },
        { "--pool", &pool, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    json_t *body = json_object();
    if (to)
        json_object_set_new(body, "to", json_string(to));
    if (pool)
        json_object_set_new(body, "pool", json_string(pool));
    _cleanup_free_ char *path = api_path("vms", name, "/move");
    json_t *final = NULL;
    bool followed = false;
    int status = post_task(path, body, async, name, "moved", &followed, &final);
    if (!followed)
        return status;
    json_t *res = json_object_get(final, "result");
    if (status == CLI_EXIT_OK && res)
        printf("%s: moved to %s in %lld ms (%.1f MiB of disks copied)\n", name,
               json_string_value(json_object_get(res, "to")) ?: "?",
               (long long)json_integer_value(json_object_get(res, "total_time_ms")),
               (double)json_integer_value(json_object_get(res, "bytes")) / (1 << 20));
    else if (status == CLI_EXIT_OK)
        printf("%s: moved\n", name);
    json_decref(final);
    return status;
}

static const char *const format_choices[] = { "qcow2", "raw", NULL };

/* After `vm disk add` or `vm nic add`: the last of the VM's disks or NICs
 * (what: "disks", "nics"), which is the new one unless someone else added one
 * meanwhile. NULL when it cannot be had (nothing is printed); else the
 * caller releases *ret_doc, which holds it. */
static json_t *added_item(const char *vm, const char *what, json_t **ret_doc)
{
    _cleanup_free_ char *suffix = vo_asprintf("/%s", what);
    _cleanup_free_ char *path = api_path("vms", vm, suffix);
    json_t *doc = NULL;
    HttpReply reply;
    if (http_request("GET", path, NULL, &reply) == 0 && reply.status == 200 && reply.len > 0)
        doc = json_loadb(reply.body, reply.len, 0, NULL);
    http_reply_done(&reply);
    json_t *items = json_object_get(doc, what);
    *ret_doc = doc;
    return json_array_get(items, json_array_size(items) - 1);
}

static void print_added_disk(const char *vm)
{
    json_t *doc = NULL;
    json_t *last = added_item(vm, "disks", &doc);
    _cleanup_free_ char *index = jint_str(last, "index");
    if (index && jstr(last, "volume"))
        printf("%s: disk %s added (%s)\n", vm, index, jstr(last, "volume"));
    else
        printf("%s: disk added\n", vm);
    json_decref(doc);
}

static int vm_disk_add(const CliCommand *cmd, int argc, char **argv)
{
    const char *args[2] = { NULL }, *size = NULL, *pool = NULL, *format = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--size", &size, NULL },
        { "--pool", &pool, NULL },
        { "--format", &format, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    const char *vm = args[0], *ref = args[1];
    if (ref && size)
        return cli_usage_error("vm disk add", "give POOL/NAME or --size, not both");
    if (!ref && !size)
        return cli_usage_error("vm disk add",
                               "'vm disk add' needs POOL/NAME (an existing volume) or --size SIZE "
                               "(a new one)");
    if (!size && (pool || format))
        return cli_usage_error("vm disk add", "--pool and --format go with --size (a new volume)");

    json_t *body;
    if (ref) {
        _cleanup_free_ char *p = NULL, *n = NULL;
        if (!cli_parse_volume_ref("POOL/NAME", ref, &p, &n))
            return CLI_EXIT_USAGE;
        body = json_pack("{s:s}", "volume", ref);
    } else {
        uint64_t bytes;
        if (!cli_parse_bytes("--size", size, &bytes) ||
            (format && !cli_parse_choice("--format", format, format_choices)))
            return CLI_EXIT_USAGE;
        if (pool && !pool[0]) {
            cli_error("--pool: must not be empty");
            return CLI_EXIT_USAGE;
        }
        body = json_pack("{s:I}", "size_bytes", (json_int_t)bytes);
        if (pool)
            json_object_set_new(body, "pool", json_string(pool));
        if (format)
            json_object_set_new(body, "format", json_string(format));
    }
    _cleanup_free_ char *path = api_path("vms", vm, "/disks");
    int r = run_action("POST", path, body, async, vm, NULL);
    json_decref(body);
    if (r == CLI_EXIT_OK && !async && !cli_globals.json)
        print_added_disk(vm);
    return r;
}

/* `vm cdrom insert VM POOL/NAME` and `vm cdrom eject VM`: POST
 * /v1/vms/VM/cdrom as a task. */
static int vm_cdrom(const CliCommand *cmd, int argc, char **argv)
{
    bool insert = !strcmp(cmd->verb, "cdrom insert");
    const char *args[2] = { NULL };
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, insert ? 2 : 1, &exit_status))
        return exit_status;
    json_t *body = json_pack("{s:o}", "volume", insert ? json_string(args[1]) : json_null());
    if (insert) {
        _cleanup_free_ char *p = NULL, *n = NULL;
        if (!cli_parse_volume_ref("POOL/NAME", args[1], &p, &n)) {
            json_decref(body);
            return CLI_EXIT_USAGE;
        }
    }
    _cleanup_free_ char *path = api_path("vms", args[0], "/cdrom");
    _cleanup_free_ char *done = insert ? vo_asprintf("%s inserted", args[1])
                                       : vo_strdup("CD ejected");
    int r = run_action("POST", path, body, async, args[0], done);
    json_decref(body);
    return r;
}

/* `vm disk remove VM INDEX` and `vm nic remove VM INDEX`: DELETE
 * /v1/vms/VM/WHAT/INDEX as a task; done_fmt says what happened (%s = index). */
static int remove_indexed(const CliCommand *cmd, int argc, char **argv, const char *what,
                          const char *done_fmt)
{
    const char *args[2] = { NULL };
    bool async = false;
    const CliOption opts[] = { { "--async", NULL, &async }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_n(cmd, argc, argv, opts, args, 2, &exit_status))
        return exit_status;
    uint64_t index;
    if (!cli_parse_uint("INDEX", args[1], 0, INT32_MAX, &index))
        return CLI_EXIT_USAGE;
    _cleanup_free_ char *suffix = vo_asprintf("/%s/%" PRIu64, what, index);
    _cleanup_free_ char *path = api_path("vms", args[0], suffix);
    _cleanup_free_ char *number = vo_asprintf("%" PRIu64, index);
    _cleanup_free_ char *done = vo_asprintf(done_fmt, number);
    return run_action("DELETE", path, NULL, async, args[0], done);
}

static int vm_disk_remove(const CliCommand *cmd, int argc, char **argv)
{
    return remove_indexed(cmd, argc, argv, "disks", "disk %s removed (its volume is kept)");
}

static int vm_disk_list(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL;
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_vm_part(cmd, argc, argv, "disks", &vm, &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "INDEX", "VOLUME", "FORMAT", "BUS", "BOOT", "PATH" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *disk;
    json_array_foreach(json_object_get(doc, "disks"), i, disk) {
        _cleanup_free_ char *index = jint_str(disk, "index");
        if (!index)
            index = vo_asprintf("%zu", i);
        json_t *boot = json_object_get(disk, "boot");
        _cleanup_free_ char *format =
            json_is_true(json_object_get(disk, "readonly")) && jstr(disk, "format")
                ? vo_asprintf("%s, read-only", jstr(disk, "format"))
                : NULL;
        const char *cells[] = { index,
                                jstr(disk, "volume"),
                                format ? format : jstr(disk, "format"),
                                jstr(disk, "bus"),
                                json_is_boolean(boot) ? (json_is_true(boot) ? "yes" : "no") : NULL,
                                jstr(disk, "path") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static void print_added_nic(const char *vm)
{
    json_t *doc = NULL;
    json_t *last = added_item(vm, "nics", &doc);
    _cleanup_free_ char *index = jint_str(last, "index");
    if (index && jstr(last, "mac") && jstr(last, "network"))
        printf("%s: NIC %s added (%s on %s)\n", vm, index, jstr(last, "mac"),
               jstr(last, "network"));
    else
        printf("%s: NIC added\n", vm);
    json_decref(doc);
}

static int vm_nic_add(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL, *network = NULL, *mac = NULL;
    bool async = false;
    const CliOption opts[] = {
        { "--network", &network, NULL },
        { "--mac", &mac, NULL },
        { "--async", NULL, &async },
        { NULL, NULL, NULL },
    };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &vm, &exit_status))
        return exit_status;
    if (!network)
        return cli_usage_error("vm nic add", "'vm nic add' needs --network NET");

    json_t *body = json_pack("{s:s}", "network", network);
    if (mac)
        json_object_set_new(body, "mac", json_string(mac));
    _cleanup_free_ char *path = api_path("vms", vm, "/nics");
    int r = run_action("POST", path, body, async, vm, NULL);
    json_decref(body);
    if (r == CLI_EXIT_OK && !async && !cli_globals.json)
        print_added_nic(vm);
    return r;
}

static int vm_nic_remove(const CliCommand *cmd, int argc, char **argv)
{
    return remove_indexed(cmd, argc, argv, "nics", "NIC %s removed");
}

static int vm_nic_list(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL;
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_vm_part(cmd, argc, argv, "nics", &vm, &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "INDEX", "NETWORK", "MAC", "IP", "TAP" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *nic;
    json_array_foreach(json_object_get(doc, "nics"), i, nic) {
        _cleanup_free_ char *index = jint_str(nic, "index");
        if (!index)
            index = vo_asprintf("%zu", i);
        const char *cells[] = { index, jstr(nic, "network"), jstr(nic, "mac"), jstr(nic, "ip"),
                                jstr(nic, "tap") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

#define ASYNC_HELP "  --async               print the task id and return without waiting\n"

static const CliCommand vm_commands[] = {
    { "vm", "create", "NAME",
      "[--image IMG] [--vcpus N] [--memory SIZE] [--max-vcpus N] [--max-memory SIZE] "
      "[--disk-size SIZE] [--accel auto|kvm|tcg] "
      "[--network NET]... [--mac MAC|auto]... [--autostart] [--full-clone] "
      "[--pool POOL | --disk POOL/NAME] "
      "[--group NAME] [--host HOST] [--project NAME] "
      "[--blank] [--cdrom POOL/ISO|none] [--boot cdrom,disk,network] "
      "[--firmware bios|uefi [--secure-boot]] [--display vga|virtio|none] "
      "[--ha [--ha-priority N] [--ha-group NAME]] "
      "[--ci-user NAME] [--ci-password-hash HASH|--ci-password-file FILE|--ci-ask-password] "
      "[--ci-ssh-key FILE] [--ci-hostname H] "
      "[--ci-user-data FILE] [--ci-network dhcp|static:IP/PREFIX,gw=GW[,dns=IP]] [--async]",
      "Create a VM (it is defined, not started).",
      "Options:\n"
      "  --image IMG           image to boot (default: default)\n"
      "  --vcpus N             virtual CPUs (default: 1)\n"
      "  --memory SIZE         memory; a bare number is MiB, or use K/M/G/T (default: 512M)\n"
      "  --max-vcpus N         vCPUs the VM may reach while it runs (vCPU hot-plug;\n"
      "                        default: --vcpus, i.e. none)\n"
      "  --max-memory SIZE     memory the VM may reach while it runs (memory hot-plug;\n"
      "                        default: --memory, i.e. none)\n"
      "  --disk-size SIZE      size of the VM's disk; a bare number is bytes, so use\n"
      "                        K/M/G/T (default: chosen by vireod)\n"
      "  --accel auto|kvm|tcg  accelerator (default: auto: KVM when usable, else TCG)\n"
      "  --network NET         give the VM a NIC on network NET; repeat for more NICs,\n"
      "                        in order; 'user' is QEMU's user-mode networking\n"
      "                        (default: one NIC on network default, or on 'user'\n"
      "                        when vireod has no network default)\n"
      "  --mac MAC|auto        the MAC of a NIC; repeat for more, in the order of\n"
      "                        --network ('auto': a new one). A MAC given must be\n"
      "                        unicast and on no other VM of the cluster (default:\n"
      "                        new MACs in 52:54:00, unique in the cluster)\n"
      "  --autostart           start the VM whenever vireod starts\n"
      "  --full-clone          give the VM a full copy of the image's disk (default: a\n"
      "                        linked clone, which holds only the VM's changes; in an\n"
      "                        rbd pool an RBD clone of the image's base)\n"
      "  --pool POOL           make the VM's disk in pool POOL (default: default); a\n"
      "                        shared pool lets the VM live-migrate (vm migrate)\n"
      "  --disk POOL/NAME      boot from existing volume POOL/NAME as it is (e.g. an\n"
      "                        iSCSI LUN san1/lun1; the image gives the kernel); the VM\n"
      "                        does not own it (its delete keeps it); refused while\n"
      "                        another VM has it, unless it is shareable\n"
      "  --group NAME          put the VM in placement group NAME (vireo group create)\n"
      "  --project NAME        count the VM against project NAME's quotas (vireo project\n"
      "                        create; default: project default); refused when over one\n"
      "  --host HOST           create it on host HOST (a name or id; still checked: the\n"
      "                        reason is given when it does not fit there). Without it,\n"
      "                        a cluster's manager picks the host (vireo placement)\n"
      "  --blank               no image: an empty disk of --disk-size, no kernel; the\n"
      "                        VM boots its firmware (SeaBIOS), e.g. an installer CD\n"
      "  --cdrom POOL/ISO      a CD-ROM drive (SATA) with ISO volume POOL/ISO in it\n"
      "                        (vireo volume import POOL/ISO file.iso); none: an empty\n"
      "                        drive (vireo vm cdrom insert|eject change it)\n"
      "  --boot LIST           firmware boot order, comma-separated words of disk,\n"
      "                        cdrom, network (default: disk,cdrom)\n"
      "  --firmware bios|uefi  SeaBIOS or OVMF (UEFI) with the VM's own NVRAM volume\n"
      "                        (VM-nvram beside its disk, in its snapshots); default:\n"
      "                        the image's preference, else bios (docs/guests.md)\n"
      "  --secure-boot         UEFI secure boot with Microsoft's keys enrolled (q35, SMM)\n"
      "  --display vga|virtio|none\n"
      "                        a graphical console (VGA or virtio-vga, served over VNC\n"
      "                        on a Unix socket: vireo console --vnc, vm screenshot,\n"
      "                        vm send-keys); default: vga with --cdrom POOL/ISO (an\n"
      "                        ISO install), else none (the serial console only)\n"
      "  --ha                  highly available: when its host dies, the manager restarts\n"
      "                        it on another host (its disk, and a --cdrom ISO, must be\n"
      "                        in a shared pool: give --pool; docs/ha.md)\n"
      "  --ha-priority N       restart order among HA VMs, -1000..1000, higher first\n"
      "                        (default: 0)\n"
      "  --ha-group NAME       the placement group whose policy holds where it restarts\n"
      "cloud-init (any --ci-* option: vireod attaches a NoCloud seed, a CD-ROM\n"
      "labelled cidata; an image with \"cloud_init\": true gets one by default):\n"
      CLI_CLOUD_INIT_HELP
      ASYNC_HELP
      "\nExamples:\n  vireo vm create web1 --vcpus 2 --memory 1G --disk-size 10G\n"
      "  vireo vm create deb1 --image debian --ci-user me --ci-ssh-key ~/.ssh/id_ed25519.pub\n"
      "  vireo vm create inst --blank --disk-size 10G --cdrom default/debian-iso \\\n"
      "      --boot cdrom,disk\n"
      "  vireo vm create gw1 --network default --network lab\n"
      "  vireo vm create gw2 --network default --network lab --mac auto --mac 52:54:00:0a:00:02\n",
      vm_create },
    { "vm", "start", "NAME", "[--boot-once disk|cdrom|network] [--async]", "Start a VM.",
      "Options:\n"
      "  --boot-once DEV       the firmware boots DEV first, for this run only (until\n"
      "                        the VM stops; a guest reboot keeps it); e.g. cdrom to\n"
      "                        boot an installer or rescue CD once\n" ASYNC_HELP,
      vm_start },
    { "vm", "stop", "NAME", "[--force] [--timeout SECONDS] [--async]",
      "Stop a VM (guest power-off, then kill).",
      "The guest is asked to power off; QEMU is killed if it has not within the timeout.\n"
      "\nOptions:\n"
      "  --force               kill QEMU at once instead of asking the guest\n"
      "  --timeout SECONDS     how long the guest may take to power off (default: 30)\n" ASYNC_HELP,
      vm_stop },
    { "vm", "reboot", "NAME", "[--async]", "Reboot a running VM.", "Options:\n" ASYNC_HELP,
      vm_simple_action },
    { "vm", "pause", "NAME", "[--async]", "Pause a running VM's CPUs.", "Options:\n" ASYNC_HELP,
      vm_simple_action },
    { "vm", "resume", "NAME", "[--async]", "Resume a paused VM.", "Options:\n" ASYNC_HELP,
      vm_simple_action },
    { "vm", "delete", "NAME", "[--force] [--keep-disks] [--async]", "Delete a VM and its disks.",
      "Every volume attached to the VM is deleted with it (also one attached with\n"
      "'vm disk add VM POOL/NAME'), except shareable ones, unless --keep-disks.\n"
      "\nOptions:\n"
      "  --force               delete even while it runs (QEMU is killed)\n"
      "  --keep-disks          keep the VM's volumes in their pools\n" ASYNC_HELP,
      vm_delete },
    { "vm", "show", "NAME", NULL, "Show one VM (NAME may also be its id).", NULL, vm_show },
    { "vm", "top", NULL, "[--host HOST] [--once]",
      "Show the running VMs' load live, busiest first (like top).",
      "Every 2 s: CPU (100 = one CPU busy), resident memory of the VM's process and\n"
      "its configured memory, disk read/write and network bytes per second, from the\n"
      "monitoring history's latest point (docs/monitoring.md). q or Ctrl-C quits.\n"
      "\nOptions:\n"
      "  --host HOST           only the VMs of this host\n"
      "  --once                print one table and exit (with --output json: a document)\n",
      cli_vm_top },
    { "vm", "list", NULL, "[--host HOST] [--project NAME]",
      "List the VMs (in a cluster, every host's).",
      "HOST is the host that has the VM; a VM of an offline host shows its last known\n"
      "state, marked \"(host offline)\".\n"
      "\nOptions:\n"
      "  --host HOST           only the VMs of this host\n"
      "  --project NAME        only the VMs of this project\n", vm_list },
#define VM_EDIT_USAGE                                                                           \
    "[--name NEW] [--vcpus N] [--memory SIZE] [--max-vcpus N] [--max-memory SIZE] "             \
    "[--autostart|--no-autostart] [--ha on|off] [--ha-priority N] [--ha-group NAME] "            \
    "[--firmware bios|uefi] [--secure-boot on|off] [--display vga|virtio|none] "               \
    "[--project NAME] [--cpu-weight N] [--cpu-limit CORES] [--boot ORDER|default] [--async]"
#define VM_EDIT_HELP                                                                            \
    "On a running VM, --vcpus and --memory change at once, without a reboot (hot-plug),\n"       \
    "up to the maximums the VM was started with; lowering memory below what it booted\n"        \
    "with inflates the balloon. The new values are kept for the next start. Name and\n"         \
    "maximums change only while the VM is stopped; raising vcpus or memory of a\n"              \
    "stopped VM beyond its maximum raises the maximum too.\n"                                  \
    "\nOptions:\n"                                                                              \
    "  --name NEW            rename the VM\n"                                                   \
    "  --project NAME        move the VM to project NAME (checked against its quotas)\n"     \
    "  --vcpus N             virtual CPUs\n"                                                    \
    "  --memory SIZE         memory; a bare number is MiB, or use K/M/G/T\n"                    \
    "  --max-vcpus N         vCPUs the VM may reach while it runs (stopped VM only)\n"          \
    "  --max-memory SIZE     memory the VM may reach while it runs (stopped VM only)\n"         \
    "  --autostart           start the VM whenever vireod starts\n"                             \
    "  --no-autostart        do not\n"                                                     \
    "  --ha on|off           high availability: restarted on another host when its\n"         \
    "                        host dies (every disk, and the ISO in its CD-ROM, in a\n"        \
    "                        shared pool; a restart whose start fails is tried again,\n"     \
    "                        at most 3 starts in 10 minutes; docs/ha.md)\n"                  \
    "  --ha-priority N       restart order among HA VMs, -1000..1000, higher first\n"         \
    "  --ha-group NAME       placement group whose policy holds where it restarts\n"         \
    "                        ('' for none)\n"                                                \
    "  --firmware bios|uefi  firmware (stopped VM only): uefi makes the VM's NVRAM\n"          \
    "                        volume, bios deletes it\n"                                       \
    "  --secure-boot on|off  UEFI secure boot (stopped VM only; a new NVRAM)\n"               \
    "  --display vga|virtio|none\n"                                                            \
    "                        graphical console (stopped VM only; vireo console --vnc)\n"     \
    "  --cpu-weight N        its QEMU's CPU share against other VMs', 1..10000 (100:\n"      \
    "                        the default; 0 resets it); applies at once\n"                   \
    "  --cpu-limit CORES     at most this much CPU time for its vCPUs, in cores (e.g.\n"    \
    "                        1.5; 0: no limit); applies at once (docs/security.md)\n"      \
    "  --boot ORDER|default  firmware boot order, e.g. cdrom,disk,network (as at\n"          \
    "                        create; default: disk, then the CD-ROM); a running VM\n"      \
    "                        gets it at its next start\n" ASYNC_HELP                        \
    "\nExamples:\n  vireo vm edit web1 --max-vcpus 4 --max-memory 4G   (stopped)\n"            \
    "  vireo vm set web1 --vcpus 3 --memory 3G              (running)\n"                   \
    "  vireo vm set web1 --cpu-weight 200 --cpu-limit 1.5   (running or stopped)\n"      \
    "  vireo vm set inst --boot disk,cdrom                  (at the next start)\n"
    { "vm", "edit", "NAME", VM_EDIT_USAGE, "Change a VM's name, vcpus, memory or autostart.",
      VM_EDIT_HELP, vm_edit },
    { "vm", "set", "NAME", VM_EDIT_USAGE, "Same as 'vm edit' (e.g. vm set VM --vcpus N).",
      VM_EDIT_HELP, vm_edit },
    { "vm", "migrate", "NAME", "[--to HOST] [--pool POOL] [--max-downtime MS] "
      "[--bandwidth SIZE/s] [--converge-timeout SECONDS] [--force-converge] "
      "[--post-copy] [--verify-memory] [--async] | --resume [--async]",
      "Move a running VM to another host of the cluster, live.",
      "The guest keeps running: its memory is copied to HOST while it runs, then it\n"
      "pauses for a moment (the downtime) and continues on HOST. Disks on shared\n"
      "pools stay where they are; disks on this host's own pools are copied to HOST\n"
      "first (while the guest runs and writes), into POOL there, and removed here\n"
      "once the VM runs on HOST. A UEFI VM's NVRAM goes the same way; a UEFI VM\n"
      "goes only to a host with OVMF ('vireo host show HOST': firmware), and one\n"
      "whose NVRAM volume is missing is refused. An ISO of this host's own pool in\n"
      "the CD-ROM is refused (vm cdrom eject it first). While the memory is copied\n"
      "the progress line shows how far the guest's vCPUs are throttled.\n"
      "'vireo task cancel TASK' stops the migration: the VM runs on here as\n"
      "before, with its disks, and nothing is left on HOST.\n"
      "\nOptions:\n"
      "  --to HOST             the host to move it to (a name or id; default: the\n"
      "                        cluster's manager picks one with the placement rules)\n"
      "  --pool POOL           the pool on HOST local disks go to (default: its\n"
      "                        'default' pool); each keeps its volume name\n"
      "  --max-downtime MS     the longest pause allowed at the switch (default: 300)\n"
      "  --bandwidth SIZE/s    the most the copy may use, e.g. 100M/s (default: no limit)\n"
      "  --converge-timeout SECONDS\n"
      "                        the memory copy must reach the switch within this\n"
      "                        time (default: 600); else the migration is aborted\n"
      "                        (the VM runs on here) naming the dirty rate and the\n"
      "                        bandwidth it saw\n"
      "  --force-converge      throttle the guest's vCPUs harder and sooner so a busy\n"
      "                        guest converges (it runs slower until the switch);\n"
      "                        still aborted at the converge timeout\n"
      "  --post-copy           once the first full copy of memory is sent, move the\n"
      "                        guest to HOST and send the rest as it needs it (for a\n"
      "                        guest that dirties memory faster than the link sends\n"
      "                        it); local disks are mirrored whole before the\n"
      "                        switch. Risk: from the switch until the rest of\n"
      "                        memory arrived, losing either host loses the guest; a\n"
      "                        broken link pauses both sides until it is recovered\n"
      "                        (retried 5 times)\n"
      "  --verify-memory       compare the guest's RAM on both sides (both paused)\n"
      "                        before the switch; the migration fails if it differs\n"
      "  --resume              retry now the recovery of the VM's post-copy whose link\n"
      "                        broke and could not be recovered (both QEMUs kept\n"
      "                        paused): run it once the link works again; 409 when\n"
      "                        the VM has no such post-copy\n" ASYNC_HELP
      "\nExamples:\n  vireo vm migrate web1 --to h2\n"
      "  vireo vm migrate db1 --to h3 --bandwidth 200M/s --max-downtime 100\n"
      "  vireo vm migrate busy1 --to h2 --converge-timeout 120 --force-converge\n"
      "  vireo vm migrate busy2 --to h2 --post-copy\n"
      "  vireo vm migrate busy2 --resume\n"
      "  vireo vm migrate app1 --to h2 --pool fast\n",
      vm_migrate },
    { "vm", "move", "NAME", "[--to HOST] [--pool POOL] [--async]",
      "Move a stopped VM to another host of the cluster.",
      "The VM must be stopped (a running one: 'vm migrate'). Its disks on shared\n"
      "pools stay where they are; each disk on a pool of this host's own is copied\n"
      "to HOST (checked with SHA-256; a linked clone keeps its base image, copied to\n"
      "HOST first when HOST lacks it), then the VM and its volumes belong to HOST\n"
      "and the files here are removed. Until that switch nothing changes here: a\n"
      "failure or 'vireo task cancel TASK' leaves the VM here and nothing on HOST.\n"
      "A UEFI VM's NVRAM is copied with its disks (a UEFI VM goes only to a host\n"
      "with OVMF; one whose NVRAM volume is missing is refused); an ISO of this\n"
      "host's own pool in the CD-ROM is refused (vm cdrom eject it first).\n"
      "\nOptions:\n"
      "  --to HOST             the host to move it to (a name or id; default: the\n"
      "                        cluster's manager picks one with the placement rules)\n"
      "  --pool POOL           HOST's pool for the copied disks (default: default)\n"
      ASYNC_HELP
      "\nExamples:\n  vireo vm move web1 --to h2\n"
      "  vireo vm move db1 --to h3 --pool fast\n",
      vm_move },
    { "vm", "template", "NAME IMAGE", "[--async]", "Make a new image from a stopped VM's disk.",
      "The VM's first disk is copied (flattened) into image IMAGE, which new VMs can\n"
      "then be created from (vm create --image IMAGE).\n"
      "\nOptions:\n" ASYNC_HELP,
      vm_template },
    { "vm", "clone", "VM NEW", "[--full|--linked] [--pool POOL] [--async]",
      "Make a new VM NEW, a copy of the stopped VM VM.",
      "NEW gets VM's settings (CPUs, memory, firmware, display, boot order,\n"
      "cloud-init settings, NICs on the same networks, project) with new MAC\n"
      "addresses and a new id; each disk is copied whole (a full clone, the\n"
      "default), the UEFI NVRAM too. A disk in an rbd pool is copied inside\n"
      "Ceph, in its own pool; with --linked it is an RBD clone of a protected\n"
      "snapshot of VM's disk (VM keeps writing its own; its disk cannot be\n"
      "deleted while the clone exists). Linked clones of disks in dir pools\n"
      "are not possible. No snapshots, backups or HA come along.\n"
      "\nOptions:\n"
      "  --linked              rbd disks as linked clones (RBD snapshot + clone)\n"
      "  --pool POOL           the pool of NEW's dir-pool volumes (default: each disk's own)\n"
      ASYNC_HELP
      "\nExamples:\n  vireo vm clone web1 web2\n  vireo vm clone web1 web3 --pool fast\n"
      "  vireo vm clone rbdweb rbdweb2 --linked\n",
      vm_clone },
    { "vm", "disk add", "VM [POOL/NAME]", "[--size SIZE [--pool POOL] [--format qcow2|raw]] [--async]",
      "Attach a volume, or a new one, to a VM (hot-plugged when it runs).",
      "Give an existing volume (POOL/NAME) or --size for a new one, which is named\n"
      "after the VM. Sizes take K, M, G or T; a bare number is bytes. On a running VM\n"
      "the disk appears in the guest at once (a new /dev/vdX, no reboot); the VM's\n"
      "definition keeps it across restarts. A VM has at most 16 disks. Its size counts\n"
      "against the disk quota of the VM's project (vireo project set --max-disk).\n"
      "\nOptions:\n"
      "  --size SIZE           create a new volume of this size\n"
      "  --pool POOL           the new volume's pool (default: default)\n"
      "  --format qcow2|raw    the new volume's format (default: qcow2)\n" ASYNC_HELP
      "\nExamples:\n  vireo vm disk add web1 default/data1\n  vireo vm disk add web1 --size 20G\n",
      vm_disk_add },
    { "vm", "disk remove", "VM INDEX", "[--async]", "Detach a disk from a VM (hot-unplugged when it runs).",
      "INDEX is the disk's number in 'vireo vm disk list'. The volume stays in its pool;\n"
      "the boot disk (0) cannot be removed. On a running VM the guest must let go of\n"
      "the disk (Linux does; unmount it first) within 20 s, else the disk stays.\n"
      "\nOptions:\n" ASYNC_HELP,
      vm_disk_remove },
    { "vm", "disk list", "VM", NULL, "List a VM's disks.", NULL, vm_disk_list },
    { "vm", "cdrom insert", "VM POOL/NAME", "[--async]",
      "Put an ISO volume into a VM's CD-ROM drive (a media change when it runs).",
      "POOL/NAME is a volume of content iso (vireo volume import POOL/NAME file.iso).\n"
      "A stopped VM without a drive gets one; a running VM needs a drive already\n"
      "(vm create --cdrom). The VM's definition keeps the medium across restarts, and\n"
      "the volume cannot be deleted while it is in the drive. An HA VM takes only an\n"
      "ISO of a shared pool (another host must be able to start it; docs/ha.md).\n"
      "\nOptions:\n" ASYNC_HELP,
      vm_cdrom },
    { "vm", "cdrom eject", "VM", "[--async]", "Empty a VM's CD-ROM drive (also while it runs).",
      "The drive stays (empty); the ISO volume is free again.\n\nOptions:\n" ASYNC_HELP,
      vm_cdrom },
    { "vm", "cloud-init show", "VM", NULL,
      "Show a VM's cloud-init settings and the seed's documents.",
      "The seed is a CD-ROM labelled cidata that vireod makes from the settings\n"
      "(user-data, meta-data with the instance-id, network-config v2).\n",
      cli_vm_cloud_init_show },
    { "vm", "cloud-init set", "VM",
      "[--ci-user NAME] [--ci-password-hash HASH|--ci-password-file FILE|--ci-ask-password] "
      "[--ci-ssh-key FILE] [--ci-hostname H] "
      "[--ci-user-data FILE] [--ci-network dhcp|static:IP/PREFIX,gw=GW[,dns=IP]] "
      "[--reset|--none] [--async]",
      "Change a VM's cloud-init settings (the seed is remade).",
      "The options given replace those settings; the others stay (--reset: start\n"
      "from none). The instance-id changes with the settings, so cloud-init in the\n"
      "guest applies them again at its next boot; a running VM gets the new seed\n"
      "when it is next started (vm stop, vm start).\n"
      "\nOptions:\n" CLI_CLOUD_INIT_HELP
      "  --reset               drop the current settings first\n"
      "  --none                remove the settings: no seed is attached any more\n" ASYNC_HELP
      "\nExample:\n  vireo vm cloud-init set web1 --ci-ssh-key ~/.ssh/id_ed25519.pub\n",
      cli_vm_cloud_init_set },
    { "vm", "nic add", "VM", "--network NET [--mac MAC] [--async]",
      "Add a NIC on a network to a VM (hot-plugged when it runs).",
      "The NIC comes after the VM's others. NET is a network of 'vireo network list',\n"
      "or 'user' for QEMU's user-mode networking. On a running VM the NIC appears in\n"
      "the guest at once (a new interface, no reboot). A VM has at most 8 NICs.\n"
      "\nOptions:\n"
      "  --network NET         the network (required)\n"
      "  --mac MAC             the NIC's MAC, e.g. 52:54:00:12:34:56 (default: a new one)\n" ASYNC_HELP
      "\nExample:\n  vireo vm nic add web1 --network lab\n",
      vm_nic_add },
    { "vm", "nic remove", "VM INDEX", "[--async]", "Remove a NIC from a VM (hot-unplugged when it runs).",
      "INDEX is the NIC's number in 'vireo vm nic list'; the NICs after it are\n"
      "renumbered (each one less). On a running VM the guest must let go of the NIC\n"
      "within 20 s, else it stays.\n"
      "\nOptions:\n" ASYNC_HELP,
      vm_nic_remove },
    { "vm", "nic list", "VM", NULL, "List a VM's NICs with their addresses.", NULL, vm_nic_list },
    { "vm", "exec", "VM", "[--timeout S] -- CMD [ARG...]",
      "Run a command in a running VM through its guest agent.",
      "The guest agent (qemu-guest-agent) runs CMD with its arguments (no shell: use\n"
      "sh -c '...' for one) and vireo prints what it wrote to stdout and stderr,\n"
      "then exits with its exit status (128+N when signal N ended it). Options come\n"
      "before VM; everything after VM (and an optional --) is the command.\n"
      "Fails at once (exit 1) when the guest agent does not answer.\n"
      "\nOptions:\n"
      "  --timeout S           wait at most S seconds for the command (1..600, default 30)\n"
      "\nExamples:\n  vireo vm exec web1 -- uname -r\n"
      "  vireo vm exec web1 -- sh -c 'ip -4 addr show dev eth0'\n",
      cli_vm_exec },
    { "vm", "set-password", "VM USER", "[--crypted]",
      "Set a guest user's password through the guest agent.",
      "The password is read from the terminal (not echoed) or from stdin's first line.\n"
      "\nOptions:\n"
      "  --crypted             the input is a crypt(3) hash (e.g. from mkpasswd), set as is\n"
      "\nExample:\n  vireo vm set-password web1 root\n",
      cli_vm_set_password },
    { "vm", "screenshot", "VM FILE", NULL, "Save a PNG of a running VM's screen.",
      "The VM needs a display (vm create --display vga, or --cdrom POOL/ISO). vireod\n"
      "asks QEMU for the screen (screendump) and FILE gets the PNG.\n"
      "\nExample:\n  vireo vm screenshot inst screen.png\n",
      cli_vm_screenshot },
    { "vm", "send-keys", "VM", "[KEY...] [--text TEXT]",
      "Press keys on a running VM's keyboard (installers, boot menus).",
      "Each KEY is pressed and released in order; keys pressed together are joined\n"
      "with '-'. Key names are QEMU's: a-z, 0-9, ret (enter), spc (space), tab, esc,\n"
      "backspace, up, down, left, right, home, end, pgup, pgdn, f1-f12, ctrl, alt,\n"
      "shift, delete, minus, equal, slash, dot, comma, ... After the keys, --text types\n"
      "TEXT on a US keyboard (\\n in it is Enter). The VM needs a display.\n"
      "\nOptions:\n"
      "  --text TEXT           type TEXT (at most 1024 characters)\n"
      "\nExamples:\n  vireo vm send-keys inst down ret\n"
      "  vireo vm send-keys inst ctrl-alt-delete\n"
      "  vireo vm send-keys inst --text 'root\\n'\n",
      cli_vm_send_keys },
    { "vm", "import-ova", "FILE.ova",
      "[--name N] [--pool POOL] [--network NET] [--kernel-image IMAGE] [--ca FILE] [--async]",
      "Make a VM (stopped) from an OVA: its OVF descriptor and disks.",
      "vireod reads FILE.ova itself (on its host; relative paths are taken from the\n"
      "current directory). The manifest (.mf) must list every file and its SHA-1/\n"
      "SHA-256 digests must match; a signed OVA's certificate (.cert) must hold the\n"
      "manifest's signature and chain to a CA of --ca or the system's store, else the\n"
      "import is refused; an OVA without them is imported with a warning (refused\n"
      "with --ca). Each disk (streamOptimized VMDK or other) is converted into a\n"
      "qcow2 volume of POOL; the VM gets the descriptor's vCPUs, memory, firmware\n"
      "(EFI: UEFI with a new NVRAM) and NICs; a CD-ROM's ISO becomes an iso volume\n"
      "of POOL in the VM's CD-ROM drive. What cannot be mapped is printed as a\n"
      "warning. A failed import leaves no volume and no VM.\n"
      "\nOptions:\n"
      "  --name N              the VM's name (default: the descriptor's)\n"
      "  --pool POOL           the pool for the disks and ISO (default: default)\n"
      "  --network NET         put every NIC on NET (default: a vireo network of the\n"
      "                        NIC's network name; an unknown name is refused)\n"
      "  --kernel-image IMAGE  boot IMAGE's kernel, initrd and command line (a disk\n"
      "                        with a root file system but no boot loader)\n"
      "  --ca FILE             trust the signers this CA bundle (PEM, on vireod's host)\n"
      "                        issued, instead of the system's CAs; a vendor's\n"
      "                        self-signed certificate can be its own CA; an unsigned\n"
      "                        OVA is then refused\n" ASYNC_HELP
      "\nExample:\n  vireo vm import-ova appliance.ova --name app1 --network default\n",
      cli_vm_import_ova },
    { "vm", "import-libvirt", "DOMAIN.xml",
      "[--name N] [--pool POOL] [--network NET] [--kernel-image IMAGE] [--async]",
      "Make a VM (stopped) from a libvirt domain XML (virsh dumpxml).",
      "Maps name, memory, vCPUs, firmware (an os loader or nvram: UEFI), file-backed\n"
      "disks (copied and converted into qcow2 volumes of POOL; the files stay as they\n"
      "are), CD-ROM drives (an ISO source becomes an iso volume of POOL in the drive),\n"
      "NICs (a vireo network of the libvirt network's or\n"
      "bridge's name, else --network) and a display (vnc/spice: vga). Everything else\n"
      "is printed as a warning, never dropped silently. Shut the libvirt domain down\n"
      "first: its disks are copied as they are.\n"
      "\nOptions:\n"
      "  --name N              the VM's name (default: the domain's)\n"
      "  --pool POOL           the pool for the disks and ISO (default: default)\n"
      "  --network NET         put every NIC on NET\n"
      "  --kernel-image IMAGE  boot IMAGE's kernel, initrd and command line\n" ASYNC_HELP
      "\nExample:\n  virsh dumpxml web1 > web1.xml && vireo vm import-libvirt web1.xml\n",
      cli_vm_import_libvirt },
};

const CliNoun cli_noun_vm = { "vm", "virtual machines", vm_commands, ELEMENTSOF(vm_commands) };
