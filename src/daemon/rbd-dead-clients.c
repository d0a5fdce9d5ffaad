/* rbd-dead-clients.c: the Ceph client addresses of this vireod's QEMUs,
 * recorded at start, remembered as dead once reaped, and blocklisted when
 * their stale watch holds an image's remove (see rbd-dead-clients.h). */
#include "daemon/rbd-dead-clients.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "daemon/vm-rbd-images.h"
#include "storage/rbd-watchers.h"
#include "util/util.h"

/* A blocklist entry outlives the dead client's watch (Ceph drops it
 * itself after 30 s); the address is never used again by anyone. */
#define BLOCKLIST_S 3600

static struct {
    pthread_mutex_t lock;
    char **addrs;
    int64_t *until; /* vo_now_ms() after which an entry is dropped */
    size_t n;
} dead = { .lock = PTHREAD_MUTEX_INITIALIZER };

char **vo_rbd_clients_watching(VoDaemon *d, const VoVmSpec *spec)
{
    VoVmRbdImage *imgs = NULL;
    size_t n_imgs = 0;
    _cleanup_free_ char *error = NULL;
    if (vo_vm_rbd_images(d, spec, "its QEMU's Ceph clients", &imgs, &n_imgs, &error) <= 0)
        return NULL;
    char **all = vo_malloc0(sizeof(char *)); /* none yet, but known */
    for (size_t i = 0; all && i < n_imgs; i++) {
        if (i < spec->n_disks && spec->disks[i].shareable)
            continue;
        VoRbdConf c = vo_rbd_pool_conf(&imgs[i].pool);
        _cleanup_strv_ char **w = NULL;
        free(TAKE_PTR(error));
        if (vo_rbd_watchers(&c, imgs[i].image, &w, &error) < 0) {
            log_debug("rbd: watchers of %s/%s: %s", imgs[i].pool.pool, imgs[i].image, error);
            vo_strv_free(TAKE_PTR(all)); /* unknown: nothing is taken for its QEMU's */
        }
        for (char **a = w; all && a && *a; a++)
            vo_strv_pushf(&all, "%s", *a);
    }
    vo_vm_rbd_images_free(imgs, n_imgs);
    return all;
}

static bool strv_has(char *const *v, const char *s)
{
    for (; v && *v; v++)
        if (!strcmp(*v, s))
            return true;
    return false;
}

void vo_rbd_clients_record(VoDaemon *d, const VoVmSpec *spec, char *const *before,
                           const char *run_dir)
{
    if (!before) /* what watched before is unknown: a watcher now may be another's */
        return;
    _cleanup_strv_ char **now = vo_rbd_clients_watching(d, spec);
    _cleanup_free_ char *path = vo_asprintf("%s/rbd-clients", run_dir);
    _cleanup_free_ char *text = NULL; /* what an earlier start or hot-plug recorded */
    if (vo_read_file(path, 65536, &text, NULL) < 0)
        text = vo_strdup("");
    size_t had = strlen(text);
    for (char **a = now; a && *a; a++) {
        /* A whole line: "IP:0/12" is not recorded because "IP:0/123" is. */
        _cleanup_free_ char *line = vo_asprintf("\n%s\n", *a);
        _cleanup_free_ char *all = vo_asprintf("\n%s", text);
        if (!strv_has(before, *a) && !strstr(all, line)) {
            char *more = vo_asprintf("%s%s\n", text, *a);
            free(text);
            text = more;
        }
    }
    if (strlen(text) == had)
        return;
    int r = vo_write_file_atomic(path, text, strlen(text));
    if (r < 0)
        log_warn("vm %s: cannot record its QEMU's Ceph clients in %s: %s", spec->name, path,
                 strerror(-r));
}

void vo_rbd_clients_exited(const char *run_dir)
{
    _cleanup_free_ char *path = vo_asprintf("%s/rbd-clients", run_dir);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 65536, &text, NULL) < 0)
        return;
    (void)unlink(path);
    int64_t now = vo_now_ms();
    pthread_mutex_lock(&dead.lock);
    /* Expired entries go first: the list stays as long as the last minutes' kills. */
    size_t k = 0;
    for (size_t i = 0; i < dead.n; i++) {
        if (dead.until[i] > now) {
            dead.addrs[k] = dead.addrs[i];
            dead.until[k++] = dead.until[i];
        } else
            free(dead.addrs[i]);
    }
    dead.n = k;
    char *save = NULL; /* strtok_r: other threads parse text too */
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        dead.addrs = realloc(dead.addrs, sizeof(char *) * (dead.n + 1));
        dead.until = realloc(dead.until, sizeof(int64_t) * (dead.n + 1));
        dead.addrs[dead.n] = vo_strdup(line);
        dead.until[dead.n++] = now + VO_RBD_DEAD_CLIENT_MS;
    }
    pthread_mutex_unlock(&dead.lock);
}

static bool is_dead(const char *addr)
{
    int64_t now = vo_now_ms();
    bool found = false;
    pthread_mutex_lock(&dead.lock);
    for (size_t i = 0; i < dead.n && !found; i++)
        found = dead.until[i] > now && !strcmp(dead.addrs[i], addr);
    pthread_mutex_unlock(&dead.lock);
    return found;
}

bool vo_rbd_break_dead_watchers(const VoRbdConf *c, const char *image)
{
    _cleanup_strv_ char **watchers = NULL;
    _cleanup_free_ char *why = NULL;
    if (vo_rbd_watchers(c, image, &watchers, &why) <= 0)
        return false;
    for (char **a = watchers; *a; a++)
        if (!is_dead(*a))
            return false; /* a live client (or one not ours): never broken */
    for (char **a = watchers; *a; a++) {
        free(TAKE_PTR(why));
        if (vo_rbd_blocklist(c, *a, BLOCKLIST_S, &why) < 0) {
            log_warn("rbd: %s/%s: %s", c->pool, image, why);
            return false;
        }
        log_info("rbd: %s/%s: blocklisted %s, the Ceph client of a QEMU that is gone",
                 c->pool, image, *a);
    }
    /* The OSDs drop a blocklisted client's watch once they have the new map. */
    for (int i = 0; i < 40; i++) {
        vo_strv_free(TAKE_PTR(watchers));
        free(TAKE_PTR(why));
        if (vo_rbd_watchers(c, image, &watchers, &why) <= 0)
            return true;
        usleep(125 * 1000);
    }
    return true;
}

int vo_rbd_remove_past_dead(const VoRbdConf *c, const char *image, char **ret_error)
{
    /* Before the remove: librbd's remove would first ask the dead lock
     * owner for the exclusive lock, and wait VO_RBD_TIMEOUT_S for it. */
    (void)vo_rbd_break_dead_watchers(c, image);
    return vo_rbd_image_remove(c, image, ret_error);
}
