/* test-mac-index-copy.c: the MAC-ghost sweep's copy of the MAC index
 * (daemon/mac-index-copy.c) on a real SQLite store of 10,000 held entries:
 * the first update reads the index whole (about 1 MB), a round with no
 * change reads nothing, one after a few changes reads only those (changed,
 * deleted, new, and an entry that stops naming a VM), and one after a
 * compaction dropped changes it had not read reads the index whole again.
 * The copy matches the store each time, and gives the entries after a key
 * in key order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/mac-index-copy.h"
#include "state/store.h"
#include "util/util.h"

#define PREFIX "cluster/claims/macs/"
#define ENTRIES 10000

typedef struct {
    char dir[64];
    VoStore *s;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-mac-index-copy-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    _cleanup_free_ char *path = vo_asprintf("%s/store.db", f->dir);
    assert_int_equal(vo_store_open_keeping(path, 100000, &f->s), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->s);
    _cleanup_free_ char *cmd = vo_asprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static char *mac_key(int i)
{
    return vo_asprintf(PREFIX "52-54-00-%02x-%02x-%02x", (i >> 16) & 0xff, (i >> 8) & 0xff,
                       i & 0xff);
}

/* A held entry as vm-mac-index.c writes it. */
static char *held(int i, const char *tag)
{
    return vo_asprintf("{\"vm\":\"vm-%05d%s\",\"vm_id\":\"0b6f3a2c-7d41-4e8a-9f1b-%012d\"}", i,
                       tag, i);
}

static void put(VoStore *s, int i, const char *text)
{
    _cleanup_free_ char *key = mac_key(i);
    VoStoreOp op = { .kind = VO_STORE_PUT, .key = key, .value = text };
    assert_int_equal(s->ops->txn(s, NULL, 0, &op, 1, NULL, NULL), 0);
}

/* ENTRIES held entries, 100 to a transaction, and 5 claims in progress. */
static void fill(VoStore *s)
{
    for (int i = 0; i < ENTRIES; i += 100) {
        VoStoreOp ops[100];
        char *keys[100], *texts[100];
        for (int k = 0; k < 100; k++) {
            keys[k] = mac_key(i + k);
            texts[k] = held(i + k, "");
            ops[k] = (VoStoreOp){ .kind = VO_STORE_PUT, .key = keys[k], .value = texts[k] };
        }
        assert_int_equal(s->ops->txn(s, NULL, 0, ops, 100, NULL, NULL), 0);
        for (int k = 0; k < 100; k++) {
            free(keys[k]);
            free(texts[k]);
        }
    }
    for (int i = ENTRIES; i < ENTRIES + 5; i++)
        put(s, i, "{\"claiming\":true}");
}

static int collect_store(const char *key, const char *value, int64_t rev, void *userdata)
{
    if (strstr(value, "\"vm_id\""))
        json_object_set_new(userdata, key, json_pack("{s:s, s:I}", "text", value, "rev",
                                                     (json_int_t)rev));
    return 0;
}

/* The copy's entries (all of them, through vo_mac_index_copy_after) are
 * the store's held ones. */
static void assert_matches_store(VoStore *s, VoMacIndexCopy *c)
{
    json_t *want = json_object(), *got = json_object();
    assert_int_equal(vo_store_list(s, PREFIX, collect_store, want), 0);
    size_t n = vo_mac_index_copy_after(c, NULL, SIZE_MAX, collect_store, got);
    assert_int_equal(n, json_object_size(want));
    assert_int_equal(vo_mac_index_copy_size(c), json_object_size(want));
    assert_true(json_equal(want, got));
    json_decref(want);
    json_decref(got);
}

static int collect_keys(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)value;
    (void)rev;
    json_array_append_new(userdata, json_string(key));
    return 0;
}

static void test_reads_only_the_changes(void **state)
{
    Fixture *f = *state;
    fill(f->s);
    VoMacIndexCopy *c = vo_mac_index_copy_new(f->s, PREFIX);
    size_t whole = 0, bytes = 0;
    assert_int_equal(vo_mac_index_copy_update(c, &whole), 0);
    assert_int_equal(vo_mac_index_copy_size(c), ENTRIES);
    assert_true(whole > 900000); /* about 1 MB: each round read this before */
    assert_matches_store(f->s, c);
    print_message("a whole read of %d entries: %zu bytes\n", ENTRIES, whole);

    assert_int_equal(vo_mac_index_copy_update(c, &bytes), 0);
    assert_int_equal(bytes, 0);
    print_message("a round with no change: %zu bytes\n", bytes);

    /* Changed (renamed VM), deleted, new, and one that no longer names a VM. */
    for (int i = 10; i < 13; i++) {
        _cleanup_free_ char *text = held(i, "-renamed");
        put(f->s, i, text);
    }
    for (int i = 20; i < 22; i++) {
        _cleanup_free_ char *key = mac_key(i);
        assert_int_equal(vo_store_delete(f->s, key, VO_REV_ANY), 0);
    }
    _cleanup_free_ char *text = held(ENTRIES + 10, "");
    put(f->s, ENTRIES + 10, text);
    put(f->s, 30, "{\"claiming\":true}");
    assert_int_equal(vo_mac_index_copy_update(c, &bytes), 0);
    print_message("a round after 7 changes: %zu bytes\n", bytes);
    assert_true(bytes > 0 && bytes < 2000);
    assert_int_equal(vo_mac_index_copy_size(c), ENTRIES - 2 + 1 - 1);
    assert_matches_store(f->s, c);

    /* The entries after a key, in key order. */
    json_t *keys = json_array();
    _cleanup_free_ char *after = mac_key(5);
    assert_int_equal(vo_mac_index_copy_after(c, after, 32, collect_keys, keys), 32);
    for (size_t i = 0; i < 32; i++) {
        const char *k = json_string_value(json_array_get(keys, i));
        assert_true(strcmp(k, i ? json_string_value(json_array_get(keys, i - 1)) : after) > 0);
    }
    _cleanup_free_ char *sixth = mac_key(6);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), sixth);
    json_decref(keys);
    vo_mac_index_copy_free(c);
}

static void test_whole_again_after_a_compaction(void **state)
{
    Fixture *f = *state;
    fill(f->s);
    VoMacIndexCopy *c = vo_mac_index_copy_new(f->s, PREFIX);
    size_t whole = 0, bytes = 0;
    assert_int_equal(vo_mac_index_copy_update(c, &whole), 0);
    /* Changes the copy has not read, then dropped by a compaction. */
    _cleanup_free_ char *text = held(1, "-renamed");
    put(f->s, 1, text);
    _cleanup_free_ char *key = mac_key(2);
    assert_int_equal(vo_store_delete(f->s, key, VO_REV_ANY), 0);
    int64_t rev = 0;
    assert_int_equal(f->s->ops->revision(f->s, &rev), 0);
    assert_int_equal(f->s->ops->compact(f->s, rev), 0);
    assert_int_equal(vo_mac_index_copy_update(c, &bytes), 0);
    print_message("a round after a compaction: %zu bytes\n", bytes);
    assert_true(bytes > 900000);
    assert_int_equal(vo_mac_index_copy_size(c), ENTRIES - 1);
    assert_matches_store(f->s, c);
    /* And then the changes only, again. */
    put(f->s, 3, text);
    assert_int_equal(vo_mac_index_copy_update(c, &bytes), 0);
    assert_true(bytes > 0 && bytes < 500);
    assert_matches_store(f->s, c);
    vo_mac_index_copy_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_only_the_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_again_after_a_compaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
