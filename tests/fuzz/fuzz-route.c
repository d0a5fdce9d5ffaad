/* fuzz-route.c: libFuzzer target for the API route matcher. The input is a
 * raw request URI (as a client could send it, bytes and all) matched against
 * vireod's real route table for each method; the properties checked: a match
 * has as many decoded params as its pattern has placeholders, and no param is
 * empty or holds '/', a control byte or is "." / ".."; every refusal has a
 * one-line message. Links only src/api/route-match.c and route-table.c. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/route-match.h"

static size_t placeholders(const char *pattern)
{
    size_t n = 0;
    for (const char *p = pattern; *p; p++)
        n += *p == '{';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
    char *uri = malloc(size + 1);
    if (!uri)
        return 0;
    memcpy(uri, data, size);
    uri[size] = 0; /* a literal NUL ends the URI, as in the server */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        VoRouteMatch m;
        char *error = NULL;
        int r = vo_route_match(vo_route_specs, vo_n_route_specs, methods[i], uri, &m, &error);
        if (r == 0) {
            if (error || m.index >= vo_n_route_specs ||
                strcmp(vo_route_specs[m.index].method, methods[i]) ||
                m.n_params != placeholders(vo_route_specs[m.index].pattern))
                abort();
            for (size_t k = 0; k < m.n_params; k++) {
                const char *p = m.params[k];
                if (!p || !p[0] || strchr(p, '/') || !strcmp(p, ".") || !strcmp(p, ".."))
                    abort();
                for (const unsigned char *c = (const unsigned char *)p; *c; c++)
                    if (*c < 0x20 || *c == 0x7f)
                        abort();
            }
            vo_route_match_clear(&m);
        } else {
            if (r != -EINVAL && r != -ENOENT && r != -EPERM && r != -ENOMEM)
                abort();
            if (r != -ENOMEM && (!error || strchr(error, '\n')))
                abort();
            if (m.params[0] || m.n_params)
                abort();
        }
        free(error);
    }
    free(uri);
    return 0;
}
