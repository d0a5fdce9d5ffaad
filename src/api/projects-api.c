/* projects-api.c: /v1/projects routes (projects and their quotas,
 * daemon/projects.h; docs/projects.md). */
#include "api/access-check.h"
#include "api/handlers.h"
#include "daemon/projects.h"
#include "util/util.h"

void vo_api_projects_list(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_projects_list_json(req->d, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_project_create(VoRequest *req, VoReply *rep)
{
    const char *name = NULL;
    json_t *quotas = NULL;
    if (!vo_request_unpack(req, rep, "{s:s, s?o}", "name", &name, "quotas", &quotas))
        return;
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_project_create(req->d, name, quotas, &doc, &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else
        vo_reply_json(rep, 201, doc);
    free(error);
}

void vo_api_project_show(VoRequest *req, VoReply *rep)
{
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_project_show_json(req->d, req->params[0], &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_project_set(VoRequest *req, VoReply *rep)
{
    json_t *quotas = NULL;
    if (!vo_request_unpack(req, rep, "{s:o}", "quotas", &quotas))
        return;
    json_t *doc = NULL;
    char *error = NULL;
    int r = vo_project_set(req->d, req->params[0], quotas, &doc, &error);
    vo_reply_found(rep, r, doc, error);
}

void vo_api_project_delete(VoRequest *req, VoReply *rep)
{
    char *error = NULL;
    int r = vo_project_delete(req->d, req->params[0], &error);
    if (r < 0)
        vo_reply_errno(rep, r, error);
    else {
        vo_access_forget_project(req->d, req->params[0]);
        vo_reply_json(rep, 200, json_object());
    }
    free(error);
}

bool vo_api_project_named(VoRequest *req, VoReply *rep, const char *project)
{
    char *error = NULL;
    int r = vo_project_exists(req->d, project, &error);
    if (r < 0) /* a field of the request that names nothing: 400 */
        vo_reply_errno(rep, r == -ENOENT ? -EINVAL : r, error);
    free(error);
    return r >= 0;
}
