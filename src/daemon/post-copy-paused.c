/* post-copy-paused.c: a paused post-copy as the API shows it
 * (post-copy-paused.h). */
#include "daemon/post-copy-paused.h"

#include <dirent.h>
#include <string.h>

#include "daemon/cluster-place.h"
#include "daemon/migrate.h"
#include "daemon/post-copy-kept.h"
#include "fence/fence-state.h"
#include "util/util.h"

json_t *vo_post_copy_paused_json(VoDaemon *d)
{
    json_t *arr = json_array();
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_FENCE_POST_COPY_DIR, d->run_dir);
    DIR *dh = opendir(dir);
    if (!dh)
        return arr; /* no post-copy source was ever kept here */
    struct dirent *e;
    while ((e = readdir(dh))) {
        _cleanup_free_ char *to = NULL, *vm_id = NULL, *name = NULL;
        /* Kept (its mark), and its intent switched with no migration task
         * running: that task recovers it itself until it ends. */
        if (e->d_name[0] == '.' || !vo_post_copy_kept(d, e->d_name, -1, &to) ||
            vo_migration_kept_source(d, e->d_name, &vm_id, &name, NULL) < 0)
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "vm", vm_id, "name", name,
                                             "to", to));
    }
    closedir(dh);
    return arr;
}

void vo_post_copy_paused_add(VoDaemon *d, json_t *vms, json_t *records)
{
    json_t *read = NULL, *paused = json_object();
    /* Not given: the records alone (the member documents are not needed
     * here; one range read on a host that is not the manager), as
     * {id: {"doc", "rev"}}. */
    if (!records && d->cluster_store && json_array_size(vms) &&
        vo_cluster_records_read(d, &read) < 0)
        read = NULL;
    const char *host_id;
    json_t *record;
    json_object_foreach(records ? records : read, host_id, record) { /* {vm id: where} */
        json_t *doc = records ? record : json_object_get(record, "doc");
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(doc, "post_copy_paused"), i, p) {
            const char *vm = json_string_value(json_object_get(p, "vm"));
            if (vm)
                json_object_set_new(paused, vm, json_pack("{s:O?, s:s}", "source_host",
                                                          json_object_get(doc, "name"),
                                                          "source_host_id", host_id));
        }
    }
    size_t i;
    json_t *vm;
    json_array_foreach(json_object_size(paused) ? vms : NULL, i, vm) {
        const char *id = json_string_value(json_object_get(vm, "id"));
        json_t *where = id ? json_object_get(paused, id) : NULL;
        if (where)
            json_object_set(vm, "post_copy_paused", where);
    }
    json_decref(paused);
    json_decref(read);
}
