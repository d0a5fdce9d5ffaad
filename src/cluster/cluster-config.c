/* cluster-config.c: reads and writes STATE_DIR/cluster/cluster.json (see
 * cluster-config.h). Parsing is strict: an unknown field or a wrong type is
 * an error naming it, never a silent default. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster-config.h"
#include "util/util.h"

static bool valid_address(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

char *vo_cluster_url(const char *address, int port)
{
    return strchr(address, ':') ? vo_asprintf("https://[%s]:%d", address, port)
                                : vo_asprintf("https://%s:%d", address, port);
}

static int port_field(json_t *doc, const char *name, int fallback, int *ret, char **ret_error)
{
    json_t *v = json_object_get(doc, name);
    if (!v) {
        *ret = fallback;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
        return vo_error_set(ret_error, -EINVAL, "cluster.json: %s must be a port (1-65535)", name);
    *ret = (int)json_integer_value(v);
    return 0;
}

int vo_cluster_config_parse(const char *text, VoClusterConfig *c, char **ret_error)
{
    *c = (VoClusterConfig){ 0 };
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vo_error_set(ret_error, -EINVAL, "cluster.json is not a JSON object: %s",
                            jerr.text);
    }
    static const char *const known[] = { "version",        "cluster_id",     "address",
                                         "api_port",       "etcd_client_port", "etcd_peer_port",
                                         "etcd_member",    "etcd_name",      "etcd_initial_cluster",
                                         "etcd_existing",  "endpoints",      NULL };
    int r = 0;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        bool ok = false;
        for (size_t i = 0; known[i]; i++)
            ok |= !strcmp(known[i], key);
        if (!ok) {
            r = vo_error_set(ret_error, -EINVAL, "cluster.json: unknown field '%s'", key);
            goto out;
        }
    }
    v = json_object_get(doc, "version");
    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        r = vo_error_set(ret_error, -EINVAL, "cluster.json: version must be 1");
        goto out;
    }
    const char *id = json_string_value(json_object_get(doc, "cluster_id"));
    const char *address = json_string_value(json_object_get(doc, "address"));
    if (!id || !*id || strlen(id) > 64) {
        r = vo_error_set(ret_error, -EINVAL, "cluster.json: cluster_id is missing");
        goto out;
    }
    if (!address || !valid_address(address)) {
        r = vo_error_set(ret_error, -EINVAL, "cluster.json: address must be an IP address");
        goto out;
    }
    c->cluster_id = vo_strdup(id);
    c->address = vo_strdup(address);
    if ((r = port_field(doc, "api_port", VO_CLUSTER_API_PORT, &c->api_port, ret_error)) < 0 ||
        (r = port_field(doc, "etcd_client_port", VO_ETCD_CLIENT_PORT, &c->etcd_client_port,
                        ret_error)) < 0 ||
        (r = port_field(doc, "etcd_peer_port", VO_ETCD_PEER_PORT, &c->etcd_peer_port,
                        ret_error)) < 0)
        goto out;
    v = json_object_get(doc, "etcd_member");
    if (v && !json_is_boolean(v)) {
        r = vo_error_set(ret_error, -EINVAL, "cluster.json: etcd_member must be true or false");
        goto out;
    }
    c->etcd_member = json_is_true(v);
    v = json_object_get(doc, "etcd_existing");
    if (v && !json_is_boolean(v)) {
        r = vo_error_set(ret_error, -EINVAL, "cluster.json: etcd_existing must be true or false");
        goto out;
    }
    c->etcd_existing = json_is_true(v);
    const char *name = json_string_value(json_object_get(doc, "etcd_name"));
    const char *initial = json_string_value(json_object_get(doc, "etcd_initial_cluster"));
    if (c->etcd_member && (!name || !*name || !initial || !*initial)) {
        r = vo_error_set(ret_error, -EINVAL,
                         "cluster.json: an etcd member needs etcd_name and etcd_initial_cluster");
        goto out;
    }
    c->etcd_name = name ? vo_strdup(name) : NULL;
    c->etcd_initial_cluster = initial ? vo_strdup(initial) : NULL;
    json_t *eps = json_object_get(doc, "endpoints");
    if (!json_is_array(eps) || json_array_size(eps) == 0 || json_array_size(eps) > 16) {
        r = vo_error_set(ret_error, -EINVAL,
                         "cluster.json: endpoints must list 1 to 16 etcd client URLs");
        goto out;
    }
    size_t i;
    json_array_foreach(eps, i, v) {
        const char *url = json_string_value(v);
        if (!url || strncmp(url, "https://", 8) != 0 || strchr(url, ',')) {
            r = vo_error_set(ret_error, -EINVAL,
                             "cluster.json: endpoint %zu is not an https:// URL", i + 1);
            goto out;
        }
        vo_strv_push(&c->endpoints, vo_strdup(url));
    }
out:
    json_decref(doc);
    if (r < 0)
        vo_cluster_config_clear(c);
    return r;
}

int vo_cluster_config_load(const char *state_dir, VoClusterConfig *c, char **ret_error)
{
    _cleanup_free_ char *path =
        vo_asprintf("%s/" VO_CLUSTER_DIR "/" VO_CLUSTER_CONFIG, state_dir);
    _cleanup_free_ char *text = NULL;
    int r = vo_read_file(path, 1 << 20, &text, NULL);
    if (r == -ENOENT)
        return r;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read %s: %s", path, strerror(-r));
    return vo_cluster_config_parse(text, c, ret_error);
}

char *vo_cluster_config_format(const VoClusterConfig *c)
{
    json_t *eps = json_array();
    for (char **e = c->endpoints; e && *e; e++)
        json_array_append_new(eps, json_string(*e));
    json_t *doc = json_pack("{s:i, s:s, s:s, s:i, s:i, s:i, s:b, s:b, s:o}", "version", 1,
                            "cluster_id", c->cluster_id, "address", c->address, "api_port",
                            c->api_port, "etcd_client_port", c->etcd_client_port,
                            "etcd_peer_port", c->etcd_peer_port, "etcd_member", c->etcd_member,
                            "etcd_existing", c->etcd_existing, "endpoints", eps);
    if (c->etcd_name)
        json_object_set_new(doc, "etcd_name", json_string(c->etcd_name));
    if (c->etcd_initial_cluster)
        json_object_set_new(doc, "etcd_initial_cluster", json_string(c->etcd_initial_cluster));
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

int vo_cluster_config_save(const char *dir, const VoClusterConfig *c)
{
    _cleanup_free_ char *text = vo_cluster_config_format(c);
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_CLUSTER_CONFIG, dir);
    return vo_write_file_atomic(path, text, strlen(text));
}

void vo_cluster_config_clear(VoClusterConfig *c)
{
    free(c->cluster_id);
    free(c->address);
    free(c->etcd_name);
    free(c->etcd_initial_cluster);
    vo_strv_free(c->endpoints);
    *c = (VoClusterConfig){ 0 };
}
