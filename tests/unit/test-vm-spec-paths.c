/* test-vm-spec-paths.c: VM specs name volumes and images, never host paths.
 * Resolution of a spec into the copy the driver gets (this host's paths),
 * and the upgrade of definitions written when specs held paths: golden files
 * tests/golden/spec-upgrade/NAME.json ({"volumes": {PATH: KEY}, "images":
 * {"kernel"|"initrd": {PATH: IMAGE}}, "spec": OLD}) must give NAME.out
 * ({"changed", "problems", "spec"}). VIREO_TEST_REGENERATE=1 rewrites the
 * .out files; review the diff. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "conf/vm-spec.h"
#include "util/util.h"

#define UPGRADE_DIR GOLDEN_DIR "/spec-upgrade"
#define ID "6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10"

static const VoHostLimits limits = { .max_vcpus = 64, .max_memory_mib = 65536 };

/* ---- a host: volumes and image files by name -------------------------------- */

typedef struct {
    json_t *volumes; /* KEY -> PATH (resolving) or PATH -> KEY (naming) */
    json_t *images;  /* {"kernel": {...}, "initrd": {...}} likewise */
    int lookups;
} FakeHost;

static int fake_volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    FakeHost *h = userdata;
    h->lookups++;
    const char *path = json_string_value(json_object_get(h->volumes, key));
    if (!path)
        return vo_error_set(ret_error, -ENOENT, "volume '%s' does not exist", key);
    *ret_path = vo_strdup(path);
    return 0;
}

static int fake_image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                           char **ret_error)
{
    FakeHost *h = userdata;
    h->lookups++;
    json_t *files = json_object_get(h->images, initrd ? "initrd" : "kernel");
    const char *path = json_string_value(json_object_get(files, image));
    if (!path)
        return vo_error_set(ret_error, -ENOENT, "image '%s' has no %s", image,
                            initrd ? "initrd" : "kernel");
    *ret_path = vo_strdup(path);
    return 0;
}

static char *fake_volume_of(void *userdata, const char *path)
{
    FakeHost *h = userdata;
    return vo_strdup(json_string_value(json_object_get(h->volumes, path)));
}

static char *fake_image_of(void *userdata, const char *path, bool initrd)
{
    FakeHost *h = userdata;
    json_t *files = json_object_get(h->images, initrd ? "initrd" : "kernel");
    return vo_strdup(json_string_value(json_object_get(files, path)));
}

static VoVmSpec *parse(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    VoVmSpec *spec = NULL;
    _cleanup_free_ char *error = NULL;
    if (vo_vm_spec_from_json(doc, &spec, &error) < 0)
        fail_msg("%s: %s", text, error);
    json_decref(doc);
    return spec;
}

static bool json_has_path(json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v)[0] == '/';
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
            if (!strcmp(key, "path") || json_has_path(item))
                return true;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
            if (json_has_path(item))
                return true;
    }
    return false;
}

/* ---- resolution -------------------------------------------------------------- */

static const char *const spec_text =
    "{\"id\":\"" ID "\",\"name\":\"web1\",\"kernel\":{\"image\":\"default\"},"
    "\"initrd\":{\"volume\":\"fast/initrd\"},\"cmdline\":\"console=ttyS0\","
    "\"disks\":[{\"volume\":\"default/web1-disk0\"},"
    "{\"volume\":\"fast/data\",\"format\":\"raw\",\"slot\":4}]}";

static void test_resolve_fills_paths_of_a_copy(void **state)
{
    FakeHost h = { .volumes = json_pack("{s:s, s:s, s:s}", "default/web1-disk0",
                                        "/pools/default/web1-disk0.qcow2", "fast/data",
                                        "/srv/fast/data.raw", "fast/initrd",
                                        "/srv/fast/initrd.raw"),
                   .images = json_pack("{s:{s:s}}", "kernel", "default",
                                       "/var/lib/vireo/images/default/vmlinux") };
    VoSpecResolver res = { fake_volume_path, fake_image_file, &h };
    _cleanup_vm_spec_ VoVmSpec *spec = parse(spec_text);
    assert_int_equal(vo_vm_spec_validate(spec, &limits, NULL), 0);
    _cleanup_vm_spec_ VoVmSpec *resolved = NULL;
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_vm_spec_resolve(spec, &res, &resolved, &error), 0);
    assert_string_equal(resolved->disks[0].path, "/pools/default/web1-disk0.qcow2");
    assert_string_equal(resolved->disks[1].path, "/srv/fast/data.raw");
    assert_int_equal(resolved->disks[1].slot, 4);
    assert_int_equal(resolved->disks[1].format, VO_DISK_RAW);
    assert_string_equal(resolved->kernel, "/var/lib/vireo/images/default/vmlinux");
    assert_string_equal(resolved->initrd, "/srv/fast/initrd.raw");
    /* The spec itself is untouched: names only. */
    assert_null(spec->disks[0].path);
    assert_null(spec->kernel);
    assert_null(spec->initrd);
    /* A copy of the resolved spec keeps its paths; its JSON never has them. */
    _cleanup_vm_spec_ VoVmSpec *copy = vo_vm_spec_copy(resolved);
    assert_string_equal(copy->disks[1].path, "/srv/fast/data.raw");
    assert_string_equal(copy->kernel, "/var/lib/vireo/images/default/vmlinux");
    json_t *a = vo_vm_spec_to_json(resolved), *b = vo_vm_spec_to_json(spec);
    assert_false(json_has_path(a));
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    vo_vm_spec_unresolve(copy);
    assert_null(copy->disks[0].path);
    assert_null(copy->disks[1].path);
    assert_null(copy->kernel);
    assert_null(copy->initrd);
    json_decref(h.volumes);
    json_decref(h.images);
}

static void expect_resolve_error(FakeHost *h, const char *text, const char *fragment)
{
    VoSpecResolver res = { fake_volume_path, fake_image_file, h };
    _cleanup_vm_spec_ VoVmSpec *spec = parse(text);
    _cleanup_vm_spec_ VoVmSpec *resolved = NULL;
    _cleanup_free_ char *error = NULL;
    assert_true(vo_vm_spec_resolve(spec, &res, &resolved, &error) < 0);
    assert_null(resolved);
    assert_non_null(error);
    if (!strstr(error, fragment))
        fail_msg("error '%s' lacks '%s'", error, fragment);
}

static void test_resolve_names_what_is_missing(void **state)
{
    FakeHost h = { .volumes = json_pack("{s:s, s:s, s:s}", "default/web1-disk0",
                                        "/pools/default/web1-disk0.qcow2", "fast/data",
                                        "/srv/fast/data,file=/etc/shadow", "fast/rel", "rel.qcow2"),
                   .images = json_object() };
    expect_resolve_error(&h, "{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":"
                         "\"default/web1-disk0\"},{\"volume\":\"default/gone\"}]}",
                         "disk 1 (volume 'default/gone'): volume 'default/gone' does not exist");
    expect_resolve_error(&h, "{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":"
                         "\"fast/data\"}]}", "not an absolute path without ','");
    expect_resolve_error(&h, "{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":"
                         "\"fast/rel\"}]}", "'rel.qcow2' is not an absolute path");
    expect_resolve_error(&h, "{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"image\":"
                         "\"tiny\"}}", "kernel (image 'tiny'): image 'tiny' has no kernel");
    expect_resolve_error(&h, "{\"id\":\"" ID "\",\"name\":\"a\",\"kernel\":{\"volume\":"
                         "\"default/web1-disk0\"},\"initrd\":{\"volume\":\"x/y\"}}",
                         "initrd (volume 'x/y'): volume 'x/y' does not exist");
    json_decref(h.volumes);
    json_decref(h.images);
}

/* ---- upgrade of old definitions (golden) --------------------------------------- */

static char *render_upgrade(const char *json_path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(json_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("%s: %s", json_path, jerr.text);
    FakeHost h = { .volumes = json_object_get(doc, "volumes"),
                   .images = json_object_get(doc, "images") };
    VoSpecNamer namer = { fake_volume_of, fake_image_of, &h };
    json_t *spec_json = json_object_get(doc, "spec");
    bool changed = false;
    _cleanup_strv_ char **problems = NULL;
    assert_int_equal(vo_vm_spec_upgrade_json(spec_json, &namer, &changed, &problems), 0);
    /* What comes out is a spec this vireod reads, without a host path. */
    assert_false(json_has_path(spec_json));
    _cleanup_vm_spec_ VoVmSpec *spec = NULL;
    _cleanup_free_ char *error = NULL;
    if (vo_vm_spec_from_json(spec_json, &spec, &error) < 0)
        fail_msg("%s: the upgraded spec does not parse: %s", json_path, error);
    if (!problems && vo_vm_spec_validate(spec, &limits, &error) < 0)
        fail_msg("%s: the upgraded spec is invalid: %s", json_path, error);
    /* Upgrading again changes nothing. */
    json_t *again = json_deep_copy(spec_json);
    bool changed_again = true;
    _cleanup_strv_ char **problems_again = NULL;
    assert_int_equal(vo_vm_spec_upgrade_json(again, &namer, &changed_again, &problems_again), 0);
    assert_false(changed_again);
    assert_null(problems_again);
    assert_true(json_equal(again, spec_json));
    json_decref(again);

    json_t *list = json_array();
    for (char **p = problems; p && *p; p++)
        json_array_append_new(list, json_string(*p));
    json_t *out = json_pack("{s:b, s:o, s:O}", "changed", changed, "problems", list, "spec",
                            spec_json);
    char *text = json_dumps(out, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(out);
    json_decref(doc);
    char *with_newline = vo_asprintf("%s\n", text);
    free(text);
    return with_newline;
}

static void test_upgrade_golden(void **state)
{
    const char *name = *state;
    _cleanup_free_ char *json_path = vo_asprintf("%s/%s.json", UPGRADE_DIR, name);
    _cleanup_free_ char *out_path = vo_asprintf("%s/%s.out", UPGRADE_DIR, name);
    _cleanup_free_ char *actual = render_upgrade(json_path);
    if (getenv("VIREO_TEST_REGENERATE")) {
        assert_int_equal(vo_write_file_atomic(out_path, actual, strlen(actual)), 0);
        return;
    }
    _cleanup_free_ char *expected = NULL;
    if (vo_read_file(out_path, 1 << 20, &expected, NULL) < 0)
        fail_msg("%s: missing %s (run with VIREO_TEST_REGENERATE=1)", name, out_path);
    if (strcmp(expected, actual))
        fail_msg("%s: differs from %s\n--- expected\n%s--- actual\n%s", name, out_path,
                 expected, actual);
}

/* The upgrade round trip the daemon does: an old spec, upgraded and parsed,
 * resolves on the same host to the paths it had. */
static void test_upgrade_then_resolve_gives_the_old_paths(void **state)
{
    json_t *spec_json = json_pack(
        "{s:s, s:s, s:s, s:[{s:s, s:s}, {s:s}]}", "id", ID, "name", "a", "kernel",
        "/var/lib/vireo/images/default/vmlinux", "disks", "path",
        "/var/lib/vireo/pools/default/a-disk0.qcow2", "volume", "default/a-disk0", "path",
        "/srv/b.qcow2");
    FakeHost names = { .volumes = json_pack("{s:s}", "/srv/b.qcow2", "fast/b"),
                       .images = json_pack("{s:{s:s}}", "kernel",
                                           "/var/lib/vireo/images/default/vmlinux", "default") };
    FakeHost paths = { .volumes = json_pack("{s:s, s:s}", "default/a-disk0",
                                            "/var/lib/vireo/pools/default/a-disk0.qcow2",
                                            "fast/b", "/srv/b.qcow2"),
                       .images = json_pack("{s:{s:s}}", "kernel", "default",
                                           "/var/lib/vireo/images/default/vmlinux") };
    VoSpecNamer namer = { fake_volume_of, fake_image_of, &names };
    VoSpecResolver res = { fake_volume_path, fake_image_file, &paths };
    bool changed = false;
    _cleanup_strv_ char **problems = NULL;
    assert_int_equal(vo_vm_spec_upgrade_json(spec_json, &namer, &changed, &problems), 0);
    assert_true(changed);
    assert_null(problems);
    _cleanup_vm_spec_ VoVmSpec *spec = NULL, *resolved = NULL;
    assert_int_equal(vo_vm_spec_from_json(spec_json, &spec, NULL), 0);
    assert_string_equal(spec->kernel_from.image, "default");
    assert_string_equal(spec->disks[1].volume, "fast/b");
    assert_int_equal(vo_vm_spec_resolve(spec, &res, &resolved, NULL), 0);
    assert_string_equal(resolved->kernel, "/var/lib/vireo/images/default/vmlinux");
    assert_string_equal(resolved->disks[0].path, "/var/lib/vireo/pools/default/a-disk0.qcow2");
    assert_string_equal(resolved->disks[1].path, "/srv/b.qcow2");
    json_t *not_a_spec = json_string("x");
    assert_int_equal(vo_vm_spec_upgrade_json(not_a_spec, &namer, &changed, &problems), -EINVAL);
    json_decref(not_a_spec);
    json_decref(spec_json);
    json_decref(names.volumes);
    json_decref(names.images);
    json_decref(paths.volumes);
    json_decref(paths.images);
}

int main(void)
{
    struct CMUnitTest *tests = NULL;
    size_t n = 0;
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_resolve_fills_paths_of_a_copy),
        cmocka_unit_test(test_resolve_names_what_is_missing),
        cmocka_unit_test(test_upgrade_then_resolve_gives_the_old_paths),
    };
    for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
        tests = realloc(tests, sizeof(*tests) * (n + 1));
        tests[n++] = fixed[i];
    }
    DIR *d = opendir(UPGRADE_DIR);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", UPGRADE_DIR);
        return 1;
    }
    size_t first_golden = n;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
            continue;
        tests = realloc(tests, sizeof(*tests) * (n + 1));
        char *name = vo_strdup(de->d_name);
        name[len - 5] = 0;
        tests[n++] = (struct CMUnitTest){ .name = name, .test_func = test_upgrade_golden,
                                          .initial_state = name };
    }
    closedir(d);
    if (n == first_golden) {
        fprintf(stderr, "no golden cases in %s\n", UPGRADE_DIR);
        return 1;
    }
    int failed = _cmocka_run_group_tests("vm-spec-paths", tests, n, NULL, NULL);
    for (size_t i = first_golden; i < n; i++)
        free((char *)tests[i].name);
    free(tests);
    return failed;
}
