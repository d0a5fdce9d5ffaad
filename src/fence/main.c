/* main.c: vireo-fence, the host's fence process (docs/ha.md). Separate from
 * vireod and in its own session, so a vireod crash or upgrade changes
 * nothing: it holds the host's lease in etcd (the host record lives on it),
 * renews it every second, counts a renewal only when the keepalive answered
 * and a linearizable read made after it succeeded (etcd 3.4.23's isolated
 * leader renews leases by itself), and when no renewal was confirmed in
 * time (TTL minus a margin) it SIGKILLs the host's HA QEMUs (RUN/fence/ha/)
 * and writes RUN/fenced, before the lease can expire for the other hosts.
 * It then takes a new lease. On real hosts it can pet a watchdog device, so
 * a host whose fence dies or hangs resets before its lease ends.
 *
 *   vireo-fence --state-dir STATE --run-dir RUN [--watchdog DEV]
 *               [--watchdog-timeout S] [--debug]
 *
 * Files: fence-state.h. Reads STATE/cluster/cluster.json for the etcd
 * endpoints and STATE/cluster/{ca.crt,host.crt,host.key}. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/watchdog.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster-config.h"
#include "fence/fence-state.h"
#include "state/store.h"
#include "util/test-hold.h"
#include "util/util.h"

/* A request that hangs must not hold renewals back for long. */
#define STORE_TIMEOUT_MS 2000
#define CHECK_MS 50

static struct {
    pthread_mutex_t lock;
    VoFenceLease held; /* fence-state.h: held, and armed or not */
    bool guarding;     /* a lease was armed or resumed: the watchdog guards it */
    uint64_t fenced_count;
    const char *run_dir;
    char *state_path, *fenced_path;
    int watchdog_fd;
} F = { .lock = PTHREAD_MUTEX_INITIALIZER, .watchdog_fd = -1 };

static atomic_bool stop;

static void on_term(int sig)
{
    (void)sig;
    atomic_store(&stop, true);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !atomic_load(&stop))
        ;
}

/* Kills the HA QEMUs and says so in RUN/fenced, naming the lease `lost`.
 * Caller holds F.lock. */
static void fence_now(const char *why, int64_t lost)
{
    int64_t at = vo_now_ms();
    /* First, vireod stops seeing a confirmed lease (one the store lost
     * still had its deadline ahead, for up to the margin, while the next
     * lease is not armed): an HA QEMU it lists after the scan below is then
     * not covered, and it kills it itself. The deadline is set to now, not
     * the file removed: a fence that dies before the kills are done is
     * restarted on this lease and fences again. */
    if (vo_fence_state_write(F.state_path, lost, at) < 0)
        (void)unlink(F.state_path);
    json_t *vms = vo_fence_kill_ha(F.run_dir);
    _cleanup_free_ char *previous = NULL; /* fenced again before vireod reconciled */
    if (vo_read_file(F.fenced_path, 1 << 20, &previous, NULL) == 0)
        vo_fence_merge_killed(vms, previous);
    json_t *doc = json_pack("{s:I, s:I, s:s, s:I, s:o}", "at_monotonic_ms", (json_int_t)at, "at",
                            (json_int_t)(vo_wall_ms() / 1000), "why", why, "lease",
                            (json_int_t)lost, "vms", vms);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    int r = vo_write_file_atomic(F.fenced_path, text, strlen(text));
    log_error("FENCED: %s; killed the HA QEMUs: %s%s", why, text,
              r < 0 ? " (cannot write RUN/fenced)" : "");
    json_decref(doc);
    F.held = (VoFenceLease){ 0 };
    F.fenced_count++;
}

/* Checks the deadline often, apart from the renewals (which may hang on a
 * store request for up to STORE_TIMEOUT_MS). */
static void *deadline_thread(void *unused)
{
    (void)unused;
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&F.lock);
        if (vo_fence_expired(vo_now_ms(), F.held.confirmed_until))
            fence_now("no confirmed lease renewal in time", F.held.lease);
        else if (F.watchdog_fd >= 0 && (F.held.confirmed_until > 0 || !F.guarding))
            /* Pet it while the lease holds, and before the first lease is
             * armed (no HA QEMU runs under none: a host whose store is
             * slow or without quorum at boot is not reset over nothing). */
            (void)!write(F.watchdog_fd, "1", 1);
        pthread_mutex_unlock(&F.lock);
        sleep_ms(CHECK_MS);
    }
    return NULL;
}

static int open_store(const char *state_dir, VoStore **ret)
{
    VoClusterConfig c = { 0 };
    _cleanup_free_ char *error = NULL;
    int r = vo_cluster_config_load(state_dir, &c, &error);
    if (r < 0) {
        log_error("vireo-fence: %s", error ? error : strerror(-r));
        return r;
    }
    _cleanup_free_ char *list = vo_strdup("");
    for (size_t i = 0; c.endpoints && c.endpoints[i]; i++) {
        char *more = vo_asprintf("%s%s%s", list, i ? "," : "", c.endpoints[i]);
        free(list);
        list = more;
    }
    _cleanup_free_ char *ca = vo_asprintf("%s/cluster/ca.crt", state_dir);
    _cleanup_free_ char *cert = vo_asprintf("%s/cluster/host.crt", state_dir);
    _cleanup_free_ char *key = vo_asprintf("%s/cluster/host.key", state_dir);
    VoEtcdOptions o = { .endpoints = list, .ca_file = ca, .cert_file = cert, .key_file = key,
                        .timeout_ms = STORE_TIMEOUT_MS };
    r = vo_store_open_etcd(&o, ret);
    vo_cluster_config_clear(&c);
    if (r < 0)
        log_error("vireo-fence: cannot open the etcd store: %s", strerror(-r));
    return r;
}

/* One renewal (or grant) and its confirming read; whether it was counted. */
static bool renew_once(VoStore *s)
{
    pthread_mutex_lock(&F.lock);
    int64_t lease = F.held.lease;
    uint64_t fenced = F.fenced_count;
    pthread_mutex_unlock(&F.lock);
    int64_t t0 = vo_now_ms(), rev = 0;
    int r;
    bool granted = false;
    const char *what = lease ? "renewal" : "grant";
    if (lease)
        r = s->ops->lease_keepalive(s, lease);
    else {
        r = s->ops->lease_grant(s, VO_FENCE_TTL_MS, &lease);
        granted = r == 0;
    }
    if (r == 0)
        r = s->ops->revision(s, &rev); /* linearizable: needs a quorum */
    if (r == 0) /* tests: a grant or a renewal confirmed late */
        vo_test_hold(granted ? "fence_grant" : "fence_renew");
    pthread_mutex_lock(&F.lock);
    if (F.fenced_count != fenced) {
        /* Fenced meanwhile: that lease is not counted on any more. */
        pthread_mutex_unlock(&F.lock);
        if (granted)
            (void)s->ops->lease_revoke(s, lease);
        return false;
    }
    int64_t now = vo_now_ms(), took = now - t0;
    bool was_armed = F.held.confirmed_until > 0;
    if (took >= VO_FENCE_RENEW_MS) /* what a fence under load is made of: in the log */
        log_warn("vireo-fence: a %s took %lld ms (%s)", what, (long long)took,
                 r == 0 ? "confirmed" : strerror(-r));
    if (r == 0) {
        if (granted)
            log_info("vireo-fence: holding lease %lld", (long long)lease);
        if (vo_fence_confirmed(&F.held, lease, t0, now)) {
            F.guarding = true;
            if (!was_armed)
                log_info("vireo-fence: lease %lld armed (confirmed for %lld ms)",
                         (long long)lease, (long long)(F.held.confirmed_until - now));
            int w = vo_fence_state_write(F.state_path, lease, F.held.confirmed_until);
            if (w < 0)
                log_warn("vireo-fence: cannot write %s: %s", F.state_path, strerror(-w));
        } else
            log_warn("vireo-fence: lease %lld confirmed too late to count on (after %lld ms); "
                     "not armed until a renewal is confirmed in time",
                     (long long)lease, (long long)took);
    } else if (r == -ENOENT && F.held.lease) {
        /* The store says the lease is gone: whatever we believed, fence
         * (one never armed ran nothing: a new one is granted). */
        if (vo_fence_lost(&F.held)) /* cleared it: the lost lease is `lease` */
            fence_now("the lease expired in the store", lease);
        else
            log_warn("vireo-fence: lease %lld, not armed yet, expired; granting a new one",
                     (long long)lease);
    } else if (r < 0)
        log_debug("vireo-fence: %s: %s", what, strerror(-r));
    pthread_mutex_unlock(&F.lock);
    return r == 0;
}

/* At start: the lease of RUN/fence.state, when the store still has it, and
 * its deadline either way (the QEMUs ran under it: they are fenced when it
 * cannot be confirmed in time). */
static void resume(VoStore *s)
{
    int64_t lease = 0, until = 0;
    if (vo_fence_state_read(F.state_path, &lease, &until) < 0)
        return;
    if (!vo_fence_state_plausible(vo_now_ms(), until, VO_FENCE_TTL_MS)) {
        /* Further ahead than any renewal can reach: a file of an earlier
         * boot (the monotonic clock started again). No QEMU of it runs. */
        log_warn("vireo-fence: removing %s of an earlier boot", F.state_path);
        (void)unlink(F.state_path); /* vireod would take its lease for a confirmed one */
        return;
    }
    pthread_mutex_lock(&F.lock);
    F.held = (VoFenceLease){ .lease = lease, .confirmed_until = until };
    F.guarding = true;
    pthread_mutex_unlock(&F.lock);
    log_info("vireo-fence: resuming lease %lld (confirmed for %lld ms more)", (long long)lease,
             (long long)(until - vo_now_ms()));
    (void)s;
}

static void open_watchdog(const char *dev, int timeout_s)
{
    F.watchdog_fd = open(dev, O_WRONLY | O_CLOEXEC);
    if (F.watchdog_fd < 0) {
        log_error("vireo-fence: cannot open the watchdog %s: %s", dev, strerror(errno));
        exit(1);
    }
    if (timeout_s > 0 && ioctl(F.watchdog_fd, WDIOC_SETTIMEOUT, &timeout_s) < 0)
        log_warn("vireo-fence: %s: cannot set the timeout to %d s: %s", dev, timeout_s,
                 strerror(errno));
    log_info("vireo-fence: petting the watchdog %s until a lease is armed, then while it holds",
             dev);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "state-dir", required_argument, NULL, 's' }, { "run-dir", required_argument, NULL, 'r' },
        { "watchdog", required_argument, NULL, 'w' },
        { "watchdog-timeout", required_argument, NULL, 't' },
        { "debug", no_argument, NULL, 'd' },           { NULL, 0, NULL, 0 },
    };
    const char *state_dir = NULL, *watchdog = NULL;
    int watchdog_timeout = 10, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': state_dir = optarg; break;
        case 'r': F.run_dir = optarg; break;
        case 'w': watchdog = optarg; break;
        case 't': watchdog_timeout = atoi(optarg); break;
        case 'd': vo_log_set_level(VO_LOG_DEBUG); break;
        default:
            fprintf(stderr, "usage: vireo-fence --state-dir STATE --run-dir RUN "
                            "[--watchdog DEV [--watchdog-timeout S]] [--debug]\n");
            return 2;
        }
    }
    if (!state_dir || !F.run_dir) {
        fprintf(stderr, "vireo-fence: --state-dir and --run-dir are required\n");
        return 2;
    }
    F.state_path = vo_asprintf("%s/" VO_FENCE_STATE_FILE, F.run_dir);
    F.fenced_path = vo_asprintf("%s/" VO_FENCE_FENCED_FILE, F.run_dir);
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (watchdog)
        open_watchdog(watchdog, watchdog_timeout);
    VoStore *s = NULL;
    if (open_store(state_dir, &s) < 0)
        return 1;
    resume(s);
    pthread_t th;
    if (pthread_create(&th, NULL, deadline_thread, NULL) != 0) {
        log_error("vireo-fence: cannot start its thread");
        return 1;
    }
    log_info("vireo-fence: running (pid %d, run dir %s)", (int)getpid(), F.run_dir);
    while (!atomic_load(&stop)) {
        int64_t t0 = vo_now_ms();
        /* A renewal that failed is tried again soon, not a second later:
         * the margin is what the next one has left. */
        int64_t pause = renew_once(s) ? VO_FENCE_RENEW_MS : VO_FENCE_RETRY_MS;
        int64_t left = t0 + pause - vo_now_ms();
        if (left > 0)
            sleep_ms((int)left);
    }
    /* SIGTERM: asked to stop (the host leaves the cluster, or an operator
     * stops it on purpose). The lease is left to expire: VMs that run keep
     * running, so only an operator who also stops them should do this. */
    pthread_join(th, NULL);
    if (F.watchdog_fd >= 0) {
        (void)!write(F.watchdog_fd, "V", 1); /* magic close: no reset */
        close(F.watchdog_fd);
    }
    log_info("vireo-fence: stopped");
    vo_store_close(s);
    free(F.state_path);
    free(F.fenced_path);
    return 0;
}
