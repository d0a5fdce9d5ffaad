/* test-tasks.c: the task scheduler (jobs/tasks.c): the queue bound and its
 * 429, one running task per key, a blocked key not starving another, tasks
 * of one key in order, and at most one pending task with `once`; the
 * operation documents in the store (written on each change, read back after
 * a restart with the cut-short ones interrupted, retention), and cancel of a
 * queued and of a running task (its qemu-img-like child killed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <pthread.h>
#include <poll.h>

#include <cmocka.h>

#include "jobs/tasks.h"
#include "state/store.h"
#include "util/cancel.h"
#include "util/spawn.h"
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
    if (j->name == 'u') /* shown at once, not written */
        vo_task_set_details_unwritten(t, 92, "switching over",
                                      json_pack("{s:s}", "phase", "switchover"));
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

/* ---- operation documents ---------------------------------------------------- */

static char *temp_db(char dir[static 64])
{
    snprintf(dir, 64, "/tmp/vireo-test-tasks-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return vo_asprintf("%s/vireo.db", dir);
}

static json_t *stored(VoStore *s, const char *id, int64_t *ret_rev)
{
    _cleanup_free_ char *key = vo_asprintf(VO_TASKS_PREFIX "%s", id);
    _cleanup_free_ char *text = NULL;
    if (vo_store_get(s, key, &text, ret_rev) < 0)
        return NULL;
    return json_loads(text, 0, NULL);
}

static void test_documents_round_trip_and_interrupted_after_restart(void **state)
{
    char dir[64];
    _cleanup_free_ char *db = temp_db(dir);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    assert_int_equal(vo_tasks_attach_store(ts, s), 0);

    /* A finished one: its document is what GET answers, field for field. */
    vo_tasks_set_requester(true, 1234, 4321);
    _cleanup_free_ char *done = NULL, *running = NULL, *queued = NULL;
    assert_int_equal(submit(ts, 'd', "vm/d", false, &done, NULL), 0);
    vo_tasks_set_requester(false, 0, 0);
    assert_true(wait_state(ts, done, "succeeded"));
    json_t *doc = stored(s, done, NULL), *shown = vo_tasks_get_json(ts, done);
    assert_non_null(doc);
    assert_true(json_equal(doc, shown));
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "requested_by"),
                                                        "uid")), 1234);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "requested_by"),
                                                        "pid")), 4321);
    assert_true(json_is_string(json_object_get(doc, "started_at")));
    assert_true(json_is_string(json_object_get(doc, "finished_at")));
    json_decref(doc);
    json_decref(shown);

    /* One running (blocked) and one queued behind it when "vireod dies". */
    assert_int_equal(submit(ts, 'a', "vm/a", true, &running, NULL), 0);
    assert_true(wait_state(ts, running, "running"));
    assert_int_equal(submit(ts, 'a', "vm/a", false, &queued, NULL), 0);
    doc = stored(s, running, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "running");
    json_decref(doc);
    doc = stored(s, queued, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "queued");
    json_decref(doc);

    /* A second vireod on the same store (the first never finishes them). */
    VoStore *s2 = NULL;
    assert_int_equal(vo_store_open(db, &s2), 0);
    VoTasks *ts2 = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts2), 0);
    vo_tasks_note_cleanup(ts2, "images/a", "/x/images/.build-a");
    assert_int_equal(vo_tasks_attach_store(ts2, s2), 0);
    const char *ids[] = { running, queued };
    for (size_t i = 0; i < 2; i++) {
        json_t *t = vo_tasks_get_json(ts2, ids[i]);
        assert_non_null(t);
        assert_string_equal(json_string_value(json_object_get(t, "state")), "failed");
        json_t *err = json_object_get(t, "error");
        assert_string_equal(json_string_value(json_object_get(err, "code")), "interrupted");
        assert_non_null(strstr(json_string_value(json_object_get(err, "message")),
                               i == 0 ? "while it was running" : "while it was queued"));
        json_t *d2 = stored(s2, ids[i], NULL);
        assert_true(json_equal(t, d2));
        json_decref(d2);
        json_decref(t);
    }
    /* The finished one is as it was, and the list is newest first. */
    json_t *t = vo_tasks_get_json(ts2, done);
    assert_string_equal(json_string_value(json_object_get(t, "state")), "succeeded");
    json_decref(t);
    json_t *list = vo_tasks_list_json(ts2);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    ts2 = vo_tasks_free(ts2);
    vo_store_close(s2);

    /* The old writer finishing late loses: each write states the revision
     * it last wrote, and the document moved on. */
    open_gate();
    ts = vo_tasks_free(ts);
    doc = stored(s, running, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "failed");
    json_decref(doc);
    vo_store_close(s);
    _cleanup_free_ char *rm = vo_asprintf("rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

/* Details set unwritten: GET shows them at once, the store gets them only
 * with the task's next write (its end here). */
static void test_details_unwritten_wait_for_the_next_write(void **state)
{
    char dir[64];
    _cleanup_free_ char *db = temp_db(dir);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    assert_int_equal(vo_tasks_attach_store(ts, s), 0);
    _cleanup_free_ char *id = NULL;
    assert_int_equal(submit(ts, 'u', "vm/u", true, &id, NULL), 0);
    json_t *shown = NULL;
    for (int i = 0; i < 500; i++) { /* bounded: 5 s */
        shown = vo_tasks_get_json(ts, id);
        if (json_object_get(shown, "details"))
            break;
        json_decref(shown);
        shown = NULL;
        usleep(10000);
    }
    assert_non_null(shown);
    assert_string_equal(json_string_value(json_object_get(shown, "message")), "switching over");
    assert_int_equal(json_integer_value(json_object_get(shown, "progress")), 92);
    json_t *doc = stored(s, id, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "running");
    assert_null(json_object_get(doc, "details")); /* not written */
    json_decref(doc);
    json_decref(shown);
    open_gate();
    assert_true(wait_state(ts, id, "succeeded"));
    doc = stored(s, id, NULL);
    shown = vo_tasks_get_json(ts, id);
    assert_true(json_equal(doc, shown)); /* the end's write carried them */
    assert_non_null(json_object_get(doc, "details"));
    json_decref(doc);
    json_decref(shown);
    ts = vo_tasks_free(ts);
    vo_store_close(s);
    _cleanup_free_ char *rm = vo_asprintf("rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

/* A volume import cut short: the sweep's note names its file. */
static void test_interrupted_names_what_was_removed(void **state)
{
    char dir[64];
    _cleanup_free_ char *db = temp_db(dir);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    const char *id = "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b7c";
    _cleanup_free_ char *key = vo_asprintf(VO_TASKS_PREFIX "%s", id);
    _cleanup_free_ char *text = vo_asprintf(
        "{\"id\":\"%s\",\"kind\":\"volume-import\",\"target\":\"v1\",\"target_id\":\"p/v1\","
        "\"state\":\"running\",\"progress\":40}", id);
    assert_int_equal(vo_store_put(s, key, text, VO_REV_NEW, NULL), 0);
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    vo_tasks_note_cleanup(ts, "volumes/p/other", "/pool/other.qcow2");
    vo_tasks_note_cleanup(ts, "volumes/p/v1", "/pool/v1.qcow2");
    assert_int_equal(vo_tasks_attach_store(ts, s), 0);
    json_t *t = vo_tasks_get_json(ts, id);
    const char *msg = json_string_value(json_object_get(json_object_get(t, "error"), "message"));
    assert_non_null(strstr(msg, "/pool/v1.qcow2"));
    assert_null(strstr(msg, "other"));
    json_decref(t);
    ts = vo_tasks_free(ts);
    vo_store_close(s);
    _cleanup_free_ char *rm = vo_asprintf("rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

/* kill -9 between the commit of what an operation made and the operation's
 * final write: the object is there and whole, so the operation ends
 * succeeded (not "failed: interrupted"); one whose object is missing, or
 * for which the sweep removed something, is interrupted as before. */
static void test_completed_before_the_stop_ends_succeeded(void **state)
{
    char dir[64];
    _cleanup_free_ char *db = temp_db(dir);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    const char *ids[] = { "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b71",   /* volume there */
                          "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b72",   /* volume missing */
                          "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b73",   /* image there */
                          "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b74",   /* backup there */
                          "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b75" }; /* there, but swept */
    const char *docs[] = {
        "\"kind\":\"volume-import\",\"target\":\"v1\",\"target_id\":\"p/v1\",\"progress\":90",
        "\"kind\":\"volume-clone\",\"target\":\"v2\",\"target_id\":\"p/v2\",\"progress\":90",
        "\"kind\":\"image-import\",\"target\":\"img\",\"target_id\":null,\"progress\":95",
        "\"kind\":\"backup-create\",\"target\":\"vm1\",\"target_id\":\"x\",\"progress\":99,"
        "\"message\":\"vm1-20261205-000000-abcd\"",
        "\"kind\":\"volume-create\",\"target\":\"v3\",\"target_id\":\"p/v3\",\"progress\":50",
    };
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        _cleanup_free_ char *key = vo_asprintf(VO_TASKS_PREFIX "%s", ids[i]);
        _cleanup_free_ char *text = vo_asprintf("{\"id\":\"%s\",\"state\":\"running\",%s}",
                                                ids[i], docs[i]);
        assert_int_equal(vo_store_put(s, key, text, VO_REV_NEW, NULL), 0);
    }
    const char *made[] = { "volumes/p/v1", "images/img", "backups/vm1-20261205-000000-abcd",
                           "volumes/p/v3" };
    for (size_t i = 0; i < ELEMENTSOF(made); i++)
        assert_int_equal(vo_store_put(s, made[i], "{}", VO_REV_NEW, NULL), 0);
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    vo_tasks_note_cleanup(ts, "volumes/p/v3", "/pool/v3.qcow2");
    assert_int_equal(vo_tasks_attach_store(ts, s), 0);
    const char *want[] = { "succeeded", "failed", "succeeded", "succeeded", "failed" };
    for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
        json_t *t = vo_tasks_get_json(ts, ids[i]);
        assert_string_equal(json_string_value(json_object_get(t, "state")), want[i]);
        json_t *d = stored(s, ids[i], NULL);
        assert_true(json_equal(t, d));
        if (!strcmp(want[i], "succeeded")) {
            assert_non_null(strstr(json_string_value(json_object_get(t, "message")),
                                   "completed before vireod stopped"));
            assert_true(json_is_null(json_object_get(t, "error")));
        } else {
            assert_string_equal(json_string_value(json_object_get(json_object_get(t, "error"),
                                                                  "code")), "interrupted");
        }
        if (i == 3)
            assert_string_equal(json_string_value(json_object_get(json_object_get(t, "result"),
                                                                  "backup")),
                                "vm1-20261205-000000-abcd");
        json_decref(d);
        json_decref(t);
    }
    ts = vo_tasks_free(ts);
    vo_store_close(s);
    (void)vo_rm_rf(dir);
}

static void test_retention_deletes_the_oldest_documents(void **state)
{
    char dir[64];
    _cleanup_free_ char *db = temp_db(dir);
    VoStore *s = NULL;
    assert_int_equal(vo_store_open(db, &s), 0);
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 2, 1000, 1000 }, &ts), 0);
    assert_int_equal(vo_tasks_attach_store(ts, s), 0);
    _cleanup_free_ char *first = NULL;
    char *last = NULL;
    for (int i = 0; i < VO_TASKS_KEPT + 20; i++) {
        free(last);
        last = NULL;
        assert_int_equal(submit(ts, 'r', NULL, false, i == 0 ? &first : &last, NULL), 0);
        if (i == 0)
            assert_true(wait_state(ts, first, "succeeded"));
    }
    assert_true(wait_state(ts, last, "succeeded"));
    /* One more submit prunes what finished beyond the bound. */
    _cleanup_free_ char *extra = NULL;
    assert_int_equal(submit(ts, 'r', NULL, false, &extra, NULL), 0);
    assert_true(wait_state(ts, extra, "succeeded"));
    assert_null(vo_tasks_get_json(ts, first));
    assert_null(stored(s, first, NULL));
    json_t *doc = stored(s, last, NULL);
    assert_non_null(doc);
    json_decref(doc);
    json_t *list = vo_tasks_list_json(ts);
    assert_true(json_array_size(list) <= VO_TASKS_KEPT);
    json_decref(list);
    free(last);
    ts = vo_tasks_free(ts);
    vo_store_close(s);
    _cleanup_free_ char *rm = vo_asprintf("rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

/* ---- cancel ------------------------------------------------------------------ */

static int undone, freed;

/* The state the cancelled task showed while its undo ran (a reservation
 * released before "cancelled" is visible). */
static VoTasks *undo_ts;
static const char *undo_id;
static char undo_saw[16];

static void count_undo(void *p)
{
    undone++;
    if (undo_ts && undo_id)
        snprintf(undo_saw, sizeof(undo_saw), "%s", state_of(undo_ts, undo_id));
}
static void count_free(void *p) { freed++; }

/* Waits in a child process ("qemu-img") the way the storage code does. */
static int child_run(VoTask *t, void *userdata)
{
    char *argv[] = { "sleep", "30", NULL };
    pthread_mutex_lock(&gate_lock);
    running_a++;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    int r = vo_spawn_wait(argv, 60000, NULL);
    return r < 0 ? vo_task_fail(t, r, "stopped: %s", strerror(-r)) : 0;
}

static void test_cancel_queued_and_running(void **state)
{
    undone = freed = 0;
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    json_t *t = NULL;
    VoTaskDesc run = { .kind = "image-import", .target = "x", .keys = { "k" },
                       .cancellable = true, .undo = count_undo };
    assert_int_equal(vo_tasks_submit(ts, &run, child_run, NULL, count_free, &t, NULL), 0);
    _cleanup_free_ char *running = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    assert_int_equal(vo_tasks_submit(ts, &run, child_run, NULL, count_free, &t, NULL), 0);
    _cleanup_free_ char *queued = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    VoTaskDesc fixed = { .kind = "start", .target = "vm", .keys = { "k" } };
    Job *vm_job = vo_malloc0(sizeof(*vm_job));
    *vm_job = (Job){ .name = 's' };
    assert_int_equal(vo_tasks_submit(ts, &fixed, job_run, vm_job, free, &t, NULL), 0);
    _cleanup_free_ char *uncancellable = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    assert_true(wait_state(ts, running, "running"));

    /* If-Match naming another revision than the document's: 412, nothing
     * changes (in memory the document has no revision: any > 0 differs). */
    char *error = NULL;
    assert_int_equal(vo_tasks_cancel_at(ts, queued, 7, &t, &error), -VO_EIFMATCH);
    assert_non_null(strstr(error, "If-Match"));
    free(error);
    error = NULL;
    assert_int_equal(vo_error_http_status(vo_error_from_errno(-VO_EIFMATCH)), 412);
    assert_true(wait_state(ts, queued, "queued"));
    assert_int_equal(undone, 0);

    /* Queued: cancelled at once, its preparation undone (before the
     * cancelled state shows), never run. */
    undo_ts = ts;
    undo_id = queued;
    assert_int_equal(vo_tasks_cancel(ts, queued, &t, &error), 0);
    undo_ts = NULL;
    assert_string_equal(json_string_value(json_object_get(t, "state")), "cancelled");
    json_decref(t);
    assert_int_equal(undone, 1);
    assert_string_equal(undo_saw, "queued");
    assert_int_equal(freed, 1);

    /* Not cancellable: 409 with the reason. */
    assert_int_equal(vo_tasks_cancel(ts, uncancellable, &t, &error), -EBUSY);
    assert_non_null(strstr(error, "a start task cannot be cancelled"));
    free(error);
    error = NULL;
    /* Unknown. */
    assert_int_equal(vo_tasks_cancel(ts, "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b7c", &t, &error),
                     -ENOENT);
    free(error);
    error = NULL;

    /* Running: its child is killed, it ends cancelled (not failed). */
    assert_int_equal(vo_tasks_cancel(ts, running, &t, &error), 1);
    assert_true(json_is_true(json_object_get(t, "cancel_requested")));
    json_decref(t);
    assert_true(wait_state(ts, running, "cancelled"));
    assert_int_equal(undone, 1); /* it ran: its own failure path undid */
    assert_true(wait_state(ts, uncancellable, "succeeded"));

    /* Finished: 409. */
    assert_int_equal(vo_tasks_cancel(ts, running, &t, &error), -EBUSY);
    assert_non_null(strstr(error, "has cancelled already"));
    free(error);
    ts = vo_tasks_free(ts);
    assert_int_equal(freed, 2);
    assert_int_equal(vo_error_http_status(vo_error_from_errno(-EBUSY)), 409);
    /* A busy store (-EAGAIN): 503, try again. */
    assert_int_equal(vo_error_http_status(vo_error_from_errno(-EAGAIN)), 503);
}

/* Hands its work over (vo_task_refuse_cancel), then waits at the gate. */
static int handed_over_run(VoTask *t, void *userdata)
{
    vo_task_refuse_cancel(t, "the VM's QEMU does it");
    pthread_mutex_lock(&gate_lock);
    running_a++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return 0;
}

/* A cancellable task whose work was handed over (a running VM's flatten):
 * its cancel is refused up front (409, saying why) and its document no
 * longer says it is cancellable, and it ends succeeded; one queued behind
 * it is still cancellable, and cancelled at once. */
static void test_cancel_refused_once_handed_over(void **state)
{
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    json_t *t = NULL;
    VoTaskDesc desc = { .kind = "volume-flatten", .target = "x", .keys = { "k" },
                        .cancellable = true };
    assert_int_equal(vo_tasks_submit(ts, &desc, handed_over_run, NULL, NULL, &t, NULL), 0);
    _cleanup_free_ char *running = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    assert_int_equal(vo_tasks_submit(ts, &desc, handed_over_run, NULL, NULL, &t, NULL), 0);
    _cleanup_free_ char *queued = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    pthread_mutex_lock(&gate_lock);
    while (running_a < 1)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    t = vo_tasks_get_json(ts, running);
    assert_true(json_is_false(json_object_get(t, "cancellable")));
    json_decref(t);
    t = vo_tasks_get_json(ts, queued);
    assert_true(json_is_true(json_object_get(t, "cancellable")));
    json_decref(t);
    char *error = NULL;
    assert_int_equal(vo_tasks_cancel(ts, running, &t, &error), -EBUSY);
    assert_non_null(strstr(error, "cannot be cancelled now: the VM's QEMU does it"));
    free(error);
    error = NULL;
    assert_int_equal(vo_tasks_cancel(ts, queued, &t, &error), 0);
    json_decref(t);
    open_gate();
    assert_true(wait_state(ts, running, "succeeded"));
    assert_true(wait_state(ts, queued, "cancelled"));
    ts = vo_tasks_free(ts);
}

/* Fails for a reason of its own once a cancel was asked, without having
 * noticed the cancel. */
static int fail_after_cancel(VoTask *t, void *userdata)
{
    for (int i = 0; i < 1000 && !vo_task_cancelled(t); i++)
        (void)poll(NULL, 0, 10);
    return vo_task_fail(t, -ENOSPC, "the pool is full");
}

/* A real error after a cancel request keeps its code: failed, not
 * cancelled (only work that stopped at the cancel, -ECANCELED, is). */
static void test_error_after_cancel_keeps_its_code(void **state)
{
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    json_t *t = NULL;
    VoTaskDesc desc = { .kind = "image-import", .target = "y", .cancellable = true };
    assert_int_equal(vo_tasks_submit(ts, &desc, fail_after_cancel, NULL, NULL, &t, NULL), 0);
    _cleanup_free_ char *id = vo_strdup(json_string_value(json_object_get(t, "id")));
    json_decref(t);
    assert_true(wait_state(ts, id, "running"));
    char *error = NULL;
    assert_int_equal(vo_tasks_cancel(ts, id, &t, &error), 1);
    json_decref(t);
    assert_true(wait_state(ts, id, "failed"));
    t = vo_tasks_get_json(ts, id);
    json_t *err = json_object_get(t, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "insufficient-storage");
    assert_string_equal(json_string_value(json_object_get(err, "message")), "the pool is full");
    json_decref(t);
    ts = vo_tasks_free(ts);
}

/* A store whose transactions fail while fail_txns > 0 (then the SQLite store
 * underneath answers): the ops table wrapped. */
typedef struct {
    VoStore base; /* first: the wrapper is passed as a VoStore */
    VoStoreOps ops;
    VoStore *inner;
    int fail_txns;
    pthread_mutex_t lock;
} FailingStore;

static VoStore *inner_of(VoStore *s)
{
    return ((FailingStore *)s)->inner;
}

static int failing_get(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev)
{
    return inner_of(s)->ops->get(inner_of(s), key, ret_value, ret_rev);
}

static int failing_list(VoStore *s, const char *prefix, VoStoreListFn fn, void *userdata,
                        int64_t *ret_rev)
{
    return inner_of(s)->ops->list(inner_of(s), prefix, fn, userdata, ret_rev);
}

static int failing_txn(VoStore *s, const VoStoreCompare *cmps, size_t n_cmps,
                       const VoStoreOp *ops, size_t n_ops, int64_t *ret_rev, size_t *ret_failed)
{
    FailingStore *f = (FailingStore *)s;
    pthread_mutex_lock(&f->lock);
    bool fail = f->fail_txns > 0;
    if (fail)
        f->fail_txns--;
    pthread_mutex_unlock(&f->lock);
    if (fail)
        return -EBUSY; /* SQLite's "database is locked", say */
    return f->inner->ops->txn(f->inner, cmps, n_cmps, ops, n_ops, ret_rev, ret_failed);
}

/* The final write of an operation fails (more often than its immediate
 * retries): GET answers the end at once, and the document in the store
 * gets there on the retry timer, not left "running" for ever. */
static void test_failed_final_write_is_retried(void **state)
{
    char dir[64];
    _cleanup_free_ char *db = temp_db(dir);
    FailingStore f = { .lock = PTHREAD_MUTEX_INITIALIZER };
    assert_int_equal(vo_store_open(db, &f.inner), 0);
    f.ops = *f.inner->ops;
    f.ops.get = failing_get;
    f.ops.list = failing_list;
    f.ops.txn = failing_txn;
    f.base.ops = &f.ops;
    VoTasks *ts = NULL;
    assert_int_equal(vo_tasks_new(&(VoTasksLimits){ 1, 8, 8 }, &ts), 0);
    assert_int_equal(vo_tasks_attach_store(ts, &f.base), 0);
    _cleanup_free_ char *id = NULL;
    assert_int_equal(submit(ts, 'a', "vm/a", true, &id, NULL), 0);
    assert_true(wait_state(ts, id, "running"));
    pthread_mutex_lock(&f.lock);
    f.fail_txns = VO_TASKS_FINAL_WRITE_TRIES + 2; /* beyond the immediate retries */
    pthread_mutex_unlock(&f.lock);
    open_gate();
    assert_true(wait_state(ts, id, "succeeded"));
    bool written = false;
    for (int i = 0; i < 1000 && !written; i++) { /* bounded: 10 s */
        json_t *doc = stored(f.inner, id, NULL);
        written = doc && !strcmp(json_string_value(json_object_get(doc, "state")), "succeeded");
        json_decref(doc);
        if (!written)
            (void)poll(NULL, 0, 10);
    }
    assert_true(written);
    assert_int_equal(f.fail_txns, 0);
    json_t *doc = stored(f.inner, id, NULL), *shown = vo_tasks_get_json(ts, id);
    assert_true(json_equal(doc, shown));
    json_decref(doc);
    json_decref(shown);
    ts = vo_tasks_free(ts);
    vo_store_close(f.inner);
    (void)vo_rm_rf(dir);
}

/* A cancel token: its fd becomes readable, vo_cancelled() follows the
 * thread's current token only. */
static void test_cancel_token(void **state)
{
    VoCancel *c = vo_cancel_new();
    assert_false(vo_cancelled());
    vo_cancel_set_current(c);
    assert_false(vo_cancelled());
    struct pollfd p = { .fd = vo_cancel_fd(), .events = POLLIN };
    assert_int_equal(poll(&p, 1, 0), 0);
    vo_cancel_request(c);
    vo_cancel_request(c);
    assert_true(vo_cancelled());
    assert_int_equal(poll(&p, 1, 0), 1);
    char *argv[] = { "sleep", "30", NULL };
    assert_int_equal(vo_spawn_wait(argv, 60000, NULL), -ECANCELED);
    vo_cancel_set_current(NULL);
    assert_false(vo_cancelled());
    vo_cancel_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bound_refuses_with_429, setup),
        cmocka_unit_test_setup(test_blocked_key_does_not_starve_another, setup),
        cmocka_unit_test_setup(test_multi_key_tasks_keep_order, setup),
        cmocka_unit_test_setup(test_once_answers_the_pending_task, setup),
        cmocka_unit_test_setup(test_documents_round_trip_and_interrupted_after_restart, setup),
        cmocka_unit_test_setup(test_interrupted_names_what_was_removed, setup),
        cmocka_unit_test_setup(test_details_unwritten_wait_for_the_next_write, setup),
        cmocka_unit_test_setup(test_retention_deletes_the_oldest_documents, setup),
        cmocka_unit_test_setup(test_completed_before_the_stop_ends_succeeded, setup),
        cmocka_unit_test_setup(test_cancel_queued_and_running, setup),
        cmocka_unit_test_setup(test_cancel_token, setup),
        cmocka_unit_test_setup(test_cancel_refused_once_handed_over, setup),
        cmocka_unit_test_setup(test_failed_final_write_is_retried, setup),
        cmocka_unit_test_setup(test_error_after_cancel_keeps_its_code, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
