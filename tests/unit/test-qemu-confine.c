/* test-qemu-confine.c: QEMU's confinement's pure parts: the cgroup limits a
 * VM's spec gives (the documented memory formula, CPU weight and limit),
 * the spec's cpu_weight/cpu_limit (ranges, round trip), and whether QEMU's
 * user can walk down to a directory; the fdsets QEMU no longer uses removed
 * after a node's deletion or a refused blockdev-add (scripted QMP server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/vm-spec.h"
#include "qemu/qemu-cgroup.h"
#include "qemu/qemu-confine.h"
#include "qmp-server.h"
#include "util/util.h"

#define MiB (UINT64_C(1) << 20)

static void test_limits(void **state)
{
    VoVmSpec spec = { .memory_mib = 1024, .max_memory_mib = 1024 };
    VoCgroupLimits l;
    vo_qemu_cgroup_limits(&spec, VO_ACCEL_KVM, &l);
    assert_int_equal(l.memory_max, (1024 + 256 + 64) * MiB);
    assert_int_equal(l.cpu_weight, 0);
    assert_true(l.cpu_limit == 0);
    /* TCG: the translation cache on top; hot-plug: the maximum counts */
    spec.max_memory_mib = 4096;
    spec.cpu_weight = 300;
    spec.cpu_limit = 1.5;
    vo_qemu_cgroup_limits(&spec, VO_ACCEL_TCG, &l);
    assert_int_equal(l.memory_max, (4096 + 256 + 256 + 1024) * MiB);
    assert_int_equal(l.cpu_weight, 300);
    assert_true(l.cpu_limit == 1.5);
}

static json_t *spec_with(const char *extra)
{
    _cleanup_free_ char *text = vo_asprintf(
        "{\"id\": \"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\", \"name\": \"a\"%s}", extra);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    return doc;
}

static void test_spec_fields(void **state)
{
    static const struct { const char *extra, *key; } bad[] = {
        { ", \"cpu_weight\": 10001", "cpu_weight" }, { ", \"cpu_weight\": -1", "cpu_weight" },
        { ", \"cpu_weight\": 1.5", "cpu_weight" },   { ", \"cpu_limit\": 0.001", "cpu_limit" },
        { ", \"cpu_limit\": 5000", "cpu_limit" },    { ", \"cpu_limit\": \"1\"", "cpu_limit" },
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        json_t *doc = spec_with(bad[i].extra);
        VoVmSpec *s = NULL;
        _cleanup_free_ char *error = NULL;
        assert_int_equal(vo_vm_spec_from_json(doc, &s, &error), -EINVAL);
        if (!strstr(error, bad[i].key))
            fail_msg("%s: %s", bad[i].extra, error);
        json_decref(doc);
    }
    json_t *doc = spec_with(", \"cpu_weight\": 250, \"cpu_limit\": 2");
    VoVmSpec *s = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &s, NULL), 0);
    json_decref(doc);
    assert_int_equal(s->cpu_weight, 250);
    assert_true(s->cpu_limit == 2);
    json_t *back = vo_vm_spec_to_json(s);
    assert_int_equal(json_integer_value(json_object_get(back, "cpu_weight")), 250);
    assert_true(json_number_value(json_object_get(back, "cpu_limit")) == 2);
    json_decref(back);
    vo_vm_spec_free(s);
    /* the defaults are not written out */
    doc = spec_with("");
    assert_int_equal(vo_vm_spec_from_json(doc, &s, NULL), 0);
    json_decref(doc);
    back = vo_vm_spec_to_json(s);
    assert_null(json_object_get(back, "cpu_weight"));
    assert_null(json_object_get(back, "cpu_limit"));
    json_decref(back);
    vo_vm_spec_free(s);
}

static void test_reachable(void **state)
{
    char top[] = "/tmp/test-confine-XXXXXX";
    assert_non_null(mkdtemp(top));
    _cleanup_free_ char *inner = vo_asprintf("%s/a/b", top);
    assert_int_equal(vo_mkdir_p(inner, 0755), 0);
    assert_int_equal(chmod(top, 0711), 0);
    assert_true(vo_qemu_path_reachable(inner, 12345, 12345, NULL));
    /* a 0700 directory on the way, owned by someone else: blocked there */
    _cleanup_free_ char *middle = vo_asprintf("%s/a", top);
    assert_int_equal(chmod(middle, 0700), 0);
    char *blocked = NULL;
    assert_false(vo_qemu_path_reachable(inner, 12345, 12345, &blocked));
    assert_string_equal(blocked, middle);
    free(blocked);
    /* searchable by its group */
    assert_int_equal(chmod(middle, 0710), 0);
    struct stat st;
    assert_int_equal(stat(middle, &st), 0);
    assert_true(vo_qemu_path_reachable(inner, 12345, st.st_gid, NULL));
    assert_false(vo_qemu_path_reachable(inner, 12345, st.st_gid + 1, NULL));
    assert_int_equal(vo_rm_rf(top), 0);
}

/* vo_qemu_give changes the file at the path, never a symlink's target;
 * vo_qemu_share_dir makes a dir sticky, root's, of QEMU's group. */
static void test_give_no_symlink(void **state)
{
    char top[] = "/tmp/test-give-XXXXXX";
    assert_non_null(mkdtemp(top));
    _cleanup_free_ char *target = vo_asprintf("%s/target", top);
    _cleanup_free_ char *link = vo_asprintf("%s/link", top);
    assert_int_equal(vo_write_file_atomic(target, "x", 1), 0);
    assert_int_equal(chmod(target, 0644), 0);
    assert_int_equal(symlink(target, link), 0);
    VoHvDriver d = { .qemu_user = (char *)"q", .qemu_uid = getuid(), .qemu_gid = getgid() };
    assert_int_equal(vo_qemu_give(&d, link, 0400), -ELOOP);
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(vo_qemu_give(&d, target, 0400), 0);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0400);
    /* a run dir: root's, QEMU's group, sticky */
    assert_int_equal(vo_qemu_share_dir(&d, top), 0);
    assert_int_equal(stat(top, &st), 0);
    assert_int_equal(st.st_mode & 07777, 01770);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(vo_rm_rf(top), 0);
}

#define OK "{\"return\":{},\"id\":$ID}\n"
#define REFUSED "{\"error\":{\"class\":\"GenericError\",\"desc\":\"no\"},\"id\":$ID}\n"
/* Sets 1, 2, 12 and 3; nodes name 2 (its path), 12 (in a json: filename)
 * and 10 (a prefix of no set's number but 1's): 1 and 3 are unused. */
#define FDSETS                                                                         \
    { .expect = "query-fdsets",                                                       \
      .send = { "{\"return\":[{\"fdset-id\":1,\"fds\":[]},{\"fdset-id\":2,\"fds\":[]},"  \
                "{\"fdset-id\":12,\"fds\":[]},{\"fdset-id\":3,\"fds\":[]}],\"id\":$ID}\n" } }
#define NODES                                                                          \
    { .expect = "query-named-block-nodes", .args = "{\"flat\":true}",                 \
      .send = { "{\"return\":[{\"node-name\":\"a\",\"file\":\"/dev/fdset/2\"},"       \
                "{\"node-name\":\"b\",\"file\":\"json:{\\\"file\\\":{\\\"filename\\\":"  \
                "\\\"/dev/fdset/12\\\"}}\"},{\"node-name\":\"c\",\"file\":\"/dev/fdset/10\"},"  \
                "{\"node-name\":\"d\",\"file\":\"rbd:p/v\"}],\"id\":$ID}\n" } }
#define ADD "{\"driver\":\"null-co\",\"node-name\":\"y\"}"
#define REMOVED(id) { .expect = "remove-fd", .args = "{\"fdset-id\":" #id "}", .send = { OK } }

static void test_unused_fdsets_removed(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        /* a deletion: the sets no node names go */
        { .expect = "blockdev-del", .args = "{\"node-name\":\"x\"}", .send = { OK } },
        FDSETS, NODES, REMOVED(1), REMOVED(3),
        /* a refused blockdev-add: its sets go too */
        { .expect = "blockdev-add", .args = ADD, .send = { REFUSED } },
        FDSETS, NODES, REMOVED(1), REMOVED(3),
        /* an accepted one, and other commands: nothing more */
        { .expect = "blockdev-add", .args = ADD, .send = { OK } },
        { .expect = "query-status", .send = { OK } },
        { 0 }
    };
    Server server;
    VoHvInstance vm = { .confined = true, .pidfd = -1 };
    pthread_mutex_init(&vm.qmp_lock, NULL);
    vm.qmp = client_open(&server, steps);
    json_t *args = json_pack("{s:s}", "node-name", "x");
    assert_int_equal(vo_qemu_confine_execute(&vm, "blockdev-del", args, NULL, NULL), 0);
    json_decref(args);
    args = json_pack("{s:s, s:s}", "driver", "null-co", "node-name", "y");
    _cleanup_free_ char *error = NULL;
    assert_true(vo_qemu_confine_execute(&vm, "blockdev-add", args, NULL, &error) < 0);
    assert_string_equal(error, "GenericError: no");
    assert_int_equal(vo_qemu_confine_execute(&vm, "blockdev-add", args, NULL, NULL), 0);
    json_decref(args);
    assert_int_equal(vo_qemu_confine_execute(&vm, "query-status", NULL, NULL, NULL), 0);
    vo_qmp_close(vm.qmp);
    server_join(&server);
    pthread_mutex_destroy(&vm.qmp_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_spec_fields),
        cmocka_unit_test(test_reachable),
        cmocka_unit_test(test_unused_fdsets_removed),
        cmocka_unit_test(test_give_no_symlink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
