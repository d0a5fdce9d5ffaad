/* image-import.c: adding and removing images: import of a disk file (plus
 * optional direct-boot kernel and initrd) into STATE/images/NAME, built in a
 * hidden directory, renamed into place only when complete, and then recorded
 * as the document images/NAME; deleting one (files, then document). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/names.h"
#include "daemon/daemon.h"
#include "daemon/images.h"
#include "daemon/storage.h"
#include "state/lease-keeper.h"
#include "storage/qemu-img.h"
#include "util/spawn.h"
#include "util/util.h"

typedef struct {
    VoDaemon *d;
    char *name, *import_path, *kernel_path, *initrd_path, *cmdline, *pool;
    bool claimed; /* holds the name (vo_image_name_claim) */
} ImportOp;

/* Holds name in images_building; with exists_ok false, refused also when
 * the image exists (its document, or a directory in the way). */
static int name_hold(VoDaemon *d, const char *name, bool exists_ok, char **ret_error)
{
    _cleanup_free_ char *dir = vo_asprintf("%s/images/%s", d->state_dir, name);
    _cleanup_free_ char *key = vo_asprintf("images/%s", name);
    /* One name for the host's images and the cluster's (shared pools). */
    _cleanup_free_ char *shared_key = vo_asprintf(VO_SHARED_IMAGES_PREFIX "%s", name);
    _cleanup_free_ char *doc = NULL, *shared_doc = NULL;
    pthread_mutex_lock(&d->storage_lock);
    int r = 0;
    for (char **s = d->images_building; s && *s && r == 0; s++)
        if (!strcmp(*s, name))
            r = vo_error_set(ret_error, exists_ok ? -EBUSY : -EEXIST,
                             "image '%s' is being built or deleted by another task", name);
    if (r == 0 && !exists_ok &&
        (vo_store_get(d->store, key, &doc, NULL) == 0 ||
         vo_store_get(d->store, shared_key, &shared_doc, NULL) == 0 || access(dir, F_OK) == 0))
        r = vo_error_set(ret_error, -EEXIST, "image '%s' already exists", name);
    if (r == 0)
        vo_strv_pushf(&d->images_building, "%s", name);
    pthread_mutex_unlock(&d->storage_lock);
    return r;
}

int vo_image_name_claim(VoDaemon *d, const char *name, char **ret_error)
{
    return name_hold(d, name, false, ret_error);
}

int vo_image_name_check_free(VoDaemon *d, const char *name, char **ret_error)
{
    pthread_mutex_lock(&d->storage_lock);
    bool held = false;
    for (char **s = d->images_building; s && *s && !held; s++)
        held = !strcmp(*s, name);
    pthread_mutex_unlock(&d->storage_lock);
    if (held)
        return vo_error_set(ret_error, -EBUSY, "image '%s' is being deleted (or built) by "
                            "another task: nothing was made from it", name);
    return 0;
}

void vo_image_name_release(VoDaemon *d, const char *name)
{
    pthread_mutex_lock(&d->storage_lock);
    size_t n = vo_strv_len(d->images_building);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(d->images_building[i], name)) {
            free(d->images_building[i]);
            d->images_building[i] = d->images_building[n - 1];
            d->images_building[n - 1] = NULL;
            break;
        }
    pthread_mutex_unlock(&d->storage_lock);
}

static void import_op_free(void *p)
{
    ImportOp *op = p;
    if (op->claimed)
        vo_image_name_release(op->d, op->name);
    free(op->name);
    free(op->import_path);
    free(op->kernel_path);
    free(op->initrd_path);
    free(op->cmdline);
    free(op->pool);
    free(op);
}

static void report_progress(int percent, void *userdata)
{
    vo_task_progress(userdata, percent * 9 / 10, "converting the disk");
}

static int copy_into(const char *from, const char *dir, const char *name, char **ret_error)
{
    _cleanup_free_ char *to = vo_asprintf("%s/%s", dir, name);
    char *argv[] = { "cp", "--reflink=auto", "--", (char *)from, to, NULL };
    _cleanup_free_ char *output = NULL;
    int r = vo_spawn_wait(argv, 600000, &output);
    if (r < 0)
        *ret_error = vo_asprintf("cannot copy %s: %s", from,
                                 output && *output ? output : strerror(-r));
    else if (chmod(to, VO_IMG_FILE_MODE) < 0) {
        r = -errno;
        *ret_error = vo_asprintf("cannot make %s private: %s", to, strerror(errno));
    }
    return r;
}

static int write_image_json(const VoImageBuild *b, const char *dir)
{
    json_t *meta = json_pack("{s:s, s:s, s:s}", "name", b->name, "disk", "disk.qcow2", "format",
                             "qcow2");
    if (b->kernel)
        json_object_set_new(meta, "kernel", json_string("vmlinux"));
    if (b->initrd)
        json_object_set_new(meta, "initrd", json_string("initrd.img"));
    if (b->cmdline)
        json_object_set_new(meta, "cmdline", json_string(b->cmdline));
    if (b->template_of)
        json_object_set_new(meta, "template_of", json_string(b->template_of));
    _cleanup_free_ char *text = json_dumps(meta, JSON_SORT_KEYS | JSON_INDENT(2));
    json_decref(meta);
    _cleanup_free_ char *path = vo_asprintf("%s/image.json", dir);
    int r = vo_write_file_atomic(path, text, strlen(text));
    return r < 0 ? r : chmod(path, VO_IMG_FILE_MODE) < 0 ? -errno : 0;
}

/* The document of a built image could not be written: its files go again.
 * Moved out of the image's place first (back to .build-NAME, else aside to
 * .deleting-NAME), then removed: a removal cut short in place would leave a
 * part of the image (image.json and its disk, without its kernel) that the
 * next start adopts. Left over, either name goes in the start-up sweep. */
void vo_image_dir_discard(const char *top, const char *name, const char *final_dir,
                              const char *tmp_dir)
{
    _cleanup_free_ char *aside = vo_asprintf("%s/.deleting-%s", top, name);
    const char *gone = rename(final_dir, tmp_dir) == 0 ? tmp_dir
                       : rename(final_dir, aside) == 0 ? aside
                                                       : NULL;
    if (!gone) {
        log_warn("images: cannot move %s out of the way (%s); removing it in place", final_dir,
                 strerror(errno));
        gone = final_dir;
    }
    (void)vo_rm_rf(gone);
}

#define IMAGE_BUILD_PREFIX "cluster/image-builds/"
#define IMAGE_BUILD_TTL_MS 30000

/* An image kept in a shared pool is the cluster's: before any file is
 * touched, this host claims cluster/image-builds/NAME (new, on a lease a
 * keeper renews until the build ended), in one transaction with a compare
 * that cluster/images/NAME does not exist. Of two hosts building one name,
 * one builds; the other gets -EEXIST. */
static int claim_shared_name(VoDaemon *d, const char *name, VoLeaseKeeper **ret,
                             char **ret_error)
{
    _cleanup_free_ char *claim = vo_asprintf(IMAGE_BUILD_PREFIX "%s", name);
    _cleanup_free_ char *image = vo_asprintf(VO_SHARED_IMAGES_PREFIX "%s", name);
    int64_t lease = 0;
    int r = d->store->ops->lease_grant(d->store, IMAGE_BUILD_TTL_MS, &lease);
    if (r < 0)
        return vo_error_set(ret_error, r, "image '%s': cannot claim its name in the cluster: %s",
                            name, strerror(-r));
    json_t *doc = json_pack("{s:s?, s:s?}", "host", d->host_id, "host_name", d->host_name);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    VoStoreCompare cmps[] = { { .key = claim, .expected_rev = VO_REV_NEW },
                              { .key = image, .expected_rev = VO_REV_NEW } };
    VoStoreOp ops[] = { { .kind = VO_STORE_PUT, .key = claim, .value = text, .lease = lease } };
    size_t failed = 0;
    r = vo_store_txn(d->store, cmps, 2, ops, 1, NULL, &failed);
    if (r == -EEXIST && failed == 0) {
        _cleanup_free_ char *holder = NULL;
        json_t *h = vo_store_get(d->store, claim, &holder, NULL) >= 0
                        ? json_loads(holder, 0, NULL) : NULL;
        const char *who = json_string_value(json_object_get(h, "host_name"));
        r = vo_error_set(ret_error, -EEXIST, "image '%s' is being made on host '%s'", name,
                         who ? who : "?");
        json_decref(h);
    } else if (r == -EEXIST) {
        r = vo_error_set(ret_error, -EEXIST, "image '%s' already exists", name);
    } else if (r < 0) {
        r = vo_error_set(ret_error, r, "image '%s': cannot claim its name in the cluster: %s",
                         name, strerror(-r));
    }
    if (r < 0) {
        (void)d->store->ops->lease_revoke(d->store, lease);
        return r;
    }
    *ret = vo_lease_keeper_start(d->store, lease, IMAGE_BUILD_TTL_MS);
    return 0;
}

static void keeper_stopp(VoLeaseKeeper **k)
{
    (void)vo_lease_keeper_stop(*k);
}

/* Moves the built directory into place, never over one that is there (an
 * empty directory would be replaced by rename(2)). */
int vo_image_dir_rename(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A file system without RENAME_NOREPLACE: a directory there is not
     * empty (it has image.json), so rename fails on it. */
    return rename(from, to) < 0 ? -errno : 0;
}

int vo_image_build(VoDaemon *d, const VoImageBuild *b, VoTask *t, char **ret_error)
{
    /* In a shared pool: SHARED_POOL/.images/NAME, built the same way. */
    _cleanup_free_ char *top = vo_images_top(d, b->pool);
    if (!top)
        return vo_error_set(ret_error, -ENOENT, "pool '%s' is not a shared pool", b->pool);
    _cleanup_(keeper_stopp) VoLeaseKeeper *claim = NULL;
    if (b->pool) {
        int k = vo_pool_check_reachable(d, b->pool, ret_error);
        if (k >= 0)
            k = claim_shared_name(d, b->name, &claim, ret_error);
        if (k < 0)
            return k;
    }
    _cleanup_free_ char *final_dir = vo_asprintf("%s/%s", top, b->name);
    /* In a shared pool each host builds in a directory of its own. */
    _cleanup_free_ char *tmp_dir =
        b->pool ? vo_asprintf("%s/.build-%s.%s", top, b->name, d->host_id ? d->host_id : "")
                : vo_asprintf("%s/.build-%s", top, b->name);
    _cleanup_free_ char *disk = vo_asprintf("%s/disk.qcow2", tmp_dir);
    (void)vo_rm_rf(tmp_dir);
    int r = vo_mkdir_p(tmp_dir, 0750);
    if (r >= 0)
        r = vo_img_convert(b->disk_path, b->disk_format, disk, "qcow2", report_progress, t,
                           ret_error);
    if (r >= 0 && b->kernel)
        r = copy_into(b->kernel, tmp_dir, "vmlinux", ret_error);
    if (r >= 0 && b->initrd)
        r = copy_into(b->initrd, tmp_dir, "initrd.img", ret_error);
    if (r >= 0)
        r = write_image_json(b, tmp_dir);
    if (r >= 0 && (r = vo_image_dir_rename(tmp_dir, final_dir)) < 0)
        *ret_error = vo_asprintf("image '%s' appeared meanwhile: %s", b->name, strerror(-r));
    if (r == -ENOTEMPTY)
        r = -EEXIST;
    if (r < 0)
        (void)vo_rm_rf(tmp_dir);
    /* Files first, then the document, which makes the image exist. A crash
     * between leaves a complete directory that the next start adopts. */
    else if ((r = vo_image_record_in(d, b->name, b->pool, ret_error)) < 0)
        vo_image_dir_discard(top, b->name, final_dir, tmp_dir);
    return r;
}

static int task_import(VoTask *t, void *userdata)
{
    ImportOp *op = userdata;
    _cleanup_free_ char *error = NULL, *format = NULL;
    int r = vo_img_probe_import(op->import_path, &format, &error);
    if (r >= 0) {
        VoImageBuild b = { .name = op->name, .disk_path = op->import_path, .disk_format = format,
                           .kernel = op->kernel_path, .initrd = op->initrd_path,
                           .cmdline = op->cmdline, .pool = op->pool };
        r = vo_image_build(op->d, &b, t, &error);
    }
    vo_image_name_release(op->d, op->name); /* built (it exists now) or not */
    op->claimed = false;
    if (r < 0)
        return vo_task_fail(t, r, "cannot import image '%s': %s", op->name,
                            error ? error : strerror(-r));
    return 0;
}

static bool readable_file(const char *path)
{
    return path && path[0] == '/' && access(path, R_OK) == 0;
}

int vo_image_import(VoDaemon *d, const VoImageImportArgs *args, json_t **ret_task,
                    char **ret_error)
{
    if (!vo_name_valid(args->name)) {
        *ret_error = vo_asprintf("name: '%s' is invalid: use 1-63 characters of a-z, 0-9 and "
                                 "'-', not starting with '-'", args->name ? args->name : "");
        return -EINVAL;
    }
    const char *paths[] = { args->import_path, args->kernel_path, args->initrd_path };
    const char *keys[] = { "import_path", "kernel_path", "initrd_path" };
    for (size_t i = 0; i < ELEMENTSOF(paths); i++)
        if ((i == 0 || paths[i]) && !readable_file(paths[i])) {
            *ret_error = vo_asprintf("%s: '%s' is not a readable file (absolute path)", keys[i],
                                     paths[i] ? paths[i] : "");
            return -EINVAL;
        }
    if ((args->initrd_path || args->cmdline) && !args->kernel_path) {
        *ret_error = vo_strdup("initrd_path and cmdline need kernel_path");
        return -EINVAL;
    }
    /* One line on QEMU's command line (-append): a newline would end it. */
    for (const char *p = args->cmdline; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *ret_error = vo_asprintf("cmdline: control character 0x%02x at offset %zu: the "
                                     "kernel command line is one line of printable characters",
                                     (unsigned char)*p, (size_t)(p - args->cmdline));
            return -EINVAL;
        }
    if (args->pool) {
        _cleanup_free_ char *path = NULL;
        bool reachable = false;
        int k = vo_shared_pool_path(d, args->pool, &path, &reachable, ret_error);
        if (k < 0)
            return k == -ENOENT ? -EINVAL : k;
        if (vo_pool_is_rbd(d, args->pool))
            return vo_error_set(ret_error, -EINVAL, "pool: '%s' is an rbd pool: images are "
                                "kept in shared dir pools (a VM made in an rbd pool gets a "
                                "linked clone there)", args->pool);
        if (!reachable)
            return vo_error_set(ret_error, -EBUSY, "pool '%s' is not reachable on this host "
                                "(vireo pool show %s)", args->pool, args->pool);
    }
    int r = vo_image_name_claim(d, args->name, ret_error);
    if (r < 0)
        return r;
    ImportOp *op = vo_malloc0(sizeof(*op));
    *op = (ImportOp){ .d = d, .name = vo_strdup(args->name), .claimed = true,
                      .import_path = vo_strdup(args->import_path),
                      .kernel_path = vo_strdup(args->kernel_path),
                      .initrd_path = vo_strdup(args->initrd_path),
                      .cmdline = vo_strdup(args->cmdline), .pool = vo_strdup(args->pool) };
    /* Cancelled while queued, import_op_free gives the name back. */
    r = vo_tasks_submit(d->tasks,
                        &(VoTaskDesc){ .kind = "image-import", .target = args->name,
                                       .cancellable = true },
                        task_import, op, import_op_free, ret_task, ret_error);
    if (r < 0)
        import_op_free(op);
    return r;
}

int vo_image_delete(VoDaemon *d, const char *name, int64_t expected, char **ret_error)
{
    VoImage *img = NULL;
    int64_t rev = 0;
    if (vo_image_get(d, name, &img, &rev) < 0) {
        /* In a cluster the image lists show other hosts' own images too:
         * each host's copy is deleted on that host. */
        _cleanup_free_ char *holder = NULL;
        if (vo_image_find_elsewhere(d, name, &img, &holder) >= 0) {
            vo_image_free(img);
            *ret_error = vo_asprintf("image '%s' is not on this host: it is host '%s''s own "
                                     "(and of any other host that copied it); each host's copy "
                                     "is deleted on that host (vireo image delete %s, run "
                                     "there)", name, holder, name);
            return -ENOENT;
        }
        *ret_error = vo_asprintf("image '%s' does not exist", name);
        return -ENOENT;
    }
    _cleanup_free_ char *pool = vo_strdup(img->pool);
    vo_image_free(img);
    /* Held before its users are counted: a VM create that counts after
     * this is refused (vo_image_name_check_free), one before is counted. */
    int r = name_hold(d, name, true, ret_error);
    if (r < 0)
        return r;
    int users = vo_image_users(d, name) + (pool ? vo_image_users_elsewhere(d, name) : 0);
    if (users > 0) {
        vo_image_name_release(d, name);
        _cleanup_free_ char *clones = vo_image_clone_names(d, name);
        *ret_error = vo_asprintf("image '%s' is used by %d VM(s) or linked clone(s)%s%s%s; "
                                 "delete those first", name, users,
                                 clones ? " (linked clones: " : "", clones ? clones : "",
                                 clones ? ")" : "");
        return -EBUSY;
    }
    /* Its bases in rbd pools go first (the cluster refuses while clones of
     * one exist): a base without the image would never be used again, an
     * image without its bases is made again on the next clone. */
    if ((r = vo_rbd_pools_forget_image(d, name, ret_error)) < 0) {
        vo_image_name_release(d, name);
        return -EBUSY; /* 409: the image stays; the message says what is in the way */
    }
    /* Held, the image cannot change: its revision is the one read (and the
     * delete below is conditional on it). */
    _cleanup_free_ char *what = vo_asprintf("image '%s'", name);
    if ((r = vo_if_match_check(expected, rev, what, ret_error)) < 0) {
        vo_image_name_release(d, name);
        return r;
    }
    /* The files go out of the way first, then the document (at the revision
     * read): a crash between leaves a document without files, which the next
     * start removes (never files without a document, which it would adopt).
     * The sweep removes a ".deleting-NAME" left behind. */
    _cleanup_free_ char *top = vo_images_top(d, pool);
    if (!top) {
        vo_image_name_release(d, name);
        return vo_error_set(ret_error, -ENOENT, "pool '%s' of image '%s' does not exist", pool,
                            name);
    }
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", top, name);
    _cleanup_free_ char *gone = vo_asprintf("%s/.deleting-%s", top, name);
    _cleanup_free_ char *key = vo_asprintf("%s%s", pool ? VO_SHARED_IMAGES_PREFIX : "images/", name);
    (void)vo_rm_rf(gone);
    bool moved = rename(dir, gone) == 0;
    if (!moved && errno != ENOENT) /* ENOENT: the files were gone already */
        r = vo_error_set(ret_error, -errno, "cannot remove image '%s': %s", name,
                         strerror(errno));
    if (r >= 0 && (r = vo_store_delete(d->store, key, rev)) < 0) {
        if (r == -ENOENT)
            vo_error_set(ret_error, r, "image '%s' does not exist", name);
        else
            vo_error_set(ret_error, r, "cannot remove image '%s': %s", name, strerror(-r));
        if (moved && rename(gone, dir) < 0)
            log_warn("cannot put %s back: %s", dir, strerror(errno));
        moved = false;
    }
    if (moved && (r = vo_rm_rf(gone)) < 0) {
        log_warn("cannot remove %s: %s (the next start removes it)", gone, strerror(-r));
        r = 0; /* the image is gone: its document is */
    }
    vo_image_name_release(d, name);
    return r;
}
