/* san-resume.c: the VMs of this host paused on an I/O error of an iSCSI
 * LUN are watched on a thread of their own and resumed once their target
 * is back (see san-resume.h; docs/storage-san.md "Losing the target"). */
#include "daemon/san-resume.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "daemon/storage-internal.h"
#include "daemon/storage-iscsi.h"
#include "daemon/vm-internal.h"
#include "daemon/vms.h"
#include "storage/iscsi-url.h"
#include "storage/volume-path.h"
#include "util/time-format.h"
#include "util/util.h"

static struct {
    VoDaemon *d;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the wait between rounds, cut short by a stop */
    bool stop, started;
    /* The VMs watched (the thread's own): id -> {"paused_ms": monotonic
     * ms it was first seen paused, "lost": a probe found its target lost} */
    json_t *watched;
} sr = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* How san_state begins while the VM waits for its target. */
#define PAUSED_PREFIX "paused: I/O error on "

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

/* Whether every LUN of the VM is listed by its target now (one login per
 * target, probes: the round's answers by pool string, {"luns": [...]} or
 * {"why": "..."}); when not, *ret_pool and *ret_why say which and why. */
static bool luns_answer(const LunDisk *l, size_t n, json_t *probes, char **ret_pool,
                        char **ret_why)
{
    for (size_t i = 0; i < n; i++) {
        json_t *probe = json_object_get(probes, l[i].url);
        if (!probe) {
            VoIscsiUrl u;
            VoIscsiLun *luns = NULL;
            size_t n_luns = 0;
            _cleanup_free_ char *why = NULL;
            int r = vo_iscsi_url_parse(l[i].url, &u);
            if (r < 0)
                why = vo_strdup("the pool's portal and target cannot be read");
            else {
                r = vo_iscsi_scan(&u, u.initiator, &luns, &n_luns, &why);
                vo_iscsi_url_clear(&u);
            }
            probe = r < 0 ? json_pack("{s:s}", "why", why ? why : strerror(-r))
                          : json_pack("{s:[]}", "luns");
            for (size_t k = 0; r >= 0 && k < n_luns; k++)
                json_array_append_new(json_object_get(probe, "luns"),
                                      json_integer(luns[k].lun));
            free(luns);
            json_object_set_new(probes, l[i].url, probe);
        }
        const char *why = json_string_value(json_object_get(probe, "why"));
        bool listed = false;
        json_t *luns = json_object_get(probe, "luns"), *v;
        size_t k;
        json_array_foreach(luns, k, v)
            listed = listed || json_integer_value(v) == l[i].lun;
        if (why || !listed) {
            *ret_pool = vo_strdup(l[i].pool);
            *ret_why = why ? vo_strdup(why) : vo_asprintf("LUN %d is not on the target", l[i].lun);
            return false;
        }
    }
    return true;
}

/* Caller holds vm->lock: the VM's san_state, saved (an event). */
static void set_san_state(VoVm *vm, char *text)
{
    free(vm->san_state);
    vm->san_state = text;
    vo_vm_save_later(vm);
}

/* One VM's turn in a round. */
static void look_at(VoDaemon *d, VoVm *vm, json_t *probes)
{
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *id = vo_strdup(vm->spec->id), *name = vo_strdup(vm->spec->name);
    bool io_paused = vm->hv && vm->state == VO_VM_PAUSED && vm->state_reason &&
                     !strcmp(vm->state_reason, VO_VM_REASON_IO_ERROR) && !vm->migration_task;
    /* Found lost before a vireod restart: still so. */
    bool lost_before = vm->san_state && !strncmp(vm->san_state, PAUSED_PREFIX,
                                                 strlen(PAUSED_PREFIX));
    /* Out of that pause otherwise (its user's resume, a pause of theirs
     * after it, a stop): the text would stay untrue, and make a later I/O
     * error on a target that answers (a medium error) look lost, so
     * resumed at once. */
    bool out_of_it = (vm->hv && (vm->state == VO_VM_RUNNING ||
                                 (vm->state == VO_VM_PAUSED && !io_paused))) ||
                     (!vm->hv && (INACTIVE_STATES & IN(vm->state)));
    if (lost_before && out_of_it && !vm->migration_task && !vm->migrated_away) {
        log_info("vm %s: no longer paused on its lost iSCSI target", vm->spec->name);
        set_san_state(vm, NULL);
        lost_before = false;
    }
    size_t n = 0;
    LunDisk *l = io_paused ? lun_disks_of(d, vm->spec, &n) : NULL;
    pthread_mutex_unlock(&vm->lock);
    json_t *w = json_object_get(sr.watched, id);
    if (!n) { /* running, stopped, paused otherwise, or no LUN */
        json_object_del(sr.watched, id);
        lun_disks_free(l, n);
        return;
    }
    if (!w) {
        w = json_pack("{s:I, s:b}", "paused_ms", (json_int_t)vo_now_ms(), "lost", lost_before);
        json_object_set_new(sr.watched, id, w);
    }
    _cleanup_free_ char *pool = NULL, *why = NULL;
    bool back = luns_answer(l, n, probes, &pool, &why);
    lun_disks_free(l, n);
    bool lost = json_is_true(json_object_get(w, "lost"));
    if (!back && !lost) {
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

static void round_once(VoDaemon *d)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);
    json_t *probes = json_object();
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&vms[i]->lock);
        json_object_set_new(seen, vms[i]->spec->id, json_true());
        pthread_mutex_unlock(&vms[i]->lock);
        look_at(d, vms[i], probes);
        vo_vm_unref(vms[i]);
    }
    free(vms);
    const char *id;
    json_t *v, *tmp;
    json_object_foreach_safe(sr.watched, tmp, id, v)
        if (!json_object_get(seen, id)) /* deleted, or gone to another host */
            json_object_del(sr.watched, id);
    json_decref(seen);
    json_decref(probes);
}

static void *resume_thread(void *userdata)
{
    VoDaemon *d = userdata;
    pthread_mutex_lock(&sr.lock);
    while (!sr.stop) {
        struct timespec until = vo_deadline_ms(CLOCK_REALTIME, VO_SAN_PROBE_MS);
        while (!sr.stop && pthread_cond_timedwait(&sr.wake, &sr.lock, &until) == 0)
            ;
        if (sr.stop)
            break;
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
    int r = -pthread_create(&sr.thread, NULL, resume_thread, d);
    if (r < 0) {
        json_decref(sr.watched);
        sr.watched = NULL;
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
    pthread_join(sr.thread, NULL); /* waits for a probe under way (a login timeout) */
    json_decref(sr.watched);
    sr.watched = NULL;
    sr.started = false;
}
