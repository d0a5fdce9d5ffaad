/* net-exec.c: runs network plans with ip, bridge, nft and sysctl, probes
 * the host, makes VM taps with ioctls, and parses dnsmasq's lease file
 * (see net-exec.h). */
#include "network/net-exec.h"

#include <fcntl.h>
#include <jansson.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "util/spawn.h"
#include "util/util.h"

/* A tool's output as one line for a message: trailing newlines dropped,
 * inner ones turned into "; ". */
static char *one_line(const char *out)
{
    if (!out)
        return vo_strdup("");
    size_t len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
        len--;
    char *s = vo_malloc0(len * 2 + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '\n') {
            s[k++] = ';';
            s[k++] = ' ';
        } else {
            s[k++] = out[i];
        }
    }
    return s;
}

/* ---- listings ---- */

static bool dump_interrupted(const char *err)
{
    return err && strstr(err, "Dump was interrupted");
}

int vo_net_run_listing(char *const argv[], char **ret_stdout, char **ret_error)
{
    _cleanup_free_ char *cmd = NULL;
    for (size_t i = 0; argv[i]; i++) {
        char *next = vo_asprintf("%s%s%s", cmd ? cmd : "", i ? " " : "", argv[i]);
        free(cmd);
        cmd = next;
    }
    for (int attempt = 1;; attempt++) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        int r = vo_spawn_wait_split(argv, VO_NET_STEP_TIMEOUT_MS, &out, &err);
        bool interrupted = dump_interrupted(err);
        if (r >= 0 && !interrupted) {
            *ret_stdout = TAKE_PTR(out);
            return 0;
        }
        if (!interrupted || attempt >= VO_NET_DUMP_ATTEMPTS) {
            _cleanup_free_ char *line = one_line(err);
            if (interrupted)
                return vo_error_set(ret_error, -EAGAIN, "`%s`: its dump was interrupted %d "
                                    "times in a row (the kernel's tables kept changing)",
                                    cmd, attempt);
            return vo_error_set(ret_error, r, "`%s` failed: %s", cmd,
                                *line ? line : strerror(-r));
        }
        log_debug("`%s`: dump interrupted; listing again", cmd);
        poll(NULL, 0, 20 * attempt);
    }
}

/* ---- probing ---- */

static bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* modules.builtin lists built-in modules as "kernel/.../NAME.ko". */
static bool module_builtin(const char *mod)
{
    struct utsname u;
    if (uname(&u) < 0)
        return false;
    _cleanup_free_ char *path = vo_asprintf("/lib/modules/%s/modules.builtin", u.release);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 4 << 20, &text, NULL) < 0)
        return false;
    _cleanup_free_ char *needle = vo_asprintf("/%s.ko\n", mod);
    return strstr(text, needle) != NULL;
}

static bool run_quiet(char *const argv[])
{
    _cleanup_free_ char *out = NULL;
    return vo_spawn_wait(argv, VO_NET_STEP_TIMEOUT_MS, &out) == 0;
}

static bool have_module(const char *mod)
{
    char *modprobe[] = { "modprobe", "-q", (char *)mod, NULL };
    run_quiet(modprobe); /* may fail: built in, no modprobe, no modules dir */
    _cleanup_free_ char *sys = vo_asprintf("/sys/module/%s", mod);
    return path_exists(sys) || module_builtin(mod);
}

void vo_host_links_free(VoHostLink *links, size_t n)
{
    for (size_t i = 0; links && i < n; i++) {
        free((char *)links[i].name);
        free((char *)links[i].alias);
    }
    free(links);
}

static int parse_links(const char *text, VoHostLink **ret_links, size_t *ret_n, char **ret_error)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc || !json_is_array(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EBADMSG, "cannot parse the output of `ip -j -d link show`: %s",
                    doc ? "not a JSON array" : jerr.text);
    }
    size_t n = json_array_size(doc), k = 0;
    VoHostLink *links = vo_malloc0((n ? n : 1) * sizeof(*links));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(doc, i);
        const char *name = json_string_value(json_object_get(e, "ifname"));
        if (!name)
            continue;
        const char *alias = json_string_value(json_object_get(e, "ifalias"));
        const char *kind =
            json_string_value(json_object_get(json_object_get(e, "linkinfo"), "info_kind"));
        links[k++] = (VoHostLink){
            .name = vo_strdup(name),
            .alias = alias ? vo_strdup(alias) : NULL,
            .is_bridge = kind && !strcmp(kind, "bridge"),
        };
    }
    json_decref(doc);
    *ret_links = links;
    *ret_n = k;
    return 0;
}

int vo_net_probe(VoHostCaps *ret_caps, VoHostLink **ret_links, size_t *ret_n, char **ret_error)
{
    VoHostCaps caps = {
        .has_bridge = have_module("bridge"),
        .has_vlan = have_module("8021q") || path_exists("/proc/net/vlan"),
        .has_vxlan = have_module("vxlan"),
        .has_nftables = have_module("nf_tables"),
    };
    if (!caps.has_nftables) {
        /* Built in without parameters: no /sys/module entry. Ask nft. */
        char *nft[] = { "nft", "list", "tables", NULL };
        caps.has_nftables = run_quiet(nft);
    }
    char *ip[] = { "ip", "-j", "-d", "link", "show", NULL };
    _cleanup_free_ char *out = NULL, *why = NULL;
    int r = vo_net_run_listing(ip, &out, &why);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot list the host's links: %s", why);
    r = parse_links(out, ret_links, ret_n, ret_error);
    if (r < 0)
        return r;
    *ret_caps = caps;
    return 0;
}

/* ---- steps ---- */

static char **strv_of(const char *first, ...)
{
    char **v = NULL;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        vo_strv_push(&v, vo_strdup(s));
    va_end(ap);
    return v;
}

static int link_add_argv(const VoNetStep *st, char ***ret)
{
    char a[VO_IPV4_STRLEN];
    char **v = NULL;
    switch (st->link) {
    case VO_LINK_BRIDGE:
        v = strv_of("ip", "link", "add", "name", st->dev, NULL);
        if (st->mac[0]) {
            vo_strv_push(&v, vo_strdup("address"));
            vo_strv_push(&v, vo_strdup(st->mac));
        }
        vo_strv_push(&v, vo_strdup("type"));
        vo_strv_push(&v, vo_strdup("bridge"));
        break;
    case VO_LINK_VLAN:
        if (!st->uplink)
            return -EINVAL;
        v = strv_of("ip", "link", "add", "link", st->uplink, "name", st->dev, "type", "vlan",
                    "id", NULL);
        vo_strv_pushf(&v, "%u", st->id);
        break;
    case VO_LINK_VXLAN:
        v = strv_of("ip", "link", "add", "name", st->dev, "type", "vxlan", "id", NULL);
        vo_strv_pushf(&v, "%u", st->id);
        if (st->has_local) {
            vo_strv_push(&v, vo_strdup("local"));
            vo_strv_push(&v, vo_strdup(vo_ipv4_format(st->local, a)));
        }
        vo_strv_push(&v, vo_strdup("dstport"));
        vo_strv_pushf(&v, "%u", st->port);
        vo_strv_push(&v, vo_strdup("nolearning"));
        break;
    default:
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

int vo_net_step_argv(const VoNetStep *st, char ***ret_argv)
{
    char a[VO_IPV4_STRLEN], b[VO_IPV4_STRLEN];
    char **v = NULL;
    bool needs_dev = st->kind != VO_STEP_NFT && st->kind != VO_STEP_SYSCTL &&
                     st->kind != VO_STEP_DNSMASQ_START && st->kind != VO_STEP_DNSMASQ_STOP;
    if (needs_dev && !st->dev)
        return -EINVAL;
    switch (st->kind) {
    case VO_STEP_NFT:
        if (st->path) {
            v = strv_of("nft", "-f", st->path, NULL);
        } else {
            if (!st->text)
                return -EINVAL;
            v = strv_of("nft", NULL);
            vo_strv_push(&v, vo_net_join_lines(st->text));
        }
        break;
    case VO_STEP_LINK_ADD:
        return link_add_argv(st, ret_argv);
    case VO_STEP_LINK_ALIAS:
        if (!st->alias)
            return -EINVAL;
        v = strv_of("ip", "link", "set", "dev", st->dev, "alias", st->alias, NULL);
        break;
    case VO_STEP_FDB_APPEND:
        v = strv_of("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", st->dev, "dst",
                    vo_ipv4_format(st->addr, a), NULL);
        break;
    case VO_STEP_FDB_DEL:
        v = strv_of("bridge", "fdb", "del", "00:00:00:00:00:00", "dev", st->dev, "dst",
                    vo_ipv4_format(st->addr, a), NULL);
        break;
    case VO_STEP_FDB_MAC:
        v = strv_of("bridge", "fdb", "replace", st->mac, "dev", st->dev, "dst",
                    vo_ipv4_format(st->addr, a), NULL);
        break;
    case VO_STEP_FDB_MAC_DEL:
        v = strv_of("bridge", "fdb", "del", st->mac, "dev", st->dev, NULL);
        break;
    case VO_STEP_LINK_MASTER:
        if (!st->master)
            return -EINVAL;
        v = strv_of("ip", "link", "set", "dev", st->dev, "master", st->master, NULL);
        break;
    case VO_STEP_ADDR:
        v = strv_of("ip", "address", "replace", NULL);
        vo_strv_pushf(&v, "%s/%u", vo_ipv4_format(st->addr, a), st->prefix);
        vo_strv_push(&v, vo_strdup("broadcast"));
        vo_strv_push(&v, vo_strdup(vo_ipv4_format(st->broadcast, b)));
        vo_strv_push(&v, vo_strdup("dev"));
        vo_strv_push(&v, vo_strdup(st->dev));
        break;
    case VO_STEP_LINK_UP:
        v = strv_of("ip", "link", "set", "dev", st->dev, "up", NULL);
        break;
    case VO_STEP_SYSCTL:
        if (!st->key || !st->value)
            return -EINVAL;
        v = strv_of("sysctl", "-q", "-w", NULL);
        vo_strv_pushf(&v, "%s=%s", st->key, st->value);
        break;
    case VO_STEP_LINK_DEL:
        v = strv_of("ip", "link", "del", "dev", st->dev, NULL);
        break;
    case VO_STEP_DNSMASQ_START:
    case VO_STEP_DNSMASQ_STOP:
        return -EOPNOTSUPP;
    default:
        return -EINVAL;
    }
    *ret_argv = v;
    return 0;
}

static int write_nft_file(const VoNetStep *st, const char *what, char **ret_error)
{
    _cleanup_free_ char *dir = vo_strdup(st->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        int r = vo_mkdir_p(dir, 0755);
        if (r < 0)
            return vo_error_set(ret_error, r, "%s: cannot create directory %s: %s", what, dir,
                        strerror(-r));
    }
    const char *text = st->text ? st->text : "";
    int r = vo_write_file_atomic(st->path, text, strlen(text));
    if (r < 0)
        return vo_error_set(ret_error, r, "%s: cannot write %s: %s", what, st->path, strerror(-r));
    return 0;
}

static int run_step(const VoNetStep *st, VoDnsmasqFn dnsmasq, void *userdata, char **ret_error)
{
    _cleanup_free_ char *what = vo_net_step_render(st);
    if (!what)
        what = vo_strdup("(unknown step)");
    if (st->kind == VO_STEP_DNSMASQ_START || st->kind == VO_STEP_DNSMASQ_STOP) {
        int r = dnsmasq ? dnsmasq(st, userdata) : -EOPNOTSUPP;
        if (r < 0)
            return vo_error_set(ret_error, r, "`%s` failed: %s", what, strerror(-r));
        return 0;
    }
    if (st->kind == VO_STEP_NFT && st->path) {
        int r = write_nft_file(st, what, ret_error);
        if (r < 0)
            return r;
    }
    _cleanup_strv_ char **argv = NULL;
    int r = vo_net_step_argv(st, &argv);
    if (r < 0)
        return vo_error_set(ret_error, r, "`%s`: malformed step: %s", what, strerror(-r));
    _cleanup_free_ char *out = NULL;
    r = vo_spawn_wait(argv, VO_NET_STEP_TIMEOUT_MS, &out);
    if (r == -EIO && st->kind == VO_STEP_FDB_APPEND && out && strstr(out, "File exists"))
        return 0; /* the remote is there already */
    if (r == -EIO && (st->kind == VO_STEP_FDB_DEL || st->kind == VO_STEP_FDB_MAC_DEL) && out &&
        strstr(out, "No such file"))
        return 0; /* gone already */
    if (r < 0) {
        _cleanup_free_ char *line = one_line(out);
        if (r == -ETIMEDOUT)
            return vo_error_set(ret_error, r, "`%s` did not finish within %d s%s%s", what,
                        VO_NET_STEP_TIMEOUT_MS / 1000, *line ? ": " : "", line);
        return vo_error_set(ret_error, r, "`%s` failed: %s", what, *line ? line : strerror(-r));
    }
    return 0;
}

int vo_net_plan_execute(const VoNetPlan *p, VoDnsmasqFn dnsmasq, void *userdata,
                        bool stop_on_error, char **ret_error)
{
    int first = 0;
    for (size_t i = 0; p && i < p->n_steps; i++) {
        _cleanup_free_ char *err = NULL;
        int r = run_step(&p->steps[i], dnsmasq, userdata, &err);
        if (r >= 0)
            continue;
        if (first == 0) {
            first = r;
            if (ret_error)
                *ret_error = TAKE_PTR(err);
        } else if (err) {
            log_warn("network step also failed: %s", err);
        }
        if (stop_on_error)
            break;
    }
    return first;
}

/* ---- taps ---- */

/* Attaching and raising the tap are ioctls on the fd's lifetime rather
 * than `ip link set dev NAME master BR up`: no fork per NIC, the errno
 * comes back directly, and nothing depends on iproute2's output. */
int vo_tap_open(const char *name, const char *bridge, int *ret_fd, char **ret_error)
{
    if (!name || !vo_ifname_valid(name))
        return vo_error_set(ret_error, -EINVAL, "invalid tap name '%s'", name ? name : "");
    if (!bridge || !vo_ifname_valid(bridge))
        return vo_error_set(ret_error, -EINVAL, "invalid bridge name '%s'", bridge ? bridge : "");
    if (if_nametoindex(name) > 0)
        return vo_error_set(ret_error, -EEXIST, "tap %s: an interface with that name already exists",
                    name);
    if (if_nametoindex(bridge) == 0)
        return vo_error_set(ret_error, -ENODEV, "tap %s: bridge %s does not exist", name, bridge);

    _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "tap %s: cannot open /dev/net/tun: %m", name);
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    /* IFF_TUN_EXCL: never attach to a tap someone else made persistent. */
    ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL); /* 0x8000: a short */
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int r = -errno;
        if (r == -EBUSY || if_nametoindex(name) > 0)
            return vo_error_set(ret_error, -EEXIST,
                        "tap %s: an interface with that name already exists", name);
        return vo_error_set(ret_error, r, "tap %s: cannot create it (TUNSETIFF): %s", name,
                    strerror(-r));
    }
    unsigned idx = if_nametoindex(name);
    if (idx == 0)
        return vo_error_set(ret_error, -ENODEV, "tap %s: vanished right after it was made", name);

    _cleanup_close_ int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return vo_error_set(ret_error, -errno, "tap %s: cannot open a socket for ioctls: %m", name);
    struct ifreq br = { 0 };
    snprintf(br.ifr_name, sizeof(br.ifr_name), "%s", bridge);
    br.ifr_ifindex = (int)idx;
    if (ioctl(sock, SIOCBRADDIF, &br) < 0) {
        int r = -errno;
        return vo_error_set(ret_error, r, "tap %s: cannot attach it to bridge %s: %s", name, bridge,
                    r == -EOPNOTSUPP || r == -EINVAL ? "not a bridge" : strerror(-r));
    }
    struct ifreq fl = { 0 };
    snprintf(fl.ifr_name, sizeof(fl.ifr_name), "%s", name);
    if (ioctl(sock, SIOCGIFFLAGS, &fl) < 0)
        return vo_error_set(ret_error, -errno, "tap %s: cannot read its flags: %m", name);
    fl.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &fl) < 0)
        return vo_error_set(ret_error, -errno, "tap %s: cannot bring it up: %m", name);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* ---- leases ---- */

static bool parse_mac(const char *s, char ret[18])
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        char c = s[i];
        if (i % 3 == 2) {
            if (c != ':')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return false;
        }
        ret[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    ret[17] = 0;
    return true;
}

static bool parse_expiry(const char *s, int64_t *ret)
{
    if (!*s || strlen(s) > 18)
        return false;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    *ret = v;
    return true;
}

/* One line; false when malformed. */
static bool parse_lease(char *line, VoLease *ret)
{
    char *save = NULL, *f[5] = { 0 };
    int n = 0;
    for (char *t = strtok_r(line, " \t\r", &save); t && n < 5; t = strtok_r(NULL, " \t\r", &save))
        f[n++] = t;
    if (n < 4)
        return false;
    VoLease l = { 0 };
    uint32_t addr;
    if (!parse_expiry(f[0], &l.expires) || !parse_mac(f[1], l.mac) ||
        vo_ipv4_parse(f[2], &addr, NULL) < 0)
        return false;
    vo_ipv4_format(addr, l.ip);
    if (strcmp(f[3], "*") != 0)
        l.hostname = vo_strdup(f[3]);
    *ret = l;
    return true;
}

int vo_leases_parse(const char *text, VoLease **ret, size_t *ret_n)
{
    VoLease *v = NULL;
    size_t n = 0;
    for (const char *line = text ? text : ""; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        _cleanup_free_ char *copy = vo_malloc0(len + 1);
        memcpy(copy, line, len);
        VoLease l;
        if (parse_lease(copy, &l)) {
            VoLease *nv = realloc(v, (n + 1) * sizeof(*nv));
            if (!nv)
                abort();
            v = nv;
            v[n++] = l;
        }
        line += len + (nl ? 1 : 0);
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

void vo_leases_free(VoLease *l, size_t n)
{
    for (size_t i = 0; l && i < n; i++)
        free(l[i].hostname);
    free(l);
}

/* Several leases for one MAC (an old one not yet cleaned up): the one that
 * lasts longest wins, 0 (infinite) above all. */
const VoLease *vo_leases_find_mac(const VoLease *l, size_t n, const char *mac)
{
    const VoLease *best = NULL;
    for (size_t i = 0; mac && i < n; i++) {
        if (strcasecmp(l[i].mac, mac) != 0)
            continue;
        if (!best || l[i].expires == 0 ||
            (best->expires != 0 && l[i].expires > best->expires))
            best = &l[i];
    }
    return best;
}

int vo_net_fdb_macs(const char *dev, VoFdbEntry **ret, size_t *ret_n, char **ret_error)
{
    char *argv[] = { "bridge", "-j", "fdb", "show", "dev", (char *)dev, NULL };
    _cleanup_free_ char *out = NULL;
    int r = vo_net_run_listing(argv, &out, ret_error);
    if (r < 0)
        return r;
    r = vo_net_fdb_parse_macs(out, ret, ret_n);
    if (r < 0)
        return vo_error_set(ret_error, r, "`bridge -j fdb show dev %s` printed no JSON list", dev);
    return 0;
}

int vo_net_fdb_remotes(const char *dev, uint32_t **ret, size_t *ret_n, char **ret_error)
{
    char *argv[] = { "bridge", "-j", "fdb", "show", "dev", (char *)dev, NULL };
    _cleanup_free_ char *out = NULL;
    int r = vo_net_run_listing(argv, &out, ret_error);
    if (r < 0)
        return r;
    r = vo_net_fdb_parse_remotes(out, ret, ret_n);
    if (r < 0)
        return vo_error_set(ret_error, r, "`bridge -j fdb show dev %s` printed no JSON list", dev);
    return 0;
}
