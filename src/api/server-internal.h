/* server-internal.h: what the files of vireod's HTTP server (server.c,
 * server-reply.c, server-request.c, server-upgrade.c, server-conns.c) share
 * and nothing else uses: the server, its open connections, its upgraded
 * connections' threads and one request on its way, and the helpers that
 * were one file's own (static) before server.c was split, under their
 * names then; each is described where it is defined. */
#pragma once

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "api/access-check.h"
#include "api/http.h"
#include "api/route-match.h"

/* A connection that has sent nothing for this long (no complete request, or
 * idle between requests, or not reading its answer) is closed. Handlers and
 * upgraded connections (the console) are not subject to it. */
#define IDLE_TIMEOUT_S 30u

typedef struct {
    int fd;
    char client[64];
} OpenConnection;

/* An upgraded connection served on a thread of its own (VoReply.upgrade_run:
 * a forwarded console), joined before the server stops. */
typedef struct UpgradeThread {
    struct UpgradeThread *next;
    struct VoApiServer *server;
    pthread_t thread;
    int sock;     /* the upgraded socket; -1 once the thread closes it (under lock) */
    bool done;    /* the thread has finished its work (under lock): join it */
    struct MHD_UpgradeResponseHandle *urh;
    void *cls;
    void (*run)(void *cls, int sock, const char *first, size_t first_len);
    void (*stop)(void *cls);
    void (*free)(void *cls);
    char *first;  /* what the client sent after its request */
    size_t first_len;
} UpgradeThread;

struct VoApiServer {
    VoDaemon *d;
    struct MHD_Daemon *mhd;
    int listen_fd;
    char *socket_path; /* the Unix socket's, NULL for the TLS listener */
    bool tls;          /* HTTPS with client certificates (peers of a cluster) */
    bool users;        /* HTTPS for users: tokens and sessions, roles (tls false) */
    char *tls_cert, *tls_key, *tls_ca; /* their PEM text, for MHD */
    pthread_t accept_thread;
    bool accept_running;
    int stop_pipe[2];
    unsigned max_connections;
    pthread_mutex_t lock; /* guards conns, upgrades, stopping */
    OpenConnection *conns;
    size_t n_conns;
    UpgradeThread *upgrades;
    bool stopping; /* no more upgrade threads */
};

/* One request, created when its request line arrives (vo_api_server_on_request_line). */
typedef struct {
    VoApiServer *server;
    char *raw_uri;   /* as the client sent it, before any decoding */
    bool started;
    int match_r;     /* vo_route_match's answer */
    char *match_error;
    char *unauthenticated; /* TLS: why the client is refused (401), or NULL */
    bool refused;          /* users: answered before the body (401, 403, 429) */
    VoPrincipal principal; /* who asks (users: access-check.c) */
    bool from_peer;        /* TLS: a client certificate of the cluster CA was checked */
    bool named;            /* principal: named by that peer (X-Vireo-Principal) */
    bool quit_after;       /* the reply's quit_after: stop the loop once it is sent */
    VoRouteMatch match;
    const VoRoute *route;
    char *body;
    size_t len;
    bool too_large;
    /* Streamed uploads. */
    bool streaming;
    int upload_fd;
    char *upload_path;
    uint64_t upload_bytes;
    int upload_errno;
    char *upload_error;
    /* An upgrade answered (VoReply's): upgrade_cls is the request's until
     * vo_api_server_on_upgraded takes it; vo_api_server_on_completed frees it if nobody did. */
    void *_Atomic upgrade_cls;
    MHD_UpgradeHandler upgrade_fn;
    void (*upgrade_run)(void *cls, int sock, const char *first, size_t first_len);
    void (*upgrade_stop)(void *cls);
    void (*upgrade_free)(void *cls);
} PendingRequest;

/* server-request.c */
void *vo_api_server_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn);
enum MHD_Result vo_api_server_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version,
                           const char *upload_data, size_t *upload_data_size,
                           void **con_cls);
void vo_api_server_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                  enum MHD_RequestTerminationCode toe);

/* server-upgrade.c */
void vo_api_server_on_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
                 const char *extra_in, size_t extra_in_size, MHD_socket sock,
                 struct MHD_UpgradeResponseHandle *urh);
void vo_api_server_stop_upgrades(VoApiServer *s);

/* server-conns.c */
void vo_api_server_client_of(int fd, char *client, size_t size);
void vo_api_server_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                   enum MHD_ConnectionNotificationCode code);
void *vo_api_server_accept_main(void *userdata);
unsigned vo_api_server_connection_limit(void);
