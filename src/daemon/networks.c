/* networks.c: the network registry, plumbing and dnsmasq supervision (see
 * networks.h). Locking: d->networks_lock guards the list and each network's
 * fields, held only briefly; plans run outside it with the network marked
 * busy. dnsmasq processes are watched on the event loop (pidfd). A NIC being
 * added claims its network (attaching) and a delete marks it (deleting)
 * before either looks at the VMs, so one of the two is refused. */
#include "daemon/networks.h"
#include "daemon/networks-internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "conf/names.h"
#include "network/cidr.h"
#include "network/dhcp-release.h"
#include "network/net-exec.h"
#include "network/net-plan.h"
#include "state/relations.h"
#include "util/spawn.h"
#include "util/threads.h"
#include "util/util.h"
#include "vireo/errors.h"

#define DNSMASQ_READY_TIMEOUT_MS 10000

static void network_free(VoNetwork *n)
{
    vo_net_spec_free(n->spec);
    free(n->dir);
    free(n->error);
    vo_strv_free(n->claimed_macs);
    free(n);
}

/* Caller holds networks_lock. */
static VoNetwork *network_find(VoDaemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_networks; i++)
        if (!strcmp(d->networks[i]->spec->name, name))
            return d->networks[i];
    return NULL;
}

VoNetwork *vo_network_find_locked(VoDaemon *d, const char *name)
{
    return network_find(d, name);
}

bool vo_network_exists(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->networks_lock);
    bool found = network_find(d, name) != NULL;
    pthread_mutex_unlock(&d->networks_lock);
    return found;
}

int vo_network_gone_here(VoDaemon *d, const char *name)
{
    if (vo_network_exists(d, name))
        return 0;
    _cleanup_free_ char *key = vo_asprintf("networks/%s", name), *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, key, &text, &rev);
    return r == -ENOENT ? 1 : r < 0 ? r : 0;
}

bool vo_network_is_cluster(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    bool cluster = n && n->spec->cluster;
    pthread_mutex_unlock(&d->networks_lock);
    return cluster;
}

static int save_network(VoDaemon *d, const VoNetSpec *s, int64_t expected, int64_t *ret_rev)
{
    json_t *doc = vo_net_spec_to_json(s);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf("networks/%s", s->name);
    return vo_store_put(d->store, key, text, expected, ret_rev);
}

/* ---- dnsmasq ------------------------------------------------------------- */

static void on_dnsmasq_exit(int fd, uint32_t events, void *userdata);

/* ---- waiting for a new dnsmasq ------------------------------------------- */

/* dnsmasq writes its pidfile once it handles signals; until then a SIGHUP
 * (vo_networks_refresh_hosts) would kill it. A new dnsmasq is "starting"
 * until then, and a hosts refresh meanwhile is sent once it is ready. The
 * wait is a thread's own: never the loop's (which notices VM exits) nor
 * under networks_lock (which every network reader needs). */
typedef struct {
    VoDaemon *d;
    char *name, *pidfile;
    pid_t pid;
} ReadyWait;

/* Waiter threads not done yet; teardown waits for them (bounded). */
static VoThreadCount ready_waits;

/* Caller holds networks_lock: n's dnsmasq is still the one w waits for. */
static VoNetwork *waited_network(ReadyWait *w)
{
    VoNetwork *n = network_find(w->d, w->name);
    return n && n->dnsmasq_starting && n->dnsmasq_pid == w->pid && n->dnsmasq_pidfd >= 0 ? n
                                                                                         : NULL;
}

static void *wait_dnsmasq_ready(void *userdata)
{
    ReadyWait *w = userdata;
    bool ready = false;
    for (int64_t deadline = vo_now_ms() + DNSMASQ_READY_TIMEOUT_MS; vo_now_ms() < deadline;) {
        _cleanup_free_ char *text = NULL;
        if (vo_read_file(w->pidfile, 64, &text, NULL) >= 0 && atoi(text) == (int)w->pid) {
            ready = true;
            break;
        }
        pthread_mutex_lock(&w->d->networks_lock);
        bool gone = !waited_network(w); /* exited, replaced or deleted */
        pthread_mutex_unlock(&w->d->networks_lock);
        if (gone)
            break;
        poll(NULL, 0, 10);
    }
    pthread_mutex_lock(&w->d->networks_lock);
    VoNetwork *n = waited_network(w);
    if (n) {
        if (!ready)
            log_warn("network %s: dnsmasq (pid %d) wrote no pidfile within %d s", w->name,
                     (int)w->pid, DNSMASQ_READY_TIMEOUT_MS / 1000);
        n->dnsmasq_starting = false;
        if (n->hup_pending)
            (void)syscall(SYS_pidfd_send_signal, n->dnsmasq_pidfd, SIGHUP, NULL, 0);
        n->hup_pending = false;
    }
    pthread_mutex_unlock(&w->d->networks_lock);
    free(w->name);
    free(w->pidfile);
    free(w);
    vo_thread_done(&ready_waits);
    return NULL;
}

/* Caller holds networks_lock. */
static void wait_ready_later(VoNetwork *n)
{
    ReadyWait *w = vo_malloc0(sizeof(*w));
    *w = (ReadyWait){ .d = n->d, .name = vo_strdup(n->spec->name),
                      .pidfile = vo_asprintf("%s/dnsmasq.pid", n->dir), .pid = n->dnsmasq_pid };
    n->dnsmasq_starting = true;
    n->hup_pending = false;
    int r = vo_thread_spawn_counted(&ready_waits, wait_dnsmasq_ready, w);
    if (r < 0) { /* no thread: treat it as ready, as after a timeout */
        log_warn("network %s: cannot start a thread (%s)", n->spec->name, strerror(-r));
        n->dnsmasq_starting = false;
        free(w->name);
        free(w->pidfile);
        free(w);
    }
}

/* Caller holds networks_lock (it is fork and exec, not a wait). */
static int dnsmasq_spawn(VoNetwork *n, const char *conf_path)
{
    _cleanup_free_ char *log = vo_asprintf("%s/dnsmasq.log", n->dir);
    _cleanup_free_ char *conf_arg = vo_asprintf("--conf-file=%s", conf_path);
    /* As root: vireod's run dir is not open to "nobody", and dnsmasq re-reads
     * the hosts file there on every SIGHUP. */
    char *argv[] = { "dnsmasq", "--keep-in-foreground", "--user=root", conf_arg, NULL };
    int r = vo_spawn_detached(argv, log, NULL, 0, &n->dnsmasq_pid, &n->dnsmasq_pidfd);
    if (r < 0)
        return r;
    wait_ready_later(n);
    log_info("network %s: dnsmasq started (pid %d)", n->spec->name, (int)n->dnsmasq_pid);
    return 0;
}

static void watch_dnsmasq(void *userdata)
{
    VoNetwork *n = userdata;
    if (n->dnsmasq_pidfd >= 0 &&
        vo_loop_add_fd(n->d->loop, n->dnsmasq_pidfd, EPOLLIN, on_dnsmasq_exit, n) < 0)
        log_warn("network %s: cannot watch dnsmasq", n->spec->name);
}

/* Adopts a dnsmasq left running by an earlier vireod (pidfile + its config
 * on the command line), so restarts never start a second one. */
static bool adopt_dnsmasq(VoNetwork *n, const char *conf_path)
{
    _cleanup_free_ char *pidfile = vo_asprintf("%s/dnsmasq.pid", n->dir);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(pidfile, 64, &text, NULL) < 0)
        return false;
    pid_t pid = (pid_t)atoi(text);
    _cleanup_free_ char *cmdline_path = vo_asprintf("/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *cmdline = NULL;
    size_t len = 0;
    if (pid <= 0 || vo_read_file(cmdline_path, 1 << 16, &cmdline, &len) < 0)
        return false;
    bool ours = false;
    for (size_t off = 0; off < len; off += strlen(cmdline + off) + 1)
        if (!strncmp(cmdline + off, "--conf-file=", 12) && !strcmp(cmdline + off + 12, conf_path))
            ours = true;
    if (!ours)
        return false;
    int pidfd = vo_pidfd_open(pid);
    if (pidfd < 0)
        return false;
    n->dnsmasq_pid = pid;
    n->dnsmasq_pidfd = pidfd;
    log_info("network %s: dnsmasq re-adopted (pid %d)", n->spec->name, (int)pid);
    return true;
}

static void on_dnsmasq_exit(int fd, uint32_t events, void *userdata)
{
    VoNetwork *n = userdata;
    vo_loop_remove_fd(n->d->loop, fd, n);
    siginfo_t si;
    (void)waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
    close(fd);
    pthread_mutex_lock(&n->d->networks_lock);
    n->dnsmasq_pidfd = -1;
    bool restart = !n->stopping;
    int64_t now = vo_now_ms();
    unsigned slot = n->n_restarts++ % DNSMASQ_RESTARTS_PER_MINUTE;
    bool too_often = n->n_restarts > DNSMASQ_RESTARTS_PER_MINUTE &&
                     now - n->restart_times[slot] < 60000;
    n->restart_times[slot] = now;
    _cleanup_free_ char *conf = vo_asprintf("%s/dnsmasq.conf", n->dir);
    if (restart && too_often) {
        free(n->error);
        n->error = vo_asprintf("dnsmasq keeps exiting (see %s/dnsmasq.log)", n->dir);
        log_error("network %s: %s; not restarting it", n->spec->name, n->error);
    } else if (restart) {
        log_warn("network %s: dnsmasq exited; restarting it", n->spec->name);
        if (dnsmasq_spawn(n, conf) >= 0)
            watch_dnsmasq(n);
    }
    pthread_mutex_unlock(&n->d->networks_lock);
}

static void stop_dnsmasq(VoNetwork *n)
{
    n->stopping = true;
    if (n->dnsmasq_pidfd < 0)
        return;
    (void)syscall(SYS_pidfd_send_signal, n->dnsmasq_pidfd, SIGTERM, NULL, 0);
}

/* The plan's dnsmasq steps: start (or adopt) and stop. */
static int dnsmasq_step(const VoNetStep *st, void *userdata)
{
    VoNetwork *n = userdata;
    if (st->kind == VO_STEP_DNSMASQ_STOP) {
        stop_dnsmasq(n);
        return 0;
    }
    _cleanup_free_ char *old_pidfile = vo_asprintf("%s/dnsmasq.pid", n->dir);
    int r = vo_write_file_atomic(st->path, st->text, strlen(st->text));
    _cleanup_free_ char *hosts = vo_asprintf("%s/hosts", n->dir);
    if (r >= 0 && access(hosts, F_OK) < 0)
        r = vo_write_file_atomic(hosts, "", 0);
    if (r >= 0)
        (void)chmod(hosts, 0644);
    if (r < 0)
        return r;
    if (n->dnsmasq_pidfd >= 0 || adopt_dnsmasq(n, st->path))
        return 0;
    (void)unlink(old_pidfile);
    pthread_mutex_lock(&n->d->networks_lock);
    r = dnsmasq_spawn(n, st->path);
    pthread_mutex_unlock(&n->d->networks_lock);
    return r;
}

/* ---- plumbing ------------------------------------------------------------- */

/* Runs n's setup (up) or teardown plan. */
static int apply(VoNetwork *n, bool up, char **ret_error)
{
    VoHostCaps caps;
    VoHostLink *links = NULL;
    size_t n_links = 0;
    int r = vo_net_probe(&caps, &links, &n_links, ret_error);
    if (r < 0)
        return r;
    r = vo_mkdir_p(n->dir, 0755);
    VoNetPlanInput in = { .caps = caps, .links = links, .n_links = n_links, .dir = n->dir };
    if (n->spec->cluster && n->spec->vni && up)
        vo_net_cluster_plan_input(n->d, &in.cluster);
    _cleanup_net_plan_ VoNetPlan *plan = NULL;
    if (r >= 0)
        r = up ? vo_net_plan_setup(n->spec, &in, &plan, ret_error)
               : vo_net_plan_teardown(n->spec, &in, &plan);
    if (r >= 0)
        r = vo_net_plan_execute(plan, dnsmasq_step, n, up, ret_error);
    vo_host_links_free(links, n_links);
    free((uint32_t *)in.cluster.peers);
    return r;
}

int vo_network_apply(VoNetwork *n, bool up, char **ret_error)
{
    return apply(n, up, ret_error);
}

/* Brings a loaded or new network up; keeps the reason when it cannot. */
static int bring_up(VoNetwork *n)
{
    _cleanup_free_ char *error = NULL;
    int r = apply(n, true, &error);
    pthread_mutex_lock(&n->d->networks_lock);
    free(n->error);
    n->error = r < 0 ? vo_strdup(error ? error : strerror(-r)) : NULL;
    pthread_mutex_unlock(&n->d->networks_lock);
    if (r < 0)
        log_error("network %s: cannot bring it up: %s", n->spec->name, n->error);
    else
        vo_loop_call(n->d->loop, watch_dnsmasq, n);
    return r;
}

static VoNetwork *network_new(VoDaemon *d, VoNetSpec *spec)
{
    VoNetwork *n = vo_malloc0(sizeof(*n));
    n->d = d;
    n->spec = spec;
    n->dir = vo_asprintf("%s/networks/%s", d->run_dir, spec->name);
    n->dnsmasq_pidfd = -1;
    return n;
}

static void registry_add(VoDaemon *d, VoNetwork *n)
{
    d->networks = realloc(d->networks, sizeof(VoNetwork *) * (d->n_networks + 1));
    if (!d->networks)
        abort();
    d->networks[d->n_networks++] = n;
}

/* Caller holds networks_lock. Forgets n (not freed). */
static void registry_remove_locked(VoDaemon *d, VoNetwork *n)
{
    for (size_t i = 0; i < d->n_networks; i++)
        if (d->networks[i] == n)
            d->networks[i] = d->networks[--d->n_networks];
}

static void registry_remove(VoDaemon *d, VoNetwork *n)
{
    pthread_mutex_lock(&d->networks_lock);
    registry_remove_locked(d, n);
    pthread_mutex_unlock(&d->networks_lock);
}

int vo_net_write_if_changed(const char *path, const char *text)
{
    _cleanup_free_ char *old = NULL;
    size_t len = 0;
    if (vo_read_file(path, 16 << 20, &old, &len) >= 0 && len == strlen(text) &&
        !memcmp(old, text, len))
        return 0;
    int r = vo_write_file_atomic(path, text, strlen(text));
    if (r < 0)
        return r;
    (void)chmod(path, 0644);
    return 1;
}

/* The host's IPv4 routes of every table (ip -j route): each destination
 * but the default routes, with its device (a bare address, a host route or
 * one of the host's own addresses in the local table, is a /32). NULL
 * (with a warning) when they cannot be read. */
static json_t *host_routes(void)
{
    char *argv[] = { "ip", "-j", "-4", "route", "show", "table", "all", NULL };
    _cleanup_free_ char *output = NULL, *error = NULL;
    if (vo_net_run_listing(argv, &output, &error) < 0) {
        log_warn("host routes unknown: %s", error);
        return NULL;
    }
    return json_loads(output, 0, NULL);
}

static bool route_dst(json_t *route, VoCidr *ret)
{
    const char *dst = json_string_value(json_object_get(route, "dst"));
    if (!dst || !strcmp(dst, "default"))
        return false;
    if (strchr(dst, '/'))
        return vo_cidr_parse(dst, ret, NULL) >= 0;
    uint32_t addr;
    if (vo_ipv4_parse(dst, &addr, NULL) < 0)
        return false;
    *ret = (VoCidr){ .addr = addr, .prefix = 32 };
    return true;
}

/* Subnets in use: other networks' and the host's routes. */
static size_t used_subnets(VoDaemon *d, VoCidr *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_networks && k < max; i++)
        if (d->networks[i]->spec->has_subnet)
            out[k++] = d->networks[i]->spec->subnet;
    json_t *routes = host_routes();
    size_t i;
    json_t *route;
    json_array_foreach(routes, i, route) {
        VoCidr c;
        if (k < max && route_dst(route, &c))
            out[k++] = c;
    }
    json_decref(routes);
    return k;
}

/* A nat or isolated network's subnet given by the user must not overlap
 * the host's own addresses or routes (its gateway would take them over on
 * the host): -EEXIST naming the route. Bridge, vlan and vxlan networks
 * join a segment the host may well be on, and are not checked. Caller
 * holds networks_lock (other networks' subnets: vo_net_spec_check_conflicts). */
static int check_host_routes(const VoNetSpec *s, char **ret_error)
{
    if (!s->has_subnet || (s->type != VO_NET_NAT && s->type != VO_NET_ISOLATED))
        return 0;
    json_t *routes = host_routes();
    size_t i;
    json_t *route;
    int r = 0;
    json_array_foreach(routes, i, route) {
        VoCidr c;
        const char *type = json_string_value(json_object_get(route, "type"));
        if (!route_dst(route, &c) || !vo_cidr_overlap(s->subnet, c) ||
            (type && !strcmp(type, "broadcast"))) /* implied by its subnet's route */
            continue;
        char a[VO_CIDR_STRLEN], b[VO_CIDR_STRLEN];
        const char *dev = json_string_value(json_object_get(route, "dev"));
        bool own = type && !strcmp(type, "local") && c.prefix == 32;
        r = vo_error_set(ret_error, -EEXIST, "subnet: %s overlaps the host's %s %s%s%s: "
                         "choose a subnet the host does not use (or leave it out: vireo "
                         "picks a free one)", vo_cidr_format(s->subnet, a),
                         own ? "address" : "route", own ? vo_ipv4_format(c.addr, b)
                                                        : vo_cidr_format(c, b),
                         dev ? " on " : "", dev ? dev : "");
        break;
    }
    json_decref(routes);
    return r;
}

/* Caller holds networks_lock. Gives a nat/isolated spec without a subnet one. */
static int pick_subnet(VoDaemon *d, VoNetSpec *s, char **ret_error)
{
    if (s->has_subnet || (s->type != VO_NET_NAT && s->type != VO_NET_ISOLATED))
        return 0;
    VoCidr used[512], pool;
    size_t n = used_subnets(d, used, ELEMENTSOF(used));
    int r = vo_cidr_parse_subnet("10.100.0.0/16", &pool, NULL);
    if (r >= 0)
        r = vo_cidr_pick_subnet(pool, used, n, &s->subnet);
    if (r < 0) {
        *ret_error = vo_strdup("no free /24 left in 10.100.0.0/16: give --subnet");
        return r;
    }
    s->has_subnet = true;
    return 0;
}

/* ---- loading ----------------------------------------------------------------- */

static int load_one(const char *key, const char *value, int64_t rev, void *userdata)
{
    VoDaemon *d = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    VoNetSpec *spec = NULL;
    _cleanup_free_ char *error = NULL;
    if (!doc || vo_net_spec_from_json(doc, &spec, &error) < 0) {
        log_error("store: skipping unreadable %s: %s", key, error ? error : "bad document");
        json_decref(doc);
        return 0;
    }
    json_decref(doc);
    VoNetwork *n = network_new(d, spec);
    n->rev = rev;
    registry_add(d, n);
    return 0;
}

static int create_network(VoDaemon *d, json_t *body, bool local_only, json_t **ret,
                          char **ret_error);

static int create_default(VoDaemon *d)
{
    json_t *body = json_pack("{s:s, s:s}", "name", VO_DEFAULT_NETWORK, "type", "nat");
    json_t *created = NULL;
    _cleanup_free_ char *error = NULL;
    int r = create_network(d, body, true, &created, &error); /* each host's own */
    json_decref(body);
    json_decref(created);
    if (r < 0)
        log_error("cannot create the default network: %s", error ? error : strerror(-r));
    return r;
}

int vo_networks_load(VoDaemon *d)
{
    pthread_mutex_lock(&d->networks_lock);
    int r = vo_store_list(d->store, "networks/", load_one, d);
    bool have_default = network_find(d, VO_DEFAULT_NETWORK) != NULL;
    size_t n = d->n_networks;
    VoNetwork **list = vo_malloc0(sizeof(VoNetwork *) * (n + 1));
    if (n) /* d->networks is NULL before the first network */
        memcpy(list, d->networks, sizeof(VoNetwork *) * n);
    pthread_mutex_unlock(&d->networks_lock);
    if (r < 0) {
        free(list);
        return r;
    }
    for (size_t i = 0; i < n; i++)
        (void)bring_up(list[i]);
    free(list);
    /* Made once, on the first start; a user who deletes it keeps it deleted. */
    _cleanup_free_ char *made = NULL;
    bool was_made = vo_store_get(d->store, "settings/default-network", &made, NULL) >= 0;
    if (!was_made && (have_default || create_default(d) >= 0))
        (void)vo_store_put(d->store, "settings/default-network", "{\"made\":true}", VO_REV_NEW,
                           NULL);
    vo_networks_refresh_hosts(d);
    if (vo_net_cluster_mode(d))
        vo_net_cluster_start(d); /* follows the cluster's networks, hosts and IPAM */
    return 0;
}

void vo_networks_release_all(VoDaemon *d)
{
    vo_net_cluster_stop(d);
    /* The waiters end within DNSMASQ_READY_TIMEOUT_MS; bounded all the same. */
    vo_threads_wait(&ready_waits, 12000);
    pthread_mutex_lock(&d->networks_lock);
    for (size_t i = 0; i < d->n_networks; i++) {
        if (d->networks[i]->dnsmasq_pidfd >= 0)
            close(d->networks[i]->dnsmasq_pidfd);
        network_free(d->networks[i]);
    }
    free(d->networks);
    d->networks = NULL;
    d->n_networks = 0;
    pthread_mutex_unlock(&d->networks_lock);
}

/* ---- API ------------------------------------------------------------------- */

/* Caller holds networks_lock. */
static json_t *network_to_json(VoDaemon *d, VoNetwork *n)
{
    json_t *o = vo_net_spec_to_json(n->spec);
    json_object_set_new(o, "state", json_string(n->error      ? "error"
                                                : n->creating ? "creating"
                                                              : "active"));
    json_object_set_new(o, "error", n->error ? json_string(n->error) : json_null());
    json_object_set_new(o, "dnsmasq_pid",
                        n->dnsmasq_pidfd >= 0 ? json_integer(n->dnsmasq_pid) : json_null());
    vo_net_addresses_to_json(n->spec, o);
    json_t *leases = json_array();
    _cleanup_free_ char *path = vo_asprintf("%s/leases", n->dir);
    _cleanup_free_ char *text = NULL;
    VoLease *l = NULL;
    size_t nl = 0;
    if (vo_read_file(path, 1 << 20, &text, NULL) >= 0 && vo_leases_parse(text, &l, &nl) >= 0) {
        for (size_t i = 0; i < nl; i++) {
            json_t *e = json_pack("{s:s, s:s, s:I}", "mac", l[i].mac, "ip", l[i].ip, "expires",
                                  (json_int_t)l[i].expires);
            json_object_set_new(e, "hostname",
                                l[i].hostname ? json_string(l[i].hostname) : json_null());
            json_array_append_new(leases, e);
        }
        vo_leases_free(l, nl);
    }
    json_object_set_new(o, "leases", leases);
    return o;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(VoNetwork *const *)a)->spec->name, (*(VoNetwork *const *)b)->spec->name);
}

/* A cluster nat/isolated network's addresses (IPAM), read from the store
 * outside networks_lock. */
static void add_addresses(VoDaemon *d, json_t *o)
{
    if (json_is_true(json_object_get(o, "cluster")) && json_object_get(o, "subnet"))
        json_object_set_new(o, "addresses",
                            vo_net_cluster_addresses(d, json_string_value(
                                                            json_object_get(o, "name"))));
}

json_t *vo_networks_list_json(VoDaemon *d)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&d->networks_lock);
    if (d->n_networks)
        qsort(d->networks, d->n_networks, sizeof(VoNetwork *), by_name);
    for (size_t i = 0; i < d->n_networks; i++)
        json_array_append_new(arr, network_to_json(d, d->networks[i]));
    pthread_mutex_unlock(&d->networks_lock);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
        add_addresses(d, o);
    return arr;
}

json_t *vo_networks_usable_json(VoDaemon *d)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&d->networks_lock);
    if (d->n_networks)
        qsort(d->networks, d->n_networks, sizeof(VoNetwork *), by_name);
    for (size_t i = 0; i < d->n_networks; i++)
        if (!d->networks[i]->error && !d->networks[i]->creating)
            json_array_append_new(arr, json_string(d->networks[i]->spec->name));
    pthread_mutex_unlock(&d->networks_lock);
    return arr;
}

int vo_network_get_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    if (n)
        *ret = network_to_json(d, n);
    pthread_mutex_unlock(&d->networks_lock);
    if (!n) {
        *ret_error = vo_asprintf("network '%s' does not exist", name);
        return -ENOENT;
    }
    add_addresses(d, *ret);
    return 0;
}

/* In a cluster nat, isolated and bridge networks are the cluster's; the
 * cluster allocates their VNI. Standalone, none is. */
static int check_cluster_keys(VoDaemon *d, const VoNetSpec *spec, bool local_only,
                              char **ret_error)
{
    if (spec->cluster && (local_only || !vo_net_cluster_mode(d)))
        return vo_error_set(ret_error, -EINVAL, "cluster: this host is not in a cluster");
    if (spec->vni && spec->type != VO_NET_VXLAN)
        return vo_error_set(ret_error, -EINVAL, "vni: the cluster allocates the VNI of a %s "
                            "network: leave it out", vo_net_type_to_string(spec->type));
    return 0;
}

static bool goes_to_cluster(VoDaemon *d, const VoNetSpec *spec, bool local_only)
{
    return !local_only && vo_net_cluster_mode(d) &&
           (spec->type == VO_NET_NAT || spec->type == VO_NET_ISOLATED ||
            spec->type == VO_NET_BRIDGE);
}

static int create_network(VoDaemon *d, json_t *body, bool local_only, json_t **ret,
                          char **ret_error)
{
    VoNetSpec *spec = NULL;
    int r = vo_net_spec_from_json(body, &spec, ret_error);
    if (r < 0)
        return r;
    if (!strcmp(spec->name, "user")) {
        vo_net_spec_free(spec);
        *ret_error = vo_strdup("name: 'user' is reserved (QEMU user-mode networking)");
        return -EINVAL;
    }
    if ((r = check_cluster_keys(d, spec, local_only, ret_error)) < 0) {
        vo_net_spec_free(spec);
        return r;
    }
    bool cluster = goes_to_cluster(d, spec, local_only);
    uint32_t local_address;
    if (cluster && vo_ipv4_parse(d->host_address, &local_address, NULL) < 0) {
        vo_net_spec_free(spec);
        return vo_error_set(ret_error, -EINVAL, "cluster networks need an IPv4 cluster address "
                            "(this host's is %s)", d->host_address);
    }
    if (cluster) { /* validated with a placeholder VNI; the cluster gives the real one */
        spec->cluster = true;
        spec->vni = spec->type == VO_NET_BRIDGE ? 0 : 1;
    }
    /* Checked and registered as "creating" under the lock; the store (etcd:
     * another host, maybe no quorum) is written outside it. */
    pthread_mutex_lock(&d->networks_lock);
    if (network_find(d, spec->name)) {
        pthread_mutex_unlock(&d->networks_lock);
        *ret_error = vo_asprintf("a network named '%s' already exists", spec->name);
        vo_net_spec_free(spec);
        return -EEXIST;
    }
    bool subnet_given = spec->has_subnet;
    r = pick_subnet(d, spec, ret_error);
    if (r >= 0)
        r = vo_net_spec_validate(spec, ret_error);
    if (cluster)
        spec->vni = 0; /* not yet allocated: no VNI or VXLAN device to compare */
    if (r >= 0) {
        const VoNetSpec **others = vo_malloc0(sizeof(VoNetSpec *) * (d->n_networks + 1));
        for (size_t i = 0; i < d->n_networks; i++)
            others[i] = d->networks[i]->spec;
        r = vo_net_spec_check_conflicts(spec, others, d->n_networks, ret_error);
        free(others);
    }
    if (r >= 0 && subnet_given)
        r = check_host_routes(spec, ret_error);
    VoNetwork *n = NULL;
    if (r >= 0) {
        n = network_new(d, spec);
        n->creating = true;
        registry_add(d, n);
    }
    pthread_mutex_unlock(&d->networks_lock);
    if (r < 0) {
        vo_net_spec_free(spec);
        return r;
    }
    /* Published marked "creating" (no other host adopts it yet), on a copy:
     * n->spec is read by others under the lock. */
    int64_t cluster_rev = 0;
    if (cluster) {
        VoNetSpec *pub = vo_net_spec_copy(n->spec);
        r = vo_net_cluster_publish(d, pub, &cluster_rev, ret_error);
        if (r >= 0) {
            pthread_mutex_lock(&d->networks_lock);
            n->spec->vni = pub->vni;
            pthread_mutex_unlock(&d->networks_lock);
        }
        vo_net_spec_free(pub);
    }
    int64_t rev = 0;
    bool saved = false;
    if (r >= 0) {
        r = save_network(d, n->spec, VO_REV_NEW, &rev);
        if (r < 0 && !*ret_error)
            *ret_error = vo_asprintf("cannot save network '%s': %s", n->spec->name,
                                     strerror(-r));
        saved = r >= 0;
    }
    if (r >= 0) {
        pthread_mutex_lock(&d->networks_lock);
        n->rev = rev;
        pthread_mutex_unlock(&d->networks_lock);
    }
    /* Bring it up; when that fails undo everything, so nothing stays half-made. */
    _cleanup_free_ char *error = NULL;
    bool applied = false;
    if (r >= 0) {
        applied = true;
        r = apply(n, true, &error);
        if (r == -ENODEV || r == -ENOTTY || r == -EEXIST)
            r = -EINVAL; /* a bridge or uplink that is missing or wrong is bad input */
        if (r < 0)
            *ret_error = vo_asprintf("cannot create network '%s': %s", n->spec->name,
                                     error ? error : strerror(-r));
    }
    if (r >= 0 && cluster) /* now other hosts make their copies */
        r = vo_net_cluster_publish_final(d, n->spec, cluster_rev, ret_error);
    if (r < 0) {
        _cleanup_free_ char *ignored = NULL;
        if (applied) {
            n->stopping = true;
            (void)apply(n, false, &ignored);
            (void)vo_rm_rf(n->dir);
        }
        _cleanup_free_ char *key = vo_asprintf("networks/%s", n->spec->name);
        if (saved)
            (void)vo_store_delete(d->store, key, rev);
        if (cluster_rev > 0)
            vo_net_cluster_unpublish(d, n->spec, cluster_rev);
        registry_remove(d, n);
        if (n->dnsmasq_pidfd >= 0)
            close(n->dnsmasq_pidfd);
        network_free(n);
        return r;
    }
    vo_loop_call(d->loop, watch_dnsmasq, n);
    log_info("network %s: created", n->spec->name);
    pthread_mutex_lock(&d->networks_lock);
    n->creating = false;
    *ret = network_to_json(d, n);
    pthread_mutex_unlock(&d->networks_lock);
    return 0;
}

int vo_network_create(VoDaemon *d, json_t *body, json_t **ret, char **ret_error)
{
    return create_network(d, body, false, ret, ret_error);
}

typedef struct {
    VoNetwork *n;
    pthread_mutex_t lock;
    pthread_cond_t done;
    bool finished;
} Unwatch;

/* Loop thread: stop watching dnsmasq before the network goes away. */
static void unwatch_on_loop(void *userdata)
{
    Unwatch *u = userdata;
    if (u->n->dnsmasq_pidfd >= 0) {
        vo_loop_remove_fd(u->n->d->loop, u->n->dnsmasq_pidfd, u->n);
        close(u->n->dnsmasq_pidfd);
        u->n->dnsmasq_pidfd = -1;
    }
    pthread_mutex_lock(&u->lock);
    u->finished = true;
    pthread_cond_signal(&u->done);
    pthread_mutex_unlock(&u->lock);
}

/* A teardown that failed leaves the network listed (with why) and its
 * document kept, so that deleting it again retries; never a success. */
static int keep_after_failed_teardown(VoDaemon *d, VoNetwork *n, int r, const char *error,
                                      char **ret_error)
{
    const char *name = n->spec->name;
    log_warn("network %s: teardown failed: %s", name, error ? error : strerror(-r));
    *ret_error = vo_asprintf("cannot take network '%s' down: %s; it is kept: delete it again "
                             "once the cause is fixed", name, error ? error : strerror(-r));
    pthread_mutex_lock(&d->networks_lock);
    free(n->error);
    n->error = vo_asprintf("delete failed: %s", error ? error : strerror(-r));
    n->deleting = false; /* still listed; a delete may retry (n->stopping stays: dnsmasq is
                          * not restarted) */
    pthread_mutex_unlock(&d->networks_lock);
    return -EIO;
}

int vo_network_claim(VoDaemon *d, const char *name, char **ret_error)
{
    if (!strcmp(name, "user"))
        return 0;
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    int r = 0;
    if (!n)
        r = vo_error_set(ret_error, -ENOENT, "network '%s' does not exist (see: vireo network "
                         "list)", name);
    else if (n->deleting)
        r = vo_error_set(ret_error, -EBUSY, "network '%s' is being deleted", name);
    else if (n->creating)
        r = vo_error_set(ret_error, -EBUSY, "network '%s' is still being created; try again "
                         "when it is done", name);
    else if (n->moving)
        r = vo_error_set(ret_error, -EBUSY, "network '%s' is moving to another project; try "
                         "again when it is done", name);
    else
        n->attaching++;
    pthread_mutex_unlock(&d->networks_lock);
    return r;
}

int vo_network_claim_move(VoDaemon *d, const char *name, char **ret_error)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    int r = 0;
    if (!n || n->deleting)
        r = vo_error_set(ret_error, -ENOENT, "network '%s' does not exist", name);
    else if (n->creating || n->moving || n->attaching)
        r = vo_error_set(ret_error, -EBUSY, "network '%s' is busy (a NIC being added, a create "
                         "or another move); try again when it is done", name);
    else
        n->moving = true;
    pthread_mutex_unlock(&d->networks_lock);
    return r;
}

void vo_network_release_move(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    if (n)
        n->moving = false;
    pthread_mutex_unlock(&d->networks_lock);
}

/* Caller holds networks_lock. */
static void unmark_mac(VoNetwork *n, const char *mac)
{
    for (size_t i = 0; n->claimed_macs && n->claimed_macs[i]; i++)
        if (!strcasecmp(n->claimed_macs[i], mac)) {
            free(n->claimed_macs[i]);
            size_t len = vo_strv_len(n->claimed_macs);
            n->claimed_macs[i] = n->claimed_macs[len - 1];
            n->claimed_macs[len - 1] = NULL;
            return;
        }
}

int vo_network_claim_nic(VoDaemon *d, const char *name, const char *vm_id, const char *vm_name,
                         const char *mac, char **ret_error)
{
    int r = vo_network_claim(d, name, ret_error);
    if (r < 0 || !strcmp(name, "user"))
        return r;
    /* Marked before the record exists: this host's refresh never takes a
     * record it sees for a NIC whose VM has not recorded it yet. */
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    VoNetSpec *spec = n && n->spec->cluster ? vo_net_spec_copy(n->spec) : NULL;
    if (spec)
        vo_strv_push(&n->claimed_macs, vo_strdup(mac));
    pthread_mutex_unlock(&d->networks_lock);
    if (!spec)
        return 0;
    r = vo_net_cluster_claim(d, spec, vm_id, vm_name, mac, ret_error);
    vo_net_spec_free(spec);
    if (r < 0)
        vo_network_release_nic(d, name, mac);
    return r;
}

void vo_network_release_nic(VoDaemon *d, const char *name, const char *mac)
{
    if (!strcmp(name, "user"))
        return;
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    if (n)
        unmark_mac(n, mac);
    pthread_mutex_unlock(&d->networks_lock);
    vo_network_release(d, name);
}

void vo_network_release(VoDaemon *d, const char *name)
{
    if (!strcmp(name, "user"))
        return;
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    if (n && n->attaching)
        n->attaching--;
    pthread_mutex_unlock(&d->networks_lock);
}

/* Stops dnsmasq, tears n down and forgets it (n is marked stopping). */
static int take_down(VoDaemon *d, VoNetwork *n, char **ret_error)
{
    Unwatch u = { .n = n, .lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };
    /* The dnsmasq stop step needs the pidfd: send SIGTERM first, then unwatch. */
    stop_dnsmasq(n);
    vo_loop_call(d->loop, unwatch_on_loop, &u);
    pthread_mutex_lock(&u.lock);
    while (!u.finished)
        pthread_cond_wait(&u.done, &u.lock);
    pthread_mutex_unlock(&u.lock);
    _cleanup_free_ char *error = NULL;
    int r = apply(n, false, &error);
    if (r < 0)
        return keep_after_failed_teardown(d, n, r, error, ret_error);
    (void)vo_rm_rf(n->dir);
    _cleanup_free_ char *key = vo_asprintf("networks/%s", n->spec->name);
    /* Unlisted before its document goes (whose delete is the event): a
     * client that reloads on the event no longer sees it. The store write
     * is outside the lock (an etcd without quorum takes seconds). */
    pthread_mutex_lock(&d->networks_lock);
    registry_remove_locked(d, n);
    pthread_mutex_unlock(&d->networks_lock);
    r = vo_store_delete(d->store, key, n->rev);
    if (r < 0 && r != -ENOENT)
        log_warn("network %s: torn down, but its document stays (%s): it is set up again "
                 "at vireod's next start; delete it again then", n->spec->name, strerror(-r));
    log_info("network %s: deleted", n->spec->name);
    network_free(n);
    return 0;
}

int vo_network_delete(VoDaemon *d, const char *name, int64_t expected, char **ret_error)
{
    /* Marked first (a NIC add that starts now is refused; one in progress
     * refuses this), then the VMs: a NIC added before is seen. */
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    int refused = 0;
    if (!n)
        refused = vo_error_set(ret_error, -ENOENT, "network '%s' does not exist", name);
    else if (expected > 0 && n->rev != expected)
        refused = vo_error_set(ret_error, -VO_EIFMATCH, "network '%s' changed: it is at revision "
                               "%lld, not %lld (If-Match); nothing was done: read it again", name,
                               (long long)n->rev, (long long)expected);
    else if (n->deleting)
        refused = vo_error_set(ret_error, -EBUSY, "network '%s' is already being deleted", name);
    else if (n->creating)
        refused = vo_error_set(ret_error, -EBUSY, "network '%s' is still being created", name);
    else if (n->attaching)
        refused = vo_error_set(ret_error, -EBUSY, "a NIC is being added to network '%s'; "
                               "try again when it is done", name);
    else
        n->deleting = true;
    pthread_mutex_unlock(&d->networks_lock);
    if (refused < 0)
        return refused;
    /* Who has a NIC on it: from the relation documents the VM service writes
     * with each VM (state/relations.h); a store that cannot be read keeps it. */
    VoRelationUser nic_user = { 0 };
    int used = vo_relations_network_user(d->store, name, &nic_user);
    _cleanup_free_ char *user = used > 0 ? TAKE_PTR(nic_user.name) : NULL;
    vo_relation_user_clear(&nic_user);
    if (used < 0) { /* kept; the store's error (no quorum: 503) */
        pthread_mutex_lock(&d->networks_lock);
        n->deleting = false;
        pthread_mutex_unlock(&d->networks_lock);
        return vo_error_set(ret_error, used, "cannot delete network '%s': cannot read which "
                            "VMs use it: %s", name, strerror(-used));
    }
    /* A cluster network: no NIC on any host, and none can be added from
     * now on (the cluster's document is marked deleting, then removed). */
    int cluster_r = 0;
    _cleanup_free_ char *cluster_error = NULL;
    if (!user && n->spec->cluster)
        cluster_r = vo_net_cluster_unpublish_checked(d, n->spec, &cluster_error);
    if (cluster_r < 0) {
        pthread_mutex_lock(&d->networks_lock);
        n->deleting = false;
        pthread_mutex_unlock(&d->networks_lock);
        *ret_error = TAKE_PTR(cluster_error);
        return cluster_r;
    }
    pthread_mutex_lock(&d->networks_lock);
    /* It stays listed (and its name taken) until it is gone: a failed
     * teardown keeps it, and no second network of that name can appear. */
    if (user)
        n->deleting = false;
    else
        n->stopping = true;
    pthread_mutex_unlock(&d->networks_lock);
    if (user) {
        *ret_error = vo_asprintf("network '%s' is used by VM '%s'; remove its NIC first", name,
                                 user);
        return -EBUSY;
    }
    return take_down(d, n, ret_error);
}

int vo_network_adopt(VoDaemon *d, VoNetSpec *spec, char **ret_error)
{
    /* Registered as "creating" under the lock; its document saved outside. */
    pthread_mutex_lock(&d->networks_lock);
    int r = 0;
    if (network_find(d, spec->name))
        r = vo_error_set(ret_error, -EEXIST, "a network named '%s' already exists on this host",
                         spec->name);
    if (r >= 0) {
        const VoNetSpec **others = vo_malloc0(sizeof(VoNetSpec *) * (d->n_networks + 1));
        for (size_t i = 0; i < d->n_networks; i++)
            others[i] = d->networks[i]->spec;
        r = vo_net_spec_check_conflicts(spec, others, d->n_networks, ret_error);
        free(others);
    }
    VoNetwork *n = NULL;
    if (r >= 0) {
        n = network_new(d, spec);
        n->creating = true;
        registry_add(d, n);
    }
    pthread_mutex_unlock(&d->networks_lock);
    if (r < 0) {
        vo_net_spec_free(spec);
        return r;
    }
    int64_t rev = 0;
    r = save_network(d, n->spec, VO_REV_NEW, &rev);
    if (r == -EEXIST) { /* left by an earlier run: this one is the cluster's now */
        int64_t old = 0;
        _cleanup_free_ char *key = vo_asprintf("networks/%s", n->spec->name), *text = NULL;
        r = vo_store_get(d->store, key, &text, &old);
        if (r >= 0)
            r = save_network(d, n->spec, old, &rev);
    }
    if (r < 0) {
        if (!*ret_error)
            *ret_error = vo_asprintf("cannot save network '%s': %s", n->spec->name,
                                     strerror(-r));
        registry_remove(d, n);
        network_free(n);
        return r;
    }
    pthread_mutex_lock(&d->networks_lock);
    n->rev = rev;
    pthread_mutex_unlock(&d->networks_lock);
    (void)bring_up(n); /* kept with its error when it cannot come up */
    pthread_mutex_lock(&d->networks_lock);
    n->creating = false;
    pthread_mutex_unlock(&d->networks_lock);
    log_info("network %s: the cluster's, made on this host", n->spec->name);
    return 0;
}

int vo_network_drop(VoDaemon *d, const char *name, char **ret_error)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    int r = 0;
    if (!n || !n->spec->cluster || n->deleting || n->creating)
        r = -ENOENT; /* gone, a delete here is at it, or a create (the next round sees it) */
    else if (n->attaching)
        r = vo_error_set(ret_error, -EBUSY, "network '%s' is busy", name);
    else
        n->deleting = true; /* no NIC added from now on */
    pthread_mutex_unlock(&d->networks_lock);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    /* A VM of this host with a NIC on it keeps it (state error) until the
     * NIC is removed: its bridge stays, the next round takes it down. */
    VoRelationUser nic_user = { 0 };
    int used = vo_relations_network_user(d->store, name, &nic_user);
    if (used != 0) {
        _cleanup_free_ char *why =
            used > 0 ? vo_asprintf("deleted in the cluster, but VM '%s' on this host still has "
                                   "a NIC on it: remove the NIC", nic_user.name)
                     : vo_asprintf("deleted in the cluster; kept until this host's VMs can be "
                                   "read: %s", strerror(-used));
        vo_relation_user_clear(&nic_user);
        pthread_mutex_lock(&d->networks_lock);
        n->deleting = false;
        bool said = n->error && !strcmp(n->error, why);
        if (!said) {
            free(n->error);
            n->error = vo_strdup(why);
        }
        pthread_mutex_unlock(&d->networks_lock);
        if (said)
            return 0;
        *ret_error = vo_asprintf("network '%s': %s", name, why);
        return -EBUSY;
    }
    vo_relation_user_clear(&nic_user);
    pthread_mutex_lock(&d->networks_lock);
    n->stopping = true;
    pthread_mutex_unlock(&d->networks_lock);
    return take_down(d, n, ret_error);
}

int vo_network_bridge(VoDaemon *d, const char *name, char **ret_bridge, char **ret_error)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    int r = 0;
    if (!n) {
        *ret_error = vo_asprintf("network '%s' does not exist", name);
        r = -ENOENT;
    } else if (n->error) {
        *ret_error = vo_asprintf("network '%s' is not up: %s", name, n->error);
        r = -ENETDOWN;
    } else
        *ret_bridge = vo_strdup(n->spec->bridge);
    pthread_mutex_unlock(&d->networks_lock);
    return r;
}

char *vo_network_lease_ip(VoDaemon *d, const char *name, const char *mac)
{
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    _cleanup_free_ char *path = n ? vo_asprintf("%s/leases", n->dir) : NULL;
    pthread_mutex_unlock(&d->networks_lock);
    _cleanup_free_ char *text = NULL;
    if (!path || vo_read_file(path, 1 << 20, &text, NULL) < 0)
        return NULL;
    VoLease *l = NULL;
    size_t nl = 0;
    if (vo_leases_parse(text, &l, &nl) < 0)
        return NULL;
    const VoLease *hit = vo_leases_find_mac(l, nl, mac);
    char *ip = hit ? vo_strdup(hit->ip) : NULL;
    vo_leases_free(l, nl);
    return ip;
}

char *vo_network_nic_ip(VoDaemon *d, const char *name, const char *mac)
{
    char *ip = vo_network_lease_ip(d, name, mac);
    if (ip || !vo_net_cluster_mode(d))
        return ip;
    pthread_mutex_lock(&d->networks_lock);
    VoNetwork *n = network_find(d, name);
    bool cluster = n && n->spec->cluster;
    pthread_mutex_unlock(&d->networks_lock);
    return cluster ? vo_net_cluster_address_of(d, name, mac) : NULL;
}

void vo_network_forget_leases(VoDaemon *d, const VoVmSpec *spec)
{
    for (size_t i = 0; i < spec->n_nics; i++) {
        const VoNicSpec *nic = &spec->nics[i];
        if (!strcmp(nic->network, "user"))
            continue;
        pthread_mutex_lock(&d->networks_lock);
        VoNetwork *n = network_find(d, nic->network);
        bool served = n && n->spec->dhcp && n->spec->has_subnet && n->spec->bridge;
        _cleanup_free_ char *bridge = served ? vo_strdup(n->spec->bridge) : NULL;
        uint32_t gw = served ? vo_cidr_gateway(n->spec->subnet) : 0;
        pthread_mutex_unlock(&d->networks_lock);
        _cleanup_free_ char *ip = served ? vo_network_lease_ip(d, nic->network, nic->mac) : NULL;
        if (!ip)
            continue;
        char server[VO_IPV4_STRLEN];
        _cleanup_free_ char *error = NULL;
        if (vo_dhcp_release_send(bridge, nic->mac, ip, vo_ipv4_format(gw, server), &error) < 0)
            log_warn("network %s: cannot release the lease of %s (%s): %s", nic->network, ip,
                     nic->mac, error);
        else
            log_info("network %s: lease of %s (%s) released: its VM left this host",
                     nic->network, ip, nic->mac);
    }
}

void vo_network_hup_locked(VoNetwork *n)
{
    if (n->dnsmasq_pidfd >= 0 && n->dnsmasq_starting)
        n->hup_pending = true; /* sent once it handles it */
    else if (n->dnsmasq_pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, n->dnsmasq_pidfd, SIGHUP, NULL, 0);
}

void vo_networks_refresh_hosts(VoDaemon *d)
{
    /* [{network, mac, name}], as the VMs' relation documents record them */
    json_t *nics = vo_relations_network_nics(d->store);
    if (!nics) {
        log_error("store: cannot read the NICs on networks; DHCP hosts left as they are");
        return;
    }
    if (vo_net_cluster_mode(d))
        vo_net_cluster_refresh(d, nics); /* cluster networks: from IPAM */
    pthread_mutex_lock(&d->networks_lock);
    for (size_t i = 0; i < d->n_networks; i++) {
        VoNetwork *n = d->networks[i];
        if (n->spec->cluster)
            continue;
        _cleanup_free_ char *text = vo_strdup("");
        size_t k;
        json_t *nic;
        json_array_foreach(nics, k, nic) {
            if (strcmp(json_string_value(json_object_get(nic, "network")), n->spec->name))
                continue;
            char *next = vo_asprintf("%s%s,%s\n", text,
                                     json_string_value(json_object_get(nic, "mac")),
                                     json_string_value(json_object_get(nic, "name")));
            free(text);
            text = next;
        }
        _cleanup_free_ char *path = vo_asprintf("%s/hosts", n->dir);
        if (access(n->dir, F_OK) == 0 && vo_net_write_if_changed(path, text) > 0)
            vo_network_hup_locked(n);
    }
    pthread_mutex_unlock(&d->networks_lock);
    json_decref(nics);
}
