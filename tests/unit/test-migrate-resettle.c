/* test-migrate-resettle.c: the background settling of unknown switch
 * outcomes (daemon/migrate-resettle.c), its settling step (migrate-recover.c's
 * vo_migration_resettle) stubbed to hold until the test lets it go: a VM's
 * intent is in the background's hands (vo_migrate_resettle_pending: vireo
 * vm migrate --resume then hurries it instead of acting) from the moment it
 * is queued, through the settling under way, until a settling says it is
 * done; a hurried try comes at once, after the one under way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>

#include "daemon/migrate-resettle.h"
#include "daemon/migrate.h"
#include "util/util.h"

#define WAIT_MS 60000 /* bound on a wait for the runner: a hang fails, never a slow run */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int entered;      /* settlings begun */
static bool release;     /* the one under way may return */
static bool settle_done; /* what it returns */

/* The stub: the settling of vm_id, held until the test releases it. */
bool vo_migration_resettle(VoDaemon *d, const char *vm_id, const char *migration)
{
    (void)d;
    (void)vm_id;
    pthread_mutex_lock(&lock);
    entered++;
    pthread_cond_broadcast(&changed);
    while (!release)
        pthread_cond_wait(&changed, &lock);
    release = false;
    bool done = settle_done;
    pthread_mutex_unlock(&lock);
    return done;
}

static void wait_entered(int n)
{
    int64_t deadline = vo_now_ms() + WAIT_MS;
    pthread_mutex_lock(&lock);
    while (entered < n && vo_now_ms() < deadline) {
        pthread_mutex_unlock(&lock);
        poll(NULL, 0, 20);
        pthread_mutex_lock(&lock);
    }
    int seen = entered;
    pthread_mutex_unlock(&lock);
    assert_int_equal(seen, n);
}

static void let_go(bool done)
{
    pthread_mutex_lock(&lock);
    settle_done = done;
    release = true;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void test_pending_while_settled(void **state)
{
    (void)state;
    VoClusterConfig *cluster = vo_malloc0(64); /* only non-NULL matters: cluster mode */
    VoDaemon d;
    memset(&d, 0, sizeof(d));
    d.cluster = cluster;
    assert_false(vo_migrate_resettle_pending("vm-1")); /* nothing queued yet */
    vo_migrate_resettle_later(&d, "vm-1", "web", "mig-1");
    assert_true(vo_migrate_resettle_pending("vm-1"));
    assert_false(vo_migrate_resettle_pending("vm-2"));
    assert_int_equal(vo_migrate_resettle_start(&d), 0);
    wait_entered(1);
    assert_true(vo_migrate_resettle_pending("vm-1")); /* being settled: still its own */
    let_go(false); /* unknown still: asked again later, still pending */
    wait_entered(2);
    assert_true(vo_migrate_resettle_pending("vm-1"));
    let_go(true); /* settled */
    int64_t deadline = vo_now_ms() + WAIT_MS;
    while (vo_migrate_resettle_pending("vm-1") && vo_now_ms() < deadline)
        poll(NULL, 0, 20);
    assert_false(vo_migrate_resettle_pending("vm-1"));
    vo_migrate_resettle_stop(&d);
    assert_false(vo_migrate_resettle_pending("vm-1"));
    free(cluster);
}

/* vireo vm migrate --resume while a try is under way: the hurried try is
 * the one after it, made at once (not after its backoff), and a waiter
 * sees it end (migrate-recover.c, vo_migration_resume_kept). */
static void test_hurried_after_the_try_under_way(void **state)
{
    (void)state;
    VoClusterConfig *cluster = vo_malloc0(64);
    VoDaemon d;
    memset(&d, 0, sizeof(d));
    d.cluster = cluster;
    pthread_mutex_lock(&lock);
    int base = entered;
    pthread_mutex_unlock(&lock);
    assert_int_equal(vo_migrate_resettle_hurry("vm-3", "mig-3"), -1); /* not held */
    vo_migrate_resettle_later(&d, "vm-3", "db", "mig-3");
    assert_int_equal(vo_migrate_resettle_hurry("vm-3", "other"), -1); /* another's */
    assert_int_equal(vo_migrate_resettle_start(&d), 0);
    wait_entered(base + 1);
    int after = vo_migrate_resettle_hurry("vm-3", "mig-3");
    assert_int_equal(after, 2); /* the try under way ends at 1: the hurried one at 2 */
    let_go(false);
    /* Due at once although its backoff is 4 s: a second try begins; the
     * waiter's count is 1 meanwhile, short of after. */
    wait_entered(base + 2);
    assert_int_equal(vo_migrate_resettle_tries("vm-3", "mig-3"), 1);
    let_go(false);
    int64_t deadline = vo_now_ms() + WAIT_MS;
    while (vo_migrate_resettle_tries("vm-3", "mig-3") < after && vo_now_ms() < deadline)
        poll(NULL, 0, 20);
    assert_int_equal(vo_migrate_resettle_tries("vm-3", "mig-3"), after);
    vo_migrate_resettle_stop(&d);
    assert_int_equal(vo_migrate_resettle_tries("vm-3", "mig-3"), -1);
    free(cluster);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_while_settled),
        cmocka_unit_test(test_hurried_after_the_try_under_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
