/* net-plan.c: the host steps of each network type, their teardown, their
 * rendering as shell commands, and dnsmasq's configuration (see
 * net-plan.h). */
#include "network/net-plan.h"

#include <ctype.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "network/nft-rules.h"
#include "util/util.h"

VoNetPlan *vo_net_plan_free(VoNetPlan *p)
{
    if (!p)
        return NULL;
    for (size_t i = 0; i < p->n_steps; i++) {
        VoNetStep *st = &p->steps[i];
        free(st->dev);
        free(st->uplink);
        free(st->master);
        free(st->alias);
        free(st->key);
        free(st->value);
        free(st->path);
        free(st->text);
    }
    free(p->steps);
    free(p);
    return NULL;
}

char *vo_net_owner_alias(const char *net_name)
{
    return vo_asprintf("vireo-net:%s", net_name);
}

static VoNetStep *add_step(VoNetPlan *p, VoNetStepKind kind, const char *dev)
{
    VoNetStep *steps = realloc(p->steps, (p->n_steps + 1) * sizeof(*steps));
    if (!steps)
        abort();
    p->steps = steps;
    VoNetStep *st = &steps[p->n_steps++];
    *st = (VoNetStep){ .kind = kind, .dev = vo_strdup(dev) };
    return st;
}

static const VoHostLink *find_link(const VoNetPlanInput *in, const char *name)
{
    for (size_t i = 0; i < in->n_links; i++)
        if (!strcmp(in->links[i].name, name))
            return &in->links[i];
    return NULL;
}

static bool owned(const VoHostLink *l, const char *alias)
{
    return l && l->alias && !strcmp(l->alias, alias);
}

static int check_caps(const VoNetSpec *s, const VoHostCaps *caps, char **ret_error)
{
    const char *type = vo_net_type_to_string(s->type);
    if (s->type == VO_NET_BRIDGE)
        return 0;
    if (!caps->has_bridge)
        return vo_error_set(ret_error, -EOPNOTSUPP, "%s networks need Linux bridges, which this host's "
                    "kernel lacks: load the bridge module (modprobe bridge)", type);
    if (s->type == VO_NET_NAT && !caps->has_nftables)
        return vo_error_set(ret_error, -EOPNOTSUPP, "nat networks need nftables with masquerade, which "
                    "this host's kernel lacks: load nf_tables and nft_masq");
    if (s->type == VO_NET_ISOLATED && !caps->has_nftables)
        return vo_error_set(ret_error, -EOPNOTSUPP, "isolated networks need nftables, which this host's "
                    "kernel lacks: load nf_tables");
    if (s->type == VO_NET_VLAN && !caps->has_vlan)
        return vo_error_set(ret_error, -EOPNOTSUPP, "vlan networks need 802.1Q VLAN support, which this "
                    "host's kernel lacks: load the 8021q module (modprobe 8021q)");
    if (s->type == VO_NET_VXLAN && !caps->has_vxlan)
        return vo_error_set(ret_error, -EOPNOTSUPP, "vxlan networks need VXLAN support, which this "
                    "host's kernel lacks: load the vxlan module (modprobe vxlan)");
    return 0;
}

/* 0: make it; 1: it is already ours; -EEXIST: someone else's. */
static int link_state(const VoNetPlanInput *in, const VoNetSpec *s, const char *name,
                      const char *alias, bool bridge, char **ret_error)
{
    const VoHostLink *l = find_link(in, name);
    if (!l)
        return 0;
    if (owned(l, alias) && l->is_bridge == bridge)
        return 1;
    return vo_error_set(ret_error, -EEXIST, "interface %s already exists on this host and was not made "
                "by vireo for network '%s'", name, s->name);
}

/* A stable, locally administered MAC for a bridge: otherwise the bridge
 * takes the lowest MAC of its ports, and the guests' gateway MAC would
 * change whenever a tap comes or goes. In a cluster it is the same on every
 * host (vo_net_bridge_mac): the anycast gateway. */
static void bridge_mac(const char *net_name, char ret[18])
{
    vo_net_bridge_mac(net_name, ret);
}

static bool is_cluster_segment(const VoNetSpec *s)
{
    return vo_net_spec_cluster_segment(s);
}

/* Appends the all-zeros entries for peers, each once, never local. */
static void add_fdb_appends(VoNetPlan *p, const char *port, const uint32_t *peers, size_t n,
                            bool has_local, uint32_t local)
{
    for (size_t i = 0; i < n; i++) {
        bool dup = (has_local && peers[i] == local) || peers[i] == 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = peers[j] == peers[i];
        if (!dup)
            add_step(p, VO_STEP_FDB_APPEND, port)->addr = peers[i];
    }
}

/* Order: rules first, so a segment is never up without its isolation; then
 * the bridge and its port (vlan or vxlan link), addresses, links up,
 * forwarding, and dnsmasq last, once its interface is ready. */
static void build_setup(VoNetPlan *p, const VoNetSpec *s, const VoNetPlanInput *in,
                        const char *port, bool bridge_ours, bool port_ours)
{
    _cleanup_free_ char *alias = vo_net_owner_alias(s->name);
    _cleanup_free_ char *rules = vo_nft_ruleset(s);
    if (rules) {
        VoNetStep *st = add_step(p, VO_STEP_NFT, NULL);
        st->path = vo_asprintf("%s/ruleset.nft", in->dir);
        st->text = TAKE_PTR(rules);
    }
    if (!bridge_ours) {
        bridge_mac(s->name, add_step(p, VO_STEP_LINK_ADD, s->bridge)->mac);
        add_step(p, VO_STEP_LINK_ALIAS, s->bridge)->alias = vo_strdup(alias);
    }
    if (port && !port_ours) {
        VoNetStep *st = add_step(p, VO_STEP_LINK_ADD, port);
        st->link = s->type == VO_NET_VLAN ? VO_LINK_VLAN : VO_LINK_VXLAN;
        st->uplink = vo_strdup(s->uplink);
        st->id = s->type == VO_NET_VLAN ? s->vlan_id : s->vni;
        st->has_local = is_cluster_segment(s) ? in->cluster.has_local : s->has_local;
        st->local = is_cluster_segment(s) ? in->cluster.local : s->local;
        st->port = is_cluster_segment(s) ? VO_CLUSTER_VXLAN_PORT : s->port;
        add_step(p, VO_STEP_LINK_ALIAS, port)->alias = vo_strdup(alias);
    }
    for (size_t i = 0; s->type == VO_NET_VXLAN && i < s->n_remotes; i++)
        add_step(p, VO_STEP_FDB_APPEND, port)->addr = s->remotes[i];
    if (is_cluster_segment(s))
        add_fdb_appends(p, port, in->cluster.peers, in->cluster.n_peers, in->cluster.has_local,
                        in->cluster.local);
    if (port)
        add_step(p, VO_STEP_LINK_MASTER, port)->master = vo_strdup(s->bridge);
    if (s->has_subnet) {
        VoNetStep *st = add_step(p, VO_STEP_ADDR, s->bridge);
        st->addr = vo_cidr_gateway(s->subnet);
        st->prefix = s->subnet.prefix;
        st->broadcast = vo_cidr_broadcast(s->subnet);
    }
    if (port)
        add_step(p, VO_STEP_LINK_UP, port);
    add_step(p, VO_STEP_LINK_UP, s->bridge);
    if (s->type == VO_NET_NAT) {
        VoNetStep *st = add_step(p, VO_STEP_SYSCTL, NULL);
        st->key = vo_strdup("net.ipv4.ip_forward");
        st->value = vo_strdup("1");
    }
    if (s->dhcp) {
        VoNetStep *st = add_step(p, VO_STEP_DNSMASQ_START, NULL);
        st->path = vo_asprintf("%s/dnsmasq.conf", in->dir);
        st->text = vo_net_dnsmasq_conf(s, in->dir);
    }
}

/* The port link vireo makes besides the bridge: vlan or vxlan, or none. */
static bool port_name(const VoNetSpec *s, char ret[VO_IFNAME_SIZE])
{
    if (s->type == VO_NET_VLAN)
        return s->uplink && vo_net_vlan_ifname(s->uplink, s->vlan_id, ret, NULL) == 0;
    if (s->type == VO_NET_VXLAN || is_cluster_segment(s)) {
        vo_net_vxlan_ifname(s->vni, ret);
        return true;
    }
    return false;
}

/* The links a bridge network uses, or a vlan uplink, must be there. */
static int check_host_links(const VoNetSpec *s, const VoNetPlanInput *in, char **ret_error)
{
    if (s->type == VO_NET_BRIDGE) {
        const VoHostLink *l = find_link(in, s->bridge);
        if (!l)
            return vo_error_set(ret_error, -ENODEV, "bridge: %s does not exist on this host", s->bridge);
        if (!l->is_bridge)
            return vo_error_set(ret_error, -ENOTTY, "bridge: %s is not a bridge", s->bridge);
    }
    if (s->type == VO_NET_VLAN && !find_link(in, s->uplink))
        return vo_error_set(ret_error, -ENODEV, "uplink: %s does not exist on this host", s->uplink);
    return 0;
}

int vo_net_plan_setup(const VoNetSpec *s, const VoNetPlanInput *in, VoNetPlan **ret,
                      char **ret_error)
{
    int r = vo_net_spec_validate(s, ret_error);
    if (r < 0 || (r = check_caps(s, &in->caps, ret_error)) < 0 ||
        (r = check_host_links(s, in, ret_error)) < 0)
        return r;
    if (is_cluster_segment(s) && !in->caps.has_vxlan)
        return vo_error_set(ret_error, -EOPNOTSUPP, "cluster %s networks span the hosts over "
                            "VXLAN, which this host's kernel lacks: load the vxlan module "
                            "(modprobe vxlan)", vo_net_type_to_string(s->type));
    if (is_cluster_segment(s) && !in->cluster.has_local)
        return vo_error_set(ret_error, -EINVAL, "cluster network '%s' needs this host's cluster "
                            "address (the VXLAN source)", s->name);
    if (s->type == VO_NET_BRIDGE) { /* vireo makes only the taps */
        *ret = vo_malloc0(sizeof(VoNetPlan));
        return 0;
    }
    _cleanup_free_ char *alias = vo_net_owner_alias(s->name);
    char port[VO_IFNAME_SIZE];
    bool has_port = port_name(s, port);
    int bridge_ours = link_state(in, s, s->bridge, alias, true, ret_error);
    if (bridge_ours < 0)
        return bridge_ours;
    int port_ours = has_port ? link_state(in, s, port, alias, false, ret_error) : 0;
    if (port_ours < 0)
        return port_ours;
    VoNetPlan *p = vo_malloc0(sizeof(*p));
    build_setup(p, s, in, has_port ? port : NULL, bridge_ours, port_ours);
    *ret = p;
    return 0;
}

int vo_net_plan_teardown(const VoNetSpec *s, const VoNetPlanInput *in, VoNetPlan **ret)
{
    VoNetPlan *p = vo_malloc0(sizeof(*p));
    *ret = p;
    if (s->type == VO_NET_BRIDGE)
        return 0;
    if (s->dhcp)
        add_step(p, VO_STEP_DNSMASQ_STOP, NULL)->path = vo_asprintf("%s/dnsmasq.pid", in->dir);
    _cleanup_free_ char *alias = vo_net_owner_alias(s->name);
    char port[VO_IFNAME_SIZE];
    if (port_name(s, port) && owned(find_link(in, port), alias))
        add_step(p, VO_STEP_LINK_DEL, port);
    if (s->bridge && owned(find_link(in, s->bridge), alias))
        add_step(p, VO_STEP_LINK_DEL, s->bridge);
    _cleanup_free_ char *del = vo_nft_delete(s);
    if (del)
        add_step(p, VO_STEP_NFT, NULL)->text = TAKE_PTR(del);
    return 0;
}

int vo_net_plan_fdb(const VoNetSpec *s, const uint32_t *have, size_t n_have,
                    const uint32_t *want, size_t n_want, uint32_t local, VoNetPlan **ret)
{
    if (!is_cluster_segment(s))
        return -EINVAL;
    char port[VO_IFNAME_SIZE];
    vo_net_vxlan_ifname(s->vni, port);
    VoNetPlan *p = vo_malloc0(sizeof(*p));
    for (size_t i = 0; i < n_have; i++) {
        bool keep = false, dup = false;
        for (size_t j = 0; j < n_want && !keep; j++)
            keep = want[j] == have[i] && want[j] != local;
        for (size_t j = 0; j < i && !dup; j++)
            dup = have[j] == have[i];
        if (!keep && !dup)
            add_step(p, VO_STEP_FDB_DEL, port)->addr = have[i];
    }
    for (size_t i = 0; i < n_want; i++) {
        bool there = want[i] == local || want[i] == 0;
        for (size_t j = 0; j < n_have && !there; j++)
            there = have[j] == want[i];
        for (size_t j = 0; j < i && !there; j++)
            there = want[j] == want[i];
        if (!there)
            add_step(p, VO_STEP_FDB_APPEND, port)->addr = want[i];
    }
    *ret = p;
    return 0;
}

/* "aa:bb:cc:dd:ee:ff" in lower case into out; false when malformed. */
static bool mac_norm(const char *mac, char out[18])
{
    if (!mac || strlen(mac) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        char c = mac[i];
        if (i % 3 == 2 ? c != ':' : !isxdigit((unsigned char)c))
            return false;
        out[i] = (char)tolower((unsigned char)c);
    }
    out[17] = '\0';
    return strcmp(out, "00:00:00:00:00:00") != 0;
}

int vo_net_plan_fdb_macs(const VoNetSpec *s, const VoFdbEntry *have, size_t n_have,
                         const VoFdbEntry *want, size_t n_want, uint32_t local,
                         VoNetPlan **ret)
{
    if (!is_cluster_segment(s))
        return -EINVAL;
    char port[VO_IFNAME_SIZE];
    vo_net_vxlan_ifname(s->vni, port);
    VoNetPlan *p = vo_malloc0(sizeof(*p));
    /* want, normalized: remote VMs only, each MAC once (the first). */
    VoFdbEntry *w = vo_malloc0(sizeof(*w) * (n_want + 1));
    size_t nw = 0;
    for (size_t i = 0; i < n_want; i++) {
        VoFdbEntry e = { .dst = want[i].dst };
        bool dup = false;
        if (!mac_norm(want[i].mac, e.mac) || e.dst == 0 || e.dst == local)
            continue;
        for (size_t j = 0; j < nw && !dup; j++)
            dup = !strcmp(w[j].mac, e.mac);
        if (!dup)
            w[nw++] = e;
    }
    for (size_t i = 0; i < n_have; i++) {
        char mac[18];
        bool keep = false, dup = false;
        if (!mac_norm(have[i].mac, mac))
            continue;
        for (size_t j = 0; j < nw && !keep; j++)
            keep = !strcmp(w[j].mac, mac);
        for (size_t j = 0; j < i && !dup; j++)
            dup = !strcasecmp(have[j].mac, mac);
        if (!keep && !dup)
            memcpy(add_step(p, VO_STEP_FDB_MAC_DEL, port)->mac, mac, sizeof(mac));
    }
    for (size_t j = 0; j < nw; j++) {
        bool there = false;
        for (size_t i = 0; i < n_have && !there; i++)
            there = !strcasecmp(have[i].mac, w[j].mac) && have[i].dst == w[j].dst;
        if (!there) {
            VoNetStep *st = add_step(p, VO_STEP_FDB_MAC, port);
            memcpy(st->mac, w[j].mac, sizeof(st->mac));
            st->addr = w[j].dst;
        }
    }
    free(w);
    *ret = p;
    return 0;
}

int vo_net_fdb_parse_macs(const char *json_text, VoFdbEntry **ret, size_t *ret_n)
{
    *ret = NULL;
    *ret_n = 0;
    json_t *arr = json_loads(json_text ? json_text : "", 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return -EINVAL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        VoFdbEntry f;
        const char *dst = json_string_value(json_object_get(e, "dst"));
        if (!mac_norm(json_string_value(json_object_get(e, "mac")), f.mac) || !dst ||
            vo_ipv4_parse(dst, &f.dst, NULL) < 0)
            continue;
        VoFdbEntry *n = realloc(*ret, sizeof(VoFdbEntry) * (*ret_n + 1));
        if (!n)
            abort();
        n[(*ret_n)++] = f;
        *ret = n;
    }
    json_decref(arr);
    return 0;
}

int vo_net_fdb_parse_remotes(const char *json_text, uint32_t **ret, size_t *ret_n)
{
    *ret = NULL;
    *ret_n = 0;
    json_t *arr = json_loads(json_text ? json_text : "", 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return -EINVAL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *mac = json_string_value(json_object_get(e, "mac"));
        const char *dst = json_string_value(json_object_get(e, "dst"));
        uint32_t a;
        if (!mac || !dst || strcmp(mac, "00:00:00:00:00:00") || vo_ipv4_parse(dst, &a, NULL) < 0)
            continue;
        uint32_t *n = realloc(*ret, sizeof(uint32_t) * (*ret_n + 1));
        if (!n)
            abort();
        n[(*ret_n)++] = a;
        *ret = n;
    }
    json_decref(arr);
    return 0;
}

/* ---- rendering ---- */

char *vo_net_join_lines(const char *text)
{
    char *out = vo_strdup("");
    for (const char *line = text ? text : ""; *line;) {
        const char *nl = strchr(line, '\n');
        int len = (int)(nl ? (size_t)(nl - line) : strlen(line));
        if (len > 0 && line[0] != '#') {
            char *n = vo_asprintf("%s%s%.*s", out, *out ? "; " : "", len, line);
            free(out);
            out = n;
        }
        line += len + (nl ? 1 : 0);
    }
    return out;
}

static char *render_link_add(const VoNetStep *st)
{
    char a[VO_IPV4_STRLEN];
    switch (st->link) {
    case VO_LINK_BRIDGE:
        return vo_asprintf("ip link add name %s%s%s type bridge", st->dev,
                           st->mac[0] ? " address " : "", st->mac);
    case VO_LINK_VLAN:
        return vo_asprintf("ip link add link %s name %s type vlan id %u", st->uplink, st->dev,
                           st->id);
    case VO_LINK_VXLAN:
        return vo_asprintf("ip link add name %s type vxlan id %u%s%s dstport %u nolearning",
                           st->dev, st->id, st->has_local ? " local " : "",
                           st->has_local ? vo_ipv4_format(st->local, a) : "", st->port);
    }
    return NULL;
}

char *vo_net_step_render(const VoNetStep *st)
{
    char a[VO_IPV4_STRLEN], b[VO_IPV4_STRLEN];
    switch (st->kind) {
    case VO_STEP_NFT: {
        if (st->path)
            return vo_asprintf("nft -f %s", st->path);
        _cleanup_free_ char *joined = vo_net_join_lines(st->text);
        return vo_asprintf("nft '%s'", joined);
    }
    case VO_STEP_LINK_ADD:
        return render_link_add(st);
    case VO_STEP_LINK_ALIAS:
        return vo_asprintf("ip link set dev %s alias %s", st->dev, st->alias);
    case VO_STEP_FDB_APPEND:
        return vo_asprintf("bridge fdb append 00:00:00:00:00:00 dev %s dst %s", st->dev,
                           vo_ipv4_format(st->addr, a));
    case VO_STEP_FDB_DEL:
        return vo_asprintf("bridge fdb del 00:00:00:00:00:00 dev %s dst %s", st->dev,
                           vo_ipv4_format(st->addr, a));
    case VO_STEP_FDB_MAC:
        return vo_asprintf("bridge fdb replace %s dev %s dst %s", st->mac, st->dev,
                           vo_ipv4_format(st->addr, a));
    case VO_STEP_FDB_MAC_DEL:
        return vo_asprintf("bridge fdb del %s dev %s", st->mac, st->dev);
    case VO_STEP_LINK_MASTER:
        return vo_asprintf("ip link set dev %s master %s", st->dev, st->master);
    case VO_STEP_ADDR:
        return vo_asprintf("ip address replace %s/%u broadcast %s dev %s",
                           vo_ipv4_format(st->addr, a), st->prefix,
                           vo_ipv4_format(st->broadcast, b), st->dev);
    case VO_STEP_LINK_UP:
        return vo_asprintf("ip link set dev %s up", st->dev);
    case VO_STEP_SYSCTL:
        return vo_asprintf("sysctl -w %s=%s", st->key, st->value);
    case VO_STEP_DNSMASQ_START:
        return vo_asprintf("dnsmasq --keep-in-foreground --conf-file=%s", st->path);
    case VO_STEP_DNSMASQ_STOP:
        return vo_asprintf("kill $(cat %s)", st->path);
    case VO_STEP_LINK_DEL:
        return vo_asprintf("ip link del dev %s", st->dev);
    }
    return NULL;
}

char *vo_net_plan_render(const VoNetPlan *p)
{
    char *out = vo_strdup("");
    for (size_t i = 0; i < p->n_steps; i++) {
        _cleanup_free_ char *line = vo_net_step_render(&p->steps[i]);
        char *n = vo_asprintf("%s%s\n", out, line);
        free(out);
        out = n;
    }
    return out;
}

/* ---- dnsmasq ---- */

void vo_net_addresses_to_json(const VoNetSpec *s, json_t *doc)
{
    char a[VO_IPV4_STRLEN], b[VO_IPV4_STRLEN];
    uint32_t lo, hi;
    if (!s->has_subnet)
        return;
    json_object_set_new(doc, "gateway", json_string(vo_ipv4_format(vo_cidr_gateway(s->subnet), a)));
    if (s->dhcp && !is_cluster_segment(s) && vo_cidr_dhcp_range(s->subnet, &lo, &hi) == 0)
        json_object_set_new(doc, "dhcp_range", json_pack("{s:s, s:s}", "start", vo_ipv4_format(lo, a),
                                                         "end", vo_ipv4_format(hi, b)));
}

/* One dnsmasq per network, bound to its bridge only (bind-dynamic and
 * except-interface=lo let several run beside a system resolver). Only nat
 * guests get a router and upstream DNS: on other types there is no way out
 * through this host, so dnsmasq answers for the network's names only.
 * no-ping: by default dnsmasq pings an address before offering it and, for
 * up to 3 s while no answer comes, serves no other DHCP client; guests that
 * boot together then get their addresses 3 s apart, and a client whose
 * REQUESTs went unanswered meanwhile (busybox udhcpc gives up after 3 s)
 * ignores the ACK that dnsmasq then sends and records as a lease. vireo
 * hands out every address of its subnets, so the check buys nothing. */
char *vo_net_dnsmasq_conf(const VoNetSpec *s, const char *dir)
{
    uint32_t lo, hi;
    if (!s->dhcp || !s->has_subnet || vo_cidr_dhcp_range(s->subnet, &lo, &hi) < 0)
        return NULL;
    char a[VO_IPV4_STRLEN], b[VO_IPV4_STRLEN], m[VO_IPV4_STRLEN];
    bool nat = s->type == VO_NET_NAT;
    vo_ipv4_format(vo_cidr_netmask(s->subnet.prefix), m);
    /* Cluster: static only (the hosts file holds this host's VMs with their
     * IPAM addresses), and every VM of the cluster in DNS. */
    _cleanup_free_ char *range = is_cluster_segment(s)
        ? vo_asprintf("dhcp-range=%s,static,%s,1h\n", vo_ipv4_format(s->subnet.addr, a), m)
        : vo_asprintf("dhcp-range=%s,%s,%s,1h\n", vo_ipv4_format(lo, a), vo_ipv4_format(hi, b), m);
    _cleanup_free_ char *addn = is_cluster_segment(s)
        ? vo_asprintf("addn-hosts=%s/cluster-hosts\n", dir) : vo_strdup("");
    return vo_asprintf("# dnsmasq for vireo network %s: generated by vireod, do not edit\n"
                       "pid-file=%s/dnsmasq.pid\n"
                       "except-interface=lo\n"
                       "interface=%s\n"
                       "bind-dynamic\n"
                       "no-hosts\n"
                       "domain-needed\n"
                       "%s"
                       "domain=%s.vireo.internal\n"
                       "local=/%s.vireo.internal/\n"
                       "%s"
                       "dhcp-authoritative\n"
                       "no-ping\n"
                       "dhcp-leasefile=%s/leases\n"
                       "dhcp-hostsfile=%s/hosts\n"
                       "%s"
                       "%s",
                       s->name, dir, s->bridge, nat ? "" : "no-resolv\n", s->name, s->name,
                       range, dir, dir, addn, nat ? "" : "dhcp-option=option:router\n");
}

char *vo_net_cluster_hosts_line(const VoNetSpec *s, const char *ip, const char *vm_name)
{
    return vo_asprintf("%s %s.%s.vireo.internal %s\n", ip, vm_name, s->name, vm_name);
}

char *vo_net_dhcp_host_line(const char *mac, const char *ip, const char *vm_name)
{
    return ip ? vo_asprintf("%s,%s,%s\n", mac, ip, vm_name) : vo_asprintf("%s,%s\n", mac, vm_name);
}
