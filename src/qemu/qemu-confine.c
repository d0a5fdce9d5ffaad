/* qemu-confine.c: QEMU as an unprivileged user: its user, its run dir, and
 * the files and secrets it gets from vireod after its start (see
 * qemu-confine.h). */
#include "qemu/qemu-confine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu/qemu-uffd.h"
#include "qemu/qemu-uids.h"
#include "util/cgroup.h"
#include "util/spawn.h"
#include "util/util.h"

static int lookup(const char *name, uid_t *ret_uid, gid_t *ret_gid)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    int r = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    if (r != 0)
        return -r;
    if (!found)
        return -ENOENT;
    *ret_uid = pw.pw_uid;
    *ret_gid = pw.pw_gid;
    return 0;
}

int vo_qemu_user_resolve(const char *name, bool create, uid_t *ret_uid, gid_t *ret_gid,
                         char **ret_error)
{
    int r = lookup(name, ret_uid, ret_gid);
    if (r != -ENOENT || !create)
        return r < 0 ? vo_error_set(ret_error, r, "QEMU user '%s': %s", name,
                                    r == -ENOENT ? "no such user" : strerror(-r))
                     : 0;
    char *argv[] = { "useradd", "--system", "--user-group", "--no-create-home",
                     "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                     "--comment", "vireo QEMU processes", (char *)name, NULL };
    _cleanup_free_ char *output = NULL;
    r = vo_spawn_wait(argv, 30000, &output);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make the QEMU user '%s' (useradd): %s", name,
                            output && *output ? output : strerror(-r));
    log_info("made the system user '%s' for QEMU processes", name);
    r = lookup(name, ret_uid, ret_gid);
    return r < 0 ? vo_error_set(ret_error, r, "QEMU user '%s': %s", name, strerror(-r)) : 0;
}

bool vo_qemu_path_reachable(const char *path, uid_t uid, gid_t gid, char **ret_blocked)
{
    _cleanup_free_ char *walk = vo_strdup(path);
    for (char *end = walk; end;) {
        end = strchr(end + 1, '/');
        if (end)
            *end = 0;
        struct stat st;
        bool ok = stat(*walk ? walk : "/", &st) == 0 &&
                  ((st.st_mode & S_IXOTH) || (st.st_uid == uid && (st.st_mode & S_IXUSR)) ||
                   (st.st_gid == gid && (st.st_mode & S_IXGRP)));
        if (!ok) {
            if (ret_blocked)
                *ret_blocked = vo_strdup(*walk ? walk : "/");
            return false;
        }
        if (end)
            *end = '/';
    }
    return true;
}

/* Through an fd of path itself, never of a symlink's target: path is in a
 * run dir QEMU's user may write in, where a QEMU that escaped its guest
 * could swap it for a symlink to a file of root's. */
static int set_owner(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)
        return -errno;
    return 0;
}

int vo_qemu_give(const VoHvDriver *d, const char *path, mode_t mode)
{
    return d && d->qemu_user ? set_owner(path, d->qemu_uid, d->qemu_gid, mode) : 0;
}

int vo_qemu_share_dir(const VoHvDriver *d, const char *path)
{
    if (!d || !d->qemu_user)
        return 0;
    /* With per-VM uids no QEMU writes here: each in its own dir below. */
    return set_owner(path, geteuid(), d->qemu_gid, d->qemu_uid_first ? 0710 : 01770);
}

int vo_qemu_mkdir_fresh(const char *path)
{
    if (mkdir(path, 0700) < 0)
        return -errno;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    int r = fd < 0 || fstat(fd, &st) < 0 ? -errno : 0;
    if (r >= 0 && st.st_uid != geteuid()) /* not the dir just made */
        r = -EPERM;
    if (r >= 0 && fchmod(fd, 0700) < 0)
        r = -errno;
    if (r < 0 && fd >= 0)
        close(fd);
    return r < 0 ? r : fd;
}

/* What dfd's directory holds, removed without following a symlink (a
 * QEMU's uid owned it and may have put some there). */
static void remove_below(int dfd)
{
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(dir), e->d_name, 0) == 0 || errno != EISDIR)
            continue;
        int child = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child >= 0)
            remove_below(child);
        (void)unlinkat(dirfd(dir), e->d_name, AT_REMOVEDIR);
    }
    closedir(dir);
}

void vo_qemu_own_dir_remove(const char *run_dir)
{
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_QEMU_OWN_DIR, run_dir);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0)
        remove_below(dfd);
    if (rmdir(path) < 0 && errno == ENOTDIR)
        (void)unlink(path);
}

int vo_qemu_own_dir_make(const VoHvDriver *d, const char *run_dir, uid_t uid, char **ret_path,
                         char **ret_error)
{
    vo_qemu_own_dir_remove(run_dir); /* a stale one, of a QEMU that is gone */
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_QEMU_OWN_DIR, run_dir);
    _cleanup_close_ int fd = vo_qemu_mkdir_fresh(path);
    int r = fd < 0 ? fd : 0;
    if (r >= 0 && fchown(fd, uid, d->qemu_gid) < 0)
        r = -errno;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make %s for QEMU's uid %u: %s", path,
                            (unsigned)uid, strerror(-r));
    *ret_path = TAKE_PTR(path);
    return 0;
}

/* One open of path into fdset (-1: a new one); its id in *io_set. */
static int add_fd(VoHvInstance *vm, const char *path, int flags, int64_t *io_set,
                  char **ret_error)
{
    _cleanup_close_ int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "cannot open %s for QEMU: %s", path,
                            strerror(errno));
    json_t *args = json_pack("{s:s}", "opaque", path);
    if (*io_set >= 0)
        json_object_set_new(args, "fdset-id", json_integer(*io_set));
    json_t *ret = NULL;
    int r = vm->qmp ? vo_qmp_execute_fd(vm->qmp, "add-fd", args, fd, QMP_TIMEOUT_MS, &ret,
                                        ret_error)
                    : -ENOTCONN;
    json_decref(args);
    if (r >= 0)
        *io_set = json_integer_value(json_object_get(ret, "fdset-id"));
    json_decref(ret);
    return r;
}

int vo_qemu_confine_path(VoHvInstance *vm, const char *path, bool readonly, char **ret_path,
                         char **ret_error)
{
    if (!vm->confined || !strncmp(path, "/dev/fdset/", 11)) {
        *ret_path = vo_strdup(path);
        return 0;
    }
    /* QEMU takes from the set an fd whose access mode is the one it wants,
     * and it reopens a node read-only at times (a backing layer, the end
     * of a job), so a writable node gets both. */
    int64_t set = -1;
    int r = add_fd(vm, path, O_RDONLY, &set, ret_error);
    if (r >= 0 && !readonly)
        r = add_fd(vm, path, O_RDWR, &set, ret_error);
    if (r < 0)
        return r;
    *ret_path = vo_asprintf("/dev/fdset/%lld", (long long)set);
    return 0;
}

static int confine_file(VoHvInstance *vm, json_t *node, char **ret_error)
{
    const char *path = json_string_value(json_object_get(node, "filename"));
    if (!path)
        return 0;
    _cleanup_free_ char *name = NULL;
    int r = vo_qemu_confine_path(vm, path, json_is_true(json_object_get(node, "read-only")),
                                 &name, ret_error);
    if (r >= 0)
        json_object_set_new(node, "filename", json_string(name));
    return r;
}

static int confine_secret(json_t *obj, char **ret_error)
{
    const char *file = json_string_value(json_object_get(obj, "file"));
    if (!file)
        return 0;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = vo_read_file(file, 64 << 10, &data, &len);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot read the secret %s: %s", file, strerror(-r));
    if (strlen(data) != len)
        return vo_error_set(ret_error, -EINVAL, "the secret %s is not text", file);
    json_object_del(obj, "file");
    json_object_set_new(obj, "data", json_string(data));
    explicit_bzero(data, len);
    return 0;
}

/* Nodes nest as objects ("file", "backing", ...); arrays in these
 * arguments (an rbd node's servers) hold no files. */
static int walk(VoHvInstance *vm, json_t *v, char **ret_error)
{
    if (!json_is_object(v))
        return 0;
    const char *driver = json_string_value(json_object_get(v, "driver"));
    if (driver && !strcmp(driver, "file"))
        return confine_file(vm, v, ret_error);
    const char *qom = json_string_value(json_object_get(v, "qom-type"));
    if (qom && !strcmp(qom, "secret"))
        return confine_secret(v, ret_error);
    const char *key;
    json_t *item;
    json_object_foreach(v, key, item) {
        int r = walk(vm, item, ret_error);
        if (r < 0)
            return r;
    }
    return 0;
}

int vo_qemu_confine_props(VoHvInstance *vm, json_t *props, char **ret_error)
{
    return vm->confined ? walk(vm, props, ret_error) : 0;
}

int vo_qemu_confine_command(VoHvInstance *vm, const char *cmd, json_t *args, char **ret_error)
{
    if (!args || (strcmp(cmd, "blockdev-add") && strcmp(cmd, "object-add")))
        return 0;
    return vo_qemu_confine_props(vm, args, ret_error);
}

/* Whether text (a block node's "file": its path, or a json: filename with
 * its children's) names /dev/fdset/id. */
static bool names_fdset(const char *text, json_int_t id)
{
    for (const char *at = text; at && (at = strstr(at, "/dev/fdset/")); at++) {
        char *end = NULL;
        long long n = strtoll(at + 11, &end, 10);
        if (end != at + 11 && n == id)
            return true;
    }
    return false;
}

/* The fdsets no block node uses any more (its node deleted, its medium
 * changed or ejected, its blockdev-add refused) removed: QEMU (9.1 and
 * later) keeps an fdset's fds open until remove-fd, so each would otherwise
 * hold its file, read-write, for QEMU's whole life. */
static void release_unused_fdsets(VoHvInstance *vm)
{
    json_t *sets = NULL, *nodes = NULL;
    json_t *flat = json_pack("{s:b}", "flat", 1);
    if (vo_qmp_execute(vm->qmp, "query-fdsets", NULL, QMP_TIMEOUT_MS, &sets, NULL) >= 0 &&
        json_array_size(sets) > 0 &&
        vo_qmp_execute(vm->qmp, "query-named-block-nodes", flat, QMP_TIMEOUT_MS, &nodes,
                       NULL) >= 0) {
        size_t i, j;
        json_t *set, *node;
        json_array_foreach(sets, i, set) {
            json_int_t id = json_integer_value(json_object_get(set, "fdset-id"));
            bool used = false;
            json_array_foreach(nodes, j, node)
                used = used || names_fdset(json_string_value(json_object_get(node, "file")), id);
            if (used)
                continue;
            json_t *args = json_pack("{s:I}", "fdset-id", id);
            _cleanup_free_ char *error = NULL;
            if (vo_qmp_execute(vm->qmp, "remove-fd", args, QMP_TIMEOUT_MS, NULL, &error) < 0)
                log_warn("cannot remove fdset %lld from QEMU: %s", (long long)id,
                         error ? error : "no answer");
            json_decref(args);
        }
    }
    json_decref(flat);
    json_decref(sets);
    json_decref(nodes);
}

/* Whether cmd (run, or refused when !ok) may have left an fdset unused. */
static bool may_release(const char *cmd, bool ok)
{
    static const char *const releasing[] = { "blockdev-del", "eject", "blockdev-change-medium",
                                             "blockdev-remove-medium" };
    for (size_t i = 0; i < ELEMENTSOF(releasing); i++)
        if (!strcmp(cmd, releasing[i]))
            return true;
    return !ok && !strcmp(cmd, "blockdev-add");
}

int vo_qemu_confine_execute(VoHvInstance *vm, const char *cmd, json_t *args, json_t **ret,
                            char **ret_error)
{
    if (!vm->qmp)
        return vo_error_set(ret_error, -ENOTCONN, "QEMU's monitor is not connected");
    int r = vo_qemu_confine_command(vm, cmd, args, ret_error);
    if (r >= 0)
        r = vo_qmp_execute(vm->qmp, cmd, args, QMP_TIMEOUT_MS, ret, ret_error);
    if (vm->confined && may_release(cmd, r >= 0))
        release_unused_fdsets(vm);
    return r;
}

int vo_qemu_confine_setup(VoHvDriver *d, const char *user, const char *cgroup_base,
                          const char *run_dir)
{
    if (user && *user && strcmp(user, "root")) {
        _cleanup_free_ char *error = NULL;
        int r = vo_qemu_user_resolve(user, true, &d->qemu_uid, &d->qemu_gid, &error);
        if (r < 0) {
            log_error("%s; make it, or run QEMU as root with --qemu-user root", error);
            return r;
        }
        d->qemu_user = vo_strdup(user);
        if (d->qemu_uid_first && d->qemu_uid >= d->qemu_uid_first &&
            d->qemu_uid <= d->qemu_uid_last) {
            log_error("--qemu-uid-range %u-%u holds the uid of the QEMU user '%s' (%u)",
                      (unsigned)d->qemu_uid_first, (unsigned)d->qemu_uid_last, user,
                      (unsigned)d->qemu_uid);
            return -EINVAL;
        }
        if (d->qemu_uid_first)
            log_info("each VM's QEMU runs as a uid of its own from %u-%u, group '%s' (gid %u), "
                     "in its seccomp sandbox", (unsigned)d->qemu_uid_first,
                     (unsigned)d->qemu_uid_last, user, (unsigned)d->qemu_gid);
        else
            log_info("QEMU runs as user '%s' (uid %u) in its seccomp sandbox", user,
                     (unsigned)d->qemu_uid);
        vo_qemu_uffd_repair(d); /* a post-copy's grant a killed vireod left */
        /* The run dir and its vms/ searchable by QEMU's group only (the API
         * socket in it stays root's: 0660 root:root). */
        _cleanup_free_ char *vms = vo_asprintf("%s/vms", run_dir);
        const char *dirs[] = { run_dir, vms };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
            if (vo_mkdir_p(dirs[i], 0710) < 0 || chown(dirs[i], 0, d->qemu_gid) < 0 ||
                chmod(dirs[i], 0710) < 0)
                log_warn("cannot give %s to QEMU's group: %s", dirs[i], strerror(errno));
        _cleanup_free_ char *blocked = NULL;
        if (!vo_qemu_path_reachable(vms, d->qemu_uid, d->qemu_gid, &blocked))
            log_warn("QEMU's user '%s' cannot search %s: what QEMU writes in a VM's run dir "
                     "under %s after its start (screendumps, incoming migration sockets) "
                     "fails; make it searchable (chmod o+x %s)", user, blocked, run_dir,
                     blocked);
    } else {
        log_warn("QEMU runs as root, unconfined (--qemu-user %s)", user && *user ? user : "''");
        d->qemu_uid_first = d->qemu_uid_last = 0;
    }
    if (!cgroup_base || !strcmp(cgroup_base, "off")) {
        log_info("per-VM cgroups off");
        return 0;
    }
    _cleanup_free_ char *reason = NULL;
    if (vo_cgroup_host_open(cgroup_base, &d->cgroups, &reason) < 0) {
        log_warn("no per-VM cgroups (no CPU weight or limit, no memory limit for QEMU): %s",
                 reason);
        return 0;
    }
    log_info("per-VM cgroups (%s) under %s", vo_cgroup_host_version(d->cgroups),
             vo_cgroup_host_dir(d->cgroups));
    return 0;
}
