/* iscsi-url.c: iSCSI portals, IQNs and vireo's iscsi:// strings (see
 * iscsi-url.h). */
#include "storage/iscsi-url.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void vo_iscsi_url_clear(VoIscsiUrl *u)
{
    free(u->host);
    free(u->target);
    free(u->user);
    free(u->secret);
    free(u->initiator);
    *u = (VoIscsiUrl){ .lun = -1 };
}

static bool host_valid(const char *s, size_t len)
{
    if (len == 0 || len > 253 || s[0] == '-' || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

static bool parse_port(const char *s, unsigned *ret)
{
    if (!*s || strlen(s) > 5)
        return false;
    unsigned long v = 0;
    for (const char *c = s; *c; c++) {
        if (!isdigit((unsigned char)*c))
            return false;
        v = v * 10 + (unsigned long)(*c - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *ret = (unsigned)v;
    return true;
}

int vo_iscsi_portal_parse(const char *s, char **ret_host, unsigned *ret_port, char **ret_error)
{
    if (!s || !*s)
        return vo_error_set(ret_error, -EINVAL, "portal: give the target's address as IP[:PORT]");
    const char *colon = strchr(s, ':');
    size_t hlen = colon ? (size_t)(colon - s) : strlen(s);
    unsigned port = VO_ISCSI_DEFAULT_PORT;
    if (s[0] == '[' || (colon && strchr(colon + 1, ':')))
        return vo_error_set(ret_error, -EINVAL, "portal: '%s': IPv6 portals are not supported "
                            "(give IPv4[:PORT] or a host name)", s);
    if (!host_valid(s, hlen))
        return vo_error_set(ret_error, -EINVAL, "portal: '%s' is not IP[:PORT] (an IPv4 address "
                            "or host name, then an optional port)", s);
    if (colon && !parse_port(colon + 1, &port))
        return vo_error_set(ret_error, -EINVAL, "portal: '%s': the port must be 1-65535", s);
    *ret_host = vo_asprintf("%.*s", (int)hlen, s);
    *ret_port = port;
    return 0;
}

bool vo_iscsi_name_valid(const char *s)
{
    if (!s)
        return false;
    size_t len = strlen(s);
    if (!strncmp(s, "eui.", 4)) {
        if (len != 20)
            return false;
        for (size_t i = 4; i < len; i++)
            if (!isxdigit((unsigned char)s[i]))
                return false;
        return true;
    }
    /* iqn.YYYY-MM.domain... */
    if (len > 223 || len < 12 || strncmp(s, "iqn.", 4))
        return false;
    for (size_t i = 4; i < 11; i++)
        if (i == 8 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return false;
    if (s[11] != '.' || !s[12] || !isalnum((unsigned char)s[12]))
        return false;
    for (size_t i = 12; i < len; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '.' &&
            s[i] != '-' && s[i] != ':')
            return false;
    return true;
}

bool vo_iscsi_user_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i]))
            return false;
    return true;
}

bool vo_iscsi_url_is(const char *s)
{
    return s && !strncmp(s, VO_ISCSI_URL_PREFIX, strlen(VO_ISCSI_URL_PREFIX));
}

static char *format(const VoIscsiUrl *u, bool full)
{
    char lun[16] = "";
    if (u->lun >= 0)
        snprintf(lun, sizeof(lun), "/%d", u->lun);
    const char *sep = "?";
    char *s = vo_asprintf(VO_ISCSI_URL_PREFIX "%s%s%s:%u/%s%s", full && u->user ? u->user : "",
                          full && u->user ? "@" : "", u->host, u->port, u->target, lun);
    if (full && u->secret) {
        char *t = vo_asprintf("%s%ssecret=%s", s, sep, u->secret);
        free(s);
        s = t;
        sep = "&";
    }
    if (full && u->initiator) {
        char *t = vo_asprintf("%s%sinitiator=%s", s, sep, u->initiator);
        free(s);
        s = t;
    }
    return s;
}

char *vo_iscsi_url_format(const VoIscsiUrl *u)
{
    return format(u, true);
}

char *vo_iscsi_url_plain(const VoIscsiUrl *u)
{
    return format(u, false);
}

static int parse_query(char *q, VoIscsiUrl *u)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        if (!strncmp(kv, "secret=", 7) && kv[7] == '/' && !u->secret)
            u->secret = vo_strdup(kv + 7);
        else if (!strncmp(kv, "initiator=", 10) && vo_iscsi_name_valid(kv + 10) && !u->initiator)
            u->initiator = vo_strdup(kv + 10);
        else
            return -EINVAL;
    }
    return 0;
}

int vo_iscsi_url_parse(const char *s, VoIscsiUrl *ret)
{
    *ret = (VoIscsiUrl){ .lun = -1 };
    if (!vo_iscsi_url_is(s))
        return -EINVAL;
    _cleanup_free_ char *copy = vo_strdup(s + strlen(VO_ISCSI_URL_PREFIX));
    VoIscsiUrl u = { .lun = -1 };
    char *query = strchr(copy, '?');
    if (query)
        *query++ = 0;
    char *slash = strchr(copy, '/');
    if (!slash)
        return -EINVAL;
    *slash = 0;
    char *hostport = copy, *at = strchr(copy, '@');
    if (at) {
        *at = 0;
        if (!vo_iscsi_user_valid(copy))
            return -EINVAL;
        u.user = vo_strdup(copy);
        hostport = at + 1;
    }
    _cleanup_free_ char *error = NULL;
    int r = vo_iscsi_portal_parse(hostport, &u.host, &u.port, &error);
    char *target = slash + 1, *lun = strrchr(target, '/');
    if (r == 0 && lun) {
        *lun++ = 0;
        unsigned v = 0;
        if (!parse_port(lun, &v) && strcmp(lun, "0"))
            r = -EINVAL;
        else
            u.lun = !strcmp(lun, "0") ? 0 : (int)v;
    }
    if (r == 0 && !vo_iscsi_name_valid(target))
        r = -EINVAL;
    if (r == 0)
        u.target = vo_strdup(target);
    if (r == 0 && query)
        r = parse_query(query, &u);
    if (r < 0) {
        vo_iscsi_url_clear(&u);
        return -EINVAL;
    }
    *ret = u;
    return 0;
}

json_t *vo_iscsi_url_blockdev(const VoIscsiUrl *u, const char *secret_id)
{
    if (!u || u->lun < 0 || !u->host || !u->target)
        return NULL;
    char *portal = vo_asprintf("%s:%u", u->host, u->port);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i}", "driver", "iscsi", "transport", "tcp",
                          "portal", portal, "target", u->target, "lun", u->lun);
    free(portal);
    if (u->initiator)
        json_object_set_new(o, "initiator-name", json_string(u->initiator));
    if (u->user && u->secret && secret_id) {
        json_object_set_new(o, "user", json_string(u->user));
        json_object_set_new(o, "password-secret", json_string(secret_id));
    }
    return o;
}
