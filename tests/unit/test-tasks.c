/* test-tasks.c: the task scheduler (jobs/tasks.c): the queue bound and its
 * 429, one running task per key, a blocked key not starving another, tasks
 * of one key in order, and at most one pending task with `once`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <pthread.h>
#include <poll.h>

#include <cmocka.h>

#include "jobs/tasks.h"
#include "util/util.h"
#include "vireo/errors.h"

/* A gate the blocking tasks wait at until the test opens it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int running_a, max_running_a; /* tasks of key "a" running at once */
static char order[64];               /* which tasks ran, in order */

typedef struct {
    char name;
    bool block;
} Job;

static int job_run(VoTask *t, void *userdata)
{
    Job *j = userdata;
    pthread_mutex_lock(&gate_lock);
    if (j->name == 'a' || j->name == 'A') {
        running_a++;
        if (running_a > max_running_a)
            max_running_a = running_a;
    }
    size_t n = strlen(order);
    if (n + 1 < sizeof(order))
        order[n] = j->name;
    while (j->block && !gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    if (j->name == 'a' || j->name == 'A')
        running_a--;
    pthread_mutex_unlock(&gate_lock);
    return 0;
}

static int setup(void **state)
{
    gate_open = false;
    running_a = max_running_a = 0;
    memset(order, 0, sizeof(order));
    return 0;
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* Submits a job named name on key (NULL: none); returns 0/1/-errno. */
static int submit(VoTasks *ts, char name, const char *key, bool block, char **ret_id,
                  char **ret_error)
{
    Job *j = vo_malloc0(sizeof(*j));
    *j = (Job){ .name = name, .block = block };
    char target[2] = { name, 0 };
    VoTaskDesc desc = { .kind = "test", .target = key ? key : target, .keys = { key } };
    json_t *task = NULL;
    int r = vo_tasks_submit(ts, &desc, job_run, j, free, &task, ret_error);
    if (r != 0)
        free(j);
    if (ret_id && task)
        *ret_id = vo_strdup(json_string_value(json_object_get(task, "id")));
    json_decref(task);
    return r;
}

static Job *job_copy(const Job *j)
{
    Job *c = vo_malloc0(sizeof(*c));
    *c = *j;
    return c;
}

static const char *state_of(VoTasks *ts, const char *id)
{
    json_t *t = vo_tasks_get_json(ts, id);
    static char buf[16];
    snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(t, "state")));
    json_decref(t);
    return buf;
}

/* Bounded wait (10 s) for the task to reach state. */
static bool wait_state(VoTasks *ts, const char *id, const char *state)
{
    for (int i = 0; i < 1000; i++) {
        if (!strcmp(state_of(ts, id), state))
            return true;
        (void)poll(NULL, 0, 10);
    }
    return false;
}

static void test_bound_refuses_with_429(void **state)
{
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 3, 2 }, &ts), 0);
    _cleanup_free_ char *first = NULL;
    assert_int_equal(submit(ts, 'a', "vm/a", true, &first, NULL), 0);
    assert_true(wait_state(ts, first, "running")); /* running: not counted */
    char *error = NULL;
    assert_int_equal(submit(ts, 'a', "vm/a", false, NULL, &error), 0);
    assert_int_equal(submit(ts, 'a', "vm/a", false, NULL, &error), 0);
    /* Per key: a third waiting task of vm/a is refused. */
    assert_int_equal(submit(ts, 'a', "vm/a", false, NULL, &error), -EUSERS);
    assert_non_null(strstr(error, "too many operations on 'vm/a'"));
    free(error);
    error = NULL;
    /* Another key still fits, up to the total. */
    assert_int_equal(submit(ts, 'b', "vm/b", false, NULL, &error), 0);
    assert_int_equal(submit(ts, 'c', "vm/c", false, NULL, &error), -EUSERS);
    assert_non_null(strstr(error, "at most 3"));
    free(error);
    /* vireod's own (autostart) is never refused. */
    Job *own = vo_malloc0(sizeof(*own));
    *own = (Job){ .name = 'o' };
    json_t *t = NULL;
    VoTaskDesc autostart = { .kind = "start", .target = "o", .keys = { "vm/o" },
                             .unbounded = true };
    assert_int_equal(vo_tasks_submit(ts, &autostart, job_run, own, free, &t, NULL), 0);
    json_decref(t);
    assert_int_equal(vo_error_from_errno(-EUSERS), VO_ERR_TOO_MANY_REQUESTS);
    assert_int_equal(vo_error_http_status(VO_ERR_TOO_MANY_REQUESTS), 429);
    assert_string_equal(vo_error_code_name(VO_ERR_TOO_MANY_REQUESTS), "too-many-requests");
    open_gate();
    ts = vo_tasks_free(ts); /* runs what was queued */
    assert_string_equal(order, "aaabo");
}

static void test_blocked_key_does_not_starve_another(void **state)
{
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 3, 64, 16 }, &ts), 0);
    _cleanup_free_ char *a1 = NULL, *b = NULL, *n = NULL;
    assert_int_equal(submit(ts, 'a', "vm/a", true, &a1, NULL), 0);
    assert_true(wait_state(ts, a1, "running"));
    char *ids[8] = { 0 };
    for (size_t i = 0; i < ELEMENTSOF(ids); i++)
        assert_int_equal(submit(ts, 'A', "vm/a", true, &ids[i], NULL), 0);
    assert_int_equal(submit(ts, 'b', "vm/b", false, &b, NULL), 0);
    assert_int_equal(submit(ts, 'n', NULL, false, &n, NULL), 0);
    /* vm/a's queue waits (not on workers): b and the unkeyed task run. */
    assert_true(wait_state(ts, b, "succeeded"));
    assert_true(wait_state(ts, n, "succeeded"));
    assert_string_equal(state_of(ts, a1), "running");
    for (size_t i = 0; i < ELEMENTSOF(ids); i++)
        assert_string_equal(state_of(ts, ids[i]), "queued");
    open_gate();
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        assert_true(wait_state(ts, ids[i], "succeeded"));
        free(ids[i]);
    }
    assert_int_equal(max_running_a, 1); /* never two tasks of one key at once */
    assert_int_equal(strspn(order, "aA"), 1); /* a first, then b and n before the As */
    vo_tasks_free(ts);
}

static void test_multi_key_tasks_keep_order(void **state)
{
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 4, 64, 16 }, &ts), 0);
    _cleanup_free_ char *x = NULL, *y = NULL, *z = NULL;
    /* x holds "backups"; y needs vm/a and "backups"; z needs vm/a only and
     * was submitted after y: it waits for y (one order per key). */
    Job *jx = vo_malloc0(sizeof(Job)), *jy = vo_malloc0(sizeof(Job)), *jz = vo_malloc0(sizeof(Job));
    *jx = (Job){ 'x', true };
    *jy = (Job){ 'y', false };
    *jz = (Job){ 'z', false };
    json_t *t = NULL;
    VoTaskDesc dx = { .kind = "k", .target = "x", .keys = { "backups" } };
    assert_int_equal(vo_tasks_submit(ts, &dx, job_run, jx, free, &t, NULL), 0);
    x = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    assert_true(wait_state(ts, x, "running"));
    VoTaskDesc dy = { .kind = "k", .target = "y", .keys = { "vm/a", "backups" } };
    assert_int_equal(vo_tasks_submit(ts, &dy, job_run, jy, free, &t, NULL), 0);
    y = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    VoTaskDesc dz = { .kind = "k", .target = "z", .keys = { "vm/a" } };
    assert_int_equal(vo_tasks_submit(ts, &dz, job_run, jz, free, &t, NULL), 0);
    z = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    assert_string_equal(state_of(ts, y), "queued");
    assert_string_equal(state_of(ts, z), "queued");
    open_gate();
    assert_true(wait_state(ts, z, "succeeded"));
    assert_string_equal(order, "xyz");
    vo_tasks_free(ts);
}

static void test_once_answers_the_pending_task(void **state)
{
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    _cleanup_free_ char *first = NULL;
    assert_int_equal(submit(ts, 'a', "vm/a", true, &first, NULL), 0);
    VoTaskDesc once = { .kind = "backup-verify", .target = "b1", .keys = { "backups" },
                        .once = true };
    json_t *t1 = NULL, *t2 = NULL, *t3 = NULL;
    Job j = { 'v', false };
    assert_int_equal(vo_tasks_submit(ts, &once, job_run, job_copy(&j), free, &t1,
                                     NULL), 0);
    Job *dup = job_copy(&j);
    assert_int_equal(vo_tasks_submit(ts, &once, job_run, dup, free, &t2, NULL), 1);
    free(dup); /* not taken: the caller's */
    assert_string_equal(json_string_value(json_object_get(t1, "id")),
                        json_string_value(json_object_get(t2, "id")));
    open_gate();
    const char *id = json_string_value(json_object_get(t1, "id"));
    assert_true(wait_state(ts, id, "succeeded"));
    /* Finished: a new request makes a new task. */
    assert_int_equal(vo_tasks_submit(ts, &once, job_run, job_copy(&j), free, &t3,
                                     NULL), 0);
    assert_string_not_equal(id, json_string_value(json_object_get(t3, "id")));
    json_decref(t1);
    json_decref(t2);
    json_decref(t3);
    vo_tasks_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bound_refuses_with_429, setup),
        cmocka_unit_test_setup(test_blocked_key_does_not_starve_another, setup),
        cmocka_unit_test_setup(test_multi_key_tasks_keep_order, setup),
        cmocka_unit_test_setup(test_once_answers_the_pending_task, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
