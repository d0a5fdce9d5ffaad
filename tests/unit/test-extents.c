/* test-extents.c: the ranges an RBD export copies (storage/extents.c):
 * rounded out to 64 KiB clusters, never past the image's end (sizes that are
 * no multiple of a cluster, the last partial extent), sorted and merged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storage/extents.h"

#define K 1024ull
#define C (64 * K)

static void check(const VoExtents *x, size_t i, uint64_t start, uint64_t end)
{
    assert_true(i < x->n);
    assert_int_equal(x->v[i].start, start);
    assert_int_equal(x->v[i].end, end);
}

static void test_rounded_out(void **state)
{
    (void)state;
    VoExtents x = { .size = 100 * C, .cluster = C };
    assert_int_equal(vo_extents_add(&x, 3 * C + 512, 4096), 0); /* inside one cluster */
    assert_int_equal(vo_extents_add(&x, 10 * C - 1, 2), 0);     /* across two */
    assert_int_equal(vo_extents_add(&x, 20 * C, C), 0);         /* aligned: as it is */
    assert_int_equal(vo_extents_add(&x, 30 * C, 0), 0);         /* empty: nothing */
    assert_int_equal(vo_extents_merge(&x), 1 * C + 2 * C + 1 * C);
    assert_int_equal(x.n, 3);
    check(&x, 0, 3 * C, 4 * C);
    check(&x, 1, 9 * C, 11 * C);
    check(&x, 2, 20 * C, 21 * C);
    vo_extents_clear(&x);
}

static void test_image_end(void **state)
{
    (void)state;
    /* 1 MiB + 1000 bytes: the last cluster is partial; nothing goes past the end. */
    uint64_t size = 16 * C + 1000;
    VoExtents x = { .size = size, .cluster = C };
    assert_int_equal(vo_extents_add(&x, 16 * C + 10, 20), 0);
    assert_int_equal(vo_extents_merge(&x), 1000);
    check(&x, 0, 16 * C, size);
    /* An extent said to run past the end, and one beyond it. */
    assert_int_equal(vo_extents_add(&x, 15 * C + 7, 3 * C), 0);
    assert_int_equal(vo_extents_add(&x, size, C), 0);
    assert_int_equal(vo_extents_add(&x, size + 5 * C, C), 0);
    assert_int_equal(vo_extents_merge(&x), C + 1000);
    assert_int_equal(x.n, 1);
    check(&x, 0, 15 * C, size);
    vo_extents_clear(&x);
    /* An image smaller than one cluster. */
    x = (VoExtents){ .size = 4096 + 512, .cluster = C };
    assert_int_equal(vo_extents_add(&x, 4096, 512), 0);
    assert_int_equal(vo_extents_merge(&x), 4096 + 512);
    check(&x, 0, 0, 4096 + 512);
    vo_extents_clear(&x);
}

static void test_merged(void **state)
{
    (void)state;
    VoExtents x = { .size = 1000 * C, .cluster = C };
    /* Out of order, overlapping, touching once rounded, and apart. */
    uint64_t in[][2] = { { 50 * C + 1, 10 }, { 40 * C, 5 * C }, { 44 * C + 100, 100 },
                         { 45 * C, 1 },      { 46 * C + 5, 1 }, { 60 * C, C },
                         { 2 * C, 3 * C },   { 1 * C, 2 * C } };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        assert_int_equal(vo_extents_add(&x, in[i][0], in[i][1]), 0);
    assert_int_equal(vo_extents_merge(&x), 4 * C + 7 * C + 1 * C + 1 * C);
    assert_int_equal(x.n, 4);
    check(&x, 0, 1 * C, 5 * C);
    check(&x, 1, 40 * C, 47 * C);
    check(&x, 2, 50 * C, 51 * C);
    check(&x, 3, 60 * C, 61 * C);
    /* Merging again changes nothing. */
    assert_int_equal(vo_extents_merge(&x), 13 * C);
    assert_int_equal(x.n, 4);
    vo_extents_clear(&x);
    assert_int_equal(vo_extents_merge(&x), 0);
}

static void test_many(void **state)
{
    (void)state;
    /* Past the first allocation: every other cluster of 10000, backwards. */
    VoExtents x = { .size = 20000 * C, .cluster = C };
    for (uint64_t i = 10000; i-- > 0;)
        assert_int_equal(vo_extents_add(&x, 2 * i * C + 7, 1), 0);
    assert_int_equal(vo_extents_merge(&x), 10000 * C);
    assert_int_equal(x.n, 10000);
    check(&x, 9999, 19998 * C, 19999 * C);
    vo_extents_clear(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounded_out),
        cmocka_unit_test(test_image_end),
        cmocka_unit_test(test_merged),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
