/* networks-cluster.c: cluster networks in vireod (docs/internals.md,
 * "Cluster networks"). A nat, isolated or bridge network created on any
 * host of a cluster is the cluster's: its definition is cluster/networks/
 * <name> (a nat/isolated one holds a VNI claimed as cluster/vnis/<vni> in
 * the same transaction), and every host's vireod follows those documents
 * (a thread told of their changes by the host's cluster/ watch,
 * cluster-follow.h) and makes, or takes down, its own copy
 * (networks/<name>, the bridge, a VXLAN device over its cluster address
 * with one all-zeros FDB entry per other member host).
 *
 * Addresses (IPAM): cluster/ipam/<network>/<ip> = {"vm","name","mac","host"}
 * (a bridge network's NICs, which get no address: .../mac-<mac>), created
 * when a NIC is claimed, compared with the network's cluster document, so a
 * delete (which first marks that document "deleting", then looks for
 * records) and a NIC add on two hosts cannot both win. This host's records
 * follow its VMs' relation documents (made, taken over from another host,
 * dropped) whenever the VMs' NICs change; its dnsmasq serves DHCP only to
 * its own VMs (their records' addresses) and DNS for every record. */
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/cluster-follow.h"
#include "daemon/networks-internal.h"
#include "network/cluster-net.h"
#include "network/net-exec.h"
#include "network/net-plan.h"
#include "state/relations.h"
#include "util/util.h"

#define NETWORKS_PREFIX "cluster/networks/"
#define VNIS_PREFIX "cluster/vnis/"
#define IPAM_PREFIX "cluster/ipam/"
#define MEMBERS_PREFIX "cluster/members/"
#define CLAIM_ATTEMPTS 16
#define RECONCILE_EVERY_MS 10000
#define RACED 2 /* claim_once: the store changed under it; read again */

bool vo_net_cluster_mode(VoDaemon *d)
{
    return d->host_address != NULL;
}

/* ---- reading the store ----------------------------------------------------- */

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    json_t *doc = json_loads(value, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    json_object_set_new(doc, "_key", json_string(key));
    json_object_set_new(doc, "_rev", json_integer(rev));
    json_array_append_new(userdata, doc);
    return 0;
}

/* Every document under prefix as an array (each with "_key", "_rev"). */
static int list_docs(VoStore *s, const char *prefix, json_t **ret)
{
    json_t *arr = json_array();
    int r = vo_store_list(s, prefix, collect, arr);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *ret = arr;
    return 0;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

void vo_net_cluster_plan_input(VoDaemon *d, VoNetPlanCluster *ret)
{
    *ret = (VoNetPlanCluster){ 0 };
    if (d->host_address && vo_ipv4_parse(d->host_address, &ret->local, NULL) >= 0)
        ret->has_local = true;
    json_t *members = NULL;
    if (list_docs(d->store, MEMBERS_PREFIX, &members) < 0)
        return;
    uint32_t *peers = vo_malloc0(sizeof(uint32_t) * (json_array_size(members) + 1));
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(members, i, m) {
        uint32_t a;
        const char *addr = str(m, "address");
        if (addr && vo_ipv4_parse(addr, &a, NULL) >= 0 && !(ret->has_local && a == ret->local))
            peers[n++] = a;
    }
    json_decref(members);
    ret->peers = peers;
    ret->n_peers = n;
}

/* The name of host id (its member document), or the id. */
static char *host_name(VoDaemon *d, const char *id)
{
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", id ? id : "");
    _cleanup_free_ char *text = NULL;
    char *name = NULL;
    if (id && vo_store_get(d->store, key, &text, NULL) >= 0) {
        json_t *doc = json_loads(text, 0, NULL);
        if (str(doc, "name"))
            name = vo_strdup(str(doc, "name"));
        json_decref(doc);
    }
    return name ? name : vo_strdup(id ? id : "(unknown)");
}

/* ---- definition -------------------------------------------------------- */

/* The cluster's document of s; creating_host: marked as being created by
 * that host (no other host adopts it, no NIC is claimed on it). */
static char *spec_text(const VoNetSpec *s, bool deleting, const char *creating_host)
{
    json_t *doc = vo_net_spec_to_json(s);
    if (deleting)
        json_object_set_new(doc, "deleting", json_true());
    if (creating_host)
        json_object_set_new(doc, "creating", json_string(creating_host));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

static int store_error(int r, char **ret_error, const char *what, const char *name)
{
    return vo_error_set(ret_error, r, "cannot %s network '%s' in the cluster: %s", what, name,
                        r == -EAGAIN ? "cluster has no quorum" : strerror(-r));
}

int vo_net_cluster_publish(VoDaemon *d, VoNetSpec *s, int64_t *ret_rev, char **ret_error)
{
    bool segment = s->type != VO_NET_BRIDGE;
    _cleanup_free_ char *nkey = vo_asprintf(NETWORKS_PREFIX "%s", s->name);
    s->cluster = true;
    for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        uint32_t vni = 0;
        if (segment) {
            json_t *vnis = NULL;
            int r = list_docs(d->store, VNIS_PREFIX, &vnis);
            if (r < 0)
                return store_error(r, ret_error, "create", s->name);
            uint32_t *used = vo_malloc0(sizeof(uint32_t) * (json_array_size(vnis) + 1));
            size_t n = 0, i;
            json_t *v;
            json_array_foreach(vnis, i, v)
                used[n++] = (uint32_t)strtoul(str(v, "_key") + strlen(VNIS_PREFIX), NULL, 10);
            json_decref(vnis);
            r = vo_cluster_vni_pick(s->name, used, n, &vni);
            free(used);
            if (r < 0)
                return vo_error_set(ret_error, -EBUSY, "no free VNI left in the cluster: "
                                    "delete a cluster network first");
        }
        s->vni = vni;
        _cleanup_free_ char *text = spec_text(s, false, d->host_id);
        _cleanup_free_ char *vkey = vo_asprintf(VNIS_PREFIX "%u", vni);
        _cleanup_free_ char *vtext = vo_asprintf("{\"network\":\"%s\"}", s->name);
        VoStoreCompare cmps[] = { { nkey, VO_REV_NEW }, { vkey, VO_REV_NEW } };
        VoStoreOp ops[] = { { VO_STORE_PUT, nkey, text, 0 }, { VO_STORE_PUT, vkey, vtext, 0 } };
        size_t failed = 0;
        int64_t rev = 0;
        int r = vo_store_txn(d->store, cmps, segment ? 2 : 1, ops, segment ? 2 : 1, &rev,
                             &failed);
        if (r >= 0) {
            log_info("network %s: published to the cluster, being created (vni %u)", s->name,
                     vni);
            *ret_rev = rev;
            return 0;
        }
        if (r == -EEXIST && failed == 0)
            return vo_error_set(ret_error, -EEXIST, "a network named '%s' already exists in "
                                "the cluster", s->name);
        if (r != -EEXIST)
            return store_error(r, ret_error, "create", s->name);
        /* another network took that VNI meanwhile: choose again */
    }
    return vo_error_set(ret_error, -EAGAIN, "cannot allocate a VNI for network '%s': too many "
                        "concurrent creates; try again", s->name);
}

int vo_net_cluster_publish_final(VoDaemon *d, const VoNetSpec *s, int64_t rev,
                                 char **ret_error)
{
    _cleanup_free_ char *nkey = vo_asprintf(NETWORKS_PREFIX "%s", s->name);
    _cleanup_free_ char *text = spec_text(s, false, NULL);
    int r = vo_store_put(d->store, nkey, text, rev, NULL);
    if (r == -ESTALE || r == -ENOENT)
        return vo_error_set(ret_error, -EBUSY, "network '%s' changed in the cluster while it "
                            "was being created; try again", s->name);
    if (r < 0)
        return store_error(r, ret_error, "create", s->name);
    return 0;
}

static int delete_definition(VoDaemon *d, const VoNetSpec *s, int64_t rev)
{
    _cleanup_free_ char *nkey = vo_asprintf(NETWORKS_PREFIX "%s", s->name);
    _cleanup_free_ char *vkey = vo_asprintf(VNIS_PREFIX "%u", s->vni);
    VoStoreCompare cmp = { nkey, rev };
    VoStoreOp ops[] = { { VO_STORE_DELETE, nkey, NULL, 0 }, { VO_STORE_DELETE, vkey, NULL, 0 } };
    int r = vo_store_txn(d->store, &cmp, rev > 0 ? 1 : 0, ops, s->vni ? 2 : 1, NULL, NULL);
    if (r < 0 && r != -ESTALE && r != -ENOENT)
        log_warn("network %s: cannot remove it from the cluster: %s", s->name, strerror(-r));
    return r;
}

void vo_net_cluster_unpublish(VoDaemon *d, const VoNetSpec *s, int64_t rev)
{
    /* Compared: only the document this create made, still marked creating
     * (no host adopted it, nobody claimed an address on it). One left
     * behind is removed by this host's reconcile. */
    (void)delete_definition(d, s, rev);
}

int vo_net_cluster_unpublish_checked(VoDaemon *d, const VoNetSpec *s, char **ret_error)
{
    _cleanup_free_ char *nkey = vo_asprintf(NETWORKS_PREFIX "%s", s->name);
    _cleanup_free_ char *orig = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, nkey, &orig, &rev);
    if (r == -ENOENT)
        return 0; /* the cluster has it no more: only this host's copy is left */
    if (r < 0)
        return store_error(r, ret_error, "delete", s->name);
    /* 1. Marked: every NIC claim compares the document, so none made from
     *    now on succeeds. */
    _cleanup_free_ char *marked = spec_text(s, true, NULL);
    int64_t marked_rev = 0;
    r = vo_store_put(d->store, nkey, marked, rev, &marked_rev);
    if (r == -ESTALE || r == -ENOENT)
        return vo_error_set(ret_error, -EBUSY, "network '%s' changed in the cluster meanwhile "
                            "(another host deletes it?); try again", s->name);
    if (r < 0)
        return store_error(r, ret_error, "delete", s->name);
    /* 2. Claims made before are in IPAM, from the claim until the NIC is
     *    gone from its VM. */
    _cleanup_free_ char *prefix = vo_asprintf(IPAM_PREFIX "%s/", s->name);
    json_t *records = NULL;
    r = list_docs(d->store, prefix, &records);
    json_t *first = r >= 0 ? json_array_get(records, 0) : NULL;
    if (r < 0 || first) {
        _cleanup_free_ char *host = first ? host_name(d, str(first, "host")) : NULL;
        if (r < 0)
            (void)store_error(r, ret_error, "delete", s->name);
        else
            *ret_error = vo_asprintf("network '%s' is used by VM '%s' on host '%s'; remove "
                                     "its NIC first", s->name,
                                     str(first, "name") ? str(first, "name") : "?", host);
        json_decref(records);
        /* Unmarked again (as it was). */
        if (vo_store_put(d->store, nkey, orig, marked_rev, NULL) < 0)
            log_warn("network %s: left marked deleting in the cluster", s->name);
        return r < 0 ? r : -EBUSY;
    }
    json_decref(records);
    r = delete_definition(d, s, marked_rev);
    if (r < 0) {
        /* Unknown outcome or refused: the delete fails and this host keeps
         * its copy; unmarked again if the document is still the marked one. */
        if (r == -ESTALE || r == -ENOENT)
            r = vo_error_set(ret_error, -EBUSY, "network '%s' changed in the cluster meanwhile; "
                             "try again", s->name);
        else
            (void)store_error(r, ret_error, "delete", s->name);
        int u = vo_store_put(d->store, nkey, orig, marked_rev, NULL);
        if (u < 0 && u != -ESTALE && u != -ENOENT)
            log_warn("network %s: left marked deleting in the cluster: %s", s->name,
                     strerror(-u));
        return r;
    }
    log_info("network %s: removed from the cluster", s->name);
    return 0;
}

/* ---- IPAM ----------------------------------------------------------------- */

static int claim_once(VoDaemon *d, const VoNetSpec *s, const char *vm_id, const char *vm_name,
                      const char *mac, char **ret_error)
{
    _cleanup_free_ char *nkey = vo_asprintf(NETWORKS_PREFIX "%s", s->name);
    _cleanup_free_ char *text = NULL;
    int64_t nrev = 0;
    int r = vo_store_get(d->store, nkey, &text, &nrev);
    if (r == -ENOENT)
        return vo_error_set(ret_error, -ENOENT, "network '%s' no longer exists in the cluster",
                            s->name);
    if (r < 0)
        return store_error(r, ret_error, "use", s->name);
    json_t *doc = json_loads(text, 0, NULL);
    bool deleting = json_is_true(json_object_get(doc, "deleting"));
    bool creating = json_object_get(doc, "creating") != NULL;
    json_decref(doc);
    if (deleting)
        return vo_error_set(ret_error, -EBUSY, "network '%s' is being deleted", s->name);
    if (creating)
        return vo_error_set(ret_error, -EBUSY, "network '%s' is still being created; try "
                            "again when it is done", s->name);
    _cleanup_free_ char *prefix = vo_asprintf(IPAM_PREFIX "%s/", s->name);
    json_t *records = NULL;
    if ((r = list_docs(d->store, prefix, &records)) < 0)
        return store_error(r, ret_error, "use", s->name);
    uint32_t *used = vo_malloc0(sizeof(uint32_t) * (json_array_size(records) + 1));
    size_t n_used = 0, i;
    json_t *rec, *mine = NULL;
    json_array_foreach(records, i, rec) {
        uint32_t a;
        if (str(rec, "ip") && vo_ipv4_parse(str(rec, "ip"), &a, NULL) >= 0)
            used[n_used++] = a;
        if (str(rec, "mac") && !strcasecmp(str(rec, "mac"), mac))
            mine = rec;
    }
    _cleanup_free_ char *key = NULL, *ip = NULL;
    int64_t expected = VO_REV_NEW;
    if (mine && str(mine, "vm") && strcmp(str(mine, "vm"), vm_id)) {
        r = vo_error_set(ret_error, -EEXIST, "MAC %s is already used on network '%s' by VM '%s'",
                         mac, s->name, str(mine, "name") ? str(mine, "name") : "?");
    } else if (mine) { /* the VM's own record: keep its address, be its host */
        if (str(mine, "host") && !strcmp(str(mine, "host"), d->host_id)) {
            r = 1;
        } else {
            key = vo_strdup(str(mine, "_key"));
            ip = str(mine, "ip") ? vo_strdup(str(mine, "ip")) : NULL;
            expected = json_integer_value(json_object_get(mine, "_rev"));
        }
    } else if (s->has_subnet) {
        uint32_t a = 0;
        char buf[VO_IPV4_STRLEN];
        r = vo_ipam_pick(s->subnet, used, n_used, &a);
        if (r < 0)
            r = vo_error_set(ret_error, -EBUSY, "network '%s' has no free address left: "
                             "remove a NIC from it, or use another network", s->name);
        else {
            ip = vo_strdup(vo_ipv4_format(a, buf));
            key = vo_asprintf("%s%s", prefix, ip);
        }
    } else {
        key = vo_asprintf("%smac-%s", prefix, mac);
    }
    free(used);
    json_decref(records);
    if (r != 0)
        return r < 0 ? r : 0;
    json_t *value = json_pack("{s:s, s:s, s:s, s:s}", "vm", vm_id, "name", vm_name, "mac", mac,
                              "host", d->host_id);
    if (ip)
        json_object_set_new(value, "ip", json_string(ip));
    _cleanup_free_ char *vtext = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(value);
    VoStoreCompare cmps[] = { { nkey, nrev }, { key, expected } };
    VoStoreOp op = { VO_STORE_PUT, key, vtext, 0 };
    size_t failed = 0;
    r = vo_store_txn(d->store, cmps, 2, &op, 1, NULL, &failed);
    if (r >= 0)
        return 0;
    if (r == -EEXIST || r == -ESTALE || r == -ENOENT)
        return RACED;
    return store_error(r, ret_error, "use", s->name);
}

int vo_net_cluster_claim(VoDaemon *d, const VoNetSpec *s, const char *vm_id, const char *vm_name,
                         const char *mac, char **ret_error)
{
    for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        int r = claim_once(d, s, vm_id, vm_name, mac, ret_error);
        if (r != RACED)
            return r;
    }
    return vo_error_set(ret_error, -EAGAIN, "network '%s': cannot record the address of MAC %s "
                        "(too many concurrent changes); try again", s->name, mac);
}

json_t *vo_net_cluster_addresses(VoDaemon *d, const char *name)
{
    _cleanup_free_ char *prefix = vo_asprintf(IPAM_PREFIX "%s/", name);
    json_t *records = NULL, *out = json_array();
    if (list_docs(d->store, prefix, &records) < 0)
        return out;
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        if (!str(rec, "ip"))
            continue;
        _cleanup_free_ char *host = host_name(d, str(rec, "host"));
        json_array_append_new(out, json_pack("{s:s, s:s?, s:s?, s:s?, s:s}", "ip", str(rec, "ip"),
                                             "mac", str(rec, "mac"), "vm", str(rec, "vm"),
                                             "name", str(rec, "name"), "host", host));
    }
    json_decref(records);
    return out;
}

char *vo_net_cluster_address_of(VoDaemon *d, const char *name, const char *mac)
{
    _cleanup_free_ char *prefix = vo_asprintf(IPAM_PREFIX "%s/", name);
    json_t *records = NULL;
    if (!mac || list_docs(d->store, prefix, &records) < 0)
        return NULL;
    char *ip = NULL;
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec)
        if (!ip && str(rec, "ip") && str(rec, "mac") && !strcasecmp(str(rec, "mac"), mac))
            ip = vo_strdup(str(rec, "ip"));
    json_decref(records);
    return ip;
}

/* ---- this host's records and hosts files ---------------------------------- */

static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    char *name;
    VoNetSpec *spec;
    char **claimed;
} ClusterNet;

static bool in_strv(char **v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (!strcasecmp(v[i], s))
            return true;
    return false;
}

/* A renamed VM's record: its new name (DNS), compared with the record read. */
static void rename_record(VoDaemon *d, ClusterNet *cn, json_t *rec, const char *name)
{
    json_t *value = json_deep_copy(rec);
    json_object_del(value, "_key");
    json_object_del(value, "_rev");
    json_object_set_new(value, "name", json_string(name));
    _cleanup_free_ char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(value);
    int r = vo_store_put(d->store, str(rec, "_key"), text,
                         json_integer_value(json_object_get(rec, "_rev")), NULL);
    if (r >= 0)
        log_info("network %s: %s now named %s", cn->name, str(rec, "_key"), name);
    else if (r != -ESTALE && r != -ENOENT)
        log_warn("network %s: cannot rename %s: %s", cn->name, str(rec, "_key"), strerror(-r));
}

/* Records of this host's NICs made or taken over (renamed with their VM);
 * records of this host whose NIC is gone dropped. */
static void reconcile_records(VoDaemon *d, ClusterNet *cn, json_t *records, json_t *nics)
{
    size_t i, k;
    json_t *nic, *rec;
    json_array_foreach(nics, k, nic) {
        if (strcmp(str(nic, "network"), cn->name) || !str(nic, "vm"))
            continue;
        bool ok = false;
        json_t *own = NULL;
        json_array_foreach(records, i, rec)
            if (str(rec, "mac") && !strcasecmp(str(rec, "mac"), str(nic, "mac")) &&
                str(rec, "host") && !strcmp(str(rec, "host"), d->host_id)) {
                ok = true;
                own = rec;
            }
        if (own && str(nic, "name") && str(own, "vm") && !strcmp(str(own, "vm"), str(nic, "vm")) &&
            (!str(own, "name") || strcmp(str(own, "name"), str(nic, "name"))))
            rename_record(d, cn, own, str(nic, "name"));
        _cleanup_free_ char *error = NULL;
        if (!ok && vo_net_cluster_claim(d, cn->spec, str(nic, "vm"), str(nic, "name"),
                                        str(nic, "mac"), &error) < 0)
            log_warn("network %s: no address for VM %s (%s): %s", cn->name, str(nic, "name"),
                     str(nic, "mac"), error);
    }
    json_array_foreach(records, i, rec) {
        if (!str(rec, "host") || strcmp(str(rec, "host"), d->host_id) || !str(rec, "mac") ||
            in_strv(cn->claimed, str(rec, "mac")))
            continue;
        bool used = false;
        json_array_foreach(nics, k, nic)
            used = used || (!strcmp(str(nic, "network"), cn->name) &&
                            !strcasecmp(str(nic, "mac"), str(rec, "mac")));
        if (!used) {
            int r = vo_store_delete(d->store, str(rec, "_key"),
                                    json_integer_value(json_object_get(rec, "_rev")));
            if (r < 0 && r != -ENOENT && r != -ESTALE)
                log_warn("network %s: cannot free %s: %s", cn->name, str(rec, "_key"),
                         strerror(-r));
        }
    }
}

static void write_hosts_files(VoDaemon *d, ClusterNet *cn, json_t *records)
{
    _cleanup_free_ char *dhcp = vo_strdup(""), *dns = vo_strdup("");
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        if (!str(rec, "ip") || !str(rec, "name") || !str(rec, "mac"))
            continue;
        _cleanup_free_ char *line = vo_net_cluster_hosts_line(cn->spec, str(rec, "ip"),
                                                              str(rec, "name"));
        char *next = vo_asprintf("%s%s", dns, line);
        free(dns);
        dns = next;
        if (!str(rec, "host") || strcmp(str(rec, "host"), d->host_id))
            continue; /* DHCP only for this host's VMs */
        _cleanup_free_ char *hline = vo_net_dhcp_host_line(str(rec, "mac"), str(rec, "ip"),
                                                           str(rec, "name"));
        next = vo_asprintf("%s%s", dhcp, hline);
        free(dhcp);
        dhcp = next;
    }
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = vo_network_find_locked(d, cn->name);
    if (n && access(n->dir, F_OK) == 0) {
        _cleanup_free_ char *hosts = vo_asprintf("%s/hosts", n->dir);
        _cleanup_free_ char *cluster_hosts = vo_asprintf("%s/cluster-hosts", n->dir);
        int c1 = vo_net_write_if_changed(hosts, dhcp);
        int c2 = c1 >= 0 ? vo_net_write_if_changed(cluster_hosts, dns) : c1;
        if (c1 > 0 || c2 > 0) /* dnsmasq reads them again only when they changed */
            vo_network_hup_locked(n);
    }
    pthread_mutex_unlock(&d->networks_lock);
}

static json_t *records_of(json_t *all, const char *net)
{
    json_t *out = json_array();
    _cleanup_free_ char *prefix = vo_asprintf(IPAM_PREFIX "%s/", net);
    size_t i;
    json_t *rec;
    json_array_foreach(all, i, rec)
        if (!strncmp(str(rec, "_key"), prefix, strlen(prefix)))
            json_array_append(out, rec);
    return out;
}

void vo_net_cluster_refresh(VoDaemon *d, json_t *nics_before)
{
    (void)nics_before; /* read again below, after the records and claims */
    pthread_mutex_lock(&refresh_lock);
    ClusterNet *nets = NULL;
    size_t n_nets = 0;
    pthread_mutex_lock(&d->networks_lock);
    for (size_t i = 0; i < d->n_networks; i++)
        if (d->networks[i]->spec->cluster)
            n_nets++;
    nets = vo_malloc0(sizeof(ClusterNet) * (n_nets + 1));
    n_nets = 0;
    for (size_t i = 0; i < d->n_networks; i++)
        if (d->networks[i]->spec->cluster) {
            nets[n_nets].spec = vo_net_spec_copy(d->networks[i]->spec);
            nets[n_nets++].name = vo_strdup(d->networks[i]->spec->name);
        }
    pthread_mutex_unlock(&d->networks_lock);
    /* Order matters: the records, then the claims in flight, then the NICs
     * recorded. A record listed belongs to a claim still marked, or to a
     * NIC recorded before its claim ended (or one gone: freed). */
    json_t *all = NULL, *nics = NULL;
    if (n_nets && list_docs(d->store, IPAM_PREFIX, &all) >= 0) {
        pthread_mutex_lock(&d->networks_lock);
        for (size_t i = 0; i < n_nets; i++) {
            VoNetwork *n = vo_network_find_locked(d, nets[i].name);
            for (size_t k = 0; n && n->claimed_macs && n->claimed_macs[k]; k++)
                vo_strv_push(&nets[i].claimed, vo_strdup(n->claimed_macs[k]));
        }
        pthread_mutex_unlock(&d->networks_lock);
        nics = vo_relations_network_nics(d->store);
    }
    for (size_t i = 0; all && nics && i < n_nets; i++) {
        json_t *records = records_of(all, nets[i].name);
        reconcile_records(d, &nets[i], records, nics);
        json_decref(records);
    }
    json_decref(all);
    all = NULL;
    if (n_nets && nics && list_docs(d->store, IPAM_PREFIX, &all) >= 0)
        for (size_t i = 0; i < n_nets; i++) {
            json_t *records = records_of(all, nets[i].name);
            write_hosts_files(d, &nets[i], records);
            json_decref(records);
        }
    if (n_nets && (!all || !nics))
        log_warn("store: cannot read the cluster's addresses; DHCP hosts left as they are");
    json_decref(all);
    json_decref(nics);
    for (size_t i = 0; i < n_nets; i++) {
        free(nets[i].name);
        vo_net_spec_free(nets[i].spec);
        vo_strv_free(nets[i].claimed);
    }
    free(nets);
    pthread_mutex_unlock(&refresh_lock);
}

/* ---- following the cluster ------------------------------------------------ */

static struct {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* stop, woken */
    pthread_cond_t wake;
    bool stop, woken;
    char **warned; /* names whose adoption failed, said once */
} follow = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* want: a per-MAC entry for each record of net on another member host
 * (its MAC, that host's address); *ret malloc'd. */
static void fdb_wanted(json_t *members, json_t *records, const char *net, VoFdbEntry **ret,
                       size_t *ret_n)
{
    _cleanup_free_ char *prefix = vo_asprintf(IPAM_PREFIX "%s/", net);
    VoFdbEntry *want = vo_malloc0(sizeof(*want) * (json_array_size(records) + 1));
    size_t n = 0, i, k;
    json_t *rec, *m;
    json_array_foreach(records, i, rec) {
        const char *mac = str(rec, "mac"), *host = str(rec, "host");
        if (strncmp(str(rec, "_key"), prefix, strlen(prefix)) || !mac || !host ||
            strlen(mac) >= sizeof(want[n].mac))
            continue;
        json_array_foreach(members, k, m) {
            const char *id = str(m, "_key") + strlen(MEMBERS_PREFIX);
            uint32_t a;
            if (!strcmp(id, host) && str(m, "address") &&
                vo_ipv4_parse(str(m, "address"), &a, NULL) >= 0) {
                snprintf(want[n].mac, sizeof(want[n].mac), "%s", mac);
                want[n++].dst = a;
                break;
            }
        }
    }
    *ret = want;
    *ret_n = n;
}

/* The VXLAN devices' FDB to the member hosts now: all-zeros entries (one
 * per host: broadcast, unknown MACs) and one per remote VM's MAC (IPAM). */
static void update_fdbs(VoDaemon *d)
{
    VoNetPlanCluster pc;
    vo_net_cluster_plan_input(d, &pc);
    json_t *members = NULL, *records = NULL;
    if (list_docs(d->store, MEMBERS_PREFIX, &members) < 0 ||
        list_docs(d->store, IPAM_PREFIX, &records) < 0) {
        json_decref(members);
        members = NULL; /* the per-MAC entries stay as they are */
    }
    pthread_mutex_lock(&d->networks_lock);
    size_t n = 0;
    VoNetSpec **specs = vo_malloc0(sizeof(VoNetSpec *) * (d->n_networks + 1));
    for (size_t i = 0; i < d->n_networks; i++) {
        VoNetwork *net = d->networks[i];
        if (net->spec->cluster && net->spec->vni && !net->error && !net->creating &&
            !net->deleting)
            specs[n++] = vo_net_spec_copy(net->spec);
    }
    pthread_mutex_unlock(&d->networks_lock);
    for (size_t i = 0; i < n; i++) {
        char vx[VO_IFNAME_SIZE];
        vo_net_vxlan_ifname(specs[i]->vni, vx);
        uint32_t *have = NULL;
        size_t n_have = 0;
        _cleanup_free_ char *error = NULL;
        VoNetPlan *plan = NULL;
        if (vo_net_fdb_remotes(vx, &have, &n_have, &error) >= 0 &&
            vo_net_plan_fdb(specs[i], have, n_have, pc.peers, pc.n_peers, pc.local, &plan) >= 0 &&
            plan->n_steps) {
            log_info("network %s: %zu FDB change(s) for the member hosts", specs[i]->name,
                     plan->n_steps);
            if (vo_net_plan_execute(plan, NULL, NULL, false, &error) < 0)
                log_warn("network %s: FDB: %s", specs[i]->name, error);
        } else if (error) {
            log_warn("network %s: FDB: %s", specs[i]->name, error);
        }
        vo_net_plan_free(plan);
        plan = NULL;
        free(have);
        free(error);
        error = NULL;
        VoFdbEntry *have_macs = NULL, *want_macs = NULL;
        size_t n_have_macs = 0, n_want_macs = 0;
        if (members && records && pc.has_local) {
            fdb_wanted(members, records, specs[i]->name, &want_macs, &n_want_macs);
            if (vo_net_fdb_macs(vx, &have_macs, &n_have_macs, &error) >= 0 &&
                vo_net_plan_fdb_macs(specs[i], have_macs, n_have_macs, want_macs, n_want_macs,
                                     pc.local, &plan) >= 0 &&
                plan->n_steps) {
                log_debug("network %s: %zu per-MAC FDB change(s)", specs[i]->name,
                          plan->n_steps);
                if (vo_net_plan_execute(plan, NULL, NULL, false, &error) < 0)
                    log_warn("network %s: FDB: %s", specs[i]->name, error);
            } else if (error) {
                log_warn("network %s: FDB: %s", specs[i]->name, error);
            }
        }
        vo_net_plan_free(plan);
        free(have_macs);
        free(want_macs);
        vo_net_spec_free(specs[i]);
    }
    free(specs);
    free((uint32_t *)pc.peers);
    json_decref(members);
    json_decref(records);
}

/* This host's networks follow the cluster's definitions. 0, -errno when
 * the definitions could not be read, or -EAGAIN when a network could not be
 * made or taken down here (the follower then tries again after the short
 * period, not the watch's long recheck). */
static int reconcile(VoDaemon *d)
{
    json_t *defs = NULL;
    int r = list_docs(d->store, NETWORKS_PREFIX, &defs);
    if (r < 0)
        return r;
    bool failed = false; /* a network not made or not taken down: tried again soon */
    size_t i;
    json_t *def;
    json_array_foreach(defs, i, def) {
        const char *name = str(def, "name");
        if (!name || vo_network_exists(d, name))
            continue;
        /* Not adopted while a delete is at it (it may yet fail) or while
         * its host creates it (it may yet be rolled back). */
        if (json_is_true(json_object_get(def, "deleting")))
            continue;
        if (str(def, "creating")) {
            if (!strcmp(str(def, "creating"), d->host_id)) {
                /* Left by a create of this host that is over (failed, or the
                 * daemon stopped): removed, compared. */
                VoNetSpec stale = { .name = (char *)name,
                                    .vni = (uint32_t)json_integer_value(
                                        json_object_get(def, "vni")) };
                if (delete_definition(d, &stale,
                                      json_integer_value(json_object_get(def, "_rev"))) >= 0)
                    log_info("network %s: its unfinished create removed from the cluster",
                             name);
            }
            continue;
        }
        json_t *spec_doc = json_deep_copy(def);
        json_object_del(spec_doc, "_key");
        json_object_del(spec_doc, "_rev");
        json_object_del(spec_doc, "deleting");
        VoNetSpec *spec = NULL;
        _cleanup_free_ char *error = NULL;
        r = vo_net_spec_from_json(spec_doc, &spec, &error);
        json_decref(spec_doc);
        if (r >= 0 && !spec->cluster)
            r = vo_error_set(&error, -EINVAL, "not marked as a cluster network");
        if (r >= 0)
            r = vo_network_adopt(d, TAKE_PTR(spec), &error);
        vo_net_spec_free(spec);
        failed = failed || r < 0;
        if (r < 0 && !in_strv(follow.warned, name)) {
            log_error("network %s: the cluster's network cannot be made on this host: %s", name,
                      error ? error : strerror(-r));
            vo_strv_push(&follow.warned, vo_strdup(name));
        }
    }
    /* Cluster networks this host has and the cluster no longer does. */
    char **gone = NULL;
    pthread_mutex_lock(&d->networks_lock);
    for (size_t k = 0; k < d->n_networks; k++) {
        VoNetwork *n = d->networks[k];
        bool listed = false;
        json_array_foreach(defs, i, def)
            listed = listed || !strcmp(str(def, "name") ? str(def, "name") : "", n->spec->name);
        if (n->spec->cluster && !listed)
            vo_strv_push(&gone, vo_strdup(n->spec->name));
    }
    pthread_mutex_unlock(&d->networks_lock);
    json_decref(defs);
    for (size_t k = 0; gone && gone[k]; k++) {
        _cleanup_free_ char *error = NULL;
        log_info("network %s: deleted in the cluster; taking it down here", gone[k]);
        if (vo_network_drop(d, gone[k], &error) < 0) {
            log_warn("network %s: %s", gone[k], error);
            failed = true;
        }
    }
    vo_strv_free(gone);
    update_fdbs(d);
    vo_networks_refresh_hosts(d);
    return failed ? -EAGAIN : 0;
}

static bool relevant(const char *key)
{
    return !strncmp(key, NETWORKS_PREFIX, strlen(NETWORKS_PREFIX)) ||
           !strncmp(key, MEMBERS_PREFIX, strlen(MEMBERS_PREFIX)) ||
           !strncmp(key, IPAM_PREFIX, strlen(IPAM_PREFIX));
}

static void wake_follow(void)
{
    pthread_mutex_lock(&follow.lock);
    follow.woken = true;
    pthread_cond_signal(&follow.wake);
    pthread_mutex_unlock(&follow.lock);
}

static VoClusterFollower follower = { .wants = relevant, .wake = wake_follow };

/* Reconciles at once, then again whenever the host's cluster/ watch
 * (cluster-follow.h) reports a change of the networks, members or IPAM, was
 * opened again or lost; else every VO_CLUSTER_FOLLOW_RECHECK_MS (with no
 * watch open, or after a failed read: every RECONCILE_EVERY_MS). */
static void *follow_thread(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&follow.lock);
    while (!follow.stop) {
        follow.woken = false;
        pthread_mutex_unlock(&follow.lock);
        uint64_t mark = vo_cluster_follow_mark(&follower);
        bool read = reconcile(d) >= 0;
        int64_t last = vo_now_ms();
        pthread_mutex_lock(&follow.lock);
        /* woken: a change since the mark (or just before it: one more
         * reconcile, harmless). */
        while (!follow.stop && !follow.woken) {
            int64_t period = read && vo_cluster_follow_unchanged(&follower, mark)
                                 ? VO_CLUSTER_FOLLOW_RECHECK_MS
                                 : RECONCILE_EVERY_MS;
            int64_t left = last + period - vo_now_ms();
            if (left <= 0)
                break;
            struct timespec until = vo_deadline_ms(CLOCK_REALTIME, left);
            (void)pthread_cond_timedwait(&follow.wake, &follow.lock, &until);
        }
    }
    pthread_mutex_unlock(&follow.lock);
    return NULL;
}

void vo_net_cluster_start(VoDaemon *d)
{
    if (follow.started)
        return;
    follow.stop = false;
    vo_cluster_follow_add(&follower);
    if (pthread_create(&follow.thread, NULL, follow_thread, d) != 0) {
        log_error("cannot start the cluster networks thread");
        return;
    }
    follow.started = true;
}

void vo_net_cluster_stop(VoDaemon *d)
{
    if (!follow.started)
        return;
    (void)d;
    pthread_mutex_lock(&follow.lock);
    follow.stop = true;
    pthread_cond_signal(&follow.wake);
    pthread_mutex_unlock(&follow.lock);
    pthread_join(follow.thread, NULL);
    follow.started = false;
    vo_strv_free(follow.warned);
    follow.warned = NULL;
}
