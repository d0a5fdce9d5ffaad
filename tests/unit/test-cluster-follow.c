/* test-cluster-follow.c: when a follower of the host's cluster/ watch may
 * keep what it read (daemon/cluster-follow.c): never before the watch is
 * open or after it was lost, never after a change of a key it wants or a
 * reopening, always while only other keys change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/cluster-follow.h"

static int wakes;

static bool wants_drs(const char *key)
{
    return !strcmp(key, "cluster/drs");
}

static void count_wake(void)
{
    wakes++;
}

static VoClusterFollower drs = { .wants = wants_drs, .wake = count_wake };

static void test_kept_only_while_the_watch_saw_no_change(void **state)
{
    (void)state;
    vo_cluster_follow_add(&drs);
    vo_cluster_follow_add(&drs); /* twice: once in the list */

    /* No watch yet: read every time. */
    uint64_t mark = vo_cluster_follow_mark(&drs);
    assert_false(vo_cluster_follow_unchanged(&drs, mark));

    /* Opened: a mark from before does not pass (changes while it was
     * down), one from after does. */
    wakes = 0;
    vo_cluster_follow_opened();
    assert_int_equal(wakes, 1);
    assert_false(vo_cluster_follow_unchanged(&drs, mark));
    mark = vo_cluster_follow_mark(&drs);
    assert_true(vo_cluster_follow_unchanged(&drs, mark));

    /* Other keys, and keys that only start like it, change nothing. */
    vo_cluster_follow_changed("cluster/hosts/h1");
    vo_cluster_follow_changed("cluster/drs/status");
    assert_int_equal(wakes, 1);
    assert_true(vo_cluster_follow_unchanged(&drs, mark));

    /* Its key changed: read again, woken. */
    vo_cluster_follow_changed("cluster/drs");
    assert_int_equal(wakes, 2);
    assert_false(vo_cluster_follow_unchanged(&drs, mark));
    mark = vo_cluster_follow_mark(&drs);
    assert_true(vo_cluster_follow_unchanged(&drs, mark));

    /* Lost: no copy is current until a new watch is open. */
    vo_cluster_follow_lost();
    assert_int_equal(wakes, 3);
    uint64_t during = vo_cluster_follow_mark(&drs);
    assert_false(vo_cluster_follow_unchanged(&drs, mark));
    assert_false(vo_cluster_follow_unchanged(&drs, during));
    vo_cluster_follow_opened();
    assert_false(vo_cluster_follow_unchanged(&drs, during));
    assert_true(vo_cluster_follow_unchanged(&drs, vo_cluster_follow_mark(&drs)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_only_while_the_watch_saw_no_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
