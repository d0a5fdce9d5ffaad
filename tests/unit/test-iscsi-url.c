/* test-iscsi-url.c: iSCSI names without I/O (storage/iscsi-url.c): portals,
 * IQNs, vireo's iscsi:// strings; a LUN volume's path (volume-path.c); the
 * iscsi pool create body (conf/storage-spec.c); the -blockdev of a LUN and
 * its CHAP secret object (qemu/qemu-devices.c); how qemu-img opens a LUN
 * (storage/qemu-img.c's vo_img_open_args). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/storage-spec.h"
#include "qemu/qemu-devices.h"
#include "storage/iscsi-url.h"
#include "storage/qemu-img.h"
#include "storage/volume-path.h"
#include "util/util.h"

#define IQN "iqn.2026-12.com.example:san1"

static void test_portal(void **state)
{
    char *host = NULL, *error = NULL;
    unsigned port = 0;
    assert_int_equal(vo_iscsi_portal_parse("10.0.0.5", &host, &port, &error), 0);
    assert_string_equal(host, "10.0.0.5");
    assert_int_equal(port, 3260);
    free(host);
    assert_int_equal(vo_iscsi_portal_parse("san.example:13260", &host, &port, &error), 0);
    assert_string_equal(host, "san.example");
    assert_int_equal(port, 13260);
    free(host);
    const char *bad[] = { "", "10.0.0.5:0", "10.0.0.5:65536", "10.0.0.5:", "10.0.0.5:x",
                          "[::1]:3260", "fe80::1", "-a", "a b", "a/b:1", ":3260" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        host = NULL;
        assert_int_equal(vo_iscsi_portal_parse(bad[i], &host, &port, &error), -EINVAL);
        assert_null(host);
        assert_non_null(strstr(error, "portal"));
        free(TAKE_PTR(error));
    }
}

static void test_names(void **state)
{
    assert_true(vo_iscsi_name_valid(IQN));
    assert_true(vo_iscsi_name_valid("iqn.2001-04.com.example"));
    assert_true(vo_iscsi_name_valid("eui.02004567a425678d"));
    const char *bad[] = { "", "iqn", "iqn.2026-1.com.x", "iqn.2026-12com.x", "IQN.2026-12.com.x",
                          "iqn.2026-12.Com.x", "iqn.2026-12.", "iqn.2026-12.com.x y",
                          "iqn.2026-12.com.x/1", "eui.0200", "eui.02004567a425678z", "naa.1" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_false(vo_iscsi_name_valid(bad[i]));
    assert_true(vo_iscsi_user_valid("vireo.user_1"));
    assert_false(vo_iscsi_user_valid(""));
    assert_false(vo_iscsi_user_valid("a@b"));
}

static void test_url_round_trip(void **state)
{
    VoIscsiUrl u = { .host = "10.0.0.5", .port = 3260, .target = IQN, .lun = 7,
                     .user = "vireo", .secret = "/s/iscsi-a.chap",
                     .initiator = "iqn.2026-12.org.vireo:h1" };
    _cleanup_free_ char *s = vo_iscsi_url_format(&u);
    assert_string_equal(s, "iscsi://vireo@10.0.0.5:3260/" IQN "/7?secret=/s/iscsi-a.chap"
                           "&initiator=iqn.2026-12.org.vireo:h1");
    _cleanup_free_ char *plain = vo_iscsi_url_plain(&u);
    assert_string_equal(plain, "iscsi://10.0.0.5:3260/" IQN "/7");
    VoIscsiUrl p;
    assert_int_equal(vo_iscsi_url_parse(s, &p), 0);
    assert_string_equal(p.host, "10.0.0.5");
    assert_int_equal(p.port, 3260);
    assert_string_equal(p.target, IQN);
    assert_int_equal(p.lun, 7);
    assert_string_equal(p.user, "vireo");
    assert_string_equal(p.secret, "/s/iscsi-a.chap");
    assert_string_equal(p.initiator, "iqn.2026-12.org.vireo:h1");
    vo_iscsi_url_clear(&p);
    /* A pool's: no LUN. */
    assert_int_equal(vo_iscsi_url_parse("iscsi://h:1/" IQN, &p), 0);
    assert_int_equal(p.lun, -1);
    assert_null(p.user);
    vo_iscsi_url_clear(&p);
    const char *bad[] = { "/d/a.qcow2", "iscsi://", "iscsi://h:1", "iscsi://h:1/notaniqn/1",
                          "iscsi://h:1/" IQN "/x", "iscsi://h:1/" IQN "/1?other=1",
                          "iscsi://h:1/" IQN "/1?secret=relative", "iscsi://a b@h:1/" IQN,
                          "iscsi://h:99999/" IQN "/1" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_int_equal(vo_iscsi_url_parse(bad[i], &p), -EINVAL);
        assert_null(p.host);
    }
}

static void test_lun_volume_path(void **state)
{
    const char *pool = "iscsi://h:3260/" IQN "?initiator=iqn.2026-12.org.vireo:h1";
    _cleanup_free_ char *p = vo_volume_path(pool, "lun12", "qcow2");
    assert_string_equal(p, "iscsi://h:3260/" IQN "/12?initiator=iqn.2026-12.org.vireo:h1");
    assert_true(vo_path_inside(pool, p));
    assert_null(vo_volume_path(pool, "disk1", "raw"));
    assert_null(vo_volume_path(pool, "lun01", "raw"));
    assert_null(vo_volume_path(pool, "lun", "raw"));
    /* A dir pool's files are untouched. */
    _cleanup_free_ char *f = vo_volume_path("/srv/p", "lun1", "raw");
    assert_string_equal(f, "/srv/p/lun1.raw");
}

static char *pool_error(const char *text, VoPoolSpec *ret)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    char *error = NULL;
    int r = vo_pool_spec_from_json(doc, ret, &error);
    json_decref(doc);
    assert_true(r == 0 || (r == -EINVAL && error));
    return error;
}

static void test_pool_spec(void **state)
{
    VoPoolSpec s;
    assert_null(pool_error("{\"name\":\"san1\",\"type\":\"iscsi\",\"portal\":\"10.0.0.5\","
                           "\"target\":\"" IQN "\",\"chap_user\":\"u\",\"chap_secret\":\"x\"}", &s));
    assert_string_equal(s.type, "iscsi");
    assert_string_equal(s.portal, "10.0.0.5");
    assert_string_equal(s.chap_secret, "x");
    assert_null(s.path);
    vo_pool_spec_clear(&s);
    struct { const char *body, *want; } bad[] = {
        { "{\"name\":\"s\",\"type\":\"iscsi\",\"target\":\"" IQN "\"}", "portal" },
        { "{\"name\":\"s\",\"type\":\"iscsi\",\"portal\":\"h\",\"target\":\"x\"}", "target" },
        { "{\"name\":\"s\",\"type\":\"iscsi\",\"portal\":\"h\",\"target\":\"" IQN "\","
          "\"chap_user\":\"u\"}", "together" },
        { "{\"name\":\"s\",\"type\":\"iscsi\",\"portal\":\"h\",\"target\":\"" IQN "\","
          "\"path\":\"/x\"}", "path" },
        { "{\"name\":\"s\",\"type\":\"iscsi\",\"portal\":\"h\",\"target\":\"" IQN "\","
          "\"shared\":true}", "shared" },
        { "{\"name\":\"s\",\"path\":\"/x\",\"portal\":\"h\"}", "iscsi pools" },
        { "{\"name\":\"s\"}", "path" },
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        _cleanup_free_ char *e = pool_error(bad[i].body, &s);
        assert_non_null(e);
        if (!strstr(e, bad[i].want))
            fail_msg("%s: %s", bad[i].body, e);
    }
}

static void test_blockdev(void **state)
{
    VoDiskSpec chap = { .path = "iscsi://vireo@h:3260/" IQN "/2?secret=/s/a.chap", .slot = 3,
                        .format = VO_DISK_RAW };
    json_t *secret = vo_qemu_disk_secret_props(&chap);
    assert_non_null(secret);
    assert_string_equal(json_string_value(json_object_get(secret, "qom-type")), "secret");
    assert_string_equal(json_string_value(json_object_get(secret, "file")), "/s/a.chap");
    const char *id = json_string_value(json_object_get(secret, "id"));
    json_t *file = vo_qemu_disk_file_props(&chap);
    assert_string_equal(json_string_value(json_object_get(file, "driver")), "iscsi");
    assert_string_equal(json_string_value(json_object_get(file, "portal")), "h:3260");
    assert_string_equal(json_string_value(json_object_get(file, "target")), IQN);
    assert_int_equal(json_integer_value(json_object_get(file, "lun")), 2);
    assert_string_equal(json_string_value(json_object_get(file, "user")), "vireo");
    assert_string_equal(json_string_value(json_object_get(file, "password-secret")), id);
    /* The secret itself is in no argument; the iscsi driver has no locking. */
    assert_null(json_object_get(file, "locking"));
    assert_null(json_object_get(file, "password"));
    json_decref(secret);
    json_decref(file);
    VoDiskSpec plain = { .path = "iscsi://h:3260/" IQN "/0", .shareable = true };
    assert_null(vo_qemu_disk_secret_props(&plain));
    file = vo_qemu_disk_file_props(&plain);
    assert_int_equal(json_integer_value(json_object_get(file, "lun")), 0);
    assert_null(json_object_get(file, "user"));
    assert_null(json_object_get(file, "locking"));
    json_decref(file);
    VoDiskSpec local = { .path = "/d/a.qcow2" };
    assert_null(vo_qemu_disk_secret_props(&local));
}

/* Files are named plainly; a LUN by a "json:" spec of QEMU's iscsi driver
 * under its format (a qcow2 layer without backing), its CHAP secret an
 * --object read from the file. */
static void test_qemu_img_args(void **state)
{
    char **argv = NULL, *name = NULL, *error = NULL;
    assert_int_equal(vo_img_open_args(&argv, "a.qcow2", "qcow2", &name, &error), 0);
    assert_string_equal(name, "./a.qcow2");
    assert_null(argv);
    free(name);
    assert_int_equal(vo_img_open_args(&argv, "/d/a.qcow2", NULL, &name, &error), 0);
    assert_string_equal(name, "/d/a.qcow2");
    free(name);

    vo_strv_pushf(&argv, "info");
    assert_int_equal(vo_img_open_args(&argv, "iscsi://vireo@h:3260/" IQN "/2?secret=/s/a.chap"
                                      "&initiator=iqn.2026-12.org.vireo:h1", "qcow2", &name,
                                      &error), 0);
    assert_int_equal(vo_strv_len(argv), 3);
    assert_string_equal(argv[1], "--object");
    assert_string_equal(argv[2], "secret,id=vireo-secret1,format=raw,file=/s/a.chap");
    assert_true(!strncmp(name, "json:", 5));
    json_t *spec = json_loads(name + 5, 0, NULL), *file = json_object_get(spec, "file");
    assert_string_equal(json_string_value(json_object_get(spec, "driver")), "qcow2");
    /* No backing file a header names: a LUN is never a linked clone. */
    assert_true(json_is_null(json_object_get(spec, "backing")));
    assert_string_equal(json_string_value(json_object_get(file, "driver")), "iscsi");
    assert_string_equal(json_string_value(json_object_get(file, "portal")), "h:3260");
    assert_string_equal(json_string_value(json_object_get(file, "target")), IQN);
    assert_int_equal(json_integer_value(json_object_get(file, "lun")), 2);
    assert_string_equal(json_string_value(json_object_get(file, "initiator-name")),
                        "iqn.2026-12.org.vireo:h1");
    assert_string_equal(json_string_value(json_object_get(file, "user")), "vireo");
    assert_string_equal(json_string_value(json_object_get(file, "password-secret")),
                        "vireo-secret1");
    json_decref(spec);
    free(name);
    vo_strv_free(TAKE_PTR(argv));

    /* raw has no backing option. */
    assert_int_equal(vo_img_open_args(&argv, "iscsi://h:3260/" IQN "/1", "raw", &name, &error), 0);
    spec = json_loads(name + 5, 0, NULL);
    assert_null(json_object_get(spec, "backing"));
    json_decref(spec);
    free(name);

    /* No CHAP: no object; no format: the LUN's format probed. */
    assert_int_equal(vo_img_open_args(&argv, "iscsi://h:3260/" IQN "/0", NULL, &name, &error), 0);
    assert_null(argv);
    spec = json_loads(name + 5, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(spec, "driver")), "iscsi");
    assert_int_equal(json_integer_value(json_object_get(spec, "lun")), 0);
    json_decref(spec);
    free(name);

    /* A pool (no LUN), a bad string, a secret file QEMU's options would split. */
    const char *bad[] = { "iscsi://h:3260/" IQN, "iscsi://h", "iscsi://vireo@h:3260/" IQN
                          "/1?secret=/s/a,b.chap" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vo_img_open_args(&argv, bad[i], "raw", &name, &error), -EINVAL);
        assert_null(name);
        assert_null(argv);
        assert_non_null(error);
        free(TAKE_PTR(error));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_portal),          cmocka_unit_test(test_names),
        cmocka_unit_test(test_url_round_trip),  cmocka_unit_test(test_lun_volume_path),
        cmocka_unit_test(test_pool_spec),       cmocka_unit_test(test_blockdev),
        cmocka_unit_test(test_qemu_img_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
