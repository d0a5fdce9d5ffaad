/* http.h: what a route handler sees (the request) and fills in (the reply),
 * and the route table that maps METHOD + path pattern to handlers. */
#pragma once

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "vireo/errors.h"

#define VO_API_MAX_BODY (1024 * 1024)
#define VO_API_MAX_PARAMS 2

typedef struct {
    VoDaemon *d;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *params[VO_API_MAX_PARAMS]; /* {placeholders} in path order */
    json_t *body;                          /* parsed JSON object, or NULL when empty */
    const char *upload_path;               /* streamed routes: the file the body went to */
    uint64_t upload_bytes;
} VoRequest;

typedef struct {
    int status;
    json_t *json;       /* JSON body (owned) */
    char *text;         /* or a text/plain body (owned) */
    size_t text_len;
    bool upgrade;       /* answer 101 and hand the socket to upgrade_fn */
    MHD_UpgradeHandler upgrade_fn;
    void *upgrade_cls;  /* owned by the request until upgrade_fn (or upgrade_run) takes it */
    /* Frees upgrade_cls when no upgrade takes it (MHD refused the 101, the
     * client left first), and after upgrade_run. May be NULL. */
    void (*upgrade_free)(void *cls);
    /* Or, instead of upgrade_fn: upgrade_run(upgrade_cls, sock, first bytes the
     * client sent) on a thread the server tracks; when it returns, the server
     * closes the connection. vo_api_server_stop shuts sock down, calls
     * upgrade_stop(upgrade_cls) (may be NULL: whatever else upgrade_run may
     * wait on) and joins the thread before it stops the HTTP server. */
    void (*upgrade_run)(void *cls, int sock, const char *first, size_t first_len);
    void (*upgrade_stop)(void *cls);
    /* The 101's Upgrade header (NULL: "vireo-console"); extra_headers go
     * with it (a WebSocket's Sec-WebSocket-Accept). */
    const char *upgrade_protocol;
    int file_fd;        /* or (>= 0) stream this file as application/octet-stream */
    uint64_t file_size;
    /* Or a body of unknown length MHD pulls from stream_fn (on the
     * connection's own thread, so it may block) until it ends; stream_free
     * runs once the connection is done with it. content_type names it. */
    MHD_ContentReaderCallback stream_fn;
    void *stream_cls;
    MHD_ContentReaderFreeCallback stream_free;
    const char *content_type; /* stream_fn's, or text's (default text/plain) */
    int64_t etag;       /* > 0: answer ETag: "<etag>" (the document's store revision) */
    /* The answer is its caller's: every routed request's (server-request.c), as
     * its caller's roles decide what it is given (a list the project
     * filter cut, project-gate.c; a VM another caller is answered 404 for;
     * an admin's list another is refused): answered with Cache-Control:
     * private and Vary. When etag_view is set (a scoped caller's cut
     * answer), its ETag is "<etag>-<etag_view>", so no two callers' views
     * share an ETag. */
    bool per_caller;
    char etag_view[17];
    const char *header_name; /* one more header (its value copied), or NULL */
    char header_value[64];
    char **extra_headers; /* more headers: owned "Name", "value", ..., NULL (a forwarded reply's) */
    /* Stop vireod's event loop once this reply has gone out (a cluster
     * change re-executes vireod: daemon/cluster.h). */
    bool quit_after;
    /* What -EAGAIN means here (the store backend's words), or NULL. */
    const char *unavailable_message;
    /* What -ETIMEDOUT means (a store write's outcome unknown), or NULL. */
    const char *unknown_message;
} VoReply;

typedef void (*VoRouteFn)(VoRequest *req, VoReply *rep);

/* Routes that take a large body (uploads) stream it to a file instead of
 * memory: prepare names that file (a mkstemp template) before the first byte. */
typedef int (*VoUploadPrepareFn)(VoRequest *req, char **ret_path_template, char **ret_error);

typedef struct {
    const char *method;
    const char *pattern; /* "/v1/vms/{vm}/start" */
    VoRouteFn fn;
    VoUploadPrepareFn prepare_upload; /* NULL: a JSON body of at most VO_API_MAX_BODY */
} VoRoute;

extern const VoRoute vo_routes[];
extern const size_t vo_n_routes;

/* Fill rep with {"error":{"code","message"}}. */
void vo_reply_error(VoReply *rep, VoErrorCode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* From a negative errno and a message (message may be NULL: strerror is used). */
void vo_reply_errno(VoReply *rep, int negative_errno, const char *message);
void vo_reply_json(VoReply *rep, int status, json_t *json); /* steals json */

/* Request helpers. */
bool vo_request_query_bool(VoRequest *req, const char *key);
/* Whether the request came over the mutual-TLS listener (a cluster host's
 * client certificate was checked there); the Unix socket has no session. */
bool vo_request_over_tls(VoRequest *req);
/* The check of every peer-only route (the routes only another host of the
 * cluster calls): true when the request came over the mutual-TLS listener
 * with a client certificate of a cluster member (peer-member.h); else false
 * with rep filled: 401 unauthenticated on the Unix socket (instead, when
 * not NULL, names the route a user calls: "use INSTEAD"), 403
 * permission-denied for a certificate the cluster CA signed that names no
 * member (a host that left, a certificate made elsewhere). */
bool vo_request_from_member(VoRequest *req, VoReply *rep, const char *instead);
/* Unpacks the JSON body (an empty body is {}) with json_unpack's format,
 * strictly (unknown keys refused); false with rep filled (400) on bad input. */
bool vo_request_unpack(VoRequest *req, VoReply *rep, const char *fmt, ...);
/* Path parameter i as a small non-negative index; false with rep filled (400). */
bool vo_request_index(VoRequest *req, VoReply *rep, size_t i, const char *what, size_t *ret);
/* If-Match: "<rev>" (also a bare number, or W/"<rev>"; "*" matches any).
 * Returns true with *ret_rev = the revision asked for (0 when there is no
 * If-Match or it is "*"); false with rep filled (400) when malformed. */
bool vo_request_if_match(VoRequest *req, VoReply *rep, int64_t *ret_rev);
/* The check itself, for handlers that compare where they write: false with
 * rep filled (412 precondition-failed) when expected (> 0) is not current. */
bool vo_reply_precondition(VoReply *rep, int64_t expected, int64_t current, const char *what);
/* 202 {"task": task}, or the error (r < 0); frees error. */
void vo_reply_task(VoReply *rep, int r, json_t *task, char *error);
/* 200 with doc (stolen), or the error (r < 0); frees error. */
void vo_reply_found(VoReply *rep, int r, json_t *doc, char *error);

/* Any door (any-door-api.c): a request for a VM or task another host of
 * the cluster has is answered with that host's answer (forwarded), or a
 * 503 naming it when it is offline. True when rep is filled so; false: the
 * route's handler serves it here. */
bool vo_api_any_door(VoRequest *req, VoReply *rep, const char *pattern);

/* Roles on a project (project-gate.c): for a principal whose cluster role
 * falls short of the route, the gate before the handler (false with rep
 * filled: 404 for another project's VM, 403 for a role too low there) and
 * the filter of a list's answer after it. */
bool vo_api_project_gate(VoRequest *req, VoReply *rep, const char *pattern);
/* The gate's decisions on one object, for the any door too (a VM or task
 * of an offline host, from its last document), so that every host answers
 * a request alike: a VM of project (NULL: unknown, none) for a route of
 * pattern; a task's document (NULL: none, passes). */
bool vo_api_project_gate_vm(VoRequest *req, VoReply *rep, const char *pattern,
                            const char *project);
bool vo_api_project_gate_task(VoRequest *req, VoReply *rep, json_t *task);
/* A GET whose answer is cut to its caller: cut for a scoped one, and its
 * ETag then names its view. */
void vo_api_project_filter(VoRequest *req, VoReply *rep, const char *pattern);

/* The HTTP server on a Unix socket. */
typedef struct VoApiServer VoApiServer;
int vo_api_server_start(VoDaemon *d, const char *socket_path, VoApiServer **ret);
void vo_api_server_stop(VoApiServer *s);

/* The same routes over HTTPS on a TCP address, for a cluster's peers: the
 * server presents cert_file (with key_file) and every request must come
 * with a client certificate that ca_file's CA signed for client
 * authentication, or it is answered 401 unauthenticated. PEM files. */
typedef struct {
    const char *cert_file;
    const char *key_file;
    const char *ca_file;
} VoApiTlsFiles;
int vo_api_server_start_tls(VoDaemon *d, const char *listen, const VoApiTlsFiles *tls,
                            VoApiServer **ret, char **ret_error);
/* The same routes over HTTPS for users (docs/security.md, "Access"): the
 * server presents cert_file (with key_file), asks no client certificate,
 * and every request is authenticated (API token or session) and its role
 * checked (access-check.c) or answered 401/403/429 before its body. */
int vo_api_server_start_users(VoDaemon *d, const char *listen, const char *cert_file,
                              const char *key_file, VoApiServer **ret, char **ret_error);
/* The certificate of that listener when the operator gave none and the
 * host is in no cluster: STATE/https/https.{crt,key}, made at first start
 * (self-signed: a local CA, STATE/https/ca.crt, whose key is not kept,
 * signed it for this host's name, 127.0.0.1 and address), kept afterwards
 * (replace both files to use another). Paths malloc'd. */
int vo_api_https_cert(VoDaemon *d, const char *address, char **ret_cert, char **ret_key,
                      char **ret_error);
/* Checks what vo_api_server_start_tls will use (address, files, that the
 * key fits the certificate) without listening; the error names the option. */
int vo_api_tls_check(const char *listen_addr, const VoApiTlsFiles *tls, char **ret_error);
/* The same for the users' listener: its address, certificate and key. */
int vo_api_users_check(const char *listen_addr, const char *cert_file, const char *key_file,
                       char **ret_error);
/* "ADDRESS:PORT" ("10.0.0.5:8443", "[fd00::5]:8443"), numeric only. */
struct sockaddr_storage;
int vo_api_parse_listen(const char *text, struct sockaddr_storage *ret, socklen_t *ret_len,
                        char **ret_error);

/* Ends every open event stream (GET /v1/events) now; new ones end at once.
 * vo_api_server_stop calls it before it waits for the connections. */
void vo_api_events_shutdown(void);
