/* test-store-etcd.c: the store contract (store-contract.c) on the etcd
 * backend (store-etcd.c) against a real etcd started by this binary (a
 * private data dir, free 127.0.0.1 ports, killed by PID at the end), with a
 * host-id handle and a raw handle; then what only etcd has: the key
 * mapping, the 128-op limit, lease expiry as a watched delete, compaction
 * with a re-list and a new watch, a stopped etcd answering -EAGAIN, and
 * mutual TLS (certificates made with openssl). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/place-cache.h"
#include "state/store.h"
#include "state/store-etcd-internal.h"
#include "store-contract.h"
#include "util/util.h"

#define ETCD "/usr/bin/etcd"
#define READY_MS 60000
#define WAIT_MS 20000

static pid_t etcd_pid = -1;
static char etcd_dir[64];
static char client_url[64];
static int store_counter;

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A port nobody listens on now (the kernel's pick). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int open_store(const char *host_id, int timeout_ms, VoStore **ret)
{
    VoEtcdOptions o = { .endpoints = client_url, .host_id = host_id, .timeout_ms = timeout_ms };
    return vo_store_open_etcd(&o, ret);
}

/* Runs etcd for client_url in dir (its data, its log) with its peer port
 * (0: a free one); TLS: the client port wants a certificate from
 * dir/ca.crt (dir/host.crt serves it). Progress notices every 200 ms. */
static pid_t spawn_etcd_peer(const char *dir, const char *client, int pport, bool tls)
{
    if (pport <= 0 && (pport = free_port()) < 0)
        return -1;
    _cleanup_free_ char *peer = vo_asprintf("http://127.0.0.1:%d", pport);
    _cleanup_free_ char *data = vo_asprintf("%s/data", dir);
    _cleanup_free_ char *log = vo_asprintf("%s/etcd.log", dir);
    _cleanup_free_ char *cluster = vo_asprintf("t=%s", peer);
    _cleanup_free_ char *ca = vo_asprintf("--trusted-ca-file=%s/ca.crt", dir);
    _cleanup_free_ char *cert = vo_asprintf("--cert-file=%s/host.crt", dir);
    _cleanup_free_ char *key = vo_asprintf("--key-file=%s/host.key", dir);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* A test that crashes takes its etcd along. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    execl(ETCD, ETCD, "--name", "t", "--data-dir", data, "--listen-client-urls", client,
          "--advertise-client-urls", client, "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
          "--initial-cluster-state", "new", "--experimental-watch-progress-notify-interval",
          "200ms", tls ? "--client-cert-auth" : (char *)NULL, ca, cert, key, (char *)NULL);
    _exit(127);
}

static pid_t spawn_etcd(const char *dir, const char *client, bool tls)
{
    return spawn_etcd_peer(dir, client, 0, tls);
}

/* Waits (bounded) until the store answers, or pid ended. */
static int wait_ready(VoStore *s, pid_t pid)
{
    int64_t give_up = vo_now_ms() + READY_MS, rev = 0;
    int r;
    while ((r = s->ops->revision(s, &rev)) < 0 && vo_now_ms() < give_up &&
           waitpid(pid, NULL, WNOHANG) == 0)
        sleep_ms(100);
    return r;
}

static void kill_wait(pid_t pid)
{
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    int64_t give_up = vo_now_ms() + 10000;
    while (waitpid(pid, NULL, WNOHANG) == 0) {
        if (vo_now_ms() > give_up) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        sleep_ms(20);
    }
}

/* Stops child pid (SIGSTOP) and returns 0 once every thread of it is
 * stopped, -ESRCH if it ended, -ETIMEDOUT past WAIT_MS. kill() returns
 * when the signal is queued on one thread; the other threads of a
 * multi-threaded process (etcd) run on, and answer requests, until that
 * thread is scheduled and stops them all, which under load can take tens
 * of milliseconds. The parent learns of the stop (WUNTRACED) once the last
 * thread stopped. */
static int stop_child(pid_t pid)
{
    if (kill(pid, SIGSTOP) < 0)
        return -errno;
    int64_t give_up = vo_now_ms() + WAIT_MS;
    for (;;) {
        int st = 0;
        pid_t w = waitpid(pid, &st, WUNTRACED | WNOHANG);
        if (w == pid)
            return WIFSTOPPED(st) ? 0 : -ESRCH;
        if (w < 0)
            return -errno;
        if (vo_now_ms() > give_up)
            return -ETIMEDOUT;
        sleep_ms(1);
    }
}

static void stop_etcd(void)
{
    if (etcd_pid > 0)
        kill_wait(etcd_pid);
    etcd_pid = -1;
    if (etcd_dir[0])
        (void)vo_rm_rf(etcd_dir);
    etcd_dir[0] = '\0';
}

/* Starts one etcd member; 0 once it answers (bounded wait), else -errno. */
static int start_etcd(void)
{
    strcpy(etcd_dir, "/tmp/vireo-test-etcd-XXXXXX");
    if (!mkdtemp(etcd_dir))
        return -errno;
    int cport = free_port();
    if (cport < 0)
        return -EADDRINUSE;
    snprintf(client_url, sizeof(client_url), "http://127.0.0.1:%d", cport);
    etcd_pid = spawn_etcd(etcd_dir, client_url, false);
    if (etcd_pid < 0)
        return -errno;
    VoStore *s = NULL;
    int r = open_store(NULL, 1000, &s);
    if (r < 0)
        return r;
    r = wait_ready(s, etcd_pid);
    vo_store_close(s);
    return r;
}

/* A raw request to etcd's gateway, past the store (0 or -1). */
static int etcd_post(const char *path, const char *body)
{
    CURL *c = curl_easy_init();
    _cleanup_free_ char *url = vo_asprintf("%s%s", client_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    CURLcode cr = curl_easy_perform(c);
    long http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(c);
    fclose(null);
    return cr == CURLE_OK && http == 200 ? 0 : -1;
}

/* ---- the contract: a fresh host id each time, or the whole vireo/
 * namespace emptied for a raw handle ---- */

static int host_open(void *userdata, VoStore **ret)
{
    _cleanup_free_ char *id = vo_asprintf("host-%d-%d", (int)getpid(), ++store_counter);
    return open_store(id, 0, ret);
}

static int raw_open(void *userdata, VoStore **ret)
{
    /* deleterange of ["vireo/", "vireo0") (base64). */
    if (etcd_post("/v3/kv/deleterange", "{\"key\":\"dmlyZW8v\",\"range_end\":\"dmlyZW8w\"}") < 0)
        return -EIO;
    return open_store(NULL, 0, ret);
}

static void backend_close(void *userdata, VoStore *s)
{
    vo_store_close(s);
}

/* ---- etcd only ---- */

static int setup(void **state)
{
    VoStore *s = NULL;
    if (host_open(NULL, &s) < 0)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    vo_store_close(*state);
    return 0;
}

typedef struct {
    char *keys[8];
    size_t n;
} Keys;

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    Keys *k = userdata;
    if (k->n == ELEMENTSOF(k->keys))
        return -E2BIG;
    k->keys[k->n++] = vo_strdup(key);
    return 0;
}

static void keys_clear(Keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    k->n = 0;
}

/* Reads one batch of events (bounded); returns how many. */
static size_t next_events(VoStore *s, VoStoreWatch *w, VoStoreEvent **ret)
{
    int64_t give_up = vo_now_ms() + WAIT_MS;
    size_t n = 0;
    *ret = NULL;
    while (n == 0 && vo_now_ms() < give_up)
        assert_int_equal(s->ops->watch_next(w, 200, ret, &n), 0);
    return n;
}

/* Host keys land under vireo/h/<host-id>/, cluster/ keys under
 * vireo/cluster/, as a raw handle sees them. */
static void test_key_mapping(void **state)
{
    _cleanup_free_ char *id = vo_asprintf("map-%d", (int)getpid());
    VoStore *h = NULL, *raw = NULL;
    assert_int_equal(open_store(id, 0, &h), 0);
    assert_int_equal(open_store(NULL, 0, &raw), 0);
    int64_t start = 0, rv = 0, rc = 0;
    assert_int_equal(h->ops->revision(h, &start), 0);
    VoStoreWatch *wh = NULL, *wc = NULL;
    assert_int_equal(h->ops->watch_open(h, "", start, &wh), 0);
    assert_int_equal(h->ops->watch_open(h, "cluster/", start, &wc), 0);

    _cleanup_free_ char *cluster_key = vo_asprintf("cluster/hosts/%s", id);
    assert_int_equal(vo_store_put(h, "vms/a", "\"a\"", VO_REV_NEW, &rv), 0);
    assert_int_equal(vo_store_put(h, cluster_key, "\"me\"", VO_REV_NEW, &rc), 0);

    _cleanup_free_ char *raw_vm = vo_asprintf("h/%s/vms/a", id);
    _cleanup_free_ char *v = NULL;
    int64_t rev = 0;
    assert_int_equal(vo_store_get(raw, raw_vm, &v, &rev), 0);
    assert_string_equal(v, "\"a\"");
    assert_int_equal(rev, rv);
    free(v);
    v = NULL;
    assert_int_equal(vo_store_get(raw, cluster_key, &v, &rev), 0);
    assert_string_equal(v, "\"me\"");
    assert_int_equal(rev, rc);
    assert_int_equal(vo_store_get(raw, "vms/a", NULL, NULL), -ENOENT);
    _cleanup_free_ char *nested = vo_asprintf("h/%s/%s", id, cluster_key);
    assert_int_equal(vo_store_get(raw, nested, NULL, NULL), -ENOENT);

    /* "" on a host handle: its own documents only; cluster/ is the cluster's. */
    Keys k = { 0 };
    assert_int_equal(vo_store_list(h, "", collect, &k), 0);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0], "vms/a");
    keys_clear(&k);
    assert_int_equal(vo_store_list(h, "cluster/hosts/", collect, &k), 0);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0], cluster_key);
    keys_clear(&k);
    _cleanup_free_ char *raw_prefix = vo_asprintf("h/%s/", id);
    assert_int_equal(vo_store_list(raw, raw_prefix, collect, &k), 0);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.keys[0], raw_vm);
    keys_clear(&k);

    /* Watches map the same way. */
    VoStoreEvent *ev = NULL;
    assert_int_equal(next_events(h, wh, &ev), 1);
    assert_string_equal(ev[0].key, "vms/a");
    vo_store_events_free(ev, 1);
    assert_int_equal(next_events(h, wc, &ev), 1);
    assert_string_equal(ev[0].key, cluster_key);
    assert_int_equal(ev[0].rev, rc);
    vo_store_events_free(ev, 1);
    h->ops->watch_close(wh);
    h->ops->watch_close(wc);

    /* A bad host id or endpoint list is refused. */
    VoStore *bad = NULL;
    VoEtcdOptions o = { .endpoints = client_url, .host_id = "a/b" };
    assert_int_equal(vo_store_open_etcd(&o, &bad), -EINVAL);
    o = (VoEtcdOptions){ .endpoints = "127.0.0.1:2379" };
    assert_int_equal(vo_store_open_etcd(&o, &bad), -EINVAL);
    o = (VoEtcdOptions){ .endpoints = "" };
    assert_int_equal(vo_store_open_etcd(&o, &bad), -EINVAL);
    assert_int_equal(vo_store_delete(raw, cluster_key, rc), 0);
    vo_store_close(raw);
    vo_store_close(h);
}

/* etcd holds at most 128 operations in a transaction: more is -E2BIG and
 * nothing is written. */
static void test_txn_limit(void **state)
{
    VoStore *s = *state;
    VoStoreOp ops[VO_STORE_ETCD_MAX_TXN_OPS + 1];
    char keys[ELEMENTSOF(ops)][16];
    for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
        snprintf(keys[i], sizeof(keys[i]), "k/%zu", i);
        ops[i] = (VoStoreOp){ VO_STORE_PUT, keys[i], "1", 0 };
    }
    int64_t before = 0, rev = 0;
    assert_int_equal(s->ops->revision(s, &before), 0);
    assert_int_equal(vo_store_txn(s, NULL, 0, ops, ELEMENTSOF(ops), &rev, NULL), -E2BIG);
    assert_int_equal(vo_store_get(s, "k/0", NULL, NULL), -ENOENT);
    VoStoreCompare cmps[VO_STORE_ETCD_MAX_TXN_OPS + 1];
    for (size_t i = 0; i < ELEMENTSOF(cmps); i++)
        cmps[i] = (VoStoreCompare){ keys[i], VO_REV_NEW };
    assert_int_equal(vo_store_txn(s, cmps, ELEMENTSOF(cmps), ops, 1, &rev, NULL), -E2BIG);

    /* 128 of each is fine, and the failing one of 128 compares is found. */
    assert_int_equal(vo_store_txn(s, cmps, VO_STORE_ETCD_MAX_TXN_OPS, ops,
                                  VO_STORE_ETCD_MAX_TXN_OPS, &rev, NULL), 0);
    assert_int_equal(rev, before + 1);
    cmps[100].expected_rev = rev;
    size_t failed = 0;
    assert_int_equal(vo_store_txn(s, cmps + 99, 2, NULL, 0, NULL, &failed), -EEXIST);
    assert_int_equal(failed, 0);
    cmps[99].expected_rev = rev;
    cmps[100].expected_rev = rev + 7;
    assert_int_equal(vo_store_txn(s, cmps + 99, 2, NULL, 0, NULL, &failed), -ESTALE);
    assert_int_equal(failed, 1);
}

/* A key on a lease nobody renews goes as a delete a watch sees. */
static void test_lease_expiry_watched(void **state)
{
    VoStore *s = *state;
    int64_t lease = 0, start = 0, rev = 0;
    assert_int_equal(s->ops->revision(s, &start), 0);
    assert_int_equal(s->ops->lease_grant(s, 1000, &lease), 0);
    assert_int_equal(vo_store_put_lease(s, "hosts/me", "\"up\"", VO_REV_NEW, lease, &rev), 0);
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "hosts/", start, &w), 0);
    VoStoreEvent *ev = NULL;
    assert_int_equal(next_events(s, w, &ev), 1);
    assert_int_equal(ev[0].kind, VO_STORE_PUT);
    vo_store_events_free(ev, 1);
    assert_int_equal(next_events(s, w, &ev), 1);
    assert_int_equal(ev[0].kind, VO_STORE_DELETE);
    assert_string_equal(ev[0].key, "hosts/me");
    assert_string_equal(ev[0].prev_value, "\"up\"");
    assert_null(ev[0].value);
    assert_true(ev[0].rev > rev);
    vo_store_events_free(ev, 1);
    s->ops->watch_close(w);
    assert_int_equal(s->ops->lease_keepalive(s, lease), -ENOENT);
    assert_int_equal(s->ops->lease_revoke(s, lease), -ENOENT);
}

/* A client behind a compaction learns it, lists again and watches from the
 * list's revision: it sees every later change. */
static void test_compaction_relist(void **state)
{
    VoStore *s = *state;
    int64_t start = 0, rev = VO_REV_NEW, compacted = 0;
    assert_int_equal(s->ops->revision(s, &start), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(vo_store_put(s, "vms/a", "1", rev, &rev), 0);
    assert_int_equal(s->ops->compact(s, rev), 0);
    assert_int_equal(s->ops->compacted(s, &compacted), 0);
    assert_int_equal(compacted, rev);

    /* Another handle (no memory of the compaction) finds it too. */
    VoStore *other = NULL;
    assert_int_equal(open_store(NULL, 0, &other), 0);
    assert_int_equal(other->ops->compacted(other, &compacted), 0);
    assert_int_equal(compacted, rev);
    vo_store_close(other);

    VoStoreWatch *w = NULL;
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->watch_open(s, "vms/", start, &w), 0);
    assert_int_equal(s->ops->watch_next(w, 0, &ev, &n), VO_STORE_ECOMPACTED);
    s->ops->watch_close(w);

    Keys k = { 0 };
    int64_t at = 0;
    assert_int_equal(s->ops->list(s, "vms/", collect, &k, &at), 0);
    assert_int_equal(k.n, 1);
    keys_clear(&k);
    assert_int_equal(s->ops->watch_open(s, "vms/", at, &w), 0);
    int64_t r2 = 0;
    assert_int_equal(vo_store_put(s, "vms/b", "2", VO_REV_NEW, &r2), 0);
    assert_int_equal(next_events(s, w, &ev), 1);
    assert_string_equal(ev[0].key, "vms/b");
    assert_int_equal(ev[0].rev, r2);
    vo_store_events_free(ev, 1);
    s->ops->watch_close(w);
}

static const char *cached_state(VoPlaceCache *c, const char *host)
{
    vo_place_cache_lock(c);
    const char *v = json_string_value(
        json_object_get(vo_place_cache_doc(c, VO_PLACE_CACHE_P_RECORDS, host), "state"));
    vo_place_cache_unlock(c);
    return v;
}

/* The manager's placement cache (cluster/place-cache.c) on etcd: writes
 * it never watched (compacted before its watch started) are listed again;
 * then it follows a record's change and a host's deletion. */
static void test_place_cache(void **state)
{
    VoStore *s = *state;
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, "cluster/members/pc-1", "{\"id\":\"pc-1\",\"name\":\"a\"}",
                                  VO_REV_ANY, NULL), 0);
    assert_int_equal(vo_store_put(s, "cluster/hosts/pc-1", "{\"state\":\"online\"}", VO_REV_ANY,
                                  NULL), 0);
    VoPlaceCache *c = vo_place_cache_new(s);
    int64_t from = 0;
    assert_int_equal(vo_place_cache_load(c, &from), 0);
    assert_string_equal(cached_state(c, "pc-1"), "online");
    assert_int_equal(vo_store_put(s, "cluster/hosts/pc-1", "{\"state\":\"maintenance\"}",
                                  VO_REV_ANY, NULL), 0);
    assert_int_equal(vo_store_put(s, "vms/pc", "{}", VO_REV_ANY, &rev), 0);
    assert_int_equal(s->ops->compact(s, rev), 0);
    assert_int_equal(vo_place_cache_start(c), 0); /* its watch: compacted, so it lists */
    assert_true(vo_place_cache_wait(c, rev, WAIT_MS));
    assert_string_equal(cached_state(c, "pc-1"), "maintenance");
    assert_int_equal(vo_store_put(s, "cluster/hosts/pc-1", "{\"state\":\"online\"}", VO_REV_ANY,
                                  &rev), 0);
    assert_true(vo_place_cache_wait(c, rev, WAIT_MS));
    assert_string_equal(cached_state(c, "pc-1"), "online");
    assert_int_equal(vo_store_delete(s, "cluster/hosts/pc-1", VO_REV_ANY), 0);
    assert_int_equal(vo_store_delete(s, "cluster/members/pc-1", VO_REV_ANY), 0);
    /* Bounded wait for the later of the two deletes. */
    bool member = true;
    for (int64_t give_up = vo_now_ms() + WAIT_MS; member && vo_now_ms() < give_up;) {
        vo_place_cache_lock(c);
        member = vo_place_cache_doc(c, VO_PLACE_CACHE_P_MEMBERS, "pc-1") != NULL;
        vo_place_cache_unlock(c);
        if (member)
            sleep_ms(20);
    }
    assert_false(member);
    assert_null(cached_state(c, "pc-1"));
    vo_place_cache_free(c);
}

/* etcd stopped (no answer, as without quorum): a read returns -EAGAIN
 * within the timeout; a write that was sent does not say "nothing changed"
 * (etcd may apply it once it runs again) but VO_STORE_EUNKNOWN; once it
 * runs again, writes work. */
static void test_no_quorum(void **state)
{
    VoStore *s = NULL;
    _cleanup_free_ char *id = vo_asprintf("quorum-%d", (int)getpid());
    assert_int_equal(open_store(id, 1500, &s), 0);
    int64_t lease = 0, ra = 0;
    assert_int_equal(s->ops->lease_grant(s, 60000, &lease), 0);
    assert_int_equal(vo_store_put(s, "vms/a", "1", VO_REV_NEW, &ra), 0);
    /* Every thread stopped before the put: a thread still running would
     * answer it at once. */
    assert_int_equal(stop_child(etcd_pid), 0);
    int r = vo_store_put(s, "vms/b", "1", VO_REV_NEW, NULL);
    int g = vo_store_get(s, "vms/a", NULL, NULL);
    int d = vo_store_delete(s, "vms/a", ra);
    int k = s->ops->lease_keepalive(s, lease);
    assert_int_equal(kill(etcd_pid, SIGCONT), 0);
    assert_int_equal(r, VO_STORE_EUNKNOWN);
    assert_int_equal(g, -EAGAIN);
    assert_int_equal(d, VO_STORE_EUNKNOWN);
    assert_int_equal(k, VO_STORE_EUNKNOWN);
    assert_string_equal(s->ops->unavailable_message, "cluster has no quorum");
    assert_non_null(strstr(s->ops->unknown_message, "may or may not"));
    int64_t give_up = vo_now_ms() + WAIT_MS;
    while ((r = vo_store_put(s, "vms/c", "1", VO_REV_NEW, NULL)) < 0 && vo_now_ms() < give_up)
        sleep_ms(100);
    assert_int_equal(r, 0);
    /* What timed out was either applied or not: the store is whole. */
    int b = vo_store_get(s, "vms/b", NULL, NULL);
    assert_true(b == 0 || b == -ENOENT);
    vo_store_close(s);

    /* Nobody listening: nothing was sent, so -EAGAIN for writes too. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
    VoEtcdOptions o = { .endpoints = url, .timeout_ms = 1500 };
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    assert_int_equal(vo_store_get(s, "x", NULL, NULL), -EAGAIN);
    assert_int_equal(vo_store_put(s, "x", "1", VO_REV_NEW, NULL), -EAGAIN);
    assert_int_equal(s->ops->lease_grant(s, 5000, &lease), -EAGAIN);
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "", 0, &w), -EAGAIN);
    vo_store_close(s);
}

/* An etcd of its own that a test stops and starts again on its data. */
typedef struct {
    char dir[64];
    char url[64];
    int peer;
    pid_t pid;
} Member;

static void member_start(Member *m, const char *url)
{
    if (url != m->url)
        snprintf(m->url, sizeof(m->url), "%s", url);
    m->pid = spawn_etcd_peer(m->dir, m->url, m->peer, false);
    assert_true(m->pid > 0);
    VoStore *s = NULL;
    VoEtcdOptions o = { .endpoints = m->url, .timeout_ms = 1000 };
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    int r = wait_ready(s, m->pid);
    vo_store_close(s);
    assert_int_equal(r, 0);
}

static void member_new(Member *m)
{
    strcpy(m->dir, "/tmp/vireo-test-etcd-m-XXXXXX");
    assert_non_null(mkdtemp(m->dir));
    m->peer = free_port();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
    member_start(m, url);
}

static void member_stop(Member *m)
{
    if (m->pid > 0)
        kill_wait(m->pid);
    m->pid = -1;
}

static void member_free(Member *m)
{
    member_stop(m);
    if (m->dir[0])
        (void)vo_rm_rf(m->dir);
    m->dir[0] = '\0';
}

/* The test's own member, gone after it whatever happened. */
static Member member;

static int member_teardown(void **state)
{
    member_free(&member);
    return 0;
}

/* Reads until VO_STORE_ECOMPACTED or a change (bounded); returns the
 * first error or 0, the changes read in *ret_n. */
static int read_until(VoStore *s, VoStoreWatch *w, size_t *ret_n)
{
    /* (What came, should a test fail.) */
    int64_t give_up = vo_now_ms() + WAIT_MS;
    *ret_n = 0;
    while (vo_now_ms() < give_up) {
        VoStoreEvent *ev = NULL;
        size_t n = 0;
        int r = s->ops->watch_next(w, 200, &ev, &n);
        for (size_t i = 0; i < n; i++)
            print_message("event %s %s at %lld\n", ev[i].kind == VO_STORE_PUT ? "PUT" : "DELETE",
                          ev[i].key, (long long)ev[i].rev);
        vo_store_events_free(ev, n);
        *ret_n += n;
        if (r < 0 || n > 0)
            return r;
    }
    return 0;
}

/* Holds on a new stream's check of its start (store-etcd-watch.c's hold
 * points etcd-watch-check, then etcd-watch-checking), as files in a
 * directory named by $VIREO_FAKE_FAULTS. */
typedef struct {
    char dir[40];
    char *hold, *held, *checking, *checking_at;
} CheckHolds;

static void check_holds_set(CheckHolds *h)
{
    snprintf(h->dir, sizeof(h->dir), "/tmp/vireo-test-holds.XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    h->hold = vo_asprintf("%s/etcd-watch-check.hold", h->dir);
    h->held = vo_asprintf("%s/etcd-watch-check.held", h->dir);
    h->checking = vo_asprintf("%s/etcd-watch-checking.hold", h->dir);
    h->checking_at = vo_asprintf("%s/etcd-watch-checking.held", h->dir);
    assert_int_equal(vo_write_file_atomic(h->hold, "", 0), 0);
    assert_int_equal(vo_write_file_atomic(h->checking, "", 0), 0);
    setenv("VIREO_FAKE_FAULTS", h->dir, 1);
}

static void wait_for_file(const char *path)
{
    for (int i = 0; i < 300 && access(path, F_OK) != 0; i++)
        poll(NULL, 0, 100);
    assert_int_equal(access(path, F_OK), 0);
}

/* The new stream is created and held before its check; what was changed
 * meanwhile reaches it; then it is held again just before the check. */
static void check_holds_reach(CheckHolds *h)
{
    wait_for_file(h->held);
    poll(NULL, 0, 1000); /* noqa: the changes reach the socket (not a sync) */
    unlink(h->hold);
    wait_for_file(h->checking_at);
}

static void check_holds_clear(CheckHolds *h)
{
    if (!h->dir[0])
        return;
    unsetenv("VIREO_FAKE_FAULTS");
    const char *files[] = { h->hold, h->held, h->checking, h->checking_at };
    for (size_t i = 0; i < 4; i++) {
        (void)unlink(files[i]);
        free((char *)files[i]);
    }
    (void)rmdir(h->dir);
    h->dir[0] = '\0';
}

/* A watch whose stream broke (etcd restarted) while a delete happened and
 * the log was compacted right at that delete's revision: etcd would resume
 * it there without the delete; the watch says VO_STORE_ECOMPACTED. held:
 * the change after the gap is made before the watch comes back, and the
 * new stream's check of its start is held (hold point etcd-watch-check)
 * while the caller reads: the stream's changes must not be handed out
 * before that check (a loaded machine's reader got x/b as if nothing had
 * been missed). */
static void reconnect_compacted(bool held)
{
    Member *m = &member;
    member_new(m);
    char first_url[64];
    memcpy(first_url, m->url, sizeof(first_url));
    VoStore *s = NULL, *other = NULL;
    VoEtcdOptions o = { .endpoints = m->url, .host_id = "rc", .timeout_ms = 2000 };
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    int64_t start = 0, ra = 0, rd = 0, rb = 0;
    assert_int_equal(s->ops->revision(s, &start), 0);
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "x/", start, &w), 0);
    assert_int_equal(vo_store_put(s, "x/a", "1", VO_REV_NEW, &ra), 0);
    VoStoreEvent *ev = NULL;
    assert_int_equal(next_events(s, w, &ev), 1);
    assert_int_equal(ev[0].rev, ra);
    vo_store_events_free(ev, 1);

    /* The watcher cannot reach the member while it runs on another port. */
    member_stop(m);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", free_port());
    member_start(m, url);
    o.endpoints = m->url;
    assert_int_equal(vo_store_open_etcd(&o, &other), 0);
    assert_int_equal(vo_store_delete(other, "x/a", ra), 0);
    assert_int_equal(other->ops->revision(other, &rd), 0);
    assert_int_equal(rd, ra + 1);
    assert_int_equal(other->ops->compact(other, rd), 0);
    int64_t c = 0;
    assert_int_equal(other->ops->compacted(other, &c), 0);
    assert_int_equal(c, rd);
    CheckHolds h = { .dir = "" };
    if (held) {
        assert_int_equal(vo_store_put(other, "x/b", "2", VO_REV_NEW, &rb), 0);
        check_holds_set(&h);
    }
    vo_store_close(other);
    member_stop(m);
    member_start(m, first_url);

    size_t n = 0;
    if (held) {
        /* The new stream is created; its changes (x/b) come and are
         * queued while its check waits: none is handed out meanwhile. */
        check_holds_reach(&h);
        pthread_mutex_lock(&w->lock);
        size_t queued = w->n; /* x/b came: the read below could take it */
        pthread_mutex_unlock(&w->lock);
        VoStoreEvent *early = NULL;
        assert_int_equal(s->ops->watch_next(w, 1500, &early, &n), 0);
        for (size_t i = 0; i < n; i++)
            print_message("early event %s at %lld\n", early[i].key, (long long)early[i].rev);
        vo_store_events_free(early, n);
        unlink(h.checking);
        assert_int_equal(queued, 1);
        assert_int_equal(n, 0);
    } else
        assert_int_equal(vo_store_put(s, "x/b", "2", VO_REV_NEW, &rb), 0);
    int r = read_until(s, w, &n);
    check_holds_clear(&h);
    s->ops->watch_close(w);
    vo_store_close(s);
    member_free(m);
    assert_int_equal(n, 0); /* not x/b as if nothing was missed */
    assert_int_equal(r, VO_STORE_ECOMPACTED);
}

static void test_watch_reconnect_compacted(void **state)
{
    (void)state;
    reconnect_compacted(false);
}

static void test_watch_unchecked_stream_holds_its_changes(void **state)
{
    (void)state;
    reconnect_compacted(true);
}

/* A reader that takes the changes queued before a stream whose start is
 * not yet checked (a partial hand-out) leaves only that stream's counted
 * against the queue's bound: the count kept every byte before, so a large
 * queue read while its stream restarted could be dropped as unread. */
static void test_watch_partial_read_counts_what_stays(void **state)
{
    (void)state;
    Member *m = &member;
    member_new(m);
    VoStore *s = NULL;
    VoEtcdOptions o = { .endpoints = m->url, .host_id = "pr", .timeout_ms = 2000 };
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    int64_t start = 0, ra = 0, rb = 0;
    assert_int_equal(s->ops->revision(s, &start), 0);
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "x/", start, &w), 0);
    assert_int_equal(vo_store_put(s, "x/a", "1", VO_REV_NEW, &ra), 0);
    size_t queued = 0;
    for (int i = 0; i < 300 && queued == 0; i++) { /* x/a queued, not read */
        poll(NULL, 0, 100);
        pthread_mutex_lock(&w->lock);
        queued = w->n;
        pthread_mutex_unlock(&w->lock);
    }
    assert_int_equal(queued, 1);
    CheckHolds h = { .dir = "" };
    check_holds_set(&h);
    member_stop(m);
    member_start(m, m->url);
    wait_for_file(h.held);
    assert_int_equal(vo_store_put(s, "x/b", "2", VO_REV_NEW, &rb), 0);
    check_holds_reach(&h);
    pthread_mutex_lock(&w->lock);
    queued = w->n;
    pthread_mutex_unlock(&w->lock);
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    int r = s->ops->watch_next(w, 0, &ev, &n);
    pthread_mutex_lock(&w->lock);
    size_t left = w->n, bytes = w->queued_bytes;
    pthread_mutex_unlock(&w->lock);
    unlink(h.checking);
    int64_t first = n > 0 ? ev[0].rev : 0;
    vo_store_events_free(ev, n);
    VoStoreEvent *later = NULL;
    size_t n_later = next_events(s, w, &later);
    int64_t second = n_later > 0 ? later[0].rev : 0;
    vo_store_events_free(later, n_later);
    pthread_mutex_lock(&w->lock);
    size_t bytes_after = w->queued_bytes;
    pthread_mutex_unlock(&w->lock);
    check_holds_clear(&h);
    s->ops->watch_close(w);
    vo_store_close(s);
    member_free(m);
    assert_int_equal(queued, 2); /* x/a, and x/b of the held stream */
    assert_int_equal(r, 0);
    assert_int_equal(n, 1);
    assert_int_equal(first, ra);
    assert_int_equal(left, 1);
    assert_int_equal(bytes, strlen("x/b") + strlen("2")); /* x/b's alone */
    assert_int_equal(n_later, 1);
    assert_int_equal(second, rb);
    assert_int_equal(bytes_after, 0);
}

/* A watch of keys nobody changes follows the store's revision (progress
 * notices): a compaction of other keys' changes does not cost it a re-list
 * when its stream breaks. */
static void test_watch_quiet_progress(void **state)
{
    Member *m = &member;
    member_new(m);
    VoStore *s = NULL;
    VoEtcdOptions o = { .endpoints = m->url, .host_id = "qp", .timeout_ms = 2000 };
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    int64_t start = 0, rev = VO_REV_NEW;
    assert_int_equal(s->ops->revision(s, &start), 0);
    VoStoreWatch *w = NULL;
    assert_int_equal(s->ops->watch_open(s, "quiet/", start, &w), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(vo_store_put(s, "busy/a", "1", rev, &rev), 0);
    /* Progress notices come every 200 ms (spawn_etcd_peer): 10 of them. */
    sleep_ms(2000);
    assert_int_equal(s->ops->compact(s, rev), 0);
    member_stop(m);
    member_start(m, m->url);
    int64_t rq = 0;
    assert_int_equal(vo_store_put(s, "quiet/a", "1", VO_REV_NEW, &rq), 0);
    size_t n = 0;
    int r = read_until(s, w, &n);
    s->ops->watch_close(w);
    vo_store_close(s);
    member_free(m);
    assert_int_equal(r, 0);
    assert_int_equal(n, 1);
}

/* Mutual TLS: a handle with the cluster's CA and a host certificate talks
 * to an etcd that wants one; without the certificate it is refused
 * (-EACCES, not "no quorum"), and with a CA file that does not vouch for
 * the server -EACCES. */
static void test_tls(void **state)
{
    if (access("/usr/bin/openssl", X_OK) != 0) {
        print_message("/usr/bin/openssl is not installed: TLS is not tested\n");
        skip();
    }
    char dir[] = "/tmp/vireo-test-etcd-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *cmd = vo_asprintf(
        "cd %s && exec >openssl.log 2>&1 && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
        "-out ca.crt -days 2 -subj /CN=test-ca && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout host.key "
        "-out host.csr -subj /CN=host && "
        "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' >ext && "
        "openssl x509 -req -in host.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out host.crt "
        "-days 2 -extfile ext && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
        "-out other.crt -days 2 -subj /CN=other-ca", dir);
    assert_int_equal(system(cmd), 0);
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", free_port());
    pid_t pid = spawn_etcd(dir, url, true);
    assert_true(pid > 0);
    _cleanup_free_ char *ca = vo_asprintf("%s/ca.crt", dir);
    _cleanup_free_ char *cert = vo_asprintf("%s/host.crt", dir);
    _cleanup_free_ char *key = vo_asprintf("%s/host.key", dir);
    VoEtcdOptions o = { .endpoints = url, .host_id = "tls", .ca_file = ca, .cert_file = cert,
                        .key_file = key, .timeout_ms = 2000 };
    VoStore *s = NULL, *anon = NULL;
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    int ready = wait_ready(s, pid);
    int64_t rev = 0;
    int put = vo_store_put(s, "vms/a", "1", VO_REV_NEW, &rev);
    _cleanup_free_ char *v = NULL;
    int get = vo_store_get(s, "vms/a", &v, NULL);
    VoStoreWatch *w = NULL;
    int watch = s->ops->watch_open(s, "vms/", 0, &w);
    VoStoreEvent *ev = NULL;
    size_t n = watch == 0 ? next_events(s, w, &ev) : 0;
    o.cert_file = o.key_file = NULL;
    assert_int_equal(vo_store_open_etcd(&o, &anon), 0);
    int refused = vo_store_get(anon, "vms/a", NULL, NULL);
    int refused_put = vo_store_put(anon, "vms/b", "1", VO_REV_NEW, NULL);
    /* A server its CA file does not vouch for: -EACCES, not "no quorum". */
    VoStore *wrong = NULL;
    _cleanup_free_ char *other_ca = vo_asprintf("%s/other.crt", dir);
    o = (VoEtcdOptions){ .endpoints = url, .ca_file = other_ca, .cert_file = cert,
                         .key_file = key };
    assert_int_equal(vo_store_open_etcd(&o, &wrong), 0);
    int untrusted = vo_store_get(wrong, "vms/a", NULL, NULL);
    vo_store_close(wrong);
    if (w)
        s->ops->watch_close(w);
    vo_store_close(anon);
    vo_store_close(s);
    kill_wait(pid);
    (void)vo_rm_rf(dir);
    assert_int_equal(ready, 0);
    assert_int_equal(put, 0);
    assert_int_equal(get, 0);
    assert_string_equal(v, "1");
    assert_int_equal(watch, 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].rev, rev);
    vo_store_events_free(ev, n);
    assert_int_equal(refused, -EACCES);
    assert_int_equal(refused_put, -EACCES);
    assert_int_equal(untrusted, -EACCES);
}

int main(void)
{
    if (access(ETCD, X_OK) != 0) {
        printf("%s is not installed: the etcd backend is not tested\n", ETCD);
        return 77; /* meson: SKIP */
    }
    if (getenv("VIREO_TEST_DEBUG"))
        vo_log_set_level(VO_LOG_DEBUG);
    curl_global_init(CURL_GLOBAL_ALL);
    int r = start_etcd();
    if (r < 0) {
        fprintf(stderr, "cannot start etcd (%s); its log:\n", strerror(-r));
        _cleanup_free_ char *log = vo_asprintf("%s/etcd.log", etcd_dir);
        _cleanup_free_ char *text = NULL;
        if (vo_read_file(log, 1 << 16, &text, NULL) == 0)
            fputs(text, stderr);
        stop_etcd();
        return 1;
    }
    VoStoreBackend host = { "etcd, host handle", host_open, backend_close, NULL };
    VoStoreBackend raw = { "etcd, raw handle", raw_open, backend_close, NULL };
    /* VIREO_TEST_FILTER=test_x: only the etcd-only tests matching it. */
    const char *filter = getenv("VIREO_TEST_FILTER");
    int failed = 0;
    if (filter) {
        cmocka_set_test_filter(filter);
    } else {
        failed += vo_store_contract_run(&host);
        failed += vo_store_contract_run(&raw);
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_mapping),
        cmocka_unit_test_setup_teardown(test_txn_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry_watched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_relist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place_cache, setup, teardown),
        cmocka_unit_test(test_no_quorum),
        cmocka_unit_test_teardown(test_watch_reconnect_compacted, member_teardown),
        cmocka_unit_test_teardown(test_watch_unchecked_stream_holds_its_changes, member_teardown),
        cmocka_unit_test_teardown(test_watch_partial_read_counts_what_stays, member_teardown),
        cmocka_unit_test_teardown(test_watch_quiet_progress, member_teardown),
        cmocka_unit_test(test_tls),
    };
    failed += cmocka_run_group_tests_name("store (etcd)", tests, NULL, NULL);
    stop_etcd();
    curl_global_cleanup();
    return failed;
}
