/* test-qemu-migrate.c: the drivers' live-migration entry points. The QEMU
 * driver's against the scripted QMP server (qmp-server.c): what each entry
 * point sends, and how it reads QEMU's answers (query-migrate in each
 * status, the layout probe). The fake driver's: a whole migration played
 * out, a failure and a cancel, with its fault injection. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "qemu/qemu-instance.h"
#include "qemu/qemu-migrate.h"
#include "qemu/qemu-uffd.h"
#include "qmp-server.h"
#include "spec-resolved.h"
#include "util/cancel.h"
#include "util/unix-socket.h"
#include "util/util.h"

#define OK "{\"return\":{},\"id\":$ID}\n"

typedef struct {
    Server server;
    VoHvInstance vm;
    char dir[64];
} Fixture;

/* A QEMU instance whose monitor is the scripted server (no process). */
static VoHvInstance *instance_open(Fixture *f, const Step *steps)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vireo-test-migrate-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    pthread_mutex_init(&f->vm.qmp_lock, NULL);
    f->vm.pidfd = -1;
    f->vm.run_dir = f->dir;
    f->vm.qmp = client_open(&f->server, steps);
    return &f->vm;
}

static void instance_close(Fixture *f)
{
    vo_qmp_close(f->vm.qmp);
    server_join(&f->server);
    vo_qemu_layout_free(f->vm.layout);
    pthread_mutex_destroy(&f->vm.qmp_lock);
    _cleanup_free_ char *layout = vo_asprintf("%s/%s", f->dir, VO_QEMU_LAYOUT_FILE);
    unlink(layout);
    rmdir(f->dir);
}

static void test_incoming(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "migrate-incoming",
          .args = "{\"uri\":\"tcp:127.0.0.1:49152\",\"exit-on-error\":false}", .send = { OK } },
        { .expect = "migrate-incoming", .args = "{\"uri\":\"unix:/run/x/mig.sock\","
                                                "\"exit-on-error\":false}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Failed to bind "
                    "socket\"},\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_migrate_incoming(vm, "tcp:127.0.0.1:49152", false, &error), 0);
    assert_int_equal(vo_qemu_migrate_incoming(vm, "unix:/run/x/mig.sock", false, &error), -EIO);
    assert_non_null(strstr(error, "Failed to bind socket"));
    free(error);
    /* Bad URIs never reach QEMU. */
    static const char *const bad[] = { "tcp:127.0.0.1", "tcp::1", "unix:rel.sock", "exec:cat",
                                       "tcp:h:12x", "" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        error = NULL;
        assert_int_equal(vo_qemu_migrate_incoming(vm, bad[i], false, &error), -EINVAL);
        assert_non_null(strstr(error, "tcp:HOST:PORT"));
        free(error);
    }
    instance_close(&f);
}

static void test_start(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        /* With options: capabilities, then parameters, then migrate. */
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n" } },
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"
                  "{\"capability\":\"auto-converge\",\"state\":true},"
                  "{\"capability\":\"postcopy-ram\",\"state\":false},"
                  "{\"capability\":\"pause-before-switchover\",\"state\":false}]}",
          .send = { OK } },
        { .expect = "migrate-set-parameters",
          /* force_converge: the throttle starts at 50%, climbs 25% a round,
           * tail-slow */
          .args = "{\"max-bandwidth\":67108864,\"max-postcopy-bandwidth\":67108864,"
                  "\"downtime-limit\":500,"
                  "\"cpu-throttle-initial\":50,\"cpu-throttle-increment\":25,"
                  "\"cpu-throttle-tailslow\":true}", .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"tcp:10.0.0.2:49152\"}", .send = { OK } },
        /* Defaults: auto-converge and post-copy off, QEMU's default parameters
         * (set again: what an earlier attempt set would carry over). A second
         * start while the first switches over (vCPUs stopped) is refused. */
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"paused\",\"running\":false},\"id\":$ID}\n" } },
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"
                  "{\"capability\":\"auto-converge\",\"state\":false},"
                  "{\"capability\":\"postcopy-ram\",\"state\":false},"
                  "{\"capability\":\"pause-before-switchover\",\"state\":false}]}",
          .send = { OK } },
        { .expect = "migrate-set-parameters",
          .args = "{\"max-bandwidth\":134217728,\"max-postcopy-bandwidth\":0,"
                  "\"downtime-limit\":300,"
                  "\"cpu-throttle-initial\":20,\"cpu-throttle-increment\":10,"
                  "\"cpu-throttle-tailslow\":false}", .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"unix:/run/x/mig.sock\"}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"There's a migration "
                    "process in progress\"},\"id\":$ID}\n" } },
        /* The first migration fails: the source runs again, as it did. */
        { .expect = "cont", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    VoHvMigrationOptions opts = { .max_bandwidth = 64 << 20, .downtime_limit_ms = 500,
                                  .auto_converge = true, .force_converge = true };
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), 0);
    assert_true(vm->migration_was_running);
    assert_int_equal(vo_qemu_migrate_start(vm, "unix:/run/x/mig.sock", NULL, &error), -EIO);
    assert_true(vm->migration_was_running); /* the refused start changed nothing */
    assert_non_null(strstr(error, "migration process in progress"));
    free(error);
    error = NULL;
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_null(error);
    instance_close(&f);
}

/* Post-copy: the capability on both sides (the destination's before it
 * listens; a host without userfaultfd refuses it), the source's stop before
 * the switch-over, the switch to post-copy and the continue. */
static void test_post_copy(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true}]}",
          .send = { OK } },
        { .expect = "migrate-incoming",
          .args = "{\"uri\":\"tcp:127.0.0.1:49152\",\"exit-on-error\":false}", .send = { OK } },
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"postcopy-ram\",\"state\":true}]}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Postcopy is not "
                    "supported\"},\"id\":$ID}\n" } },
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n" } },
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"
                  "{\"capability\":\"auto-converge\",\"state\":true},"
                  "{\"capability\":\"postcopy-ram\",\"state\":true},"
                  "{\"capability\":\"pause-before-switchover\",\"state\":true}]}",
          .send = { OK } },
        { .expect = "migrate-set-parameters",
          .args = "{\"max-bandwidth\":134217728,\"max-postcopy-bandwidth\":0,"
                  "\"downtime-limit\":300,"
                  "\"cpu-throttle-initial\":20,\"cpu-throttle-increment\":10,"
                  "\"cpu-throttle-tailslow\":false}", .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"tcp:10.0.0.2:49152\"}", .send = { OK } },
        { .expect = "migrate-start-postcopy", .send = { OK } },
        { .expect = "migrate-continue", .args = "{\"state\":\"pre-switchover\"}",
          .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    /* Not allowed by the migrate: refused without asking QEMU. */
    assert_int_equal(vo_qemu_migrate_start_post_copy(vm, &error), -EINVAL);
    assert_non_null(strstr(error, "post-copy allowed"));
    free(error);
    error = NULL;
    assert_int_equal(vo_qemu_migrate_incoming(vm, "tcp:127.0.0.1:49152", true, &error), 0);
    assert_int_equal(vo_qemu_migrate_incoming(vm, "tcp:127.0.0.1:49153", true, &error),
                     -EOPNOTSUPP);
    assert_non_null(strstr(error, "cannot take a post-copy migration"));
    assert_non_null(strstr(error, "Postcopy is not supported"));
    free(error);
    error = NULL;
    VoHvMigrationOptions opts = { .auto_converge = true, .post_copy = true };
    assert_int_equal(vo_qemu_migrate_start(vm, "tcp:10.0.0.2:49152", &opts, &error), 0);
    assert_int_equal(vo_qemu_migrate_start_post_copy(vm, &error), 0);
    assert_int_equal(vo_qemu_migrate_continue(vm, &error), 0);
    assert_null(error);
    instance_close(&f);
}

/* Post-copy's states as the query reads them: a broken stream
 * (postcopy-paused) is paused, not flowing; a recovery under way
 * (postcopy-recover-setup, postcopy-recover: QEMU 9.1 and later) is
 * recovering, not paused; then the recovery's commands: migrate-recover at
 * the destination, migrate with resume at the source, migrate-pause (the
 * first and last out of band: a destination running the guest may block
 * its main loop on a missing page); and a destination's TLS credentials
 * kept while its post-copy runs. */
static void test_post_copy_recovery(void **state)
{
    (void)state;
    static const struct {
        const char *word;
        bool post_copy, paused, recovering;
    } words[] = {
        { "active", false, false, false },
        { "postcopy-active", true, false, false },
        { "postcopy-paused", true, true, false },
        { "postcopy-recover-setup", true, false, true },
        { "postcopy-recover", true, false, true },
        { "completed", false, false, false },
    };
    for (size_t i = 0; i < ELEMENTSOF(words); i++) {
        VoHvMigrationProgress p = { 0 };
        assert_int_equal(vo_qemu_migration_status_read(words[i].word, &p), 0);
        assert_int_equal(p.post_copy, words[i].post_copy);
        assert_int_equal(p.post_copy_paused, words[i].paused);
        assert_int_equal(p.post_copy_recovering, words[i].recovering);
        assert_int_equal(p.status, strcmp(words[i].word, "completed")
                                       ? VO_HV_MIGRATION_ACTIVE
                                       : VO_HV_MIGRATION_COMPLETED);
    }
    VoHvMigrationProgress p = { 0 };
    assert_int_equal(vo_qemu_migration_status_read("postcopy-something", &p), -EINVAL);
    /* QEMU 10.2's postcopy-device (the destination loading the device
     * state): at the switch-over and in post-copy (the source stays). */
    assert_int_equal(vo_qemu_migration_status_read("postcopy-device", &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_true(p.switching);
    assert_true(p.post_copy);
    assert_false(p.post_copy_paused);
    assert_false(p.post_copy_recovering);
    p = (VoHvMigrationProgress){ 0 };
    assert_int_equal(vo_qemu_migration_status_read("postcopy-active", &p), 0);
    assert_false(p.switching);
    /* failing: ending, failed to come. */
    p = (VoHvMigrationProgress){ 0 };
    assert_int_equal(vo_qemu_migration_status_read("failing", &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_FAILING);
    assert_string_equal(vo_hv_migration_status_to_string(p.status), "failing");
    assert_true(vo_hv_migration_ending(p.status));
    assert_true(vo_hv_migration_ended_or_ending(p.status));
    assert_false(vo_hv_migration_ending(VO_HV_MIGRATION_FAILED));
    assert_false(vo_hv_migration_ended_or_ending(VO_HV_MIGRATION_ACTIVE));

    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "migrate-recover", .oob = true,
          .args = "{\"uri\":\"tcp:10.0.0.2:49160\"}", .send = { OK } },
        { .expect = "migrate", .args = "{\"uri\":\"tcp:10.0.0.2:49160\",\"resume\":true}",
          .send = { OK } },
        { .expect = "migrate-pause", .oob = true, .send = { OK } },
        /* A destination finished (continued) while its post-copy runs keeps
         * the migration's TLS credentials: a recovery listens with them. */
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"postcopy-active\"},\"id\":$ID}\n" } },
        /* Once it completed, they go. */
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"completed\"},\"id\":$ID}\n" } },
        { .expect = "migrate-set-parameters",
          .args = "{\"tls-creds\":\"\",\"tls-hostname\":\"\"}", .send = { OK } },
        { .expect = "object-del", .args = "{\"id\":\"vireo-migration-tls\"}",
          .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_migrate_recover(vm, "nowhere", &error), -EINVAL);
    free(error);
    error = NULL;
    assert_int_equal(vo_qemu_migrate_recover(vm, "tcp:10.0.0.2:49160", &error), 0);
    assert_int_equal(vo_qemu_migrate_resume(vm, "tcp:10.0.0.2:49160", &error), 0);
    assert_int_equal(vo_qemu_migrate_pause(vm, &error), 0);
    vm->tls_object = true;
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, false, &error),
                     0);
    assert_true(vm->tls_object);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, false, &error),
                     0);
    assert_false(vm->tls_object);
    assert_null(error);
    instance_close(&f);
}

/* /dev/userfaultfd's grant (a file of the test's in its place): QEMU's group
 * gets read-write only until the revoke; one a vireod killed during its
 * window left behind is taken back by the next grant and by the start's
 * repair, not kept as the mode to restore. */
static void test_uffd_grant(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-uffd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *dev = vo_asprintf("%s/userfaultfd", dir);
    assert_int_equal(vo_write_file_atomic(dev, "", 0), 0);
    assert_int_equal(chown(dev, 0, 0), 0);
    assert_int_equal(chmod(dev, 0600), 0);
    setenv("VIREO_TEST_UFFD_DEVICE", dev, 1);
    VoHvDriver d = { .qemu_user = (char *)"vireo-qemu", .qemu_gid = 4242 };
    struct stat st;
    VoQemuUffdGrant g;
    char *error = NULL;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(vo_qemu_uffd_grant(&d, &g, &error), 0);
        assert_int_equal(stat(dev, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0660);
        assert_int_equal(st.st_gid, 4242);
        /* Locked: another vireod's grant waits. */
        int other = open(dev, O_RDONLY | O_CLOEXEC);
        assert_true(flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
        close(other);
        if (round == 0) {
            close(g.fd); /* a vireod killed here: unlocked, nothing put back */
            continue;
        }
        vo_qemu_uffd_revoke(&g);
        assert_int_equal(g.fd, -1);
    }
    assert_int_equal(stat(dev, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_gid, 0);
    /* Left behind again: the start's repair takes it back. */
    assert_int_equal(chown(dev, 0, 4242), 0);
    assert_int_equal(chmod(dev, 0660), 0);
    vo_qemu_uffd_repair(&d);
    assert_int_equal(stat(dev, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_gid, 0);
    /* QEMU as root: nothing touched. */
    VoHvDriver root = { 0 };
    assert_int_equal(vo_qemu_uffd_grant(&root, &g, &error), 0);
    assert_int_equal(g.fd, -1);
    unsetenv("VIREO_TEST_UFFD_DEVICE");
    (void)vo_rm_rf(dir);
}

static void test_query(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-migrate", .send = { OK } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"setup\",\"total-time\":3},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"active\",\"expected-downtime\":280,"
                    "\"cpu-throttle-percentage\":45,"
                    "\"total-time\":1200,\"ram\":{\"transferred\":1000,\"remaining\":3000,"
                    "\"total\":4000,\"dirty-pages-rate\":250,\"dirty-sync-count\":2,"
                    "\"page-size\":4096,\"mbps\":800}},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"pre-switchover\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"device\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"completed\",\"downtime\":42,\"total-time\":2000,"
                    "\"ram\":{\"transferred\":4100,\"remaining\":0,\"total\":4000,"
                    "\"dirty-sync-count\":5}},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"failed\",\"error-desc\":\"Unable to write to "
                    "socket: Broken pipe\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"cancelling\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"cancelled\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"postcopy-active\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"postcopy-paused\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"postcopy-device\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"failing\",\"error-desc\":\"Broken "
                    "pipe\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"teleporting\"},\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    VoHvMigrationProgress p;
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_NONE);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_SETUP);
    assert_int_equal(p.total_time_ms, 3);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_int_equal(p.transferred, 1000);
    assert_int_equal(p.remaining, 3000);
    assert_int_equal(p.total, 4000);
    assert_int_equal(p.dirty_pages_rate, 250);
    assert_int_equal(p.page_size, 4096);
    assert_int_equal(p.passes, 2);
    assert_int_equal(p.expected_downtime_ms, 280);
    assert_int_equal(p.throttle_pct, 45);
    assert_false(p.switching); /* still copying memory */
    assert_null(p.error);
    /* At the switch-over (the converge limit spares it, for a while):
     * pre-switchover, then device. */
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_true(p.switching);
    assert_true(p.at_switchover); /* no disk mirrors: the caller continues it */
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_true(p.switching);
    assert_false(p.at_switchover);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_COMPLETED);
    assert_int_equal(p.downtime_ms, 42);
    assert_int_equal(p.passes, 5);
    assert_false(p.switching);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_FAILED);
    assert_string_equal(p.error, "Unable to write to socket: Broken pipe");
    free(p.error);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_CANCELLING);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_CANCELLED);
    assert_string_equal(vo_hv_migration_status_to_string(p.status), "cancelled");
    /* Post-copy: running, then its stream broken (pages left behind). */
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_true(p.post_copy);
    assert_false(p.post_copy_paused);
    assert_false(p.at_switchover);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_true(p.post_copy);
    assert_true(p.post_copy_paused);
    /* Newer QEMU's words: a query answers them (it failed -EPROTO). */
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_true(p.post_copy && p.switching);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_FAILING);
    assert_string_equal(p.error, "Broken pipe");
    free(p.error);
    assert_int_equal(vo_qemu_migrate_query(vm, &p), -EPROTO);
    assert_non_null(strstr(p.error, "teleporting"));
    free(p.error);
    instance_close(&f);
}

/* The memory loop's wait (migrate-copy.c): a MIGRATION event ends it at
 * once, whatever else QEMU says first (kept for their own waiters); none
 * within the time given is -ETIMEDOUT, and the monitor stays usable. */
static void test_wait_for_a_status_change(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .send = { "{\"event\":\"MIGRATION_PASS\",\"data\":{\"pass\":2},"
                    "\"timestamp\":{\"seconds\":1,\"microseconds\":0}}\n",
                    "{\"event\":\"MIGRATION\",\"data\":{\"status\":\"device\"},"
                    "\"timestamp\":{\"seconds\":1,\"microseconds\":5}}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"completed\"},\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    assert_int_equal(vo_qemu_migrate_wait(vm, 10000, false, false), 0);
    int64_t t0 = vo_now_ms();
    assert_int_equal(vo_qemu_migrate_wait(vm, 50, false, false), -ETIMEDOUT);
    assert_true(vo_now_ms() - t0 >= 50);
    VoHvMigrationProgress p;
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_COMPLETED);
    instance_close(&f);
}

/* Post-copy's wait for its second pass (migrate-copy.c): with passes, the
 * end of a pass over memory (MIGRATION_PASS) ends the wait, queued or
 * still to come; without, it is kept for later and the wait runs out. */
static void test_wait_for_a_pass(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .send = { "{\"event\":\"MIGRATION_PASS\",\"data\":{\"pass\":1},"
                    "\"timestamp\":{\"seconds\":1,\"microseconds\":0}}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    assert_int_equal(vo_qemu_migrate_wait(vm, 50, false, false), -ETIMEDOUT);
    assert_int_equal(vo_qemu_migrate_wait(vm, 10000, false, true), 0);
    assert_int_equal(vo_qemu_migrate_wait(vm, 0, false, true), -ETIMEDOUT);
    instance_close(&f);
}

/* No lost wake-up: an event QEMU sends right after a query's reply (read
 * with it, between the query and the wait) is queued and ends the next
 * wait at once: a wait of 0 ms finds it. */
static void test_wait_finds_an_event_read_with_a_reply(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"active\"},\"id\":$ID}\n"
                    "{\"event\":\"MIGRATION\",\"data\":{\"status\":\"completed\"},"
                    "\"timestamp\":{\"seconds\":1,\"microseconds\":0}}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    VoHvMigrationProgress p;
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_int_equal(vo_qemu_migrate_wait(vm, 0, false, false), 0);
    assert_int_equal(vo_qemu_migrate_wait(vm, 0, false, false), -ETIMEDOUT);
    instance_close(&f);
}

typedef struct {
    VoHvInstance *vm;
    VoCancel *cancel;
    int r;
    bool done;
} Waiter;

static void *waiter_main(void *arg)
{
    Waiter *w = arg;
    vo_cancel_set_current(w->cancel);
    w->r = vo_qemu_migrate_wait(w->vm, 60000, true, false);
    vo_cancel_set_current(NULL);
    __atomic_store_n(&w->done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

/* The wait lets go of the monitor between its slices (a query on another
 * thread gets through while it waits), and a cancel asked of its thread's
 * work ends it (-ECANCELED) long before its time is up. */
static void test_wait_frees_the_monitor_and_ends_on_cancel(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"active\"},\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    Waiter w = { .vm = vm, .cancel = vo_cancel_new() };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    /* Until the waiter holds the monitor's lock (it waits then). */
    while (pthread_mutex_trylock(&vm->qmp_lock) == 0) {
        pthread_mutex_unlock(&vm->qmp_lock);
        (void)poll(NULL, 0, 1);
    }
    VoHvMigrationProgress p;
    assert_int_equal(vo_qemu_migrate_query(vm, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_false(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST));
    vo_cancel_request(w.cancel);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(w.r, -ECANCELED);
    vo_cancel_free(w.cancel);
    instance_close(&f);
}

static void test_cancel_and_finish(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "migrate_cancel", .send = { OK } },
        /* Destination, migration done: resume, then the NICs announce
         * where they are now. */
        { .expect = "cont", .send = { OK } },
        { .expect = "announce-self",
          .args = "{\"initial\":50,\"max\":550,\"rounds\":5,\"step\":100}",
          .send = { OK } },
        /* Source, migration failed, it ran before: resume. */
        { .expect = "cont", .send = { OK } },
        /* (Source, failed again with no migrate_start since (a disk
         * phase's failure; the guest paused meanwhile): nothing is sent.
         * Destination of a VM that was paused, done: nothing either.)
         * Source, done: quit. */
        { .expect = "quit", .close = true },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_migrate_cancel(vm, &error), 0);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, true, &error),
                     0);
    vm->migration_was_running = true;
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_false(vm->migration_was_running); /* that attempt's cont is done */
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, false, &error),
                     0);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, true, false, &error), 0);
    assert_null(error);
    instance_close(&f);
}

/* A qom-get of a device's property and QEMU's answer (its "return" or "error"). */
#define QOM_GET(id, property, answer)                                                        \
    { .expect = "qom-get",                                                                 \
      .args = "{\"path\":\"/machine/peripheral/" id "\",\"property\":\"" property "\"}",  \
      .send = { "{" answer ",\"id\":$ID}\n" } }

static void test_layout_probe(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-machines",
          .send = { "{\"return\":[{\"name\":\"pc-i440fx-10.0\",\"alias\":\"pc\"},"
                    "{\"name\":\"pc-q35-9.2\"},{\"name\":\"pc-q35-10.0\",\"alias\":\"q35\"}],"
                    "\"id\":$ID}\n" } },
        { .expect = "query-hotpluggable-cpus",
          .send = { "{\"return\":[{\"type\":\"qemu64-x86_64-cpu\",\"vcpus-count\":1,"
                    "\"props\":{\"core-id\":3,\"thread-id\":0,\"socket-id\":0}},"
                    "{\"type\":\"qemu64-x86_64-cpu\",\"vcpus-count\":1,\"qom-path\":"
                    "\"/machine/peripheral/vcpu2\",\"props\":{\"core-id\":2}},"
                    "{\"type\":\"qemu64-x86_64-cpu\",\"vcpus-count\":1,\"qom-path\":"
                    "\"/machine/peripheral/vcpu1\",\"props\":{\"core-id\":1}},"
                    "{\"type\":\"qemu64-x86_64-cpu\",\"vcpus-count\":1,\"qom-path\":"
                    "\"/machine/unattached/device[0]\",\"props\":{\"core-id\":0}}],"
                    "\"id\":$ID}\n" } },
        /* Where each PCI device with an id sits, from QOM, whatever the
         * guest numbered (query-pci lists nothing behind a root port whose
         * bus the firmware has not numbered yet). */
        { .expect = "qom-list-types", .args = "{\"implements\":\"pci-device\",\"abstract\":false}",
          .send = { "{\"return\":[{\"name\":\"virtio-balloon-pci\"},{\"name\":"
                    "\"pcie-root-port\"},{\"name\":\"virtio-blk-pci\"},{\"name\":"
                    "\"virtio-net-pci\"}],\"id\":$ID}\n" } },
        /* A NIC the guest let go of between the list and its questions: the
         * devices are asked again. */
        { .expect = "qom-list", .args = "{\"path\":\"/machine/peripheral\"}",
          .send = { "{\"return\":[{\"name\":\"net0\",\"type\":\"child<virtio-net-pci>\"},"
                    "{\"name\":\"rp-disk0\",\"type\":\"child<pcie-root-port>\"}],"
                    "\"id\":$ID}\n" } },
        QOM_GET("net0", "parent_bus",
                "\"error\":{\"class\":\"DeviceNotFound\",\"desc\":\"not found\"}"),
        { .expect = "qom-list", .args = "{\"path\":\"/machine/peripheral\"}",
          .send = { "{\"return\":[{\"name\":\"type\",\"type\":\"string\"},"
                    "{\"name\":\"vcpu1\",\"type\":\"child<qemu64-x86_64-cpu>\"},"
                    "{\"name\":\"virtio-disk0\",\"type\":\"child<virtio-blk-pci>\"},"
                    "{\"name\":\"balloon0\",\"type\":\"child<virtio-balloon-pci>\"},"
                    "{\"name\":\"rp-disk1\",\"type\":\"child<pcie-root-port>\"},"
                    "{\"name\":\"cidata0\",\"type\":\"child<ide-cd>\"},"
                    "{\"name\":\"rp-disk0\",\"type\":\"child<pcie-root-port>\"}],"
                    "\"id\":$ID}\n" } },
        QOM_GET("virtio-disk0", "parent_bus",
                "\"return\":\"/machine/peripheral/rp-disk0/rp-disk0\""),
        QOM_GET("virtio-disk0", "addr", "\"return\":0"),
        /* At function 1 of slot 2 (the written form keeps the function). */
        QOM_GET("balloon0", "parent_bus", "\"return\":\"/machine/q35/pcie.0\""),
        QOM_GET("balloon0", "addr", "\"return\":17"),
        /* The root ports are not asked: the record's root_ports place them. */
        { .expect = "qom-get",
          .args = "{\"path\":\"/machine/peripheral/virtio-mem0\",\"property\":\"requested-size\"}",
          .send = { "{\"return\":134217728,\"id\":$ID}\n" } },
        /* QOM listed the seed drive (cidata0): its medium went (the VM's
         * cloud-init settings dropped while it ran) */
        { .expect = "query-block",
          .send = { "{\"return\":[{\"device\":\"drive-virtio-disk0\",\"inserted\":{}},"
                    "{\"device\":\"drive-cidata0\",\"qdev\":\"cidata0\",\"removable\":true}],"
                    "\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    VoVmSpec spec = { .machine = "q35", .vcpus = 2, .max_vcpus = 4, .memory_mib = 256,
                      .max_memory_mib = 512 };
    vm->layout = vo_qemu_layout_from_spec(&spec, VO_ACCEL_TCG);
    char *text = NULL, *error = NULL;
    assert_int_equal(vo_qemu_layout_text(vm, &text, &error), 0);
    VoQemuLayout *l = NULL;
    assert_int_equal(vo_qemu_layout_from_text(text, &l, &error), 0);
    assert_string_equal(l->machine, "pc-q35-10.0");
    assert_string_equal(l->cpu, "qemu64");
    assert_int_equal(l->seed_drive, VO_QEMU_SEED_EMPTY);
    assert_int_equal(l->n_vcpu_devices, 2);
    assert_int_equal(l->vcpu_devices[0], 1);
    assert_int_equal(l->vcpu_devices[1], 2);
    assert_int_equal(l->virtio_mem_requested, 128 << 20);
    assert_int_equal(l->n_devices, 2);
    assert_string_equal(vo_qemu_layout_device(l, "balloon0")->bus, "pcie.0");
    assert_string_equal(vo_qemu_layout_device(l, "balloon0")->addr, "0x2.1");
    assert_string_equal(vo_qemu_layout_device(l, "virtio-disk0")->bus, "rp-disk0");
    assert_string_equal(vo_qemu_layout_device(l, "virtio-disk0")->addr, "0x0.0");
    assert_null(vo_qemu_layout_device(l, "rp-disk0"));
    assert_string_equal(l->devices[0].id, "balloon0"); /* by id, not in QOM's order */
    assert_string_equal(l->devices[1].id, "virtio-disk0");
    /* Kept in the run dir, for a vireod that re-attaches. */
    VoQemuLayout *saved = NULL;
    assert_int_equal(vo_qemu_layout_load(f.dir, &saved, &error), 0);
    assert_string_equal(saved->machine, "pc-q35-10.0");
    vo_qemu_layout_free(saved);
    vo_qemu_layout_free(l);
    free(text);
    instance_close(&f);
}

/* A versioned machine (a migrated VM's: the source sent what its alias
 * stood for) is not asked about again: query-machines is the largest
 * answer of the read, which a migration's prepare waits for. */
static void test_layout_probe_versioned_machine(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-hotpluggable-cpus", .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { .expect = "qom-list-types", .args = "{\"implements\":\"pci-device\",\"abstract\":false}",
          .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { .expect = "qom-list", .args = "{\"path\":\"/machine/peripheral\"}",
          .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    VoVmSpec spec = { .machine = "pc-q35-9.2", .vcpus = 1, .max_vcpus = 1, .memory_mib = 256,
                      .max_memory_mib = 256 };
    vm->layout = vo_qemu_layout_from_spec(&spec, VO_ACCEL_TCG);
    char *text = NULL, *error = NULL;
    assert_int_equal(vo_qemu_layout_text(vm, &text, &error), 0);
    VoQemuLayout *l = NULL;
    assert_int_equal(vo_qemu_layout_from_text(text, &l, &error), 0);
    assert_string_equal(l->machine, "pc-q35-9.2");
    vo_qemu_layout_free(l);
    free(text);
    instance_close(&f);
}

/* A device question QEMU refuses for another reason than a device gone
 * (here an error; a monitor that does not answer alike) fails the probe at
 * once: the devices are not asked again. */
static void test_layout_probe_fails_once(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-machines", .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { .expect = "query-hotpluggable-cpus", .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { .expect = "qom-list-types", .args = "{\"implements\":\"pci-device\",\"abstract\":false}",
          .send = { "{\"return\":[{\"name\":\"virtio-balloon-pci\"}],\"id\":$ID}\n" } },
        { .expect = "qom-list", .args = "{\"path\":\"/machine/peripheral\"}",
          .send = { "{\"return\":[{\"name\":\"balloon0\",\"type\":"
                    "\"child<virtio-balloon-pci>\"}],\"id\":$ID}\n" } },
        QOM_GET("balloon0", "parent_bus",
                "\"error\":{\"class\":\"GenericError\",\"desc\":\"out of memory\"}"),
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    VoVmSpec spec = { .machine = "pc", .vcpus = 1, .max_vcpus = 1, .memory_mib = 256,
                      .max_memory_mib = 256 };
    vm->layout = vo_qemu_layout_from_spec(&spec, VO_ACCEL_TCG);
    char *text = NULL, *error = NULL;
    assert_int_equal(vo_qemu_layout_text(vm, &text, &error), -EIO);
    assert_non_null(strstr(error, "GenericError: out of memory"));
    assert_null(text);
    free(error);
    instance_close(&f);
}

/* ---- re-attach to a VM started before layouts were recorded ---- */

typedef struct {
    Server server;
    int listen_fd;
} Listener;

/* The scripted server behind a unix socket (QEMU's qmp.sock). */
static void *listener_main(void *arg)
{
    Listener *l = arg;
    l->server.fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (l->server.fd < 0) {
        server_fail(&l->server, "accept failed", "");
        return NULL;
    }
    return server_main(&l->server);
}

/* The run dir of a QEMU started by a vireod that wrote no layout.json: the
 * QEMU re-attached gets a layout made from its spec, which holds the live
 * sizes after hot-plugs (boot memory, vCPUs) and not its root ports: it is
 * marked assumed, and a destination is never prepared from it. */
static void test_attach_without_layout_assumes_and_refuses_migration(void **state)
{
    static const Step steps[] = { GREETING, CAPS, { 0 } };
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/vireo-test-attach-XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* Live sizes: memory grown from 256 MiB at boot to 384 MiB. */
    VoVmSpec *spec = test_spec_resolved(
        "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"old\","
        "\"kernel\":{\"image\":\"k\"},\"memory_mib\":384,\"max_memory_mib\":512,"
        "\"disks\":[{\"volume\":\"d/a\"}]}");
    /* "QEMU": a process whose command line carries the VM's -uuid; in its
     * own process group (its sleep goes with it), holding no test output. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execl("/bin/sh", "sh", "-c", "sleep 60; :", "sh", "-uuid", spec->id, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    _cleanup_free_ char *pidfile = vo_asprintf("%s/qemu.pid", dir);
    _cleanup_free_ char *pidtext = vo_asprintf("%d\n", (int)pid);
    assert_int_equal(vo_write_file_atomic(pidfile, pidtext, strlen(pidtext)), 0);
    _cleanup_free_ char *qmp_path = vo_asprintf("%s/qmp.sock", dir);
    Listener l = { .server = { .steps = steps, .fd = -1 } };
    l.listen_fd = vo_unix_listen(qmp_path, 0600);
    assert_true(l.listen_fd >= 0);
    assert_int_equal(pthread_create(&l.server.thread, NULL, listener_main, &l), 0);
    /* /proc/PID/cmdline shows the -uuid once sh runs */
    for (int i = 0; i < 500; i++) {
        _cleanup_free_ char *path = vo_asprintf("/proc/%d/cmdline", (int)pid);
        _cleanup_free_ char *cmdline = NULL;
        size_t len = 0;
        if (vo_read_file(path, 4096, &cmdline, &len) >= 0 && len > 3 && !strcmp(cmdline, "sh"))
            break;
        poll(NULL, 0, 10);
    }

    VoHvDriver *d = NULL;
    assert_int_equal(vo_qemu_driver_new(&d), 0);
    VoHvInstance *vm = NULL;
    assert_int_equal(d->attach(d, spec, dir, &vm), 0);
    _cleanup_free_ char *text = vo_qemu_layout_to_text(vm->layout);
    json_t *doc = json_loads(text, 0, NULL);
    assert_true(json_is_true(json_object_get(doc, "assumed")));
    json_decref(doc);
    d->release(vm);
    server_join(&l.server);
    close(l.listen_fd);

    /* A destination from that layout: refused before any QEMU starts. */
    _cleanup_free_ char *dst_dir = vo_asprintf("%s/dst", dir);
    char *error = NULL;
    VoHvInstance *dst = NULL;
    assert_int_equal(d->migrate_prepare(d, spec, text, dst_dir, NULL, "unix:/tmp/x.sock", false, NULL, &dst,
                                        &error), -EINVAL);
    assert_null(dst);
    assert_non_null(strstr(error, "assumed"));
    assert_non_null(strstr(error, "stop and start the VM"));
    free(error);
    assert_int_equal(access(dst_dir, F_OK), -1);

    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    vo_vm_spec_free(spec);
    free(d->kvm_reason);
    free(d);
    vo_rm_rf(dir);
}

/* A destination QEMU that fails to come up: nothing of it is left in its
 * run dir (layout, argv, pidfile, sockets, log), nor the dir it made. */
static void test_failed_prepare_leaves_nothing(void **state)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/vireo-test-prepare-XXXXXX");
    assert_non_null(mkdtemp(dir));
    VoVmSpec *spec = test_spec_resolved(
        "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"dst\","
        "\"kernel\":{\"image\":\"k\"},\"memory_mib\":256,\"disks\":[{\"volume\":\"d/a\"}]}");
    VoQemuLayout *layout = vo_qemu_layout_from_spec(spec, VO_ACCEL_TCG);
    _cleanup_free_ char *text = vo_qemu_layout_to_text(layout);
    vo_qemu_layout_free(layout);
    setenv("VIREO_QEMU", "/bin/false", 1); /* exits at once */
    VoHvDriver *d = NULL;
    assert_int_equal(vo_qemu_driver_new(&d), 0);
    _cleanup_free_ char *run_dir = vo_asprintf("%s/run", dir);
    char *error = NULL;
    VoHvInstance *vm = NULL;
    assert_true(d->migrate_prepare(d, spec, text, run_dir, NULL, "unix:/tmp/x.sock", false, NULL, &vm,
                                   &error) < 0);
    assert_null(vm);
    assert_non_null(strstr(error, "QEMU exited at start"));
    free(error);
    assert_int_equal(access(run_dir, F_OK), -1);
    /* A run dir that was there stays, without what the failed start put in it. */
    assert_int_equal(mkdir(run_dir, 0750), 0);
    _cleanup_free_ char *other = vo_asprintf("%s/other", run_dir);
    assert_int_equal(vo_write_file_atomic(other, "x", 1), 0);
    error = NULL;
    assert_true(d->migrate_prepare(d, spec, text, run_dir, NULL, "unix:/tmp/x.sock", false, NULL, &vm,
                                   &error) < 0);
    free(error);
    static const char *const gone[] = { "layout.json", "qemu.argv", "qemu.pid", "qmp.sock",
                                        "console.sock", "qemu.log" };
    for (size_t i = 0; i < ELEMENTSOF(gone); i++) {
        _cleanup_free_ char *path = vo_asprintf("%s/%s", run_dir, gone[i]);
        if (access(path, F_OK) == 0)
            fail_msg("%s is left after a failed migrate_prepare", path);
    }
    assert_int_equal(access(other, F_OK), 0);
    unsetenv("VIREO_QEMU");
    vo_vm_spec_free(spec);
    free(d->kvm_reason);
    free(d);
    vo_rm_rf(dir);
}

/* A TCG source with virtio-mem whose layout has no boot-memory padding (an
 * older vireod started it): refused before any QEMU starts, as its QEMU
 * would lose guest writes or abort during the copy; its padded twin goes on
 * to start a QEMU (here one that exits at once). */
static void test_unpadded_tcg_source_refused(void **state)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/vireo-test-prepare-XXXXXX");
    assert_non_null(mkdtemp(dir));
    VoVmSpec *spec = test_spec_resolved(
        "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"dst\","
        "\"kernel\":{\"image\":\"k\"},\"memory_mib\":256,\"max_memory_mib\":512}");
    VoQemuLayout *layout = vo_qemu_layout_from_spec(spec, VO_ACCEL_TCG);
    assert_int_equal(layout->boot_pad_kib, VO_QEMU_TCG_BOOT_PAD_KIB);
    _cleanup_free_ char *padded = vo_qemu_layout_to_text(layout);
    json_t *doc = vo_qemu_layout_to_json(layout);
    json_object_del(json_object_get(doc, "memory"), "boot_pad_kib");
    _cleanup_free_ char *unpadded = json_dumps(doc, JSON_SORT_KEYS);
    json_decref(doc);
    vo_qemu_layout_free(layout);
    setenv("VIREO_QEMU", "/bin/false", 1); /* exits at once */
    VoHvDriver *d = NULL;
    assert_int_equal(vo_qemu_driver_new(&d), 0);
    _cleanup_free_ char *run_dir = vo_asprintf("%s/run", dir);
    char *error = NULL;
    VoHvInstance *vm = NULL;
    assert_int_equal(d->migrate_prepare(d, spec, unpadded, run_dir, NULL, "unix:/tmp/x.sock", false,
                                        NULL, &vm, &error), -EINVAL);
    assert_null(vm);
    assert_non_null(strstr(error, "boot-memory padding"));
    assert_non_null(strstr(error, "stop and start the VM"));
    free(error);
    assert_int_equal(access(run_dir, F_OK), -1);
    error = NULL;
    assert_true(d->migrate_prepare(d, spec, padded, run_dir, NULL, "unix:/tmp/x.sock", false, NULL,
                                   &vm, &error) < 0);
    assert_non_null(strstr(error, "QEMU exited at start"));
    free(error);
    unsetenv("VIREO_QEMU");
    vo_vm_spec_free(spec);
    free(d->kvm_reason);
    free(d);
    vo_rm_rf(dir);
}

/* ---- the fake driver ---- */

static char fault_dir[64];

static void fault(const char *op, const char *err)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", fault_dir, op);
    assert_int_equal(vo_write_file_atomic(path, err, strlen(err)), 0);
}

static const char FAKE_SPEC[] =
    "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10\",\"name\":\"mig\",\"kernel\":{\"image\":\"k\"},"
    "\"memory_mib\":64,\"disks\":[{\"volume\":\"d/a\"}]}";

static void test_fake(void **state)
{
    snprintf(fault_dir, sizeof(fault_dir), "/tmp/vireo-test-fake-XXXXXX");
    assert_non_null(mkdtemp(fault_dir));
    setenv("VIREO_FAKE_FAULTS", fault_dir, 1);
    _cleanup_free_ char *src_dir = vo_asprintf("%s/src", fault_dir);
    _cleanup_free_ char *dst_dir = vo_asprintf("%s/dst", fault_dir);
    VoVmSpec *spec = test_spec_resolved(FAKE_SPEC);
    char *error = NULL;
    VoHvDriver *d = NULL;
    assert_int_equal(vo_fake_driver_new(&d), 0);

    VoHvInstance *src = NULL, *dst = NULL;
    assert_int_equal(d->start(d, spec, src_dir, NULL, &src, &error), 0);
    assert_int_equal(d->resume(src), 0);
    char *layout = NULL, *layout2 = NULL;
    assert_int_equal(d->layout(src, &layout, &error), 0);
    /* Refused: a bad URI, a layout of something else, an injected fault. */
    assert_int_equal(d->migrate_prepare(d, spec, layout, dst_dir, NULL, "ftp:x", false, NULL, &dst, &error),
                     -EINVAL);
    free(error);
    error = NULL;
    assert_int_equal(d->migrate_prepare(d, spec, "{\"driver\":\"qemu\"}", dst_dir, NULL,
                                        "tcp:127.0.0.1:1", false, NULL, &dst, &error), -EINVAL);
    free(error);
    error = NULL;
    fault("migrate_prepare", "ENOSPC");
    assert_int_equal(d->migrate_prepare(d, spec, layout, dst_dir, NULL, "tcp:127.0.0.1:1", false, NULL, &dst,
                                        &error), -ENOSPC);
    free(error);
    error = NULL;

    /* A whole migration: a quarter of the memory per query. */
    assert_int_equal(d->migrate_prepare(d, spec, layout, dst_dir, NULL, "tcp:127.0.0.1:1", false, NULL, &dst,
                                        &error), 0);
    VoHvInfo info;
    assert_int_equal(d->info(dst, &info), 0);
    assert_true(info.paused);
    assert_int_equal(d->migrate_start(src, "tcp:127.0.0.1:1", NULL, &error), 0);
    VoHvMigrationProgress p;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(d->migrate_query(src, &p), 0);
        assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
        assert_int_equal(p.transferred, (uint64_t)i * (16 << 20));
        assert_int_equal(p.total, 64 << 20);
    }
    assert_int_equal(d->migrate_query(dst, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_ACTIVE);
    assert_int_equal(d->migrate_query(src, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_COMPLETED);
    assert_int_equal(p.remaining, 0);
    assert_int_equal(d->migrate_finish(dst, VO_HV_MIGRATION_DESTINATION, true, true, &error), 0);
    assert_int_equal(d->info(dst, &info), 0);
    assert_false(info.paused);
    assert_int_equal(d->migrate_finish(src, VO_HV_MIGRATION_SOURCE, true, false, &error), 0);
    uint64_t exited = 0;
    assert_int_equal(read(d->exit_fd(src), &exited, sizeof(exited)), sizeof(exited));
    d->release(src);

    /* Back again, failing half-way: the source resumes, the destination goes. */
    free(layout);
    assert_int_equal(d->layout(dst, &layout, &error), 0);
    assert_int_equal(d->migrate_prepare(d, spec, layout, src_dir, NULL, "unix:/tmp/x.sock", false, NULL, &src,
                                        &error), 0);
    assert_int_equal(d->migrate_start(dst, "unix:/tmp/x.sock", NULL, &error), 0);
    assert_int_equal(d->migrate_start(dst, "unix:/tmp/x.sock", NULL, &error), -EBUSY);
    free(error);
    error = NULL;
    assert_int_equal(d->migrate_query(dst, &p), 0);
    fault("migration", "EIO");
    assert_int_equal(d->migrate_query(dst, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_FAILED);
    assert_non_null(strstr(p.error, "injected fault"));
    free(p.error);
    assert_int_equal(d->migrate_finish(dst, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_int_equal(d->info(dst, &info), 0);
    assert_false(info.paused);
    assert_int_equal(d->migrate_finish(src, VO_HV_MIGRATION_DESTINATION, false, false, &error), 0);
    assert_int_equal(read(d->exit_fd(src), &exited, sizeof(exited)), sizeof(exited));
    d->release(src);

    /* A paused VM migrated stays paused on the destination. */
    assert_int_equal(d->pause(dst), 0);
    assert_int_equal(d->layout(dst, &layout2, &error), 0);
    assert_int_equal(d->migrate_prepare(d, spec, layout2, src_dir, NULL, "unix:/tmp/x.sock", false, NULL,
                                        &src, &error), 0);
    assert_int_equal(d->migrate_start(dst, "unix:/tmp/x.sock", NULL, &error), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(d->migrate_query(dst, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_COMPLETED);
    assert_int_equal(d->migrate_finish(src, VO_HV_MIGRATION_DESTINATION, true, false, &error), 0);
    assert_int_equal(d->info(src, &info), 0);
    assert_true(info.paused);
    assert_int_equal(d->migrate_finish(dst, VO_HV_MIGRATION_SOURCE, true, false, &error), 0);
    assert_int_equal(read(d->exit_fd(dst), &exited, sizeof(exited)), sizeof(exited));
    d->release(dst);
    dst = src;
    assert_int_equal(d->resume(dst), 0);

    /* Cancelled. */
    assert_int_equal(d->migrate_start(dst, "tcp:127.0.0.1:1", NULL, &error), 0);
    assert_int_equal(d->migrate_cancel(dst, &error), 0);
    assert_int_equal(d->migrate_query(dst, &p), 0);
    assert_int_equal(p.status, VO_HV_MIGRATION_CANCELLED);
    d->release(dst);

    free(layout);
    free(layout2);
    vo_vm_spec_free(spec);
    free(d->kvm_reason);
    free(d);
    vo_rm_rf(fault_dir);
    unsetenv("VIREO_FAKE_FAULTS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incoming),
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_wait_for_a_status_change),
        cmocka_unit_test(test_wait_for_a_pass),
        cmocka_unit_test(test_wait_finds_an_event_read_with_a_reply),
        cmocka_unit_test(test_wait_frees_the_monitor_and_ends_on_cancel),
        cmocka_unit_test(test_post_copy),
        cmocka_unit_test(test_post_copy_recovery),
        cmocka_unit_test(test_uffd_grant),
        cmocka_unit_test(test_cancel_and_finish),
        cmocka_unit_test(test_layout_probe),
        cmocka_unit_test(test_layout_probe_fails_once),
        cmocka_unit_test(test_layout_probe_versioned_machine),
        cmocka_unit_test(test_attach_without_layout_assumes_and_refuses_migration),
        cmocka_unit_test(test_failed_prepare_leaves_nothing),
        cmocka_unit_test(test_unpadded_tcg_source_refused),
        cmocka_unit_test(test_fake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
