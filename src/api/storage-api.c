/* storage-api.c: /v1/pools and /v1/volumes routes (pools, volumes, their
 * data up- and download), thin mappings onto daemon/storage.c. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "api/handlers.h"
#include "conf/storage-spec.h"
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

void vo_api_pools_list(VoRequest *req, VoReply *rep)
{
    vo_reply_json(rep, 200, json_pack("{s:o}", "pools", vo_pools_list_json(req->d)));
}

void vo_api_pool_create(VoRequest *req, VoReply *rep)
{
    VoPoolSpec spec;
    json_t *pool = NULL;
    char *error = NULL;
    int r = vo_pool_spec_from_json(req->body, &spec, &error);
    if (r >= 0)
        r = vo_pool_create(req->d, spec.name, spec.type, spec.path, &pool, &error);
    vo_pool_spec_clear(&spec);
    reply_result(rep, r, 201, pool, error);
}

void vo_api_pool_show(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("pools/%s", req->params[0]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *pool = NULL;
    char *error = NULL;
    int r = vo_pool_get_json(req->d, req->params[0], &pool, &error);
    reply_result(rep, r, 200, pool, error);
}

void vo_api_pool_delete(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    char *error = NULL;
    int r = vo_pool_delete(req->d, req->params[0], want, &error);
    reply_result(rep, r, 200, json_object(), error);
}

void vo_api_volumes_list(VoRequest *req, VoReply *rep)
{
    const char *pool = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "pool");
    if (pool && !vo_pool_exists(req->d, pool)) {
        vo_reply_error(rep, VO_ERR_NOT_FOUND, "pool '%s' does not exist", pool);
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:o}", "volumes", vo_volumes_list_json(req->d, pool)));
}

static void reply_task_and_volume(VoReply *rep, int r, json_t *task, json_t *volume, char *error)
{
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
                                .size_bytes = spec.size_bytes, .import_path = spec.import_path };
    if (r >= 0)
        r = vo_volume_create(req->d, &args, &task, &volume, &error);
    vo_volume_spec_clear(&spec);
    reply_task_and_volume(rep, r, task, volume, error);
}

void vo_api_volume_show(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", req->params[0], req->params[1]);
    rep->etag = vo_api_key_rev(req->d, key);
    json_t *volume = NULL;
    char *error = NULL;
    int r = vo_volume_get_json(req->d, req->params[0], req->params[1], &volume, &error);
    reply_result(rep, r, 200, volume, error);
}

void vo_api_volume_edit(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    int shareable = 0;
    if (!vo_request_unpack(req, rep, "{s:b}", "shareable", &shareable))
        return;
    char *error = NULL;
    int r = vo_volume_set_shareable(req->d, req->params[0], req->params[1], shareable, want,
                                    &error);
    json_t *volume = NULL;
    if (r >= 0)
        r = vo_volume_get_json(req->d, req->params[0], req->params[1], &volume, &error);
    reply_result(rep, r, 200, volume, error);
}

void vo_api_volume_delete(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", req->params[0], req->params[1]);
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

void vo_api_volume_clone(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", req->params[0], req->params[1]);
    if (!vo_api_if_match_key(req, rep, key, "the volume"))
        return;
    const char *target = NULL;
    int linked = 0;
    if (!vo_request_unpack(req, rep, "{s:s, s?b}", "target", &target, "linked", &linked))
        return;
    json_t *task = NULL, *volume = NULL;
    char *error = NULL;
    int r = vo_volume_clone(req->d, req->params[0], req->params[1], target, linked, &task,
                            &volume, &error);
    reply_task_and_volume(rep, r, task, volume, error);
}

int vo_api_volume_upload_prepare(VoRequest *req, char **ret_path_template, char **ret_error)
{
    return vo_volume_upload_path(req->d, req->params[0], req->params[1], ret_path_template,
                                 ret_error);
}

void vo_api_volume_upload(VoRequest *req, VoReply *rep)
{
    _cleanup_free_ char *key = vo_asprintf("volumes/%s/%s", req->params[0], req->params[1]);
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
    VoVolumeCreateArgs args = { .pool = req->params[0], .name = req->params[1],
                                .format = "qcow2", .import_path = owned, .import_owned = true };
    json_t *task = NULL, *volume = NULL;
    char *error = NULL;
    int r = vo_volume_create(req->d, &args, &task, &volume, &error);
    if (r < 0)
        (void)unlink(owned);
    reply_task_and_volume(rep, r, task, volume, error);
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
