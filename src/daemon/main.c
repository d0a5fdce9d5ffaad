/* main.c: vireod, the vireo host daemon: parses options, opens the store,
 * re-attaches to running VMs, serves the REST API and runs the event loop
 * until SIGTERM/SIGINT. VMs keep running when vireod stops. */
#include <fcntl.h>
#include <getopt.h>
#include <sys/file.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "api/http.h"
#include "api/web-files.h"
#include "daemon/fence.h"
#include "daemon/backups.h"
#include "daemon/cluster.h"
#include "daemon/console.h"
#include "daemon/cluster-place.h"
#include "daemon/daemon.h"
#include "daemon/host-id.h"
#include "daemon/drs.h"
#include "daemon/schedules.h"
#include "daemon/ha-recover.h"
#include "daemon/ha-retry.h"
#include "daemon/mac-claims.h"
#include "daemon/migrate-resettle.h"
#include "daemon/hosts.h"
#include "daemon/metrics.h"
#include "daemon/migrate.h"
#include "daemon/images.h"
#include "daemon/networks.h"
#include "daemon/project-heal.h"
#include "daemon/storage.h"
#include "daemon/pool-watch.h"
#include "daemon/san-resume.h"
#include "daemon/sweep.h"
#include "conf/names.h"
#include "daemon/vms.h"
#include "qemu/qemu-confine.h"
#include "qemu/qemu-uids.h"
#include "util/util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vireod [OPTIONS]\n"
            "  --state-dir DIR   persistent state (default /var/lib/vireo)\n"
            "  --run-dir DIR     runtime files: sockets, pidfiles (default /run/vireo)\n"
            "  --socket PATH     API socket (default RUN-DIR/vireod.sock)\n"
            "  --listen ADDR:PORT  also serve the API over HTTPS with mutual TLS (for the\n"
            "                    peers of a cluster); needs the three --tls-* options\n"
            "  --tls-cert FILE   this host's certificate (PEM), shown to clients\n"
            "  --tls-key FILE    its private key (PEM)\n"
            "  --tls-ca FILE     the CA (PEM) that must have signed every client's certificate\n"
            "  --https ADDR:PORT|off  serve the API to users over HTTPS (API tokens, browser\n"
            "                    sessions, roles: docs/security.md); default 0.0.0.0:8443\n"
            "                    (0.0.0.0:8444 when the peers' listener has port 8443)\n"
            "  --https-cert FILE, --https-key FILE  its certificate and key (PEM); default:\n"
            "                    the cluster's host certificate in a cluster, else one made\n"
            "                    at first start in STATE/https (self-signed)\n"
            "  --web-dir DIR     the web UI's files, served at /ui/ on the HTTPS listener\n"
            "                    (default: found beside vireod, installed or in the build\n"
            "                    tree: web/dist; docs/web.md)\n"
            "  --driver NAME     qemu (default) or fake\n"
            "  --name NAME       this host's name in a cluster (default: the hostname)\n"
            "  --fence-watchdog DEV  in a cluster, the fence process pets this watchdog\n"
            "                    (/dev/watchdog; softdog where no hardware one exists) while\n"
            "                    the host's lease holds: real hosts only (docs/ha.md)\n"
            "  --foreground      stay attached to the terminal (vireod never forks itself;\n"
            "                    accepted for compatibility with service managers)\n"
            "  --metrics-interval SECONDS  sample hosts and VMs for monitoring this often\n"
            "                    (default 10; 1-3600; docs/monitoring.md)\n"
            "  --event-history N  standalone: the newest N changes stay in the store for\n"
            "                    event streams to resume from (default 10000, at least 100;\n"
            "                    docs/events.md)\n"
            "  --schedule-clock-file FILE  tests only: the schedules' clock is the unix time\n"
            "                    written in FILE, read every 0.2 s (docs/schedules.md)\n"
            "  --qemu-user USER  QEMU drops to this user after its start, in its seccomp\n"
            "                    sandbox (default vireo-qemu, made when missing; root: off;\n"
            "                    docs/security.md)\n"
            "  --qemu-uid-range FIRST-LAST|off  each VM's QEMU runs as a uid of its own from\n"
            "                    this range, in the group of --qemu-user, no passwd entries\n"
            "                    (default 1879048192-1879113727; off: all VMs' QEMUs run as\n"
            "                    --qemu-user itself; docs/security.md)\n"
            "  --cgroup-root DIR|off  each QEMU in its own cgroup under DIR/HOST-ID of the\n"
            "                    cgroup hierarchies (default vireo; v2, or v1's cpu and\n"
            "                    memory): CPU weight and limit, memory limit\n"
            "  --debug           debug logging\n"
            "  --list-routes     print the API route table and exit\n"
            "  --version\n");
}

static void on_signal(int fd, uint32_t events, void *userdata)
{
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) == sizeof(si))
        log_info("received signal %u, shutting down (VMs keep running)", si.ssi_signo);
    vo_loop_quit(userdata);
}

static uint64_t host_memory_mib(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size >> 20 : 1024;
}

/* The hostname up to its first dot, in lower case; "host-" and the start of
 * the host id when that is no valid name. */
static char *default_host_name(const char *host_id)
{
    char hostname[256] = "";
    gethostname(hostname, sizeof(hostname) - 1);
    hostname[strcspn(hostname, ".")] = 0;
    for (char *p = hostname; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return vo_name_valid(hostname) ? vo_strdup(hostname) : vo_asprintf("host-%.8s", host_id);
}

/* A VM left the registry: its room shows at once, its history goes. */
static void vm_gone(VoDaemon *d)
{
    vo_hosts_refresh(d);
    vo_metrics_wake();
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "state-dir", required_argument, NULL, 's' }, { "run-dir", required_argument, NULL, 'r' },
        { "socket", required_argument, NULL, 'S' },    { "driver", required_argument, NULL, 'd' },
        { "name", required_argument, NULL, 'n' },
        { "foreground", no_argument, NULL, 'f' },      { "debug", no_argument, NULL, 'D' },
        { "list-routes", no_argument, NULL, 'L' },     { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },            { "listen", required_argument, NULL, 'l' },
        { "tls-cert", required_argument, NULL, 'c' },  { "tls-key", required_argument, NULL, 'k' },
        { "tls-ca", required_argument, NULL, 'a' },
        { "https", required_argument, NULL, 'H' },
        { "https-cert", required_argument, NULL, 'C' },
        { "https-key", required_argument, NULL, 'K' },
        { "fence-watchdog", required_argument, NULL, 'W' },
        { "metrics-interval", required_argument, NULL, 'M' },
        { "event-history", required_argument, NULL, 'E' },
        { "web-dir", required_argument, NULL, 'w' },
        { "schedule-clock-file", required_argument, NULL, 'T' },
        { "qemu-user", required_argument, NULL, 'U' },
        { "qemu-uid-range", required_argument, NULL, 'Q' },
        { "cgroup-root", required_argument, NULL, 'G' }, { 0 },
    };
    /* The re-exec after a cluster change runs vireod again as it was started. */
    char **exec_argv = vo_malloc0(sizeof(char *) * (size_t)(argc + 1));
    for (int i = 0; i < argc; i++)
        exec_argv[i] = argv[i];
    const char *listen_addr = NULL;
    VoApiTlsFiles tls = { 0 };
    const char *https_addr = NULL, *https_cert = NULL, *https_key = NULL;
    const char *state_dir = "/var/lib/vireo", *run_dir = "/run/vireo", *socket_path = NULL;
    const char *driver = "qemu", *host_name = NULL, *web_dir = NULL;
    const char *qemu_user = VO_QEMU_DEFAULT_USER, *cgroup_root = "vireo";
    uid_t qemu_uid_first = VO_QEMU_UID_FIRST, qemu_uid_last = VO_QEMU_UID_LAST;
    int metrics_interval_ms = VO_METRICS_INTERVAL_MS;
    int64_t event_history = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
        switch (c) {
        case 's': state_dir = optarg; break;
        case 'r': run_dir = optarg; break;
        case 'S': socket_path = optarg; break;
        case 'd': driver = optarg; break;
        case 'n': host_name = optarg; break;
        case 'f': break;
        case 'D': vo_log_set_level(VO_LOG_DEBUG); break;
        case 'l': listen_addr = optarg; break;
        case 'c': tls.cert_file = optarg; break;
        case 'k': tls.key_file = optarg; break;
        case 'a': tls.ca_file = optarg; break;
        case 'H': https_addr = optarg; break;
        case 'C': https_cert = optarg; break;
        case 'K': https_key = optarg; break;
        case 'W': vo_fence_set_watchdog(optarg); break;
        case 'w': web_dir = optarg; break;
        case 'T': vo_schedules_set_clock_file(optarg); break; /* tests only */
        case 'U': qemu_user = optarg; break;
        case 'G': cgroup_root = optarg; break;
        case 'Q':
            if (!strcmp(optarg, "off")) {
                qemu_uid_first = qemu_uid_last = 0;
            } else if (vo_qemu_uid_range_parse(optarg, &qemu_uid_first, &qemu_uid_last) < 0) {
                fprintf(stderr, "vireod: --qemu-uid-range '%s' is not FIRST-LAST (uids, 1 <= "
                                "FIRST <= LAST < 2147483647) or off\n", optarg);
                return 2;
            }
            break;
        case 'M': {
            char *end = NULL;
            double secs = strtod(optarg, &end);
            if (end == optarg || *end || !(secs >= 0.1 && secs <= 3600)) {
                fprintf(stderr, "vireod: --metrics-interval '%s' is not a number of seconds "
                                "from 0.1 to 3600\n", optarg);
                return 2;
            }
            metrics_interval_ms = (int)(secs * 1000);
            break;
        }
        case 'E': {
            char *end = NULL;
            errno = 0;
            long long n = strtoll(optarg, &end, 10);
            if (end == optarg || *end || errno || n < VO_STORE_SQLITE_MIN_KEEP_CHANGES ||
                n > 100000000) {
                fprintf(stderr, "vireod: --event-history '%s' is not a number of changes from "
                                "%d to 100000000\n", optarg, VO_STORE_SQLITE_MIN_KEEP_CHANGES);
                return 2;
            }
            event_history = n;
            break;
        }
        case 'L':
            for (size_t i = 0; i < vo_n_routes; i++)
                printf("%s %s\n", vo_routes[i].method, vo_routes[i].pattern);
            return 0;
        case 'V': printf("vireod %s\n", VIREO_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vireod: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    int n_tls = !!listen_addr + !!tls.cert_file + !!tls.key_file + !!tls.ca_file;
    if (n_tls != 0 && n_tls != 4) {
        fprintf(stderr, "vireod: --listen, --tls-cert, --tls-key and --tls-ca go together "
                        "(the HTTPS listener needs all four); missing:%s%s%s%s\n",
                listen_addr ? "" : " --listen", tls.cert_file ? "" : " --tls-cert",
                tls.key_file ? "" : " --tls-key", tls.ca_file ? "" : " --tls-ca");
        return 2;
    }
    if (!https_cert != !https_key) {
        fprintf(stderr, "vireod: --https-cert and --https-key go together\n");
        return 2;
    }
    if (https_addr && strcmp(https_addr, "off") != 0) {
        struct sockaddr_storage ss;
        socklen_t sslen = 0;
        _cleanup_free_ char *error = NULL;
        if (vo_api_parse_listen(https_addr, &ss, &sslen, &error) < 0) {
            fprintf(stderr, "vireod: --https: %s\n", error);
            return 2;
        }
    }
    if (https_cert && (!https_addr || strcmp(https_addr, "off") != 0)) {
        /* Bad files refused before anything starts (as --tls-* are). */
        _cleanup_free_ char *error = NULL;
        if (vo_api_users_check(https_addr ? https_addr : "0.0.0.0:8443", https_cert, https_key,
                               &error) < 0) {
            fprintf(stderr, "vireod: cannot serve HTTPS for users: %s\n", error);
            return 2;
        }
    }
    _cleanup_free_ char *web_files = vo_api_web_dir(web_dir, argv[0]);
    if (web_dir && !web_files) {
        fprintf(stderr, "vireod: --web-dir '%s': %s\n", web_dir, strerror(errno));
        return 2;
    }
    if (listen_addr) { /* bad files refused before anything starts */
        _cleanup_free_ char *error = NULL;
        if (vo_api_tls_check(listen_addr, &tls, &error) < 0) {
            fprintf(stderr, "vireod: %s\n", error);
            return 2;
        }
    }

    /* Nothing vireod or its helpers (qemu-img, QEMU) create is for others:
     * files that must be shared get their mode explicitly. */
    umask(027);

    VoDaemon d = { 0 };
    pthread_mutex_init(&d.vms_lock, NULL);
    pthread_mutex_init(&d.storage_lock, NULL);
    pthread_mutex_init(&d.networks_lock, NULL);
    d.web_dir = TAKE_PTR(web_files);
    d.event_history = event_history;
    d.state_dir = realpath(state_dir, NULL);
    if (!d.state_dir && vo_mkdir_p(state_dir, 0750) == 0)
        d.state_dir = realpath(state_dir, NULL);
    if (vo_mkdir_p(run_dir, 0750) == 0)
        d.run_dir = realpath(run_dir, NULL);
    if (!d.state_dir || !d.run_dir) {
        log_error("cannot create state dir %s or run dir %s: %s", state_dir, run_dir,
                  strerror(errno));
        return 1;
    }
    if (host_name && !vo_name_valid(host_name)) {
        fprintf(stderr, "vireod: --name '%s' is not a valid host name (1-63 of a-z, 0-9 and "
                        "'-', not starting with '-')\n", host_name);
        return 2;
    }
    d.socket_path = socket_path ? vo_strdup(socket_path) : vo_asprintf("%s/vireod.sock", d.run_dir);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    d.limits = (VoHostLimits){ .max_vcpus = cpus > 0 ? (unsigned)cpus : 1,
                               .max_memory_mib = host_memory_mib() };

    /* QEMUs we start are our children; reap them ourselves at once. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    int r;
    if (!strcmp(driver, "qemu"))
        r = vo_qemu_driver_new(&d.driver);
    else if (!strcmp(driver, "fake"))
        r = vo_fake_driver_new(&d.driver);
    else {
        fprintf(stderr, "vireod: unknown driver '%s' (qemu or fake)\n", driver);
        return 2;
    }
    if (r < 0)
        return 1;
    d.hv_version = d.driver->version ? d.driver->version(d.driver) : NULL;
    if (!d.hv_version && !strcmp(driver, "qemu"))
        log_warn("cannot read QEMU's version (qemu-system-x86_64 --version): hosts show none");
    if (!d.driver->kvm_usable && !strcmp(driver, "qemu"))
        log_warn("KVM not usable (%s): VMs with accel auto run under TCG", d.driver->kvm_reason);

    /* One vireod per state dir: two would start the same VMs twice. */
    _cleanup_free_ char *lock_path = vo_asprintf("%s/vireod.lock", d.state_dir);
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        log_error("another vireod uses %s (%s); stop it first", d.state_dir,
                  lock_fd < 0 ? strerror(errno) : "locked");
        return 1;
    }
    _cleanup_free_ char *vms_dir = vo_asprintf("%s/vms", d.state_dir);
    (void)vo_mkdir_p(vms_dir, 0750);
    d.host_id = vo_host_id(&d);
    if (!d.host_id) {
        log_error("cannot read or make %s/host-id", d.state_dir);
        return 1;
    }
    d.host_name = host_name ? vo_strdup(host_name) : default_host_name(d.host_id);
    if (!strcmp(driver, "qemu")) {
        /* Each vireod's VMs in a cgroup dir of its own (host id): two
         * vireods on one machine (a local migration's) keep theirs apart. */
        _cleanup_free_ char *cgroup_base = strcmp(cgroup_root, "off")
            ? vo_asprintf("%s/%s", cgroup_root, d.host_id) : vo_strdup("off");
        d.driver->qemu_uid_first = qemu_uid_first;
        d.driver->qemu_uid_last = qemu_uid_last;
        if (vo_qemu_confine_setup(d.driver, qemu_user, cgroup_base, d.run_dir) < 0)
            return 1;
    }
    /* SQLite, or in a cluster (STATE/cluster/cluster.json) etcd. */
    {
        _cleanup_free_ char *error = NULL;
        if ((r = vo_cluster_open(&d, &error)) < 0) {
            log_error("%s", error);
            return 1;
        }
    }
    static const VoTasksLimits task_limits = { .workers = VO_TASKS_WORKERS,
                                               .max_queued = VO_TASKS_MAX_QUEUED,
                                               .max_queued_per_key = VO_TASKS_MAX_QUEUED_PER_KEY };
    if ((r = vo_loop_new(&d.loop)) < 0 || (r = vo_tasks_new(&task_limits, &d.tasks)) < 0) {
        log_error("cannot set up: %s", strerror(-r));
        return 1;
    }
    int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    vo_loop_add_fd(d.loop, sigfd, EPOLLIN, on_signal, d.loop);
    vo_cluster_watch(&d); /* the etcd member, restarted when it dies */

    /* What a crash left half-made goes before anything is loaded. */
    vo_sweep_at_start(&d);
    /* Operations cut short by the stop end as interrupted, naming what the
     * sweep removed for them. */
    if ((r = vo_tasks_attach_store(d.tasks, d.store)) < 0) {
        log_error("cannot read the operations in the store: %s", strerror(-r));
        return 1;
    }
    /* Images: documents and directories reconciled (VMs name images). */
    vo_images_load(&d);
    r = vo_storage_load(&d);
    if (r < 0) {
        log_error("cannot load pools and volumes: %s", strerror(-r));
        return 1;
    }
    vo_backups_load(&d);
    if ((r = vo_networks_load(&d)) < 0) {
        log_error("cannot load networks: %s", strerror(-r));
        return 1;
    }
    r = vo_vms_load(&d);
    if (r < 0) {
        log_error("cannot load VMs: %s", strerror(-r));
        return 1;
    }
    /* Volumes of a VM import or create a stop cut short (no VM document). */
    vo_sweep_volumes_after_load(&d);
    /* Projects' documents of this host's volumes and networks whose delete
     * a crash cut short (daemon/project-heal.h). */
    if ((r = vo_project_heal(&d, NULL)) < 0)
        log_warn("projects: cannot look for the documents of deleted volumes and networks: %s",
                 strerror(-r));
    /* Migrations an earlier vireod left: finished or undone. */
    vo_migrations_recover(&d);
    vo_vms_set_gone_hook(vm_gone); /* a deleted VM's room shows at once */
    /* The fence process holds the host's lease: adopted or started before
     * the record is published on it (daemon/fence.h). */
    if ((r = vo_fence_start(&d)) < 0) {
        log_error("cannot supervise the fence process: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_migrate_resettle_start(&d)) < 0) { /* switches whose outcome is unknown */
        log_error("cannot start the migration re-settler: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_ha_retry_start(&d)) < 0) { /* before the hosts' thread follows starts */
        log_error("cannot start the HA start retrier: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_hosts_start(&d)) < 0)
        return 1;
    if ((r = vo_cluster_place_start(&d)) < 0) {
        log_error("cannot start the placement cache's keeper: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_ha_recover_start(&d)) < 0) {
        log_error("cannot start the HA recovery loop: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_mac_ghosts_start(&d)) < 0) {
        log_error("cannot start the MAC index's sweep: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_drs_start(&d)) < 0) {
        log_error("cannot start the DRS loop: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_schedules_start(&d)) < 0) {
        log_error("cannot start the schedules' runner: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_pool_watch_start(&d)) < 0) {
        log_error("cannot follow the shared pools: %s", strerror(-r));
        return 1;
    }
    if ((r = vo_san_resume_start(&d)) < 0) {
        log_error("cannot start the watch of VMs paused on a lost iSCSI target: %s",
                  strerror(-r));
        return 1;
    }
    if ((r = vo_metrics_start(&d, metrics_interval_ms)) < 0) {
        log_error("cannot start the monitoring sampler: %s", strerror(-r));
        return 1;
    }
    VoApiServer *api = NULL;
    r = vo_api_server_start(&d, d.socket_path, &api);
    if (r < 0) {
        log_error("cannot serve the API on %s: %s", d.socket_path, strerror(-r));
        return 1;
    }
    VoApiServer *api_tls = NULL;
    /* In a cluster the listener is the cluster's: its address and port,
     * the host certificate of STATE/cluster. */
    _cleanup_free_ char *cluster_listen = NULL;
    _cleanup_free_ char *cluster_dir = vo_cluster_path(&d, NULL);
    if (vo_cluster_listen(&d, &cluster_listen)) {
        if (listen_addr)
            log_warn("in a cluster: --listen %s and --tls-* are ignored; serving HTTPS on %s "
                     "with the cluster's certificates", listen_addr, cluster_listen);
        listen_addr = cluster_listen;
        tls = (VoApiTlsFiles){ .cert_file = d.peer_tls.cert_file,
                               .key_file = d.peer_tls.key_file, .ca_file = d.peer_tls.ca_file };
    }
    if (listen_addr) {
        _cleanup_free_ char *error = NULL;
        r = vo_api_server_start_tls(&d, listen_addr, &tls, &api_tls, &error);
        if (r < 0) {
            log_error("cannot serve HTTPS: %s", error);
            vo_api_server_stop(api);
            return 1;
        }
        log_info("serving the API over HTTPS with mutual TLS on %s", listen_addr);
    }
    VoApiServer *api_users = NULL;
    if (!https_addr || strcmp(https_addr, "off") != 0) {
        bool chosen = https_addr != NULL || https_cert != NULL; /* else a warning */
        _cleanup_free_ char *fallback = NULL;
        if (!https_addr) /* the peers' listener may hold 8443 */
            https_addr = fallback = vo_strdup(listen_addr && strstr(listen_addr, ":8443")
                                                  ? "0.0.0.0:8444" : "0.0.0.0:8443");
        _cleanup_free_ char *host_part = vo_strdup(https_addr), *cert = NULL, *key = NULL;
        _cleanup_free_ char *error = NULL;
        *strrchr(host_part, ':') = '\0';
        if (https_cert) {
            cert = vo_strdup(https_cert);
            key = vo_strdup(https_key);
            r = 0;
        } else if (d.cluster) {
            cert = vo_strdup(d.peer_tls.cert_file);
            key = vo_strdup(d.peer_tls.key_file);
            r = 0;
        } else
            r = vo_api_https_cert(&d, host_part, &cert, &key, &error);
        if (r == 0)
            r = vo_api_server_start_users(&d, https_addr, cert, key, &api_users, &error);
        if (r < 0 && chosen) {
            log_error("cannot serve HTTPS for users: %s", error);
            vo_api_server_stop(api_tls);
            vo_api_server_stop(api);
            return 1;
        }
        if (r < 0)
            log_warn("not serving HTTPS for users: %s (set --https ADDR:PORT, or --https off)",
                     error);
        else
            log_info("serving the API to users over HTTPS on %s (certificate %s)", https_addr,
                     cert);
    }
    log_info("vireod %s ready on %s (driver %s, state %s)", VIREO_VERSION, d.socket_path,
             d.driver->name, d.state_dir);
    r = vo_loop_run(d.loop);

    vo_console_hub_stop(); /* no console client's close reaches a stopped API server */
    vo_api_server_stop(api_users);
    vo_api_server_stop(api_tls);
    vo_api_server_stop(api);
    vo_pool_watch_stop();
    vo_san_resume_stop();
    vo_schedules_stop();
    vo_metrics_stop();
    vo_drs_stop(&d);
    vo_mac_ghosts_stop();
    vo_ha_recover_stop(&d);
    vo_ha_retry_stop(&d);
    vo_migrate_resettle_stop(&d);
    vo_cluster_place_stop(&d);
    vo_hosts_stop(&d);
    vo_fence_stop(&d); /* it keeps running: the lease outlives vireod */
    vo_migration_shutdown();
    vo_tasks_free(d.tasks);
    if (vo_vms_release_all(&d) > 0) {
        /* A VM save given up on still writes through the store, reading the
         * daemon's state: nothing it uses is closed or freed under it (that
         * could crash vireod as it ends); the process just ends. */
        bool reexec = vo_cluster_reexec_wanted(&d);
        if (reexec) {
            flock(lock_fd, LOCK_UN);
            vo_cluster_reexec(exec_argv); /* returns only on failure */
            _exit(1);
        }
        log_info("vireod stopped (with VM saves not done)");
        _exit(r < 0 ? 1 : 0);
    }
    vo_networks_release_all(&d);
    /* The cluster's etcd supervision is on the loop: it goes first. */
    bool reexec = vo_cluster_reexec_wanted(&d);
    vo_cluster_close(&d);
    vo_loop_free(d.loop);
    close(sigfd);
    free(d.driver->kvm_reason);
    free(d.driver);
    free(d.hv_version);
    free(d.state_dir);
    free(d.web_dir);
    free(d.run_dir);
    free(d.socket_path);
    free(d.host_id);
    free(d.host_name);
    free(d.host_address);
    vo_strv_free(d.images_building);
    if (reexec) {
        flock(lock_fd, LOCK_UN);
        vo_cluster_reexec(exec_argv); /* returns only on failure */
        free(exec_argv);
        return 1;
    }
    free(exec_argv);
    log_info("vireod stopped");
    return r < 0 ? 1 : 0;
}
