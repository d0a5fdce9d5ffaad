/* http.c: talks HTTP to vireod with libcurl over its Unix socket, reusing one
 * connection for a whole command, and turns API errors into one-line messages. */
#include "http.h"

#include <curl/curl.h>
#include <string.h>
#include <sys/un.h>

#include "cli.h"
#include "output.h"

#define MAX_REPLY (256u << 20)
#define CONNECT_TIMEOUT_S 10L
#define REQUEST_TIMEOUT_S 60L

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
    cli_error("cannot reach vireod at %s: %s; is vireod running?", cli_globals.socket,
              strerror(err));
}

int http_request(const char *method, const char *path, const json_t *body, HttpReply *ret)
{
    *ret = (HttpReply){ 0 };
    if (strlen(cli_globals.socket) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
        api_print_unreachable(ENAMETOOLONG);
        return -ENAMETOOLONG;
    }

    CURL *h = handle();
    curl_easy_reset(h); /* keeps the open connection */

    _cleanup_free_ char *url = vo_asprintf("http://localhost%s", path);
    _cleanup_free_ char *payload = NULL;
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";

    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload) {
            curl_slist_free_all(headers);
            cli_error("cannot encode the request body");
            return -ENOMEM;
        }
        headers = curl_slist_append(headers, "Content-Type: application/json");
    } else {
        /* No body: do not let curl claim a form-encoded one. */
        headers = curl_slist_append(headers, "Content-Type:");
    }

    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cli_globals.socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vireo/" VIREO_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (payload || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(payload ? strlen(payload) : 0));
        }
    }

    CURLcode c = curl_easy_perform(h);
    curl_slist_free_all(headers);
    if (c != CURLE_OK) {
        long os_errno = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
        http_reply_done(ret);
        if (c == CURLE_COULDNT_CONNECT) {
            api_print_unreachable(os_errno ? (int)os_errno : ECONNREFUSED);
            return os_errno ? -(int)os_errno : -ECONNREFUSED;
        }
        if (c == CURLE_OPERATION_TIMEDOUT)
            cli_error("vireod at %s did not answer %s %s within %ld s", cli_globals.socket,
                      method, path, REQUEST_TIMEOUT_S);
        else
            cli_error("talking to vireod at %s failed: %s", cli_globals.socket,
                      errbuf[0] ? errbuf : curl_easy_strerror(c));
        return -EIO;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &ret->status);
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

char *api_path(const char *collection, const char *id, const char *suffix)
{
    char *esc = curl_easy_escape(handle(), id, 0);
    if (!esc) {
        cli_error("out of memory");
        exit(CLI_EXIT_FAIL);
    }
    char *p = vo_asprintf("/v1/%s/%s%s", collection, esc, suffix ? suffix : "");
    curl_free(esc);
    return p;
}

bool api_read_command(const CliCommand *cmd, int argc, char **argv, const char *path,
                      json_t **ret_doc, int *ret_exit)
{
    const CliOption opts[] = { { NULL, NULL, NULL } };
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, ret_exit))
        return false;
    json_t *doc = NULL;
    if (api_call("GET", path, NULL, &doc) < 0) {
        *ret_exit = CLI_EXIT_FAIL;
        return false;
    }
    if (cli_globals.json) {
        out_json(stdout, doc);
        json_decref(doc);
        *ret_exit = CLI_EXIT_OK;
        return false;
    }
    *ret_doc = doc;
    return true;
}
