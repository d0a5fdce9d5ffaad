/* cluster-etcd.c: the host's etcd member as a process vireod supervises,
 * like dnsmasq: started (vo_etcd_member_argv) or adopted from RUN/etcd.pid
 * when an earlier vireod's member still runs (it outlives a vireod restart),
 * watched by pidfd on the event loop, restarted when it dies with a backoff
 * that grows (1 s, doubling, at most 30 s; back to 1 s after a minute up),
 * never once stopped (vo_cluster_etcd_stop, a restart due included). */
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/cluster.h"
#include "util/spawn.h"
#include "util/util.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000

struct VoClusterEtcd {
    VoDaemon *d;
    char **argv;
    char *data_dir_arg; /* "--data-dir=...": what identifies our member */
    char *pidfile, *log_path;
    pid_t pid;
    int pidfd, timerfd;
    int64_t started_ms, backoff_ms;
    bool watched;
    atomic_bool stopping; /* vo_cluster_etcd_stop: no restart */
    /* pid, pidfd and stopping, between the loop (an exit seen, a restart)
     * and vo_cluster_etcd_stop on any thread. */
    pthread_mutex_t lock;
};

pid_t vo_cluster_etcd_pid(const VoClusterEtcd *e)
{
    return e ? e->pid : 0;
}

/* Whether pid runs etcd with data_dir_arg on its command line. */
static bool runs_with(pid_t pid, const char *data_dir_arg, bool prefix)
{
    _cleanup_free_ char *path = vo_asprintf("/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *cmdline = NULL;
    size_t len = 0;
    if (pid <= 0 || vo_read_file(path, 1 << 16, &cmdline, &len) < 0)
        return false;
    size_t n = strlen(data_dir_arg);
    for (size_t off = 0; off < len; off += strlen(cmdline + off) + 1)
        if (prefix ? !strncmp(cmdline + off, data_dir_arg, n)
                   : !strcmp(cmdline + off, data_dir_arg))
            return true;
    return false;
}

static pid_t pidfile_pid(const char *pidfile)
{
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(pidfile, 64, &text, NULL) < 0)
        return 0;
    return (pid_t)atoi(text);
}

static bool runs_with_prefix(pid_t pid, void *data_dir_arg)
{
    return runs_with(pid, data_dir_arg, true);
}

void vo_cluster_etcd_kill_stale(const char *run_dir, const char *dir_prefix)
{
    _cleanup_free_ char *pidfile = vo_asprintf("%s/" VO_CLUSTER_ETCD_PIDFILE, run_dir);
    _cleanup_free_ char *arg = vo_asprintf("--data-dir=%s", dir_prefix);
    pid_t pid = pidfile_pid(pidfile);
    /* Checked and signalled through one pidfd (no pid reuse in between). */
    int pidfd = vo_pidfd_open_if(pid, runs_with_prefix, arg);
    if (pidfd < 0)
        return;
    log_info("stopping the etcd member (pid %d) an unfinished cluster change left", (int)pid);
    (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    (void)poll(&p, 1, 5000);
    siginfo_t si;
    (void)waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG);
    close(pidfd);
    (void)unlink(pidfile);
}

static int spawn(VoClusterEtcd *e)
{
    int r = vo_spawn_detached_favoured(e->argv, e->log_path, &e->pid, &e->pidfd);
    if (r < 0)
        return r;
    _cleanup_free_ char *text = vo_asprintf("%d\n", (int)e->pid);
    if (vo_write_file_atomic(e->pidfile, text, strlen(text)) < 0)
        log_warn("cannot write %s", e->pidfile);
    e->started_ms = vo_now_ms();
    log_info("etcd member started (pid %d)", (int)e->pid);
    return 0;
}

/* Whether address:port can be bound now (SO_REUSEADDR, as etcd does). */
static int port_bindable(const char *address, int port)
{
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                              .ai_socktype = SOCK_STREAM }, *ai = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(address, service, &hints, &ai) != 0 || !ai)
        return -EINVAL;
    int r = 0, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        r = -errno;
    else {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            r = -errno;
        close(fd);
    }
    freeaddrinfo(ai);
    return r;
}

int vo_cluster_etcd_ports_check(const VoClusterConfig *c, char **ret_error)
{
    struct {
        const char *address, *what;
        int port;
    } need[] = { { c->address, "peer", c->etcd_peer_port },
                 { c->address, "client", c->etcd_client_port },
                 { "127.0.0.1", "client", c->etcd_client_port } };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        int r = port_bindable(need[i].address, need[i].port);
        if (r < 0)
            return vo_error_set(ret_error, r, "this host's etcd member cannot listen on %s "
                                "port %d (%s) of %s: free it, then join again", need[i].what,
                                need[i].port, strerror(-r), need[i].address);
    }
    return 0;
}

int vo_cluster_etcd_start(VoDaemon *d, const char *state_dir, const VoClusterConfig *c,
                          VoClusterEtcd **ret, char **ret_error)
{
    const char *path = getenv("VIREO_ETCD");
    VoEtcdMemberConfig mc = {
        .etcd_path = path && *path ? path : "etcd", /* PATH: a test may wrap it */
        .name = c->etcd_name, .state_dir = state_dir, .run_dir = d->run_dir,
        .address = c->address, .client_port = c->etcd_client_port,
        .peer_port = c->etcd_peer_port, .cluster_id = c->cluster_id,
        .initial_cluster = c->etcd_initial_cluster, .existing = c->etcd_existing,
    };
    VoClusterEtcd *e = vo_malloc0(sizeof(*e));
    pthread_mutex_init(&e->lock, NULL);
    e->d = d;
    e->pidfd = e->timerfd = -1;
    e->backoff_ms = BACKOFF_MIN_MS;
    int r = vo_etcd_member_argv(&mc, &e->argv, ret_error);
    if (r < 0) {
        free(e);
        return r;
    }
    e->data_dir_arg = vo_asprintf("--data-dir=%s/cluster/etcd", state_dir);
    e->pidfile = vo_asprintf("%s/" VO_CLUSTER_ETCD_PIDFILE, d->run_dir);
    e->log_path = vo_asprintf("%s/etcd.out", d->run_dir);
    pid_t old = pidfile_pid(e->pidfile);
    if (runs_with(old, e->data_dir_arg, false) && (e->pidfd = vo_pidfd_open(old)) >= 0) {
        e->pid = old;
        e->started_ms = vo_now_ms();
        log_info("etcd member re-adopted (pid %d)", (int)old);
    } else if ((r = spawn(e)) < 0) {
        vo_error_set(ret_error, r, "cannot start etcd (%s): %s", e->argv[0], strerror(-r));
        vo_cluster_etcd_release(e);
        return r;
    }
    *ret = e;
    return 0;
}

int vo_cluster_etcd_wait_healthy(const char *cluster_dir, const VoClusterConfig *c,
                                 int timeout_ms, char **ret_error)
{
    _cleanup_free_ char *url = vo_asprintf("https://127.0.0.1:%d", c->etcd_client_port);
    VoClusterEndpoint ep;
    vo_cluster_endpoint(cluster_dir, url, &ep);
    ep.e.timeout_ms = 2000;
    int64_t deadline = vo_now_ms() + timeout_ms;
    int r;
    for (;;) {
        _cleanup_free_ char *error = NULL;
        r = vo_etcd_endpoint_health(&ep.e, &error);
        if (r == 0 || vo_now_ms() >= deadline) {
            if (r < 0)
                r = vo_error_set(ret_error, -ETIMEDOUT,
                                 "the etcd member is not healthy after %d s: %s", timeout_ms / 1000,
                                 error ? error : strerror(-r));
            break;
        }
        (void)poll(NULL, 0, 200);
    }
    vo_cluster_endpoint_clear(&ep);
    return r;
}

/* ---- supervision on the loop --------------------------------------------- */

static void on_exit_fd(int fd, uint32_t events, void *userdata);

static void watch(VoClusterEtcd *e)
{
    if (e->pidfd >= 0 && vo_loop_add_fd(e->d->loop, e->pidfd, EPOLLIN, on_exit_fd, e) < 0)
        log_warn("cannot watch the etcd member");
}

static void on_timer(int fd, uint32_t events, void *userdata)
{
    VoClusterEtcd *e = userdata;
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
    vo_loop_remove_fd(e->d->loop, fd, e);
    close(fd);
    e->timerfd = -1;
    pthread_mutex_lock(&e->lock);
    /* Stopped while this restart waited (a leave of a member that never
     * ran, say): not started again. */
    bool stopping = atomic_load(&e->stopping);
    int r = stopping ? 0 : spawn(e);
    pthread_mutex_unlock(&e->lock);
    if (stopping)
        return;
    if (r < 0) {
        log_error("cannot restart etcd: %s", strerror(-r));
        return;
    }
    watch(e);
}

static void on_exit_fd(int fd, uint32_t events, void *userdata)
{
    VoClusterEtcd *e = userdata;
    vo_loop_remove_fd(e->d->loop, fd, e);
    siginfo_t si = { 0 };
    (void)waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
    pthread_mutex_lock(&e->lock);
    close(fd);
    e->pidfd = -1;
    /* Gone: its number may soon be another process's (never signalled). */
    pid_t pid = e->pid;
    e->pid = 0;
    if (pidfile_pid(e->pidfile) == pid)
        (void)unlink(e->pidfile);
    bool stopping = atomic_load(&e->stopping);
    pthread_mutex_unlock(&e->lock);
    if (stopping)
        return;
    int64_t up = vo_now_ms() - e->started_ms;
    if (up >= STABLE_MS)
        e->backoff_ms = BACKOFF_MIN_MS;
    log_warn("etcd member (pid %d) exited after %lld s (see %s/etcd.log); restarting it in %lld ms",
             (int)pid, (long long)(up / 1000), e->d->run_dir, (long long)e->backoff_ms);
    e->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = { .it_value = { .tv_sec = e->backoff_ms / 1000,
                                            .tv_nsec = (e->backoff_ms % 1000) * 1000000L } };
    if (e->timerfd < 0 || timerfd_settime(e->timerfd, 0, &its, NULL) < 0 ||
        vo_loop_add_fd(e->d->loop, e->timerfd, EPOLLIN, on_timer, e) < 0) {
        log_error("cannot schedule the etcd restart");
        return;
    }
    e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2;
}

void vo_cluster_etcd_supervise(VoClusterEtcd *e, VoDaemon *d)
{
    if (!e || e->watched)
        return;
    e->d = d;
    e->watched = true;
    watch(e);
}

static void unwatch(VoClusterEtcd *e)
{
    if (e->watched && e->pidfd >= 0)
        vo_loop_remove_fd(e->d->loop, e->pidfd, e);
    if (e->timerfd >= 0) {
        if (e->watched)
            vo_loop_remove_fd(e->d->loop, e->timerfd, e);
        close(e->timerfd);
        e->timerfd = -1;
    }
    e->watched = false;
}

void vo_cluster_etcd_release(VoClusterEtcd *e)
{
    if (!e)
        return;
    unwatch(e);
    if (e->pidfd >= 0)
        close(e->pidfd);
    pthread_mutex_destroy(&e->lock);
    vo_strv_free(e->argv);
    free(e->data_dir_arg);
    free(e->pidfile);
    free(e->log_path);
    free(e);
}

void vo_cluster_etcd_stop(VoClusterEtcd *e, int timeout_ms)
{
    if (!e)
        return;
    /* Any thread: the loop may see the exit too, and must not restart it;
     * the pidfd stays the loop's, this waits on a duplicate. */
    pthread_mutex_lock(&e->lock);
    atomic_store(&e->stopping, true);
    int fd = e->pidfd >= 0 ? fcntl(e->pidfd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd < 0)
        fd = e->pid > 0 ? vo_pidfd_open(e->pid) : -1;
    pid_t pid = e->pid;
    pthread_mutex_unlock(&e->lock);
    if (fd >= 0) {
        (void)syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) <= 0) {
            log_warn("etcd member (pid %d) did not stop on SIGTERM; killing it", (int)pid);
            (void)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
            (void)poll(&p, 1, 5000);
        }
        siginfo_t si;
        (void)waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
        close(fd);
        log_info("etcd member (pid %d) stopped", (int)pid);
    }
    if (pid > 0 && pidfile_pid(e->pidfile) == pid)
        (void)unlink(e->pidfile);
}
