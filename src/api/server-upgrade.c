/* server-upgrade.c: the upgraded connections of vireod's HTTP server (part
 * of server.c; VoReply.upgrade_run, a forwarded console): each served on a
 * thread of its own, reaped when done and joined before the server stops. */
#include "api/http.h"
#include "api/server-internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "util/util.h"

/* ---- Upgraded connections ---- */

static void *upgrade_main(void *userdata)
{
    UpgradeThread *u = userdata;
    VoApiServer *s = u->server;
    u->run(u->cls, u->sock, u->first, u->first_len);
    pthread_mutex_lock(&s->lock);
    u->sock = -1; /* closed next: the server's stop must not shut it down */
    pthread_mutex_unlock(&s->lock);
    MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
    if (u->free)
        u->free(u->cls);
    pthread_mutex_lock(&s->lock);
    u->done = true;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Joins and frees the upgrade threads that have finished (caller holds s->lock). */
static void reap_upgrades_locked(VoApiServer *s)
{
    for (UpgradeThread **up = &s->upgrades; *up;) {
        UpgradeThread *u = *up;
        if (!u->done) {
            up = &u->next;
            continue;
        }
        *up = u->next;
        pthread_join(u->thread, NULL);
        free(u->first);
        free(u);
    }
}

/* The 101 went out: the request's upgrade_cls goes to its taker. */
void vo_api_server_on_upgraded(void *cls, struct MHD_Connection *conn, void *req_cls,
                 const char *extra_in, size_t extra_in_size, MHD_socket sock,
                 struct MHD_UpgradeResponseHandle *urh)
{
    PendingRequest *p = cls;
    void *upgrade_cls = atomic_exchange(&p->upgrade_cls, NULL);
    if (!upgrade_cls) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    if (!p->upgrade_run) {
        p->upgrade_fn(upgrade_cls, conn, req_cls, extra_in, extra_in_size, sock, urh);
        return;
    }
    VoApiServer *s = p->server;
    UpgradeThread *u = vo_malloc0(sizeof(*u));
    u->server = s;
    u->sock = sock;
    u->urh = urh;
    u->cls = upgrade_cls;
    u->run = p->upgrade_run;
    u->stop = p->upgrade_stop;
    u->free = p->upgrade_free;
    if (extra_in_size > 0) {
        u->first = vo_malloc0(extra_in_size);
        memcpy(u->first, extra_in, extra_in_size);
        u->first_len = extra_in_size;
    }
    pthread_mutex_lock(&s->lock);
    reap_upgrades_locked(s);
    bool started = !s->stopping && pthread_create(&u->thread, NULL, upgrade_main, u) == 0;
    if (started) {
        u->next = s->upgrades;
        s->upgrades = u;
    }
    pthread_mutex_unlock(&s->lock);
    if (!started) {
        if (!s->stopping)
            log_warn("cannot start a thread for an upgraded connection");
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        if (u->free)
            u->free(u->cls);
        free(u->first);
        free(u);
    }
}

/* Before MHD frees the upgraded connections: end their threads (their
 * sockets shut down, what else they wait on stopped) and join them. */
void vo_api_server_stop_upgrades(VoApiServer *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    for (UpgradeThread *u = s->upgrades; u; u = u->next)
        if (u->sock >= 0) {
            shutdown(u->sock, SHUT_RDWR);
            if (u->stop)
                u->stop(u->cls);
        }
    UpgradeThread *list = s->upgrades;
    s->upgrades = NULL;
    pthread_mutex_unlock(&s->lock);
    while (list) {
        UpgradeThread *u = list;
        list = u->next;
        pthread_join(u->thread, NULL);
        free(u->first);
        free(u);
    }
}
