/* migrate-resettle.c: unknown switch outcomes settled in the background
 * (migrate-resettle.h). The settling itself is the one vireod's start makes
 * (migrate-recover.c, vo_migration_resettle); this file only asks it again,
 * with a backoff, until it is done. Each try runs on a thread of its own
 * (the runner only starts the due ones): a try can take long (the store
 * asked for up to 30 s, a post-copy recovery attempt), and other VMs'
 * settlings do not wait behind it. */
#include "daemon/migrate-resettle.h"

#include <pthread.h>
#include <string.h>

#include "daemon/migrate.h"
#include "util/periodic.h"
#include "util/util.h"

#define RESETTLE_PERIOD_MS 1000
#define RESETTLE_FIRST_WAIT_MS 2000
#define RESETTLE_MAX_WAIT_MS 60000
#define RESETTLE_STUCK_MAX_WAIT_MS 900000 /* a post-copy not recovered: each try costs */

static VoPeriodic runner = VO_PERIODIC_INIT;
/* {vm id: {"name", "migration" (its id), "due" (monotonic ms), "wait" (ms),
 * "tries" (ended unsettled), "running" (a try under way), "hurried" (a
 * --resume waits for a try that starts after it), "stuck" (why the last
 * try could not recover its post-copy, as noted)}}, under lock: added by
 * task threads, tries started by the runner, ended by their threads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tries_over = PTHREAD_COND_INITIALIZER;
static json_t *pending;
static int trying; /* tries under way on their threads */

int64_t vo_migrate_resettle_next_wait(int64_t wait, bool stuck)
{
    int64_t cap = stuck ? RESETTLE_STUCK_MAX_WAIT_MS : RESETTLE_MAX_WAIT_MS;
    return wait * 2 > cap ? cap : wait * 2;
}

/* vm_id's entry of migration, under lock; NULL when there is none. */
static json_t *entry_of(const char *vm_id, const char *migration)
{
    json_t *e = json_object_get(pending, vm_id); /* NULL pending: none */
    return e && !strcmp(json_string_value(json_object_get(e, "migration")), migration) ? e
                                                                                       : NULL;
}

void vo_migrate_resettle_later(VoDaemon *d, const char *vm_id, const char *name,
                               const char *migration)
{
    (void)d;
    pthread_mutex_lock(&lock);
    if (!pending)
        pending = json_object();
    if (entry_of(vm_id, migration)) {
        pthread_mutex_unlock(&lock); /* asked again by its own round: backoff kept */
        return;
    }
    json_object_set_new(pending, vm_id,
                        json_pack("{s:s, s:s, s:I, s:i, s:i}", "name", name, "migration",
                                  migration, "due",
                                  (json_int_t)(vo_now_ms() + RESETTLE_FIRST_WAIT_MS), "wait",
                                  RESETTLE_FIRST_WAIT_MS, "tries", 0));
    pthread_mutex_unlock(&lock);
    log_info("vm %s: where its migration left it is asked of the store again in the "
             "background (first in %d s)", name, RESETTLE_FIRST_WAIT_MS / 1000);
}

bool vo_migrate_resettle_pending(const char *vm_id)
{
    pthread_mutex_lock(&lock);
    bool queued = json_object_get(pending, vm_id) != NULL; /* NULL pending: none */
    pthread_mutex_unlock(&lock);
    return queued;
}

int vo_migrate_resettle_hurry(const char *vm_id, const char *migration)
{
    pthread_mutex_lock(&lock);
    json_t *e = entry_of(vm_id, migration);
    int after = -1;
    if (e) {
        /* A try under way started before: the one after it is the hurried one. */
        after = (int)json_integer_value(json_object_get(e, "tries")) + 1 +
                json_is_true(json_object_get(e, "running"));
        json_object_set_new(e, "due", json_integer(vo_now_ms()));
        json_object_set_new(e, "hurried", json_true()); /* cleared as a try starts */
    }
    pthread_mutex_unlock(&lock);
    return after;
}

int vo_migrate_resettle_tries(const char *vm_id, const char *migration)
{
    pthread_mutex_lock(&lock);
    json_t *e = entry_of(vm_id, migration);
    int tries = e ? (int)json_integer_value(json_object_get(e, "tries")) : -1;
    pthread_mutex_unlock(&lock);
    return tries;
}

/* The ids due now, with no try under way. */
static char **due_ids(void)
{
    char **ids = vo_malloc0(sizeof(char *));
    int64_t now = vo_now_ms();
    pthread_mutex_lock(&lock);
    const char *id;
    json_t *e;
    json_object_foreach(pending, id, e)
        if (json_integer_value(json_object_get(e, "due")) <= now &&
            !json_is_true(json_object_get(e, "running")))
            vo_strv_push(&ids, vo_strdup(id));
    pthread_mutex_unlock(&lock);
    return ids;
}

typedef struct {
    VoDaemon *d;
    char *vm_id, *migration;
} Try;

/* One try of one VM's intent, and its bookkeeping: settled, it leaves the
 * table; else its next is due after its backoff (doubling; to 15 min once
 * its post-copy could not be recovered, to 60 s while the store is asked),
 * and a new reason it is stuck is noted as an event (not each try). */
static void *try_main(void *arg)
{
    Try *x = arg;
    _cleanup_free_ char *stuck = NULL;
    bool settled = vo_migration_resettle(x->d, x->vm_id, x->migration, &stuck);
    pthread_mutex_lock(&lock);
    json_t *e = entry_of(x->vm_id, x->migration); /* NULL: another migration's since */
    json_object_del(e, "running");
    _cleanup_free_ char *name = NULL;
    int tries = 0;
    int64_t note_wait = -1;
    if (settled && e) {
        json_object_del(pending, x->vm_id);
    } else if (e) {
        json_int_t wait = vo_migrate_resettle_next_wait(
            json_integer_value(json_object_get(e, "wait")), stuck != NULL);
        json_object_set_new(e, "wait", json_integer(wait));
        bool hurried = json_is_true(json_object_get(e, "hurried")); /* meanwhile */
        json_object_set_new(e, "due", json_integer(vo_now_ms() + (hurried ? 0 : wait)));
        tries = (int)json_integer_value(json_object_get(e, "tries")) + 1;
        json_object_set_new(e, "tries", json_integer(tries));
        name = vo_strdup(json_string_value(json_object_get(e, "name")));
        const char *noted = json_string_value(json_object_get(e, "stuck"));
        if (stuck && (!noted || strcmp(noted, stuck))) {
            json_object_set_new(e, "stuck", json_string(stuck));
            note_wait = wait;
        } else if (!stuck) {
            json_object_del(e, "stuck");
            log_warn("vm %s: where its migration left it is still unknown: asked again in "
                     "%lld s", name, (long long)wait / 1000);
        } else {
            log_warn("vm %s: its post-copy is still not recovered (%s): tried again in %lld s",
                     name, stuck, (long long)wait / 1000);
        }
    }
    pthread_mutex_unlock(&lock);
    if (note_wait >= 0) /* before the try counts as over: d's tasks outlive it */
        vo_migration_note_stuck(x->d, x->vm_id, name, stuck, tries, note_wait);
    pthread_mutex_lock(&lock);
    trying--;
    pthread_cond_broadcast(&tries_over);
    pthread_mutex_unlock(&lock);
    free(x->vm_id);
    free(x->migration);
    free(x);
    return NULL;
}

static void resettle_round(void *userdata)
{
    VoDaemon *d = userdata;
    _cleanup_strv_ char **ids = due_ids();
    for (size_t i = 0; ids[i] && !vo_periodic_stopping(&runner); i++) {
        pthread_mutex_lock(&lock);
        json_t *e = json_object_get(pending, ids[i]);
        const char *migration = json_string_value(json_object_get(e, "migration"));
        if (!migration || json_is_true(json_object_get(e, "running"))) {
            pthread_mutex_unlock(&lock);
            continue;
        }
        Try *x = vo_malloc0(sizeof(*x));
        *x = (Try){ .d = d, .vm_id = vo_strdup(ids[i]), .migration = vo_strdup(migration) };
        json_object_del(e, "hurried"); /* this try is the hurried one */
        json_object_set(e, "running", json_true());
        trying++;
        pthread_mutex_unlock(&lock);
        pthread_t t;
        if (pthread_create(&t, NULL, try_main, x) == 0)
            pthread_detach(t);
        else
            try_main(x); /* no thread: made here */
    }
}

int vo_migrate_resettle_start(VoDaemon *d)
{
    if (!d->cluster || vo_periodic_started(&runner))
        return 0;
    return vo_periodic_start(&runner, resettle_round, d, RESETTLE_PERIOD_MS);
}

void vo_migrate_resettle_stop(VoDaemon *d)
{
    (void)d;
    if (!vo_periodic_stop(&runner))
        return;
    pthread_mutex_lock(&lock);
    while (trying > 0) /* each try is bounded (migrate-recover.c) */
        pthread_cond_wait(&tries_over, &lock);
    json_decref(pending);
    pending = NULL;
    pthread_mutex_unlock(&lock);
}
