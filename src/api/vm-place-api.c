/* vm-place-api.c: the cluster's create path, manager placement and the
 * forwards around it (see vm-place-api.h). */
#include "api/vm-place-api.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/access.h"
#include "api/forward.h"
#include "cluster/peer-client.h"
#include "cluster/place-snapshot.h"
#include "daemon/cluster-view.h"
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
 * held by another host than old_id (NULL: by anyone); whether it moved. */
static bool wait_manager_change(VoDaemon *d, const char *old_id)
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
            return true;
        sleep_ms(200);
    }
    return false;
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

/* What host target_id understands of X-Vireo-Principal (its live record;
 * none when it cannot be read: the older form). Read only when the
 * request's principal is encoded by it: a create reads no store here for
 * a user's or a token's request. */
static unsigned principal_members_of(VoDaemon *d, const char *target_id)
{
    if (!vo_principal_members_matter(vo_access_current()))
        return 0;
    VoClusterHost h = { 0 };
    unsigned members = vo_cluster_host_get(d, target_id, &h) >= 0 ? h.principal_members : 0;
    vo_cluster_host_clear(&h);
    return members;
}

/* To the host at url, which understands principal_members; host_id: the
 * body's "host" (the chosen host, when this host placed), or NULL. */
static void forward_to(VoRequest *req, VoReply *rep, const char *url, unsigned principal_members,
                       const char *host_id, const char *extra_header, int timeout_ms,
                       int *ret_r)
{
    _cleanup_free_ char *body = body_text(req, host_id);
    VoForwardRequest in = { .method = "POST", .path_and_query = req->path,
                            .content_type = "application/json", .extra_header = extra_header,
                            .body = body, .body_len = body ? strlen(body) : 0,
                            .principal_members = principal_members };
    *ret_r = vo_forward_reply(&req->d->peer_tls, url, &in, timeout_ms, rep);
}

/* The asker waits longer for the manager than the manager for the chosen
 * host, so the manager's answer (even its own 502 of a target that did not
 * answer) arrives rather than a timeout of unknown outcome. */
#define ASK_MANAGER_TIMEOUT_MS (VO_FORWARD_TIMEOUT_MS + 20000)

/* Words of the 503 a host that is no longer the manager answers a request
 * to place: nothing was done, the asker reads the manager again. */
#define NOT_MANAGER_WORDS "is not the cluster's manager"

/* Whether the peer never got the request: it refused or did not take the
 * connection, or refused the TLS handshake (cluster/peer-client.h). */
static bool never_sent(int r)
{
    return r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -EACCES;
}

static bool not_manager_reply(const VoReply *rep)
{
    return rep->status == 503 && rep->text && strstr(rep->text, NOT_MANAGER_WORDS);
}

static void reply_unknown(VoRequest *req, VoReply *rep, const char *url, int r)
{
    const char *name = req->body ? json_string_value(json_object_get(req->body, "name")) : NULL;
    reset_reply(rep);
    vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                   "the manager (%s) did not answer (%s): the outcome is unknown, the VM may "
                   "have been made: check `vireo vm show %s` before trying again",
                   url, strerror(-r), name ? name : "NAME");
}

/* This host places: answered (true), or the VM is made here (false). */
static bool place(VoRequest *req, VoReply *rep, const VoPlaceAsk *ask, VoPlaceChoice *ret_choice)
{
    VoPlaceChoice c = { 0 };
    char *error = NULL;
    /* Where a volume of a host's own pool it names is (not another host
     * with a pool of that name): there. */
    VoPlaceAsk pinned = *ask;
    _cleanup_free_ char *holder = ask->host ? NULL
                                  : vo_cluster_own_volumes_host(req->d, ask->volumes,
                                                                ask->n_volumes);
    if (holder)
        pinned.host = holder;
    int r = vo_cluster_place(req->d, &pinned, &c, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        free(error);
        return true;
    }
    if (c.local) {
        *ret_choice = c;
        return false;
    }
    int64_t t0 = vo_now_us();
    /* What it understands, from the record placement read (no read here). */
    forward_to(req, rep, c.url, c.principal_members, c.host_id, NULL, VO_FORWARD_TIMEOUT_MS,
               &r);
    int64_t t1 = vo_now_us();
    log_debug("placement: VM sent to host %s (%s), answered %d in %lld ms", c.host_name, c.url,
              rep->status, (long long)((t1 - t0) / 1000));
    /* The chosen host's record, rewritten before it answered: its
     * revision came with the answer (no read here). */
    const char *rev_text = NULL;
    for (char **hd = rep->extra_headers; hd && hd[0] && hd[1]; hd += 2)
        if (!strcasecmp(hd[0], VO_RECORD_REV_HEADER))
            rev_text = hd[1];
    vo_cluster_place_done(req->d, &c, r >= 0 && rep->status == 202,
                          vo_place_record_rev_parse(rev_text));
    log_debug("place-trace manager read=%.3f place=%.3f forward=%.3f done=%.3f",
              c.read_us / 1e3, c.place_us / 1e3, (t1 - t0) / 1e3, (vo_now_us() - t1) / 1e3);
    vo_place_choice_clear(&c);
    return true;
}

/* The manager this host last asked to place (its id and URL), so a create
 * reaching a host that is not the manager reads no store to find it. Let
 * go when it did not take a request (or did not answer): the next one
 * reads cluster/manager again. */
static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;
static char *known_id, *known_url;

static bool known_manager(VoDaemon *d, char **ret_id, char **ret_url)
{
    pthread_mutex_lock(&known_lock);
    bool ok = known_id && strcmp(known_id, d->host_id) != 0;
    if (ok) {
        *ret_id = vo_strdup(known_id);
        *ret_url = vo_strdup(known_url);
    }
    pthread_mutex_unlock(&known_lock);
    return ok;
}

static void set_known_manager(const char *id, const char *url)
{
    pthread_mutex_lock(&known_lock);
    free(known_id);
    free(known_url);
    known_id = id && url ? vo_strdup(id) : NULL;
    known_url = id && url ? vo_strdup(url) : NULL;
    pthread_mutex_unlock(&known_lock);
}

/* Asks the manager; once more when the request never reached it: it
 * refused the connection (asked again once the role moved) or answered
 * that it is not the manager (asked again after a short wait). A request it may have got (a timeout, a
 * connection cut) is never repeated: its outcome is unknown (503). */
static bool ask_manager(VoRequest *req, VoReply *rep, const VoPlaceAsk *ask,
                        VoPlaceChoice *ret_choice)
{
    VoDaemon *d = req->d;
    static const char place_header[] = VO_PLACE_HEADER ": 1";
    for (int attempt = 0; attempt < 2; attempt++) {
        char *id = NULL, *url = NULL, *error = NULL;
        int64_t t0 = vo_now_us();
        int r = 0;
        if (attempt > 0 || !known_manager(d, &id, &url))
            r = vo_cluster_manager(d, &id, &url, &error);
        int64_t t1 = vo_now_us();
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
        forward_to(req, rep, url, principal_members_of(d, id), NULL, place_header,
                   ASK_MANAGER_TIMEOUT_MS, &r);
        log_debug("place-trace asker manager-lookup=%.3f forward=%.3f", (t1 - t0) / 1e3,
                  (vo_now_us() - t1) / 1e3);
        bool retry = (r < 0 && never_sent(r)) || (r >= 0 && not_manager_reply(rep));
        set_known_manager(r < 0 || retry ? NULL : id, url);
        if (r < 0 && !never_sent(r))
            reply_unknown(req, rep, url, r);
        if (!retry || attempt == 1) {
            if (retry)
                log_warn("placement: the manager (%s) did not take the request twice", url);
            free(id);
            free(url);
            return true;
        }
        log_info("placement: the manager (host %s at %s) did not take the request (%s); "
                 "asking again once the role moved", id, url,
                 r < 0 ? strerror(-r) : "no longer the manager");
        /* A host that answered it is not the manager: its role went, or
         * it does not know yet that it holds it (read the manager again
         * shortly). One that did not take the connection: once it moved. */
        bool moved = true;
        if (r >= 0)
            sleep_ms(500);
        else
            moved = wait_manager_change(d, id);
        free(id);
        free(url);
        if (!moved)
            return true; /* its answer stands: 502 (not reached) or 503 */
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
                vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT,
                               "host: '%s' is not a host of this cluster (a standalone host: "
                               "the only host is '%s'; see: vireo host list)", ask->host,
                               d->host_name);
            return true;
        }
        return false;
    }
    if (asked_to_place && !vo_hosts_is_manager(d)) {
        /* Asked by a host that took this one for the manager: nothing is
         * done, it asks the manager it reads again. */
        vo_reply_error(rep, VO_ERR_UNAVAILABLE,
                       "host '%s' " NOT_MANAGER_WORDS " (any more): ask again", d->host_name);
        return true;
    }
    if (asked_to_place || vo_hosts_is_manager(d))
        return place(req, rep, ask, ret_choice);
    return ask_manager(req, rep, ask, ret_choice);
}

void vo_api_vm_create_done(VoRequest *req, VoReply *rep, VoPlaceChoice *choice, bool created)
{
    int64_t rev = 0;
    if (created && req->d->cluster) {
        /* From this thread (no hand-over to the hosts thread, no read
         * before the write): the manager that placed the VM gets the
         * record's revision with the answer. */
        int64_t t0 = vo_now_us();
        int r = vo_hosts_publish_created(req->d, &rev);
        log_debug("place-trace host publish=%.3f", (vo_now_us() - t0) / 1e3);
        if (r < 0) {
            rev = 0;
            log_warn("placement: this host's record was not rewritten after a create: %s",
                     strerror(-r));
            vo_hosts_refresh(req->d);
        } else if (rep->status == 202 && !rep->header_name) {
            rep->header_name = VO_RECORD_REV_HEADER;
            snprintf(rep->header_value, sizeof(rep->header_value), "%lld", (long long)rev);
        }
    } else if (created)
        vo_hosts_refresh(req->d);
    vo_cluster_place_done(req->d, choice, created, rev);
    vo_place_choice_clear(choice);
}
