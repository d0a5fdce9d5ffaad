/* drs-api.c: the DRS routes (docs/drs.md): GET/PUT /v1/cluster/drs (the
 * settings and the manager's last round), GET /v1/cluster/recommendations
 * and POST /v1/cluster/recommendations/{id}/apply. Any host answers: the
 * documents are the cluster's (daemon/drs-settings.h). */
#include "api/handlers.h"
#include "daemon/drs-settings.h"
#include "util/util.h"

void vo_api_cluster_drs_show(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_drs_show(req->d, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_cluster_drs_set(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_drs_settings_set(req->d, req->body, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_cluster_recommendations(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_drs_recommendations(req->d, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_cluster_recommendation_apply(VoRequest *req, VoReply *rep)
{
    json_t *task = NULL;
    char *error = NULL;
    int r = vo_drs_apply(req->d, req->params[0], &task, &error);
    vo_reply_task(rep, r, task, error);
}
