/* place-cache.c: placement's documents in memory, listed then watched (see
 * place-cache.h). */
#include "cluster/place-cache.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

static const char *const prefixes[VO_PLACE_CACHE_N_PREFIXES] = {
    [VO_PLACE_CACHE_P_MEMBERS] = VO_PLACE_CACHE_MEMBERS,
    [VO_PLACE_CACHE_P_RECORDS] = VO_PLACE_CACHE_RECORDS,
    [VO_PLACE_CACHE_P_GROUPS] = VO_PLACE_CACHE_GROUPS,
    [VO_PLACE_CACHE_P_GROUP_MEMBERS] = VO_PLACE_CACHE_GROUP_MEMBERS,
    [VO_PLACE_CACHE_P_SETTINGS] = VO_PLACE_CACHE_SETTINGS,
    [VO_PLACE_CACHE_P_NETWORK_OWNERS] = VO_PLACE_CACHE_NETWORK_OWNERS,
};

/* How long the watch thread waits for changes before looking whether it
 * must stop, and between two failed loads. */
#define WATCH_WAIT_MS 1000
#define RELOAD_PAUSE_MS 500

struct VoPlaceCache {
    VoStore *store;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* rev moved, or usable changed */
    json_t *docs[VO_PLACE_CACHE_N_PREFIXES];
    int64_t list_rev[VO_PLACE_CACHE_N_PREFIXES];
    int64_t rev;
    bool usable;
    /* The watch thread. */
    pthread_t thread;
    bool started, stop;
    VoStoreWatch *watch; /* while open, under lock (stop wakes it) */
};

VoPlaceCache *vo_place_cache_new(VoStore *store)
{
    VoPlaceCache *c = vo_malloc0(sizeof(*c));
    c->store = store;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->changed, &attr);
    pthread_condattr_destroy(&attr);
    for (int p = 0; p < VO_PLACE_CACHE_N_PREFIXES; p++)
        c->docs[p] = json_object();
    return c;
}

void vo_place_cache_free(VoPlaceCache *c)
{
    if (!c)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_broadcast(&c->changed);
        if (c->watch)
            c->store->ops->watch_wake(c->watch);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    for (int p = 0; p < VO_PLACE_CACHE_N_PREFIXES; p++)
        json_decref(c->docs[p]);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t **slot = userdata; /* [0]: the object, [1]: the prefix as a string */
    const char *rest = key + strlen(json_string_value(slot[1]));
    json_t *doc = json_loads(value, 0, NULL);
    if (json_is_object(doc))
        json_object_set_new(slot[0], rest, json_pack("{s:o, s:I}", "doc", doc, "rev",
                                                     (json_int_t)rev));
    else
        json_decref(doc);
    return 0;
}

int vo_place_cache_load(VoPlaceCache *c, int64_t *ret_watch_from)
{
    json_t *docs[VO_PLACE_CACHE_N_PREFIXES] = { 0 };
    int64_t revs[VO_PLACE_CACHE_N_PREFIXES] = { 0 };
    int64_t from = INT64_MAX;
    int r = 0;
    for (int p = 0; p < VO_PLACE_CACHE_N_PREFIXES && r >= 0; p++) {
        docs[p] = json_object();
        json_t *slot[2] = { docs[p], json_string(prefixes[p]) };
        r = c->store->ops->list(c->store, prefixes[p], collect, slot, &revs[p]);
        json_decref(slot[1]);
        if (revs[p] < from)
            from = revs[p];
    }
    if (r < 0) {
        for (int p = 0; p < VO_PLACE_CACHE_N_PREFIXES; p++)
            json_decref(docs[p]);
        return r;
    }
    pthread_mutex_lock(&c->lock);
    for (int p = 0; p < VO_PLACE_CACHE_N_PREFIXES; p++) {
        json_decref(c->docs[p]);
        c->docs[p] = docs[p];
        c->list_rev[p] = revs[p];
    }
    c->rev = from;
    c->usable = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    *ret_watch_from = from;
    return 0;
}

static int prefix_of(const char *key)
{
    for (int p = 0; p < VO_PLACE_CACHE_N_PREFIXES; p++)
        if (!strncmp(key, prefixes[p], strlen(prefixes[p])))
            return p;
    return -1;
}

static void apply_one(VoPlaceCache *c, const VoStoreEvent *e)
{
    int p = prefix_of(e->key);
    if (p < 0 || e->rev <= c->list_rev[p])
        return; /* not placement's, or the list already had it */
    const char *rest = e->key + strlen(prefixes[p]);
    json_t *old = json_object_get(c->docs[p], rest);
    if (old && json_integer_value(json_object_get(old, "rev")) >= e->rev)
        return;
    json_t *doc = e->kind == VO_STORE_PUT && e->value ? json_loads(e->value, 0, NULL) : NULL;
    if (json_is_object(doc))
        json_object_set_new(c->docs[p], rest, json_pack("{s:o, s:I}", "doc", doc, "rev",
                                                        (json_int_t)e->rev));
    else {
        json_decref(doc);
        json_object_del(c->docs[p], rest);
    }
}

void vo_place_cache_apply(VoPlaceCache *c, const VoStoreEvent *events, size_t n)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        apply_one(c, &events[i]);
        if (events[i].rev > c->rev)
            c->rev = events[i].rev;
    }
    if (n > 0)
        pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static void set_unusable(VoPlaceCache *c)
{
    pthread_mutex_lock(&c->lock);
    c->usable = false;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

static bool stopping(VoPlaceCache *c)
{
    pthread_mutex_lock(&c->lock);
    bool stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    return stop;
}

static void pause_ms(VoPlaceCache *c, int ms)
{
    struct timespec until = vo_deadline_ms(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&c->lock);
    if (!c->stop)
        pthread_cond_timedwait(&c->changed, &c->lock, &until);
    pthread_mutex_unlock(&c->lock);
}

/* Watches from after from until an error or stop; the error, or 0 on stop. */
static int follow(VoPlaceCache *c, int64_t from)
{
    VoStoreWatch *w = NULL;
    int r = c->store->ops->watch_open(c->store, VO_PLACE_CACHE_WATCH, from, &w);
    if (r < 0)
        return r;
    pthread_mutex_lock(&c->lock);
    c->watch = w;
    bool stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    while (!stop) {
        VoStoreEvent *events = NULL;
        size_t n = 0;
        r = c->store->ops->watch_next(w, WATCH_WAIT_MS, &events, &n);
        if (r < 0)
            break;
        vo_place_cache_apply(c, events, n);
        vo_store_events_free(events, n);
        stop = stopping(c);
    }
    pthread_mutex_lock(&c->lock);
    c->watch = NULL;
    stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    c->store->ops->watch_close(w);
    return stop ? 0 : r;
}

static void *watch_thread(void *userdata)
{
    VoPlaceCache *c = userdata;
    int64_t from = c->rev;
    while (!stopping(c)) {
        int r = follow(c, from);
        if (stopping(c))
            break;
        set_unusable(c);
        if (r == VO_STORE_ECOMPACTED)
            log_info("placement cache: changes lost to a compaction: listing again");
        else
            log_warn("placement cache: the watch failed (%s): listing again", strerror(-r));
        while (!stopping(c) && (r = vo_place_cache_load(c, &from)) < 0) {
            log_warn("placement cache: cannot list the hosts: %s", strerror(-r));
            pause_ms(c, RELOAD_PAUSE_MS);
        }
    }
    return NULL;
}

int vo_place_cache_start(VoPlaceCache *c)
{
    int64_t from = 0;
    int r = c->usable ? 0 : vo_place_cache_load(c, &from);
    if (r < 0)
        return r;
    r = -pthread_create(&c->thread, NULL, watch_thread, c);
    if (r < 0)
        return r;
    c->started = true;
    return 0;
}

void vo_place_cache_lock(VoPlaceCache *c)
{
    pthread_mutex_lock(&c->lock);
}

void vo_place_cache_unlock(VoPlaceCache *c)
{
    pthread_mutex_unlock(&c->lock);
}

bool vo_place_cache_usable(VoPlaceCache *c)
{
    return c->usable;
}

int64_t vo_place_cache_rev(VoPlaceCache *c)
{
    return c->rev;
}

json_t *vo_place_cache_docs(VoPlaceCache *c, VoPlaceCachePrefix p)
{
    return c->docs[p];
}

json_t *vo_place_cache_doc(VoPlaceCache *c, VoPlaceCachePrefix p, const char *rest)
{
    return json_object_get(json_object_get(c->docs[p], rest), "doc");
}

json_t *vo_place_cache_group_members(VoPlaceCache *c, const char *group)
{
    json_t *out = json_object();
    size_t len = strlen(group);
    const char *rest;
    json_t *e;
    json_object_foreach(c->docs[VO_PLACE_CACHE_P_GROUP_MEMBERS], rest, e) {
        if (strncmp(rest, group, len) || rest[len] != '/')
            continue;
        _cleanup_free_ char *key = vo_asprintf(VO_PLACE_CACHE_GROUP_MEMBERS "%s", rest);
        json_object_set(out, key, json_object_get(e, "doc"));
    }
    return out;
}

bool vo_place_cache_wait(VoPlaceCache *c, int64_t rev, int timeout_ms)
{
    struct timespec until = vo_deadline_ms(CLOCK_MONOTONIC, timeout_ms);
    pthread_mutex_lock(&c->lock);
    int r = 0;
    while (!(c->usable && c->rev >= rev) && !c->stop && r == 0)
        r = pthread_cond_timedwait(&c->changed, &c->lock, &until);
    bool reached = c->usable && c->rev >= rev;
    pthread_mutex_unlock(&c->lock);
    return reached;
}
