/* groups-api.c: /v1/groups routes (placement groups, daemon/groups.h) and
 * /v1/placement (the cluster's placement policy, daemon/cluster-place.h). */
#include "api/handlers.h"
#include "daemon/cluster-place.h"
#include "daemon/groups.h"
#include "util/util.h"

void vo_api_groups_list(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_groups_list_json(req->d, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_group_create(VoRequest *req, VoReply *rep)
{
    const char *name = NULL, *policy = NULL;
    if (!vo_request_unpack(req, rep, "{s:s, s:s}", "name", &name, "policy", &policy))
        return;
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_group_create(req->d, name, policy, &doc, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else {
        json_object_set_new(doc, "members", json_array());
        vo_reply_json(rep, 201, doc);
    }
    free(error);
}

void vo_api_group_show(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_group_show_json(req->d, req->params[0], &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_group_delete(VoRequest *req, VoReply *rep)
{
    char *error = NULL;
    int r = vo_group_delete(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_object());
    free(error);
}

void vo_api_placement_show(VoRequest *req, VoReply *rep)
{
    VoPlacePolicy p;
    int r = vo_placement_policy_get(req->d, &p);
    if (r < 0) {
        vo_reply_errno(rep, r, NULL);
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:s}", "policy", vo_place_policy_to_string(p)));
}

void vo_api_placement_set(VoRequest *req, VoReply *rep)
{
    const char *policy = NULL;
    if (!vo_request_unpack(req, rep, "{s:s}", "policy", &policy))
        return;
    char *error = NULL;
    int r = vo_placement_policy_set(req->d, policy, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 200, json_pack("{s:s}", "policy", policy));
    free(error);
}
