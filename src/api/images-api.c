/* images-api.c: /v1/images routes: list, show, import, delete. */
#include "api/cluster-storage.h"
#include "api/handlers.h"
#include "conf/names.h"
#include "daemon/images.h"
#include "daemon/storage.h"
#include "util/util.h"

void vo_api_images_list(VoRequest *req, VoReply *rep)
{
    json_t *images = vo_images_list_json(req->d);
    /* A cluster: every host's own images, with their hosts. */
    int r = vo_api_cluster_images(req->d, images, NULL);
    if (r < 0) {
        json_decref(images);
        vo_reply_errno(rep, r, NULL);
        return;
    }
    size_t i;
    json_t *img;
    json_array_foreach(images, i, img) {
        const char *name = json_string_value(json_object_get(img, "name"));
        json_object_set_new(img, "used_by", json_integer(vo_image_users(req->d, name)));
    }
    vo_reply_json(rep, 200, json_pack("{s:o}", "images", images));
}

void vo_api_image_show(VoRequest *req, VoReply *rep)
{
    const char *name = req->params[0];
    VoImage *img = NULL;
    int64_t rev = 0;
    json_t *one = json_array();
    if (vo_image_get(req->d, name, &img, &rev) >= 0) {
        json_array_append_new(one, vo_image_to_json(img));
        vo_image_free(img);
    }
    /* In a cluster: with its hosts, or another host's own image. */
    int r = vo_name_valid(name) ? vo_api_cluster_images(req->d, one, name) : 0;
    json_t *view = json_incref(json_array_get(one, 0));
    json_decref(one);
    if (r < 0 || !view) {
        json_decref(view);
        if (r < 0)
            vo_reply_errno(rep, r, NULL);
        else
            vo_reply_error(rep, VO_ERR_NOT_FOUND, "image '%s' does not exist", name);
        return;
    }
    json_object_set_new(view, "used_by", json_integer(vo_image_users(req->d, name)));
    rep->etag = rev;
    vo_reply_json(rep, 200, view);
}

void vo_api_image_import(VoRequest *req, VoReply *rep)
{
    VoImageImportArgs args = { 0 };
    if (!vo_request_unpack(req, rep, "{s:s, s:s, s?s, s?s, s?s, s?s}", "name", &args.name,
                           "import_path", &args.import_path, "kernel_path", &args.kernel_path,
                           "initrd_path", &args.initrd_path, "cmdline", &args.cmdline, "pool",
                           &args.pool))
        return;
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_image_import(req->d, &args, &task, &error);
    vo_reply_task(rep, r, task, error);
}

void vo_api_image_delete(VoRequest *req, VoReply *rep)
{
    int64_t want = 0;
    if (!vo_request_if_match(req, rep, &want))
        return;
    char *error = NULL;
    int r = vo_image_delete(req->d, req->params[0], want, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_object());
    free(error);
}
