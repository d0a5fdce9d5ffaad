/* cluster-place.c: the manager's placement (see cluster-place.h): reads the
 * store, keeps the reservations, calls the pure vo_place. */
#include "daemon/cluster-place.h"

#include <pthread.h>
#include <string.h>

#include "cluster/cluster-config.h"
#include "cluster/place-snapshot.h"
#include "daemon/groups.h"
#include "daemon/storage.h"
#include "util/util.h"

#define MEMBERS_PREFIX "cluster/members/"
#define RECORDS_PREFIX "cluster/hosts/"
#define MANAGER_KEY "cluster/manager"

/* One vireod per process: the reservations of its placements. */
static pthread_mutex_t place_lock = PTHREAD_MUTEX_INITIALIZER;
static VoPlaceReservations reservations;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *o = json_loads(value, 0, NULL);
    const char *slash = strrchr(key, '/');
    if (json_is_object(o) && slash)
        json_object_set_new(userdata, slash + 1, json_pack("{s:o}", "doc", o));
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

int vo_cluster_place(VoDaemon *d, const VoPlaceAsk *ask, VoPlaceChoice *ret, char **ret_error)
{
    *ret = (VoPlaceChoice){ 0 };
    VoPlaceRequest req = { .vcpus = ask->vcpus, .memory_mib = ask->memory_mib,
                           .accel = ask->accel };
    char *pools[] = { VO_DEFAULT_POOL, NULL }; /* the VM's disk is made there */
    req.pools = pools;
    req.host = (char *)ask->host;
    json_t *group_members = NULL;
    /* Everything placement reads is read under place_lock: a placement that
     * read before another one made its VM and dropped its reservation would
     * see neither that VM nor its reservation. */
    pthread_mutex_lock(&place_lock);
    if (ask->group) {
        int r = vo_group_policy(d, ask->group, &req.group_policy, ret_error);
        if (r < 0) {
            pthread_mutex_unlock(&place_lock);
            return r == -ENOENT ? -EINVAL : r;
        }
        r = vo_group_members(d, ask->group, &group_members);
        if (r < 0) {
            pthread_mutex_unlock(&place_lock);
            return vo_error_set(ret_error, r, "cannot read group '%s': %s", ask->group,
                                strerror(-r));
        }
        req.group = (char *)ask->group;
    }
    VoPlacePolicy policy;
    json_t *members = NULL, *records = NULL;
    int r = vo_placement_policy_get(d, &policy);
    if (r >= 0)
        r = read_hosts(d, &members, &records);
    if (r < 0) {
        pthread_mutex_unlock(&place_lock);
        json_decref(group_members);
        return vo_error_set(ret_error, r, "cannot read the hosts: %s", strerror(-r));
    }
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
    r = vo_place_snapshot_build(docs, n, policy, &reservations, &snap, &warnings, ret_error);
    if (r >= 0 && req.group)
        vo_place_group_hosts(group_members, &reservations, req.group, &req.group_hosts,
                             &req.n_group_hosts);
    if (r >= 0)
        r = vo_place(&snap, &req, &res);
    if (r == -ENOENT)
        r = vo_error_set(ret_error, -EINVAL,
                         "host: '%s' is not a host of this cluster (see: vireo host list)",
                         ask->host);
    else if (r >= 0 && res.host < 0) {
        *ret_error = vo_place_reasons_format(&snap, &req, &res);
        r = -EBUSY;
    } else if (r >= 0) {
        const VoPlaceHost *h = &snap.hosts[res.host];
        ret->host_id = vo_strdup(h->id);
        ret->host_name = vo_strdup(h->name);
        ret->local = !strcmp(h->id, d->host_id);
        if (!ret->local) {
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
    }
    pthread_mutex_unlock(&place_lock);
    for (char **w = warnings; w && *w; w++)
        log_warn("placement: %s", *w);
    vo_strv_free(warnings);
    vo_place_group_hosts_free(req.group_hosts, req.n_group_hosts);
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&snap);
    free(docs);
    json_decref(members);
    json_decref(records);
    json_decref(group_members);
    return r;
}

void vo_cluster_place_done(VoDaemon *d, const VoPlaceChoice *c, bool created)
{
    (void)d;
    (void)created; /* created: the host rewrote its record before answering */
    if (!c->reservation)
        return;
    pthread_mutex_lock(&place_lock);
    vo_place_reservation_drop(&reservations, c->reservation);
    pthread_mutex_unlock(&place_lock);
}

void vo_place_choice_clear(VoPlaceChoice *c)
{
    free(c->host_id);
    free(c->host_name);
    free(c->url);
    *c = (VoPlaceChoice){ 0 };
}
