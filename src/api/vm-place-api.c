/* vm-place-api.c: the cluster's create path, manager placement and the
 * forwards around it (see vm-place-api.h). */
#include "api/vm-place-api.h"

#include <string.h>
#include <time.h>

#include "api/forward.h"
#include "daemon/hosts.h"
#include "util/util.h"

static bool header(VoRequest *req, const char *name)
{
    return req->conn && MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) != NULL;
}

static void reset_reply(VoReply *rep)
{
    json_decref(rep->json);
    rep->json = NULL;
    rep->status = 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Waits (bounded: the lease's TTL and a margin) until the manager role is
 * held by another host than old_id (NULL: by anyone). */
static void wait_manager_change(VoDaemon *d, const char *old_id)
{
    int64_t until = vo_now_ms() + VO_HOST_LEASE_TTL_MS + 3000;
    while (vo_now_ms() < until) {
        char *id = NULL, *url = NULL, *error = NULL;
        int r = vo_cluster_manager(d, &id, &url, &error);
        bool moved = r >= 0 && (!old_id || strcmp(id, old_id));
        free(id);
        free(url);
        free(error);
        if (moved)
            return;
        sleep_ms(200);
    }
}

/* The body as sent on: the client's, with "host" set when given. */
static char *body_text(VoRequest *req, const char *host_id)
{
    json_t *body = req->body ? json_deep_copy(req->body) : json_object();
    if (host_id)
        json_object_set_new(body, "host", json_string(host_id));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static void forward_to(VoRequest *req, VoReply *rep, const char *url, const char *host_id,
                       const char *extra_header, int *ret_r)
{
    _cleanup_free_ char *body = body_text(req, host_id);
    VoForwardRequest in = { .method = "POST", .path_and_query = req->path,
                            .content_type = "application/json", .extra_header = extra_header,
                            .body = body, .body_len = body ? strlen(body) : 0 };
    *ret_r = vo_forward_reply(&req->d->peer_tls, url, &in, VO_FORWARD_TIMEOUT_MS, rep);
}

/* This host places: answered (true), or the VM is made here (false). */
static bool place(VoRequest *req, VoReply *rep, const VoPlaceAsk *ask, VoPlaceChoice *ret_choice)
{
    VoPlaceChoice c = { 0 };
    char *error = NULL;
    int r = vo_cluster_place(req->d, ask, &c, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        free(error);
        return true;
    }
    if (c.local) {
        *ret_choice = c;
        return false;
    }
    int64_t t0 = vo_now_ms();
    forward_to(req, rep, c.url, c.host_id, NULL, &r);
    log_debug("placement: VM sent to host %s (%s), answered %d in %lld ms", c.host_name, c.url,
              rep->status, (long long)(vo_now_ms() - t0));
    vo_cluster_place_done(req->d, &c, r >= 0 && rep->status == 202);
    vo_place_choice_clear(&c);
    return true;
}

/* Asks the manager; once more after the role moved when it did not answer. */
static bool ask_manager(VoRequest *req, VoReply *rep, const VoPlaceAsk *ask,
                        VoPlaceChoice *ret_choice)
{
    VoDaemon *d = req->d;
    static const char place_header[] = VO_PLACE_HEADER ": 1";
    _cleanup_free_ char *failed_id = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *id = NULL, *url = NULL, *error = NULL;
        int r = vo_cluster_manager(d, &id, &url, &error);
        if (r == -ENOENT && attempt == 0) { /* between two managers: wait for the next */
            free(error);
            error = NULL;
            wait_manager_change(d, NULL);
            r = vo_cluster_manager(d, &id, &url, &error);
        }
        if (r < 0) {
            reset_reply(rep);
            vo_reply_errno(rep, r == -ENOENT ? -EAGAIN : r, error);
            free(error);
            return true;
        }
        if (!strcmp(id, d->host_id)) { /* the role came here */
            free(id);
            free(url);
            reset_reply(rep);
            return place(req, rep, ask, ret_choice);
        }
        reset_reply(rep);
        forward_to(req, rep, url, NULL, place_header, &r);
        if (r >= 0 || attempt == 1) {
            if (r < 0)
                log_warn("placement: the manager (%s) did not answer twice", url);
            free(id);
            free(url);
            return true;
        }
        log_info("placement: the manager (host %s at %s) did not answer: %s; asking again once "
                 "the role moved", id, url, strerror(-r));
        free(url);
        free(failed_id);
        failed_id = id;
        wait_manager_change(d, failed_id);
    }
    return true;
}

bool vo_api_vm_create_elsewhere(VoRequest *req, VoReply *rep, const VoPlaceAsk *ask,
                                VoPlaceChoice *ret_choice)
{
    VoDaemon *d = req->d;
    *ret_choice = (VoPlaceChoice){ 0 };
    bool asked_to_place = d->cluster && header(req, VO_PLACE_HEADER);
    if (!d->cluster || (!asked_to_place && header(req, VO_FORWARDED_HEADER))) {
        /* Served here: standalone, or placed here by the manager. */
        if (ask->host && strcmp(ask->host, d->host_id) && strcmp(ask->host, d->host_name)) {
            if (d->cluster)
                vo_reply_error(rep, VO_ERR_CONFLICT,
                               "host: this request was placed on host '%s', but this is host "
                               "'%s' (%s): the hosts disagree; try again", ask->host,
                               d->host_name, d->host_id);
            else
                vo_reply_error(rep, VO_ERR_NOT_FOUND,
                               "host '%s' is not a host of this cluster (a standalone host: "
                               "the only host is '%s'; see: vireo host list)", ask->host,
                               d->host_name);
            return true;
        }
        return false;
    }
    if (asked_to_place || vo_hosts_is_manager(d))
        return place(req, rep, ask, ret_choice);
    return ask_manager(req, rep, ask, ret_choice);
}

void vo_api_vm_create_done(VoRequest *req, VoPlaceChoice *choice, bool created)
{
    if (created && req->d->cluster) {
        int r = vo_hosts_publish_now(req->d);
        if (r < 0)
            log_warn("placement: this host's record was not rewritten after a create: %s",
                     strerror(-r));
    } else if (created)
        vo_hosts_refresh(req->d);
    vo_cluster_place_done(req->d, choice, created);
    vo_place_choice_clear(choice);
}
