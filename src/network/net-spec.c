/* net-spec.c: network definitions: JSON <-> VoNetSpec, validation, conflicts
 * and generated interface names (see net-spec.h). */
#include "network/net-spec.h"

#include <string.h>

#include "conf/names.h"
#include "util/util.h"

static const char *const type_names[] = { "nat", "isolated", "bridge", "vlan", "vxlan" };
_Static_assert(ELEMENTSOF(type_names) == _VO_NET_TYPE_MAX, "type_names");

const char *vo_net_type_to_string(VoNetType t)
{
    return t < _VO_NET_TYPE_MAX ? type_names[t] : NULL;
}

int vo_net_type_from_string(const char *s, VoNetType *ret)
{
    for (size_t i = 0; s && i < ELEMENTSOF(type_names); i++)
        if (!strcmp(s, type_names[i])) {
            *ret = (VoNetType)i;
            return 0;
        }
    return -EINVAL;
}

VoNetSpec *vo_net_spec_free(VoNetSpec *s)
{
    if (!s)
        return NULL;
    free(s->name);
    free(s->bridge);
    free(s->uplink);
    free(s->remotes);
    free(s);
    return NULL;
}

static int fail_with(int r, char **ret_error, const char *fmt, va_list ap) _printf_(3, 0);
static int fail_with(int r, char **ret_error, const char *fmt, va_list ap)
{
    if (ret_error)
        *ret_error = vo_vasprintf(fmt, ap);
    return r;
}

static int conflict(char **ret_error, const char *fmt, ...) _printf_(2, 3);
static int conflict(char **ret_error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = fail_with(-EEXIST, ret_error, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- JSON ---- */

#define T(t) (1u << VO_NET_##t)
#define ALL (T(NAT) | T(ISOLATED) | T(BRIDGE) | T(VLAN) | T(VXLAN))
#define ROUTED (T(NAT) | T(ISOLATED) | T(VLAN) | T(VXLAN)) /* may carry a subnet */
#define CLUSTER (T(NAT) | T(ISOLATED) | T(BRIDGE)) /* may span a cluster */

/* Each key, its JSON type (JSON_TRUE standing for any boolean) and the
 * network types it belongs to. A minimal local cousin of vm-spec.c's
 * check_keys that also knows about types. */
static const struct {
    const char *key;
    json_type json;
    unsigned types;
} spec_keys[] = {
    { "name", JSON_STRING, ALL },         { "type", JSON_STRING, ALL },
    { "subnet", JSON_STRING, ROUTED },    { "dhcp", JSON_TRUE, ROUTED },
    { "bridge", JSON_STRING, ALL },       { "uplink", JSON_STRING, T(VLAN) },
    { "vlan_id", JSON_INTEGER, T(VLAN) }, { "vni", JSON_INTEGER, T(VXLAN) | T(NAT) | T(ISOLATED) },
    { "remotes", JSON_ARRAY, T(VXLAN) },  { "local", JSON_STRING, T(VXLAN) },
    { "port", JSON_INTEGER, T(VXLAN) },   { "cluster", JSON_TRUE, CLUSTER },
};

static const char *json_type_name(json_type t)
{
    switch (t) {
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_TRUE: return "a boolean";
    default: return "a value";
    }
}

static char *types_list(unsigned mask)
{
    char *s = NULL;
    for (size_t i = 0; i < _VO_NET_TYPE_MAX; i++)
        if (mask & (1u << i)) {
            char *n = s ? vo_asprintf("%s, %s", s, type_names[i]) : vo_strdup(type_names[i]);
            free(s);
            s = n;
        }
    return s;
}

static int check_keys(json_t *doc, VoNetType type, char **ret_error)
{
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value) {
        size_t i = 0;
        while (i < ELEMENTSOF(spec_keys) && strcmp(spec_keys[i].key, key))
            i++;
        if (i == ELEMENTSOF(spec_keys))
            return vo_error_set(ret_error, -EINVAL, "%s: unknown key", key);
        json_type want = spec_keys[i].json;
        if (want == JSON_TRUE ? !json_is_boolean(value) : json_typeof(value) != want)
            return vo_error_set(ret_error, -EINVAL, "%s: expected %s", key, json_type_name(want));
        if (!(spec_keys[i].types & (1u << type))) {
            _cleanup_free_ char *only = types_list(spec_keys[i].types);
            return vo_error_set(ret_error, -EINVAL, "%s: not allowed for %s networks (only %s)", key,
                        type_names[type], only);
        }
    }
    return 0;
}

static int get_uint(json_t *doc, const char *key, uint32_t lo, uint32_t hi, uint32_t *ret,
                    char **ret_error)
{
    json_t *v = json_object_get(doc, key);
    if (!v)
        return 0;
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi)
        return vo_error_set(ret_error, -EINVAL, "%s: %lld is out of range (%u..%u)", key, (long long)n, lo, hi);
    *ret = (uint32_t)n;
    return 0;
}

static int parse_remotes(json_t *arr, VoNetSpec *s, char **ret_error)
{
    if (!arr)
        return 0;
    if (json_array_size(arr) > VO_VXLAN_MAX_REMOTES)
        return vo_error_set(ret_error, -EINVAL, "remotes: at most %d", VO_VXLAN_MAX_REMOTES);
    s->remotes = vo_malloc0(sizeof(uint32_t) * (json_array_size(arr) + 1));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        _cleanup_free_ char *err = NULL;
        if (!json_is_string(v))
            return vo_error_set(ret_error, -EINVAL, "remotes[%zu]: expected a string", i);
        if (vo_ipv4_parse(json_string_value(v), &s->remotes[i], &err) < 0)
            return vo_error_set(ret_error, -EINVAL, "remotes[%zu]: %s", i, err);
        s->n_remotes++;
    }
    return 0;
}

int vo_net_spec_from_json(json_t *doc, VoNetSpec **ret, char **ret_error)
{
    if (!json_is_object(doc))
        return vo_error_set(ret_error, -EINVAL, "network spec must be a JSON object");
    json_t *jtype = json_object_get(doc, "type");
    VoNetType type;
    if (!jtype)
        return vo_error_set(ret_error, -EINVAL, "type: required (nat, isolated, bridge, vlan or vxlan)");
    if (!json_is_string(jtype))
        return vo_error_set(ret_error, -EINVAL, "type: expected a string");
    if (vo_net_type_from_string(json_string_value(jtype), &type) < 0)
        return vo_error_set(ret_error, -EINVAL, "type: '%s' is not one of nat, isolated, bridge, vlan, vxlan",
                    json_string_value(jtype));
    int r = check_keys(doc, type, ret_error);
    if (r < 0)
        return r;

    _cleanup_net_spec_ VoNetSpec *s = vo_malloc0(sizeof(*s));
    s->type = type;
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name)
        return vo_error_set(ret_error, -EINVAL, "name: required");
    s->name = vo_strdup(name);
    const char *subnet = json_string_value(json_object_get(doc, "subnet"));
    _cleanup_free_ char *err = NULL;
    if (subnet) {
        if (vo_cidr_parse_subnet(subnet, &s->subnet, &err) < 0)
            return vo_error_set(ret_error, -EINVAL, "subnet: %s", err);
        s->has_subnet = true;
    }
    json_t *dhcp = json_object_get(doc, "dhcp");
    s->dhcp = dhcp ? json_is_true(dhcp)
                   : type == VO_NET_NAT || type == VO_NET_ISOLATED || s->has_subnet;
    s->bridge = vo_strdup(json_string_value(json_object_get(doc, "bridge")));
    if (!s->bridge && type != VO_NET_BRIDGE) {
        char br[VO_IFNAME_SIZE];
        vo_net_bridge_name(name, br);
        s->bridge = vo_strdup(br);
    }
    s->uplink = vo_strdup(json_string_value(json_object_get(doc, "uplink")));
    s->cluster = json_is_true(json_object_get(doc, "cluster"));
    s->port = type == VO_NET_VXLAN ? VO_VXLAN_PORT_DEFAULT : 0;
    if ((r = get_uint(doc, "vlan_id", 1, VO_VLAN_ID_MAX, &s->vlan_id, ret_error)) < 0 ||
        (r = get_uint(doc, "vni", 1, VO_VNI_MAX, &s->vni, ret_error)) < 0 ||
        (r = get_uint(doc, "port", 1, 65535, &s->port, ret_error)) < 0 ||
        (r = parse_remotes(json_object_get(doc, "remotes"), s, ret_error)) < 0)
        return r;
    const char *local = json_string_value(json_object_get(doc, "local"));
    if (local) {
        if (vo_ipv4_parse(local, &s->local, &err) < 0)
            return vo_error_set(ret_error, -EINVAL, "local: %s", err);
        s->has_local = true;
    }
    *ret = TAKE_PTR(s);
    return 0;
}

bool vo_net_spec_cluster_segment(const VoNetSpec *s)
{
    return s->cluster && s->vni && (s->type == VO_NET_NAT || s->type == VO_NET_ISOLATED);
}

json_t *vo_net_spec_to_json(const VoNetSpec *s)
{
    char buf[VO_CIDR_STRLEN];
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "type", json_string(vo_net_type_to_string(s->type)));
    if (s->has_subnet)
        json_object_set_new(o, "subnet", json_string(vo_cidr_format(s->subnet, buf)));
    if (s->type != VO_NET_BRIDGE)
        json_object_set_new(o, "dhcp", json_boolean(s->dhcp));
    if (s->bridge)
        json_object_set_new(o, "bridge", json_string(s->bridge));
    if (s->type == VO_NET_VLAN) {
        if (s->uplink)
            json_object_set_new(o, "uplink", json_string(s->uplink));
        if (s->vlan_id) /* unset until validated (0 would not parse back) */
            json_object_set_new(o, "vlan_id", json_integer(s->vlan_id));
    }
    if (s->type == VO_NET_VXLAN) {
        if (s->vni)
            json_object_set_new(o, "vni", json_integer(s->vni));
        json_t *remotes = json_array();
        for (size_t i = 0; i < s->n_remotes; i++)
            json_array_append_new(remotes, json_string(vo_ipv4_format(s->remotes[i], buf)));
        json_object_set_new(o, "remotes", remotes);
        if (s->has_local)
            json_object_set_new(o, "local", json_string(vo_ipv4_format(s->local, buf)));
        json_object_set_new(o, "port", json_integer(s->port));
    }
    if (s->cluster)
        json_object_set_new(o, "cluster", json_true());
    if (s->cluster && s->vni && s->type != VO_NET_VXLAN)
        json_object_set_new(o, "vni", json_integer(s->vni));
    return o;
}

VoNetSpec *vo_net_spec_copy(const VoNetSpec *s)
{
    json_t *j = vo_net_spec_to_json(s);
    VoNetSpec *copy = NULL;
    if (vo_net_spec_from_json(j, &copy, NULL) < 0)
        abort(); /* a spec we serialised ourselves always parses */
    json_decref(j);
    return copy;
}

/* ---- validation ---- */

static bool unicast(uint32_t a)
{
    return a != 0 && a != UINT32_MAX && (a >> 28) != 0xe;
}

static int validate_ifname(const char *key, const char *name, char **ret_error)
{
    if (!vo_ifname_valid(name))
        return vo_error_set(ret_error, -EINVAL,
                    "%s: '%s' is not an interface name: use 1-15 characters of a-z, A-Z, 0-9, "
                    "'_', '.' and '-'",
                    key, name);
    return 0;
}

static int validate_vxlan(const VoNetSpec *s, char **ret_error)
{
    char a[VO_IPV4_STRLEN];
    if (s->vni == 0)
        return vo_error_set(ret_error, -EINVAL, "vni: required for vxlan networks (1..%d)", VO_VNI_MAX);
    if (s->vni > VO_VNI_MAX)
        return vo_error_set(ret_error, -EINVAL, "vni: %u is out of range (1..%d)", s->vni, VO_VNI_MAX);
    if (s->port < 1 || s->port > 65535)
        return vo_error_set(ret_error, -EINVAL, "port: %u is out of range (1..65535)", s->port);
    if (s->n_remotes == 0)
        return vo_error_set(ret_error, -EINVAL, "remotes: a vxlan network needs at least one remote address");
    for (size_t i = 0; i < s->n_remotes; i++) {
        if (!unicast(s->remotes[i]))
            return vo_error_set(ret_error, -EINVAL, "remotes[%zu]: %s is not a unicast address", i,
                        vo_ipv4_format(s->remotes[i], a));
        if (s->has_local && s->remotes[i] == s->local)
            return vo_error_set(ret_error, -EINVAL, "remotes[%zu]: %s is the local address", i,
                        vo_ipv4_format(s->remotes[i], a));
        for (size_t j = 0; j < i; j++)
            if (s->remotes[j] == s->remotes[i])
                return vo_error_set(ret_error, -EINVAL, "remotes[%zu]: %s is listed twice", i,
                            vo_ipv4_format(s->remotes[i], a));
    }
    if (s->has_local && !unicast(s->local))
        return vo_error_set(ret_error, -EINVAL, "local: %s is not a unicast address", vo_ipv4_format(s->local, a));
    return 0;
}

int vo_net_spec_validate(const VoNetSpec *s, char **ret_error)
{
    if (!vo_name_valid(s->name))
        return vo_error_set(ret_error, -EINVAL,
                    "name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and '-', not "
                    "starting with '-'",
                    s->name);
    const char *type = vo_net_type_to_string(s->type);
    if (!type)
        return vo_error_set(ret_error, -EINVAL, "type: unknown network type");
    if (!s->bridge)
        return vo_error_set(ret_error, -EINVAL, "bridge: required for %s networks%s", type,
                    s->type == VO_NET_BRIDGE ? " (the name of an existing host bridge)" : "");
    int r = validate_ifname("bridge", s->bridge, ret_error);
    if (r < 0)
        return r;
    if (s->type == VO_NET_BRIDGE) {
        if (s->has_subnet || s->dhcp)
            return vo_error_set(ret_error, -EINVAL, "subnet, dhcp: not for bridge networks (the LAN has its own)");
        return 0;
    }
    if ((s->type == VO_NET_NAT || s->type == VO_NET_ISOLATED) && !s->has_subnet)
        return vo_error_set(ret_error, -EINVAL, "subnet: required for %s networks", type);
    if ((s->type == VO_NET_NAT || s->type == VO_NET_ISOLATED) && s->vni && !s->cluster)
        return vo_error_set(ret_error, -EINVAL, "vni: only cluster %s networks have one (the "
                            "cluster allocates it)", type);
    if ((s->type == VO_NET_NAT || s->type == VO_NET_ISOLATED) && s->cluster && s->vni == 0)
        return vo_error_set(ret_error, -EINVAL, "vni: a cluster %s network needs one (1..%d)",
                            type, VO_VNI_MAX);
    if (s->dhcp && !s->has_subnet)
        return vo_error_set(ret_error, -EINVAL, "dhcp: needs a subnet to serve");
    char buf[VO_CIDR_STRLEN];
    if (s->has_subnet && (s->subnet.prefix < VO_SUBNET_MIN_PREFIX ||
                          s->subnet.prefix > VO_SUBNET_MAX_PREFIX))
        return vo_error_set(ret_error, -EINVAL, "subnet: %s: prefix out of range (/%d../%d)",
                    vo_cidr_format(s->subnet, buf), VO_SUBNET_MIN_PREFIX, VO_SUBNET_MAX_PREFIX);
    uint32_t lo, hi;
    if (s->dhcp && vo_cidr_dhcp_range(s->subnet, &lo, &hi) < 0)
        return vo_error_set(ret_error, -EINVAL, "subnet: %s leaves no addresses for DHCP: use a /29 or wider, "
                    "or dhcp false", vo_cidr_format(s->subnet, buf));
    if (s->type == VO_NET_VLAN) {
        if (!s->uplink)
            return vo_error_set(ret_error, -EINVAL, "uplink: required for vlan networks (the host interface "
                        "carrying the VLANs)");
        if ((r = validate_ifname("uplink", s->uplink, ret_error)) < 0)
            return r;
        if (s->vlan_id == 0)
            return vo_error_set(ret_error, -EINVAL, "vlan_id: required for vlan networks (1..%d)", VO_VLAN_ID_MAX);
        if (s->vlan_id > VO_VLAN_ID_MAX)
            return vo_error_set(ret_error, -EINVAL, "vlan_id: %u is out of range (1..%d)", s->vlan_id,
                        VO_VLAN_ID_MAX);
        char sub[VO_IFNAME_SIZE];
        _cleanup_free_ char *err = NULL;
        if (vo_net_vlan_ifname(s->uplink, s->vlan_id, sub, &err) < 0)
            return vo_error_set(ret_error, -EINVAL, "uplink: %s", err);
    }
    if (s->type == VO_NET_VXLAN)
        return validate_vxlan(s, ret_error);
    return 0;
}

/* ---- conflicts ---- */

/* The interfaces vireo creates for a network (made) and all it uses. */
static size_t made_ifnames(const VoNetSpec *s, char names[2][VO_IFNAME_SIZE])
{
    size_t n = 0;
    if (s->type == VO_NET_BRIDGE)
        return 0;
    snprintf(names[n++], VO_IFNAME_SIZE, "%s", s->bridge ? s->bridge : "");
    if (s->type == VO_NET_VLAN && s->uplink &&
        vo_net_vlan_ifname(s->uplink, s->vlan_id, names[n], NULL) == 0)
        n++;
    if (s->type == VO_NET_VXLAN || (s->cluster && s->vni))
        vo_net_vxlan_ifname(s->vni, names[n++]);
    return n;
}

static bool made_or_used(const VoNetSpec *s, const char *ifname)
{
    char made[2][VO_IFNAME_SIZE];
    size_t n = made_ifnames(s, made);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(made[i], ifname))
            return true;
    return s->type == VO_NET_BRIDGE && s->bridge && !strcmp(s->bridge, ifname);
}

static int check_pair(const VoNetSpec *s, const VoNetSpec *o, char **ret_error)
{
    char a[VO_CIDR_STRLEN], b[VO_CIDR_STRLEN];
    if (!strcmp(s->name, o->name))
        return conflict(ret_error, "name: network '%s' already exists", o->name);
    if (s->has_subnet && o->has_subnet && vo_cidr_overlap(s->subnet, o->subnet))
        return conflict(ret_error, "subnet: %s overlaps network '%s' (%s)",
                        vo_cidr_format(s->subnet, a), o->name, vo_cidr_format(o->subnet, b));
    if (s->vni && s->vni == o->vni)
        return conflict(ret_error, "vni: %u is already used by network '%s'", s->vni, o->name);
    if (s->type == VO_NET_VLAN && o->type == VO_NET_VLAN && s->vlan_id == o->vlan_id &&
        s->uplink && o->uplink && !strcmp(s->uplink, o->uplink))
        return conflict(ret_error, "vlan_id: VLAN %u on %s is already network '%s'", s->vlan_id,
                        s->uplink, o->name);
    char made[2][VO_IFNAME_SIZE];
    size_t n = made_ifnames(s, made);
    for (size_t i = 0; i < n; i++)
        if (made_or_used(o, made[i]))
            return conflict(ret_error, "%s%s is already used by network '%s'",
                            i == 0 ? "bridge: " : "interface ", made[i], o->name);
    if (s->type == VO_NET_BRIDGE && s->bridge && o->type != VO_NET_BRIDGE &&
        made_or_used(o, s->bridge))
        return conflict(ret_error, "bridge: %s belongs to network '%s'", s->bridge, o->name);
    return 0;
}

int vo_net_spec_check_conflicts(const VoNetSpec *s, const VoNetSpec *const *others, size_t n,
                                char **ret_error)
{
    for (size_t i = 0; i < n; i++) {
        if (others[i] == s)
            continue;
        int r = check_pair(s, others[i], ret_error);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- interface names ---- */

bool vo_ifname_valid(const char *name)
{
    if (!name || !name[0] || strlen(name) > VO_IFNAME_MAX || !strcmp(name, ".") ||
        !strcmp(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

uint32_t vo_net_name_hash(const char *net_name)
{
    uint32_t h = 2166136261u;
    for (const char *p = net_name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

void vo_net_bridge_name(const char *net_name, char ret[VO_IFNAME_SIZE])
{
    if (strlen(net_name) <= VO_IFNAME_MAX - 4) {
        snprintf(ret, VO_IFNAME_SIZE, "vbr-%s", net_name);
        return;
    }
    uint32_t h = vo_net_name_hash(net_name); /* folded to 16 bits */
    snprintf(ret, VO_IFNAME_SIZE, "vbr-%.6s-%04x", net_name, (h ^ (h >> 16)) & 0xffff);
}

int vo_net_vlan_ifname(const char *uplink, uint32_t vlan_id, char ret[VO_IFNAME_SIZE],
                       char **ret_error)
{
    _cleanup_free_ char *name = vo_asprintf("%s.%u", uplink, vlan_id);
    if (strlen(name) > VO_IFNAME_MAX) {
        if (ret_error)
            *ret_error = vo_asprintf("the VLAN interface name '%s' is longer than %d characters "
                                     "(the Linux limit)", name, VO_IFNAME_MAX);
        return -ENAMETOOLONG;
    }
    memcpy(ret, name, strlen(name) + 1);
    return 0;
}

void vo_net_bridge_mac(const char *net_name, char ret[18])
{
    uint32_t h = vo_net_name_hash(net_name);
    snprintf(ret, 18, "02:76:69:%02x:%02x:%02x", (h >> 16) & 255, (h >> 8) & 255, h & 255);
}

void vo_net_vxlan_ifname(uint32_t vni, char ret[VO_IFNAME_SIZE])
{
    snprintf(ret, VO_IFNAME_SIZE, "vx%u", vni);
}

int vo_net_tap_name(const char *vm_id, unsigned nic_slot, char ret[VO_IFNAME_SIZE])
{
    if (!vo_uuid_valid(vm_id) || nic_slot > 99)
        return -EINVAL;
    snprintf(ret, VO_IFNAME_SIZE, "vt%.8sn%u", vm_id, nic_slot);
    return 0;
}
