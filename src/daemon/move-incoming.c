/* move-incoming.c: the target side of a cold move (move.h). The source
 * host asks (POST /v1/moves/incoming); this host's own task then: makes
 * sure the base image of each linked clone is here (image-copy.c), pulls
 * each local volume's file from the source (its peer route, checked
 * against the size and SHA-256 it announced: peer-file.h) into a temp
 * file of the pool, points a linked clone's copy at this host's base
 * (qemu-img rebase -u) and renames it into place; then the ownership
 * transaction moves the VM's and the volumes' documents here
 * (state/vm-move.h) and the VM is registered, stopped. Any failure (or a
 * cancel) before the transaction removes every file it made: the VM
 * stays on the source as it was. */
#include "daemon/move.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/images.h"
#include "daemon/peer-file.h"
#include "daemon/storage.h"
#include "daemon/vm-internal.h"
#include "state/vm-move.h"
#include "storage/qemu-img.h"
#include "util/util.h"

typedef struct {
    char *from, *to;         /* "pool/name" there and here */
    char *name, *format, *image, *sha256;
    uint64_t size;
} Vol;

typedef struct {
    char *vm_id, *vm_name, *pool;
    int64_t vm_rev;
    VoClusterHost src;
    Vol *vols;
    size_t n_vols;
    uint64_t done, total;
    int64_t shown_ms;
    VoTask *t;
    VoDaemon *d;
} MoveIn;

static void move_in_free(void *p)
{
    MoveIn *m = p;
    free(m->vm_id);
    free(m->vm_name);
    free(m->pool);
    vo_cluster_host_clear(&m->src);
    for (size_t i = 0; i < m->n_vols; i++) {
        Vol *v = &m->vols[i];
        free(v->from);
        free(v->to);
        free(v->name);
        free(v->format);
        free(v->image);
        free(v->sha256);
    }
    free(m->vols);
    free(m);
}

static json_t *progress_json(const MoveIn *m)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "phase", "copy", "from", m->src.name,
                     "bytes_copied", (json_int_t)m->done, "bytes_total", (json_int_t)m->total);
}

static void on_progress(uint64_t len, void *userdata)
{
    MoveIn *m = userdata;
    m->done += len;
    if (vo_now_ms() - m->shown_ms < 500 && m->done < m->total)
        return;
    m->shown_ms = vo_now_ms();
    int pct = m->total ? (int)(10 + 80 * m->done / m->total) : 90;
    _cleanup_free_ char *msg = vo_asprintf("copying the VM's volumes from host '%s' (%llu of "
                                           "%llu MiB)", m->src.name,
                                           (unsigned long long)(m->done >> 20),
                                           (unsigned long long)(m->total >> 20));
    vo_task_set_details(m->t, pct, msg, progress_json(m));
}

/* Pulls volume v into a temp file, rebases a linked clone onto this
 * host's base image, renames it into place: *ret_final (the file made). */
static int copy_volume(VoDaemon *d, MoveIn *m, const Vol *v, char **ret_final, char **ret_error)
{
    _cleanup_free_ char *tmp = NULL, *final = NULL;
    int r = vo_volume_move_in_paths(d, m->pool, v->name, v->format, &tmp, &final, ret_error);
    if (r < 0)
        return r;
    const char *slow = getenv(VO_MOVE_SLOW_ENV);
    for (int64_t until = vo_now_ms() + (slow ? atoi(slow) : 0);
         vo_now_ms() < until && !vo_task_cancelled(m->t);)
        (void)poll(NULL, 0, 50);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "cannot create %s: %s", tmp, strerror(errno));
    (void)fchmod(fd, VO_IMG_FILE_MODE);
    /* POOL/NAME as POOL.NAME: names have no dot (conf/names.h). */
    _cleanup_free_ char *path = vo_asprintf("/v1/moves/outgoing/%s/volumes/%.*s.%s", m->vm_id,
                                            (int)strcspn(v->from, "/"), v->from,
                                            v->from + strcspn(v->from, "/") + 1);
    VoPeerFile pf = { .url = m->src.url, .path = path, .peer_name = m->src.name,
                      .name = v->from, .size = v->size, .sha256 = v->sha256, .task = m->t,
                      .progress = on_progress, .userdata = m };
    r = vo_peer_file_receive(d, &pf, fd, ret_error);
    close(fd);
    if (r >= 0 && v->image && !strcmp(v->format, "qcow2")) {
        /* The copy names the source's base file: point it at ours. */
        VoImage *img = NULL;
        VoImgInfo info = { 0 };
        r = vo_image_get(d, v->image, &img, NULL);
        if (r < 0)
            vo_error_set(ret_error, r, "image '%s' is not here", v->image);
        else if ((r = vo_img_info(tmp, "qcow2", &info, ret_error)) >= 0 &&
                 (info.n_layers < 2 || strcmp(info.layers[1].path, img->disk)))
            r = vo_img_rebase_unsafe(tmp, img->disk, img->format, ret_error);
        vo_img_info_clear(&info);
        vo_image_free(img);
    }
    if (r >= 0 && link(tmp, final) < 0)
        r = vo_error_set(ret_error, -errno, "cannot put the copy of '%s' at %s: %s", v->from,
                         final, strerror(errno));
    (void)unlink(tmp);
    if (r >= 0)
        *ret_final = TAKE_PTR(final);
    return r;
}

static int task_move_in(VoTask *t, void *userdata)
{
    MoveIn *m = userdata;
    VoDaemon *d = m->d;
    m->t = t;
    _cleanup_free_ char *error = NULL;
    char **made = vo_malloc0(sizeof(char *));
    int r = 0;
    const char *fail_after = getenv(VO_MOVE_FAIL_ENV);

    /* 1. The base images of linked clones. */
    for (size_t i = 0; i < m->n_vols && r >= 0; i++)
        if (m->vols[i].image)
            r = vo_image_ensure_local(d, m->vols[i].image, t, &error);
    /* 2. The files. */
    vo_task_set_details(t, 10, "copying the VM's volumes", progress_json(m));
    for (size_t i = 0; i < m->n_vols && r >= 0; i++) {
        if (fail_after && (size_t)atoi(fail_after) == i) {
            r = vo_error_set(&error, -EIO, "failed by " VO_MOVE_FAIL_ENV " (test hook)");
            break;
        }
        char *final = NULL;
        if ((r = copy_volume(d, m, &m->vols[i], &final, &error)) >= 0)
            vo_strv_push(&made, final);
        if (r >= 0 && vo_task_cancelled(t))
            r = vo_error_set(&error, -ECANCELED, "cancelled");
    }
    /* 3. The switch: the VM's and its volumes' documents become ours. */
    int64_t new_rev = 0;
    if (r >= 0) {
        vo_task_set_details(t, 92, "switching the VM's documents over", progress_json(m));
        VoVolumeMove *moves = vo_malloc0(sizeof(*moves) * (m->n_vols + 1));
        for (size_t i = 0; i < m->n_vols; i++)
            moves[i] = (VoVolumeMove){ .from = m->vols[i].from, .to = m->vols[i].to };
        r = vo_vm_move_volumes_txn(d->cluster_store, m->vm_id, m->src.id, d->host_id,
                                   m->vm_rev, moves, m->n_vols, &new_rev, &error);
        free(moves);
    }
    if (r < 0) {
        for (char **f = made; *f; f++)
            (void)unlink(*f);
        vo_strv_free(made);
        if (r == -ECANCELED)
            return vo_task_fail(t, r, "cancelled: VM '%s' stays on host '%s'", m->vm_name,
                                m->src.name);
        return vo_task_fail(t, r, "cannot take VM '%s' from host '%s' (it stays there): %s",
                            m->vm_name, m->src.name, error);
    }
    vo_strv_free(made);

    /* 4. Ours now: the registry follows. */
    for (size_t i = 0; i < m->n_vols; i++) {
        _cleanup_free_ char *verr = NULL;
        const char *name = m->vols[i].to + strlen(m->pool) + 1;
        if (vo_volume_sync_moved(d, m->pool, name, false, &verr) < 0)
            log_error("move of VM %s: volume '%s': %s", m->vm_name, m->vols[i].to, verr);
    }
    free(error);
    error = NULL;
    if ((r = vo_vm_adopt_moved(d, m->vm_id, &error)) < 0) {
        log_error("move of VM %s: its documents are here, but: %s", m->vm_name, error);
        return vo_task_fail(t, r, "VM '%s' is this host's now but cannot be loaded: %s "
                            "(restart vireod)", m->vm_name, error);
    }
    vo_task_set_result(t, json_pack("{s:s, s:s, s:I}", "vm", m->vm_id, "from", m->src.name,
                                    "bytes", (json_int_t)m->total));
    vo_task_set_details(t, 100, "done", progress_json(m));
    log_info("vm %s: moved here from host %s", m->vm_name, m->src.name);
    return 0;
}

int vo_move_incoming(VoDaemon *d, json_t *body, json_t **ret_task, char **ret_error)
{
    const char *vm_id = NULL, *vm_name = NULL, *src = NULL, *pool = NULL;
    json_int_t rev = 0;
    json_t *vols = NULL;
    json_error_t jerr;
    if (!d->cluster_store)
        return vo_error_set(ret_error, -EBUSY, "this host is not in a cluster");
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:s, s:s, s:s, s:I, s:s, s:o}", "vm", &vm_id,
                                "vm_name", &vm_name, "source_host", &src, "vm_rev", &rev,
                                "pool", &pool, "volumes", &vols) < 0 || !json_is_array(vols))
        return vo_error_set(ret_error, -EINVAL, "bad move request: %s", jerr.text);
    if (!vo_name_valid(pool))
        return vo_error_set(ret_error, -EINVAL, "pool: '%s' is not a pool name", pool);
    json_t *pdoc = NULL;
    int r = vo_pool_get_json(d, pool, &pdoc, ret_error);
    if (r < 0)
        return vo_error_set(ret_error, -EINVAL, "pool: host '%s' has no pool '%s'",
                            d->host_name, pool);
    bool shared = json_is_true(json_object_get(pdoc, "shared"));
    json_decref(pdoc);
    if (shared)
        return vo_error_set(ret_error, -EINVAL, "pool: '%s' is a shared pool; the moved "
                            "volumes go to a pool of the host's own", pool);
    MoveIn *m = vo_malloc0(sizeof(*m));
    *m = (MoveIn){ .vm_id = vo_strdup(vm_id), .vm_name = vo_strdup(vm_name),
                   .pool = vo_strdup(pool), .vm_rev = rev, .d = d };
    r = vo_cluster_host_get(d, src, &m->src);
    if (r >= 0 && !m->src.url)
        r = -ENOENT;
    if (r < 0) {
        move_in_free(m);
        return vo_error_set(ret_error, -EINVAL, "source_host: no host %s with an address",
                            src);
    }
    m->vols = vo_malloc0(sizeof(Vol) * (json_array_size(vols) + 1));
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v) {
        const char *from = NULL, *name = NULL, *format = NULL, *image = NULL, *sha = NULL;
        json_int_t size = 0;
        if (json_unpack_ex(v, &jerr, 0, "{s:s, s:s, s:s, s?s, s:I, s:s}", "from", &from,
                           "name", &name, "format", &format, "image", &image, "size_bytes",
                           &size, "sha256", &sha) < 0) {
            move_in_free(m);
            return vo_error_set(ret_error, -EINVAL, "volumes[%zu]: %s", i, jerr.text);
        }
        if (!vo_name_valid(name) || size < 0 || !strchr(from, '/')) {
            move_in_free(m);
            return vo_error_set(ret_error, -EINVAL, "volumes[%zu]: bad name or size", i);
        }
        _cleanup_free_ char *tmp = NULL, *final = NULL;
        if ((r = vo_volume_move_in_paths(d, pool, name, format, &tmp, &final, ret_error)) < 0) {
            move_in_free(m);
            return r == -EEXIST ? -EBUSY : r; /* a name taken here: 409 */
        }
        m->vols[m->n_vols++] = (Vol){ .from = vo_strdup(from),
                                      .to = vo_asprintf("%s/%s", pool, name),
                                      .name = vo_strdup(name), .format = vo_strdup(format),
                                      .image = vo_strdup(image), .sha256 = vo_strdup(sha),
                                      .size = (uint64_t)size };
        m->total += (uint64_t)size;
    }
    _cleanup_free_ char *key = vo_asprintf("vm/%s", vm_id);
    VoTaskDesc desc = { .kind = "move-in", .target = vm_name, .keys = { key },
                        .target_id = vm_id, .cancellable = true };
    r = vo_tasks_submit(d->tasks, &desc, task_move_in, m, move_in_free, ret_task, ret_error);
    if (r != 0)
        move_in_free(m);
    return r < 0 ? r : 0;
}
