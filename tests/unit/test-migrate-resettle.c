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

static int notes;                /* vo_migration_note_stuck calls */
static const char *stuck_reason; /* what a "stuck-" VM's tries say */

/* The stub: the settling of vm_id, held until the test releases it; a
 * "free-" VM's is done at once, a "stuck-" VM's fails at once with
 * stuck_reason (a post-copy not recovered). */
bool vo_migration_resettle(VoDaemon *d, const char *vm_id, const char *migration,
                           char **ret_stuck)
{
    (void)d;
    (void)migration;
    if (!strncmp(vm_id, "free-", 5))
        return true;
    pthread_mutex_lock(&lock);
    if (!strncmp(vm_id, "stuck-", 6)) {
        *ret_stuck = vo_strdup(stuck_reason);
        pthread_mutex_unlock(&lock);
        return false;
    }
    entered++;
    pthread_cond_broadcast(&changed);
    while (!release)
        pthread_cond_wait(&changed, &lock);
    release = false;
    bool done = settle_done;
    pthread_mutex_unlock(&lock);
    return done;
}

void vo_migration_note_stuck(VoDaemon *d, const char *vm_id, const char *name,
                             const char *why, int tries, int64_t next_ms)
{
    (void)d;
    (void)vm_id;
    (void)name;
    (void)tries;
    (void)next_ms;
    pthread_mutex_lock(&lock);
    assert_string_equal(why, stuck_reason);
    notes++;
    pthread_mutex_unlock(&lock);
}

/* Until vm_id's intent of migration has ended n tries (bounded). */
static void wait_tries(const char *vm_id, const char *migration, int n)
{
    int64_t deadline = vo_now_ms() + WAIT_MS;
    while (vo_migrate_resettle_tries(vm_id, migration) < n && vo_now_ms() < deadline)
        poll(NULL, 0, 20);
    assert_int_equal(vo_migrate_resettle_tries(vm_id, migration), n);
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

/* A daemon in cluster mode: only d->cluster being non-NULL matters (freed
 * by the test). */
static void in_cluster(VoDaemon *d)
{
    memset(d, 0, sizeof(*d));
    d->cluster = vo_malloc0(64);
}

static void test_pending_while_settled(void **state)
{
    (void)state;
    VoDaemon d;
    in_cluster(&d);
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
    free(d.cluster);
}

/* vireo vm migrate --resume while a try is under way: the hurried try is
 * the one after it, made at once (not after its backoff), and a waiter
 * sees it end (migrate-recover.c, vo_migration_resume_kept). */
static void test_hurried_after_the_try_under_way(void **state)
{
    (void)state;
    VoDaemon d;
    in_cluster(&d);
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
    free(d.cluster);
}

/* One VM's try under way (held) holds up no other VM's: each try has a
 * thread of its own (before, the one runner thread made them in turn, and
 * a post-copy recovery attempt of ~12 s made every other VM wait). */
static void test_others_do_not_wait_behind_one(void **state)
{
    (void)state;
    VoDaemon d;
    in_cluster(&d);
    pthread_mutex_lock(&lock);
    int base = entered;
    pthread_mutex_unlock(&lock);
    vo_migrate_resettle_later(&d, "vm-4", "slow", "mig-4");
    assert_int_equal(vo_migrate_resettle_start(&d), 0);
    wait_entered(base + 1); /* vm-4's try under way, held */
    vo_migrate_resettle_later(&d, "free-5", "quick", "mig-5");
    int64_t deadline = vo_now_ms() + WAIT_MS;
    while (vo_migrate_resettle_pending("free-5") && vo_now_ms() < deadline)
        poll(NULL, 0, 20);
    assert_false(vo_migrate_resettle_pending("free-5")); /* settled meanwhile */
    assert_true(vo_migrate_resettle_pending("vm-4"));
    let_go(true);
    vo_migrate_resettle_stop(&d); /* waits for vm-4's thread */
    assert_false(vo_migrate_resettle_pending("vm-4"));
    free(d.cluster);
}

/* A post-copy the tries cannot recover: noted as an event once per reason,
 * not at each try; a new reason is noted again. */
static void test_stuck_noted_once_per_reason(void **state)
{
    (void)state;
    VoDaemon d;
    in_cluster(&d);
    pthread_mutex_lock(&lock);
    stuck_reason = "connection refused";
    notes = 0;
    pthread_mutex_unlock(&lock);
    vo_migrate_resettle_later(&d, "stuck-6", "db", "mig-6");
    assert_int_equal(vo_migrate_resettle_start(&d), 0);
    wait_tries("stuck-6", "mig-6", 1);
    assert_int_equal(vo_migrate_resettle_hurry("stuck-6", "mig-6"), 2);
    wait_tries("stuck-6", "mig-6", 2);
    pthread_mutex_lock(&lock);
    assert_int_equal(notes, 1);
    stuck_reason = "no route to host";
    pthread_mutex_unlock(&lock);
    assert_int_equal(vo_migrate_resettle_hurry("stuck-6", "mig-6"), 3);
    wait_tries("stuck-6", "mig-6", 3);
    pthread_mutex_lock(&lock);
    assert_int_equal(notes, 2);
    pthread_mutex_unlock(&lock);
    vo_migrate_resettle_stop(&d);
    free(d.cluster);
}

/* The backoff doubles to its cap: 60 s while the store is asked, 15 min
 * once a post-copy could not be recovered (before: once a minute for
 * ever, ~12 s of recovery attempts each). */
static void test_backoff_caps(void **state)
{
    (void)state;
    assert_int_equal(vo_migrate_resettle_next_wait(2000, false), 4000);
    assert_int_equal(vo_migrate_resettle_next_wait(32000, false), 60000);
    assert_int_equal(vo_migrate_resettle_next_wait(60000, false), 60000);
    assert_int_equal(vo_migrate_resettle_next_wait(60000, true), 120000);
    assert_int_equal(vo_migrate_resettle_next_wait(480000, true), 900000);
    assert_int_equal(vo_migrate_resettle_next_wait(900000, true), 900000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_while_settled),
        cmocka_unit_test(test_hurried_after_the_try_under_way),
        cmocka_unit_test(test_others_do_not_wait_behind_one),
        cmocka_unit_test(test_stuck_noted_once_per_reason),
        cmocka_unit_test(test_backoff_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
