/* server.c: vireod's HTTP/1.1 server on a Unix socket (libmicrohttpd, one
 * thread per connection): body limits, content type, JSON parsing, routing and
 * the JSON error envelope. Handlers live in one file per noun. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "api/http.h"
#include "util/unix-socket.h"
#include "util/util.h"

struct VoApiServer {
    struct MHD_Daemon *mhd;
    int listen_fd;
    char *socket_path;
};

typedef struct {
    char *body;
    size_t len;
    bool too_large;
    /* Streamed uploads. */
    const VoRoute *route;
    const char *params[VO_API_MAX_PARAMS];
    char storage[512];
    int upload_fd;
    char *upload_path;
    uint64_t upload_bytes;
    int upload_errno;
    char *upload_error;
} PendingRequest;

void vo_reply_json(VoReply *rep, int status, json_t *json)
{
    json_decref(rep->json);
    rep->status = status;
    rep->json = json;
}

void vo_reply_error(VoReply *rep, VoErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vo_vasprintf(fmt, ap);
    va_end(ap);
    vo_reply_json(rep, vo_error_http_status(code),
                  json_pack("{s:{s:s, s:s}}", "error", "code", vo_error_code_name(code),
                            "message", msg));
    free(msg);
}

void vo_reply_errno(VoReply *rep, int negative_errno, const char *message)
{
    vo_reply_error(rep, vo_error_from_errno(negative_errno), "%s",
                   message ? message : strerror(-negative_errno));
}

/* Unpacks the body strictly; fills rep with 400 naming the problem. */
bool vo_request_unpack(VoRequest *req, VoReply *rep, const char *fmt, ...)
{
    if (!req->body)
        req->body = json_object();
    json_error_t jerr;
    va_list ap;
    va_start(ap, fmt);
    int r = json_vunpack_ex(req->body, &jerr, JSON_STRICT, fmt, ap);
    va_end(ap);
    if (r < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "invalid request body: %s", jerr.text);
        return false;
    }
    return true;
}

void vo_reply_task(VoReply *rep, int r, json_t *task, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 202, json_pack("{s:o}", "task", task));
    free(error);
}

void vo_reply_found(VoReply *rep, int r, json_t *doc, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, doc);
    free(error);
}

bool vo_request_index(VoRequest *req, VoReply *rep, size_t i, const char *what, size_t *ret)
{
    const char *text = req->params[i];
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!text[0] || *end || text[0] == '-' || errno || v > 1000) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s: '%s' is not an index (0, 1, ...)",
                       what, text);
        return false;
    }
    *ret = (size_t)v;
    return true;
}

bool vo_request_query_bool(VoRequest *req, const char *key)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
    return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"));
}

/* Matches path against pattern, collecting {placeholder} segments. */
static bool match_pattern(const char *pattern, const char *path, const char **params,
                          char *storage, size_t storage_len)
{
    size_t used = 0;
    int n = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            size_t seg = strcspn(path, "/");
            if (!close || seg == 0 || n >= VO_API_MAX_PARAMS || used + seg + 1 > storage_len)
                return false;
            memcpy(storage + used, path, seg);
            storage[used + seg] = 0;
            params[n++] = storage + used;
            used += seg + 1;
            pattern = close + 1;
            path += seg;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return !*pattern && !*path;
}

/* Finds the handler for req's method and path, filling req->params; NULL with
 * rep filled (404 or 405) when there is none. */
static const VoRoute *find_route(VoRequest *req, VoReply *rep, char *storage, size_t storage_len)
{
    bool path_known = false;
    for (size_t i = 0; i < vo_n_routes; i++) {
        const char *params[VO_API_MAX_PARAMS] = { 0 };
        if (!match_pattern(vo_routes[i].pattern, req->path, params, storage, storage_len))
            continue;
        path_known = true;
        if (strcmp(vo_routes[i].method, req->method))
            continue;
        memcpy(req->params, params, sizeof(params));
        return &vo_routes[i];
    }
    if (path_known)
        vo_reply_error(rep, VO_ERR_METHOD_NOT_ALLOWED, "%s is not allowed on %s", req->method,
                       req->path);
    else
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "no such API route: %s", req->path);
    return NULL;
}

static bool is_json_content_type(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (!ct)
        return false;
    size_t n = strcspn(ct, ";");
    return n == strlen("application/json") && !strncasecmp(ct, "application/json", n);
}

/* Validates and parses the body; false with rep filled on bad input. */
static bool parse_body(VoRequest *req, PendingRequest *p, VoReply *rep)
{
    if (p->too_large) {
        vo_reply_error(rep, VO_ERR_PAYLOAD_TOO_LARGE, "request body exceeds %d bytes",
                       VO_API_MAX_BODY);
        return false;
    }
    if (p->len == 0)
        return true;
    if (!is_json_content_type(req->conn)) {
        vo_reply_error(rep, VO_ERR_UNSUPPORTED_MEDIA,
                       "request body must be JSON (Content-Type: application/json)");
        return false;
    }
    json_error_t jerr;
    req->body = json_loadb(p->body, p->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req->body) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "malformed JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
        return false;
    }
    if (!json_is_object(req->body)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "request body must be a JSON object");
        return false;
    }
    return true;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, VoReply *rep)
{
    struct MHD_Response *resp;
    const char *ctype = "application/json";
    if (rep->upgrade) {
        resp = MHD_create_response_for_upgrade(rep->upgrade_fn, rep->upgrade_cls);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "vireo-console");
        enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return r;
    }
    if (rep->file_fd >= 0) {
        resp = MHD_create_response_from_fd64(rep->file_size, rep->file_fd); /* takes the fd */
        rep->file_fd = -1;
        ctype = "application/octet-stream";
    } else if (rep->text) {
        resp = MHD_create_response_from_buffer(rep->text_len, rep->text, MHD_RESPMEM_MUST_FREE);
        rep->text = NULL;
        ctype = "text/plain; charset=utf-8";
    } else {
        char *s = json_dumps(rep->json ? rep->json : json_object(), JSON_INDENT(0) | JSON_SORT_KEYS | JSON_COMPACT);
        size_t len = strlen(s);
        char *with_nl = vo_asprintf("%s\n", s);
        free(s);
        resp = MHD_create_response_from_buffer(len + 1, with_nl, MHD_RESPMEM_MUST_FREE);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)rep->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* A streamed route: open the file its body goes to. Errors are kept and
 * answered once the body has been read (HTTP needs the whole request first). */
static void begin_upload(VoDaemon *d, struct MHD_Connection *conn, const char *url,
                         const char *method, PendingRequest *p)
{
    VoRequest req = { .d = d, .conn = conn, .method = method, .path = url };
    VoReply ignored = { .file_fd = -1 };
    const VoRoute *route = find_route(&req, &ignored, p->storage, sizeof(p->storage));
    json_decref(ignored.json);
    if (!route || !route->prepare_upload)
        return;
    p->route = route;
    memcpy(p->params, req.params, sizeof(p->params));
    char *tmpl = NULL;
    int r = route->prepare_upload(&req, &tmpl, &p->upload_error);
    if (r >= 0) {
        p->upload_fd = mkostemp(tmpl, O_CLOEXEC);
        if (p->upload_fd < 0) {
            r = -errno;
            p->upload_error = vo_asprintf("cannot store the upload: %s", strerror(errno));
            free(tmpl);
        } else
            p->upload_path = tmpl;
    }
    p->upload_errno = r < 0 ? r : 0;
}

static void write_upload(PendingRequest *p, const char *data, size_t len)
{
    while (p->upload_fd >= 0 && !p->upload_errno && len > 0) {
        ssize_t n = write(p->upload_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            p->upload_errno = -errno;
            p->upload_error = vo_asprintf("cannot store the upload after %llu bytes: %s",
                                          (unsigned long long)p->upload_bytes, strerror(errno));
            return;
        }
        data += n;
        len -= (size_t)n;
        p->upload_bytes += (uint64_t)n;
    }
}

static void finish_upload(VoRequest *req, PendingRequest *p, VoReply *rep)
{
    if (!p->upload_errno && p->upload_fd >= 0 && fsync(p->upload_fd) < 0) {
        p->upload_errno = -errno;
        p->upload_error = vo_asprintf("cannot store the upload: %s", strerror(errno));
    }
    if (p->upload_errno) {
        vo_reply_errno(rep, p->upload_errno, p->upload_error);
        return;
    }
    req->upload_path = p->upload_path;
    req->upload_bytes = p->upload_bytes;
    p->route->fn(req, rep);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    VoDaemon *d = cls;
    PendingRequest *p = *con_cls;
    if (!p) {
        *con_cls = p = vo_malloc0(sizeof(PendingRequest));
        p->upload_fd = -1;
        begin_upload(d, conn, url, method, p);
        return MHD_YES;
    }
    if (*upload_data_size > 0 && p->route) {
        write_upload(p, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (p->len + *upload_data_size > VO_API_MAX_BODY)
            p->too_large = true;
        else {
            p->body = realloc(p->body, p->len + *upload_data_size + 1);
            if (!p->body)
                abort();
            memcpy(p->body + p->len, upload_data, *upload_data_size);
            p->len += *upload_data_size;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    VoRequest req = { .d = d, .conn = conn, .method = method, .path = url };
    VoReply rep = { .status = 200, .file_fd = -1 };
    char storage[512];
    if (p->route) {
        memcpy(req.params, p->params, sizeof(req.params));
        finish_upload(&req, p, &rep);
    } else {
        const VoRoute *route = find_route(&req, &rep, storage, sizeof(storage));
        if (route && parse_body(&req, p, &rep))
            route->fn(&req, &rep);
    }
    enum MHD_Result r = send_reply(conn, &rep);
    log_debug("%s %s -> %d", method, url, rep.upgrade ? 101 : rep.status);
    json_decref(rep.json);
    free(rep.text);
    json_decref(req.body);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    PendingRequest *p = *con_cls;
    if (p) {
        if (p->upload_fd >= 0)
            close(p->upload_fd);
        if (p->upload_path)
            (void)unlink(p->upload_path); /* the handler took what it wanted */
        free(p->upload_path);
        free(p->upload_error);
        free(p->body);
        free(p);
        *con_cls = NULL;
    }
}

int vo_api_server_start(VoDaemon *d, const char *socket_path, VoApiServer **ret)
{
    int fd = vo_unix_listen(socket_path, 0660);
    if (fd < 0)
        return fd;
    VoApiServer *s = vo_malloc0(sizeof(*s));
    s->listen_fd = fd;
    s->socket_path = vo_strdup(socket_path);
    s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                  MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
                              0, NULL, NULL, on_request, d, MHD_OPTION_LISTEN_SOCKET, fd,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0, MHD_OPTION_END);
    if (!s->mhd) {
        close(fd);
        (void)unlink(socket_path);
        free(s->socket_path);
        free(s);
        return -EIO;
    }
    *ret = s;
    return 0;
}

void vo_api_server_stop(VoApiServer *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    close(s->listen_fd);
    (void)unlink(s->socket_path);
    free(s->socket_path);
    free(s);
}
