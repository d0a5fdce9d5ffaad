/* test-etcd-live.c: two real etcd members (/usr/bin/etcd) made from this
 * code alone: a CA and two host certificates (pki.c), member 1 started as
 * a new cluster with vo_etcd_member_argv, member 2 added as a learner
 * through the gateway, started (existing), a store whose first endpoint it
 * is moving on from its refusals, promoted (bounded retry),
 * listed as two voters, then removed. Clients without a certificate of the
 * cluster CA are refused. Then the store without a quorum: two voters,
 * one stopped: reads answer from the other member, marked stale (shared by
 * both handles on the endpoints), writes fail, and once the member is back
 * reads are linearizable again. And a learner added again in the second
 * it was added and removed in (a join undone and tried again) is taken.
 * Members are started as helpers of this process (SIGKILL if it dies) and
 * killed by PID; the temporary directory goes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "cluster/etcd-member.h"
#include "cluster/pki.h"
#include "state/store.h"
#include "util/spawn.h"
#include "util/util.h"

#define WAIT_MS 30000

typedef struct {
    char *top;
    pid_t pid[2];
    int pidfd[2];
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    char tmpl[] = "/tmp/vireo-test-etcd.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    f->top = vo_strdup(tmpl);
    f->pidfd[0] = f->pidfd[1] = -1;
    *state = f;
    return 0;
}

static void stop(Fixture *f, int i)
{
    if (f->pid[i] <= 0)
        return;
    kill(f->pid[i], SIGTERM);
    struct pollfd p = { .fd = f->pidfd[i], .events = POLLIN };
    if (poll(&p, 1, 10000) <= 0)
        kill(f->pid[i], SIGKILL);
    waitpid(f->pid[i], NULL, 0);
    close(f->pidfd[i]);
    f->pid[i] = 0;
    f->pidfd[i] = -1;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    stop(f, 0);
    stop(f, 1);
    vo_rm_rf(f->top);
    free(f->top);
    free(f);
    return 0;
}

/* A port free on address now (bound and released: good enough on lo). */
static int free_port(const char *address)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    assert_int_equal(inet_pton(AF_INET, address, &a.sin_addr), 1);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t n = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
    close(s);
    return ntohs(a.sin_port);
}

typedef struct {
    char *state_dir, *run_dir, *client_url;
    char *ca, *cert, *key;
    VoEtcdEndpoint ep;
} Host;

static void host_init(Host *h, const char *top, const char *name, const char *address,
                      const VoPkiPair *ca, int client_port)
{
    h->state_dir = vo_asprintf("%s/%s-state", top, name);
    h->run_dir = vo_asprintf("%s/%s-run", top, name);
    assert_int_equal(vo_mkdir_p(h->run_dir, 0700), 0);
    _cleanup_free_ char *dir = vo_asprintf("%s/cluster", h->state_dir);
    VoPkiPair cert = { 0 };
    assert_int_equal(vo_pki_host_issue(ca, address, name, &cert, NULL), 0);
    assert_int_equal(vo_pki_pair_write(dir, "ca", ca), 0);
    assert_int_equal(vo_pki_pair_write(dir, "host", &cert), 0);
    vo_pki_pair_clear(&cert);
    h->ca = vo_asprintf("%s/ca.crt", dir);
    h->cert = vo_asprintf("%s/host.crt", dir);
    h->key = vo_asprintf("%s/host.key", dir);
    /* Through loopback, which the member listens on whatever its address. */
    h->client_url = vo_asprintf("https://127.0.0.1:%d", client_port);
    h->ep = (VoEtcdEndpoint){ .endpoint = h->client_url, .ca_file = h->ca, .cert_file = h->cert,
                              .key_file = h->key, .timeout_ms = 5000 };
}

static void host_clear(Host *h)
{
    free(h->state_dir);
    free(h->run_dir);
    free(h->client_url);
    free(h->ca);
    free(h->cert);
    free(h->key);
}

static void start(Fixture *f, int i, const VoEtcdMemberConfig *c)
{
    _cleanup_strv_ char **argv = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_etcd_member_argv(c, &argv, &err), 0);
    _cleanup_free_ char *out = vo_asprintf("%s/etcd.out", c->run_dir);
    assert_int_equal(vo_spawn_helper(argv, out, &f->pid[i], &f->pidfd[i]), 0);
}

/* Member 1 (m1 on 127.0.0.1), a new one-member cluster, started. */
static void start_first_member(Fixture *f, const Host *h1, int client_port, int peer_port)
{
    VoEtcdMemberConfig m1 = { .name = "m1", .state_dir = h1->state_dir, .run_dir = h1->run_dir,
                              .address = "127.0.0.1", .client_port = client_port,
                              .peer_port = peer_port, .cluster_id = "test-cluster",
                              .quota_backend_bytes = 64 << 20 };
    start(f, 0, &m1);
}

/* Polls /health until it answers healthy (bounded); fails with the last
 * error and the member's log tail otherwise. */
static void wait_healthy(const Fixture *f, int i, const Host *h)
{
    int64_t deadline = vo_now_ms() + WAIT_MS;
    for (;;) {
        char *err = NULL;
        int r = vo_etcd_endpoint_health(&h->ep, &err);
        if (r == 0)
            return;
        struct pollfd p = { .fd = f->pidfd[i], .events = POLLIN };
        bool died = poll(&p, 1, 200) > 0;
        if (died || vo_now_ms() > deadline) {
            _cleanup_free_ char *log = NULL;
            _cleanup_free_ char *path = vo_asprintf("%s/etcd.log", h->run_dir);
            (void)vo_read_file(path, 1 << 20, &log, NULL);
            size_t n = log ? strlen(log) : 0;
            fail_msg("etcd member %d %s: %d %s\nlog tail:\n%s", i + 1, died ? "died" : "not healthy", r,
                     err ? err : "", log ? log + (n > 3000 ? n - 3000 : 0) : "(none)");
        }
        free(err);
    }
}

/* A store whose first endpoint is a learner (a joiner's fence, its own
 * member first in cluster.json): the learner refuses the lease grant, its
 * keepalive and a write; the next member takes each (a new handle each
 * time, so that each starts at the learner). */
static VoStore *learner_first_store(const Host *voter, const Host *learner)
{
    _cleanup_free_ char *list = vo_asprintf("%s,%s", learner->client_url, voter->client_url);
    VoEtcdOptions o = { .endpoints = list, .ca_file = learner->ca, .cert_file = learner->cert,
                        .key_file = learner->key, .timeout_ms = 5000 };
    VoStore *s = NULL;
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    return s;
}

static void learner_refusal_moves_on(const Fixture *f, const Host *voter, const Host *learner)
{
    wait_healthy(f, 1, learner);
    VoStore *s = learner_first_store(voter, learner);
    int64_t lease = 0;
    assert_int_equal(s->ops->lease_grant(s, 10000, &lease), 0);
    assert_true(lease != 0);
    s = vo_store_close(s);
    s = learner_first_store(voter, learner);
    assert_int_equal(s->ops->lease_keepalive(s, lease), 0);
    s = vo_store_close(s);
    s = learner_first_store(voter, learner);
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, "learner-test", "{}", VO_REV_NEW, &rev), 0);
    s = vo_store_close(s);
}

static void test_two_members(void **state)
{
    Fixture *f = *state;
    if (access(VO_ETCD_PATH, X_OK) != 0)
        skip();
    int c1 = free_port("127.0.0.1"), p1 = free_port("127.0.0.1");
    int c2 = free_port("127.0.0.1"), p2 = free_port("127.0.0.2");
    VoPkiPair ca = { 0 };
    assert_int_equal(vo_pki_ca_make("test-cluster", &ca), 0);
    Host h1, h2;
    host_init(&h1, f->top, "m1", "127.0.0.1", &ca, c1);
    host_init(&h2, f->top, "m2", "127.0.0.2", &ca, c2);

    start_first_member(f, &h1, c1, p1);
    wait_healthy(f, 0, &h1);
    _cleanup_free_ char *log1 = vo_asprintf("%s/etcd.log", h1.run_dir);
    assert_int_equal(access(log1, F_OK), 0); /* --log-outputs took */

    /* Refused: no client certificate; a certificate of another CA. */
    char *err = NULL;
    VoEtcdEndpoint anon = { .endpoint = h1.client_url, .ca_file = h1.ca, .timeout_ms = 5000 };
    int r = vo_etcd_endpoint_health(&anon, &err);
    assert_true(r == -EPROTO || r == -ECONNRESET);
    free(err);
    err = NULL;
    VoPkiPair other_ca = { 0 }, stranger = { 0 };
    assert_int_equal(vo_pki_ca_make("other", &other_ca), 0);
    assert_int_equal(vo_pki_host_issue(&other_ca, "127.0.0.1", "m1", &stranger, NULL), 0);
    _cleanup_free_ char *sdir = vo_asprintf("%s/stranger", f->top);
    assert_int_equal(vo_pki_pair_write(sdir, "host", &stranger), 0);
    _cleanup_free_ char *scert = vo_asprintf("%s/host.crt", sdir), *skey = vo_asprintf("%s/host.key", sdir);
    VoEtcdEndpoint foreign = { .endpoint = h1.client_url, .ca_file = h1.ca, .cert_file = scert,
                               .key_file = skey, .timeout_ms = 5000 };
    r = vo_etcd_member_list(&foreign, &(VoEtcdMembers){ 0 }, &err);
    assert_true(r == -EPROTO || r == -ECONNRESET);
    free(err);
    err = NULL;
    vo_pki_pair_clear(&other_ca);
    vo_pki_pair_clear(&stranger);

    /* Member 2: a learner first. */
    _cleanup_free_ char *peer2 = vo_cluster_url("127.0.0.2", p2);
    uint64_t id2 = 0;
    _cleanup_free_ char *initial = NULL;
    assert_int_equal(vo_etcd_member_add_learner(&h1.ep, "m2", peer2, &id2, &initial, &err), 0);
    /* In etcd's order of members (by id). */
    _cleanup_free_ char *want = vo_asprintf("m1=https://127.0.0.1:%d,m2=https://127.0.0.2:%d", p1, p2);
    _cleanup_free_ char *want2 = vo_asprintf("m2=https://127.0.0.2:%d,m1=https://127.0.0.1:%d", p2, p1);
    if (strcmp(initial, want) && strcmp(initial, want2))
        fail_msg("initial cluster %s", initial);
    VoEtcdMembers m = { 0 };
    assert_int_equal(vo_etcd_member_list(&h1.ep, &m, NULL), 0);
    assert_int_equal(m.n, 2);
    for (size_t i = 0; i < m.n; i++)
        assert_int_equal(m.v[i].learner, m.v[i].id == id2);
    vo_etcd_members_clear(&m);
    /* The same peer URL twice is refused by etcd. */
    uint64_t dup_id;
    char *dup_initial = NULL;
    r = vo_etcd_member_add_learner(&h1.ep, "m3", peer2, &dup_id, &dup_initial, &err);
    if (r != -EEXIST)
        fail_msg("duplicate add: %d %s", r, err);
    assert_non_null(strstr(err, "already exist"));
    free(err);
    err = NULL;

    VoEtcdMemberConfig m2 = { .name = "m2", .state_dir = h2.state_dir, .run_dir = h2.run_dir,
                              .address = "127.0.0.2", .client_port = c2, .peer_port = p2,
                              .cluster_id = "test-cluster", .initial_cluster = initial, .existing = true,
                              .quota_backend_bytes = 64 << 20 };
    start(f, 1, &m2);
    learner_refusal_moves_on(f, &h1, &h2);
    r = vo_etcd_member_promote(&h1.ep, id2, WAIT_MS, &err);
    if (r < 0)
        fail_msg("promote: %d %s", r, err);
    wait_healthy(f, 1, &h2);
    assert_int_equal(vo_etcd_member_list(&h2.ep, &m, NULL), 0);
    assert_int_equal(m.n, 2);
    bool seen[2] = { false, false };
    for (size_t i = 0; i < m.n; i++) {
        assert_false(m.v[i].learner);
        if (!strcmp(m.v[i].name, "m1"))
            seen[0] = true;
        if (!strcmp(m.v[i].name, "m2")) {
            seen[1] = true;
            assert_true(m.v[i].id == id2);
            assert_string_equal(m.v[i].peer_urls[0], peer2);
            /* Advertised: the address only. */
            assert_int_equal(vo_strv_len(m.v[i].client_urls), 1);
        }
    }
    assert_true(seen[0] && seen[1]);
    vo_etcd_members_clear(&m);
    /* Promoting a voter again, removing a member that is not there. */
    assert_int_equal(vo_etcd_member_promote(&h1.ep, id2, 1000, &err), -EINVAL);
    assert_non_null(strstr(err, "can only promote a learner member"));
    free(err);
    err = NULL;
    assert_int_equal(vo_etcd_member_remove(&h1.ep, 12345, WAIT_MS, &err), -ENOENT);
    free(err);
    err = NULL;

    /* Remove member 2; member 1 alone again. */
    r = vo_etcd_member_remove(&h1.ep, id2, WAIT_MS, &err);
    if (r < 0)
        fail_msg("remove: %d %s", r, err);
    assert_int_equal(vo_etcd_member_list(&h1.ep, &m, NULL), 0);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.v[0].name, "m1");
    vo_etcd_members_clear(&m);
    wait_healthy(f, 0, &h1);

    stop(f, 1);
    stop(f, 0);
    host_clear(&h1);
    host_clear(&h2);
    vo_pki_pair_clear(&ca);
}

/* A join undone after its admission and tried again at once: the learner
 * added, removed and added again in the same second, which etcd would give
 * the removed member's id (from the peer URLs and the second) and refuse
 * as "member not found". The add gets a new id instead. */
static void test_learner_added_again_in_the_same_second(void **state)
{
    Fixture *f = *state;
    if (access(VO_ETCD_PATH, X_OK) != 0)
        skip();
    int c1 = free_port("127.0.0.1"), p1 = free_port("127.0.0.1");
    VoPkiPair ca = { 0 };
    assert_int_equal(vo_pki_ca_make("test-cluster", &ca), 0);
    Host h1;
    host_init(&h1, f->top, "m1", "127.0.0.1", &ca, c1);
    start_first_member(f, &h1, c1, p1);
    wait_healthy(f, 0, &h1);
    _cleanup_free_ char *peer = vo_cluster_url("127.0.0.2", free_port("127.0.0.2"));
    /* Just after a second begins: the three calls fit in it. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec ts = { .tv_nsec = 1000000000L - now.tv_nsec };
    nanosleep(&ts, NULL);
    uint64_t first = 0, again = 0;
    char *err = NULL, *initial = NULL;
    assert_int_equal(vo_etcd_member_add_learner(&h1.ep, "m2", peer, &first, &initial, &err), 0);
    free(initial);
    initial = NULL;
    int r = vo_etcd_member_remove(&h1.ep, first, WAIT_MS, &err);
    if (r < 0)
        fail_msg("remove: %d %s", r, err);
    r = vo_etcd_member_add_learner(&h1.ep, "m2", peer, &again, &initial, &err);
    if (r < 0)
        fail_msg("second add: %d %s", r, err);
    assert_true(again != first);
    free(initial);
    VoEtcdMembers m = { 0 };
    assert_int_equal(vo_etcd_member_list(&h1.ep, &m, NULL), 0);
    assert_int_equal(m.n, 2);
    vo_etcd_members_clear(&m);
    stop(f, 0);
    host_clear(&h1);
    vo_pki_pair_clear(&ca);
}

static int count_doc(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    if (!strcmp(key, "h/hA/vms/a") && strstr(value, "\"n\":1"))
        ++*(int *)userdata;
    return 0;
}

static void test_quorum_lost(void **state)
{
    Fixture *f = *state;
    if (access(VO_ETCD_PATH, X_OK) != 0)
        skip();
    int c1 = free_port("127.0.0.1"), p1 = free_port("127.0.0.1");
    int c2 = free_port("127.0.0.1"), p2 = free_port("127.0.0.2");
    VoPkiPair ca = { 0 };
    assert_int_equal(vo_pki_ca_make("test-cluster", &ca), 0);
    Host h1, h2;
    host_init(&h1, f->top, "m1", "127.0.0.1", &ca, c1);
    host_init(&h2, f->top, "m2", "127.0.0.2", &ca, c2);
    start_first_member(f, &h1, c1, p1);
    wait_healthy(f, 0, &h1);
    _cleanup_free_ char *peer2 = vo_cluster_url("127.0.0.2", p2);
    uint64_t id2 = 0;
    _cleanup_free_ char *initial = NULL;
    char *err = NULL;
    assert_int_equal(vo_etcd_member_add_learner(&h1.ep, "m2", peer2, &id2, &initial, &err), 0);
    VoEtcdMemberConfig m2 = { .name = "m2", .state_dir = h2.state_dir, .run_dir = h2.run_dir,
                              .address = "127.0.0.2", .client_port = c2, .peer_port = p2,
                              .cluster_id = "test-cluster", .initial_cluster = initial,
                              .existing = true, .quota_backend_bytes = 64 << 20 };
    start(f, 1, &m2);
    int r = vo_etcd_member_promote(&h1.ep, id2, WAIT_MS, &err);
    if (r < 0)
        fail_msg("promote: %d %s", r, err);
    wait_healthy(f, 1, &h2);

    /* A host handle and a raw one on member 1 only (a voter's own). */
    VoEtcdOptions o = { .endpoints = h1.client_url, .host_id = "hA", .ca_file = h1.ca,
                        .cert_file = h1.cert, .key_file = h1.key };
    VoStore *s = NULL, *raw = NULL;
    assert_int_equal(vo_store_open_etcd(&o, &s), 0);
    o.host_id = NULL;
    assert_int_equal(vo_store_open_etcd(&o, &raw), 0);
    int64_t rev = 0;
    assert_int_equal(vo_store_put(s, "vms/a", "{\"n\":1}", VO_REV_NEW, &rev), 0);
    vo_store_stale_reset();
    _cleanup_free_ char *v = NULL;
    assert_int_equal(vo_store_get(s, "vms/a", &v, NULL), 0);
    assert_int_equal(vo_store_stale_read(), 0);
    assert_int_equal(vo_store_stale_since(s), 0);

    /* Member 2 stops: one voter of two, no quorum. */
    stop(f, 1);
    int64_t before = vo_wall_ms();
    char *v2 = NULL;
    assert_int_equal(vo_store_get(s, "vms/a", &v2, NULL), 0); /* after etcd's timeout */
    assert_string_equal(v2, "{\"n\":1}");
    free(v2);
    int64_t since = vo_store_stale_read();
    assert_true(since >= before);
    assert_int_equal(vo_store_stale_since(s), since);
    /* The other handle knows at once; its reads are marked too. */
    assert_int_equal(vo_store_stale_since(raw), since);
    vo_store_stale_reset();
    int found = 0;
    assert_int_equal(vo_store_list(raw, "h/hA/", count_doc, &found), 0);
    assert_int_equal(found, 1);
    assert_int_equal(vo_store_stale_read(), since);
    /* A read of a missing key is still an answer. */
    assert_int_equal(vo_store_get(s, "vms/none", NULL, NULL), -ENOENT);
    /* Writes still try, and fail; the revision (linearizable) too. */
    r = vo_store_put(s, "vms/b", "{}", VO_REV_NEW, NULL);
    if (r != -EAGAIN && r != VO_STORE_EUNKNOWN)
        fail_msg("put without quorum: %d", r);
    assert_int_equal(s->ops->revision(s, &rev), -EAGAIN);
    assert_true(vo_store_stale_since(s) > 0);

    /* Member 2 back: the probe sees the quorum, reads are linearizable. */
    start(f, 1, &m2);
    int64_t deadline = vo_now_ms() + 60000;
    while (vo_store_stale_since(s) != 0) {
        if (vo_now_ms() > deadline)
            fail_msg("still stale a minute after member 2 came back");
        poll(NULL, 0, 200);
    }
    vo_store_stale_reset();
    found = 0;
    assert_int_equal(vo_store_list(raw, "h/hA/", count_doc, &found), 0);
    assert_int_equal(found, 1);
    assert_int_equal(vo_store_stale_read(), 0);
    assert_int_equal(vo_store_put(s, "vms/b", "{}", VO_REV_ANY, NULL), 0);
    assert_int_equal(vo_store_stale_since(raw), 0);

    vo_store_close(raw);
    vo_store_close(s);
    stop(f, 1);
    stop(f, 0);
    host_clear(&h1);
    host_clear(&h2);
    vo_pki_pair_clear(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quorum_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_learner_added_again_in_the_same_second, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
