/* test-storage.c: unit tests for the storage helpers: qemu-img JSON and
 * progress parsing, a real qemu-img round trip in a temporary directory, volume
 * keys and paths, and the pool containment check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "storage/image-header.h"
#include "storage/qemu-img.h"
#include "storage/volume-path.h"
#include "util/spawn.h"
#include "util/util.h"

/* A fresh directory under /tmp for each test that touches files, removed
 * afterwards even when an assertion fails. */
static int tmpdir_setup(void **state)
{
    char *dir = vo_strdup("/tmp/vireo-test-storage-XXXXXX");
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int tmpdir_teardown(void **state)
{
    char *dir = *state;
    int r = vo_rm_rf(dir);
    free(dir);
    return r < 0 ? -1 : 0;
}

/* ---- qemu-img info JSON ------------------------------------------------------ */

/* Recorded from `qemu-img info --output=json --backing-chain -U` (QEMU 10.0):
 * a qcow2 overlay over a raw base, with the "file" children they list. */
static const char chain_json[] =
    "[\n"
    "    {\n"
    "        \"children\": [\n"
    "            {\n"
    "                \"name\": \"file\",\n"
    "                \"info\": {\n"
    "                    \"children\": [\n"
    "                    ],\n"
    "                    \"virtual-size\": 197120,\n"
    "                    \"filename\": \"/pool/ov.qcow2\",\n"
    "                    \"format\": \"file\",\n"
    "                    \"actual-size\": 200704,\n"
    "                    \"format-specific\": {\"type\": \"file\", \"data\": {}},\n"
    "                    \"dirty-flag\": false\n"
    "                }\n"
    "            }\n"
    "        ],\n"
    "        \"backing-filename-format\": \"raw\",\n"
    "        \"virtual-size\": 1048576,\n"
    "        \"filename\": \"/pool/ov.qcow2\",\n"
    "        \"cluster-size\": 65536,\n"
    "        \"format\": \"qcow2\",\n"
    "        \"actual-size\": 200704,\n"
    "        \"format-specific\": {\n"
    "            \"type\": \"qcow2\",\n"
    "            \"data\": {\"compat\": \"1.1\", \"compression-type\": \"zlib\",\n"
    "                     \"lazy-refcounts\": false, \"refcount-bits\": 16,\n"
    "                     \"corrupt\": false, \"extended-l2\": false}\n"
    "        },\n"
    "        \"full-backing-filename\": \"/images/base.raw\",\n"
    "        \"backing-filename\": \"/images/base.raw\",\n"
    "        \"dirty-flag\": false\n"
    "    },\n"
    "    {\n"
    "        \"children\": [\n"
    "            {\n"
    "                \"name\": \"file\",\n"
    "                \"info\": {\n"
    "                    \"children\": [\n"
    "                    ],\n"
    "                    \"virtual-size\": 1048576,\n"
    "                    \"filename\": \"/images/base.raw\",\n"
    "                    \"format\": \"file\",\n"
    "                    \"actual-size\": 4096,\n"
    "                    \"format-specific\": {\"type\": \"file\", \"data\": {}},\n"
    "                    \"dirty-flag\": false\n"
    "                }\n"
    "            }\n"
    "        ],\n"
    "        \"virtual-size\": 1048576,\n"
    "        \"filename\": \"/images/base.raw\",\n"
    "        \"format\": \"raw\",\n"
    "        \"actual-size\": 4096,\n"
    "        \"dirty-flag\": false\n"
    "    }\n"
    "]\n";

static void test_info_parse_chain(void **state)
{
    VoImgInfo info;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_img_info_parse(chain_json, &info, &err), 0);
    assert_null(err);
    assert_int_equal(info.n_layers, 2);
    assert_string_equal(info.layers[0].path, "/pool/ov.qcow2");
    assert_string_equal(info.layers[0].format, "qcow2");
    assert_int_equal(info.layers[0].virtual_size, 1048576);
    assert_int_equal(info.layers[0].actual_size, 200704);
    assert_string_equal(info.layers[1].path, "/images/base.raw");
    assert_string_equal(info.layers[1].format, "raw");
    assert_int_equal(info.layers[1].virtual_size, 1048576);
    assert_int_equal(info.layers[1].actual_size, 4096);
    vo_img_info_clear(&info);
    assert_int_equal(info.n_layers, 0);
    assert_null(info.layers);
}

static void test_info_parse_single(void **state)
{
    VoImgInfo info;
    _cleanup_free_ char *err = NULL;
    const char *single = "{\"virtual-size\": 67108864, \"filename\": \"disk.vmdk\", "
                         "\"format\": \"vmdk\", \"actual-size\": 65536, \"dirty-flag\": false}";
    assert_int_equal(vo_img_info_parse(single, &info, &err), 0);
    assert_int_equal(info.n_layers, 1);
    assert_string_equal(info.layers[0].path, "disk.vmdk");
    assert_string_equal(info.layers[0].format, "vmdk");
    assert_int_equal(info.layers[0].virtual_size, 67108864);
    assert_int_equal(info.layers[0].actual_size, 65536);
    vo_img_info_clear(&info);

    /* No "actual-size" (some formats and protocols): 0, not an error. */
    const char *no_actual = "[{\"virtual-size\": 1024, \"filename\": \"x\", \"format\": \"raw\"}]";
    assert_int_equal(vo_img_info_parse(no_actual, &info, &err), 0);
    assert_int_equal(info.n_layers, 1);
    assert_int_equal(info.layers[0].actual_size, 0);
    vo_img_info_clear(&info);
}

static void test_info_parse_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[{\"filename\": \"x\"",
        "[]",
        "42",
        "\"a string\"",
        "[42]",
        "[{\"virtual-size\": 1, \"format\": \"raw\"}]",                      /* no filename */
        "[{\"virtual-size\": 1, \"filename\": \"x\"}]",                      /* no format */
        "[{\"filename\": \"x\", \"format\": \"raw\"}]",                      /* no virtual-size */
        "[{\"virtual-size\": \"1\", \"filename\": \"x\", \"format\": \"raw\"}]",
        "[{\"virtual-size\": -1, \"filename\": \"x\", \"format\": \"raw\"}]",
        "[{\"virtual-size\": 1, \"filename\": \"\", \"format\": \"raw\"}]",
        "[{\"virtual-size\": 1, \"filename\": 7, \"format\": \"raw\"}]",
        "[{\"virtual-size\": 1, \"filename\": \"x\", \"format\": \"raw\", \"actual-size\": 1.5}]",
        "[{\"virtual-size\": 1, \"filename\": \"x\", \"filename\": \"y\", \"format\": \"raw\"}]",
        /* a good layer, then a broken one: nothing is kept */
        "[{\"virtual-size\": 1, \"filename\": \"x\", \"format\": \"qcow2\"}, {\"format\": \"raw\"}]",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        VoImgInfo info = { .n_layers = 99 };
        char *err = NULL;
        int r = vo_img_info_parse(bad[i], &info, &err);
        if (r != -EINVAL)
            fail_msg("case %zu (%s): got %d", i, bad[i], r);
        assert_non_null(err);
        assert_true(err[0] != 0);
        assert_int_equal(info.n_layers, 0);
        assert_null(info.layers);
        free(err);
    }
    VoImgInfo info;
    assert_int_equal(vo_img_info_parse(NULL, &info, NULL), -EINVAL);
    assert_int_equal(vo_img_info_parse("[{}]", &info, NULL), -EINVAL);
}

/* ---- progress ------------------------------------------------------------------ */

static void test_parse_progress(void **state)
{
    assert_int_equal(vo_img_parse_progress("    (0.00/100%)\r"), 0);
    assert_int_equal(vo_img_parse_progress("(100.00/100%)"), 100);
    assert_int_equal(vo_img_parse_progress("(45.5/100%)"), 45);
    assert_int_equal(vo_img_parse_progress("    (12.34/100%)\r    (56.78/100%)\r"), 56);
    assert_int_equal(vo_img_parse_progress("(99/100%)"), 99);
    assert_int_equal(vo_img_parse_progress("garbage"), -1);
    assert_int_equal(vo_img_parse_progress(""), -1);
    assert_int_equal(vo_img_parse_progress(NULL), -1);
    assert_int_equal(vo_img_parse_progress("(/100%)"), -1);
    assert_int_equal(vo_img_parse_progress("(12./100%)"), -1);
    assert_int_equal(vo_img_parse_progress("(101.00/100%)"), -1);
    assert_int_equal(vo_img_parse_progress("(1000/100%)"), -1);
    assert_int_equal(vo_img_parse_progress("(50.00/200%)"), -1);
    assert_int_equal(vo_img_parse_progress("(50.00/100"), -1);
    assert_int_equal(vo_img_parse_progress("qemu-img: Could not open 'x' (12.00/100%"), -1);
}

/* ---- a real round trip through qemu-img ---------------------------------------- */

typedef struct {
    int calls;
    int last;
    bool decreased;
} Seen;

static void on_progress(int percent, void *userdata)
{
    Seen *s = userdata;
    if (percent < s->last || percent < 0 || percent > 100)
        s->decreased = true;
    s->last = percent;
    s->calls++;
}

static bool have_qemu_img(void)
{
    char *argv[] = { "qemu-img", "--version", NULL };
    _cleanup_free_ char *out = NULL;
    return vo_spawn_wait(argv, 30000, &out) == 0;
}

static void info_one(const char *path, const char *format, const char *want_format,
                     uint64_t want_size)
{
    VoImgInfo info;
    _cleanup_free_ char *err = NULL;
    int r = vo_img_info(path, format, &info, &err);
    if (r < 0)
        fail_msg("info %s: %d %s", path, r, err ? err : "");
    assert_int_equal(info.n_layers, 1);
    assert_string_equal(info.layers[0].path, path);
    assert_string_equal(info.layers[0].format, want_format);
    assert_int_equal(info.layers[0].virtual_size, want_size);
    vo_img_info_clear(&info);
}

/* The pinned chain spec names every layer's file and backing, the base's
 * backing null, and escapes what a path holds. */
static void test_chain_spec(void **state)
{
    (void)state;
    char *layers[] = { "/p/b2/disk-0.qcow2", "/p/b1/disk-0.qcow2", "/p/b0/d\"q,0.qcow2" };
    _cleanup_free_ char *spec = vo_img_chain_spec(layers, 3);
    assert_non_null(spec);
    assert_string_equal(spec,
        "json:{\"backing\":{\"backing\":{\"backing\":null,\"driver\":\"qcow2\","
        "\"file\":{\"driver\":\"file\",\"filename\":\"/p/b0/d\\\"q,0.qcow2\"}},"
        "\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/p/b1/disk-0.qcow2\"}},"
        "\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/p/b2/disk-0.qcow2\"}}");
    _cleanup_free_ char *one = vo_img_chain_spec(layers, 1);
    assert_string_equal(one, "json:{\"backing\":null,\"driver\":\"qcow2\",\"file\":{\"driver\":"
                             "\"file\",\"filename\":\"/p/b2/disk-0.qcow2\"}}");
    assert_null(vo_img_chain_spec(layers, 0));
    char *relative[] = { "/p/top.qcow2", "json:{}" };
    assert_null(vo_img_chain_spec(relative, 2));
}

static void fill_file(const char *path, char byte, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    char buf[4096];
    memset(buf, byte, sizeof(buf));
    for (size_t done = 0; done < size; done += sizeof(buf))
        assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
}

static bool file_all(const char *path, char byte)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int c;
    size_t n = 0;
    bool all = true;
    while ((c = fgetc(f)) != EOF) {
        n++;
        all = all && c == (unsigned char)byte;
    }
    fclose(f);
    return all && n > 0;
}

/* A top whose header was changed after the check to back onto a host file:
 * the plain convert reads that file, the pinned chain reads only its layers. */
static void test_convert_chain_pins_backing(void **state)
{
    if (!have_qemu_img())
        skip();
    const char *dir = *state;
    _cleanup_free_ char *secret = vo_asprintf("%s/secret.raw", dir);
    _cleanup_free_ char *data = vo_asprintf("%s/data.raw", dir);
    _cleanup_free_ char *base = vo_asprintf("%s/base.qcow2", dir);
    _cleanup_free_ char *top = vo_asprintf("%s/top.qcow2", dir);
    _cleanup_free_ char *plain = vo_asprintf("%s/plain.raw", dir);
    _cleanup_free_ char *pinned = vo_asprintf("%s/pinned.raw", dir);
    _cleanup_free_ char *alone = vo_asprintf("%s/alone.raw", dir);
    char *err = NULL;
    fill_file(secret, 'S', 1 << 20);
    fill_file(data, 'D', 1 << 20);
    assert_int_equal(vo_img_convert(data, "raw", base, "qcow2", NULL, NULL, &err), 0);
    assert_int_equal(vo_img_create(top, "qcow2", 0, base, "qcow2", &err), 0);
    char *rebase[] = { "qemu-img", "rebase", "-u", "-F", "raw", "-b", secret, top, NULL };
    _cleanup_free_ char *out = NULL;
    assert_int_equal(vo_spawn_wait(rebase, 30000, &out), 0);

    assert_int_equal(vo_img_convert(top, "qcow2", plain, "raw", NULL, NULL, &err), 0);
    assert_true(file_all(plain, 'S'));
    char *layers[] = { top, base };
    int r = vo_img_convert_chain(layers, 2, pinned, "raw", 0, NULL, NULL, &err);
    if (r < 0)
        fail_msg("convert chain: %d %s", r, err);
    assert_true(file_all(pinned, 'D'));
    assert_int_equal(vo_img_convert_chain(layers, 1, alone, "raw", 0, NULL, NULL, &err), 0);
    assert_true(file_all(alone, 0));
    assert_null(err);
}

static void test_qemu_img_round_trip(void **state)
{
    if (!have_qemu_img())
        skip();
    const char *dir = *state;
    _cleanup_free_ char *base = vo_asprintf("%s/base.raw", dir);
    _cleanup_free_ char *overlay = vo_asprintf("%s/overlay.qcow2", dir);
    _cleanup_free_ char *flat = vo_asprintf("%s/flat.qcow2", dir);
    _cleanup_free_ char *junk = vo_asprintf("%s/junk.vmdk", dir);
    _cleanup_free_ char *junk_out = vo_asprintf("%s/junk.qcow2", dir);
    _cleanup_free_ char *orphan = vo_asprintf("%s/orphan.qcow2", dir);
    char *err = NULL;

    /* raw 1M, and a qcow2 overlay taking the backing file's size */
    assert_int_equal(vo_img_create(base, "raw", 1 << 20, NULL, NULL, &err), 0);
    assert_null(err);
    assert_int_equal(vo_img_create(overlay, "qcow2", 0, base, "raw", &err), 0);
    assert_null(err);

    VoImgInfo info;
    int r = vo_img_info(overlay, NULL, &info, &err);
    if (r < 0)
        fail_msg("info: %d %s", r, err);
    assert_int_equal(info.n_layers, 2);
    assert_string_equal(info.layers[0].path, overlay);
    assert_string_equal(info.layers[0].format, "qcow2");
    assert_int_equal(info.layers[0].virtual_size, 1 << 20);
    assert_true(info.layers[0].actual_size > 0);
    assert_string_equal(info.layers[1].path, base);
    assert_string_equal(info.layers[1].format, "raw");
    assert_int_equal(info.layers[1].virtual_size, 1 << 20);
    vo_img_info_clear(&info);

    /* Never over an existing file, and that file is left alone. */
    assert_int_equal(vo_img_create(base, "qcow2", 4096, NULL, NULL, &err), -EEXIST);
    assert_non_null(err);
    free(TAKE_PTR(err));
    info_one(base, "raw", "raw", 1 << 20);

    /* A failed create leaves nothing behind. */
    _cleanup_free_ char *nowhere = vo_asprintf("%s/no-such-base.raw", dir);
    assert_int_equal(vo_img_create(orphan, "qcow2", 0, nowhere, "raw", &err), -EIO);
    assert_non_null(err);
    assert_non_null(strstr(err, "no-such-base.raw"));
    free(TAKE_PTR(err));
    assert_int_equal(access(orphan, F_OK), -1);

    /* Flatten the overlay into a standalone qcow2. */
    Seen seen = { .last = -1 };
    r = vo_img_convert(overlay, "qcow2", flat, "qcow2", on_progress, &seen, &err);
    if (r < 0)
        fail_msg("convert: %d %s", r, err);
    assert_true(seen.calls >= 1);
    assert_false(seen.decreased);
    assert_int_equal(seen.last, 100);
    info_one(flat, NULL, "qcow2", 1 << 20);

    /* Convert refuses to write over an existing file. */
    assert_int_equal(vo_img_convert(overlay, "qcow2", base, "raw", NULL, NULL, &err), -EEXIST);
    free(TAKE_PTR(err));
    info_one(base, "raw", "raw", 1 << 20);

    /* Grow; shrinking needs shrink=true. */
    assert_int_equal(vo_img_resize(flat, "qcow2", 2 << 20, false, &err), 0);
    assert_null(err);
    info_one(flat, "qcow2", "qcow2", 2 << 20);
    assert_int_equal(vo_img_resize(base, "raw", 512 << 10, false, &err), -EIO);
    assert_non_null(err);
    if (!strstr(err, "--shrink"))
        fail_msg("err: %s", err);
    free(TAKE_PTR(err));
    assert_int_equal(vo_img_resize(base, "raw", 512 << 10, true, &err), 0);
    assert_null(err);
    info_one(base, "raw", "raw", 512 << 10);

    /* Garbage read as vmdk: -EIO, qemu-img's error, no output file. */
    {
        _cleanup_close_ int fd = open(junk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        char garbage[8192];
        for (size_t i = 0; i < sizeof(garbage); i++)
            garbage[i] = (char)(i * 7 + 3);
        assert_int_equal(write(fd, garbage, sizeof(garbage)), (ssize_t)sizeof(garbage));
    }
    seen = (Seen){ .last = -1 };
    assert_int_equal(vo_img_convert(junk, "vmdk", junk_out, "qcow2", on_progress, &seen, &err),
                     -EIO);
    assert_non_null(err);
    assert_non_null(strstr(err, "junk.vmdk"));
    assert_null(strchr(err, '\n'));
    free(TAKE_PTR(err));
    assert_int_equal(access(junk_out, F_OK), -1);
    assert_int_equal(errno, ENOENT);

    /* Bad arguments never reach qemu-img. */
    assert_int_equal(vo_img_create(orphan, "qcow2,x", 4096, NULL, NULL, &err), -EINVAL);
    free(TAKE_PTR(err));
    assert_int_equal(vo_img_create(orphan, "qcow2", 0, base, NULL, &err), -EINVAL);
    free(TAKE_PTR(err));
    assert_int_equal(access(orphan, F_OK), -1);
}

/* ---- keys, paths and containment ------------------------------------------- */

static void test_key_split(void **state)
{
    char *pool = NULL, *name = NULL;
    assert_int_equal(vo_volume_key_split("default/web1", &pool, &name), 0);
    assert_string_equal(pool, "default");
    assert_string_equal(name, "web1");
    free(pool);
    free(name);

    static const char *const bad[] = { "a/b/c", "../x", "a/", "/b", "A/b", "a", "", "/",
                                       "a//b", "a/-b", "a/b.qcow2", "a/B" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        pool = name = NULL;
        if (vo_volume_key_split(bad[i], &pool, &name) != -EINVAL)
            fail_msg("key '%s' accepted", bad[i]);
        assert_null(pool);
        assert_null(name);
    }
    assert_int_equal(vo_volume_key_split(NULL, &pool, &name), -EINVAL);
}

static void test_volume_path(void **state)
{
    _cleanup_free_ char *a = vo_volume_path("/pools/default", "web1-disk0", "qcow2");
    assert_string_equal(a, "/pools/default/web1-disk0.qcow2");
    _cleanup_free_ char *b = vo_volume_path("/pools/default/", "data", "raw");
    assert_string_equal(b, "/pools/default/data.raw");
    assert_null(vo_volume_path("/pools/default", "../x", "qcow2"));
    assert_null(vo_volume_path("/pools/default", "a/b", "qcow2"));
    assert_null(vo_volume_path("/pools/default", "x", "vmdk"));
    assert_null(vo_volume_path("/pools/default", "", "raw"));
    assert_null(vo_volume_path("/pools/default", "x", NULL));
    assert_null(vo_volume_path(NULL, "x", "raw"));
}

static void test_path_inside(void **state)
{
    const char *dir = *state;
    _cleanup_free_ char *file = vo_asprintf("%s/disk.qcow2", dir);
    _cleanup_free_ char *evil = vo_asprintf("%s/evil.qcow2", dir);
    _cleanup_free_ char *dangling = vo_asprintf("%s/dangling.qcow2", dir);
    _cleanup_free_ char *alias = vo_asprintf("%s/alias.qcow2", dir);
    _cleanup_free_ char *missing = vo_asprintf("%s/missing.qcow2", dir);
    _cleanup_free_ char *dotdot = vo_asprintf("%s/../x", dir);
    _cleanup_free_ char *sub = vo_asprintf("%s/sub", dir);
    _cleanup_free_ char *subfile = vo_asprintf("%s/sub/disk.qcow2", dir);
    _cleanup_free_ char *submissing = vo_asprintf("%s/sub/new.qcow2", dir);
    _cleanup_free_ char *subup = vo_asprintf("%s/sub/../disk.qcow2", dir);
    _cleanup_free_ char *dot = vo_asprintf("%s/.", dir);
    _cleanup_free_ char *up = vo_asprintf("%s/..", dir);
    _cleanup_free_ char *trailing = vo_asprintf("%s/disk.qcow2/", dir);
    _cleanup_free_ char *slashed = vo_asprintf("%s/", dir);

    assert_int_equal(vo_write_file_atomic(file, "x", 1), 0);
    assert_int_equal(symlink("/etc/passwd", evil), 0);
    assert_int_equal(symlink("/etc/vireo-test-no-such-file", dangling), 0);
    assert_int_equal(symlink("disk.qcow2", alias), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(vo_write_file_atomic(subfile, "x", 1), 0);

    assert_true(vo_path_inside(dir, file));
    assert_true(vo_path_inside(slashed, file));
    assert_false(vo_path_inside(dir, evil));
    assert_false(vo_path_inside(dir, dangling));
    assert_true(vo_path_inside(dir, alias)); /* resolves to a file in the pool */
    assert_true(vo_path_inside(dir, missing));
    assert_false(vo_path_inside(dir, dotdot));
    assert_false(vo_path_inside(dir, sub)); /* a directory */
    assert_false(vo_path_inside(dir, subfile));
    assert_false(vo_path_inside(dir, submissing));
    assert_true(vo_path_inside(dir, subup)); /* resolves to disk.qcow2 */
    assert_false(vo_path_inside(dir, dot));
    assert_false(vo_path_inside(dir, up));
    assert_false(vo_path_inside(dir, dir));
    assert_false(vo_path_inside(dir, trailing));
    assert_false(vo_path_inside(dir, "/etc/passwd"));
    assert_false(vo_path_inside(dir, ""));
    assert_false(vo_path_inside(NULL, file));
    assert_false(vo_path_inside("/nonexistent-vireo-pool", "/nonexistent-vireo-pool/x"));

    /* A pool reached through a symlink is the same pool. */
    _cleanup_free_ char *link_dir = vo_asprintf("%s/sub/pool-link", dir);
    _cleanup_free_ char *via_link = vo_asprintf("%s/disk.qcow2", link_dir);
    assert_int_equal(symlink(dir, link_dir), 0);
    assert_true(vo_path_inside(link_dir, file));
    assert_true(vo_path_inside(dir, via_link));
}

static void test_fs_usage(void **state)
{
    unsigned long long capacity = 0, available = 0, used = 0;
    assert_int_equal(vo_fs_usage("/tmp", &capacity, &available, &used), 0);
    assert_true(capacity > 0);
    assert_true(available <= capacity);
    assert_true(used <= capacity);
    assert_int_equal(vo_fs_usage("/tmp", NULL, NULL, NULL), 0);
    assert_int_equal(vo_fs_usage("/nonexistent-vireo-dir", &capacity, &available, &used),
                     -ENOENT);
}

/* The header reader agrees with qemu-img on a 3-layer chain, including a
 * relative backing name, and stops at a raw base. */
static void test_header_chain(void **state)
{
    if (!have_qemu_img())
        skip();
    const char *dir = *state;
    _cleanup_free_ char *base = vo_asprintf("%s/base.raw", dir);
    _cleanup_free_ char *mid = vo_asprintf("%s/mid.qcow2", dir);
    _cleanup_free_ char *top = vo_asprintf("%s/top.qcow2", dir);
    char *err = NULL;
    assert_int_equal(vo_img_create(base, "raw", 2 << 20, NULL, NULL, &err), 0);
    assert_int_equal(vo_img_create(mid, "qcow2", 0, base, "raw", &err), 0);
    /* a relative backing name, as qemu-img writes it when given one */
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "mid.qcow2",
                     top, "4M", NULL };
    _cleanup_free_ char *out = NULL;
    assert_int_equal(vo_spawn_wait(argv, 30000, &out), 0);

    VoImgInfo h, q;
    char *roots[] = { (char *)dir, NULL };
    assert_int_equal(vo_img_header_chain(top, "qcow2", roots, &h), 0);
    assert_int_equal(vo_img_info(top, "qcow2", &q, &err), 0);
    assert_int_equal(h.n_layers, 3);
    assert_int_equal(q.n_layers, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(h.layers[i].format, q.layers[i].format);
        assert_int_equal(h.layers[i].virtual_size, q.layers[i].virtual_size);
    }
    assert_int_equal(h.layers[0].virtual_size, 4 << 20);
    assert_string_equal(h.layers[1].path, mid);
    assert_string_equal(h.layers[2].path, base);
    vo_img_info_clear(&h);
    vo_img_info_clear(&q);

    /* A missing backing file is an error, not a short chain. */
    assert_int_equal(unlink(base), 0);
    assert_int_equal(vo_img_header_chain(top, "qcow2", roots, &h), -ENOENT);
    assert_int_equal(h.n_layers, 0);
}

/* A raw file is never read as qcow2, even when its first bytes (the guest's)
 * are a qcow2 header naming a FIFO; and a qcow2 whose backing file is outside
 * the trusted directories ends its chain there, reported, not opened. */
static void test_header_chain_untrusted(void **state)
{
    if (!have_qemu_img())
        skip();
    const char *dir = *state;
    _cleanup_free_ char *pool = vo_asprintf("%s/pool", dir);
    _cleanup_free_ char *outside = vo_asprintf("%s/outside", dir);
    _cleanup_free_ char *fifo = vo_asprintf("%s/fifo", outside);
    _cleanup_free_ char *raw = vo_asprintf("%s/guest.raw", pool);
    _cleanup_free_ char *img = vo_asprintf("%s/escape.qcow2", pool);
    _cleanup_free_ char *host = vo_asprintf("%s/host.qcow2", outside);
    assert_int_equal(mkdir(pool, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char *err = NULL;
    /* What a guest can write into its raw disk: a qcow2 header naming the FIFO. */
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", fifo,
                     raw, "1M", NULL };
    _cleanup_free_ char *out = NULL;
    assert_int_equal(vo_spawn_wait(argv, 30000, &out), 0);
    char *roots[] = { pool, NULL };
    VoImgInfo h;
    assert_int_equal(vo_img_header_chain(raw, "raw", roots, &h), 0);
    assert_int_equal(h.n_layers, 1);
    assert_string_equal(h.layers[0].format, "raw");
    vo_img_info_clear(&h);
    /* Read as qcow2 (it is not, by its record): the FIFO is outside, not followed. */
    assert_int_equal(vo_img_header_chain(raw, "qcow2", roots, &h), 0);
    assert_int_equal(h.n_layers, 2);
    assert_string_equal(h.layers[1].format, VO_IMG_UNTRUSTED);
    assert_string_equal(h.layers[1].path, fifo);
    vo_img_info_clear(&h);
    /* A FIFO inside the pool is not waited on either. */
    _cleanup_free_ char *inner = vo_asprintf("%s/inner", pool);
    assert_int_equal(mkfifo(inner, 0600), 0);
    assert_int_equal(vo_img_header_chain(inner, "raw", roots, &h), -EINVAL);
    /* A regular file outside, through a relative name that climbs out. */
    assert_int_equal(vo_img_create(host, "qcow2", 1 << 20, NULL, NULL, &err), 0);
    char *argv2[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b",
                      "../outside/host.qcow2", img, "1M", NULL };
    _cleanup_free_ char *out2 = NULL;
    assert_int_equal(vo_spawn_wait(argv2, 30000, &out2), 0);
    assert_int_equal(vo_img_header_chain(img, "qcow2", roots, &h), 0);
    assert_int_equal(h.n_layers, 2);
    assert_string_equal(h.layers[1].format, VO_IMG_UNTRUSTED);
    vo_img_info_clear(&h);
    /* ... and a symlink inside the pool pointing out is resolved, then refused. */
    _cleanup_free_ char *link = vo_asprintf("%s/link.qcow2", pool);
    assert_int_equal(symlink(host, link), 0);
    char *argv3[] = { "qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b",
                      "link.qcow2", img, NULL };
    _cleanup_free_ char *out3 = NULL;
    assert_int_equal(vo_spawn_wait(argv3, 30000, &out3), 0);
    assert_int_equal(vo_img_header_chain(img, "qcow2", roots, &h), 0);
    assert_int_equal(h.n_layers, 2);
    assert_string_equal(h.layers[1].format, VO_IMG_UNTRUSTED);
    vo_img_info_clear(&h);
    /* With the outside directory trusted too, the chain goes on. */
    char *both[] = { pool, outside, NULL };
    assert_int_equal(vo_img_header_chain(img, "qcow2", both, &h), 0);
    assert_int_equal(h.n_layers, 2);
    assert_string_equal(h.layers[1].format, "qcow2");
    vo_img_info_clear(&h);
    assert_true(vo_path_under(dir, host));
    assert_false(vo_path_under(pool, host));
    assert_false(vo_path_under(pool, pool));
    free(err);
}

/* Found by fuzz-image-header: a header with two backing-format extensions
 * leaked the first one's name (LeakSanitizer fails this test without the
 * fix). The last extension counts. */
static void test_header_two_backing_formats(void **state)
{
    uint8_t hdr[512] = { 0 };
    const uint8_t magic[] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
    memcpy(hdr, magic, sizeof(magic));
    hdr[103] = 104; /* header_length: extensions start at 104 */
    const uint8_t ext_type[] = { 0xe2, 0x79, 0x2a, 0xca };
    size_t off = 104;
    const char *names[] = { "raw", "qcow2" };
    for (size_t i = 0; i < 2; i++) {
        memcpy(hdr + off, ext_type, 4);
        hdr[off + 7] = (uint8_t)strlen(names[i]);
        memcpy(hdr + off + 8, names[i], strlen(names[i]));
        off += 8 + 8;
    }
    int fd = memfd_create("two-formats", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    VoQcow2Header h;
    assert_int_equal(vo_qcow2_header_read(fd, &h), 0);
    assert_string_equal(h.backing_format, "qcow2");
    assert_null(h.backing);
    vo_qcow2_header_clear(&h);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_parse_chain),
        cmocka_unit_test(test_info_parse_single),
        cmocka_unit_test(test_info_parse_errors),
        cmocka_unit_test(test_parse_progress),
        cmocka_unit_test_setup_teardown(test_qemu_img_round_trip, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(test_chain_spec),
        cmocka_unit_test_setup_teardown(test_convert_chain_pins_backing, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_header_chain, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_header_chain_untrusted, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test(test_header_two_backing_formats),
        cmocka_unit_test(test_key_split),
        cmocka_unit_test(test_volume_path),
        cmocka_unit_test_setup_teardown(test_path_inside, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(test_fs_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
