/* cluster-admit.c: a member's side of a join: the cluster CA for anyone
 * (GET /v1/cluster/ca: public, checked by the joiner against its token,
 * with the join protocol and checks this member makes: join-protocol.h) and
 * POST /v1/cluster/join-request: the token checked against its record, the
 * joiner's VMs, networks and pools checked for collisions and its projects against the
 * cluster's quotas (cluster-join-projects.c), its host certificate
 * issued, and (while the cluster has fewer than three voting members) its
 * etcd member added as a learner. */
#include <ctype.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "cluster/join-protocol.h"
#include "cluster/join-token.h"
#include "cluster/pki.h"
#include "conf/vm-spec.h"
#include "daemon/cluster.h"
#include "daemon/mac-claims.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "network/cidr.h"
#include "state/keys.h"
#include "util/util.h"

int vo_cluster_ca(VoDaemon *d, json_t **ret)
{
    if (!d->cluster)
        return -ENOTCONN;
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    VoPkiPair ca = { 0 };
    int r = vo_pki_pair_load(dir, "ca", false, &ca);
    if (r < 0)
        return r;
    char fp[VO_SHA256_HEX_LEN + 1] = "";
    (void)vo_pki_fingerprint(ca.cert_pem, fp);
    *ret = json_pack("{s:s, s:s, s:s, s:o}", "cluster", d->cluster->cluster_id, "ca",
                     ca.cert_pem, "ca_sha256", fp, "join", vo_join_protocol_json());
    vo_pki_pair_clear(&ca);
    return 0;
}

typedef struct {
    json_t *members;  /* cluster/members/<id> docs */
    json_t *vms;      /* [{host, name}] */
    json_t *networks; /* [{host, name, subnet}] */
    json_t *names;    /* cluster/names/vms/<name> keys' names */
    json_t *pools;    /* the cluster's shared pools: cluster/pools/<name> docs by name */
    json_t *macs;     /* mac (lower case): {vm, host?, vm_id?}: VM documents', the index's */
} ClusterObjects;

/* mac in lower case into ret: false when it is no MAC. */
static bool mac_lower(const char *mac, char ret[18])
{
    if (!mac || !vo_mac_valid(mac))
        return false;
    for (int i = 0; i < 18; i++)
        ret[i] = (char)tolower((unsigned char)mac[i]);
    return true;
}

/* Records a MAC the cluster has (the first holder seen: a VM document's,
 * with its host; else the MAC index's, with its VM's id when held). */
static void add_mac(ClusterObjects *o, const char *mac, const char *vm, const char *host_id,
                    const char *vm_id)
{
    char lower[18];
    if (mac_lower(mac, lower) && !json_object_get(o->macs, lower))
        json_object_set_new(o->macs, lower, json_pack("{s:s, s:s?, s:s?}", "vm", vm ? vm : "?",
                                                      "host", host_id, "vm_id", vm_id));
}

/* The MAC index's entries (cluster/claims/macs/<mac>): held, or being given. */
static int collect_mac_claim(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    json_t *doc = json_loads(value, 0, NULL);
    add_mac(userdata, strrchr(key, '/') + 1, json_string_value(json_object_get(doc, "vm")),
            json_string_value(json_object_get(doc, "host")),
            json_string_value(json_object_get(doc, "vm_id")));
    json_decref(doc);
    return 0;
}

/* The joiner's MACs whose only holder is a held entry of the MAC index
 * that no host's VM document backs: removed when its VM is gone (a ghost,
 * as the manager's sweep would, mac-ghosts.c), so that the join is not
 * refused (nor its copy stopped) for a VM no host has. */
static void drop_mac_ghosts(VoDaemon *d, ClusterObjects *o, const json_t *req)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(req, "macs"), i, v) {
        char lower[18];
        json_t *held = mac_lower(json_string_value(json_object_get(v, "mac")), lower)
                           ? json_object_get(o->macs, lower)
                           : NULL;
        if (!json_string_value(json_object_get(held, "vm_id")) ||
            json_string_value(json_object_get(held, "host")))
            continue;
        _cleanup_free_ char *key = vo_key_mac_claim(lower);
        if (vo_mac_ghost_remove(d, key) > 0)
            json_object_del(o->macs, lower);
    }
}

/* "h/<host>/vms/<id>" and "h/<host>/networks/<name>" of every host. */
static int collect_host_docs(const char *key, const char *value, int64_t rev, void *userdata)
{
    ClusterObjects *o = userdata;
    const char *host = key + 2, *slash = strchr(host, '/');
    if (!slash)
        return 0;
    _cleanup_free_ char *host_id = strndup(host, (size_t)(slash - host));
    const char *rest = slash + 1;
    bool vm = !strncmp(rest, "vms/", 4) && !strchr(rest + 4, '/');
    bool net = !strncmp(rest, "networks/", 9) && !strchr(rest + 9, '/');
    if (!vm && !net)
        return 0;
    json_t *doc = json_loads(value, 0, NULL);
    if (vm) {
        json_t *name = json_object_get(json_object_get(doc, "spec"), "name");
        if (json_is_string(name))
            json_array_append_new(o->vms, json_pack("{s:s, s:O}", "host", host_id, "name", name));
        size_t i;
        json_t *nic;
        json_array_foreach(json_object_get(json_object_get(doc, "spec"), "nics"), i, nic)
            add_mac(o, json_string_value(json_object_get(nic, "mac")), json_string_value(name),
                    host_id, NULL);
    } else
        json_array_append_new(o->networks,
                              json_pack("{s:s, s:O?, s:O?}", "host", host_id, "name",
                                        json_object_get(doc, "name"), "subnet",
                                        json_object_get(doc, "subnet")));
    json_decref(doc);
    return 0;
}

static int collect_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *doc = json_loads(value, 0, NULL);
    if (json_is_object(doc))
        json_object_set_new(userdata, strrchr(key, '/') + 1, doc);
    else
        json_decref(doc);
    return 0;
}

static int collect_name(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_array_append_new(userdata, json_string(strrchr(key, '/') + 1));
    return 0;
}

/* "Ceph pool P at MONITORS" of a pool's rbd settings (dir pools: "PATH"). */
static char *pool_where(const json_t *pool)
{
    const json_t *rbd = json_object_get(pool, "rbd");
    if (!rbd)
        return vo_asprintf("dir at %s", json_string_value(json_object_get(pool, "path")));
    return vo_asprintf("rbd: Ceph pool %s at %s",
                       json_string_value(json_object_get(rbd, "pool")),
                       json_string_value(json_object_get(rbd, "monitors")));
}

/* The joiner's pools named like a shared pool of the cluster: refused,
 * whatever each holds (a pool name is either the cluster's or hosts' own,
 * docs/cluster.md "Pool names": its own pool would hide the cluster's on
 * it, and the cluster's VMs on that pool would open the wrong images). A
 * legacy request has its rbd pools only, and its joiner copies the rest in
 * unchecked: refused while the cluster has shared pools. */
static void find_pool_collisions(const ClusterObjects *o, const json_t *pools, bool legacy,
                                 char ***out)
{
    if (legacy && json_object_size(o->pools)) {
        _cleanup_strv_ char **names = NULL;
        const char *name;
        json_t *unused;
        json_object_foreach(o->pools, name, unused)
            vo_strv_pushf(&names, "%s", name);
        _cleanup_free_ char *list = vo_strv_join(names, ", ");
        vo_strv_pushf(out, "it runs an older vireo (join protocol 1), which does not have its "
                      "own pools other than rbd checked against the cluster's shared pools "
                      "(%s): upgrade vireo on this host first, then join", list);
    }
    size_t i;
    json_t *v;
    json_array_foreach(pools, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        json_t *theirs = name ? json_object_get(o->pools, name) : NULL;
        if (!theirs)
            continue;
        _cleanup_free_ char *mine = pool_where(v), *other = pool_where(theirs);
        vo_strv_pushf(out, "pool name '%s' is taken: the cluster has a shared pool '%s' (%s), "
                      "this host a pool '%s' (%s): delete this host's pool (and make it "
                      "again under another name) first", name, name, other, name, mine);
    }
}

static const char *host_name_of(const ClusterObjects *o, const char *host_id)
{
    const char *name = json_string_value(json_object_get(json_object_get(o->members, host_id),
                                                         "name"));
    return name ? name : host_id;
}

/* Appends "; "-separated collisions of the joiner's request to *out. */
static void find_collisions(const ClusterObjects *o, const json_t *req, const char *joiner_id,
                            char ***out)
{
    size_t i, k;
    json_t *v, *w;
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *id;
    json_object_foreach(o->members, id, v) {
        const char *other = json_string_value(json_object_get(v, "name"));
        if (!strcmp(id, joiner_id))
            vo_strv_pushf(out, "host id %s is a member already (as '%s'): "
                          "remove it first (vireo host remove)", joiner_id, other ? other : "");
        else if (other && name && !strcmp(other, name))
            vo_strv_pushf(out, "host name '%s' is taken: start vireod with another "
                          "--name", name);
    }
    json_array_foreach(json_object_get(req, "vms"), i, v) {
        const char *vm = json_string_value(v);
        if (!vm)
            continue;
        const char *where = NULL;
        json_array_foreach(o->vms, k, w)
            if (!strcmp(json_string_value(json_object_get(w, "name")), vm))
                where = host_name_of(o, json_string_value(json_object_get(w, "host")));
        json_array_foreach(o->names, k, w)
            if (!where && !strcmp(json_string_value(w), vm))
                where = "the cluster";
        if (where)
            vo_strv_pushf(out, "VM name '%s' is taken (on %s)", vm, where);
    }
    /* Its VMs' MACs (the "macs" check): none another VM of the cluster has. */
    json_array_foreach(json_object_get(req, "macs"), i, v) {
        const char *mac = json_string_value(json_object_get(v, "mac"));
        const char *vm = json_string_value(json_object_get(v, "vm"));
        char lower[18];
        json_t *held = mac_lower(mac, lower) ? json_object_get(o->macs, lower) : NULL;
        if (!held)
            continue;
        const char *host = json_string_value(json_object_get(held, "host"));
        vo_strv_pushf(out, "MAC %s of VM '%s' is VM '%s''s (on %s)", lower, vm ? vm : "?",
                      json_string_value(json_object_get(held, "vm")),
                      host ? host_name_of(o, host) : "the cluster");
    }
    json_array_foreach(json_object_get(req, "networks"), i, v) {
        const char *net = json_string_value(json_object_get(v, "name"));
        const char *subnet = json_string_value(json_object_get(v, "subnet"));
        /* Every host makes its own "default" network: not a collision. */
        if (net && !strcmp(net, VO_DEFAULT_NETWORK))
            continue;
        VoCidr mine = { 0 }, theirs = { 0 };
        _cleanup_free_ char *err1 = NULL;
        bool have_subnet = subnet && vo_cidr_parse_subnet(subnet, &mine, &err1) >= 0;
        json_array_foreach(o->networks, k, w) {
            const char *other = json_string_value(json_object_get(w, "name"));
            const char *other_subnet = json_string_value(json_object_get(w, "subnet"));
            const char *host = host_name_of(o, json_string_value(json_object_get(w, "host")));
            _cleanup_free_ char *err2 = NULL;
            if (other && !strcmp(other, VO_DEFAULT_NETWORK))
                continue;
            if (net && other && !strcmp(net, other))
                vo_strv_pushf(out, "network name '%s' is taken (on %s)", net, host);
            else if (have_subnet && other_subnet &&
                     vo_cidr_parse_subnet(other_subnet, &theirs, &err2) >= 0 &&
                     vo_cidr_overlap(mine, theirs))
                vo_strv_pushf(out, "subnet %s of network '%s' overlaps %s of network "
                              "'%s' (on %s)", subnet, net ? net : "", other_subnet,
                              other ? other : "", host);
        }
    }
}

/* Checks the token; 0 (with its record's text and revision) or -EACCES /
 * -EKEYEXPIRED with why. */
static int check_token(VoDaemon *d, const char *cluster, const char *token_id, const char *secret,
                       char **ret_text, int64_t *ret_rev, char **ret_error)
{
    if (strcmp(cluster, d->cluster->cluster_id) != 0)
        return vo_error_set(ret_error, -EACCES, "the token is of cluster %s, this host is in %s",
                            cluster, d->cluster->cluster_id);
    if (strlen(secret) != VO_JOIN_TOKEN_HEX_LEN || strchr(token_id, '/'))
        return vo_error_set(ret_error, -EACCES, "join token is not valid");
    _cleanup_free_ char *key = vo_asprintf("cluster/join-tokens/%s", token_id);
    _cleanup_free_ char *text = NULL;
    int r = vo_store_get(d->cluster_store, key, &text, ret_rev);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -EACCES, "join token is not valid (unknown, expired, or "
                            "already used: a token admits one host): make a new one with "
                            "'vireo cluster token'");
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the join token: %s", strerror(-r));
    json_t *record = json_loads(text, 0, NULL);
    VoJoinToken t = { .cluster = (char *)cluster, .id = (char *)token_id };
    snprintf(t.secret, sizeof(t.secret), "%s", secret);
    r = vo_join_token_check(&t, record, (int64_t)time(NULL), ret_error);
    explicit_bzero(t.secret, sizeof(t.secret));
    json_decref(record);
    if (r >= 0) {
        *ret_text = text;
        text = NULL;
    }
    return r == -EINVAL ? -EACCES : r;
}

/* A join token is good for one join: its record is deleted at the revision
 * check_token read, so of two requests with it only one gets past here. */
static int consume_token(VoDaemon *d, const char *token_id, int64_t rev, char **ret_error)
{
    _cleanup_free_ char *key = vo_asprintf("cluster/join-tokens/%s", token_id);
    int r = vo_store_delete(d->cluster_store, key, rev);
    if (r == -ENOENT || r == -ESTALE)
        return vo_error_set(ret_error, -EACCES, "join token already used: a token admits one "
                            "host; make a new one with 'vireo cluster token'");
    if (r == VO_STORE_EUNKNOWN)
        r = -EAGAIN;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot use the join token: %s",
                            r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    return 0;
}

/* The admission failed after consume_token: the token is put back (on a
 * lease of what is left of its life) so that the joiner can try again. */
static void restore_token(VoDaemon *d, const char *token_id, const char *text)
{
    json_t *record = json_loads(text, 0, NULL);
    int64_t left = json_integer_value(json_object_get(record, "expires")) - (int64_t)time(NULL);
    json_decref(record);
    if (left <= 0)
        return;
    _cleanup_free_ char *key = vo_asprintf("cluster/join-tokens/%s", token_id);
    int64_t lease = 0;
    int r = d->cluster_store->ops->lease_grant(d->cluster_store,
                                               (int)(left > 0x7fffffff / 1000 ? 0x7fffffff
                                                                              : left * 1000),
                                               &lease);
    if (r >= 0)
        r = vo_store_put_lease(d->cluster_store, key, text, VO_REV_NEW, lease, NULL);
    if (r < 0)
        log_warn("cluster: cannot put join token %s back after a failed join: %s", token_id,
                 strerror(-r));
}

/* Whether member id is still a learner that has not started. */
static bool still_unstarted(const VoEtcdEndpoint *ep, uint64_t id)
{
    VoEtcdMembers m = { 0 };
    _cleanup_free_ char *error = NULL;
    bool yes = false;
    if (vo_etcd_member_list(ep, &m, &error) >= 0)
        for (size_t i = 0; i < m.n; i++)
            yes |= m.v[i].id == id && m.v[i].learner && !m.v[i].name[0];
    vo_etcd_members_clear(&m);
    return yes;
}

/* etcd takes one learner at a time: a learner at the joiner's own peer URL
 * (an earlier attempt of this host) or one that never starts (its joiner
 * died after its admission) would block this join for good: removed. One
 * not started yet may be another host's join under way: it gets
 * STALE_LEARNER_MS to start first. */
#define STALE_LEARNER_MS 10000
static void remove_stale_learners(const VoEtcdEndpoint *ep, const VoEtcdMembers *m,
                                  const char *peer)
{
    for (size_t i = 0; i < m->n; i++) {
        const VoEtcdMember *x = &m->v[i];
        bool same_peer = false;
        for (char **u = x->peer_urls; u && *u; u++)
            same_peer |= !strcmp(*u, peer);
        if (!x->learner || (x->name[0] && !same_peer))
            continue;
        if (!same_peer) {
            int64_t until = vo_now_ms() + STALE_LEARNER_MS;
            bool stale = true;
            while (stale && vo_now_ms() < until) {
                poll(NULL, 0, 1000);
                stale = still_unstarted(ep, x->id);
            }
            if (!stale)
                continue;
        }
        _cleanup_free_ char *error = NULL;
        int r = vo_etcd_member_remove(ep, x->id, 10000, &error);
        if (r < 0)
            log_warn("cluster: cannot remove stale etcd learner %" PRIx64 " (%s): %s", x->id,
                     x->name[0] ? x->name : "never started", error ? error : strerror(-r));
        else
            log_info("cluster: stale etcd learner %" PRIx64 " (%s) removed", x->id,
                     x->name[0] ? x->name : "never started");
    }
}

/* Voting members and their client URLs; adds the joiner as a learner when
 * there are fewer than VO_CLUSTER_MAX_VOTERS. */
static int etcd_admit(VoDaemon *d, const char *name, const char *address, int peer_port,
                      json_t *answer, char **ret_error)
{
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    VoClusterEndpoint ep;
    vo_cluster_endpoint(dir, d->cluster->endpoints[0], &ep);
    VoEtcdMembers m = { 0 };
    int r = vo_etcd_member_list(&ep.e, &m, ret_error);
    size_t voters = 0;
    json_t *endpoints = json_array();
    for (size_t i = 0; r >= 0 && i < m.n; i++) {
        if (m.v[i].learner)
            continue;
        voters++;
        for (char **u = m.v[i].client_urls; u && *u; u++)
            json_array_append_new(endpoints, json_string(*u));
    }
    if (r >= 0 && voters < VO_CLUSTER_MAX_VOTERS) {
        _cleanup_free_ char *peer = vo_cluster_url(address, peer_port);
        remove_stale_learners(&ep.e, &m, peer);
        uint64_t id = 0;
        char *initial = NULL;
        /* etcd refuses ("unhealthy cluster") while a member has been
         * connected for under 5 s (one just restarted, say): retry a while. */
        for (int64_t until = vo_now_ms() + 15000;;) {
            r = vo_etcd_member_add_learner(&ep.e, name, peer, &id, &initial, ret_error);
            if (r != -EAGAIN || vo_now_ms() >= until)
                break;
            free(*ret_error);
            *ret_error = NULL;
            poll(NULL, 0, 500);
        }
        if (r >= 0) {
            char idtext[32];
            snprintf(idtext, sizeof(idtext), "%" PRIx64, id);
            json_object_set_new(answer, "member_id", json_string(idtext));
            json_object_set_new(answer, "initial_cluster", json_string(initial));
            log_info("cluster: etcd learner %s added for host %s (%s)", idtext, name, address);
        }
        free(initial);
        json_object_set_new(answer, "voter", json_true());
    } else
        json_object_set_new(answer, "voter", json_false());
    json_object_set_new(answer, "endpoints", endpoints);
    vo_etcd_members_clear(&m);
    vo_cluster_endpoint_clear(&ep);
    if (r == -EBUSY)
        *ret_error = (free(*ret_error), vo_strdup("another host is joining the cluster's etcd "
                                                  "now: try again in a minute"));
    return r;
}

int vo_cluster_admit(VoDaemon *d, const json_t *req, json_t **ret, char **ret_error)
{
    if (!d->cluster)
        return vo_error_set(ret_error, -ENOTCONN, "this host is not in a cluster");
    const char *cluster = NULL, *token_id = NULL, *secret = NULL, *host_id = NULL, *name = NULL,
               *address = NULL;
    json_t *vms = NULL, *nets = NULL, *projects = NULL, *pools = NULL;
    int peer_port = VO_ETCD_PEER_PORT;
    bool legacy = false;
    int r = vo_join_request_accepted(req, &legacy, ret_error);
    if (r < 0)
        return r;
    /* A legacy request (no "protocol") is taken as before: strictly, its
     * rbd pools alone. A later one's fields this member does not know are
     * ignored: each that needs a check named it in "checks", refused above. */
    json_error_t jerr;
    if (json_unpack_ex((json_t *)req, &jerr, legacy ? JSON_STRICT : 0,
                       "{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s?o, s?i, s?o}",
                       "cluster", &cluster, "token_id", &token_id, "secret", &secret, "host_id",
                       &host_id, "name", &name, "address", &address, "vms", &vms, "networks",
                       &nets, "projects", &projects, "etcd_peer_port", &peer_port,
                       legacy ? "rbd_pools" : "pools", &pools) < 0 ||
        !json_is_array(vms) || !json_is_array(nets) || (projects && !json_is_object(projects)) ||
        (pools && !json_is_array(pools)))
        return vo_error_set(ret_error, -EINVAL, "invalid join request: %s", jerr.text);
    _cleanup_free_ char *token_text = NULL;
    int64_t token_rev = 0;
    r = check_token(d, cluster, token_id, secret, &token_text, &token_rev, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ char *dir = vo_cluster_path(d, NULL);
    VoPkiPair ca = { 0 };
    if ((r = vo_pki_pair_load(dir, "ca", true, &ca)) < 0) {
        vo_pki_pair_clear(&ca);
        return vo_error_set(ret_error, -ENOTCONN, "this host does not keep the cluster CA's key "
                            "(only voting members do): join through one of them");
    }
    ClusterObjects o = { json_object(), json_array(), json_array(), json_array(),
                         json_object(), json_object() };
    if ((r = vo_store_list(d->cluster_store, "cluster/members/", collect_member, o.members)) < 0 ||
        (r = vo_store_list(d->cluster_store, "cluster/names/vms/", collect_name, o.names)) < 0 ||
        (r = vo_store_list(d->cluster_store, "h/", collect_host_docs, &o)) < 0 ||
        (r = vo_store_list(d->cluster_store, VO_SHARED_POOLS_PREFIX, collect_member,
                           o.pools)) < 0 ||
        (r = vo_store_list(d->cluster_store, VO_KEY_MAC_CLAIMS_PREFIX, collect_mac_claim,
                           &o)) < 0)
        vo_error_set(ret_error, r, "cannot read the cluster's documents: %s",
                     r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
    char **collisions = NULL;
    if (r >= 0) {
        drop_mac_ghosts(d, &o, req);
        find_collisions(&o, req, host_id, &collisions);
        find_pool_collisions(&o, pools, legacy, &collisions);
        vo_cluster_admit_projects(d->cluster_store, projects, &collisions);
    }
    if (r >= 0 && collisions) {
        _cleanup_free_ char *list = vo_strv_join(collisions, "; ");
        r = vo_error_set(ret_error, -EEXIST, "host %s cannot join: %s", name, list);
    }
    vo_strv_free(collisions);
    json_decref(o.members);
    json_decref(o.vms);
    json_decref(o.networks);
    json_decref(o.names);
    json_decref(o.pools);
    json_decref(o.macs);
    VoPkiPair host = { 0 };
    bool consumed = false;
    if (r >= 0 && (r = consume_token(d, token_id, token_rev, ret_error)) >= 0)
        consumed = true;
    if (r >= 0)
        r = vo_pki_host_issue(&ca, address, name, &host, ret_error);
    json_t *answer = NULL;
    if (r >= 0) {
        answer = json_pack("{s:s, s:s, s:s, s:s}", "cluster", d->cluster->cluster_id, "ca_cert",
                           ca.cert_pem, "host_cert", host.cert_pem, "host_key", host.key_pem);
        json_t *join = vo_join_protocol_json(); /* the checks made: "protocol", "checks" */
        json_object_update(answer, join);
        json_decref(join);
        r = etcd_admit(d, name, address, peer_port, answer, ret_error);
        if (r >= 0 && json_is_true(json_object_get(answer, "voter")))
            json_object_set_new(answer, "ca_key", json_string(ca.key_pem));
    }
    if (r < 0 && consumed)
        restore_token(d, token_id, token_text);
    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&host);
    if (r < 0) {
        json_decref(answer);
        return r;
    }
    log_info("cluster: admitted host %s (%s, id %s)", name, address, host_id);
    *ret = answer;
    return 0;
}
