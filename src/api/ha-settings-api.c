/* ha-settings-api.c: the HA setting's route (docs/ha.md, "The restart
 * limit"): GET/PATCH /v1/cluster/ha. Any host answers: the document is the
 * cluster's (daemon/ha-settings.h). */
#include "api/handlers.h"
#include "daemon/ha-settings.h"
#include "util/util.h"

void vo_api_cluster_ha_show(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_ha_settings_show(req->d, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_cluster_ha_set(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_ha_settings_set(req->d, req->body, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}
