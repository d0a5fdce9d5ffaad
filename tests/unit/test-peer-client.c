/* test-peer-client.c: cluster/peer-client.c and api/forward.c against a
 * small HTTPS server of the test's own (libmicrohttpd with GnuTLS, as
 * vireod's listener) on 127.0.0.1 with certificates the test makes with
 * `openssl`: requests with mutual TLS, the server's name checked, clients
 * without the CA's certificate refused, answers passed on verbatim, the
 * forwarding loop guard, what the forwarder refuses (streamed bodies and
 * answers), and upgraded streams pumped both ways (also when the first TLS
 * record after the 101 does not fit the client's head buffer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>

#include "api/access.h"
#include "api/forward.h"
#include "api/route-match.h"
#include "cluster/peer-client.h"
#include "util/util.h"

static char dir[] = "/tmp/vireo-peer-test-XXXXXX";
static char *cert, *key, *ca, *other_cert, *other_key, *other_ca;
static struct MHD_Daemon *server;
static char base_url[64];
static atomic_int n_requests;
static atomic_int n_connections; /* TCP connections the server took */

static void run(const char *cmd)
{
    char *full = vo_asprintf("cd %s && %s >/dev/null 2>&1", dir, cmd);
    int r = system(full);
    if (r != 0)
        fail_msg("failed (%d): %s", r, full);
    free(full);
}

/* A CA and a host certificate (SAN IP:127.0.0.1, serverAuth + clientAuth). */
static void make_pki(const char *prefix)
{
    char *cmd = vo_asprintf(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %1$sca.key "
        "-out %1$sca.crt -days 2 -subj /CN=%1$sca -addext basicConstraints=critical,CA:TRUE "
        "-addext keyUsage=critical,keyCertSign && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %1$shost.key "
        "-out %1$shost.csr -subj /CN=%1$shost && "
        "printf 'subjectAltName=IP:127.0.0.1,DNS:h1\\nextendedKeyUsage=serverAuth,clientAuth\\n' "
        "> %1$sext && openssl x509 -req -in %1$shost.csr -CA %1$sca.crt -CAkey %1$sca.key "
        "-CAcreateserial -out %1$shost.crt -days 2 -extfile %1$sext", prefix);
    run(cmd);
    free(cmd);
}

static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (vo_read_file(path, 1 << 20, &text, &len) < 0)
        fail_msg("cannot read %s", path);
    return text;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    json_object_set_new(cls, k, json_string(v));
    return MHD_YES;
}

/* Echo threads still running: the server is stopped only once they are
 * done (MHD frees an upgrade's handle when it stops; an echo thread that
 * closes it afterwards would touch freed memory). */
static atomic_int echo_threads;

/* The upgraded stream: echoes upper-cased until the client closes. */
static void *echo_main(void *userdata)
{
    struct MHD_UpgradeResponseHandle *urh = ((void **)userdata)[0];
    int sock = (int)(intptr_t)((void **)userdata)[1];
    free(userdata);
    /* MHD may hand over a non-blocking socket (a socketpair under TLS). */
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) & ~O_NONBLOCK);
    char buf[4096];
    ssize_t n;
    (void)!write(sock, "READY\n", 6);
    while ((n = read(sock, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        (void)!write(sock, buf, (size_t)n);
    }
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    atomic_fetch_sub(&echo_threads, 1);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra,
                       size_t extra_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    void **args = malloc(2 * sizeof(void *));
    args[0] = urh;
    args[1] = (void *)(intptr_t)sock;
    pthread_t t;
    atomic_fetch_add(&echo_threads, 1);
    if (pthread_create(&t, NULL, echo_main, args) != 0) {
        atomic_fetch_sub(&echo_threads, 1);
        free(args);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    pthread_detach(t);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                             char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                             MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

typedef struct {
    char *body;
    size_t len;
} Body;

/* GET|POST /echo: the request as JSON (method, url, headers, body) with an
 * ETag, a Location and a Retry-After; /upgrade: an echo stream; /refuse: 409
 * to an upgrade; anything without a client certificate: 401. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    if (!*con_cls) {
        *con_cls = vo_malloc0(sizeof(Body));
        return MHD_YES;
    }
    Body *b = *con_cls;
    if (*data_size) {
        b->body = realloc(b->body, b->len + *data_size + 1);
        memcpy(b->body + b->len, data, *data_size);
        b->len += *data_size;
        b->body[b->len] = 0;
        *data_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&n_requests, 1);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned n = 0, status = 1;
    if (!info || !gnutls_certificate_get_peers(info->tls_session, &n) || !n ||
        gnutls_certificate_verify_peers2(info->tls_session, &status) < 0 || status)
        return reply(c, 401, "application/json",
                     vo_strdup("{\"error\":{\"code\":\"unauthenticated\",\"message\":\"no\"}}"));
    if (!strcmp(url, "/upgrade")) {
        struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, NULL);
        MHD_add_response_header(r, "Upgrade", "vireo-console");
        enum MHD_Result ret = MHD_queue_response(c, 101, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strcmp(url, "/refuse"))
        return reply(c, 409, "application/json",
                     vo_strdup("{\"error\":{\"code\":\"invalid-state\",\"message\":\"off\"}}"));
    json_t *headers = json_object();
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_header, headers);
    json_t *args = json_object();
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_header, args);
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:s}", "method", method, "url", url,
                            "headers", headers, "args", args, "body", b->body ? b->body : "");
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text,
                                                             MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "ETag", "\"7\"");
    MHD_add_response_header(r, "Location", "/v1/tasks/t-1");
    MHD_add_response_header(r, "Retry-After", "3");
    MHD_add_response_header(r, "X-Other", "not passed on");
    if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "close"))
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, 201, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    Body *b = *con_cls;
    if (b) {
        free(b->body);
        free(b);
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&n_connections, 1);
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        fail_msg("mkdtemp: %m");
    make_pki("");
    make_pki("other-");
    cert = vo_asprintf("%s/host.crt", dir);
    key = vo_asprintf("%s/host.key", dir);
    ca = vo_asprintf("%s/ca.crt", dir);
    other_cert = vo_asprintf("%s/other-host.crt", dir);
    other_key = vo_asprintf("%s/other-host.key", dir);
    other_ca = vo_asprintf("%s/other-ca.crt", dir);
    static char *pem_cert, *pem_key, *pem_ca;
    pem_cert = slurp(cert);
    pem_key = slurp(key);
    pem_ca = slurp(ca);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    server = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                  MHD_USE_POLL | MHD_USE_TLS | MHD_ALLOW_UPGRADE | MHD_USE_ITC,
                              0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_HTTPS_MEM_CERT, pem_cert, MHD_OPTION_HTTPS_MEM_KEY,
                              pem_key, MHD_OPTION_HTTPS_MEM_TRUST, pem_ca,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    assert_non_null(server);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(base_url, sizeof(base_url), "https://127.0.0.1:%u", info->port);
    return 0;
}

static int teardown(void **state)
{
    /* Every test closed its streams: their echo threads end (bounded). */
    for (int i = 0; i < 500 && atomic_load(&echo_threads) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(server);
    char *cmd = vo_asprintf("rm -rf %s", dir);
    (void)!system(cmd);
    free(cmd);
    return 0;
}

static VoPeerTls tls(void)
{
    return (VoPeerTls){ .cert_file = cert, .key_file = key, .ca_file = ca };
}

static void test_request_with_mutual_tls(void **state)
{
    VoPeerTls t = tls();
    const char *headers[] = { "If-Match: \"5\"", "Content-Type: application/json", NULL };
    VoPeerResponse resp;
    assert_int_equal(vo_peer_request(&t, base_url, "POST", "/echo?x=1&y=%2F", headers,
                                     "{\"a\":1}", 7, 5000, &resp), 0);
    assert_int_equal(resp.status, 201);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.etag, "\"7\"");
    assert_string_equal(resp.location, "/v1/tasks/t-1");
    assert_string_equal(resp.retry_after, "3");
    json_t *doc = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(doc, "url")), "/echo");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "args"), "y")),
                        "/");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "{\"a\":1}");
    json_t *h = json_object_get(doc, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "If-Match")), "\"5\"");
    assert_null(json_object_get(h, "Expect"));
    json_decref(doc);
    vo_peer_response_clear(&resp);

    /* DELETE and GET without a body. */
    assert_int_equal(vo_peer_request(&t, base_url, "DELETE", "/echo", NULL, NULL, 0, 5000,
                                     &resp), 0);
    assert_int_equal(resp.status, 201);
    assert_non_null(strstr(resp.body, "\"method\":\"DELETE\""));
    vo_peer_response_clear(&resp);
}

typedef struct {
    int failures;
} Burst;

static void *burst_main(void *userdata)
{
    Burst *b = userdata;
    VoPeerTls t = tls();
    for (int i = 0; i < 10; i++) {
        VoPeerResponse resp;
        if (vo_peer_request(&t, base_url, "POST", "/echo", NULL, "{}", 2, 5000, &resp) < 0 ||
            resp.status != 201)
            b->failures++;
        vo_peer_response_clear(&resp);
    }
    return NULL;
}

/* Requests one after another reuse one connection (no TCP connection and
 * TLS handshake each); threads at once each get an answer. */
static void test_connections_reused(void **state)
{
    VoPeerTls t = tls();
    VoPeerResponse resp;
    assert_int_equal(vo_peer_request(&t, base_url, "GET", "/echo", NULL, NULL, 0, 5000, &resp),
                     0);
    vo_peer_response_clear(&resp);
    int before = atomic_load(&n_connections);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(vo_peer_request(&t, base_url, "POST", "/echo", NULL, "{\"i\":1}", 7,
                                         5000, &resp), 0);
        assert_int_equal(resp.status, 201);
        assert_non_null(strstr(resp.body, "{\\\"i\\\":1}"));
        vo_peer_response_clear(&resp);
    }
    assert_int_equal(atomic_load(&n_connections), before);
    /* A client of another certificate never gets that connection. */
    VoPeerTls stranger = { .cert_file = other_cert, .key_file = other_key, .ca_file = ca };
    assert_int_equal(vo_peer_request(&stranger, base_url, "GET", "/echo", NULL, NULL, 0, 5000,
                                     &resp), 0);
    assert_int_equal(resp.status, 401);
    vo_peer_response_clear(&resp);
    assert_int_equal(atomic_load(&n_connections), before + 1);
    /* Four threads at once, 10 requests each. */
    pthread_t th[4];
    Burst b[4] = { 0 };
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, burst_main, &b[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(b[i].failures, 0);
    }
    assert_true(atomic_load(&n_connections) <= before + 1 + 4);
}

/* Many threads at once, many requests each, some answered with the
 * connection closed: every request gets its answer, and no connection is
 * ever used by two threads at once (libcurl does not support sharing its
 * connection cache between threads: CURLSHOPT_SHARE, KNOWN_BUGS). */
#define STRESS_THREADS 8
#define STRESS_REQUESTS 60

static void *stress_main(void *userdata)
{
    Burst *b = userdata;
    VoPeerTls t = tls();
    for (int i = 0; i < STRESS_REQUESTS; i++) {
        VoPeerResponse resp;
        const char *path = i % 7 == 3 ? "/echo?close=1" : "/echo";
        if (vo_peer_request(&t, base_url, i % 2 ? "POST" : "GET", path, NULL,
                            i % 2 ? "{}" : NULL, i % 2 ? 2 : 0, 10000, &resp) < 0 ||
            resp.status != 201)
            b->failures++;
        vo_peer_response_clear(&resp);
    }
    return NULL;
}

static void test_threads_at_once(void **state)
{
    pthread_t th[STRESS_THREADS];
    Burst b[STRESS_THREADS] = { 0 };
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, stress_main, &b[i]), 0);
    int failures = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += b[i].failures;
    }
    assert_int_equal(failures, 0);
}

static void test_refusals(void **state)
{
    VoPeerResponse resp;
    /* No client certificate: the server's 401 is an answer. */
    VoPeerTls anonymous = { .ca_file = ca };
    assert_int_equal(vo_peer_request(&anonymous, base_url, "GET", "/echo", NULL, NULL, 0, 5000,
                                     &resp), 0);
    assert_int_equal(resp.status, 401);
    vo_peer_response_clear(&resp);
    /* A client certificate of another CA: not verified, 401 too. */
    VoPeerTls stranger = { .cert_file = other_cert, .key_file = other_key, .ca_file = ca };
    assert_int_equal(vo_peer_request(&stranger, base_url, "GET", "/echo", NULL, NULL, 0, 5000,
                                     &resp), 0);
    assert_int_equal(resp.status, 401);
    vo_peer_response_clear(&resp);
    /* A server whose certificate another CA signed: refused by the client. */
    VoPeerTls wrong_ca = { .cert_file = cert, .key_file = key, .ca_file = other_ca };
    int before = atomic_load(&n_requests);
    assert_int_equal(vo_peer_request(&wrong_ca, base_url, "GET", "/echo", NULL, NULL, 0, 5000,
                                     &resp), -EACCES);
    assert_non_null(strstr(resp.error, base_url));
    vo_peer_response_clear(&resp);
    /* A name the server's certificate does not hold (localhost, not 127.0.0.1). */
    VoPeerTls t = tls();
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server, MHD_DAEMON_INFO_BIND_PORT);
    char *by_name = vo_asprintf("https://localhost:%u", info->port);
    assert_int_equal(vo_peer_request(&t, by_name, "GET", "/echo", NULL, NULL, 0, 5000, &resp),
                     -EACCES);
    vo_peer_response_clear(&resp);
    free(by_name);
    assert_int_equal(atomic_load(&n_requests), before); /* neither reached the server */
    /* A listener that takes the TCP connection but never the TLS handshake:
     * refused after the connect timeout, not the request's (never sent). */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(listen(lfd, 4), 0);
    char *mute = vo_asprintf("https://127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(vo_peer_request(&t, mute, "POST", "/echo", NULL, "{}", 2,
                                     VO_PEER_CONNECT_TIMEOUT_MS * 3, &resp), -ECONNREFUSED);
    vo_peer_response_clear(&resp);
    free(mute);
    close(lfd);
    /* Nobody listening. */
    assert_int_equal(vo_peer_request(&t, "https://127.0.0.1:1", "GET", "/echo", NULL, NULL, 0,
                                     5000, &resp), -ECONNREFUSED);
    assert_non_null(strstr(resp.error, "127.0.0.1:1"));
    vo_peer_response_clear(&resp);
}

static const char *extra_header(const VoReply *rep, const char *name)
{
    for (size_t i = 0; rep->extra_headers && rep->extra_headers[i]; i += 2)
        if (!strcmp(rep->extra_headers[i], name))
            return rep->extra_headers[i + 1];
    return NULL;
}

static void reply_clear(VoReply *rep)
{
    json_decref(rep->json);
    free(rep->text);
    vo_strv_free(rep->extra_headers);
    memset(rep, 0, sizeof(*rep));
}

/* Forwards in to a peer that understands members of X-Vireo-Principal:
 * the header it got is want. */
static void principal_sent(const VoPeerTls *t, VoForwardRequest *in, unsigned members,
                           const char *want)
{
    in->principal_members = members;
    VoReply rep = { .status = 200 };
    vo_forward_reply(t, base_url, in, 5000, &rep);
    assert_int_equal(rep.status, 201);
    json_t *doc = json_loadb(rep.text, rep.text_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "headers"),
                                                          VO_PRINCIPAL_HEADER)),
                        want);
    json_decref(doc);
    reply_clear(&rep);
}

static void test_forward_verbatim(void **state)
{
    VoPeerTls t = tls();
    VoForwardRequest in = { .method = "PATCH", .path_and_query = "/echo?a=b",
                            .content_type = "application/json", .if_match = "\"9\"",
                            .body = "{\"x\":2}", .body_len = 7 };
    VoReply rep = { .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 201);
    assert_null(rep.json);
    assert_string_equal(extra_header(&rep, "ETag"), "\"7\"");
    assert_string_equal(extra_header(&rep, "Location"), "/v1/tasks/t-1");
    assert_string_equal(extra_header(&rep, "Retry-After"), "3");
    assert_string_equal(extra_header(&rep, "Content-Type"), "application/json");
    assert_null(extra_header(&rep, "X-Other"));
    json_t *doc = json_loadb(rep.text, rep.text_len, 0, NULL);
    assert_non_null(doc);
    json_t *h = json_object_get(doc, "headers");
    assert_string_equal(json_string_value(json_object_get(h, VO_FORWARDED_HEADER)), "1");
    assert_string_equal(json_string_value(json_object_get(h, "If-Match")), "\"9\"");
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "PATCH");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "{\"x\":2}");
    /* No request of a user on this thread: no principal named. */
    assert_null(json_object_get(h, VO_PRINCIPAL_HEADER));
    json_decref(doc);
    reply_clear(&rep);

    /* A user's request: the peer gets who asked, as this host knew it. */
    VoPrincipal who = { .kind = VO_PRINCIPAL_TOKEN, .role = VO_ROLE_VIEWER, .n_grants = 1,
                        .grants = { { "team", VO_ROLE_ADMIN } } };
    snprintf(who.name, sizeof(who.name), "0123456789abcdef");
    snprintf(who.user, sizeof(who.user), "ann");
    vo_access_set_current(&who);
    rep = (VoReply){ .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    vo_access_set_current(NULL);
    assert_int_equal(rep.status, 201);
    doc = json_loadb(rep.text, rep.text_len, 0, NULL);
    const char *named = json_string_value(json_object_get(json_object_get(doc, "headers"),
                                                          VO_PRINCIPAL_HEADER));
    assert_non_null(named);
    VoPrincipal got;
    assert_int_equal(vo_principal_header_parse(named, &got, NULL), 0);
    assert_int_equal(got.kind, VO_PRINCIPAL_TOKEN);
    assert_string_equal(got.user, "ann");
    assert_int_equal(vo_principal_role_in(&got, "team"), VO_ROLE_ADMIN);
    json_decref(doc);
    reply_clear(&rep);

    /* A user whose principal cannot be named (longer than the header
     * allows) is not forwarded: without the header the peer would take
     * the request for its own, with full access. */
    VoPrincipal unnamed = { .kind = VO_PRINCIPAL_USER, .role = VO_ROLE_NONE,
                            .n_grants = VO_GRANTS_MAX };
    snprintf(unnamed.name, sizeof(unnamed.name), "bob");
    for (size_t i = 0; i < VO_GRANTS_MAX; i++) {
        memset(unnamed.grants[i].project, 1, sizeof(unnamed.grants[i].project) - 1);
        unnamed.grants[i].project[0] = (char)('a' + i); /* each \u0001 is 6 bytes */
        unnamed.grants[i].role = VO_ROLE_ADMIN;
    }
    assert_null(vo_principal_header_encode(&unnamed));
    vo_access_set_current(&unnamed);
    rep = (VoReply){ .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    vo_access_set_current(NULL);
    assert_int_equal(rep.status, 500);
    assert_non_null(rep.json);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(rep.json, "error"),
                                                             "message")),
                           VO_PRINCIPAL_HEADER));
    reply_clear(&rep);

    /* A host's root: to an older peer (it publishes no principal_members)
     * the first form, which it parses; to a newer one with its host. */
    VoPrincipal root = { .kind = VO_PRINCIPAL_ROOT, .role = VO_ROLE_ADMIN };
    snprintf(root.host, sizeof(root.host), "h1");
    vo_access_set_current(&root);
    for (unsigned members = 0; members <= VO_PRINCIPAL_MEMBERS_ALL; members += 3)
        principal_sent(&t, &in, members, members ? "{\"host\":\"h1\",\"kind\":\"root\",\"v\":1}"
                                                 : "{\"kind\":\"root\",\"v\":1}");
    /* Another uid of the Unix socket: named to a newer peer, and not
     * forwarded (409, naming it) to one that would take it for root. */
    root.uid = 1000;
    vo_access_set_current(&root); /* (a copy is kept) */
    principal_sent(&t, &in, VO_PRINCIPAL_MEMBERS_ALL,
                   "{\"host\":\"h1\",\"kind\":\"root\",\"uid\":1000,\"v\":1}");
    in.principal_members = VO_PRINCIPAL_MEMBER_HOST;
    rep = (VoReply){ .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 409);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(rep.json, "error"),
                                                             "message")),
                           "uid:1000@h1"));
    reply_clear(&rep);
    vo_access_set_current(NULL);
    in.principal_members = 0;

    /* The peer's error, as it gave it. */
    in = (VoForwardRequest){ .method = "GET", .path_and_query = "/refuse" };
    rep = (VoReply){ .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 409);
    assert_string_equal(rep.text, "{\"error\":{\"code\":\"invalid-state\",\"message\":\"off\"}}");
    reply_clear(&rep);
}

static void test_forward_refuses_loops_and_names_unreachable_peers(void **state)
{
    VoPeerTls t = tls();
    int before = atomic_load(&n_requests);
    VoForwardRequest in = { .method = "POST", .path_and_query = "/echo", .forwarded = true };
    VoReply rep = { .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 508);
    assert_string_equal(json_string_value(json_object_get(json_object_get(rep.json, "error"),
                                                          "code")), "loop-detected");
    reply_clear(&rep);
    assert_int_equal(atomic_load(&n_requests), before);

    in.forwarded = false;
    vo_forward_reply(&t, "https://127.0.0.1:1", &in, 5000, &rep);
    assert_int_equal(rep.status, 502);
    json_t *err = json_object_get(rep.json, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "bad-gateway");
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")),
                           "https://127.0.0.1:1"));
    reply_clear(&rep);
}

typedef struct {
    VoPeerStream *s;
    int fd;
    int r;
} PumpArgs;

static void *pump_main(void *userdata)
{
    PumpArgs *a = userdata;
    a->r = vo_peer_stream_pump(a->s, a->fd);
    return NULL;
}

/* Reads from fd until want has arrived (bounded by poll timeouts). */
static void expect_read(int fd, const char *want)
{
    char buf[256] = "";
    size_t len = 0;
    while (!strstr(buf, want) && len < sizeof(buf) - 1) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = 0;
    }
    assert_non_null(strstr(buf, want));
}

static void test_stream_pumped_both_ways(void **state)
{
    VoPeerTls t = tls();
    VoPeerStream *s = NULL;
    VoPeerResponse resp;
    assert_int_equal(vo_peer_stream_connect(&t, base_url, "/upgrade", "vireo-console", NULL, 5000,
                                            &s, &resp), 0);
    assert_non_null(s);
    assert_int_equal(resp.status, 101);
    vo_peer_response_clear(&resp);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    PumpArgs a = { .s = s, .fd = sv[0] };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pump_main, &a), 0);
    expect_read(sv[1], "READY\n");
    assert_int_equal(write(sv[1], "hello peer\n", 11), 11);
    expect_read(sv[1], "HELLO PEER\n");
    /* Larger than one TLS record both ways. */
    size_t big = 100 * 1024, got = 0;
    char *out = malloc(big), *in = malloc(big);
    memset(out, 'x', big);
    size_t sent = 0;
    while (got < big) {
        struct pollfd p = { .fd = sv[1], .events = POLLIN | (sent < big ? POLLOUT : 0) };
        assert_true(poll(&p, 1, 10000) > 0);
        if ((p.revents & POLLOUT) && sent < big) {
            ssize_t n = write(sv[1], out + sent, big - sent);
            assert_true(n > 0);
            sent += (size_t)n;
        }
        if (p.revents & POLLIN) {
            ssize_t n = read(sv[1], in + got, big - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
    }
    for (size_t i = 0; i < big; i++)
        assert_int_equal(in[i], 'X');
    free(out);
    free(in);
    /* The local side closes: the pump ends. */
    close(sv[1]);
    pthread_join(th, NULL);
    assert_int_equal(a.r, 0);
    close(sv[0]);
    vo_peer_stream_free(s);
}

static void test_stream_refused_gives_the_peer_answer(void **state)
{
    VoPeerTls t = tls();
    VoPeerStream *s = NULL;
    VoPeerResponse resp;
    assert_int_equal(vo_peer_stream_connect(&t, base_url, "/refuse", "vireo-console", NULL, 5000,
                                            &s, &resp), 0);
    assert_null(s);
    assert_int_equal(resp.status, 409);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.body, "{\"error\":{\"code\":\"invalid-state\",\"message\":\"off\"}}");
    vo_peer_response_clear(&resp);
    /* Through the forwarder: the same 409, no upgrade. */
    VoForwardRequest in = { .method = "GET", .path_and_query = "/refuse",
                            .upgrade = "vireo-console" };
    VoReply rep = { .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_false(rep.upgrade);
    assert_int_equal(rep.status, 409);
    reply_clear(&rep);
    /* Accepted: the reply becomes the upgrade, its stream ready to pump on
     * the server's thread; the request frees it if the 101 never goes out. */
    in.path_and_query = "/upgrade";
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_true(rep.upgrade);
    assert_non_null(rep.upgrade_run);
    assert_non_null(rep.upgrade_stop);
    assert_non_null(rep.upgrade_free);
    rep.upgrade_free(rep.upgrade_cls);
    reply_clear(&rep);
    /* Upgrade headers on another method than GET: a plain request. */
    in = (VoForwardRequest){ .method = "POST", .path_and_query = "/echo",
                             .upgrade = "vireo-console" };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_false(rep.upgrade);
    assert_int_equal(rep.status, 201);
    assert_non_null(strstr(rep.text, "\"method\":\"POST\""));
    assert_null(strstr(rep.text, "\"Upgrade\""));
    reply_clear(&rep);
    /* Unreachable. */
    assert_int_equal(vo_peer_stream_connect(&t, "https://127.0.0.1:1", "/upgrade",
                                            "vireo-console", NULL, 5000, &s, &resp),
                     -ECONNREFUSED);
    assert_null(s);
    assert_non_null(resp.error);
    vo_peer_response_clear(&resp);
}


/* The upload routes of routes.def (VO_UPLOAD), to check none is forwarded. */
#define VO_ROUTE(method, pattern, fn)
#define VO_UPLOAD(method, pattern, fn, prepare) { method, pattern },
static const VoRouteSpec upload_routes[] = {
#include "api/routes.def"
};
#undef VO_ROUTE
#undef VO_UPLOAD

static void test_forward_refuses_streams(void **state)
{
    assert_true(sizeof(upload_routes) > 0);
    for (size_t i = 0; i < sizeof(upload_routes) / sizeof(upload_routes[0]); i++) {
        char *path = strdup(upload_routes[i].pattern);
        /* {placeholder} -> x */
        char *o = path;
        for (const char *c = upload_routes[i].pattern; *c; c++) {
            if (*c == '{') {
                *o++ = 'x';
                c = strchr(c, '}');
            } else
                *o++ = *c;
        }
        *o = 0;
        char *why = vo_forward_refusal(upload_routes[i].method, path);
        assert_non_null(why);
        assert_non_null(strstr(why, "stream"));
        free(why);
        free(path);
    }
    char *why = vo_forward_refusal("GET", "/v1/pools/p/volumes/v/data");
    assert_non_null(why);
    free(why);
    why = vo_forward_refusal("GET", "/v1/events?kind=vm");
    assert_non_null(why);
    free(why);
    why = vo_forward_refusal("GET", "/v1/events?follow=true&follow2=false");
    assert_non_null(why);
    free(why);
    /* What ends: forwarded. */
    assert_null(vo_forward_refusal("GET", "/v1/events?kind=vm&follow=false"));
    assert_null(vo_forward_refusal("GET", "/v1/events?follow=0"));
    assert_null(vo_forward_refusal("GET", "/v1/vms/web1"));
    assert_null(vo_forward_refusal("POST", "/v1/vms/web1/start"));
    assert_null(vo_forward_refusal("GET", "/v1/vms/web1/console"));
    assert_null(vo_forward_refusal("GET", "/nowhere")); /* the peer answers 404 */

    /* Refused before the peer is asked, naming it: a clear 409. */
    VoPeerTls t = tls();
    int before = atomic_load(&n_requests);
    VoForwardRequest in = { .method = "PUT", .path_and_query = "/v1/pools/p/volumes/v/data",
                            .content_type = "application/octet-stream" };
    VoReply rep = { .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 409);
    json_t *err = json_object_get(rep.json, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "invalid-state");
    const char *msg = json_string_value(json_object_get(err, "message"));
    assert_non_null(strstr(msg, base_url));
    assert_non_null(strstr(msg, "cannot forward"));
    reply_clear(&rep);
    /* Even as an "upgrade". */
    in = (VoForwardRequest){ .method = "GET", .path_and_query = "/v1/events",
                             .upgrade = "vireo-console" };
    rep = (VoReply){ .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 409);
    assert_false(rep.upgrade);
    reply_clear(&rep);
    assert_int_equal(atomic_load(&n_requests), before);
}

static void test_forward_passes_last_event_id(void **state)
{
    VoPeerTls t = tls();
    VoForwardRequest in = { .method = "GET", .path_and_query = "/echo",
                            .last_event_id = "1234" };
    VoReply rep = { .status = 200 };
    vo_forward_reply(&t, base_url, &in, 5000, &rep);
    assert_int_equal(rep.status, 201);
    json_t *doc = json_loadb(rep.text, rep.text_len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "headers"),
                                                          "Last-Event-ID")), "1234");
    json_decref(doc);
    reply_clear(&rep);
}

/* A TLS server of raw records (GnuTLS): answers the upgrade with its status
 * line in one record, then the rest of the head and the stream's first
 * bytes in one full record (16 KiB), more than the client's head buffer has
 * left; then sends nothing until the client closes. */
static void *split_head_server(void *userdata)
{
    int lfd = *(int *)userdata;
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    gnutls_certificate_credentials_t cred;
    gnutls_certificate_allocate_credentials(&cred);
    assert_int_equal(gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM),
                     0);
    gnutls_session_t sess;
    gnutls_init(&sess, GNUTLS_SERVER);
    gnutls_set_default_priority(sess);
    gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(sess, fd);
    gnutls_handshake_set_timeout(sess, 10000);
    int r;
    do
        r = gnutls_handshake(sess);
    while (r < 0 && !gnutls_error_is_fatal(r));
    assert_int_equal(r, 0);
    char req[4096] = "";
    size_t len = 0;
    while (!strstr(req, "\r\n\r\n") && len < sizeof(req) - 1) {
        ssize_t n = gnutls_record_recv(sess, req + len, sizeof(req) - 1 - len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        assert_true(n > 0);
        len += (size_t)n;
        req[len] = 0;
    }
    const char *line = "HTTP/1.1 101 Switching Protocols\r\n";
    assert_int_equal(gnutls_record_send(sess, line, strlen(line)), (ssize_t)strlen(line));
    size_t size = 16384;
    char *rec = malloc(size);
    int head = snprintf(rec, size, "Upgrade: vireo-console\r\nConnection: Upgrade\r\nX-Pad: ");
    memset(rec + head, 'a', 6000);
    head += 6000;
    memcpy(rec + head, "\r\n\r\n", 4);
    head += 4;
    memset(rec + head, 'p', size - (size_t)head);
    memcpy(rec + size - 4, "END\n", 4);
    assert_int_equal(gnutls_record_send(sess, rec, size), (ssize_t)size);
    free(rec);
    char buf[256];
    while ((r = (int)gnutls_record_recv(sess, buf, sizeof(buf))) > 0 || r == GNUTLS_E_AGAIN ||
           r == GNUTLS_E_INTERRUPTED)
        ;
    gnutls_deinit(sess);
    gnutls_certificate_free_credentials(cred);
    close(fd);
    return NULL;
}

static void test_stream_bytes_after_the_head_in_one_record(void **state)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t salen = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", ntohs(sa.sin_port));
    pthread_t server_thread;
    assert_int_equal(pthread_create(&server_thread, NULL, split_head_server, &lfd), 0);
    VoPeerTls t = tls();
    VoPeerStream *s = NULL;
    VoPeerResponse resp;
    assert_int_equal(vo_peer_stream_connect(&t, url, "/upgrade", "vireo-console", NULL, 10000,
                                            &s, &resp), 0);
    assert_non_null(s);
    vo_peer_response_clear(&resp);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    PumpArgs a = { .s = s, .fd = sv[0] };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pump_main, &a), 0);
    /* Every byte of the record, its end included, without more traffic. */
    size_t want = 16384 - (strlen("Upgrade: vireo-console\r\nConnection: Upgrade\r\nX-Pad: ") +
                           6000 + 4);
    char *got = malloc(want + 1);
    size_t len = 0;
    while (len < want) {
        struct pollfd p = { .fd = sv[1], .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = read(sv[1], got + len, want - len);
        assert_true(n > 0);
        len += (size_t)n;
    }
    got[len] = 0;
    assert_string_equal(got + want - 4, "END\n");
    free(got);
    close(sv[1]);
    pthread_join(th, NULL);
    assert_int_equal(a.r, 0);
    close(sv[0]);
    vo_peer_stream_free(s);
    pthread_join(server_thread, NULL);
    close(lfd);
}

/* The pump of the server's upgrade thread ends when the server stops:
 * vo_peer_stream_shutdown wakes a pump that waits on the peer. */
static void test_stream_shutdown_ends_the_pump(void **state)
{
    VoPeerTls t = tls();
    VoPeerStream *s = NULL;
    VoPeerResponse resp;
    assert_int_equal(vo_peer_stream_connect(&t, base_url, "/upgrade", "vireo-console", NULL, 5000,
                                            &s, &resp), 0);
    assert_non_null(s);
    vo_peer_response_clear(&resp);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    PumpArgs a = { .s = s, .fd = sv[0], .r = 1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pump_main, &a), 0);
    expect_read(sv[1], "READY\n");
    /* As the server's stop does: the local socket shut down, the peer's too. */
    shutdown(sv[0], SHUT_RDWR);
    vo_peer_stream_shutdown(s);
    pthread_join(th, NULL);
    assert_true(a.r <= 0);
    close(sv[0]);
    close(sv[1]);
    vo_peer_stream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_with_mutual_tls),
        cmocka_unit_test(test_connections_reused),
        cmocka_unit_test(test_threads_at_once),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_forward_verbatim),
        cmocka_unit_test(test_forward_refuses_loops_and_names_unreachable_peers),
        cmocka_unit_test(test_stream_pumped_both_ways),
        cmocka_unit_test(test_stream_refused_gives_the_peer_answer),
        cmocka_unit_test(test_forward_refuses_streams),
        cmocka_unit_test(test_forward_passes_last_event_id),
        cmocka_unit_test(test_stream_bytes_after_the_head_in_one_record),
        cmocka_unit_test(test_stream_shutdown_ends_the_pump),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
