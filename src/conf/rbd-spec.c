/* rbd-spec.c: checks of an rbd pool's monitors, pool, user and keyring
 * (see rbd-spec.h). */
#include "conf/rbd-spec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static bool port_valid(const char *s)
{
    if (!*s || strlen(s) > 5)
        return false;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    long v = strtol(s, NULL, 10);
    return v >= 1 && v <= 65535;
}

/* One "IPv4[:PORT]" or "[IPv6][:PORT]". */
static bool monitor_valid(const char *m)
{
    char addr[64];
    const char *port = NULL;
    unsigned char buf[16];
    if (m[0] == '[') {
        const char *end = strchr(m, ']');
        if (!end || (size_t)(end - m - 1) >= sizeof(addr))
            return false;
        memcpy(addr, m + 1, (size_t)(end - m - 1));
        addr[end - m - 1] = 0;
        if (end[1] == ':')
            port = end + 2;
        else if (end[1])
            return false;
        return inet_pton(AF_INET6, addr, buf) == 1 && (!port || port_valid(port));
    }
    const char *colon = strchr(m, ':');
    size_t n = colon ? (size_t)(colon - m) : strlen(m);
    if (n == 0 || n >= sizeof(addr))
        return false;
    memcpy(addr, m, n);
    addr[n] = 0;
    return inet_pton(AF_INET, addr, buf) == 1 && (!colon || port_valid(colon + 1));
}

bool vo_rbd_monitors_valid(const char *monitors)
{
    if (!monitors || !*monitors || strlen(monitors) > 1024)
        return false;
    _cleanup_free_ char *copy = vo_strdup(monitors);
    size_t n = 0;
    char *save = NULL;
    /* strtok_r would skip empty items: ",," and a trailing ',' are refused here. */
    if (copy[0] == ',' || copy[strlen(copy) - 1] == ',' || strstr(copy, ",,"))
        return false;
    for (char *m = strtok_r(copy, ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (++n > VO_RBD_MAX_MONITORS || !monitor_valid(m))
            return false;
    return n > 0;
}

static bool ceph_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-' || *c == '.'))
            return false;
    return true;
}

bool vo_rbd_pool_name_valid(const char *name)
{
    return ceph_name_valid(name) && name[0] != '.';
}

bool vo_rbd_user_valid(const char *user)
{
    return ceph_name_valid(user) && strncmp(user, "client.", 7) != 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static bool key_valid(const char *k)
{
    if (!*k || strlen(k) > 256)
        return false;
    for (const char *c = k; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '+' || *c == '/' || *c == '='))
            return false;
    return true;
}

int vo_rbd_keyring_key(const char *text, const char *user, char **ret_key, char **ret_error)
{
    _cleanup_free_ char *copy = vo_strdup(text ? text : "");
    _cleanup_free_ char *want = vo_asprintf("client.%s", user);
    char *section = NULL, *found = NULL, *only = NULL;
    size_t n_sections = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line = trim(line);
        if (line[0] == '[') {
            char *end = strchr(line, ']');
            if (!end)
                continue;
            *end = 0;
            section = line + 1;
            n_sections++;
            continue;
        }
        char *eq = strchr(line, '=');
        if (!section || !eq)
            continue;
        *eq = 0;
        if (strcmp(trim(line), "key"))
            continue;
        char *value = trim(eq + 1);
        if (!strcmp(section, want))
            found = value;
        else if (!only)
            only = value;
    }
    const char *key = found ? found : n_sections == 1 ? only : NULL;
    if (!key) {
        *ret_error = vo_asprintf("keyring: no key for %s in it (a [%s] section with key = ...)",
                                 want, want);
        return -ENOENT;
    }
    if (!key_valid(key)) {
        *ret_error = vo_asprintf("keyring: the key of %s is not a cephx key (base64)", want);
        return -EINVAL;
    }
    *ret_key = vo_strdup(key);
    return 0;
}
