/* san-resume.c: the VMs of this host on iSCSI LUNs are watched on a thread
 * of their own: a running one whose target is lost is said to have its I/O
 * held, one paused on an I/O error is resumed once its target is back (see
 * san-resume.h; docs/storage-san.md "Losing the target"). */
#include "daemon/san-resume.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "daemon/check-workers.h"
#include "daemon/storage-internal.h"
#include "daemon/storage-iscsi.h"
#include "daemon/vm-internal.h"
#include "daemon/vms.h"
#include "storage/iscsi-url.h"
#include "storage/volume-path.h"
#include "util/test-hold.h"
#include "util/time-format.h"
#include "util/util.h"

static struct {
    VoDaemon *d;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the wait between rounds, cut short by a stop or an answer */
    bool stop, started, woken;
    /* The targets' last answers (lock: the probes write them): pool
     * string -> {"luns": [...]} or {"why": "..."}, "at_ms" and "ended_ms",
     * the monotonic ms its probe began and ended. */
    json_t *answers;
    /* The VMs watched (the round's own): id -> {"paused_ms": monotonic
     * ms it was first seen paused, "lost": a probe found its target lost} */
    json_t *watched;
    /* VMs a LUN of which an answer did not list (the round's own):
     * id -> monotonic ms first seen. An answer begun before then may be
     * older than the LUN (a LUN just added and attached): the VM is held
     * only when one begun after says so too. */
    json_t *unlisted;
} sr = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* How san_state begins while the VM waits for its target: paused on the
 * I/O error, or running with its disk I/O held. */
#define PAUSED_PREFIX "paused: I/O error on "
#define HELD_PREFIX "I/O held: target lost since "

/* Probes under way at once (each on a thread of its own, check-workers.h). */
#define PROBES_MAX 8

static bool starts_with(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

/* A LUN disk of a watched VM: its pool and the pool's iscsi:// string
 * (this host's initiator and secret), and the LUN's number. */
typedef struct {
    char *pool, *url;
    int lun;
} LunDisk;

static void lun_disks_free(LunDisk *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i].pool);
        free(l[i].url);
    }
    free(l);
}

/* The LUN disks of spec (the caller holds the VM's lock; storage's comes
 * after it). */
static LunDisk *lun_disks_of(VoDaemon *d, const VoVmSpec *spec, size_t *ret_n)
{
    LunDisk *l = NULL;
    size_t n = 0;
    pthread_mutex_lock(&d->storage_lock);
    for (size_t i = 0; i < spec->n_disks; i++) {
        _cleanup_free_ char *pool = NULL, *name = NULL;
        int lun;
        if (!spec->disks[i].volume ||
            vo_volume_key_split(spec->disks[i].volume, &pool, &name) < 0 ||
            sscanf(name, "lun%d", &lun) != 1)
            continue;
        VoPool *p = vo_storage_pool_find(d, pool);
        if (!p || strcmp(p->type, VO_ISCSI_POOL_TYPE))
            continue;
        l = realloc(l, sizeof(*l) * (n + 1));
        if (!l)
            abort();
        l[n++] = (LunDisk){ .pool = TAKE_PTR(pool), .url = vo_strdup(p->path), .lun = lun };
    }
    pthread_mutex_unlock(&d->storage_lock);
    *ret_n = n;
    return l;
}

/* Which VMs are watched: running ones (a lost target holds their I/O) and
 * those paused on an I/O error; not one migrating or gone (the caller holds
 * its lock). */
typedef enum { WATCH_NONE, WATCH_RUNNING, WATCH_IO_PAUSED } WatchKind;

static WatchKind watch_kind(const VoVm *vm)
{
    if (!vm->hv || vm->migration_task || vm->migrated_away)
        return WATCH_NONE;
    if (vm->state == VO_VM_RUNNING)
        return WATCH_RUNNING;
    if (vm->state == VO_VM_PAUSED && vm->state_reason &&
        !strcmp(vm->state_reason, VO_VM_REASON_IO_ERROR))
        return WATCH_IO_PAUSED;
    return WATCH_NONE;
}

/* One login to the target of pool string url (the pool's own scan): its
 * answer, {"luns": [...]} or {"why": "..."}. */
static json_t *probe_target(const char *url)
{
    VoIscsiUrl u;
    VoIscsiLun *luns = NULL;
    size_t n_luns = 0;
    _cleanup_free_ char *why = NULL;
    int r = vo_iscsi_url_parse(url, &u);
    if (r < 0)
        why = vo_strdup("the pool's portal and target cannot be read");
    else {
        char hold[32]; /* tests hold the probes of one target (its port) */
        snprintf(hold, sizeof(hold), "san_probe_%u", (unsigned)u.port);
        vo_test_hold(hold);
        r = vo_iscsi_scan(&u, u.initiator, &luns, &n_luns, &why);
        vo_iscsi_url_clear(&u);
    }
    json_t *answer = r < 0 ? json_pack("{s:s}", "why", why ? why : strerror(-r))
                           : json_pack("{s:[]}", "luns");
    for (size_t k = 0; r >= 0 && k < n_luns; k++)
        json_array_append_new(json_object_get(answer, "luns"), json_integer(luns[k].lun));
    free(luns);
    return answer;
}

typedef struct {
    char *url;
    int64_t began_ms;
} Probe;

/* A probe's thread: its answer kept, and the round woken to read it. */
static void probe_run(void *arg)
{
    Probe *p = arg;
    json_t *answer = probe_target(p->url);
    json_object_set_new(answer, "at_ms", json_integer(p->began_ms));
    json_object_set_new(answer, "ended_ms", json_integer(vo_now_ms()));
    pthread_mutex_lock(&sr.lock);
    if (sr.answers)
        json_object_set(sr.answers, p->url, answer);
    sr.woken = true;
    pthread_cond_broadcast(&sr.wake);
    pthread_mutex_unlock(&sr.lock);
    json_decref(answer);
    free(p->url);
    free(p);
}

/* Starts the probe of target url when it is due: never answered, or its
 * last answer came VO_SAN_PROBE_MS ago (a target a VM waits for, or found
 * lost) or VO_SAN_RUNNING_PROBE_MS ago (one only running VMs use). One
 * probe of a target at a time: a target that does not answer (a login's
 * timeout) holds only its own next probe, never another's. */
static void probe_if_due(const char *url, bool urgent, json_t *answer)
{
    int64_t now = vo_now_ms();
    bool failed = answer && json_object_get(answer, "why");
    int64_t every = urgent || failed ? VO_SAN_PROBE_MS : VO_SAN_RUNNING_PROBE_MS;
    if (answer && now - json_integer_value(json_object_get(answer, "ended_ms")) < every)
        return;
    Probe *p = vo_malloc0(sizeof(*p));
    *p = (Probe){ .url = vo_strdup(url), .began_ms = now };
    if (!vo_check_workers_start(VO_CHECKS_SAN_PROBE, url, PROBES_MAX, probe_run, p)) {
        /* under way already, or PROBES_MAX are */
        free(p->url);
        free(p);
    }
}

/* Whether every LUN of the VM is listed by its target (answers: the last
 * probes', by pool string): 1, 0 when not (*ret_pool and *ret_why say which
 * and why; *ret_unlisted_at_ms, when the target answered without the LUN,
 * when that probe began, else -1), -1 when the targets that answered list
 * them but another has not answered yet. */
static int luns_answer(const LunDisk *l, size_t n, json_t *answers, char **ret_pool,
                       char **ret_why, int64_t *ret_unlisted_at_ms)
{
    bool unknown = false;
    for (size_t i = 0; i < n; i++) {
        json_t *answer = json_object_get(answers, l[i].url);
        if (!answer) {
            unknown = true;
            continue;
        }
        const char *why = json_string_value(json_object_get(answer, "why"));
        bool listed = false;
        json_t *luns = json_object_get(answer, "luns"), *v;
        size_t k;
        json_array_foreach(luns, k, v)
            listed = listed || json_integer_value(v) == l[i].lun;
        if (why || !listed) {
            *ret_pool = vo_strdup(l[i].pool);
            *ret_why = why ? vo_strdup(why) : vo_asprintf("LUN %d is not on the target", l[i].lun);
            *ret_unlisted_at_ms = why ? -1 : json_integer_value(json_object_get(answer, "at_ms"));
            return 0;
        }
    }
    return unknown ? -1 : 1;
}

/* Caller holds vm->lock: the VM's san_state, saved (an event). */
static void set_san_state(VoVm *vm, char *text)
{
    free(vm->san_state);
    vm->san_state = text;
    vo_vm_save_later(vm);
}

/* A running VM's turn: "I/O held: ..." once its target is found lost, gone
 * once it answers with the VM's LUNs again (each a change of its
 * document: an event). A target that answers without the LUN fails the
 * held requests and the VM pauses: the paused VM's turn then. */
static void look_at_running(VoVm *vm, const char *name, bool back, bool held_before,
                            const char *pool, const char *why)
{
    if (back == !held_before)
        return;
    pthread_mutex_lock(&vm->lock);
    bool running = watch_kind(vm) == WATCH_RUNNING;
    if (!back && running) {
        char since[32];
        vo_time_format(vo_wall_ms(), since);
        log_warn("vm %s: the target of pool %s is lost (%s): its disk I/O is held until it "
                 "is back", name, pool, why);
        set_san_state(vm, vo_asprintf(HELD_PREFIX "%s (%s: %s)", since, pool, why));
    } else if (back && running && starts_with(vm->san_state, HELD_PREFIX)) {
        log_info("vm %s: its iSCSI target is back", name);
        set_san_state(vm, NULL);
    }
    pthread_mutex_unlock(&vm->lock);
}

/* Whether the answer (begun at_ms) that did not list a LUN of VM id may
 * be older than the LUN: it was begun before the round that first saw the
 * LUN missing. */
static bool unlisted_too_old(const char *id, int64_t at_ms)
{
    json_t *seen = json_object_get(sr.unlisted, id);
    if (!seen)
        json_object_set_new(sr.unlisted, id, seen = json_integer(vo_now_ms()));
    return at_ms < json_integer_value(seen);
}

/* One VM's turn in a round. */
static void look_at(VoDaemon *d, VoVm *vm, json_t *answers)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *id = vo_strdup(vm->spec->id), *name = vo_strdup(vm->spec->name);
    WatchKind kind = watch_kind(vm);
    /* Found lost before a vireod restart: still so. */
    bool lost_before = starts_with(vm->san_state, PAUSED_PREFIX);
    bool held_before = starts_with(vm->san_state, HELD_PREFIX);
    /* Out of that pause otherwise (its user's resume, a pause of theirs
     * after it, a stop): the text would stay untrue, and make a later I/O
     * error on a target that answers (a medium error) look lost, so
     * resumed at once. Likewise a held VM stopped or paused by its user. */
    bool out_of_it = (vm->hv && (vm->state == VO_VM_RUNNING ||
                                 (vm->state == VO_VM_PAUSED && kind != WATCH_IO_PAUSED))) ||
                     (!vm->hv && (INACTIVE_STATES & IN(vm->state)));
    bool held_out = held_before && kind == WATCH_NONE &&
                    (!vm->hv || vm->state == VO_VM_PAUSED);
    if (((lost_before && out_of_it) || held_out) && !vm->migration_task &&
        !vm->migrated_away) {
        log_info("vm %s: no longer waiting for its lost iSCSI target", vm->spec->name);
        set_san_state(vm, NULL);
        lost_before = held_before = false;
    }
    size_t n = 0;
    LunDisk *l = kind != WATCH_NONE ? lun_disks_of(d, vm->spec, &n) : NULL;
    pthread_mutex_unlock(&vm->lock);
    json_t *w = json_object_get(sr.watched, id);
    _cleanup_free_ char *pool = NULL, *why = NULL;
    int64_t unlisted_at_ms = -1;
    int back = n ? luns_answer(l, n, answers, &pool, &why, &unlisted_at_ms) : 1;
    lun_disks_free(l, n);
    if (kind != WATCH_IO_PAUSED || !n) /* running, stopped, paused otherwise, or no LUN */
        json_object_del(sr.watched, id);
    if (kind == WATCH_NONE || back != 0 || unlisted_at_ms < 0)
        json_object_del(sr.unlisted, id);
    else if (!held_before && !lost_before && unlisted_too_old(id, unlisted_at_ms))
        return; /* perhaps older than the LUN: a newer answer decides */
    if (kind == WATCH_RUNNING && n) {
        /* A target not answered yet (vireod just started: held before
         * stays held, its time kept) changes nothing. */
        if (back >= 0)
            look_at_running(vm, name, back == 1, held_before, pool, why);
        return;
    }
    if (kind != WATCH_IO_PAUSED || !n || back < 0)
        return; /* a target not answered yet: the next round */
    if (!w) { /* lost already if found so before: paused, or held while it ran */
        w = json_pack("{s:I, s:b}", "paused_ms", (json_int_t)vo_now_ms(), "lost",
                      lost_before || held_before);
        json_object_set_new(sr.watched, id, w);
    }
    bool lost = json_is_true(json_object_get(w, "lost"));
    if (!back && (!lost || held_before)) {
        char since[32];
        vo_time_format(vo_wall_ms(), since);
        log_warn("vm %s: paused on an I/O error of pool %s, whose target is lost (%s): "
                 "resumed when it is back", name, pool, why);
        json_object_set_new(w, "lost", json_true());
        pthread_mutex_lock(&vm->lock);
        set_san_state(vm, vo_asprintf(PAUSED_PREFIX "%s (target lost since %s: %s)", pool,
                                      since, why));
        pthread_mutex_unlock(&vm->lock);
        return;
    }
    if (!back || !lost)
        return; /* still lost; or never seen lost: the user's resume */
    int64_t after_s = (vo_now_ms() - json_integer_value(json_object_get(w, "paused_ms")) + 500) /
                      1000;
    _cleanup_free_ char *err = NULL;
    json_t *task = NULL;
    /* Only if still paused on the I/O error when the resume runs (a user's
     * resume and pause may come during the probe). */
    int r = vo_vm_resume_if(d, vm, VO_VM_REASON_IO_ERROR, &task, &err);
    json_decref(task);
    if (r < 0) { /* a task holds it, say: the next round tries again */
        log_info("vm %s: its target is back, but it cannot be resumed now: %s", name, err);
        return;
    }
    log_info("vm %s: its iSCSI target is back: resumed after %lld s paused", name,
             (long long)after_s);
    json_object_del(sr.watched, id);
    pthread_mutex_lock(&vm->lock);
    set_san_state(vm, vo_asprintf("resumed after %lld s (target back)", (long long)after_s));
    pthread_mutex_unlock(&vm->lock);
}

/* The targets of vm's LUNs into targets (pool string -> urgent: a VM waits
 * for it, paused on its error or found held, or a LUN of its was not
 * listed). */
static void targets_of(VoDaemon *d, VoVm *vm, json_t *targets)
{
    pthread_mutex_lock(&vm->lock);
    WatchKind kind = watch_kind(vm);
    bool urgent = kind == WATCH_IO_PAUSED || starts_with(vm->san_state, HELD_PREFIX) ||
                  json_object_get(sr.unlisted, vm->spec->id);
    size_t n = 0;
    LunDisk *l = kind != WATCH_NONE ? lun_disks_of(d, vm->spec, &n) : NULL;
    pthread_mutex_unlock(&vm->lock);
    for (size_t i = 0; i < n; i++)
        json_object_set_new(targets, l[i].url,
                            json_boolean(urgent || json_is_true(json_object_get(targets,
                                                                                l[i].url))));
    lun_disks_free(l, n);
}

static void round_once(VoDaemon *d)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    json_t *seen = json_object(), *targets = json_object();
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&vms[i]->lock);
        json_object_set_new(seen, vms[i]->spec->id, json_true());
        pthread_mutex_unlock(&vms[i]->lock);
        targets_of(d, vms[i], targets);
    }
    /* The answers this round reads; those of targets no VM uses go. */
    json_t *answers, *v, *tmp;
    const char *key;
    pthread_mutex_lock(&sr.lock);
    json_object_foreach_safe(sr.answers, tmp, key, v)
        if (!json_object_get(targets, key))
            json_object_del(sr.answers, key);
    answers = json_deep_copy(sr.answers);
    pthread_mutex_unlock(&sr.lock);
    json_object_foreach(targets, key, v)
        probe_if_due(key, json_is_true(v), json_object_get(answers, key));
    for (size_t i = 0; i < n; i++) {
        look_at(d, vms[i], answers);
        vo_vm_unref(vms[i]);
    }
    free(vms);
    json_object_foreach_safe(sr.watched, tmp, key, v)
        if (!json_object_get(seen, key)) /* deleted, or gone to another host */
            json_object_del(sr.watched, key);
    json_object_foreach_safe(sr.unlisted, tmp, key, v)
        if (!json_object_get(seen, key))
            json_object_del(sr.unlisted, key);
    json_decref(seen);
    json_decref(targets);
    json_decref(answers);
}

static void *resume_thread(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&sr.lock);
    while (!sr.stop) {
        struct timespec until = vo_deadline_ms(CLOCK_REALTIME, VO_SAN_PROBE_MS);
        while (!sr.stop && !sr.woken &&
               pthread_cond_timedwait(&sr.wake, &sr.lock, &until) == 0)
            ;
        if (sr.stop)
            break;
        sr.woken = false;
        pthread_mutex_unlock(&sr.lock);
        round_once(d);
        pthread_mutex_lock(&sr.lock);
    }
    pthread_mutex_unlock(&sr.lock);
    return NULL;
}

int vo_san_resume_start(VoDaemon *d)
{
    sr.d = d;
    sr.stop = false;
    sr.watched = json_object();
    sr.unlisted = json_object();
    sr.answers = json_object();
    int r = -pthread_create(&sr.thread, NULL, resume_thread, d);
    if (r < 0) {
        json_decref(sr.watched);
        json_decref(sr.unlisted);
        json_decref(sr.answers);
        sr.watched = sr.unlisted = sr.answers = NULL;
        return r;
    }
    sr.started = true;
    return 0;
}

void vo_san_resume_stop(void)
{
    if (!sr.started)
        return;
    pthread_mutex_lock(&sr.lock);
    sr.stop = true;
    pthread_cond_broadcast(&sr.wake);
    pthread_mutex_unlock(&sr.lock);
    pthread_join(sr.thread, NULL);
    vo_check_workers_wait(VO_CHECKS_SAN_PROBE); /* the probes under way (a login timeout) */
    json_decref(sr.watched);
    json_decref(sr.unlisted);
    pthread_mutex_lock(&sr.lock);
    json_decref(sr.answers);
    sr.watched = sr.unlisted = sr.answers = NULL;
    pthread_mutex_unlock(&sr.lock);
    sr.started = false;
}
