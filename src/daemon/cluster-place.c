/* cluster-place.c: the manager's placement (see cluster-place.h): reads the
 * store, keeps the reservations, calls the pure vo_place. */
#include "daemon/cluster-place.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "api/access.h"
#include "cluster/cluster-config.h"
#include "cluster/place-cache.h"
#include "cluster/place-network-projects.h"
#include "cluster/place-snapshot.h"
#include "daemon/groups.h"
#include "daemon/hosts.h"
#include "daemon/storage.h"
#include "util/util.h"

#define MEMBERS_PREFIX "cluster/members/"
#define RECORDS_PREFIX "cluster/hosts/"
#define MANAGER_KEY "cluster/manager"

/* One vireod per process: the reservations of its placements, and the
 * placement cache while this host is the manager (both under place_lock). */
static pthread_mutex_t place_lock = PTHREAD_MUTEX_INITIALIZER;
static VoPlaceReservations reservations;
static VoPlaceCache *cache;
static bool cache_making; /* the keeper lists a cache (without place_lock) */

/* How often the keeper looks whether this host holds the manager role. */
#define KEEPER_PERIOD_MS 250

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *o = json_loads(value, 0, NULL);
    const char *slash = strrchr(key, '/');
    if (json_is_object(o) && slash)
        json_object_set_new(userdata, slash + 1, json_pack("{s:o, s:I}", "doc", o, "rev",
                                                           (json_int_t)rev));
    else
        json_decref(o);
    return 0;
}

/* As collect, keyed by the rest of the key after the networks' projects'
 * prefix ("SCOPE/NAME", as the cache keeps them). */
static int collect_rest(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *o = json_loads(value, 0, NULL);
    size_t n = strlen(VO_PLACE_CACHE_NETWORK_OWNERS);
    if (json_is_object(o) && !strncmp(key, VO_PLACE_CACHE_NETWORK_OWNERS, n))
        json_object_set_new(userdata, key + n, json_pack("{s:o, s:I}", "doc", o, "rev",
                                                         (json_int_t)rev));
    else
        json_decref(o);
    return 0;
}

static char *member_url(json_t *member)
{
    const char *address = json_string_value(json_object_get(member, "address"));
    json_t *port = json_object_get(member, "api_port");
    if (!address || !*address)
        return NULL;
    return vo_cluster_url(address, json_is_integer(port) ? (int)json_integer_value(port)
                                                         : VO_CLUSTER_API_PORT);
}

int vo_placement_policy_get(VoDaemon *d, VoPlacePolicy *ret)
{
    *ret = VO_PLACE_SPREAD;
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->store, VO_PLACEMENT_SETTINGS_KEY, &text, NULL);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    json_t *doc = json_loads(text, 0, NULL);
    const char *p = json_string_value(json_object_get(doc, "policy"));
    if (p)
        (void)vo_place_policy_from_string(p, ret);
    json_decref(doc);
    return 0;
}

int vo_placement_policy_set(VoDaemon *d, const char *policy, char **ret_error)
{
    VoPlacePolicy p;
    if (!policy || vo_place_policy_from_string(policy, &p) < 0)
        return vo_error_set(ret_error, -EINVAL,
                            "policy: '%s' is not spread (least loaded host first) or pack "
                            "(most loaded host that fits first)", policy ? policy : "");
    json_t *doc = json_pack("{s:s}", "policy", vo_place_policy_to_string(p));
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    int r = vo_store_put(d->store, VO_PLACEMENT_SETTINGS_KEY, text, VO_REV_ANY, NULL);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot save the placement policy: %s", strerror(-r));
    return 0;
}

int vo_cluster_manager(VoDaemon *d, char **ret_id, char **ret_url, char **ret_error)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->store, MANAGER_KEY, &text, NULL);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT, "no host holds the manager role now");
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read who the manager is: %s", strerror(-r));
    json_t *doc = json_loads(text, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (!id) {
        json_decref(doc);
        return vo_error_set(ret_error, -EIO, "the manager document is damaged");
    }
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", id);
    _cleanup_free_ char *mtext = NULL;
    r = vo_store_get(d->store, key, &mtext, NULL);
    json_t *member = r >= 0 ? json_loads(mtext, 0, NULL) : NULL;
    char *url = member ? member_url(member) : NULL;
    json_decref(member);
    if (!url && strcmp(id, d->host_id)) {
        r = vo_error_set(ret_error, r < 0 && r != -ENOENT ? r : -EIO,
                         "the manager (host %s) has no address in its member document", id);
        json_decref(doc);
        return r;
    }
    *ret_id = vo_strdup(id);
    *ret_url = url;
    json_decref(doc);
    return 0;
}

static int read_hosts(VoDaemon *d, json_t **ret_members, json_t **ret_records)
{
    json_t *members = json_object(), *records = json_object();
    int r = vo_store_list(d->store, MEMBERS_PREFIX, collect, members);
    if (r >= 0)
        r = vo_store_list(d->store, RECORDS_PREFIX, collect, records);
    if (r < 0) {
        json_decref(members);
        json_decref(records);
        return r;
    }
    *ret_members = members;
    *ret_records = records;
    return 0;
}

/* Copies of the manager's snapshot of the members (ret_members may be
 * NULL: not wanted) and records when it has a usable one: true. */
static bool hosts_cached(json_t **ret_members, json_t **ret_records)
{
    bool usable = false;
    pthread_mutex_lock(&place_lock);
    VoPlaceCache *c = cache;
    if (c) {
        vo_place_cache_lock(c);
        usable = vo_place_cache_usable(c);
        if (usable && ret_members)
            *ret_members = json_deep_copy(vo_place_cache_docs(c, VO_PLACE_CACHE_P_MEMBERS));
        if (usable)
            *ret_records = json_deep_copy(vo_place_cache_docs(c, VO_PLACE_CACHE_P_RECORDS));
        vo_place_cache_unlock(c);
    }
    pthread_mutex_unlock(&place_lock);
    return usable;
}

int vo_cluster_hosts_read(VoDaemon *d, json_t **ret_members, json_t **ret_records)
{
    return hosts_cached(ret_members, ret_records) ? 0 : read_hosts(d, ret_members, ret_records);
}

int vo_cluster_records_read(VoDaemon *d, json_t **ret_records)
{
    if (hosts_cached(NULL, ret_records))
        return 0;
    json_t *records = json_object();
    int r = vo_store_list(d->store, RECORDS_PREFIX, collect, records);
    if (r < 0) {
        json_decref(records);
        return r;
    }
    *ret_records = records;
    return 0;
}

/* The networks' projects from the store, as the cache keeps them. */
static int read_network_owners(VoDaemon *d, json_t **ret)
{
    json_t *owners = json_object();
    int r = vo_store_list(d->store, VO_PLACE_CACHE_NETWORK_OWNERS, collect_rest, owners);
    if (r < 0) {
        json_decref(owners);
        return r;
    }
    *ret = owners;
    return 0;
}

int vo_cluster_network_owners_read(VoDaemon *d, json_t **ret)
{
    pthread_mutex_lock(&place_lock);
    VoPlaceCache *c = cache;
    if (c) {
        vo_place_cache_lock(c);
        bool usable = vo_place_cache_usable(c);
        if (usable)
            *ret = json_deep_copy(vo_place_cache_docs(c, VO_PLACE_CACHE_P_NETWORK_OWNERS));
        vo_place_cache_unlock(c);
        if (usable) {
            pthread_mutex_unlock(&place_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&place_lock);
    return read_network_owners(d, ret);
}

/* The group's policy from the cache (as vo_group_policy reads it). */
static int cached_group_policy(VoPlaceCache *c, const char *name, VoGroupPolicy *ret,
                               char **ret_error)
{
    json_t *doc = vo_place_cache_doc(c, VO_PLACE_CACHE_P_GROUPS, name);
    if (!doc)
        return vo_error_set(ret_error, -ENOENT,
                            "group '%s' does not exist (see: vireo group list; make it with "
                            "vireo group create %s --policy spread|together)", name, name);
    if (json_is_true(json_object_get(doc, "deleting")))
        return vo_error_set(ret_error, -EBUSY, "group '%s' is being deleted", name);
    const char *p = json_string_value(json_object_get(doc, "policy"));
    if (!p || vo_group_policy_from_string(p, ret) < 0)
        return vo_error_set(ret_error, -EIO, "group '%s': its policy is damaged", name);
    return 0;
}

static void cached_policy(VoPlaceCache *c, VoPlacePolicy *ret)
{
    *ret = VO_PLACE_SPREAD;
    const char *rest = VO_PLACEMENT_SETTINGS_KEY + strlen(VO_PLACE_CACHE_SETTINGS);
    json_t *doc = vo_place_cache_doc(c, VO_PLACE_CACHE_P_SETTINGS, rest);
    const char *p = json_string_value(json_object_get(doc, "policy"));
    if (p)
        (void)vo_place_policy_from_string(p, ret);
}

/* What placement reads, from the cache (locked; the caller unlocks it
 * once done with the borrowed members and records). */
static int read_cached(VoPlaceCache *c, const VoPlaceAsk *ask, VoPlaceRequest *req,
                       VoPlacePolicy *policy, json_t **members, json_t **records,
                       json_t **owners, json_t **group_members, char **ret_error)
{
    /* Creates this manager saw made count as reservations until the cache
     * shows their records (settled below, under the cache's lock, against
     * the revision read): no wait for the watch to catch up, which would
     * hold place_lock and every placement behind it. */
    vo_place_cache_lock(c);
    if (!vo_place_cache_usable(c)) {
        vo_place_cache_unlock(c);
        return -EAGAIN;
    }
    vo_place_reservations_settled(&reservations, vo_place_cache_rev(c));
    if (ask->group) {
        int r = cached_group_policy(c, ask->group, &req->group_policy, ret_error);
        if (r == -ENOENT) {
            /* Made a moment ago, maybe, and the watch not there yet: the
             * store says (read_store). */
            vo_place_cache_unlock(c);
            if (ret_error) {
                free(*ret_error);
                *ret_error = NULL;
            }
            return -EAGAIN;
        }
        if (r < 0) {
            vo_place_cache_unlock(c);
            return r;
        }
        *group_members = vo_place_cache_group_members(c, ask->group);
        req->group = (char *)ask->group;
    }
    cached_policy(c, policy);
    *members = vo_place_cache_docs(c, VO_PLACE_CACHE_P_MEMBERS);
    *records = vo_place_cache_docs(c, VO_PLACE_CACHE_P_RECORDS);
    *owners = vo_place_cache_docs(c, VO_PLACE_CACHE_P_NETWORK_OWNERS);
    return 0;
}

/* What placement reads, from the store. */
static int read_store(VoDaemon *d, const VoPlaceAsk *ask, VoPlaceRequest *req,
                      VoPlacePolicy *policy, json_t **members, json_t **records,
                      json_t **owners, json_t **group_members, char **ret_error)
{
    if (ask->group) {
        int r = vo_group_policy(d, ask->group, &req->group_policy, ret_error);
        if (r < 0)
            return r == -ENOENT ? -EINVAL : r;
        r = vo_group_members(d, ask->group, group_members);
        if (r < 0)
            return vo_error_set(ret_error, r, "cannot read group '%s': %s", ask->group,
                                strerror(-r));
        req->group = (char *)ask->group;
    }
    int r = vo_placement_policy_get(d, policy);
    if (r >= 0)
        r = read_hosts(d, members, records);
    if (r >= 0 && ask->networks && (r = read_network_owners(d, owners)) < 0) {
        json_decref(*members); /* the networks' projects: only when NICs ask for some */
        json_decref(*records);
    }
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the hosts: %s", strerror(-r));
    /* Creates answered before (settled while a cache was kept) are in
     * what was just read: not counted again (store_view), but kept until
     * the cache shows them too (a placement right after this one may read
     * the cache, its watch still behind the store). */
    return 0;
}

/* The reservations a placement read from the store counts: all but the
 * settled ones with a known revision (the records read show those).
 * Shares r's items: free only ret->items. */
static void store_view(const VoPlaceReservations *r, VoPlaceReservations *ret)
{
    *ret = (VoPlaceReservations){ .items = vo_malloc0((r->n + 1) * sizeof(*r->items)) };
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].settle_rev <= 0 || r->items[i].settle_rev == INT64_MAX)
            ret->items[ret->n++] = r->items[i];
}

/* One placement, from the cache when use_cache and one is usable (*ret_cached
 * says whether it was), else from the store. */
static int place_once(VoDaemon *d, const VoPlaceAsk *ask, bool use_cache, VoPlaceChoice *ret,
                      bool *ret_cached, char **ret_error)
{
    *ret = (VoPlaceChoice){ 0 };
    VoPlaceRequest req = { .vcpus = ask->vcpus, .memory_mib = ask->memory_mib,
                           .accel = ask->accel, .firmware = ask->firmware };
    req.networks = (char **)ask->networks; /* the ask's: not freed here */
    char *default_pool[] = { VO_DEFAULT_POOL, NULL }; /* the VM's disk is made there */
    req.pools = ask->pools ? (char **)ask->pools : default_pool; /* not freed here */
    req.host = (char *)ask->host;
    json_t *group_members = NULL;
    VoPlacePolicy policy;
    json_t *members = NULL, *records = NULL, *owners = NULL;
    /* Everything placement reads is read under place_lock: a placement that
     * read before another one made its VM and dropped its reservation would
     * see neither that VM nor its reservation. */
    pthread_mutex_lock(&place_lock);
    int64_t t0 = vo_now_us();
    VoPlaceCache *c = use_cache ? cache : NULL;
    int r = c ? read_cached(c, ask, &req, &policy, &members, &records, &owners,
                            &group_members, ret_error)
              : -EAGAIN;
    if (r == -EAGAIN) { /* no cache (yet), or it lists again: the store */
        c = NULL;
        r = read_store(d, ask, &req, &policy, &members, &records, &owners, &group_members,
                       ret_error);
    }
    if (r < 0) {
        pthread_mutex_unlock(&place_lock);
        json_decref(group_members);
        return r;
    }
    ret->cached = *ret_cached = c != NULL;
    int64_t t1 = vo_now_us();
    size_t n = json_object_size(members), i = 0;
    VoPlaceHostDocs *docs = vo_malloc0((n + 1) * sizeof(*docs));
    const char *id;
    json_t *m;
    json_object_foreach(members, id, m) {
        json_t *rec = json_object_get(records, id);
        docs[i++] = (VoPlaceHostDocs){ .member = json_object_get(m, "doc"),
                                       .record = rec ? json_object_get(rec, "doc") : NULL };
    }
    VoPlaceSnapshot snap = { 0 };
    VoPlaceResult res = { 0 };
    char **warnings = NULL;
    vo_place_reservations_prune(&reservations, docs, n, vo_now_ms());
    VoPlaceReservations counted = reservations;
    if (!c)
        store_view(&reservations, &counted);
    r = vo_place_snapshot_build(docs, n, policy, &counted, &snap, &warnings, ret_error);
    if (r >= 0 && req.group)
        vo_place_group_hosts(group_members, &counted, req.group, &req.group_hosts,
                             &req.n_group_hosts);
    if (!c)
        free(counted.items);
    /* A network no host has (or only another project's) is the request's
     * fault (400, as an unknown image), said once rather than as each
     * host's reason. Read from the cache it is "no host fits" (-EBUSY):
     * vo_cluster_place reads the store, where a network made a moment ago
     * is. */
    const char *absent = NULL, *foreign = NULL;
    if (r >= 0 && !c)
        absent = vo_place_network_nowhere(&snap, req.networks);
    if (r >= 0 && req.networks)
        vo_place_drop_foreign_networks(&snap, req.networks, owners, ask->project);
    if (r >= 0 && !c && !absent)
        foreign = vo_place_network_nowhere(&snap, req.networks);
    if (r >= 0)
        r = vo_place(&snap, &req, &res);
    int64_t t2 = vo_now_us();
    if (r == -ENOENT)
        r = vo_error_set(ret_error, -EINVAL,
                         "host: '%s' is not a host of this cluster (see: vireo host list)",
                         ask->host);
    else if (r >= 0 && res.host < 0 && absent)
        r = vo_error_set(ret_error, -EINVAL, "networks: no host has a network '%s' (or it "
                         "is in error wherever it is; see: vireo network list)", absent);
    else if (r >= 0 && res.host < 0 && foreign)
        r = vo_error_set(ret_error, -EINVAL, "networks: network '%s' belongs to another "
                         "project than '%s' on every host that has it (a VM uses networks of "
                         "its own project or of none)", foreign,
                         ask->project ? ask->project : "default");
    else if (r >= 0 && res.host < 0) {
        *ret_error = vo_place_reasons_format(&snap, &req, &res);
        r = -EBUSY;
    } else if (r >= 0) {
        const VoPlaceHost *h = &snap.hosts[res.host];
        ret->host_id = vo_strdup(h->id);
        ret->host_name = vo_strdup(h->name);
        ret->local = !strcmp(h->id, d->host_id);
        if (!ret->local) {
            ret->principal_members = vo_principal_members_parse(
                json_object_get(docs[res.host].record, "principal_members"));
            ret->url = member_url(docs[res.host].member);
            if (!ret->url) {
                r = vo_error_set(ret_error, -EIO, "host %s has no address in its member "
                                 "document", h->name);
                vo_place_choice_clear(ret);
            }
        }
        if (r >= 0)
            ret->reservation = vo_place_reservation_add(&reservations, h->id, req.group,
                                                        ask->memory_mib, ask->vcpus,
                                                        vo_now_ms());
        ret->read_us = t1 - t0;
        ret->place_us = t2 - t1;
    }
    free(docs);
    if (c)
        vo_place_cache_unlock(c); /* members and records were the cache's */
    else {
        json_decref(members);
        json_decref(records);
        json_decref(owners);
    }
    pthread_mutex_unlock(&place_lock);
    for (char **w = warnings; w && *w; w++)
        log_warn("placement: %s", *w);
    vo_strv_free(warnings);
    vo_place_group_hosts_free(req.group_hosts, req.n_group_hosts);
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&snap);
    json_decref(group_members);
    return r;
}

int vo_cluster_place(VoDaemon *d, const VoPlaceAsk *ask, VoPlaceChoice *ret, char **ret_error)
{
    bool cached = false;
    int r = place_once(d, ask, true, ret, &cached, ret_error);
    /* The cache follows the store a few ms late: a host whose record was
     * written a moment ago (it just joined, or came back) may be missing
     * from it. A "does not fit" read from the cache is checked against the
     * store before it is said (rare: it costs a read of the hosts). */
    if (r == -EBUSY && cached) {
        if (ret_error) {
            free(*ret_error);
            *ret_error = NULL;
        }
        r = place_once(d, ask, false, ret, &cached, ret_error);
    }
    return r;
}

void vo_cluster_place_done(VoDaemon *d, const VoPlaceChoice *c, bool created,
                           int64_t record_rev)
{
    if (!c->reservation)
        return;
    /* Created: the host rewrote its record before answering, at
     * record_rev, which it answered. While a cache is kept, the room stays
     * reserved until the cache holds that record, however this placement
     * read (from the store while the cache was being listed, say: the next
     * placement may read the cache before its watch brings the record). No
     * revision answered: the host could not rewrite its record (no lease
     * that moment, a store error); the record there is older than the VM, so
     * the room stays reserved until the reservation expires (by then the
     * host's periodic rewrite counts the VM). Without a cache now, the next
     * placement reads the record (the store, or a cache listed from now on;
     * one being listed may have listed before the record changed: as if
     * kept). */
    pthread_mutex_lock(&place_lock);
    bool cached = cache != NULL || cache_making;
    pthread_mutex_unlock(&place_lock);
    int64_t rev = 0;
    if (created && cached) {
        rev = record_rev > 0 ? record_rev : INT64_MAX;
        if (record_rev <= 0)
            log_warn("placement: host %s answered no record revision after a create: its "
                     "room stays reserved until the reservation expires", c->host_name);
    }
    pthread_mutex_lock(&place_lock);
    if (rev > 0)
        vo_place_reservation_settle(&reservations, c->reservation, rev);
    else
        vo_place_reservation_drop(&reservations, c->reservation);
    pthread_mutex_unlock(&place_lock);
}

/* ---- the cache's keeper: the cache lives while this host is manager ---- */

static pthread_t keeper;
static bool keeper_started, keeper_stop;
static pthread_cond_t keeper_wake = PTHREAD_COND_INITIALIZER;

static void keep_cache(VoDaemon *d)
{
    bool manager = vo_hosts_is_manager(d);
    pthread_mutex_lock(&place_lock);
    bool want = manager && !cache;
    cache_making = want;
    pthread_mutex_unlock(&place_lock);
    /* Listed without place_lock: placements (from the store meanwhile) and
     * answered creates do not wait for the listing (up to the store's
     * timeout per prefix without a quorum). Only this thread installs it. */
    VoPlaceCache *made = NULL;
    if (want) {
        VoPlaceCache *c = vo_place_cache_new(d->store);
        int64_t t0 = vo_now_ms();
        int r = vo_place_cache_start(c);
        if (r < 0) {
            log_warn("placement: cannot list the hosts for the placement cache: %s",
                     strerror(-r));
            vo_place_cache_free(c);
        } else {
            log_info("placement: the snapshot is kept in memory now (listed in %lld ms)",
                     (long long)(vo_now_ms() - t0));
            made = c;
        }
    }
    pthread_mutex_lock(&place_lock);
    VoPlaceCache *drop = NULL;
    cache_making = false;
    if (made)
        cache = made;
    else if (!manager && cache) {
        drop = cache;
        cache = NULL;
        log_info("placement: no longer the manager: the snapshot in memory is dropped");
    }
    pthread_mutex_unlock(&place_lock);
    vo_place_cache_free(drop);
}

static void *keeper_thread(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&place_lock);
    while (!keeper_stop) {
        pthread_mutex_unlock(&place_lock);
        keep_cache(d);
        pthread_mutex_lock(&place_lock);
        struct timespec until = vo_deadline_ms(CLOCK_REALTIME, KEEPER_PERIOD_MS);
        if (!keeper_stop)
            pthread_cond_timedwait(&keeper_wake, &place_lock, &until);
    }
    VoPlaceCache *drop = cache;
    cache = NULL;
    pthread_mutex_unlock(&place_lock);
    vo_place_cache_free(drop);
    return NULL;
}

int vo_cluster_place_start(VoDaemon *d)
{
    if (!d->cluster || keeper_started)
        return 0;
    keeper_stop = false;
    int r = -pthread_create(&keeper, NULL, keeper_thread, d);
    if (r < 0)
        return r;
    keeper_started = true;
    return 0;
}

void vo_cluster_place_stop(VoDaemon *d)
{
    (void)d;
    if (!keeper_started)
        return;
    pthread_mutex_lock(&place_lock);
    keeper_stop = true;
    pthread_cond_signal(&keeper_wake);
    pthread_mutex_unlock(&place_lock);
    pthread_join(keeper, NULL);
    keeper_started = false;
}

void vo_place_choice_clear(VoPlaceChoice *c)
{
    free(c->host_id);
    free(c->host_name);
    free(c->url);
    *c = (VoPlaceChoice){ 0 };
}
