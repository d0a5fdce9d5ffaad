/* project-heal.c: a project's usage documents of volumes and networks that
 * are gone are removed (project-heal.h): this host decides for its own
 * scope (its local pools' volumes, its own networks); a shared pool's
 * volume, a cluster network and another host's objects are left alone. */
#include "daemon/project-heal.h"

#include <string.h>

#include "daemon/cluster-view.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "state/keys.h"
#include "state/project-objects.h"
#include "util/util.h"

/* {"kind","object"} of the usage documents of objects in host_id's scope. */
typedef struct {
    const char *host_id;
    json_t *found;
} HealScan;

static int collect_own(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    (void)rev;
    HealScan *scan = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *kind = vo_project_usage_doc_kind(doc);
    const char *scope = json_string_value(json_object_get(doc, "scope"));
    json_t *object = json_object_get(doc, "object");
    if (kind && json_is_string(object) && scope && !strcmp(scope, scan->host_id))
        json_array_append_new(scan->found, json_pack("{s:s, s:O}", "kind", kind, "object",
                                                     object));
    json_decref(doc);
    return 0;
}

static int object_gone(const VoProjectObject *o, void *userdata)
{
    VoDaemon *d = userdata;
    return !strcmp(o->kind, "volume") ? vo_volume_gone_here(d, o->id)
                                      : vo_network_gone_here(d, o->id);
}

int vo_project_heal(VoDaemon *d, const char *project)
{
    _cleanup_free_ char *prefix = project ? vo_key_project_usage_prefix(project)
                                          : vo_strdup(VO_KEY_PROJECT_USAGE_PREFIX);
    HealScan scan = { .host_id = d->host_id, .found = json_array() };
    int r = vo_store_list(d->store, prefix, collect_own, &scan);
    int removed = 0;
    size_t i;
    json_t *one;
    json_array_foreach(scan.found, i, one) {
        if (r < 0)
            break;
        const char *kind = json_string_value(json_object_get(one, "kind"));
        const char *id = json_string_value(json_object_get(one, "object"));
        VoProjectObject o = { .kind = kind, .scope = d->host_id, .id = id };
        int k = vo_project_object_forget_gone(d->store, &o, object_gone, d);
        if (k > 0) {
            log_info("%s %s is gone (its delete was cut short): its project no longer "
                     "counts it", kind, id);
            removed++;
        } else if (k == -EAGAIN) {
            log_debug("%s %s: this host cannot tell whether it is gone", kind, id);
        } else if (k < 0) {
            r = k;
        }
    }
    json_decref(scan.found);
    return r < 0 ? r : removed;
}

char *vo_project_object_where(VoDaemon *d, json_t *one)
{
    const char *scope = json_string_value(json_object_get(one, "scope"));
    if (!scope || !strcmp(scope, d->host_id) || !strcmp(scope, "shared") ||
        !strcmp(scope, "cluster"))
        return vo_strdup("");
    VoClusterHost h = { 0 };
    int r = vo_cluster_host_get(d, scope, &h);
    char *words = r == -ENOENT
        ? vo_asprintf(" (on host %s, which is not a member of the cluster: whether it "
                      "still exists there is unknown)", scope)
        : r < 0 ? vo_asprintf(" (on host %s: its state cannot be read: %s)", scope,
                              strerror(-r))
        : !h.online ? vo_asprintf(" (on host '%s', offline: whether it still exists is "
                                  "known when the host is back)", h.name ? h.name : scope)
                    : vo_asprintf(" (on host '%s')", h.name ? h.name : scope);
    vo_cluster_host_clear(&h);
    return words;
}
