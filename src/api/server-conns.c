/* server-conns.c: the connections of vireod's HTTP server (part of
 * server.c): its own accept loop, the limits on open connections in all and
 * per client (a Unix socket peer's process, a TCP peer's address; more are
 * answered 503 and closed), and MHD told of each connection admitted. */
#include "api/http.h"
#include "api/server-internal.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "util/util.h"

/* Open connections at most, in all and from one client (a Unix socket peer's
 * process, a TCP peer's address); more are answered 503 and closed. */
#define MAX_CONNECTIONS 512u
#define MAX_CONNECTIONS_PER_CLIENT 64u

/* ---- Connection limits ---- */

/* Who is at the other end: a Unix socket peer's process, a TCP peer's address. */
void vo_api_server_client_of(int fd, char *client, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    snprintf(client, size, "unknown");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
            snprintf(client, size, "pid %d (uid %u)", (int)cred.pid, (unsigned)cred.uid);
    } else if (ss.ss_family == AF_INET) {
        char addr[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr)))
            snprintf(client, size, "%s", addr);
    } else if (ss.ss_family == AF_INET6) {
        char addr[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr)))
            snprintf(client, size, "%s", addr);
    }
}

/* Drops the record of fd (the caller holds s->lock). */
static void forget_connection_locked(VoApiServer *s, int fd)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i].fd == fd) {
            s->conns[i] = s->conns[--s->n_conns];
            return;
        }
}

/* Answers 503 with the JSON envelope before closing a connection over a limit. */
static void refuse_connection(int fd, const char *message)
{
    json_t *doc = json_pack("{s:{s:s, s:s}}", "error", "code",
                            vo_error_code_name(VO_ERR_UNAVAILABLE), "message", message);
    char *body = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    char *resp = vo_asprintf("HTTP/1.1 503 Service Unavailable\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s\n",
                             strlen(body) + 1, body);
    free(body);
    /* Read what the request already sent, so closing does not reset the peer. */
    char buf[4096];
    for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
        ;
    (void)!send(fd, resp, strlen(resp), MSG_DONTWAIT | MSG_NOSIGNAL);
    free(resp);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* A new connection: hand it to MHD, or refuse it when over a limit. */
static void admit_connection(VoApiServer *s, int fd, const struct sockaddr *sa, socklen_t salen)
{
    char client[64];
    vo_api_server_client_of(fd, client, sizeof(client));
    char *refusal = NULL;
    pthread_mutex_lock(&s->lock);
    forget_connection_locked(s, fd); /* a stale record: that fd number was closed */
    size_t mine = 0;
    for (size_t i = 0; i < s->n_conns; i++)
        mine += !strcmp(s->conns[i].client, client);
    if (s->n_conns >= s->max_connections)
        refusal = vo_asprintf("vireod has %u open connections, its limit; retry later",
                              s->max_connections);
    else if (mine >= MAX_CONNECTIONS_PER_CLIENT)
        refusal = vo_asprintf("this client (%s) has %u open connections, the limit per "
                              "client; close idle ones and retry", client,
                              MAX_CONNECTIONS_PER_CLIENT);
    else {
        OpenConnection *c = &s->conns[s->n_conns++];
        c->fd = fd;
        snprintf(c->client, sizeof(c->client), "%s", client);
    }
    pthread_mutex_unlock(&s->lock);
    if (refusal) {
        log_debug("refused a connection: %s", refusal);
        refuse_connection(fd, refusal);
        free(refusal);
        return;
    }
    if (MHD_add_connection(s->mhd, fd, sa, salen) != MHD_YES) { /* MHD closed fd */
        pthread_mutex_lock(&s->lock);
        forget_connection_locked(s, fd);
        pthread_mutex_unlock(&s->lock);
    }
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection MHD managed is closing. */
void vo_api_server_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                   enum MHD_ConnectionNotificationCode code)
{
    VoApiServer *s = cls;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED)
        return;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return;
    pthread_mutex_lock(&s->lock);
    forget_connection_locked(s, info->connect_fd);
    pthread_mutex_unlock(&s->lock);
}

void *vo_api_server_accept_main(void *userdata)
{
    VoApiServer *s = userdata;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = s->listen_fd, .events = POLLIN },
                                 { .fd = s->stop_pipe[0], .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("http: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents)
            return NULL;
        struct sockaddr_storage ss;
        socklen_t salen = sizeof(ss);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &salen, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("http: cannot accept a connection: %s", strerror(errno));
                (void)poll(&pfd[1], 1, 100); /* let some close */
            }
            continue;
        }
        admit_connection(s, fd, (struct sockaddr *)&ss, salen);
    }
}

/* The total limit: at most MAX_CONNECTIONS, and half the open-files limit. */
unsigned vo_api_server_connection_limit(void)
{
    struct rlimit rl;
    unsigned limit = MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 2 < limit)
        limit = rl.rlim_cur / 2 > 16 ? (unsigned)(rl.rlim_cur / 2) : 16;
    return limit;
}
