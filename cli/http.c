/* http.c: talks HTTP to vireod with libcurl over its Unix socket, reusing one
 * connection for a whole command: JSON requests, streamed uploads and downloads
 * of volume data (with a progress line), and API errors as one-line messages. */
#include "http.h"

#include <curl/curl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>

#include "cli.h"
#include "output.h"
#include "vireo/errors.h"

#define MAX_REPLY (256u << 20)
#define CONNECT_TIMEOUT_S 10L
#define REQUEST_TIMEOUT_S 60L
/* A command whose request vireod answers only when the work is done (vm
 * exec) raises it (http_set_request_timeout). */
static long request_timeout_s = REQUEST_TIMEOUT_S;
#define STALL_TIMEOUT_S 300L /* uploads and downloads: a while for vireod's fsync */
#define PROGRESS_AFTER_MS 1000
#define PROGRESS_EVERY_MS 100
#define STALL_TIMEOUT_SSE_S 60L /* vireod's heartbeats come every 15 s */

static CURL *curl_handle;

void http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_done(void)
{
    if (curl_handle)
        curl_easy_cleanup(curl_handle);
    curl_handle = NULL;
    curl_global_cleanup();
}

static CURL *handle(void)
{
    if (!curl_handle) {
        curl_handle = curl_easy_init();
        if (!curl_handle) {
            cli_error("cannot initialise libcurl");
            exit(CLI_EXIT_FAIL);
        }
    }
    return curl_handle;
}

void http_reply_done(HttpReply *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    HttpReply *r = userdata;
    size_t n = size * nmemb;
    if (r->len + n > MAX_REPLY)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    char *p = realloc(r->body, r->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, data, n);
    r->len += n;
    p[r->len] = '\0';
    r->body = p;
    return n;
}

void api_print_unreachable(int err)
{
    const char *remote = getenv("VIREO_URL");
    cli_error("cannot reach vireod at %s: %s; is vireod running?",
              remote && remote[0] ? remote : cli_globals.socket, strerror(err));
}

/* One request: a JSON body (payload), or a streamed upload from upload_fd,
 * and the answer collected in the reply, or (a 2xx one, with download_fd >= 0)
 * written to download_fd. */
typedef struct {
    CURL *h;
    HttpReply *reply;
    const char *payload;
    int upload_fd;
    int64_t upload_size; /* -1: unknown, sent chunked */
    int download_fd;
    const char *file;  /* the local file, for messages */
    const char *label; /* a long transfer ("upload default/data1"): progress line on a
                        * tty, and no overall time limit */
    int local_errno;   /* reading upload_fd or writing download_fd failed */
    uint64_t downloaded;
    bool hole_at_end;  /* the download ends in a hole: extend the file at the end */
    bool tty, drawn;
    int64_t start_ms, drawn_ms;
    char last_line[256];
    VoSseParser *sse;      /* an event stream: 2xx bodies go here */
    const char *last_event_id;
    bool sse_stopped;      /* the event callback asked to stop */
    VoSseEventFn sse_fn;   /* the caller's, called through on_sse_event */
    void *sse_userdata;
    int idle_ms;           /* > 0: end after this long without an event */
    int64_t last_event_ms;
    bool idle_stopped;     /* ended for that */
} Transfer;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    interrupted = 1;
}

static bool all_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static size_t on_download(char *data, size_t size, size_t nmemb, void *userdata)
{
    Transfer *x = userdata;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299)
        return on_data(data, size, nmemb, x->reply); /* an error document */
    if (x->sse) {
        int r = vo_sse_feed(x->sse, data, n);
        if (r) {
            x->sse_stopped = r > 0;
            x->local_errno = r < 0 ? -r : 0;
            return 0; /* ends the transfer */
        }
        return n;
    }
    /* Runs of zeros become holes, so a sparse raw volume stays sparse. */
    if (all_zero(data, n)) {
        if (lseek(x->download_fd, (off_t)n, SEEK_CUR) < 0) {
            x->local_errno = errno;
            return 0;
        }
        x->hole_at_end = true;
    } else {
        for (size_t done = 0; done < n;) {
            ssize_t w = write(x->download_fd, data + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                x->local_errno = errno;
                return 0;
            }
            done += (size_t)w;
        }
        x->hole_at_end = false;
    }
    x->downloaded += n;
    return n;
}

static size_t on_upload_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    Transfer *x = userdata;
    for (;;) {
        ssize_t n = read(x->upload_fd, buf, size * nitems);
        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR) {
            x->local_errno = errno;
            return CURL_READFUNC_ABORT;
        }
        if (interrupted)
            return CURL_READFUNC_ABORT;
    }
}

/* "upload default/data1:  40% 12.0 MiB of 30 MiB", redrawn when it changes. */
static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    Transfer *x = userdata;
    if (interrupted)
        return 1; /* aborts with CURLE_ABORTED_BY_CALLBACK */
    int64_t now_ms = vo_now_ms();
    if (x->sse && x->idle_ms > 0 && now_ms - x->last_event_ms >= x->idle_ms) {
        x->idle_stopped = true;
        return 1;
    }
    if (!x->tty || now_ms - x->start_ms < PROGRESS_AFTER_MS)
        return 0;
    bool up = x->upload_fd >= 0;
    if (x->sse)
        return 0; /* no progress line for a stream */
    curl_off_t now = up ? ulnow : dlnow, total = up ? ultotal : dltotal;
    if (now < 0 || total < 0)
        return 0;
    /* At most ten redraws a second, but do show that the upload is complete. */
    if (now_ms - x->drawn_ms < PROGRESS_EVERY_MS && !(up && now == total))
        return 0;
    _cleanup_free_ char *done = fmt_bytes((uint64_t)now);
    _cleanup_free_ char *all = total > 0 ? fmt_bytes((uint64_t)total) : NULL;
    char line[256];
    if (all)
        snprintf(line, sizeof(line), "%s: %3d%% %s of %s%s", x->label,
                 (int)(now * 100 / total), done, all,
                 up && now == total ? ", waiting for vireod" : "");
    else
        snprintf(line, sizeof(line), "%s: %s", x->label, done);
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_col <= sizeof(line))
        line[ws.ws_col - 1] = '\0';
    if (strcmp(line, x->last_line) != 0) {
        snprintf(x->last_line, sizeof(x->last_line), "%s", line);
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        x->drawn = true;
        x->drawn_ms = now_ms;
    }
    return 0;
}

/* Keeps the ETag of the answer (a revision, "42"). */
static size_t on_header(char *data, size_t size, size_t nitems, void *userdata)
{
    HttpReply *r = userdata;
    size_t n = size * nitems;
    if (n > 5 && !strncasecmp(data, "ETag:", 5)) {
        char value[64];
        size_t len = n - 5 < sizeof(value) - 1 ? n - 5 : sizeof(value) - 1;
        memcpy(value, data + 5, len);
        value[len] = '\0';
        char *p = value + strspn(value, " \t\"");
        r->etag = strtoll(p, NULL, 10);
    } else if (n > 22 && !strncasecmp(data, "Vireo-Oldest-Revision:", 22)) {
        char value[32];
        size_t len = n - 22 < sizeof(value) - 1 ? n - 22 : sizeof(value) - 1;
        memcpy(value, data + 22, len);
        value[len] = '\0';
        r->oldest_rev = strtoll(value, NULL, 10);
    } else if (n > strlen(VO_STALE_HEADER ":") &&
               !strncasecmp(data, VO_STALE_HEADER ":", strlen(VO_STALE_HEADER ":"))) {
        const char *v = data + strlen(VO_STALE_HEADER ":");
        size_t len = n - strlen(VO_STALE_HEADER ":");
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        snprintf(r->stale, sizeof(r->stale), "%.*s", (int)len, v);
    }
    return n;
}

/* An answer from data that may be out of date (the cluster has no quorum):
 * said once per command, on stderr; the command still succeeds. */
static void warn_stale(const HttpReply *r)
{
    static bool warned;
    if (warned || !r->stale[0] || r->status / 100 != 2)
        return;
    warned = true;
    const char *since = strstr(r->stale, "since ");
    if (since)
        fprintf(stderr, "warning: the cluster has no quorum; this may be out of date (since %s)\n",
                since + strlen("since "));
    else
        fprintf(stderr, "warning: the cluster has no quorum; this may be out of date (%s)\n",
                r->stale);
}

static int perform(const char *method, const char *path, Transfer *x, HttpReply *ret)
{
    *ret = (HttpReply){ 0 };
    x->reply = ret;
    if (strlen(cli_globals.socket) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
        api_print_unreachable(ENAMETOOLONG);
        return -ENAMETOOLONG;
    }

    CURL *h = x->h = handle();
    curl_easy_reset(h); /* keeps the open connection */

    /* Remote use: $VIREO_URL (https://HOST:8443) with the API token in
     * $VIREO_TOKEN and, for a certificate no system CA signed, the CA in
     * $VIREO_CACERT (docs/security.md, "Access"); else the Unix socket. */
    const char *remote = getenv("VIREO_URL"), *token = getenv("VIREO_TOKEN");
    const char *cacert = getenv("VIREO_CACERT");
    if (remote && !remote[0])
        remote = NULL;
    _cleanup_free_ char *url = remote ? vo_asprintf("%s%s", remote, path)
                                      : vo_asprintf("http://localhost%s", path);
    _cleanup_free_ char *authz = remote && token && token[0]
                                     ? vo_asprintf("Authorization: Bearer %s", token) : NULL;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";

    headers = curl_slist_append(headers, x->sse ? "Accept: text/event-stream"
                                                : "Accept: application/json");
    _cleanup_free_ char *last_id = x->last_event_id && x->last_event_id[0]
                                       ? vo_asprintf("Last-Event-ID: %s", x->last_event_id)
                                       : NULL;
    if (last_id)
        headers = curl_slist_append(headers, last_id);
    headers = curl_slist_append(headers, "Expect:");
    if (authz)
        headers = curl_slist_append(headers, authz);
    if (x->upload_fd >= 0)
        headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    else if (x->payload)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    else /* No body: do not let curl claim a form-encoded one. */
        headers = curl_slist_append(headers, "Content-Type:");

    if (!remote)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cli_globals.socket);
    else if (cacert && cacert[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vireo/" VIREO_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, ret);
    if (x->download_fd >= 0 || x->sse) {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_download);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    } else {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);
    }
    if (x->label) {
        /* Any size: give up only when nothing moves for a while. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, x->sse ? STALL_TIMEOUT_SSE_S : STALL_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, request_timeout_s);
    }

    if (x->upload_fd >= 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->upload_size);
        if (strcmp(method, "PUT") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (x->payload || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->payload ? x->payload : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(x->payload ? strlen(x->payload) : 0));
        }
    }

    /* Ctrl-C during a long transfer stops it (unless SIGINT is ignored anyway). */
    struct sigaction sa = { .sa_handler = on_sigint }, old;
    if (x->label) {
        sigemptyset(&sa.sa_mask);
        interrupted = 0;
        x->tty = isatty(STDERR_FILENO);
        x->start_ms = vo_now_ms();
        sigaction(SIGINT, NULL, &old);
        if (old.sa_handler != SIG_IGN)
            sigaction(SIGINT, &sa, NULL);
    }
    CURLcode c = curl_easy_perform(h);
    if (x->label) {
        sigaction(SIGINT, &old, NULL);
        if (x->drawn) {
            fputs("\r\033[K", stderr);
            fflush(stderr);
        }
    }
    curl_slist_free_all(headers);
    if (c != CURLE_OK) {
        long os_errno = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
        http_reply_done(ret);
        if (x->label && interrupted)
            return -EINTR;
        if (x->idle_stopped)
            return -ETIMEDOUT;
        if (x->sse_stopped) { /* the event callback ended it: not a failure */
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ret->status);
            return 1;
        }
        if (x->local_errno) {
            cli_error("cannot %s %s: %s", x->upload_fd >= 0 ? "read" : "write", x->file,
                      strerror(x->local_errno));
            return -x->local_errno;
        }
        if (c == CURLE_COULDNT_CONNECT) {
            api_print_unreachable(os_errno ? (int)os_errno : ECONNREFUSED);
            return os_errno ? -(int)os_errno : -ECONNREFUSED;
        }
        if (c == CURLE_OPERATION_TIMEDOUT && x->sse)
            cli_error("vireod's event stream stalled: nothing for %ld s", STALL_TIMEOUT_SSE_S);
        else if (c == CURLE_OPERATION_TIMEDOUT && x->label)
            cli_error("%s stalled: nothing moved for %ld s", x->label, STALL_TIMEOUT_S);
        else if (c == CURLE_OPERATION_TIMEDOUT)
            cli_error("vireod at %s did not answer %s %s within %ld s", cli_globals.socket,
                      method, path, request_timeout_s);
        else
            cli_error("talking to vireod at %s failed: %s", cli_globals.socket,
                      errbuf[0] ? errbuf : curl_easy_strerror(c));
        return -EIO;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ret->status);
    warn_stale(ret);
    return 0;
}

/* Every event: noted (for idle_ms), then the caller's callback. */
static int on_sse_event(const VoSseEvent *ev, void *userdata)
{
    Transfer *x = userdata;
    x->last_event_ms = vo_now_ms();
    return x->sse_fn(ev, x->sse_userdata);
}

int http_stream_events(const char *path, const char *last_event_id, int idle_ms,
                       VoSseEventFn fn, void *userdata, HttpReply *ret)
{
    /* label: no overall time limit, Ctrl-C stops it; on_progress draws nothing. */
    Transfer x = { .upload_fd = -1, .download_fd = -1, .file = "the event stream",
                   .label = "events", .last_event_id = last_event_id, .sse_fn = fn,
                   .sse_userdata = userdata, .idle_ms = idle_ms,
                   .last_event_ms = vo_now_ms() };
    VoSseParser *p = vo_sse_parser_new(on_sse_event, &x);
    x.sse = p;
    int r = perform("GET", path, &x, ret);
    vo_sse_parser_free(p);
    return r;
}

int http_request(const char *method, const char *path, const json_t *body, HttpReply *ret)
{
    _cleanup_free_ char *payload = NULL;
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload) {
            *ret = (HttpReply){ 0 };
            cli_error("cannot encode the request body");
            return -ENOMEM;
        }
    }
    Transfer x = { .payload = payload, .upload_fd = -1, .download_fd = -1 };
    return perform(method, path, &x, ret);
}

int http_upload(const char *path, int fd, int64_t size, const char *file, const char *label,
                HttpReply *ret)
{
    Transfer x = { .upload_fd = fd, .upload_size = size, .download_fd = -1, .file = file,
                   .label = label };
    return perform("PUT", path, &x, ret);
}

int http_download(const char *path, int fd, const char *file, const char *label, HttpReply *ret,
                  uint64_t *ret_size)
{
    Transfer x = { .upload_fd = -1, .download_fd = fd, .file = file, .label = label };
    int r = perform("GET", path, &x, ret);
    if (r < 0 || ret->status < 200 || ret->status > 299)
        return r;
    /* A trailing hole was only seeked over: give the file its full size. */
    if (x.hole_at_end && ftruncate(fd, (off_t)x.downloaded) < 0) {
        r = -errno;
        cli_error("cannot write %s: %s", file, strerror(errno));
        http_reply_done(ret);
        return r;
    }
    *ret_size = x.downloaded;
    return 0;
}

void api_print_error(long status, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *doc = body && len ? json_loadb(body, len, 0, &jerr) : NULL;
    json_t *err = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *message = json_string_value(json_object_get(err, "message"));
    if (message && code)
        cli_error("%s (%s)", message, code);
    else if (message)
        cli_error("%s", message);
    else
        cli_error("vireod answered HTTP %ld without an error description", status);
    json_decref(doc);
}

void http_set_request_timeout(long seconds)
{
    request_timeout_s = seconds > REQUEST_TIMEOUT_S ? seconds : REQUEST_TIMEOUT_S;
}

int api_call(const char *method, const char *path, const json_t *body, json_t **ret)
{
    HttpReply reply;
    int r = http_request(method, path, body, &reply);
    if (r < 0)
        return r;
    if (reply.status < 200 || reply.status > 299) {
        api_print_error(reply.status, reply.body, reply.len);
        http_reply_done(&reply);
        return -EPROTO;
    }
    json_t *doc = NULL;
    if (reply.len > 0) {
        json_error_t jerr;
        doc = json_loadb(reply.body, reply.len, 0, &jerr);
        if (!doc) {
            cli_error("vireod sent malformed JSON for %s %s: %s", method, path, jerr.text);
            http_reply_done(&reply);
            return -EBADMSG;
        }
    }
    http_reply_done(&reply);
    if (ret) {
        if (!doc) {
            cli_error("vireod sent an empty answer for %s %s", method, path);
            return -EBADMSG;
        }
        *ret = doc;
    } else {
        json_decref(doc);
    }
    return 0;
}

char *api_escape(const char *s)
{
    char *esc = curl_easy_escape(handle(), s, 0);
    if (!esc) {
        cli_error("out of memory");
        exit(CLI_EXIT_FAIL);
    }
    char *p = vo_strdup(esc);
    curl_free(esc);
    return p;
}

char *api_path(const char *collection, const char *id, const char *suffix)
{
    _cleanup_free_ char *esc = api_escape(id);
    return vo_asprintf("/v1/%s/%s%s", collection, esc, suffix ? suffix : "");
}

char *api_volume_path(const char *pool, const char *name, const char *suffix)
{
    _cleanup_free_ char *p = api_escape(pool), *n = api_escape(name);
    return vo_asprintf("/v1/pools/%s/volumes/%s%s", p, n, suffix ? suffix : "");
}

/* GET path: with --output json the answer is printed here (false, exit
 * OK); otherwise true and the document is the caller's to show. */
static bool get_for_display(const char *path, json_t **ret_doc, int *ret_exit)
{
    json_t *doc = NULL;
    *ret_exit = CLI_EXIT_FAIL;
    if (api_call("GET", path, NULL, &doc) < 0)
        return false;
    *ret_exit = CLI_EXIT_OK;
    if (cli_globals.json) {
        out_json(stdout, doc);
        json_decref(doc);
        return false;
    }
    *ret_doc = doc;
    return true;
}

bool api_read_path(const char *path, json_t **ret_doc, int *ret_exit)
{
    return get_for_display(path, ret_doc, ret_exit);
}

bool api_read_command(const CliCommand *cmd, int argc, char **argv, const char *path,
                      json_t **ret_doc, int *ret_exit)
{
    const CliOption opts[] = { { NULL, NULL, NULL } };
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, ret_exit))
        return false;
    return get_for_display(path, ret_doc, ret_exit);
}

/* METHOD /v1/COLLECTION/NAME, NAME the one positional argument. False with
 * the exit status in *ret_exit when it did not answer 2xx (or argv is bad). */
static bool call_named(const CliCommand *cmd, int argc, char **argv, const char *method,
                       const char *collection, const char **ret_name, json_t **ret_doc,
                       int *ret_exit)
{
    const CliOption opts[] = { { NULL, NULL, NULL } };
    if (!cli_parse_args(cmd, argc, argv, opts, ret_name, ret_exit))
        return false;
    _cleanup_free_ char *path = api_path(collection, *ret_name, NULL);
    *ret_exit = CLI_EXIT_FAIL;
    return api_call(method, path, NULL, ret_doc) >= 0;
}

int api_delete_path(const char *path, const char *name)
{
    json_t *doc = NULL;
    if (api_call("DELETE", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json)
        out_json(stdout, doc);
    else
        printf("%s: deleted\n", name);
    json_decref(doc);
    return CLI_EXIT_OK;
}

int api_delete_command(const CliCommand *cmd, int argc, char **argv, const char *collection)
{
    const char *name = NULL;
    const CliOption opts[] = { { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    _cleanup_free_ char *path = api_path(collection, name, NULL);
    return api_delete_path(path, name);
}

int api_print_doc(json_t *doc, void (*show)(const json_t *doc))
{
    if (cli_globals.json)
        out_json(stdout, doc);
    else
        show(doc);
    json_decref(doc);
    return CLI_EXIT_OK;
}

int api_show_command(const CliCommand *cmd, int argc, char **argv, const char *collection,
                     void (*show)(const json_t *doc))
{
    const char *name = NULL;
    json_t *doc = NULL;
    int exit_status;
    if (!call_named(cmd, argc, argv, "GET", collection, &name, &doc, &exit_status))
        return exit_status;
    return api_print_doc(doc, show);
}

bool api_read_vm_part(const CliCommand *cmd, int argc, char **argv, const char *what,
                      const char **ret_vm, json_t **ret_doc, int *ret_exit)
{
    const CliOption opts[] = { { NULL, NULL, NULL } };
    if (!cli_parse_args(cmd, argc, argv, opts, ret_vm, ret_exit))
        return false;
    _cleanup_free_ char *suffix = vo_asprintf("/%s", what);
    _cleanup_free_ char *path = api_path("vms", *ret_vm, suffix);
    return get_for_display(path, ret_doc, ret_exit);
}
