/* test-qemu-tls.c: live migration over mutual TLS (driver.h,
 * VoHvMigrationTls; src/qemu/qemu-tls.c). The QEMU driver's against the
 * scripted QMP server (qmp-server.c): the credentials object made on each
 * side (object-add tls-creds-x509 from a 0700 dir of links to the host's
 * files, verify-peer on), the migration parameters naming it, the NBD
 * server and client using it, and its removal (parameters reset, object-del,
 * dir gone) at the end, at a cancel and after a failed start; one left
 * by an earlier vireod replaced; bad TLS settings never reach QEMU. The fake driver's: TLS recorded per op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "qemu/qemu-instance.h"
#include "qemu/qemu-migrate.h"
#include "qemu/qemu-mirror.h"
#include "qemu/qemu-tls.h"
#include "qmp-server.h"
#include "spec-resolved.h"
#include "util/util.h"

#define OK "{\"return\":{},\"id\":$ID}\n"
#define RUNNING "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n"

typedef struct {
    Server server;
    VoHvInstance vm;
} Fixture;

/* The test's dir: the VM's run dir, and the host's "cluster files". */
static char dir[64];
static char ca[128], cert[128], key[128], tls_dir[128];
static char add_client[512], add_server[512]; /* object-add's expected arguments */
static VoHvMigrationTls TLS;

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/vireo-test-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    snprintf(cert, sizeof(cert), "%s/host.crt", dir);
    snprintf(key, sizeof(key), "%s/host.key", dir);
    snprintf(tls_dir, sizeof(tls_dir), "%s/%s", dir, VO_QEMU_TLS_DIR);
    assert_int_equal(vo_write_file_atomic(ca, "ca\n", 3), 0);
    assert_int_equal(vo_write_file_atomic(cert, "cert\n", 5), 0);
    assert_int_equal(vo_write_file_atomic(key, "key\n", 4), 0);
    for (int server = 0; server < 2; server++)
        snprintf(server ? add_server : add_client, sizeof(add_client),
                 "{\"qom-type\":\"tls-creds-x509\",\"id\":\"vireo-migration-tls\",\"dir\":\"%s\","
                 "\"endpoint\":\"%s\",\"verify-peer\":true,\"sanity-check\":false}",
                 tls_dir, server ? "server" : "client");
    TLS = (VoHvMigrationTls){ .ca_cert = ca, .cert = cert, .key = key, .hostname = "h2" };
    return 0;
}

static int teardown(void **state)
{
    vo_rm_rf(dir);
    return 0;
}

static VoHvInstance *instance_open(Fixture *f, const Step *steps)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->vm.qmp_lock, NULL);
    f->vm.pidfd = -1;
    f->vm.run_dir = dir;
    f->vm.qmp = client_open(&f->server, steps);
    return &f->vm;
}

static void instance_close(Fixture *f)
{
    vo_qmp_close(f->vm.qmp);
    server_join(&f->server);
    vo_qemu_mirror_free(f->vm.mirror);
    pthread_mutex_destroy(&f->vm.qmp_lock);
}

/* The certificate dir as QEMU reads it: 0700, links to the host's files. */
static void assert_tls_dir(void)
{
    struct stat st;
    assert_int_equal(lstat(tls_dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    static const struct {
        const char *name;
        const char *target;
    } want[] = { { "ca-cert.pem", ca },       { "server-cert.pem", cert },
                 { "server-key.pem", key },    { "client-cert.pem", cert },
                 { "client-key.pem", key } };
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        _cleanup_free_ char *link = vo_asprintf("%s/%s", tls_dir, want[i].name);
        char target[256];
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        assert_true(n > 0);
        target[n] = 0;
        assert_string_equal(target, want[i].target);
    }
}

static void assert_no_tls_dir(void) { assert_int_equal(access(tls_dir, F_OK), -1); }

#define RESET_AND_DEL                                                                         \
    { .expect = "migrate-set-parameters", .args = "{\"tls-creds\":\"\",\"tls-hostname\":\"\"}", \
      .send = { OK } },                                                                       \
    { .expect = "object-del", .args = "{\"id\":\"vireo-migration-tls\"}", .send = { OK } }

#define CAPS_NO_MIRROR                                                                        \
    { .expect = "migrate-set-capabilities",                                                   \
      .args = "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"                 \
              "{\"capability\":\"auto-converge\",\"state\":false},"                            \
              "{\"capability\":\"postcopy-ram\",\"state\":false},"                             \
              "{\"capability\":\"pause-before-switchover\",\"state\":false}]}",                \
      .send = { OK } }

/* Source, memory only: the client credentials before the parameters that
 * name them (with the destination's name); a cancel removes them; the
 * failed finish then only resumes. A second TLS migration makes them
 * again; a start QEMU refuses removes what it made. */
static void test_source(void **state)
{
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-status", .send = { RUNNING } },
        CAPS_NO_MIRROR,
        { .expect = "object-add", .args = add_client, .send = { OK } },
        { .expect = "migrate-set-parameters",
          .args = "{\"max-bandwidth\":134217728,\"max-postcopy-bandwidth\":0,\"downtime-limit\":300,"
                  "\"cpu-throttle-initial\":20,\"cpu-throttle-increment\":10,"
                  "\"cpu-throttle-tailslow\":false,"
                  "\"tls-creds\":\"vireo-migration-tls\",\"tls-hostname\":\"h2\"}",
          .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"tcp:10.0.0.2:49152\"}", .send = { OK } },
        { .expect = "migrate_cancel", .send = { OK } },
        RESET_AND_DEL,
        { .expect = "cont", .send = { OK } },
        /* Again, without a host name (the URI's address is checked); QEMU
         * refuses the migrate: what this start made goes. */
        { .expect = "query-status", .send = { RUNNING } },
        CAPS_NO_MIRROR,
        { .expect = "object-add", .args = add_client, .send = { OK } },
        { .expect = "migrate-set-parameters",
          .args = "{\"max-bandwidth\":134217728,\"max-postcopy-bandwidth\":0,\"downtime-limit\":300,"
                  "\"cpu-throttle-initial\":20,\"cpu-throttle-increment\":10,"
                  "\"cpu-throttle-tailslow\":false,"
                  "\"tls-creds\":\"vireo-migration-tls\",\"tls-hostname\":\"\"}",
          .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"tcp:10.0.0.2:49152\"}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Failed to connect\"},"
                    "\"id\":$ID}\n" } },
        RESET_AND_DEL,
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    VoHvMigrationOptions opts = { .tls = &TLS };
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), 0);
    assert_true(vo_qemu_tls_active(vm));
    assert_tls_dir();
    assert_int_equal(vo_qemu_migrate_cancel(vm, &error), 0);
    assert_false(vo_qemu_tls_active(vm));
    assert_no_tls_dir();
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_null(error);

    VoHvMigrationTls no_name = TLS;
    no_name.hostname = NULL;
    opts.tls = &no_name;
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), -EIO);
    assert_non_null(strstr(error, "Failed to connect"));
    free(error);
    assert_false(vo_qemu_tls_active(vm));
    assert_no_tls_dir();
    instance_close(&f);
}

/* Destination with local disks: the server credentials and tls-creds
 * before migrate-incoming (as migrate_prepare does), the NBD server with
 * them; the end stops the server, removes them, then resumes the VM. */
static void test_destination(void **state)
{
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "object-add", .args = add_server, .send = { OK } },
        { .expect = "migrate-set-parameters", .args = "{\"tls-creds\":\"vireo-migration-tls\"}",
          .send = { OK } },
        { .expect = "migrate-incoming",
          .args = "{\"uri\":\"tcp:10.0.0.2:49152\",\"exit-on-error\":false}", .send = { OK } },
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"late-block-activate\",\"state\":true}]}",
          .send = { OK } },
        { .expect = "nbd-server-start",
          .args = "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"10.0.0.2\",\"port\":"
                  "\"49153\"}},\"tls-creds\":\"vireo-migration-tls\"}",
          .send = { OK } },
        { .expect = "block-export-add",
          .args = "{\"type\":\"nbd\",\"id\":\"vireo-export-disk0\",\"node-name\":\"disk0\","
                  "\"name\":\"disk0\",\"writable\":true}",
          .send = { OK } },
        { .expect = "nbd-server-stop", .send = { OK } },
        { .expect = "cont", .send = { OK } },
        { .expect = "announce-self",
          .args = "{\"initial\":50,\"max\":550,\"rounds\":5,\"step\":100}",
          .send = { OK } },
        /* No post-copy under way (it would keep them for a recovery). */
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"completed\"},\"id\":$ID}\n" } },
        RESET_AND_DEL, /* after cont: the guest does not wait for it */
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    pthread_mutex_lock(&vm->qmp_lock);
    assert_int_equal(vo_qemu_tls_incoming(vm, &TLS, &error), 0);
    pthread_mutex_unlock(&vm->qmp_lock);
    assert_int_equal(vo_qemu_migrate_incoming(vm, "tcp:10.0.0.2:49152", false, &error), 0);
    assert_tls_dir();
    VoHvMirrorDisk disk = { .slot = 0 };
    VoHvMirrorPlan plan = { .uri = "tcp:10.0.0.2:49153", .disks = &disk, .n_disks = 1,
                            .tls = &TLS };
    assert_int_equal(vo_qemu_mirror_export(vm, &plan, &error), 0);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, true, &error),
                     0);
    assert_null(error);
    assert_false(vo_qemu_tls_active(vm));
    assert_no_tls_dir();
    instance_close(&f);
}

#define JOB(n, status) "{\"id\":\"vireo-mirror-disk" #n "\",\"type\":\"mirror\",\"status\":\"" status "\"}"
#define JOB_ERR(n) "{\"id\":\"vireo-mirror-disk" #n "\",\"type\":\"mirror\",\"status\":\"concluded\",\"error\":\"Operation cancelled\"}"

/* Source with a local disk: the mirror's NBD client made with the client
 * credentials (and the destination's name); the memory migration reuses
 * them; a cancel in the memory phase ends the mirror, then removes them. */
static void test_source_mirror(void **state)
{
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "object-add", .args = add_client, .send = { OK } },
        { .expect = "blockdev-add",
          .args = "{\"driver\":\"nbd\",\"node-name\":\"vireo-nbd-disk0\",\"server\":"
                  "{\"host\":\"10.0.0.2\",\"port\":\"49153\",\"type\":\"inet\"},\"export\":"
                  "\"disk0\",\"tls-creds\":\"vireo-migration-tls\",\"tls-hostname\":\"h2\"}",
          .send = { OK } },
        { .expect = "blockdev-mirror",
          .args = "{\"job-id\":\"vireo-mirror-disk0\",\"device\":\"disk0\",\"target\":"
                  "\"vireo-nbd-disk0\",\"sync\":\"full\",\"copy-mode\":\"write-blocking\","
                  "\"auto-dismiss\":false}",
          .send = { OK } },
        { .expect = "query-status", .send = { RUNNING } },
        { .expect = "query-jobs", .send = { "{\"return\":[" JOB(0, "ready") "],\"id\":$ID}\n" } },
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"
                  "{\"capability\":\"auto-converge\",\"state\":false},"
                  "{\"capability\":\"postcopy-ram\",\"state\":false},"
                  "{\"capability\":\"pause-before-switchover\",\"state\":true}]}",
          .send = { OK } },
        /* No second object-add. */
        { .expect = "migrate-set-parameters",
          .args = "{\"max-bandwidth\":134217728,\"max-postcopy-bandwidth\":0,\"downtime-limit\":300,"
                  "\"cpu-throttle-initial\":20,\"cpu-throttle-increment\":10,"
                  "\"cpu-throttle-tailslow\":false,"
                  "\"tls-creds\":\"vireo-migration-tls\",\"tls-hostname\":\"h2\"}",
          .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"tcp:10.0.0.2:49152\"}", .send = { OK } },
        { .expect = "migrate_cancel", .send = { OK } },
        { .expect = "query-jobs", .send = { "{\"return\":[" JOB(0, "ready") "],\"id\":$ID}\n" } },
        /* The guest's vCPUs stop while the job is cancelled (qemu-mirror.c). */
        { .expect = "query-status", .send = { RUNNING } },
        { .expect = "stop", .send = { OK } },
        { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk0\",\"force\":true}",
          .send = { OK } },
        { .expect = "query-jobs", .send = { "{\"return\":[" JOB_ERR(0) "],\"id\":$ID}\n" } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk0\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk0\"}", .send = { OK } },
        { .expect = "cont", .send = { OK } },
        RESET_AND_DEL,
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    VoHvMirrorDisk disk = { .slot = 0 };
    VoHvMirrorPlan plan = { .uri = "tcp:10.0.0.2:49153", .disks = &disk, .n_disks = 1,
                            .tls = &TLS };
    assert_int_equal(vo_qemu_mirror_start(vm, &plan, &error), 0);
    assert_true(vo_qemu_tls_active(vm));
    VoHvMigrationOptions opts = { .tls = &TLS };
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), 0);
    assert_int_equal(vo_qemu_migrate_cancel(vm, &error), 0);
    assert_null(error);
    assert_false(vo_qemu_tls_active(vm));
    assert_no_tls_dir();
    instance_close(&f);
}

/* Failures: a mirror whose NBD connection fails (the peer's certificate
 * refused) leaves no credentials; an object-add QEMU refuses leaves no
 * dir; bad TLS settings never reach QEMU. */
static void test_failures(void **state)
{
    const Step steps[] = {
        GREETING, CAPS,
        { .expect = "object-add", .args = add_client, .send = { OK } },
        { .expect = "blockdev-add",
          .args = "{\"driver\":\"nbd\",\"node-name\":\"vireo-nbd-disk0\",\"server\":"
                  "{\"host\":\"10.0.0.2\",\"port\":\"49153\",\"type\":\"inet\"},\"export\":"
                  "\"disk0\",\"tls-creds\":\"vireo-migration-tls\",\"tls-hostname\":\"h2\"}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Certificate does not "
                    "match the hostname h2\"},\"id\":$ID}\n" } },
        { .expect = "query-jobs", .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { .expect = "query-jobs", .send = { "{\"return\":[],\"id\":$ID}\n" } },
        RESET_AND_DEL,
        /* A destination whose object-add fails (no object of ours is in the
         * way: the object-del finds none). */
        { .expect = "object-add", .args = add_server,
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Unable to access "
                    "credentials\"},\"id\":$ID}\n" } },
        { .expect = "object-del", .args = "{\"id\":\"vireo-migration-tls\"}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"object "
                    "'vireo-migration-tls' not found\"},\"id\":$ID}\n" } },
        /* One left by an earlier vireod: deleted, then made again. */
        { .expect = "object-add", .args = add_server,
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"attempt to add "
                    "duplicate property 'vireo-migration-tls'\"},\"id\":$ID}\n" } },
        { .expect = "object-del", .args = "{\"id\":\"vireo-migration-tls\"}", .send = { OK } },
        { .expect = "object-add", .args = add_server, .send = { OK } },
        { .expect = "migrate-set-parameters", .args = "{\"tls-creds\":\"vireo-migration-tls\"}",
          .send = { OK } },
        RESET_AND_DEL,
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    VoHvMirrorDisk disk = { .slot = 0 };
    VoHvMirrorPlan plan = { .uri = "tcp:10.0.0.2:49153", .disks = &disk, .n_disks = 1,
                            .tls = &TLS };
    assert_int_equal(vo_qemu_mirror_start(vm, &plan, &error), -EIO);
    assert_non_null(strstr(error, "hostname h2"));
    free(error);
    error = NULL;
    assert_null(vm->mirror);
    assert_false(vo_qemu_tls_active(vm));
    assert_no_tls_dir();
    pthread_mutex_lock(&vm->qmp_lock);
    assert_int_equal(vo_qemu_tls_incoming(vm, &TLS, &error), -EIO);
    pthread_mutex_unlock(&vm->qmp_lock);
    assert_non_null(strstr(error, "Unable to access credentials"));
    free(error);
    error = NULL;
    assert_false(vo_qemu_tls_active(vm));
    assert_no_tls_dir();
    pthread_mutex_lock(&vm->qmp_lock);
    assert_int_equal(vo_qemu_tls_incoming(vm, &TLS, &error), 0);
    assert_true(vo_qemu_tls_active(vm));
    assert_tls_dir();
    assert_int_equal(vo_qemu_tls_remove(vm, &error), 0);
    pthread_mutex_unlock(&vm->qmp_lock);
    assert_no_tls_dir();

    /* Never sent: a relative path, a missing file, a client on a unix:
     * socket without the destination's name. */
    VoHvMigrationTls bad = TLS;
    bad.key = "host.key";
    VoHvMigrationOptions opts = { .tls = &bad };
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), -EINVAL);
    assert_non_null(strstr(error, "absolute path"));
    free(error);
    error = NULL;
    bad.key = "/nonexistent/host.key";
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), -EINVAL);
    assert_non_null(strstr(error, "/nonexistent/host.key"));
    free(error);
    error = NULL;
    bad = TLS;
    bad.hostname = NULL;
    assert_int_equal(vo_qemu_migrate_start(vm, "unix:/run/x/mig.sock", &opts, &error), -EINVAL);
    assert_non_null(strstr(error, "host name"));
    free(error);
    error = NULL;
    plan.tls = &bad;
    plan.uri = "unix:/run/x/nbd.sock";
    assert_int_equal(vo_qemu_mirror_start(vm, &plan, &error), -EINVAL);
    free(error);
    error = NULL;
    /* The server side needs no name. */
    assert_int_equal(vo_qemu_tls_check(&bad, "unix:/run/x/mig.sock", false, &error), 0);
    instance_close(&f);
}

/* ---- the fake driver ---- */

static const char FAKE_SPEC[] =
    "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b12\",\"name\":\"tls\",\"kernel\":{\"image\":\"k\"},"
    "\"memory_mib\":64,\"disks\":[{\"volume\":\"d/a\"}]}";

/* A symlink at the certificate dir's name (a confined QEMU may write in its
 * run dir) goes itself; the files where it points stay. */
static void test_remove_symlinked_dir(void **state)
{
    _cleanup_free_ char *elsewhere = vo_asprintf("%s/elsewhere", dir);
    _cleanup_free_ char *victim = vo_asprintf("%s/ca-cert.pem", elsewhere);
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    assert_int_equal(vo_write_file_atomic(victim, "x", 1), 0);
    assert_int_equal(symlink(elsewhere, tls_dir), 0);
    vo_qemu_tls_dir_remove(dir);
    assert_no_tls_dir();
    assert_int_equal(access(victim, F_OK), 0);
    assert_int_equal(vo_rm_rf(elsewhere), 0);
}

static void test_fake(void **state)
{
    _cleanup_free_ char *faults = vo_asprintf("%s/faults", dir);
    assert_int_equal(vo_mkdir_p(faults, 0700), 0);
    setenv("VIREO_FAKE_FAULTS", faults, 1);
    _cleanup_free_ char *src_dir = vo_asprintf("%s/src", dir);
    _cleanup_free_ char *dst_dir = vo_asprintf("%s/dst", dir);
    VoVmSpec *spec = test_spec_resolved(FAKE_SPEC);
    char *error = NULL, *layout = NULL;
    VoHvDriver *d = NULL;
    assert_int_equal(vo_fake_driver_new(&d), 0);
    VoHvInstance *src = NULL, *dst = NULL;
    assert_int_equal(d->start(d, spec, src_dir, NULL, &src, &error), 0);
    assert_int_equal(d->layout(src, &layout, &error), 0);
    /* Bad files are refused as QEMU's are. */
    VoHvMigrationTls bad = TLS;
    bad.cert = "relative.crt";
    assert_int_equal(d->migrate_prepare(d, spec, layout, dst_dir, NULL, "tcp:127.0.0.1:1", false, &bad,
                                        &dst, &error),
                     -EINVAL);
    free(error);
    error = NULL;
    assert_int_equal(d->migrate_prepare(d, spec, layout, dst_dir, NULL, "tcp:127.0.0.1:1", false, &TLS,
                                        &dst, &error),
                     0);
    VoHvMirrorDisk disk = { .slot = 0 };
    VoHvMirrorPlan plan = { .uri = "tcp:127.0.0.1:2", .disks = &disk, .n_disks = 1,
                            .tls = &TLS };
    assert_int_equal(d->mirror_export(dst, &plan, &error), 0);
    assert_int_equal(d->mirror_start(src, &plan, &error), 0);
    VoHvMirrorProgress p;
    for (int i = 0; i < 4; i++)
        assert_int_equal(d->mirror_query(src, &p), 0);
    VoHvMigrationOptions opts = { .tls = &TLS };
    assert_int_equal(d->migrate_start(src, "tcp:127.0.0.1:1", &opts, &error), 0);
    _cleanup_free_ char *src_rec = vo_asprintf("%s/fake-migration-tls", src_dir);
    _cleanup_free_ char *dst_rec = vo_asprintf("%s/fake-migration-tls", dst_dir);
    _cleanup_free_ char *src_text = NULL, *dst_text = NULL, *want_src = NULL, *want_dst = NULL;
    size_t len;
    assert_int_equal(vo_read_file(src_rec, 4096, &src_text, &len), 0);
    assert_int_equal(vo_read_file(dst_rec, 4096, &dst_text, &len), 0);
    want_src = vo_asprintf("mirror_start %s %s %s h2\nmigrate_start %s %s %s h2\n", ca, cert, key,
                           ca, cert, key);
    want_dst = vo_asprintf("migrate_prepare %s %s %s h2\nmirror_export %s %s %s h2\n", ca, cert,
                           key, ca, cert, key);
    assert_string_equal(src_text, want_src);
    assert_string_equal(dst_text, want_dst);
    d->release(src);
    d->release(dst);
    free(layout);
    vo_vm_spec_free(spec);
    free(d->kvm_reason);
    free(d);
    unsetenv("VIREO_FAKE_FAULTS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_destination),
        cmocka_unit_test(test_source_mirror),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_fake),
        cmocka_unit_test(test_remove_symlinked_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
