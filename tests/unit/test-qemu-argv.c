/* test-qemu-argv.c: golden-file tests of the spec -> QEMU argv mapping.
 * Each tests/golden/qemu-argv/NAME.json ({"caps":{...},"spec":{...}}) must
 * produce NAME.args (one argument per line) or, for a refused spec, NAME.err.
 * The specs give host paths (what the driver sees); each goes the way a
 * stored spec does: upgraded into names (vo_vm_spec_upgrade_json), parsed,
 * validated, then resolved back into the same paths (vo_vm_spec_resolve).
 * VIREO_TEST_REGENERATE=1 rewrites the expected files; review the diff. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conf/vm-spec.h"
#include "qemu/qemu-argv.h"
#include "util/util.h"

#define ARGV_DIR GOLDEN_DIR "/qemu-argv"

static const VoHostLimits limits = { .max_vcpus = 64, .max_memory_mib = 65536 };

/* Every path of a case gets a name ("golden/fN", a volume), and the
 * resolver gives the path back. */
typedef struct {
    char **paths;
} PathTable;

static char *table_volume_of(void *userdata, const char *path)
{
    PathTable *t = userdata;
    size_t i = 0;
    while (i < vo_strv_len(t->paths) && strcmp(t->paths[i], path))
        i++;
    if (i == vo_strv_len(t->paths))
        vo_strv_push(&t->paths, vo_strdup(path));
    return vo_asprintf("golden/f%zu", i);
}

static char *table_image_of(void *userdata, const char *path, bool initrd)
{
    return NULL;
}

static int table_volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    PathTable *t = userdata;
    size_t i = 0;
    if (sscanf(key, "golden/f%zu", &i) != 1 || i >= vo_strv_len(t->paths))
        return vo_error_set(ret_error, -ENOENT, "no volume %s", key);
    *ret_path = vo_strdup(t->paths[i]);
    return 0;
}

static int table_image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                            char **ret_error)
{
    return vo_error_set(ret_error, -ENOENT, "no image %s", image);
}

/* Produces what NAME.json should map to: the args text, or the error text. */
static char *render(const char *json_path, bool *ret_is_error)
{
    json_error_t jerr;
    json_t *doc = json_load_file(json_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("%s: %s", json_path, jerr.text);
    int kvm = 0;
    json_t *spec_json = NULL, *taps = NULL;
    const char *run_as = NULL;
    if (json_unpack_ex(doc, &jerr, JSON_STRICT, "{s?{s?b, s?o, s?s}, s:o}", "caps", "kvm", &kvm,
                       "tap_fds", &taps, "run_as", &run_as, "spec", &spec_json) < 0)
        fail_msg("%s: %s", json_path, jerr.text);
    int tap_fds[16];
    for (size_t i = 0; i < 16; i++)
        tap_fds[i] = i < json_array_size(taps) ? (int)json_integer_value(json_array_get(taps, i))
                                               : -1;

    _cleanup_free_ char *error = NULL;
    _cleanup_vm_spec_ VoVmSpec *spec = NULL;
    _cleanup_strv_ char **argv = NULL;
    VoQemuCaps caps = { .binary = "qemu-system-x86_64", .kvm_usable = kvm, .run_as = run_as };
    VoQemuPaths paths = { .qmp_socket = "/run/vireo/vms/ID/qmp.sock",
                          .events_socket = "/run/vireo/vms/ID/qmp-events.sock",
                          .console_socket = "/run/vireo/vms/ID/console.sock",
                          .agent_socket = "/run/vireo/vms/ID/agent.sock",
                          .vnc_socket = "/run/vireo/vms/ID/vnc.sock",
                          .vnc_ticket_socket = "/run/vireo/vms/ID/vnc-ticket.sock",
                          .pidfile = "/run/vireo/vms/ID/qemu.pid",
                          .tap_fds = taps ? tap_fds : NULL };
    PathTable table = { 0 };
    VoSpecNamer namer = { table_volume_of, table_image_of, &table };
    VoSpecResolver res = { table_volume_path, table_image_file, &table };
    bool changed = false;
    _cleanup_strv_ char **problems = NULL;
    _cleanup_vm_spec_ VoVmSpec *resolved = NULL;
    assert_int_equal(vo_vm_spec_upgrade_json(spec_json, &namer, &changed, &problems), 0);
    assert_null(problems);
    int r = vo_vm_spec_from_json(spec_json, &spec, &error);
    if (r >= 0)
        r = vo_vm_spec_validate(spec, &limits, &error);
    if (r >= 0)
        r = vo_vm_spec_resolve(spec, &res, &resolved, &error);
    if (r >= 0)
        r = vo_qemu_build_argv(resolved, &caps, &paths, &argv, &error);
    vo_strv_free(table.paths);
    json_decref(doc);

    *ret_is_error = r < 0;
    if (r < 0)
        return vo_asprintf("%s\n", error ? error : "(no message)");
    char *out = vo_strdup("");
    for (char **a = argv; *a; a++) {
        char *next = vo_asprintf("%s%s\n", out, *a);
        free(out);
        out = next;
    }
    return out;
}

static void check_case(const char *name)
{
    _cleanup_free_ char *json_path = vo_asprintf("%s/%s.json", ARGV_DIR, name);
    _cleanup_free_ char *args_path = vo_asprintf("%s/%s.args", ARGV_DIR, name);
    _cleanup_free_ char *err_path = vo_asprintf("%s/%s.err", ARGV_DIR, name);
    bool is_error = false;
    _cleanup_free_ char *actual = render(json_path, &is_error);
    const char *expected_path = is_error ? err_path : args_path;
    const char *other_path = is_error ? args_path : err_path;

    if (getenv("VIREO_TEST_REGENERATE")) {
        assert_int_equal(vo_write_file_atomic(expected_path, actual, strlen(actual)), 0);
        (void)unlink(other_path);
        return;
    }
    if (access(other_path, F_OK) == 0)
        fail_msg("%s: expected %s but the spec %s", name, other_path,
                 is_error ? "was refused" : "was accepted");
    _cleanup_free_ char *expected = NULL;
    if (vo_read_file(expected_path, 1 << 20, &expected, NULL) < 0)
        fail_msg("%s: missing %s (run with VIREO_TEST_REGENERATE=1)", name, expected_path);
    if (strcmp(expected, actual))
        fail_msg("%s: argv differs from %s\n--- expected\n%s--- actual\n%s", name,
                 expected_path, expected, actual);
}

static void test_golden(void **state)
{
    check_case((const char *)*state);
}

int main(void)
{
    DIR *d = opendir(ARGV_DIR);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", ARGV_DIR);
        return 1;
    }
    struct CMUnitTest *tests = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
            continue;
        tests = realloc(tests, sizeof(*tests) * (n + 1));
        char *name = vo_strdup(de->d_name);
        name[len - 5] = 0;
        tests[n++] = (struct CMUnitTest){ .name = name, .test_func = test_golden,
                                          .initial_state = name };
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "no golden cases in %s\n", ARGV_DIR);
        return 1;
    }
    int failed = _cmocka_run_group_tests("qemu-argv golden", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free((char *)tests[i].name);
    free(tests);
    return failed;
}
