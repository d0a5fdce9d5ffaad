/* web-files.c: the web UI (web/dist, built by npm) served on the users'
 * HTTPS listener: "/" sends the browser to /ui/, /ui/... are the app's
 * files, read from vireod's --web-dir. They are public (the login page is
 * one); the app talks to the API like any other client. Every answer
 * carries a strict Content-Security-Policy; a file with a ".gz" beside it
 * (made at build time) goes out gzip-encoded to clients that accept it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http.h"
#include "api/route-match.h"
#include "api/web-files.h"
#include "util/util.h"
#include "util/web-path.h"

/* Scripts, styles, images, fonts and connections (the API, the event
 * stream, the console's WebSocket) from this origin only; no plugins, no
 * framing, no inline scripts. Inline styles are allowed: the terminal and
 * the charts size their elements with them. */
#define WEB_CSP "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " \
                "img-src 'self' data:; font-src 'self'; connect-src 'self'; "                \
                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

bool vo_api_web_wants(const char *method, const char *raw_uri)
{
    return (!strcmp(method, "GET") || !strcmp(method, "HEAD")) && vo_web_is_ui_path(raw_uri);
}

static void add_header(VoReply *rep, const char *name, const char *value)
{
    vo_strv_pushf(&rep->extra_headers, "%s", name);
    vo_strv_pushf(&rep->extra_headers, "%s", value);
}

/* Opens dir/rel when it is a regular file that resolves inside dir (dir is
 * a realpath). -ENOENT otherwise. */
static int open_inside(const char *dir, const char *rel, struct stat *st)
{
    _cleanup_free_ char *joined = vo_asprintf("%s/%s", dir, rel);
    _cleanup_free_ char *real = realpath(joined, NULL);
    size_t dl = strlen(dir);
    if (!real || strncmp(real, dir, dl) != 0 || real[dl] != '/')
        return -ENOENT;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

static bool accepts_gzip(struct MHD_Connection *conn)
{
    return vo_http_has_token(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         "Accept-Encoding"), "gzip");
}

void vo_api_web_file(VoDaemon *d, struct MHD_Connection *conn, const char *raw_uri,
                     VoReply *rep)
{
    add_header(rep, "Content-Security-Policy", WEB_CSP);
    add_header(rep, "X-Content-Type-Options", "nosniff");
    add_header(rep, "Referrer-Policy", "no-referrer");
    add_header(rep, "X-Frame-Options", "DENY");
    if (strncmp(raw_uri, "/ui/", 4) != 0) { /* "/" and "/ui" */
        rep->status = 302;
        rep->header_name = "Location";
        snprintf(rep->header_value, sizeof(rep->header_value), "/ui/");
        rep->text = vo_strdup("the web UI is at /ui/\n");
        rep->text_len = strlen(rep->text);
        return;
    }
    if (!d->web_dir) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "this vireod serves no web UI: its files were not "
                       "found (build them with 'make build', or give vireod --web-dir DIR)");
        return;
    }
    _cleanup_free_ char *rel = NULL;
    if (vo_web_file_of(raw_uri, &rel) < 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "not a path of the web UI's files");
        return;
    }
    struct stat st;
    int fd = -ENOENT;
    bool gzipped = false;
    if (accepts_gzip(conn)) {
        _cleanup_free_ char *gz = vo_asprintf("%s.gz", rel);
        fd = open_inside(d->web_dir, gz, &st);
        gzipped = fd >= 0;
    }
    if (fd < 0)
        fd = open_inside(d->web_dir, rel, &st);
    if (fd < 0) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "the web UI has no file '%s'", rel);
        return;
    }
    rep->status = 200;
    rep->file_fd = fd;
    rep->file_size = (uint64_t)st.st_size;
    add_header(rep, "Content-Type", vo_web_content_type(rel));
    add_header(rep, "Vary", "Accept-Encoding");
    if (gzipped)
        add_header(rep, "Content-Encoding", "gzip");
    /* Vite names the assets by their content: they never change. */
    add_header(rep, "Cache-Control", !strncmp(rel, "assets/", 7)
                                         ? "public, max-age=31536000, immutable"
                                         : "no-cache");
}

char *vo_api_web_dir(const char *option, const char *argv0)
{
    if (option)
        return realpath(option, NULL);
    /* Installed: PREFIX/sbin/vireod -> PREFIX/share/vireo/web; the build
     * tree: BUILD/src/daemon/vireod -> the source's web/dist. */
    _cleanup_free_ char *exe = realpath("/proc/self/exe", NULL);
    if (!exe)
        exe = argv0 ? realpath(argv0, NULL) : NULL;
    if (!exe)
        return NULL;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    static const char *const candidates[] = { "../share/vireo/web", "../../../web/dist",
                                              "../../web/dist" };
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        _cleanup_free_ char *path = vo_asprintf("%s/%s/index.html", exe, candidates[i]);
        if (access(path, R_OK) == 0) {
            path[strlen(path) - strlen("/index.html")] = '\0';
            return realpath(path, NULL);
        }
    }
    return NULL;
}
