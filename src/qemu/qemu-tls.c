/* qemu-tls.c: mutual TLS for the QEMU driver's live-migration streams, the
 * memory stream and the local disks' NBD connections (see qemu-tls.h and
 * docs/internals.md, "Live migration entry points"). QEMU reads x509
 * credentials from a directory of fixed names (ca-cert.pem, and
 * server-cert.pem/server-key.pem or client-cert.pem/client-key.pem for the
 * endpoint), so the VM's run dir gets one (mode 0700) of symbolic links to
 * the host's cluster files; a tls-creds-x509 object made at runtime
 * (object-add, verify-peer on: each end checks the other's certificate
 * against the cluster CA) reads it, and goes (object-del) with the
 * directory when the migration ends or is cancelled. */
#include "qemu/qemu-tls.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu/qemu-confine.h"
#include "qemu/qemu-instance.h"
#include "util/util.h"

/* The links of the certificate dir: (name, which file of tls). */
enum { CA, CERT, KEY };
static const struct {
    const char *name;
    int file;
} links[] = {
    { "ca-cert.pem", CA },      { "server-cert.pem", CERT }, { "server-key.pem", KEY },
    { "client-cert.pem", CERT }, { "client-key.pem", KEY },
};

static const char *tls_file(const VoHvMigrationTls *tls, int file)
{
    return file == CA ? tls->ca_cert : file == CERT ? tls->cert : tls->key;
}

int vo_qemu_tls_check(const VoHvMigrationTls *tls, const char *uri, bool client,
                      char **ret_error)
{
    if (!tls)
        return 0;
    static const char *const what[] = { "CA certificate", "certificate", "key" };
    for (int f = CA; f <= KEY; f++) {
        const char *path = tls_file(tls, f);
        if (!path || path[0] != '/')
            return vo_error_set(ret_error, -EINVAL,
                                "the migration's TLS %s must be an absolute path (got '%s')",
                                what[f], path ? path : "");
        if (access(path, R_OK) < 0)
            return vo_error_set(ret_error, -EINVAL, "the migration's TLS %s %s: %s", what[f],
                                path, strerror(errno));
    }
    if (client && uri && !strncmp(uri, "unix:", 5) && !(tls->hostname && tls->hostname[0]))
        return vo_error_set(ret_error, -EINVAL,
                            "a TLS migration over a unix: socket needs the host name the "
                            "destination's certificate carries (tls hostname)");
    return 0;
}

void vo_qemu_tls_dir_remove(const char *run_dir)
{
    if (!run_dir)
        return;
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", run_dir, VO_QEMU_TLS_DIR);
    /* Through its fd: a symlink put there (by a confined QEMU) goes itself,
     * nothing where it points. */
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    for (size_t i = 0; dfd >= 0 && i < ELEMENTSOF(links); i++)
        (void)unlinkat(dfd, links[i].name, 0);
    if (rmdir(dir) < 0 && errno == ENOTDIR)
        (void)unlink(dir);
}

/* A copy of file, named name in the dir dfd, for QEMU's user (-1 with errno
 * on failure): made new (O_EXCL, O_NOFOLLOW) through the dir's fd, since a
 * confined QEMU may write in the run dir around it. */
static int copy_for_qemu(VoHvInstance *vm, int dfd, const char *file, const char *name)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = vo_read_file(file, 1 << 20, &text, &len);
    _cleanup_close_ int fd = r < 0 ? -1
        : openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (r >= 0 && fd < 0)
        r = -errno;
    for (size_t off = 0; r >= 0 && off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0 && errno != EINTR)
            r = n < 0 ? -errno : -EIO;
        off += n > 0 ? (size_t)n : 0;
    }
    if (r >= 0 && fchown(fd, vm->uid, vm->driver->qemu_gid) < 0)
        r = -errno;
    if (text)
        explicit_bzero(text, len);
    errno = -r;
    return r < 0 ? -1 : 0;
}

/* The certificate dir of tls in the run dir, made afresh. Everything in it
 * is made through the fd of the dir made here: a confined QEMU's user may
 * write in the run dir, and could swap the name for a symlink. */
static int make_dir(VoHvInstance *vm, const VoHvMigrationTls *tls, char **ret_dir,
                    char **ret_error)
{
    vo_qemu_tls_dir_remove(vm->run_dir); /* a stale one of a crashed attempt */
    _cleanup_free_ char *dir = vo_asprintf("%s/%s", vm->run_dir, VO_QEMU_TLS_DIR);
    _cleanup_close_ int dfd = vo_qemu_mkdir_fresh(dir);
    int r = dfd < 0 ? dfd : 0;
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot make %s: %s", dir, strerror(-r));
    for (size_t i = 0; i < ELEMENTSOF(links); i++) {
        /* A confined QEMU reads them as its own user: copies it owns then. */
        if (vm->confined ? copy_for_qemu(vm, dfd, tls_file(tls, links[i].file), links[i].name) < 0
                         : symlinkat(tls_file(tls, links[i].file), dfd, links[i].name) < 0) {
            r = vo_error_set(ret_error, -errno, "cannot make %s/%s: %s", dir, links[i].name,
                                 strerror(errno));
            vo_qemu_tls_dir_remove(vm->run_dir);
            return r;
        }
    }
    if (vm->confined && fchown(dfd, vm->uid, vm->driver->qemu_gid) < 0) {
        r = vo_error_set(ret_error, -errno, "cannot give %s to QEMU's user: %s", dir,
                             strerror(errno));
        vo_qemu_tls_dir_remove(vm->run_dir);
        return r;
    }
    *ret_dir = TAKE_PTR(dir);
    return 0;
}

/* The credentials object for this side (endpoint server or client), made
 * unless it exists; the other endpoint's existing is refused. */
static int ensure(VoHvInstance *vm, const VoHvMigrationTls *tls, bool server, char **ret_error)
{
    if (vm->tls_object) {
        if (vm->tls_server == server)
            return 0;
        return vo_error_set(ret_error, -EBUSY,
                            "this VM holds migration TLS credentials as a %s already",
                            vm->tls_server ? "destination" : "source");
    }
    int r = vo_qemu_tls_check(tls, NULL, false, ret_error);
    _cleanup_free_ char *dir = NULL;
    if (r < 0 || (r = make_dir(vm, tls, &dir, ret_error)) < 0)
        return r;
    /* sanity-check off: QEMU would refuse the cluster's host certificate as
     * a server's (its key usage is digitalSignature only, right for EC
     * keys, where QEMU wants keyEncipherment too); that check reads only
     * our own files: the peer's certificate is still verified against the
     * CA (verify-peer), with its name on the client side. */
    json_t *args = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "qom-type", "tls-creds-x509",
                             "id", VO_QEMU_TLS_ID, "dir", dir, "endpoint",
                             server ? "server" : "client", "verify-peer", 1, "sanity-check", 0);
    _cleanup_free_ char *error = NULL;
    r = vo_qemu_command(vm, "object-add", args, NULL, &error);
    if (r < 0) {
        /* One an earlier vireod left (what this instance made is known only
         * in memory, so a re-attached VM may carry one): replaced, once. */
        json_t *del = json_pack("{s:s}", "id", VO_QEMU_TLS_ID);
        if (vo_qemu_command(vm, "object-del", del, NULL, NULL) >= 0) {
            free(TAKE_PTR(error));
            r = vo_qemu_command(vm, "object-add", args, NULL, &error);
        }
        json_decref(del);
    }
    json_decref(args);
    if (r < 0) {
        if (ret_error)
            *ret_error = TAKE_PTR(error);
        vo_qemu_tls_dir_remove(vm->run_dir);
        return r;
    }
    vm->tls_object = true;
    vm->tls_server = server;
    return 0;
}

int vo_qemu_tls_incoming(VoHvInstance *vm, const VoHvMigrationTls *tls, char **ret_error)
{
    if (!tls)
        return 0;
    int r = ensure(vm, tls, true, ret_error);
    if (r < 0)
        return r;
    json_t *params = json_pack("{s:s}", "tls-creds", VO_QEMU_TLS_ID);
    r = vo_qemu_command(vm, "migrate-set-parameters", params, NULL, ret_error);
    json_decref(params);
    return r;
}

int vo_qemu_tls_outgoing(VoHvInstance *vm, const VoHvMigrationTls *tls, json_t *params,
                         char **ret_error)
{
    if (!tls)
        return 0;
    int r = ensure(vm, tls, false, ret_error);
    if (r < 0)
        return r;
    /* tls-hostname "": QEMU checks the certificate against the URI's host. */
    json_object_set_new(params, "tls-creds", json_string(VO_QEMU_TLS_ID));
    json_object_set_new(params, "tls-hostname", json_string(tls->hostname ?: ""));
    return 0;
}

int vo_qemu_tls_nbd(VoHvInstance *vm, const VoHvMigrationTls *tls, bool server, json_t *args,
                    char **ret_error)
{
    if (!tls)
        return 0;
    int r = ensure(vm, tls, server, ret_error);
    if (r < 0)
        return r;
    json_object_set_new(args, "tls-creds", json_string(VO_QEMU_TLS_ID));
    /* Without a name the client checks the server's address. */
    if (!server && tls->hostname && tls->hostname[0])
        json_object_set_new(args, "tls-hostname", json_string(tls->hostname));
    return 0;
}

bool vo_qemu_tls_active(const VoHvInstance *vm) { return vm->tls_object; }

int vo_qemu_tls_remove(VoHvInstance *vm, char **ret_error)
{
    if (!vm->tls_object)
        return 0;
    /* Plain again, so no later migration names the object gone; a stream
     * still up keeps its own reference to the credentials. */
    json_t *params = json_pack("{s:s, s:s}", "tls-creds", "", "tls-hostname", "");
    (void)vo_qemu_command(vm, "migrate-set-parameters", params, NULL, NULL);
    json_decref(params);
    json_t *args = json_pack("{s:s}", "id", VO_QEMU_TLS_ID);
    _cleanup_free_ char *error = NULL;
    int r = vo_qemu_command(vm, "object-del", args, NULL, &error);
    json_decref(args);
    if (r < 0) {
        log_warn("the migration's TLS credentials stay in QEMU (pid %d): %s", (int)vm->pid,
                 error);
        if (ret_error)
            *ret_error = TAKE_PTR(error);
    }
    vm->tls_object = false;
    vo_qemu_tls_dir_remove(vm->run_dir);
    return r;
}
