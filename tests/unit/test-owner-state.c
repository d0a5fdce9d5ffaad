/* test-owner-state.c: the start-up sweep's question "is the owner document
 * gone?" (state/owner-state.c) against a stub store whose get answers what
 * a case says: only a definite, linearizable "not found" says gone; any
 * error (etcd unreachable or slow, no quorum, an unknown outcome, a bad
 * answer) and a stale "not found" leave it unknown, so nothing is removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "state/owner-state.h"

/* The stub: get answers answer, noting a stale read (since stale_since)
 * when that is set, as store-etcd.c does without a quorum. */
static int answer;
static int64_t stale_since;
static const char *asked;

static int stub_get(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev)
{
    (void)s;
    asked = key;
    if (stale_since)
        vo_store_stale_note(stale_since);
    if (ret_value)
        *ret_value = NULL;
    if (ret_rev)
        *ret_rev = answer == 0 ? 7 : 0;
    return answer;
}

static const VoStoreOps stub_ops = { .name = "stub", .get = stub_get };
static VoStore stub = { .ops = &stub_ops };

static VoOwnerState ask(int r, int64_t stale, int *ret_errno)
{
    answer = r;
    stale_since = stale;
    asked = NULL;
    vo_store_stale_reset();
    VoOwnerState st = vo_store_owner_state(&stub, "volumes/ceph/v1", ret_errno);
    assert_string_equal(asked, "volumes/ceph/v1");
    return st;
}

static void only_not_found_is_gone(void **state)
{
    (void)state;
    int err = 0;
    assert_int_equal(ask(0, 0, &err), VO_OWNER_EXISTS);
    assert_int_equal(ask(-ENOENT, 0, &err), VO_OWNER_GONE);
    assert_int_equal(ask(-ENOENT, 0, NULL), VO_OWNER_GONE);
    assert_string_equal(vo_owner_state_name(VO_OWNER_GONE), "it is gone");
}

static void store_errors_are_unknown(void **state)
{
    (void)state;
    /* etcd unreachable or no quorum, a write's unknown outcome (a read
     * never has one, but an error is an error), I/O, a bad or big answer,
     * a closing store. */
    static const int errors[] = { -EAGAIN, VO_STORE_EUNKNOWN, -EIO, -EBADMSG, -EMSGSIZE,
                                  -ECANCELED, -ENOMEM, -EINVAL };
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        int err = 0;
        assert_int_equal(ask(errors[i], 0, &err), VO_OWNER_UNKNOWN);
        assert_int_equal(err, errors[i]);
    }
    assert_string_equal(vo_owner_state_name(VO_OWNER_UNKNOWN), "the store cannot say");
}

/* A member answering without a quorum may be behind: its "not found" may
 * be a document made since (a volume saved just before the crash). Its
 * "exists" keeps things, which is safe. */
static void a_stale_not_found_is_unknown(void **state)
{
    (void)state;
    int err = 0;
    assert_int_equal(ask(-ENOENT, 1000, &err), VO_OWNER_UNKNOWN);
    assert_int_equal(err, -EAGAIN);
    assert_int_equal(ask(0, 1000, &err), VO_OWNER_EXISTS);
}

/* The caller's own note of a stale read (an API request's) survives the
 * question, joined with this read's. */
static void the_callers_stale_note_is_kept(void **state)
{
    (void)state;
    answer = -ENOENT;
    stale_since = 0;
    vo_store_stale_reset();
    vo_store_stale_note(500);
    assert_int_equal(vo_store_owner_state(&stub, "vms/x", NULL), VO_OWNER_GONE);
    assert_int_equal(vo_store_stale_read(), 500);
    stale_since = 300;
    assert_int_equal(vo_store_owner_state(&stub, "vms/x", NULL), VO_OWNER_UNKNOWN);
    assert_int_equal(vo_store_stale_read(), 300);
    vo_store_stale_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_not_found_is_gone),
        cmocka_unit_test(store_errors_are_unknown),
        cmocka_unit_test(a_stale_not_found_is_unknown),
        cmocka_unit_test(the_callers_stale_note_is_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
