/* test-job-lock.c: brief holds of a job lock (jobs/job-lock.c), raced with
 * real threads: a sampler's try never waits; a quick operation waits out
 * samplers that hold the lock again and again (where a plain trylock fails),
 * answers at once when a long task holds it, and gives up at its bound when
 * the holder stays (a sampler stuck, or a holder nobody names). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>

#include <cmocka.h>

#include "jobs/job-lock.h"
#include "util/util.h"

static pthread_mutex_t job = PTHREAD_MUTEX_INITIALIZER;
static atomic_int brief;

/* A monitoring sampler: tries the job every gap_ms and holds it hold_ms,
 * until stop. */
typedef struct {
    int hold_ms, gap_ms;
    atomic_bool stop;
    atomic_int holds;
} Sampler;

static void *sampler_main(void *arg)
{
    Sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        if (vo_job_lock_try_brief(&job, &brief)) {
            atomic_fetch_add(&s->holds, 1);
            poll(NULL, 0, s->hold_ms);
            vo_job_lock_release_brief(&job, &brief);
        }
        poll(NULL, 0, s->gap_ms);
    }
    return NULL;
}

/* A task: holds the job plainly until released. */
typedef struct {
    atomic_bool holding, release;
} Task;

static void *task_main(void *arg)
{
    Task *t = arg;
    pthread_mutex_lock(&job);
    atomic_store(&t->holding, true);
    while (!atomic_load(&t->release))
        poll(NULL, 0, 5);
    atomic_store(&t->holding, false);
    pthread_mutex_unlock(&job);
    return NULL;
}

static atomic_int long_asked;

static bool task_runs(void *userdata)
{
    atomic_fetch_add(&long_asked, 1);
    return *(bool *)userdata;
}

static void wait_for(atomic_bool *flag)
{
    for (int i = 0; i < 2000 && !atomic_load(flag); i++)
        poll(NULL, 0, 5);
    assert_true(atomic_load(flag));
}

/* A task thread, once it holds the job. */
static pthread_t task_start(Task *t)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, task_main, t), 0);
    wait_for(&t->holding);
    return th;
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&brief, 0);
    atomic_store(&long_asked, 0);
    return 0;
}

static void test_sampler_never_waits(void **state)
{
    (void)state;
    Task t = { 0 };
    pthread_t th = task_start(&t);
    int64_t t0 = vo_now_ms();
    for (int i = 0; i < 100; i++)
        assert_false(vo_job_lock_try_brief(&job, &brief));
    assert_true(vo_now_ms() - t0 < 500);
    assert_int_equal(atomic_load(&brief), 0);
    atomic_store(&t.release, true);
    pthread_join(th, NULL);
    assert_true(vo_job_lock_try_brief(&job, &brief));
    assert_int_equal(atomic_load(&brief), 1);
    vo_job_lock_release_brief(&job, &brief);
    assert_int_equal(atomic_load(&brief), 0);
}

/* Samplers holding the job most of the time: every wait gets it, none is
 * refused, and the task question is never asked (a sampler is known). */
static void test_waits_out_samplers(void **state)
{
    (void)state;
    Sampler s[2] = { { .hold_ms = 15, .gap_ms = 1 }, { .hold_ms = 5, .gap_ms = 2 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, sampler_main, &s[i]), 0);
    while (atomic_load(&s[0].holds) + atomic_load(&s[1].holds) < 2)
        poll(NULL, 0, 1);
    /* What the API did before: a plain trylock, refused most times. */
    int plain_refused = 0;
    for (int i = 0; i < 60; i++) {
        if (pthread_mutex_trylock(&job) == 0)
            pthread_mutex_unlock(&job);
        else
            plain_refused++;
        poll(NULL, 0, 1);
    }
    bool never = true;
    for (int i = 0; i < 60; i++) {
        int r = vo_job_lock_wait_brief(&job, &brief, 2000, task_runs, &never);
        assert_int_equal(r, 0);
        poll(NULL, 0, 1); /* a quick operation's work */
        vo_job_lock_release_brief(&job, &brief);
    }
    for (int i = 0; i < 2; i++) {
        atomic_store(&s[i].stop, true);
        pthread_join(th[i], NULL);
    }
    print_message("plain trylock refused %d of 60 times; the brief wait none\n", plain_refused);
    assert_true(plain_refused > 0);
    assert_int_equal(atomic_load(&long_asked), 0);
    assert_int_equal(atomic_load(&brief), 0);
}

/* A task holds the job: refused at once (well before the 2-s bound),
 * with samplers around or not. */
static void test_task_refused_at_once(void **state)
{
    (void)state;
    Task t = { 0 };
    pthread_t th = task_start(&t), sth;
    Sampler s = { .hold_ms = 1, .gap_ms = 1 }; /* its tries fail: it never holds */
    assert_int_equal(pthread_create(&sth, NULL, sampler_main, &s), 0);
    bool yes = true;
    for (int i = 0; i < 20; i++) {
        int64_t t0 = vo_now_ms();
        assert_int_equal(vo_job_lock_wait_brief(&job, &brief, 2000, task_runs, &yes), -EBUSY);
        assert_true(vo_now_ms() - t0 < 1000);
    }
    atomic_store(&s.stop, true);
    pthread_join(sth, NULL);
    assert_int_equal(atomic_load(&s.holds), 0);
    atomic_store(&t.release, true);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&brief), 0);
}

/* A holder that is neither a counted brief one nor a named task (no task
 * runs): waited for up to the bound, then refused. */
static void test_unnamed_holder_until_bound(void **state)
{
    (void)state;
    Task t = { 0 };
    pthread_t th = task_start(&t);
    bool no = false;
    int64_t t0 = vo_now_ms();
    assert_int_equal(vo_job_lock_wait_brief(&job, &brief, 300, task_runs, &no), -ETIMEDOUT);
    int64_t took = vo_now_ms() - t0;
    assert_true(took >= 300 && took < 2000);
    assert_true(atomic_load(&long_asked) > 0);
    /* Released within the bound: taken. */
    atomic_store(&t.release, true);
    assert_int_equal(vo_job_lock_wait_brief(&job, &brief, 2000, task_runs, &no), 0);
    vo_job_lock_release_brief(&job, &brief);
    pthread_join(th, NULL);
}

/* The holder seen at the try lets go before the task question is answered
 * (a task that has just released the job and not yet left the registry, or
 * a sampler that ended between the try and the look at the count): a task
 * still listed is no reason to refuse a job that is free now. */
typedef struct {
    Task *t;
    pthread_t th;
} LettingGo;

static bool task_listed_after_release(void *userdata)
{
    LettingGo *g = userdata;
    atomic_fetch_add(&long_asked, 1);
    if (!atomic_load(&g->t->release)) {
        atomic_store(&g->t->release, true);
        pthread_join(g->th, NULL); /* the job is free from here */
    }
    return true;
}

static void test_free_again_after_task_question(void **state)
{
    (void)state;
    Task t = { 0 };
    LettingGo g = { .t = &t, .th = task_start(&t) };
    assert_int_equal(vo_job_lock_wait_brief(&job, &brief, 2000, task_listed_after_release, &g), 0);
    assert_int_equal(atomic_load(&long_asked), 1);
    assert_int_equal(atomic_load(&brief), 1);
    vo_job_lock_release_brief(&job, &brief);
    assert_int_equal(atomic_load(&brief), 0);
}

/* A brief holder that stays longer than the bound: refused at the bound
 * (never asked whether a task holds it). */
static void test_stuck_sampler_until_bound(void **state)
{
    (void)state;
    Sampler s = { .hold_ms = 1000, .gap_ms = 1000 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sampler_main, &s), 0);
    while (atomic_load(&s.holds) < 1)
        poll(NULL, 0, 1);
    bool yes = true;
    int64_t t0 = vo_now_ms();
    assert_int_equal(vo_job_lock_wait_brief(&job, &brief, 200, task_runs, &yes), -ETIMEDOUT);
    assert_true(vo_now_ms() - t0 >= 200);
    assert_int_equal(atomic_load(&long_asked), 0);
    atomic_store(&s.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&brief), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sampler_never_waits, setup),
        cmocka_unit_test_setup(test_waits_out_samplers, setup),
        cmocka_unit_test_setup(test_task_refused_at_once, setup),
        cmocka_unit_test_setup(test_unnamed_holder_until_bound, setup),
        cmocka_unit_test_setup(test_stuck_sampler_until_bound, setup),
        cmocka_unit_test_setup(test_free_again_after_task_question, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
