/* object-projects.c: which project a volume or network belongs to, seen
 * from the services (object-projects.h): scopes, reads and changes through
 * state/project-objects.c, the "project" of their JSON, and the check a
 * VM's save makes on the volumes and networks it uses. */
#include "daemon/object-projects.h"

#include <string.h>

#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "daemon/vms.h"
#include "state/relations.h"
#include "state/keys.h"
#include "storage/volume-path.h"
#include "util/test-hold.h"
#include "util/util.h"

const char *vo_volume_scope(VoDaemon *d, const char *pool)
{
    _cleanup_free_ char *key = vo_pool_key(d, pool);
    return !strncmp(key, "cluster/", 8) ? "shared" : d->host_id;
}

const char *vo_network_scope(VoDaemon *d, const char *name)
{
    return vo_network_is_cluster(d, name) ? "cluster" : d->host_id;
}

/* The object of volume key "pool/name"; pool is a copy in buf. */
static VoProjectObject volume_object(VoDaemon *d, const char *key, char *buf, size_t size)
{
    const char *slash = strchr(key, '/');
    snprintf(buf, size, "%.*s", slash ? (int)(slash - key) : (int)strlen(key), key);
    return (VoProjectObject){ .kind = "volume", .scope = vo_volume_scope(d, buf), .id = key };
}

/* The object of network name. */
static VoProjectObject network_object(VoDaemon *d, const char *name)
{
    return (VoProjectObject){ .kind = "network", .scope = vo_network_scope(d, name), .id = name };
}

int vo_volume_project(VoDaemon *d, const char *key, char **ret_project, int64_t *ret_disk_bytes)
{
    char pool[VO_NAME_MAX + 1];
    VoProjectObject o = volume_object(d, key, pool, sizeof(pool));
    return vo_project_object_get(d->store, &o, ret_project, ret_disk_bytes);
}

int vo_network_project(VoDaemon *d, const char *name, char **ret_project)
{
    VoProjectObject o = network_object(d, name);
    return vo_project_object_get(d->store, &o, ret_project, NULL);
}

int vo_host_network_project(VoDaemon *d, const char *host_id, const char *name,
                            char **ret_project)
{
    VoProjectObject o = { .kind = "network", .scope = host_id, .id = name };
    return vo_project_object_get(d->store, &o, ret_project, NULL);
}

int vo_network_project_set(VoDaemon *d, const char *name, const char *project,
                           char **ret_error)
{
    VoProjectObject o = network_object(d, name);
    return vo_project_object_set(d->store, &o, project, 0, d->host_id, ret_error);
}

int vo_volume_project_grow(VoDaemon *d, const char *key, int64_t delta, char **ret_error)
{
    char pool[VO_NAME_MAX + 1];
    VoProjectObject o = volume_object(d, key, pool, sizeof(pool));
    return vo_project_object_grow(d->store, &o, delta, d->host_id, ret_error);
}

/* The project of VM vm_name of this host (malloc'd), or NULL. */
static char *vm_project_of(VoDaemon *d, const char *vm_name)
{
    _cleanup_vm_ VoVm *vm = vm_name ? vo_vms_find(d, vm_name) : NULL;
    return vm ? vo_vm_project(vm) : NULL;
}

int vo_volume_project_seen(VoDaemon *d, const char *key, char **ret_project)
{
    int r = vo_volume_project(d, key, ret_project, NULL);
    VoRelationUser user;
    if (r < 0 || *ret_project || vo_relations_volume_user(d->store, key, &user) <= 0)
        return r;
    *ret_project = vm_project_of(d, user.name);
    vo_relation_user_clear(&user);
    return 0;
}

/* Sets each item's "project" from the maps read per scope (cache: {scope:
 * {id: project}}), then keeps only's. */
static int add_projects(VoDaemon *d, json_t *list, const char *kind, const char *only)
{
    json_t *cache = json_object();
    bool volume = !strcmp(kind, "volume");
    int r = 0;
    for (size_t i = 0; i < json_array_size(list);) {
        json_t *item = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(item, "name"));
        const char *pool = json_string_value(json_object_get(item, "pool"));
        if (!name || (volume && !pool)) {
            i++;
            continue;
        }
        const char *scope = volume ? vo_volume_scope(d, pool) : vo_network_scope(d, name);
        json_t *map = json_object_get(cache, scope);
        if (!map) {
            if ((r = vo_project_objects_of(d->store, kind, scope, &map)) < 0)
                break;
            json_object_set_new(cache, scope, map);
        }
        _cleanup_free_ char *id = volume ? vo_asprintf("%s/%s", pool, name) : vo_strdup(name);
        json_t *project = json_object_get(map, id);
        /* A volume of no project that is a disk of a VM here: its VM's. */
        _cleanup_free_ char *of_vm = volume && !project
            ? vm_project_of(d, json_string_value(json_object_get(item, "attached_to"))) : NULL;
        if (of_vm)
            project = json_string(of_vm);
        else
            json_incref(project);
        json_object_set(item, "project", project ? project : json_null());
        if (volume)
            json_object_set_new(item, "project_of_vm", json_boolean(of_vm != NULL));
        bool keep = !only || (project && !strcmp(json_string_value(project), only));
        json_decref(project);
        if (keep)
            i++;
        else
            json_array_remove(list, i);
    }
    json_decref(cache);
    return r;
}

void vo_object_add_project(VoDaemon *d, json_t *item, const char *kind)
{
    if (!item)
        return;
    json_t *one = json_pack("[O]", item);
    if (add_projects(d, one, kind, NULL) < 0)
        json_object_set_new(item, "project", json_null());
    json_decref(one);
}

int vo_volumes_add_projects(VoDaemon *d, json_t *list, const char *only)
{
    return add_projects(d, list, "volume", only);
}

int vo_networks_add_projects(VoDaemon *d, json_t *list, const char *only)
{
    return add_projects(d, list, "network", only);
}

/* The object a relation key names: "uses/volumes/<pool>/<name>/<vm>" or
 * "uses/networks/<name>/<vm>" (malloc'd, *ret_volume set), or NULL. */
static char *used_object(const char *key, bool *ret_volume)
{
    static const char volumes[] = "uses/volumes/", networks[] = "uses/networks/";
    const char *rest = !strncmp(key, volumes, strlen(volumes))     ? key + strlen(volumes)
                       : !strncmp(key, networks, strlen(networks)) ? key + strlen(networks)
                                                                   : NULL;
    const char *slash = rest ? strrchr(rest, '/') : NULL;
    if (!slash)
        return NULL;
    *ret_volume = rest == key + strlen(volumes);
    return vo_asprintf("%.*s", (int)(slash - rest), rest);
}

/* Whether a VM of project may use the object (volume key or network);
 * cmps (or NULL): where the save's compares on it go. */
static int object_allowed(VoDaemon *d, const char *vm_name, const char *project, bool volume,
                          const char *object, VoObjectCompares *cmps, char **ret_error);

int vo_vm_objects_check(VoDaemon *d, const char *vm_name, const char *project, json_t *have,
                        json_t *want, VoObjectCompares *cmps, char **ret_error)
{
    /* Coming into the project (made, or moved): everything it uses. */
    _cleanup_free_ char *usage_prefix = vo_key_project_usage_prefix(project);
    bool arriving = true;
    const char *key;
    json_t *text;
    json_object_foreach(have, key, text)
        if (!strncmp(key, usage_prefix, strlen(usage_prefix)))
            arriving = false;
    json_object_foreach(want, key, text) {
        bool volume = false;
        _cleanup_free_ char *object = used_object(key, &volume);
        if (!object || (!arriving && have && json_object_get(have, key)))
            continue;
        int r = object_allowed(d, vm_name, project, volume, object, cmps, ret_error);
        if (r < 0)
            return r;
    }
    return 0;
}

int vo_vm_object_allowed(VoDaemon *d, const char *vm_name, const char *project, bool volume,
                         const char *object, char **ret_error)
{
    return object_allowed(d, vm_name, project, volume, object, NULL, ret_error);
}

/* The object of a volume key or network name. */
static VoProjectObject object_of(VoDaemon *d, bool volume, const char *object, char *buf,
                                 size_t size)
{
    return volume ? volume_object(d, object, buf, size) : network_object(d, object);
}

static int object_allowed(VoDaemon *d, const char *vm_name, const char *project, bool volume,
                          const char *object, VoObjectCompares *cmps, char **ret_error)
{
    _cleanup_free_ char *owner = NULL;
    char buf[VO_NAME_MAX + 1];
    VoProjectObject o = object_of(d, volume, object, buf, sizeof(buf));
    /* For a save: compared on what was read (state/project-objects.h);
     * a check before it (a disk or NIC add) refuses a move under way too. */
    VoObjectCompares unused = { 0 };
    int r = vo_project_object_read(d->store, &o, &owner, cmps ? cmps : &unused);
    vo_object_compares_clear(&unused);
    if (r == -EBUSY)
        return vo_error_set(ret_error, -EBUSY, "%s '%s' is being moved to another project; "
                            "try again when it is done", o.kind, object);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the project of %s '%s': %s",
                            volume ? "volume" : "network", object, strerror(-r));
    if (owner && strcmp(owner, project))
        return vo_error_set(ret_error, -EBUSY, "%s '%s' belongs to project '%s' and VM '%s' "
                            "to project '%s': a VM uses volumes and networks of its own "
                            "project or of none", volume ? "volume" : "network", object, owner,
                            vm_name, project);
    return 0;
}

/* A user another host's relations name, and that host's name. */
typedef struct {
    VoRelationUser *user;
    char *host;
} FoundUser;

static int first_user_elsewhere(const VoClusterHost *h, const char *name, const char *value,
                                void *userdata)
{
    (void)name;
    FoundUser *f = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *vm = json_string_value(json_object_get(doc, "vm"));
    const char *vm_name = json_string_value(json_object_get(doc, "name"));
    if (vm) {
        *f->user = (VoRelationUser){ .vm_id = vo_strdup(vm),
                                     .name = vo_strdup(vm_name ? vm_name : vm) };
        f->host = vo_strdup(h->name);
    }
    json_decref(doc);
    return vm ? -ECANCELED : 0; /* found: stop */
}

/* The first VM of any host that uses the object: this host's relations,
 * and for a shared pool's volume or a cluster network every other host's
 * (through the cluster's handle). 1 with *ret and *ret_host (malloc'd,
 * NULL for this host), 0, or the store's error. */
static int user_anywhere(VoDaemon *d, const VoProjectObject *o, bool volume,
                         VoRelationUser *ret, char **ret_host)
{
    *ret_host = NULL;
    int r = volume ? vo_relations_volume_user(d->store, o->id, ret)
                   : vo_relations_network_user(d->store, o->id, ret);
    bool everywhere = !strcmp(o->scope, "shared") || !strcmp(o->scope, "cluster");
    if (r != 0 || !everywhere)
        return r;
    /* Tests hold a move here, this host looked at and the others not yet,
     * to move a VM between hosts meanwhile (vm-move.h compares the mark). */
    vo_test_hold("project_move_looked_here");
    _cleanup_free_ char *sub = vo_asprintf("uses/%s/%s", volume ? "volumes" : "networks", o->id);
    FoundUser f = { .user = ret };
    r = vo_cluster_each_doc(d, sub, first_user_elsewhere, &f);
    if (r == -ECANCELED) {
        *ret_host = f.host;
        return 1;
    }
    return r;
}

/* The key of a volume's (key "pool/name") or network's own document. */
static char *object_doc_key(VoDaemon *d, bool volume, const char *object)
{
    if (!volume)
        return vo_network_is_cluster(d, object) ? vo_asprintf("cluster/networks/%s", object)
                                                : vo_asprintf("networks/%s", object);
    _cleanup_free_ char *pool = NULL, *name = NULL;
    if (vo_volume_key_split(object, &pool, &name) < 0)
        return vo_strdup(object);
    return vo_volume_doc_key(d, pool, name);
}

/* A move to another project: marked, its users looked for on every host,
 * then its documents set compared on the mark (state/project-objects.h). */
static int object_move(VoDaemon *d, bool volume, const char *object, const char *project,
                       int64_t disk_bytes, char **ret_error)
{
    char buf[VO_NAME_MAX + 1];
    VoProjectObject o = object_of(d, volume, object, buf, sizeof(buf));
    VoObjectMoveMark mark;
    int r = vo_project_object_mark(d->store, &o, d->host_id, project, &mark, ret_error);
    if (r < 0)
        return r;
    /* Its own document as it is now that it is marked: a delete (on any
     * host) that commits before the move makes the move fail, so no
     * project records are made for an object that is gone. */
    _cleanup_free_ char *own_key = object_doc_key(d, volume, object);
    VoStoreCompare exists = { .key = own_key };
    if ((r = vo_store_get(d->store, own_key, NULL, &exists.expected_rev)) < 0) {
        vo_project_object_unmark(d->store, &mark);
        return r == -ENOENT
            ? vo_error_set(ret_error, r, "%s '%s' does not exist", o.kind, object)
            : vo_error_set(ret_error, r, "%s '%s': cannot read it: %s", o.kind, object,
                           strerror(-r));
    }
    VoRelationUser user = { 0 };
    _cleanup_free_ char *host = NULL;
    r = user_anywhere(d, &o, volume, &user, &host);
    if (r != 0) {
        vo_project_object_unmark(d->store, &mark);
        const char *vm = r > 0 ? user.name : "?";
        if (r < 0)
            r = vo_error_set(ret_error, r, "%s '%s': cannot read which VMs use it: %s", o.kind,
                             object, strerror(-r));
        else if (volume)
            r = vo_error_set(ret_error, -EBUSY, "volume '%s' is attached to VM '%s'%s%s%s: "
                             "detach it before moving it to another project", object, vm,
                             host ? " on host '" : "", host ? host : "", host ? "'" : "");
        else
            r = vo_error_set(ret_error, -EBUSY, "network '%s' has a NIC of VM '%s'%s%s%s: "
                             "remove it before moving the network to another project", object,
                             vm, host ? " on host '" : "", host ? host : "", host ? "'" : "");
        vo_relation_user_clear(&user);
        return r;
    }
    /* Tests hold a move here, its users looked for, to race an attach. */
    vo_test_hold("project_move");
    return vo_project_object_set_marked(d->store, &o, project, disk_bytes, d->host_id, &exists,
                                        &mark, ret_error);
}

int vo_volume_project_move(VoDaemon *d, const char *key, const char *project,
                           int64_t disk_bytes, char **ret_error)
{
    return object_move(d, true, key, project, disk_bytes, ret_error);
}

int vo_network_project_move(VoDaemon *d, const char *name, const char *project,
                            char **ret_error)
{
    return object_move(d, false, name, project, 0, ret_error);
}
