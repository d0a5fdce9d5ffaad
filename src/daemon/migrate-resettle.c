/* migrate-resettle.c: unknown switch outcomes settled in the background
 * (migrate-resettle.h). The settling itself is the one vireod's start makes
 * (migrate-recover.c, vo_migration_resettle); this file only asks it again,
 * with a backoff, until it is done. */
#include "daemon/migrate-resettle.h"

#include <pthread.h>
#include <string.h>

#include "daemon/migrate.h"
#include "util/periodic.h"
#include "util/util.h"

#define RESETTLE_PERIOD_MS 1000
#define RESETTLE_FIRST_WAIT_MS 2000
#define RESETTLE_MAX_WAIT_MS 60000

static VoPeriodic runner = VO_PERIODIC_INIT;
/* {vm id: {"name", "migration" (its id), "due" (monotonic ms), "wait" (ms),
 * "tries" (ended unsettled), "running" (a try under way), "hurried" (a
 * --resume waits for a try that starts after it)}}, under lock: added by task threads, rounds are the runner's. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *pending;

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

/* The ids due now. */
static char **due_ids(void)
{
    char **ids = vo_malloc0(sizeof(char *));
    int64_t now = vo_now_ms();
    pthread_mutex_lock(&lock);
    const char *id;
    json_t *e;
    json_object_foreach(pending, id, e)
        if (json_integer_value(json_object_get(e, "due")) <= now)
            vo_strv_push(&ids, vo_strdup(id));
    pthread_mutex_unlock(&lock);
    return ids;
}

static void resettle_round(void *userdata)
{
    VoDaemon *d = userdata;
    _cleanup_strv_ char **ids = due_ids();
    for (size_t i = 0; ids[i] && !vo_periodic_stopping(&runner); i++) {
        pthread_mutex_lock(&lock);
        json_t *e = json_object_get(pending, ids[i]);
        _cleanup_free_ char *migration = vo_strdup(
            json_string_value(json_object_get(e, "migration")));
        json_object_del(e, "hurried"); /* this try is the hurried one */
        json_object_set(e, "running", json_true());
        pthread_mutex_unlock(&lock);
        if (!migration)
            continue;
        bool settled = vo_migration_resettle(d, ids[i], migration);
        pthread_mutex_lock(&lock);
        e = entry_of(ids[i], migration); /* NULL: another migration's since */
        json_object_del(e, "running");
        if (settled && e) {
            json_object_del(pending, ids[i]);
        } else if (e) {
            json_int_t wait = json_integer_value(json_object_get(e, "wait")) * 2;
            if (wait > RESETTLE_MAX_WAIT_MS)
                wait = RESETTLE_MAX_WAIT_MS;
            json_object_set_new(e, "wait", json_integer(wait));
            bool hurried = json_is_true(json_object_get(e, "hurried")); /* meanwhile */
            json_object_set_new(e, "due", json_integer(vo_now_ms() + (hurried ? 0 : wait)));
            json_object_set_new(e, "tries",
                                json_integer(json_integer_value(json_object_get(e, "tries")) + 1));
            log_warn("vm %s: where its migration left it is still unknown: asked again in "
                     "%lld s",
                     json_string_value(json_object_get(e, "name")), (long long)wait / 1000);
        }
        pthread_mutex_unlock(&lock);
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
    json_decref(pending);
    pending = NULL;
    pthread_mutex_unlock(&lock);
}
