/* route-match.c: request-path rules and route matching on the raw request URI
 * (see route-match.h). Only libc: the fuzz target links this file alone with
 * route-table.c. */
#include "api/route-match.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *vo_escape_bytes(const char *s, size_t len)
{
    char *out = malloc(len * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            static const char hex[] = "0123456789abcdef";
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else
            out[o++] = (char)c;
    }
    out[o] = 0;
    return out;
}

bool vo_http_has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    while (list && *list) {
        list += strspn(list, " \t,");
        size_t n = strcspn(list, ",");
        size_t m = n;
        while (m > 0 && (list[m - 1] == ' ' || list[m - 1] == '\t'))
            m--;
        if (m == tlen && tlen > 0 && !strncasecmp(list, token, tlen))
            return true;
        list += n;
    }
    return false;
}

char *vo_route_raw_path(const char *raw_uri)
{
    size_t n = strcspn(raw_uri, "?");
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, raw_uri, n);
        p[n] = 0;
    }
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Sets *ret_error (if wanted) to "invalid path segment '<seg>': <why>". */
static int segment_error(char **ret_error, const char *seg, size_t len, const char *why)
{
    if (!ret_error)
        return -EINVAL;
    if (len > 200)
        len = 200; /* enough to recognise it */
    char *shown = vo_escape_bytes(seg, len);
    if (!shown)
        return -ENOMEM;
    size_t n = strlen(shown) + strlen(why) + 64;
    *ret_error = malloc(n);
    if (!*ret_error) {
        free(shown);
        return -ENOMEM;
    }
    snprintf(*ret_error, n, "invalid path segment '%s': %s", shown, why);
    free(shown);
    return -EINVAL;
}

/* Checks raw segment seg[0..len) and decodes it into out (room for len + 1). */
static int decode_segment(const char *seg, size_t len, char *out, char **ret_error)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)seg[i];
        if (c <= 0x20 || c >= 0x7f)
            return segment_error(ret_error, seg, len,
                                 "a URL holds only printable ASCII (percent-encode other bytes)");
        if (c == '#')
            return segment_error(ret_error, seg, len, "'#' must be percent-encoded");
        if (c != '%') {
            out[o++] = (char)c;
            continue;
        }
        int hi = i + 2 < len ? hexval(seg[i + 1]) : -1;
        int lo = i + 2 < len ? hexval(seg[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return segment_error(ret_error, seg, len,
                                 "'%' must start an escape of two hex digits");
        unsigned char d = (unsigned char)(hi << 4 | lo);
        if (d < 0x20 || d == 0x7f)
            return segment_error(ret_error, seg, len, "encoded control bytes are not allowed");
        if (d == '/')
            return segment_error(ret_error, seg, len, "an encoded '/' is not allowed");
        out[o++] = (char)d;
        i += 2;
    }
    out[o] = 0;
    if (!strcmp(out, ".") || !strcmp(out, ".."))
        return segment_error(ret_error, seg, len, "'.' and '..' are not allowed");
    return 0;
}

void vo_route_match_clear(VoRouteMatch *m)
{
    for (size_t i = 0; i < VO_ROUTE_MAX_PARAMS; i++) {
        free(m->params[i]);
        m->params[i] = NULL;
    }
    m->n_params = 0;
}

/* Does pattern fit the decoded segments? Fills params (pointers into segs). */
static bool pattern_fits(const char *pattern, char *const *segs, size_t n_segs,
                         const char **params, size_t *n_params)
{
    size_t s = 0;
    *n_params = 0;
    const char *p = pattern;
    while (*p == '/') {
        p++;
        size_t plen = strcspn(p, "/");
        if (s >= n_segs)
            return false;
        if (p[0] == '{' && plen >= 2 && p[plen - 1] == '}') {
            if (!segs[s][0] || *n_params >= VO_ROUTE_MAX_PARAMS)
                return false;
            params[(*n_params)++] = segs[s];
        } else if (strlen(segs[s]) != plen || memcmp(segs[s], p, plen))
            return false;
        s++;
        p += plen;
    }
    return !*p && s == n_segs;
}

static int format_error(char **ret_error, const char *fmt, const char *a, const char *b)
{
    if (!ret_error)
        return 0;
    char *ea = vo_escape_bytes(a, strlen(a) > 200 ? 200 : strlen(a));
    char *eb = b ? vo_escape_bytes(b, strlen(b) > 200 ? 200 : strlen(b)) : NULL;
    size_t n = strlen(fmt) + (ea ? strlen(ea) : 0) + (eb ? strlen(eb) : 0) + 1;
    *ret_error = (ea && (eb || !b)) ? malloc(n) : NULL;
    if (*ret_error)
        snprintf(*ret_error, n, fmt, ea, eb ? eb : "");
    free(ea);
    free(eb);
    return *ret_error ? 0 : -ENOMEM;
}

int vo_route_match(const VoRouteSpec *routes, size_t n, const char *method, const char *raw_uri,
                   VoRouteMatch *ret, char **ret_error)
{
    *ret = (VoRouteMatch){ 0 };
    if (ret_error)
        *ret_error = NULL;
    if (!raw_uri)
        raw_uri = "";
    size_t path_len = strcspn(raw_uri, "?");
    if (path_len == 0 || raw_uri[0] != '/') {
        if (ret_error && !(*ret_error = strdup("the request path must start with '/'")))
            return -ENOMEM;
        return -EINVAL;
    }

    /* Split on raw '/', check and decode each segment. */
    size_t n_segs = 0;
    for (size_t i = 0; i < path_len; i++)
        n_segs += raw_uri[i] == '/';
    char **segs = calloc(n_segs, sizeof(char *));
    char *buf = malloc(path_len + 1);
    int r = 0;
    if (!segs || !buf) {
        r = -ENOMEM;
        goto out;
    }
    char *out = buf;
    const char *seg = raw_uri + 1;
    for (size_t s = 0; s < n_segs; s++) {
        size_t len = 0;
        while (seg + len < raw_uri + path_len && seg[len] != '/')
            len++;
        r = decode_segment(seg, len, out, ret_error);
        if (r < 0)
            goto out;
        segs[s] = out;
        out += strlen(out) + 1;
        seg += len + 1;
    }

    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        const char *params[VO_ROUTE_MAX_PARAMS] = { 0 };
        size_t n_params = 0;
        if (!pattern_fits(routes[i].pattern, segs, n_segs, params, &n_params))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, method))
            continue;
        ret->index = i;
        for (size_t k = 0; k < n_params; k++) {
            ret->params[k] = strdup(params[k]);
            if (!ret->params[k]) {
                vo_route_match_clear(ret);
                r = -ENOMEM;
                goto out;
            }
        }
        ret->n_params = n_params;
        r = 0;
        goto out;
    }
    char *path = vo_route_raw_path(raw_uri);
    if (!path) {
        r = -ENOMEM;
        goto out;
    }
    if (path_known)
        r = format_error(ret_error, "%s is not allowed on %s", method, path) ?: -EPERM;
    else
        r = format_error(ret_error, "no such API route: %s%s", path, NULL) ?: -ENOENT;
    free(path);
out:
    free(segs);
    free(buf);
    return r;
}
