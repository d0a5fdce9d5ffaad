/* test-check-workers.c: daemon/check-workers.c: a check that hangs holds
 * only its own key (another key's check runs and ends meanwhile), a key
 * whose check runs is not started twice, at most max run at once, and the
 * wait returns once every check ended; a group's checks neither take
 * another group's turns nor hold its wait. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/check-workers.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static bool let_go;
#define G "reach"
static int ended;

/* The dead target's check: waits until let go. */
static void hanging(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!let_go)
        pthread_cond_wait(&changed, &lock);
    ended++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void quick(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    ended++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void wait_ended(int n)
{
    pthread_mutex_lock(&lock);
    while (ended < n)
        pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
}

static void let_them_go(void)
{
    pthread_mutex_lock(&lock);
    let_go = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void test_a_hanging_check_holds_only_its_key(void **state)
{
    (void)state;
    assert_true(vo_check_workers_start(G, "dead", 2, hanging, NULL));
    /* the dead pool's next round: still under way, not started again */
    assert_false(vo_check_workers_start(G, "dead", 2, hanging, NULL));
    /* the live pool's rounds run and end meanwhile */
    for (int i = 1; i <= 3; i++) {
        while (!vo_check_workers_start(G, "live", 2, quick, NULL))
            ; /* its last one is ending */
        wait_ended(i);
    }
    /* the bound: "dead" and a held "other" run, a third waits its turn */
    while (!vo_check_workers_start(G, "other", 2, hanging, NULL))
        ; /* the last "live" one is leaving the list */
    assert_false(vo_check_workers_start(G, "third", 2, quick, NULL));
    let_them_go();
    vo_check_workers_wait(G);
    assert_int_equal(ended, 5);
    assert_true(vo_check_workers_start(G, "dead", 2, quick, NULL));
    vo_check_workers_wait(G);
    assert_int_equal(ended, 6);
}

/* The SAN probes of two dead targets (one always under way) take none of
 * the iSCSI pools' checks' turns, and the pools' stop waits only for its
 * own checks (it would otherwise wait as long as probes overlap). */
static void test_groups_keep_apart(void **state)
{
    (void)state;
    let_go = false;
    ended = 0;
    assert_true(vo_check_workers_start("san", "t1", 2, hanging, NULL));
    assert_true(vo_check_workers_start("san", "t2", 2, hanging, NULL));
    assert_false(vo_check_workers_start("san", "t3", 2, quick, NULL)); /* its bound */
    /* another group: its own bound, and its own keys */
    assert_true(vo_check_workers_start("reach", "t1", 2, quick, NULL));
    wait_ended(1);
    vo_check_workers_wait("reach"); /* the probes still hang */
    assert_int_equal(ended, 1);
    let_them_go();
    vo_check_workers_wait("san");
    assert_int_equal(ended, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_hanging_check_holds_only_its_key),
        cmocka_unit_test(test_groups_keep_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
