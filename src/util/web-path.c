/* web-path.c: which paths are the web UI's and the file each names inside
 * the UI's directory; pure string work (api/web-files.c does the I/O). */
#include <errno.h>
#include <string.h>

#include "util/util.h"
#include "util/web-path.h"

bool vo_web_is_ui_path(const char *raw_uri)
{
    size_t n = strcspn(raw_uri, "?");
    return (n == 1 && raw_uri[0] == '/') || (n == 3 && !strncmp(raw_uri, "/ui", 3)) ||
           !strncmp(raw_uri, "/ui/", 4);
}

static bool segment_ok(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\' || c == '%')
            return false;
    }
    return true;
}

int vo_web_file_of(const char *raw_uri, char **ret)
{
    size_t n = strcspn(raw_uri, "?");
    if (n < 4 || strncmp(raw_uri, "/ui/", 4) != 0)
        return -EINVAL;
    const char *rel = raw_uri + 4;
    size_t rel_len = n - 4;
    if (rel_len == 0) {
        *ret = vo_strdup("index.html");
        return 0;
    }
    for (size_t start = 0; start <= rel_len;) {
        const char *slash = memchr(rel + start, '/', rel_len - start);
        size_t end = slash ? (size_t)(slash - rel) : rel_len;
        if (!segment_ok(rel + start, end - start))
            return -EINVAL;
        start = end + 1;
    }
    *ret = vo_asprintf("%.*s", (int)rel_len, rel);
    return 0;
}

const char *vo_web_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".woff2", "font/woff2" },
        { ".txt", "text/plain; charset=utf-8" },
        { ".map", "application/json" },
    };
    const char *dot = strrchr(name, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcmp(dot, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}
