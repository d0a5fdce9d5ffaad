/* image-copy.c: copy on first use (docs/cluster.md, "Images and pools").
 * In a cluster an image is either in a shared pool (every host that reaches
 * the pool uses it) or one host's own (STATE/images/NAME and its document
 * images/NAME in that host's namespace). A VM created from another host's
 * own image on a host without it gets it copied first: the manifest (each
 * file's name, size and SHA-256, hashed by the sending host when asked:
 * api/image-files-api.c), then each file over the peer API into
 * STATE/images/.build-NAME, checked against the manifest, renamed into
 * place, then the image's document: files first, then the document. A
 * failed copy removes its build directory (the start-up sweep takes one a
 * crash left). One copy of a name at a time on a host: a second caller
 * waits for the first and then uses its result. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/peer-client.h"
#include "conf/names.h"
#include "daemon/cluster-view.h"
#include "daemon/daemon.h"
#include "daemon/images.h"
#include "daemon/peer-file.h"
#include "jobs/tasks.h"
#include "storage/image-files.h"
#include "storage/qemu-img.h"
#include "util/util.h"

/* A manifest takes the sender a hash of every file: allow for big ones. */
#define MANIFEST_TIMEOUT_MS (30 * 60 * 1000)

/* The names being copied on this host, and a broadcast when one ends. */
static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t copy_ended = PTHREAD_COND_INITIALIZER;
static char **copying;

typedef struct {
    const char *name;
    char *text;      /* the document of the first host found (online first) */
    char *host_name;
    char *host_id;
    char *url;
    bool online;
} Holder;

static int find_one(const VoClusterHost *h, const char *name, const char *value, void *userdata)
{
    Holder *f = userdata;
    if (strcmp(name, f->name) || (f->text && (f->online || !h->online)))
        return 0;
    free(f->text);
    free(f->host_name);
    free(f->host_id);
    free(f->url);
    f->text = vo_strdup(value);
    f->host_name = vo_strdup(h->name);
    f->host_id = vo_strdup(h->id);
    f->url = vo_strdup(h->url);
    f->online = h->online && h->url;
    return 0;
}

static void holder_clear(Holder *f)
{
    free(f->text);
    free(f->host_name);
    free(f->host_id);
    free(f->url);
    *f = (Holder){ .name = f->name };
}

static int find_holder(VoDaemon *d, const char *name, Holder *ret)
{
    *ret = (Holder){ .name = name };
    int r = vo_cluster_each_doc(d, "images", find_one, ret);
    if (r >= 0 && !ret->text)
        r = -ENOENT;
    if (r < 0)
        holder_clear(ret);
    return r;
}

int vo_image_find_anywhere(VoDaemon *d, const char *name, VoImage **ret)
{
    int r = vo_image_get(d, name, ret, NULL);
    return r == -ENOENT ? vo_image_find_elsewhere(d, name, ret, NULL) : r;
}

int vo_image_find_elsewhere(VoDaemon *d, const char *name, VoImage **ret, char **ret_host_name)
{
    if (!d->cluster_store || !vo_name_valid(name))
        return -ENOENT;
    Holder f;
    int r = find_holder(d, name, &f);
    if (r < 0)
        return r;
    r = vo_image_from_doc(d, name, f.text, ret);
    if (r >= 0 && ret_host_name)
        *ret_host_name = TAKE_PTR(f.host_name);
    holder_clear(&f);
    return r;
}

/* ---- one copy ---------------------------------------------------------------- */

typedef struct {
    uint64_t done, total;     /* all files' */
    int percent;              /* last shown */
    VoTask *t;
    const char *image, *host;
} Receive;

static void show_progress(uint64_t len, void *userdata)
{
    Receive *rc = userdata;
    rc->done += len;
    if (!rc->t || !rc->total)
        return;
    int percent = 5 + (int)(24 * rc->done / rc->total);
    if (percent == rc->percent)
        return;
    rc->percent = percent;
    _cleanup_free_ char *msg = vo_asprintf("copying image '%s' from host '%s' (%llu of %llu "
                                           "MiB)", rc->image, rc->host,
                                           (unsigned long long)(rc->done >> 20),
                                           (unsigned long long)(rc->total >> 20));
    vo_task_progress(rc->t, percent, msg);
}

/* Receives file f of the image into dir, checked against the manifest
 * (daemon/peer-file.h). */
static int receive_file(VoDaemon *d, const Holder *h, const char *dir, const VoImageFile *f,
                        Receive *rc, char **ret_error)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, f->name);
    _cleanup_free_ char *url_path = vo_asprintf("/v1/images/%s/files/%s", rc->image, f->name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, VO_IMG_FILE_MODE);
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "cannot create %s: %s", path, strerror(errno));
    VoPeerFile pf = { .url = h->url, .path = url_path, .peer_name = h->host_name,
                      .name = f->name, .size = f->size, .sha256 = f->sha256, .task = rc->t,
                      .progress = show_progress, .userdata = rc };
    int r = vo_peer_file_receive(d, &pf, fd, ret_error);
    close(fd);
    return r;
}

/* The files image.json names are exactly those the manifest lists. */
static int check_meta(const char *dir, const VoImageManifest *m, char **ret_error)
{
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_IMAGE_META_FILE, dir);
    json_error_t jerr;
    json_t *meta = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!meta)
        return vo_error_set(ret_error, -EIO, VO_IMAGE_META_FILE ": %s", jerr.text);
    char **names = NULL;
    int r = vo_image_files_of(meta, &names, ret_error);
    json_decref(meta);
    if (r < 0)
        return r;
    size_t n = vo_strv_len(names);
    for (size_t i = 0; i < m->n_files && r >= 0; i++) {
        bool named = false;
        for (char **s = names; *s && !named; s++)
            named = !strcmp(*s, m->files[i].name);
        if (!named)
            r = vo_error_set(ret_error, -EIO, "the manifest lists '%s', which "
                             VO_IMAGE_META_FILE " does not name", m->files[i].name);
    }
    if (r >= 0 && n != m->n_files)
        r = vo_error_set(ret_error, -EIO, VO_IMAGE_META_FILE " names a file the manifest does "
                         "not list");
    vo_strv_free(names);
    return r;
}

static int copy_from(VoDaemon *d, const char *name, const Holder *h, VoTask *t,
                     char **ret_error)
{
    if (!h->online)
        return vo_error_set(ret_error, -EHOSTUNREACH, "image '%s' is on host '%s' only, which "
                            "is offline: it can be copied here once that host is back (vireo "
                            "host list)", name, h->host_name);
    if (t)
        vo_task_progress(t, 5, "asking for the manifest of the image");
    _cleanup_free_ char *path = vo_asprintf("/v1/images/%s/files", name);
    const char *headers[] = { "X-Vireo-Forwarded: 1", NULL };
    VoPeerResponse resp = { 0 };
    int r = vo_peer_request(&d->peer_tls, h->url, "GET", path, headers, NULL, 0,
                            MANIFEST_TIMEOUT_MS, &resp);
    if (r < 0) {
        r = vo_error_set(ret_error, r, "host '%s': %s", h->host_name, resp.error);
        vo_peer_response_clear(&resp);
        return r;
    }
    json_t *doc = resp.status == 200 ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (!doc) {
        _cleanup_free_ char *text = vo_peer_answer_text(&resp);
        r = vo_error_set(ret_error, resp.status == 404 ? -ENOENT : -EIO, "host '%s' answered "
                         "%d to GET %s: %s", h->host_name, resp.status, path, text);
        vo_peer_response_clear(&resp);
        return r;
    }
    vo_peer_response_clear(&resp);
    VoImageManifest m = { 0 };
    r = vo_image_manifest_parse(doc, name, &m, ret_error);
    json_decref(doc);
    if (r < 0)
        return -EIO;

    _cleanup_free_ char *top = vo_asprintf("%s/images", d->state_dir);
    _cleanup_free_ char *tmp = vo_asprintf("%s/.build-%s", top, name);
    _cleanup_free_ char *final = vo_asprintf("%s/%s", top, name);
    (void)vo_rm_rf(tmp);
    r = vo_mkdir_p(tmp, 0750);
    if (r < 0)
        vo_error_set(ret_error, r, "cannot make %s: %s", tmp, strerror(-r));
    Receive rc = { .t = t, .image = name, .host = h->host_name, .percent = -1 };
    for (size_t i = 0; i < m.n_files; i++)
        rc.total += m.files[i].size;
    log_info("images: copying image '%s' from host '%s' (%zu files, %llu bytes)", name,
             h->host_name, m.n_files, (unsigned long long)rc.total);
    for (size_t i = 0; i < m.n_files && r >= 0; i++)
        r = receive_file(d, h, tmp, &m.files[i], &rc, ret_error);
    if (r >= 0)
        r = check_meta(tmp, &m, ret_error);
    vo_image_manifest_clear(&m);
    if (r >= 0 && (r = vo_image_dir_rename(tmp, final)) < 0)
        vo_error_set(ret_error, r, "%s appeared meanwhile: %s", final, strerror(-r));
    if (r < 0) {
        (void)vo_rm_rf(tmp);
        return r;
    }
    /* Files first, then the document that makes the image exist here. */
    if ((r = vo_image_record(d, name, ret_error)) < 0) {
        vo_image_dir_discard(top, name, final, tmp);
        return r;
    }
    log_info("images: image '%s' copied from host '%s'", name, h->host_name);
    return 0;
}

static bool copying_locked(const char *name)
{
    for (char **s = copying; s && *s; s++)
        if (!strcmp(*s, name))
            return true;
    return false;
}

static void copy_end(const char *name)
{
    pthread_mutex_lock(&copy_lock);
    size_t n = vo_strv_len(copying);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(copying[i], name)) {
            free(copying[i]);
            copying[i] = copying[n - 1];
            copying[n - 1] = NULL;
            break;
        }
    pthread_cond_broadcast(&copy_ended);
    pthread_mutex_unlock(&copy_lock);
}

int vo_image_ensure_local(VoDaemon *d, const char *name, VoTask *t, char **ret_error)
{
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "'%s' is not an image name", name ? name : "");
    for (int round = 0;; round++) {
        VoImage *img = NULL;
        if (vo_image_get(d, name, &img, NULL) >= 0) {
            vo_image_free(img);
            return 0;
        }
        if (!d->cluster_store)
            return vo_error_set(ret_error, -ENOENT, "image '%s' does not exist", name);
        pthread_mutex_lock(&copy_lock);
        if (copying_locked(name)) {
            /* Another task copies it: wait for its end, then look again
             * (its copy is there, or this one tries, once). */
            if (t)
                vo_task_progress(t, 5, "waiting for another task's copy of the image");
            while (copying_locked(name))
                pthread_cond_wait(&copy_ended, &copy_lock);
            pthread_mutex_unlock(&copy_lock);
            if (round < 2)
                continue;
            return vo_error_set(ret_error, -EIO, "image '%s': the copies of other tasks "
                                "failed", name);
        }
        vo_strv_pushf(&copying, "%s", name);
        pthread_mutex_unlock(&copy_lock);

        Holder h;
        int r = find_holder(d, name, &h);
        if (r == -ENOENT)
            vo_error_set(ret_error, r, "image '%s' does not exist on any host of the cluster "
                         "(see: vireo image list)", name);
        else if (r < 0)
            vo_error_set(ret_error, r, "image '%s': cannot read the cluster: %s", name,
                         strerror(-r));
        /* Held like a build, so no import or template of this name meets
         * the copy's build directory. */
        if (r >= 0 && (r = vo_image_name_claim(d, name, ret_error)) >= 0) {
            _cleanup_free_ char *why = NULL;
            r = copy_from(d, name, &h, t, &why);
            vo_image_name_release(d, name);
            if (r < 0)
                vo_error_set(ret_error, r, "cannot copy image '%s' from host '%s': %s", name,
                             h.host_name, why ? why : strerror(-r));
        }
        holder_clear(&h);
        copy_end(name);
        return r;
    }
}
