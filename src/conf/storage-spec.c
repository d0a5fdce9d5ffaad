/* storage-spec.c: pool and volume create requests: JSON -> struct and the
 * checks that need no I/O (see storage-spec.h). */
#include "conf/storage-spec.h"

#include <string.h>

#include "conf/names.h"
#include "conf/rbd-spec.h"
#include "storage/iscsi-url.h"
#include "util/util.h"

void vo_pool_spec_clear(VoPoolSpec *s)
{
    free(s->name);
    free(s->type);
    free(s->path);
    free(s->portal);
    free(s->target);
    free(s->chap_user);
    free(s->chap_secret);
    free(s->monitors);
    free(s->rbd_pool);
    free(s->user);
    free(s->keyring);
    *s = (VoPoolSpec){ 0 };
}

void vo_volume_spec_clear(VoVolumeSpec *s)
{
    free(s->name);
    free(s->format);
    free(s->content);
    free(s->import_path);
    free(s->project);
    *s = (VoVolumeSpec){ 0 };
}

static int invalid_body(const json_error_t *jerr, char **ret_error)
{
    *ret_error = vo_asprintf("invalid request body: %s", jerr->text);
    return -EINVAL;
}

static char *invalid_name(const char *what, const char *name)
{
    return vo_asprintf("%s: '%s' is invalid: use 1-63 characters of a-z, 0-9 and '-', not "
                       "starting with '-'", what, name);
}

/* An iSCSI pool: portal and target (checked in full by the daemon, which
 * logs in), CHAP user and secret together; no path, not shared (yet). */
static int iscsi_pool_spec(const char *name, const char *path, int shared, const char *portal,
                           const char *target, const char *chap_user, const char *chap_secret,
                           VoPoolSpec *ret, char **ret_error)
{
    _cleanup_free_ char *host = NULL;
    unsigned port = 0;
    if (path)
        return vo_error_set(ret_error, -EINVAL, "path: an iscsi pool has none (give portal "
                            "and target)");
    if (shared)
        return vo_error_set(ret_error, -EINVAL, "shared: iscsi pools cannot be marked shared "
                            "yet");
    int r = vo_iscsi_portal_parse(portal, &host, &port, ret_error);
    if (r < 0)
        return r;
    if (!vo_iscsi_name_valid(target))
        return vo_error_set(ret_error, -EINVAL, "target: '%s' is not an iSCSI name (iqn.YYYY-"
                            "MM.reversed.domain[:name], lower case, or eui. and 16 hex digits)",
                            target ? target : "");
    if (!!chap_user != !!chap_secret)
        return vo_error_set(ret_error, -EINVAL, "chap_user and chap_secret go together");
    if (chap_user && !vo_iscsi_user_valid(chap_user))
        return vo_error_set(ret_error, -EINVAL, "chap_user: '%s' is invalid (1-64 characters "
                            "of A-Z, a-z, 0-9, '.', '_', ':' and '-')", chap_user);
    *ret = (VoPoolSpec){ .name = vo_strdup(name), .type = vo_strdup("iscsi"),
                         .portal = vo_strdup(portal), .target = vo_strdup(target),
                         .chap_user = vo_strdup(chap_user), .chap_secret = vo_strdup(chap_secret) };
    return 0;
}

/* An rbd pool: monitors, pool, user and keyring, no path, not "shared"
 * (an rbd pool is reachable from wherever its monitors are). */
static int rbd_spec(const char *name, const char *path, bool shared, const char *monitors,
                    const char *rbd_pool, const char *user, const char *keyring,
                    VoPoolSpec *ret, char **ret_error)
{
    if (path || shared) {
        *ret_error = vo_strdup("path and shared are not for rbd pools (give monitors, pool, "
                               "user and keyring)");
        return -EINVAL;
    }
    if (!monitors || !vo_rbd_monitors_valid(monitors)) {
        *ret_error = vo_asprintf("monitors: '%s' is not a list of monitor addresses "
                                 "(IP[:PORT][,IP[:PORT]...], IPv6 in [])",
                                 monitors ? monitors : "");
        return -EINVAL;
    }
    if (!rbd_pool || !vo_rbd_pool_name_valid(rbd_pool)) {
        *ret_error = vo_asprintf("pool: '%s' is not a Ceph pool name (1-63 of A-Z a-z 0-9 _ - "
                                 ".)", rbd_pool ? rbd_pool : "");
        return -EINVAL;
    }
    if (!user || !vo_rbd_user_valid(user)) {
        *ret_error = vo_asprintf("user: '%s' is not a cephx user id (1-63 of A-Z a-z 0-9 _ - ., "
                                 "without 'client.')", user ? user : "");
        return -EINVAL;
    }
    if (!keyring || keyring[0] != '/') {
        *ret_error = vo_asprintf("keyring: '%s' is not a readable keyring file (absolute path)",
                                 keyring ? keyring : "");
        return -EINVAL;
    }
    *ret = (VoPoolSpec){ .name = vo_strdup(name), .type = vo_strdup("rbd"),
                         .monitors = vo_strdup(monitors), .rbd_pool = vo_strdup(rbd_pool),
                         .user = vo_strdup(user), .keyring = vo_strdup(keyring) };
    return 0;
}

int vo_pool_spec_from_json(json_t *doc, VoPoolSpec *ret, char **ret_error)
{
    *ret = (VoPoolSpec){ 0 };
    json_auto_t *empty = doc ? NULL : json_object();
    const char *name = NULL, *type = "dir", *path = NULL;
    const char *monitors = NULL, *rbd_pool = NULL, *user = NULL, *keyring = NULL;
    int shared = 0;
    json_error_t jerr;
    const char *portal = NULL, *target = NULL, *chap_user = NULL, *chap_secret = NULL;
    if (json_unpack_ex(doc ? doc : empty, &jerr, JSON_STRICT,
                       "{s:s, s?s, s?s, s?b, s?s, s?s, s?s, s?s, s?s, s?s, s?s, s?s}", "name",
                       &name, "type", &type, "path", &path, "shared", &shared, "portal",
                       &portal, "target", &target, "chap_user", &chap_user, "chap_secret",
                       &chap_secret, "monitors", &monitors, "pool", &rbd_pool, "user", &user,
                       "keyring", &keyring) < 0)
        return invalid_body(&jerr, ret_error);
    if (!vo_name_valid(name)) {
        *ret_error = invalid_name("name", name);
        return -EINVAL;
    }
    if (strcmp(type, "dir") && strcmp(type, "backup") && strcmp(type, "iscsi") &&
        strcmp(type, "rbd")) {
        *ret_error = vo_asprintf("type: '%s' is not supported (dir, backup, iscsi or rbd)", type);
        return -EINVAL;
    }
    bool iscsi_fields = portal || target || chap_user || chap_secret;
    bool rbd_fields = monitors || rbd_pool || user || keyring;
    if (iscsi_fields && strcmp(type, "iscsi")) {
        *ret_error = vo_asprintf("portal, target, chap_user and chap_secret are for iscsi "
                                 "pools, not %s pools", type);
        return -EINVAL;
    }
    if (rbd_fields && strcmp(type, "rbd")) {
        *ret_error = vo_asprintf("monitors, pool, user and keyring are for rbd pools, not %s",
                                 type);
        return -EINVAL;
    }
    if (!strcmp(type, "iscsi"))
        return iscsi_pool_spec(name, path, shared, portal, target, chap_user, chap_secret, ret,
                               ret_error);
    if (!strcmp(type, "rbd"))
        return rbd_spec(name, path, shared, monitors, rbd_pool, user, keyring, ret, ret_error);
    if (!path) {
        *ret_error = vo_asprintf("path: give the %s pool's directory (absolute path)", type);
        return -EINVAL;
    }
    if (path[0] != '/') {
        *ret_error = vo_asprintf("path: '%s' is not an existing directory (absolute path)", path);
        return -EINVAL;
    }
    if (shared && strcmp(type, "dir")) {
        *ret_error = vo_asprintf("shared: a %s pool cannot be shared (only dir pools)", type);
        return -EINVAL;
    }
    *ret = (VoPoolSpec){ .name = vo_strdup(name), .type = vo_strdup(type),
                         .path = vo_strdup(path), .shared = shared };
    return 0;
}

int vo_volume_spec_from_json(json_t *doc, VoVolumeSpec *ret, char **ret_error)
{
    *ret = (VoVolumeSpec){ 0 };
    json_auto_t *empty = doc ? NULL : json_object();
    const char *name = NULL, *format = "qcow2", *import_path = NULL, *content = NULL;
    const char *project = NULL;
    json_int_t size = 0;
    json_error_t jerr;
    if (json_unpack_ex(doc ? doc : empty, &jerr, JSON_STRICT, "{s:s, s?I, s?s, s?s, s?s, s?s}",
                       "name", &name, "size_bytes", &size, "format", &format, "import_path",
                       &import_path, "content", &content, "project", &project) < 0)
        return invalid_body(&jerr, ret_error);
    if (project && !vo_name_valid(project)) {
        *ret_error = invalid_name("project", project);
        return -EINVAL;
    }
    if (size < 0 || (size > 0 && import_path)) {
        *ret_error = vo_strdup("give size_bytes (> 0) for a new volume or import_path, not both");
        return -EINVAL;
    }
    if (!import_path && size == 0) {
        *ret_error = vo_strdup("size_bytes: give the size of the new volume (or import_path)");
        return -EINVAL;
    }
    if ((uint64_t)size > VO_VOLUME_MAX_BYTES) {
        *ret_error = vo_strdup("size_bytes: out of range (up to 64 TiB)");
        return -EINVAL;
    }
    if (import_path && import_path[0] != '/') {
        *ret_error = vo_asprintf("import_path: '%s' is not a readable file (absolute path)",
                                 import_path);
        return -EINVAL;
    }
    if (!vo_name_valid(name)) {
        *ret_error = invalid_name("volume name", name);
        return -EINVAL;
    }
    if (strcmp(format, "qcow2") && strcmp(format, "raw")) {
        *ret_error = vo_asprintf("format: '%s' is not qcow2 or raw", format);
        return -EINVAL;
    }
    if (content && strcmp(content, "iso")) {
        *ret_error = vo_asprintf("content: '%s' is not iso (leave it out for a disk image)",
                                 content);
        return -EINVAL;
    }
    if (content && !import_path) {
        *ret_error = vo_strdup("content: an iso volume is imported: give import_path");
        return -EINVAL;
    }
    *ret = (VoVolumeSpec){ .name = vo_strdup(name), .format = vo_strdup(format),
                           .size_bytes = (uint64_t)size, .import_path = vo_strdup(import_path),
                           .content = vo_strdup(content), .project = vo_strdup(project) };
    return 0;
}
