/* route-match.h: the API's request-path rules and route matching on the RAW
 * request URI (as the client sent it, before any percent-decoding). Pure: no
 * libmicrohttpd, no daemon; unit-tested and fuzzed (tests/fuzz/fuzz-route.c).
 *
 * Rules: the path starts with '/'; the query ('?' onwards) is ignored here;
 * every segment is split on the raw '/', then checked and decoded on its own.
 * A segment is refused (400) when it holds a raw byte outside printable
 * ASCII, a '#', an invalid percent escape, an encoded control byte (%00-%1f,
 * %7f), an encoded slash (%2f) or is "." or ".." (plain or encoded). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define VO_ROUTE_MAX_PARAMS 2

/* One route: METHOD + pattern such as "/v1/vms/{vm}/disks/{index}". */
typedef struct {
    const char *method;
    const char *pattern;
} VoRouteSpec;

/* The API's route table without handlers (routes.def), in the same order as
 * vo_routes[] in routes.c: index i names the same route in both. */
extern const VoRouteSpec vo_route_specs[];
extern const size_t vo_n_route_specs;

typedef struct {
    size_t index;                              /* into the route table */
    char *params[VO_ROUTE_MAX_PARAMS];         /* decoded {placeholders}, in path order */
    size_t n_params;
} VoRouteMatch;

/* Matches method + raw_uri against routes[0..n). Returns 0 with *ret filled
 * (free with vo_route_match_clear), or:
 *   -EINVAL  the path breaks a rule above (answer 400),
 *   -ENOENT  no route has this path (404),
 *   -EPERM   a route has this path but not this method (405),
 *   -ENOMEM.
 * *ret_error (may be NULL) gets a message for the client naming the bad
 * segment (control bytes in it escaped); the caller frees it. */
int vo_route_match(const VoRouteSpec *routes, size_t n, const char *method, const char *raw_uri,
                   VoRouteMatch *ret, char **ret_error);
void vo_route_match_clear(VoRouteMatch *m);

/* The path part of a raw URI (up to '?' or the end), copied, or NULL on ENOMEM. */
char *vo_route_raw_path(const char *raw_uri);

/* Whether an HTTP header's comma-separated token list ("keep-alive, Upgrade")
 * holds token as a whole element, case-insensitively (as libmicrohttpd
 * checks "Connection: upgrade"); list may be NULL. */
bool vo_http_has_token(const char *list, const char *token);

/* s (len bytes) made safe to print on one log line or in a message: bytes
 * outside printable ASCII and the backslash become \xNN. Caller frees; NULL
 * on ENOMEM. */
char *vo_escape_bytes(const char *s, size_t len);
