/* storage-api.c: /v1/pools and /v1/volumes routes (pools, volumes, their
 * data up- and download), thin mappings onto daemon/storage.c. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "api/cluster-storage.h"
#include "api/handlers.h"
#include "conf/storage-spec.h"
#include "daemon/hosts.h"
#include "daemon/object-projects.h"
#include "state/project-usage.h"
#include "daemon/storage.h"
#include "util/util.h"

static void reply_result(VoReply *rep, int r, int status, json_t *doc, char *error)
{
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, status, doc);
    free(error);
}

/* Each host's view of shared pool (this host's own, the others' from their
 * records: a record lists the pools its host reaches, and why not the
 * others). */
static json_t *pool_hosts(VoDaemon *d, json_t *hosts, json_t *pool)
{
    const char *name = json_string_value(json_object_get(pool, "name"));
    json_t *arr = json_array();
    size_t i, j;
    json_t *h, *p;
    json_array_foreach(hosts, i, h) {
        const char *state = json_string_value(json_object_get(h, "state"));
        json_t *o = json_pack("{s:O, s:O}", "host", json_object_get(h, "name"), "id",
                              json_object_get(h, "id"));
        bool reachable = false;
        const char *reason = NULL;
        if (json_is_true(json_object_get(h, "local"))) {
            reachable = json_is_true(json_object_get(pool, "reachable"));
            reason = json_string_value(json_object_get(pool, "reason"));
        } else if (state && !strcmp(state, "offline")) {
            reason = "the host is offline";
        } else {
            json_array_foreach(json_object_get(h, "pools"), j, p)
                if (json_is_string(p) && !strcmp(json_string_value(p), name))
                    reachable = true;
            reason = json_string_value(
                json_object_get(json_object_get(h, "pools_unreachable"), name));
            if (!reachable && !reason)
                reason = "the host has not checked the pool yet";
        }
        json_object_set_new(o, "reachable", json_boolean(reachable));
        json_object_set_new(o, "reason", reachable || !reason ? json_null() : json_string(reason));
        json_array_append_new(arr, o);
    }
    (void)d;
    return arr;
}

/* Adds "hosts" to the shared pools of list (an array of pools). */
static void add_pool_hosts(VoDaemon *d, json_t *list)
{
    int err = 0;
    json_t *hosts = NULL;
    size_t i;
    json_t *pool;
    json_array_foreach(list, i, pool) {
        if (!json_is_true(json_object_get(pool, "shared")))
            continue;
        if (!hosts && !(hosts = vo_hosts_list_json(d, &err)))
            hosts = json_pack("{s:[]}", "hosts"); /* the store said no: this host's view only */
        json_object_set_new(pool, "hosts", pool_hosts(d, json_object_get(hosts, "hosts"), pool));
    }
    json_decref(hosts);
}

void vo_api_pools_list(VoRequest *req, VoReply *rep)
{
    json_t *list = vo_pools_list_json(req->d);
    add_pool_hosts(req->d, list);
    /* A cluster: the other hosts' local pools too, with their host. */
    int r = vo_api_cluster_pools(req->d, list);
    if (r < 0) {
        json_decref(list);
        vo_reply_errno(rep, r, NULL);
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:o}", "pools", list));
}

void vo_api_pool_create(VoRequest *req, VoReply *rep)
{
    VoPoolSpec spec;
    json_t *pool = NULL;
    char *error = NULL;
    int r = vo_pool_spec_from_json(req->body, &spec, &error);
    VoIscsiPoolArgs iscsi = { .name = spec.name, .portal = spec.portal, .target = spec.target,
                              .chap_user = spec.chap_user, .chap_secret = spec.chap_secret };
    if (r >= 0 && !strcmp(spec.type, VO_ISCSI_POOL_TYPE))
        r = vo_pool_create_iscsi(req->d, &iscsi, &pool, &error);
    else if (r >= 0 && !strcmp(spec.type, "rbd"))
        r = vo_pool_create_rbd(req->d, &spec, &pool, &error);
    else if (r >= 0)
        r = vo_pool_create(req->d, spec.name, spec.type, spec.path, spec.shared, &pool, &error);
    vo_pool_spec_clear(&spec);
    if (r >= 0) /* placement asks for the pools a create names */
        vo_hosts_publish_changed(req->d, "pools");
    reply_result(rep, r, 201, pool, error);
}

void vo_api_pool_show(VoRequest *req, VoReply *rep)
{
    if (vo_api_pool_door(req, rep, req->params[0])) /* another host's local pool */
        return;
    _cleanup_free_ char *key = vo_pool_key(req->d, req->params[0]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *pool = NULL;
    char *error = NULL;
    int r = vo_pool_get_json(req->d, req->params[0], &pool, &error);
    if (r >= 0) {
        json_t *one = json_pack("[O]", pool);
        add_pool_hosts(req->d, one);
        json_decref(pool);
        pool = json_incref(json_array_get(one, 0));
        json_decref(one);
    }
    reply_result(rep, r, 200, pool, error);
}

void vo_api_pool_refresh(VoRequest *req, VoReply *rep)
{
    json_t *pool = NULL;
    char *error = NULL;
    int r = vo_pool_refresh(req->d, req->params[0], &pool, &error);
    reply_result(rep, r, 200, pool, error);
}

void vo_api_volume_format(VoRequest *req, VoReply *rep)
{
    const char *format = NULL;
    if (!vo_request_unpack(req, rep, "{s:s}", "format", &format))
        return;
    char *error = NULL;
    int r = vo_volume_format(req->d, req->params[0], req->params[1], format, &error);
    json_t *volume = NULL;
    if (r >= 0)
        r = vo_volume_get_json(req->d, req->params[0], req->params[1], &volume, &error);
    reply_result(rep, r, 200, volume, error);
}

void vo_api_pool_delete(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    char *error = NULL;
    int r = vo_pool_delete(req->d, req->params[0], want, vo_request_query_bool(req, "force"),
                           &error);
    if (r >= 0)
        vo_hosts_publish_changed(req->d, "pools");
    reply_result(rep, r, 200, json_object(), error);
}

void vo_api_volumes_list(VoRequest *req, VoReply *rep)
{
    const char *pool = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "pool");
    if (vo_api_pool_door(req, rep, pool)) /* another host's local pool */
        return;
    if (pool && !vo_pool_exists(req->d, pool)) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "pool '%s' does not exist", pool);
        return;
    }
    /* ?project=P: the volumes of P only. */
    const char *project = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                                      "project");
    json_t *list = vo_volumes_list_json(req->d, pool);
    int r = vo_volumes_add_projects(req->d, list, project);
    if (r < 0) {
        json_decref(list);
        vo_reply_errno(rep, r, "cannot read the volumes' projects");
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:o}", "volumes", list));
}


static void reply_task_and_volume(VoDaemon *d, VoReply *rep, int r, json_t *task,
                                  json_t *volume, char *error)
{
    vo_object_add_project(d, volume, "volume");
    if (r < 0) {
        json_decref(volume);
        vo_reply_errno(rep, r, error);
    } else
        vo_reply_json(rep, 202, json_pack("{s:o, s:o}", "task", task, "volume",
                                          volume ? volume : json_null()));
    free(error);
}

void vo_api_volume_create(VoRequest *req, VoReply *rep)
{
    VoVolumeSpec spec;
    json_t *task = NULL, *volume = NULL;
    char *error = NULL;
    int r = vo_volume_spec_from_json(req->body, &spec, &error);
    VoVolumeCreateArgs args = { .pool = req->params[0], .name = spec.name, .format = spec.format,
                                .size_bytes = spec.size_bytes, .import_path = spec.import_path,
                                .content = spec.content, .project = spec.project };
    if (r >= 0)
        r = vo_volume_create(req->d, &args, &task, &volume, &error);
    vo_volume_spec_clear(&spec);
    reply_task_and_volume(req->d, rep, r, task, volume, error);
}

void vo_api_volume_show(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_volume_doc_key(req->d, req->params[0], req->params[1]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *volume = NULL;
    char *error = NULL;
    int r = vo_volume_get_json(req->d, req->params[0], req->params[1], &volume, &error);
    if (r >= 0)
        vo_object_add_project(req->d, volume, "volume");
    reply_result(rep, r, 200, volume, error);
}

/* {"project": P or null}: the volume moves to P (or to no project), counted
 * there from now; refused while a VM has it (detach it first). */
static int volume_move(VoDaemon *d, const char *pool, const char *name, json_t *project,
                       char **ret_error)
{
    if (!json_is_null(project) && (!json_is_string(project) ||
                                   vo_project_name_check(json_string_value(project),
                                                         ret_error) < 0))
        return *ret_error ? -EINVAL : vo_error_set(ret_error, -EINVAL, "project: give a "
                                                   "project's name, or null for none");
    _cleanup_free_ char *key = vo_asprintf("%s/%s", pool, name);
    json_t *volume = NULL;
    int r = vo_volume_get_json(d, pool, name, &volume, ret_error);
    int64_t size = r >= 0 ? json_integer_value(json_object_get(volume, "virtual_size_bytes")) : 0;
    json_decref(volume);
    if (r < 0)
        return r;
    /* Claimed while its VM is looked for and it moves: an attach on this
     * host (which checks its project, then records its VM) runs wholly
     * before or after; one on another host never commits with the move
     * (object-projects.h). */
    if ((r = vo_volume_claim(d, pool, name, ret_error)) < 0)
        return r;
    r = vo_volume_project_move(d, key, json_string_value(project), size > 0 ? size : 1,
                               ret_error);
    vo_volume_unclaim(d, pool, name);
    return r;
}

void vo_api_volume_edit(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    int shareable = -1;
    json_t *project = NULL, *restore = NULL;
    if (!vo_request_unpack(req, rep, "{s?b, s?o, s?o}", "shareable", &shareable, "project",
                           &project, "restore_incomplete", &restore))
        return;
    if (restore && !json_is_null(restore)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "restore_incomplete: only null (accept "
                       "the volume as it is: its restore mark goes) can be given");
        return;
    }
    if (shareable < 0 && !project && !restore) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "give shareable (true/false), project "
                       "(a project's name, or null) or restore_incomplete (null)");
        return;
    }
    char *error = NULL;
    /* If-Match holds for a move and a restore mark's clear too; the move
     * goes first, as it is the one that can be refused for what the volume
     * is not (its quota, its project): a shareable set after it is refused
     * only as the move would have been (attached), so a refusal leaves
     * nothing half-done. */
    _cleanup_free_ char *key = vo_volume_doc_key(req->d, req->params[0], req->params[1]);
    if ((project || restore) && !vo_api_if_match_key(req, rep, key, "the volume"))
        return;
    int r = 0;
    if (project)
        r = volume_move(req->d, req->params[0], req->params[1], project, &error);
    if (r >= 0 && shareable >= 0)
        r = vo_volume_set_shareable(req->d, req->params[0], req->params[1], shareable, want,
                                    &error);
    if (r >= 0 && restore)
        r = vo_volume_restore_clear(req->d, req->params[0], req->params[1], &error);
    json_t *volume = NULL;
    if (r >= 0)
        r = vo_volume_get_json(req->d, req->params[0], req->params[1], &volume, &error);
    if (r >= 0)
        vo_object_add_project(req->d, volume, "volume");
    reply_result(rep, r, 200, volume, error);
}

void vo_api_volume_delete(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_volume_doc_key(req->d, req->params[0], req->params[1]);
    int64_t want = 0;
    /* An early answer; the task compares again where it deletes. */
    if (!vo_request_if_match(req, rep, &want) ||
        !vo_api_if_match_key(req, rep, key, "the volume"))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_volume_delete(req->d, req->params[0], req->params[1], want, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_volume_resize(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    json_int_t size = 0;
    int allow_shrink = 0;
    if (!vo_request_unpack(req, rep, "{s:I, s?b}", "size_bytes", &size, "allow_shrink",
                           &allow_shrink))
        return;
    if (size <= 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "size_bytes: must be positive");
        return;
    }
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_volume_resize(req->d, req->params[0], req->params[1], (uint64_t)size, allow_shrink,
                             want, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_volume_flatten(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_volume_flatten(req->d, req->params[0], req->params[1], want, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_volume_clone(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_volume_doc_key(req->d, req->params[0], req->params[1]);
    if (!vo_api_if_match_key(req, rep, key, "the volume"))
        return;
    const char *target = NULL, *project = NULL;
    int linked = 0;
    if (!vo_request_unpack(req, rep, "{s:s, s?b, s?s}", "target", &target, "linked", &linked,
                           "project", &project))
        return;
    json_t *task = NULL, *volume = NULL;
    char *error = NULL;
    int r = project ? vo_project_name_check(project, &error) : 0;
    if (r >= 0)
        r = vo_volume_clone(req->d, req->params[0], req->params[1], target, linked, project,
                            &task, &volume, &error);
    reply_task_and_volume(req->d, rep, r, task, volume, error);
}

int vo_api_volume_upload_prepare(VoRequest *req, char **ret_path_template, char **ret_error)
{
    return vo_volume_upload_path(req->d, req->params[0], req->params[1], ret_path_template,
                                 ret_error);
}

void vo_api_volume_upload(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_volume_doc_key(req->d, req->params[0], req->params[1]);
    if (!vo_api_if_match_key(req, rep, key, "the volume"))
        return;
    if (req->upload_bytes == 0) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "the upload is empty: send the image file "
                       "as the request body");
        return;
    }
    /* The uploaded file becomes the import source; the import task removes it. */
    _cleanup_free_ char *owned = vo_asprintf("%s.src", req->upload_path);
    if (rename(req->upload_path, owned) < 0) {
        vo_reply_errno(rep, -errno, "cannot keep the upload");
        return;
    }
    /* ?content=iso: the upload must be an ISO image (one is detected anyway). */
    const char *content = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                                      "content");
    if (content && strcmp(content, "iso")) {
        (void)unlink(owned);
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "content: '%s' is not iso (leave it out "
                       "for a disk image)", content);
        return;
    }
    /* ?project=P: made in project P. */
    const char *project = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                                      "project");
    _cleanup_free_ char *bad = NULL;
    if (project && vo_project_name_check(project, &bad) < 0) {
        (void)unlink(owned);
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "%s", bad);
        return;
    }
    VoVolumeCreateArgs args = { .pool = req->params[0], .name = req->params[1],
                                .format = "qcow2", .import_path = owned, .import_owned = true,
                                .content = content, .project = project };
    json_t *task = NULL, *volume = NULL;
    char *error = NULL;
    int r = vo_volume_create(req->d, &args, &task, &volume, &error);
    if (r < 0)
        (void)unlink(owned);
    reply_task_and_volume(req->d, rep, r, task, volume, error);
}

void vo_api_volume_download(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *path = NULL;
    char *error = NULL;
    int r = vo_volume_file(req->d, req->params[0], req->params[1], &path, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        free(error);
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        vo_reply_errno(rep, -errno, "cannot read the volume");
        if (fd >= 0)
            close(fd);
        return;
    }
    rep->status = 200;
    rep->file_fd = fd;
    rep->file_size = (uint64_t)st.st_size;
}
