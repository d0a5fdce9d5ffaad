/* access-guard.c: what the HTTPS listener for users keeps in memory: the
 * failure counters that slow brute force (per user, per client address;
 * exponential lock-outs that the server answers 429 to, never a sleep),
 * the browser sessions, and the principal of the request on each thread. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api/access.h"
#include "util/util.h"

typedef struct {
    char key[80];
    unsigned failures;
    int64_t locked_until_ms;
    int64_t last_ms;
} Backoff;

static pthread_mutex_t backoff_lock = PTHREAD_MUTEX_INITIALIZER;
static Backoff backoffs[VO_BACKOFF_MAX_KEYS];
static size_t n_backoffs;

static Backoff *backoff_find_locked(const char *key)
{
    for (size_t i = 0; i < n_backoffs; i++)
        if (!strcmp(backoffs[i].key, key))
            return &backoffs[i];
    return NULL;
}

int64_t vo_backoff_locked(const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&backoff_lock);
    Backoff *b = backoff_find_locked(key);
    int64_t left = b && b->locked_until_ms > now_ms ? b->locked_until_ms - now_ms : 0;
    pthread_mutex_unlock(&backoff_lock);
    return left;
}

static void backoff_failed_locked(const char *key, int64_t now_ms)
{
    Backoff *b = backoff_find_locked(key);
    if (!b) {
        if (n_backoffs == VO_BACKOFF_MAX_KEYS) {
            /* Full: the unlocked key seen longest ago gives way. */
            size_t victim = SIZE_MAX;
            for (size_t i = 0; i < n_backoffs; i++)
                if (backoffs[i].locked_until_ms <= now_ms &&
                    (victim == SIZE_MAX || backoffs[i].last_ms < backoffs[victim].last_ms))
                    victim = i;
            if (victim == SIZE_MAX) /* every key locked: keep those */
                return;
            backoffs[victim] = backoffs[--n_backoffs];
        }
        b = &backoffs[n_backoffs++];
        memset(b, 0, sizeof(*b));
        snprintf(b->key, sizeof(b->key), "%s", key);
    }
    b->failures++;
    b->last_ms = now_ms;
    if (b->failures >= VO_BACKOFF_FREE) {
        unsigned shift = b->failures - VO_BACKOFF_FREE;
        int64_t wait = shift >= 20 ? VO_BACKOFF_MAX_MS : (int64_t)1000 << shift;
        if (wait > VO_BACKOFF_MAX_MS)
            wait = VO_BACKOFF_MAX_MS;
        b->locked_until_ms = now_ms + wait;
    }
}

void vo_backoff_failed(const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&backoff_lock);
    backoff_failed_locked(key, now_ms);
    pthread_mutex_unlock(&backoff_lock);
}

int64_t vo_backoff_attempt(const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&backoff_lock);
    Backoff *b = backoff_find_locked(key);
    int64_t left = b && b->locked_until_ms > now_ms ? b->locked_until_ms - now_ms : 0;
    if (left == 0)
        backoff_failed_locked(key, now_ms);
    pthread_mutex_unlock(&backoff_lock);
    return left;
}

void vo_backoff_succeeded(const char *key)
{
    pthread_mutex_lock(&backoff_lock);
    Backoff *b = backoff_find_locked(key);
    if (b)
        *b = backoffs[--n_backoffs];
    pthread_mutex_unlock(&backoff_lock);
}

void vo_backoff_reset_all(void)
{
    pthread_mutex_lock(&backoff_lock);
    n_backoffs = 0;
    pthread_mutex_unlock(&backoff_lock);
}

/* ---- Sessions: kept by the SHA-256 of their id ---- */

typedef struct {
    char digest[65];
    VoSession s;
} SessionSlot;

static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static SessionSlot sessions[VO_SESSION_MAX];
static size_t n_sessions;

static void expire_locked(int64_t now_ms)
{
    for (size_t i = 0; i < n_sessions;)
        if (sessions[i].s.expires_ms <= now_ms)
            sessions[i] = sessions[--n_sessions];
        else
            i++;
}

int vo_session_create(const char *user, VoRole role, int64_t now_ms,
                      char ret_id[VO_ACCESS_SECRET_LEN + 1], VoSession *ret)
{
    SessionSlot slot = { 0 };
    vo_access_random_secret(ret_id);
    vo_access_secret_digest(ret_id, slot.digest);
    snprintf(slot.s.user, sizeof(slot.s.user), "%s", user);
    slot.s.role = role;
    vo_access_random_secret(slot.s.csrf);
    slot.s.expires_ms = now_ms + (int64_t)VO_SESSION_TTL_S * 1000;
    slot.s.created_wall_ms = vo_wall_ms();
    pthread_mutex_lock(&session_lock);
    expire_locked(now_ms);
    int r = n_sessions < VO_SESSION_MAX ? 0 : -ENOSPC;
    if (r == 0)
        sessions[n_sessions++] = slot;
    pthread_mutex_unlock(&session_lock);
    *ret = slot.s;
    return r;
}

int vo_session_find(const char *id, int64_t now_ms, VoSession *ret)
{
    char digest[65];
    vo_access_secret_digest(id, digest);
    int r = -ENOENT;
    pthread_mutex_lock(&session_lock);
    for (size_t i = 0; i < n_sessions; i++)
        if (vo_access_equal(sessions[i].digest, digest) && sessions[i].s.expires_ms > now_ms) {
            *ret = sessions[i].s;
            r = 0;
            break;
        }
    pthread_mutex_unlock(&session_lock);
    return r;
}

void vo_session_delete(const char *id)
{
    char digest[65];
    vo_access_secret_digest(id, digest);
    pthread_mutex_lock(&session_lock);
    for (size_t i = 0; i < n_sessions; i++)
        if (!strcmp(sessions[i].digest, digest)) {
            sessions[i] = sessions[--n_sessions];
            break;
        }
    pthread_mutex_unlock(&session_lock);
}

void vo_session_delete_user(const char *user)
{
    pthread_mutex_lock(&session_lock);
    for (size_t i = 0; i < n_sessions;)
        if (!strcmp(sessions[i].s.user, user))
            sessions[i] = sessions[--n_sessions];
        else
            i++;
    pthread_mutex_unlock(&session_lock);
}

/* ---- The request's principal ---- */

static _Thread_local VoPrincipal current;

const VoPrincipal *vo_access_current(void)
{
    return &current;
}

void vo_access_set_current(const VoPrincipal *p)
{
    if (p)
        current = *p;
    else
        memset(&current, 0, sizeof(current));
}

void vo_principal_describe(const VoPrincipal *p, char *out, size_t size)
{
    switch (p->kind) {
    case VO_PRINCIPAL_ROOT: {
        /* The Unix socket's: root, or the uid that opened it. */
        char uid[32] = "root";
        if (p->uid != 0)
            snprintf(uid, sizeof(uid), "uid:%u", (unsigned)p->uid);
        if (p->host[0])
            snprintf(out, size, "%s@%s", uid, p->host);
        else
            snprintf(out, size, "%s", uid);
        break;
    }
    case VO_PRINCIPAL_PEER: snprintf(out, size, "peer"); break;
    case VO_PRINCIPAL_USER: snprintf(out, size, "user:%s", p->name); break;
    case VO_PRINCIPAL_TOKEN:
        if (p->user[0])
            snprintf(out, size, "token:%s (user:%s)", p->name, p->user);
        else
            snprintf(out, size, "token:%s", p->name);
        break;
    default: snprintf(out, size, "anonymous"); break;
    }
}
