/* test-rrd.c: the monitoring history (metrics/rrd.h): averaging into
 * slots, unknown values, gaps, the clock going back, ring wrap-around,
 * counters that wrap or reset, the file's round trip and what a damaged
 * file gives (a row, the header, the whole file); and the QEMU blockstats
 * sum (qemu/qemu-stats.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics/rrd.h"
#include "metrics/proc-io.h"
#include "qemu/qemu-stats.h"
#include "util/util.h"

static const char *const names[] = { "a", "b", "c" };
static const char *const units[] = { "bytes", "ratio", "ops/s" };

/* The values of column c of archive a, as numbers (null: NAN). */
static size_t values(const VoRrd *r, unsigned a, unsigned c, int64_t *ts, double *out)
{
    json_t *j = vo_rrd_series_json(r, a, names, units);
    json_t *t = json_object_get(j, "timestamps");
    json_t *v = json_object_get(json_object_get(json_object_get(j, "series"), names[c]), "values");
    assert_int_equal(json_array_size(t), json_array_size(v));
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        ts[i] = json_integer_value(json_array_get(t, i));
        json_t *x = json_array_get(v, i);
        out[i] = json_is_null(x) ? NAN : json_number_value(x);
    }
    json_decref(j);
    return n;
}

static void test_consolidation(void **state)
{
    VoRrd *r = vo_rrd_new(2);
    int64_t ts[2000];
    double v[2000];
    /* t 1000..1059: six 10-s slots, one 1-min slot (960..1019 and 1020..). */
    for (int t = 1000; t < 1060; t += 2)
        vo_rrd_update(r, t, (double[]){ t, t >= 1030 ? NAN : 0.5 });
    size_t n = values(r, 0, 0, ts, v);
    assert_int_equal(n, 6);
    assert_int_equal(ts[0], 1000);
    assert_int_equal(ts[5], 1050); /* the slot in progress, last */
    assert_float_equal(v[0], 1004, 1e-3); /* 1000..1008 averaged */
    assert_float_equal(v[5], 1054, 1e-3);
    n = values(r, 0, 1, ts, v);
    assert_float_equal(v[2], 0.5, 1e-6);
    assert_true(isnan(v[3])); /* only unknowns in that slot */
    /* The 1-min archive: 960..1019 (t 1000..1018) and 1020.. in progress. */
    n = values(r, 1, 0, ts, v);
    assert_int_equal(n, 2);
    assert_int_equal(ts[0], 960);
    assert_float_equal(v[0], 1009, 1e-3);
    assert_float_equal(v[1], 1039, 1e-3);
    /* The clock goes back: ignored. */
    vo_rrd_update(r, 990, (double[]){ 1e9, 1e9 });
    n = values(r, 0, 0, ts, v);
    assert_int_equal(n, 6);
    assert_float_equal(v[5], 1054, 1e-3);
    /* A gap of 5 minutes: the missing slots are absent, not zeros. */
    vo_rrd_update(r, 1400, (double[]){ 7, 7 });
    vo_rrd_update(r, 1410, (double[]){ 9, 9 });
    n = values(r, 0, 0, ts, v);
    assert_int_equal(n, 8);
    assert_int_equal(ts[6], 1400);
    assert_float_equal(v[6], 7, 1e-6);
    /* Wrap-around: 2 hours later only the last hour's 360 slots remain. */
    for (int t = 2000; t < 2000 + 7200; t += 10)
        vo_rrd_update(r, t, (double[]){ 1, 1 });
    n = values(r, 0, 0, ts, v);
    assert_int_equal(n, 360);
    assert_int_equal(ts[359], 2000 + 7190);
    assert_int_equal(ts[0], 2000 + 7190 - 3590);
    /* The 30-d archive averaged everything of its 30-min slots. */
    n = values(r, 2, 0, ts, v);
    assert_true(n >= 4 && n <= 6);
    assert_float_equal(v[n - 1], 1, 1e-6);
    vo_rrd_free(r);
    assert_null(vo_rrd_new(0));
    assert_null(vo_rrd_new(VO_RRD_MAX_COLS + 1));
    assert_int_equal(vo_rrd_archive_index("1h"), 0);
    assert_int_equal(vo_rrd_archive_index("30d"), 2);
    assert_int_equal(vo_rrd_archive_index("2h"), -1);
    assert_int_equal(vo_rrd_archive_index(NULL), -1);
}

/* A rate measured over 8 s (rounds skipped while the VM was busy) counts
 * for 8 s of its slot, not for one sample among equals: 80 bytes/s for 8 s
 * and 0 for the 2 other seconds average to 64, so the slot's total stays
 * the 640 bytes written. */
static void test_weighted_samples(void **state)
{
    (void)state;
    VoRrd *r = vo_rrd_new(2);
    vo_rrd_update_weighted(r, 2000, (double[]){ 0, 5 }, (double[]){ 1, 1 });
    vo_rrd_update_weighted(r, 2001, (double[]){ 0, 5 }, (double[]){ 1, NAN });
    vo_rrd_update_weighted(r, 2009, (double[]){ 80, 5 }, (double[]){ 8, 0 });
    vo_rrd_update(r, 2010, (double[]){ 1, 1 });
    int64_t ts[8];
    double v[8];
    size_t n = values(r, 0, 0, ts, v);
    assert_int_equal(n, 2);
    assert_float_equal(v[0] * 10, 640, 1e-3);
    n = values(r, 0, 1, ts, v);
    assert_float_equal(v[0], 5, 1e-6); /* NaN or 0 weights count as 1 */
    vo_rrd_free(r);
}

static void test_counter_rate(void **state)
{
    assert_float_equal(vo_rrd_counter_rate(100, 1100, 10), 100, 1e-9);
    assert_float_equal(vo_rrd_counter_rate(5, 5, 10), 0, 1e-9);
    /* 32-bit wrap: 0xFFFFFF00 to 0x100 is 0x200 bytes. */
    assert_float_equal(vo_rrd_counter_rate(0xFFFFFF00u, 0x100, 2), 256, 1e-9);
    /* A reset (a new QEMU): unknown, not a huge or negative rate. */
    assert_true(isnan(vo_rrd_counter_rate(UINT64_C(50000000000), 1000, 10)));
    assert_true(isnan(vo_rrd_counter_rate(1000, 10, 10)));
    assert_true(isnan(vo_rrd_counter_rate(1, 2, 0)));
    assert_true(isnan(vo_rrd_counter_rate(1, 2, -1)));
}

static char *tmp_path(void)
{
    char dir[] = "/tmp/test-rrd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    return vo_asprintf("%s/x.rrd", dir);
}

static void cleanup(char *path)
{
    unlink(path);
    *strrchr(path, '/') = 0;
    rmdir(path);
    free(path);
}

static void fill(VoRrd *r)
{
    for (int t = 10000; t < 10000 + 600; t += 5)
        vo_rrd_update(r, t, (double[]){ t, 2 });
}

static void test_file_round_trip(void **state)
{
    char *path = tmp_path();
    VoRrd *r = NULL;
    assert_int_equal(vo_rrd_open(path, 2, &r), 0);
    fill(r);
    assert_int_equal(vo_rrd_sync(r), 0);
    int64_t ts[400], ts2[400];
    double v[400], v2[400];
    size_t n = values(r, 0, 0, ts, v);
    vo_rrd_free(r);
    /* Reopened: the same series, the slot in progress included. */
    assert_int_equal(vo_rrd_open(path, 2, &r), 0);
    assert_int_equal(values(r, 0, 0, ts2, v2), n);
    assert_memory_equal(ts, ts2, n * sizeof(*ts));
    for (size_t i = 0; i < n; i++)
        assert_float_equal(v[i], v2[i], 1e-2);
    /* It goes on where it was: the slot in progress keeps its samples. */
    vo_rrd_update(r, 10600, (double[]){ 0, 2 });
    assert_int_equal(vo_rrd_sync(r), 0);
    vo_rrd_free(r);
    assert_int_equal(vo_rrd_open(path, 2, &r), 0);
    assert_int_equal(values(r, 0, 0, ts2, v2), n + 1);
    assert_float_equal(v2[n - 1], v[n - 1], 1e-2);
    vo_rrd_free(r);
    /* Another geometry (3 columns): started afresh. */
    assert_int_equal(vo_rrd_open(path, 3, &r), 1);
    assert_int_equal(values(r, 0, 0, ts2, v2), 0);
    vo_rrd_free(r);
    cleanup(path);
}

static void flip(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_file_corruption(void **state)
{
    char *path = tmp_path();
    VoRrd *r = NULL;
    int64_t ts[400];
    double v[400];
    assert_int_equal(vo_rrd_open(path, 2, &r), 0);
    fill(r);
    assert_int_equal(vo_rrd_sync(r), 0);
    size_t n = values(r, 0, 0, ts, v);
    vo_rrd_free(r);
    /* One byte of the first 10-s row holding data: that row is missing,
     * the others stand. Header: 8+8+3*(16+24)+4 = 140; rows of 20 bytes. */
    unsigned row = (unsigned)((10000 / 10) % 360);
    flip(path, 140 + 20 * row + 9);
    assert_int_equal(vo_rrd_open(path, 2, &r), 1);
    assert_int_equal(values(r, 0, 0, ts, v), n - 1);
    assert_int_equal(ts[0], 10010);
    assert_int_equal(vo_rrd_sync(r), 0); /* the damaged row rewritten empty */
    vo_rrd_free(r);
    assert_int_equal(vo_rrd_open(path, 2, &r), 0);
    vo_rrd_free(r);
    /* The header's accumulators: the slots in progress are lost, rows stand. */
    flip(path, 40);
    assert_int_equal(vo_rrd_open(path, 2, &r), 1);
    assert_int_equal(values(r, 0, 0, ts, v), 0); /* no slot in progress known */
    vo_rrd_update(r, 10700, (double[]){ 1, 1 });
    /* Rows 10010..10580 (the one in progress, 10590, was lost) + 10700. */
    assert_int_equal(values(r, 0, 0, ts, v), n - 1);
    vo_rrd_free(r);
    /* The magic, or a truncated file: afresh. */
    flip(path, 0);
    assert_int_equal(vo_rrd_open(path, 2, &r), 1);
    assert_int_equal(values(r, 0, 0, ts, v), 0);
    vo_rrd_free(r);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(vo_rrd_open(path, 2, &r), 1);
    vo_rrd_free(r);
    assert_int_equal(vo_rrd_open("/nonexistent-dir/x.rrd", 2, &r), -ENOENT);
    assert_null(r);
    cleanup(path);
}

static void test_crc(void **state)
{
    assert_int_equal(vo_crc32("123456789", 9), 0xCBF43926u);
}

static void test_blockstats(void **state)
{
    json_t *j = json_loads(
        "[{\"device\":\"disk0\",\"stats\":{\"rd_bytes\":100,\"wr_bytes\":200,"
        "\"rd_operations\":3,\"wr_operations\":4},"
        "\"parent\":{\"stats\":{\"rd_bytes\":999,\"wr_bytes\":999}}},"
        "{\"device\":\"cd0\",\"stats\":{\"rd_bytes\":5,\"wr_bytes\":0,"
        "\"rd_operations\":1,\"wr_operations\":0}},"
        "{\"device\":\"bad\"}]", 0, NULL);
    VoHvStats s = { 0 };
    assert_int_equal(vo_qemu_blockstats_sum(j, &s), 0);
    assert_int_equal(s.rd_bytes, 105);
    assert_int_equal(s.wr_bytes, 200);
    assert_int_equal(s.rd_ops, 4);
    assert_int_equal(s.wr_ops, 4);
    assert_true(s.have_disk);
    json_decref(j);
    assert_int_equal(vo_qemu_blockstats_sum(NULL, &s), -EINVAL);
}

static bool not_sda1(const char *name)
{
    return strcmp(name, "sda1") != 0 && strcmp(name, "lo") != 0;
}

static void test_proc_io(void **state)
{
    const char *disks = "   8       0 sda 100 5 2000 30 50 7 4000 60 0 90 90 0 0 0 0\n"
                        "   8       1 sda1 99 5 1990 30 49 7 3990 60 0 90 90\n"
                        " 253       0 vda 1 0 8 0 2 0 16 0 0 0 0\n";
    VoDiskCounters d;
    assert_int_equal(vo_diskstats_sum(disks, not_sda1, &d), 0);
    assert_int_equal(d.rd_ops, 101);
    assert_int_equal(d.wr_ops, 52);
    assert_int_equal(d.rd_bytes, 2008 * 512);
    assert_int_equal(d.wr_bytes, 4016 * 512);
    assert_int_equal(vo_diskstats_sum("garbage\n", not_sda1, &d), -EINVAL);
    const char *net =
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
        "drop fifo colls carrier compressed\n"
        "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
        "  eth0: 5000 50 0 0 0 0 0 0 7000 70 0 0 0 0 0 0\n"
        "vt-ab12:300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n";
    VoNetCounters n;
    assert_int_equal(vo_netdev_sum(net, not_sda1, &n), 0);
    assert_int_equal(n.rx_bytes, 5300);
    assert_int_equal(n.tx_bytes, 7400);
    assert_int_equal(vo_netdev_sum("x", not_sda1, &n), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consolidation), cmocka_unit_test(test_weighted_samples),
        cmocka_unit_test(test_counter_rate),
        cmocka_unit_test(test_file_round_trip), cmocka_unit_test(test_file_corruption),
        cmocka_unit_test(test_crc), cmocka_unit_test(test_blockstats),
        cmocka_unit_test(test_proc_io),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
