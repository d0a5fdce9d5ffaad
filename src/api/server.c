/* server.c: vireod's HTTP/1.1 server on a Unix socket (libmicrohttpd, one
 * thread per connection): its own accept loop with connection limits (total
 * and per client) and an idle timeout, raw request paths checked and routed by
 * route-match.c, body limits, content type, JSON parsing and the JSON error
 * envelope. Handlers live in one file per noun.
 * The same server, with the same routes, also serves HTTPS on a TCP address
 * for the peers of a cluster (vo_api_server_start_tls): mutual TLS, every
 * request's client certificate verified against the cluster CA.
 * And HTTPS for users (vo_api_server_start_users): no client certificate;
 * every request authenticated and its role checked (access-check.c).
 * This file: starting (Unix socket, TLS, users) and stopping the server;
 * server-reply.c: the replies and request helpers the handlers use;
 * server-request.c: one request's way from its request line to its reply;
 * server-upgrade.c: upgraded connections (a forwarded console);
 * server-conns.c: the accept loop and the connection limits. They share
 * server-internal.h. */
#include "api/http.h"
#include "api/server-internal.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/route-match.h"
#include "util/unix-socket.h"
#include "util/util.h"

_Static_assert(VO_API_MAX_PARAMS == VO_ROUTE_MAX_PARAMS, "VoRequest.params holds a match's params");

/* MHD's own messages, on vireod's log (escaped like every log line). MHD
 * cannot tell that a connection handed to it by MHD_add_connection is not TCP,
 * so it tries TCP_CORK/TCP_NODELAY on Unix sockets and complains once per
 * response: those go to the debug level. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    if (strstr(msg, "TCP_CORK") || strstr(msg, "TCP_NODELAY") ||
        strstr(msg, "push the data from buffers"))
        log_debug("http: %s", msg);
    else
        log_warn("http: %s", msg);
}

static void server_free(VoApiServer *s)
{
    if (s->stop_pipe[0] >= 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->socket_path)
        (void)unlink(s->socket_path);
    pthread_mutex_destroy(&s->lock);
    free(s->conns);
    free(s->socket_path);
    free(s->tls_cert);
    if (s->tls_key)
        explicit_bzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_ca);
    free(s);
}

/* Serves the API on listen_fd (taken, even on failure). */
static int server_start(VoApiServer *s, VoApiServer **ret)
{
    s->max_connections = vo_api_server_connection_limit();
    s->conns = vo_malloc0(s->max_connections * sizeof(OpenConnection));
    int r = -EIO;
    if (fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK) < 0 ||
        pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
        r = -errno;
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | /* select() refuses fds >= 1024 */
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_ALLOW_UPGRADE |
                     MHD_USE_ERROR_LOG;
    struct MHD_OptionItem tls_opts[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key },
        /* Peers: asks clients for a certificate. Users: none asked. */
        { s->users ? MHD_OPTION_END : MHD_OPTION_HTTPS_MEM_TRUST, 0, s->tls_ca },
        { MHD_OPTION_END, 0, NULL },
    };
    if (s->tls || s->users)
        flags |= MHD_USE_TLS;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, vo_api_server_on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                              MHD_OPTION_URI_LOG_CALLBACK, vo_api_server_on_request_line, s,
                              MHD_OPTION_NOTIFY_COMPLETED, vo_api_server_on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, vo_api_server_on_connection, s,
                              MHD_OPTION_CONNECTION_LIMIT, s->max_connections + 16,
                              MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                              MHD_OPTION_ARRAY, s->tls || s->users ? tls_opts : tls_opts + 3,
                              MHD_OPTION_END);
    if (!s->mhd)
        goto fail;
    r = -pthread_create(&s->accept_thread, NULL, vo_api_server_accept_main, s);
    if (r < 0)
        goto fail;
    s->accept_running = true;
    *ret = s;
    return 0;
fail:
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    server_free(s);
    return r;
}

static VoApiServer *server_new(VoDaemon *d, int listen_fd)
{
    VoApiServer *s = vo_malloc0(sizeof(*s));
    s->d = d;
    s->listen_fd = listen_fd;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

int vo_api_server_start(VoDaemon *d, const char *socket_path, VoApiServer **ret)
{
    int fd = vo_unix_listen(socket_path, 0660);
    if (fd < 0)
        return fd;
    VoApiServer *s = server_new(d, fd);
    s->socket_path = vo_strdup(socket_path);
    return server_start(s, ret);
}

int vo_api_parse_listen(const char *text, struct sockaddr_storage *ret, socklen_t *ret_len,
                        char **ret_error)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || colon == text || !colon[1])
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': expected ADDRESS:PORT "
                            "(10.0.0.5:8443, [fd00::5]:8443)", text ? text : "");
    _cleanup_free_ char *host = vo_strdup(text);
    host[colon - text] = '\0';
    size_t n = strlen(host);
    if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
        if (!strchr(host, ':'))
            return vo_error_set(ret_error, -EINVAL, "--listen '%s': brackets are for an IPv6 "
                                "address; write an IPv4 one without them (10.0.0.5:8443)",
                                text);
    } else if (strchr(host, ':'))
        /* fd00::5:8443: is 8443 the port or the address's last group? */
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': an IPv6 address goes in "
                            "brackets before the port ([fd00::5]:8443)", text);
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || errno || port == 0 || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': the port must be 1 to 65535",
                            text);
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                              .ai_socktype = SOCK_STREAM }, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return vo_error_set(ret_error, -EINVAL, "--listen '%s': '%s' is not an IP address",
                            text, host);
    memcpy(ret, ai->ai_addr, ai->ai_addrlen);
    *ret_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Reads a PEM file whole; the error names the file and the option. */
static int read_pem(const char *path, const char *option, char **ret, char **ret_error)
{
    size_t len = 0;
    int r = vo_read_file(path, 1024 * 1024, ret, &len);
    if (r < 0)
        return vo_error_set(ret_error, r, "%s %s: cannot read it: %s", option, path,
                            strerror(-r));
    if (!strstr(*ret, "-----BEGIN ")) {
        free(*ret);
        *ret = NULL;
        return vo_error_set(ret_error, -EINVAL, "%s %s: not a PEM file", option, path);
    }
    return 0;
}

/* Loads the key pair and the CA as MHD will, to name what is wrong. */
static int check_credentials(const VoApiServer *s, const VoApiTlsFiles *tls, char **ret_error)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return vo_error_set(ret_error, -ENOMEM, "out of memory");
    gnutls_datum_t cert = { (unsigned char *)s->tls_cert, (unsigned)strlen(s->tls_cert) };
    gnutls_datum_t key = { (unsigned char *)s->tls_key, (unsigned)strlen(s->tls_key) };
    gnutls_datum_t ca = { (unsigned char *)s->tls_ca, (unsigned)strlen(s->tls_ca) };
    int r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        gnutls_certificate_free_credentials(cred);
        return vo_error_set(ret_error, -EINVAL, "--tls-cert %s with --tls-key %s: %s",
                            tls->cert_file, tls->key_file, gnutls_strerror(r));
    }
    r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (r <= 0)
        return vo_error_set(ret_error, -EINVAL, "--tls-ca %s: %s", tls->ca_file,
                            r < 0 ? gnutls_strerror(r) : "no certificate in it");
    return 0;
}

/* Reads and checks the listener's address and files into s. */
static int load_tls(VoApiServer *s, const char *listen_addr, const VoApiTlsFiles *tls,
                    struct sockaddr_storage *ss, socklen_t *len, char **ret_error)
{
    int r = vo_api_parse_listen(listen_addr, ss, len, ret_error);
    if (r < 0 || (r = read_pem(tls->cert_file, "--tls-cert", &s->tls_cert, ret_error)) < 0 ||
        (r = read_pem(tls->key_file, "--tls-key", &s->tls_key, ret_error)) < 0 ||
        (r = read_pem(tls->ca_file, "--tls-ca", &s->tls_ca, ret_error)) < 0)
        return r;
    return check_credentials(s, tls, ret_error);
}

int vo_api_tls_check(const char *listen_addr, const VoApiTlsFiles *tls, char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(NULL, -1);
    int r = load_tls(s, listen_addr, tls, &ss, &len, ret_error);
    server_free(s);
    return r;
}

/* Binds s's TCP socket to ss and starts serving; on failure s is freed and
 * *ret_error names the daemon option that gave the address. */
static int listen_and_start(VoApiServer *s, const struct sockaddr_storage *ss, socklen_t len,
                            const char *option, const char *listen_addr, VoApiServer **ret,
                            char **ret_error)
{
    int one = 1, r;
    s->listen_fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 ||
        setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s->listen_fd, (const struct sockaddr *)ss, len) < 0 ||
        listen(s->listen_fd, 128) < 0) {
        r = -errno;
        vo_error_set(ret_error, r, "%s %s: %s", option, listen_addr, strerror(errno));
        server_free(s);
        return r;
    }
    r = server_start(s, ret);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot serve HTTPS on %s (see the log)", listen_addr);
    return r;
}

int vo_api_server_start_tls(VoDaemon *d, const char *listen_addr, const VoApiTlsFiles *tls,
                            VoApiServer **ret, char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(d, -1);
    s->tls = true;
    int r = load_tls(s, listen_addr, tls, &ss, &len, ret_error);
    if (r < 0) {
        server_free(s);
        return r;
    }
    return listen_and_start(s, &ss, len, "--listen", listen_addr, ret, ret_error);
}

/* The users' listener's address, certificate and key into s (checked). */
static int load_users(VoApiServer *s, const char *listen_addr, const char *cert_file,
                      const char *key_file, struct sockaddr_storage *ss, socklen_t *len,
                      char **ret_error)
{
    int r = vo_api_parse_listen(listen_addr, ss, len, ret_error);
    if (r < 0 || (r = read_pem(cert_file, "certificate", &s->tls_cert, ret_error)) < 0 ||
        (r = read_pem(key_file, "key", &s->tls_key, ret_error)) < 0)
        return r;
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0)
        return vo_error_set(ret_error, -ENOMEM, "out of memory");
    gnutls_datum_t cert = { (unsigned char *)s->tls_cert, (unsigned)strlen(s->tls_cert) };
    gnutls_datum_t key = { (unsigned char *)s->tls_key, (unsigned)strlen(s->tls_key) };
    r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (r < 0)
        return vo_error_set(ret_error, -EINVAL, "%s with %s: %s", cert_file, key_file,
                            gnutls_strerror(r));
    return 0;
}

int vo_api_users_check(const char *listen_addr, const char *cert_file, const char *key_file,
                       char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(NULL, -1);
    int r = load_users(s, listen_addr, cert_file, key_file, &ss, &len, ret_error);
    server_free(s);
    return r;
}

int vo_api_server_start_users(VoDaemon *d, const char *listen_addr, const char *cert_file,
                              const char *key_file, VoApiServer **ret, char **ret_error)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    VoApiServer *s = server_new(d, -1);
    s->users = true;
    int r = load_users(s, listen_addr, cert_file, key_file, &ss, &len, ret_error);
    if (r < 0) {
        server_free(s);
        return r;
    }
    return listen_and_start(s, &ss, len, "--https", listen_addr, ret, ret_error);
}

void vo_api_server_stop(VoApiServer *s)
{
    if (!s)
        return;
    if (s->accept_running) {
        (void)!write(s->stop_pipe[1], "x", 1);
        pthread_join(s->accept_thread, NULL);
    }
    vo_api_events_shutdown(); /* their threads block on the store, not the socket */
    vo_api_server_stop_upgrades(s);         /* MHD_stop_daemon frees what their threads use */
    MHD_stop_daemon(s->mhd);
    server_free(s);
}
