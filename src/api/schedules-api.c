/* schedules-api.c: /v1/schedules routes (scheduled snapshots and backups,
 * daemon/schedules.h). Any host answers: the documents are the cluster's. */
#include "api/handlers.h"
#include "daemon/schedules.h"
#include "util/util.h"

static char *schedule_key(const char *name)
{
    return vo_asprintf(VO_SCHEDULES_PREFIX "%s", name);
}

void vo_api_schedules_list(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_schedules_list_json(req->d, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_schedule_create(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    json_t *empty = req->body ? NULL : json_object();
    int r = vo_schedule_create(req->d, req->body ? req->body : empty, &doc, &error);
    json_decref(empty);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 201, doc);
    free(error);
}

void vo_api_schedule_show(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_schedule_show_json(req->d, req->params[0], &doc, &error);
    if (r >= 0) {
        _cleanup_free_ char *key = schedule_key(req->params[0]);
        rep->etag = vo_api_key_rev(req->d, key);
    }
    vo_reply_found(rep, r, doc, error);
}

void vo_api_schedule_set(VoRequest *req, VoReply *rep)
{
    int64_t if_match = 0;
    if (!vo_request_if_match(req, rep, &if_match))
        return;
    json_t *doc = NULL;
    char *error = NULL;
    json_t *empty = req->body ? NULL : json_object();
    int r = vo_schedule_set(req->d, req->params[0], req->body ? req->body : empty, if_match,
                            &doc, &error);
    json_decref(empty);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_schedule_delete(VoRequest *req, VoReply *rep)
{
    char *error = NULL;
    int r = vo_schedule_delete(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_object());
    free(error);
}

void vo_api_schedule_run(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_schedule_run_now(req->d, req->params[0], &doc, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 202, doc);
    free(error);
}
