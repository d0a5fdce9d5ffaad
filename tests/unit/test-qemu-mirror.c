/* test-qemu-mirror.c: live migration of local disks (driver.h, mirror_*).
 * The QEMU driver's against the scripted QMP server (qmp-server.c): the
 * exact command order of a two-disk mirror on the source and of the
 * destination's NBD exports, the pre-switchover step (held for the daemon
 * with post-copy), a cancel in the disk
 * phase and in the memory phase, a mirror job that fails, a start that
 * fails half-way. The fake driver's: the same script played out, with its
 * fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "qemu/qemu-instance.h"
#include "qemu/qemu-migrate.h"
#include "qemu/qemu-mirror.h"
#include "qmp-server.h"
#include "spec-resolved.h"
#include "util/util.h"

#define OK "{\"return\":{},\"id\":$ID}\n"
#define RUNNING "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n"
#define PAUSED "{\"return\":{\"status\":\"paused\",\"running\":false},\"id\":$ID}\n"

typedef struct {
    Server server;
    VoHvInstance vm;
} Fixture;

/* A QEMU instance whose monitor is the scripted server (no process). */
static VoHvInstance *instance_open(Fixture *f, const Step *steps)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->vm.qmp_lock, NULL);
    f->vm.pidfd = -1;
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

/* The source's plan: the root disk (a linked clone: its base is at the
 * destination, so only the top layer) and a data disk (whole). */
static const VoHvMirrorDisk DISKS[] = { { .slot = 0, .export = "root", .top_only = true },
                                        { .slot = 1 } };
static const VoHvMirrorPlan PLAN = { .uri = "unix:/run/x/nbd.sock", .disks = DISKS,
                                     .n_disks = 2 };

#define MIRROR_START_STEPS                                                                    \
    MIRROR_START_STEPS_BUT_LAST,                                                              \
    { .expect = "blockdev-mirror",                                                            \
      .args = "{\"job-id\":\"vireo-mirror-disk1\",\"device\":\"disk1\",\"target\":"            \
              "\"vireo-nbd-disk1\",\"sync\":\"full\",\"copy-mode\":\"write-blocking\","       \
              "\"auto-dismiss\":false}",                                                      \
      .send = { OK } }

/* Both NBD nodes and the first mirror. */
#define MIRROR_START_STEPS_BUT_LAST                                                           \
    { .expect = "blockdev-add",                                                               \
      .args = "{\"driver\":\"nbd\",\"node-name\":\"vireo-nbd-disk0\",\"server\":"              \
              "{\"path\":\"/run/x/nbd.sock\",\"type\":\"unix\"},\"export\":\"root\"}",         \
      .send = { OK } },                                                                       \
    { .expect = "blockdev-mirror",                                                            \
      .args = "{\"job-id\":\"vireo-mirror-disk0\",\"device\":\"disk0\",\"target\":"            \
              "\"vireo-nbd-disk0\",\"sync\":\"top\",\"copy-mode\":\"write-blocking\","        \
              "\"auto-dismiss\":false}",                                                      \
      .send = { OK } },                                                                       \
    { .expect = "blockdev-add",                                                               \
      .args = "{\"driver\":\"nbd\",\"node-name\":\"vireo-nbd-disk1\",\"server\":"              \
              "{\"path\":\"/run/x/nbd.sock\",\"type\":\"unix\"},\"export\":\"disk1\"}",        \
      .send = { OK } }

#define JOB(n, status, cur, total, extra)                                                     \
    "{\"id\":\"vireo-mirror-disk" #n "\",\"type\":\"mirror\",\"status\":\"" status "\","       \
    "\"current-progress\":" #cur ",\"total-progress\":" #total extra "}"
#define JOBS(a, b) "{\"return\":[" a "," b "],\"id\":$ID}\n"
#define BOTH_READY JOBS(JOB(0, "ready", 100, 100, ""), JOB(1, "ready", 400, 400, ""))

/* migrate_start with the mirrors ready: pause-before-switchover on,
 * post-copy allowed or not ("true"/"false"), then migrate. */
#define MIGRATE_START_STEPS(postcopy)                                                         \
    { .expect = "query-status", .send = { RUNNING } },                                        \
    { .expect = "query-jobs", .send = { BOTH_READY } },                                       \
    { .expect = "migrate-set-capabilities",                                                   \
      .args = "{\"capabilities\":[{\"capability\":\"events\",\"state\":true},"                \
              "{\"capability\":\"auto-converge\",\"state\":false},"                           \
              "{\"capability\":\"postcopy-ram\",\"state\":" postcopy "},"                     \
              "{\"capability\":\"pause-before-switchover\",\"state\":true}]}",                \
      .send = { OK } },                                                                       \
    { .expect = "migrate-set-parameters",                                                     \
      .args = "{\"max-bandwidth\":134217728,\"max-postcopy-bandwidth\":0,"                    \
              "\"downtime-limit\":300,\"cpu-throttle-initial\":20,"                           \
              "\"cpu-throttle-increment\":10,\"cpu-throttle-tailslow\":false}",               \
      .send = { OK } },                                                                       \
    { .expect = "migrate", .args = "{\"uri\":\"unix:/run/x/mig.sock\"}", .send = { OK } }

/* At pre-switchover: both ready mirrors completed (block-job-cancel
 * without force), waited for, dismissed. */
#define MIRRORS_COMPLETE                                                                      \
    { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk0\"}",            \
      .send = { OK } },                                                                       \
    { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk1\"}",            \
      .send = { OK } },                                                                       \
    { .expect = "query-jobs",                                                                 \
      .send = { JOBS(JOB(0, "concluded", 100, 100, ""), JOB(1, "concluded", 400, 400, "")) } }, \
    { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk0\"}", .send = { OK } },   \
    { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk1\"}", .send = { OK } }

/* The whole source side: mirrors, progress, migrate with
 * pause-before-switchover, then at pre-switchover the mirrors completed
 * (block-job-cancel without force) and migrate-continue. */
static void test_source_order(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS,
        /* mirror_query: copying, then both ready. */
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "running", 10, 100, ""), JOB(1, "ready", 400, 400, "")) } },
        { .expect = "query-jobs", .send = { BOTH_READY } },
        /* migrate_start: checks the mirrors are ready, then
         * pause-before-switchover on. */
        MIGRATE_START_STEPS("false"),
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"active\"},\"id\":$ID}\n" } },
        /* pre-switchover: the mirrors complete, then the migration goes on. */
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"pre-switchover\"},\"id\":$ID}\n" } },
        { .expect = "query-jobs", .send = { BOTH_READY } },
        MIRRORS_COMPLETE,
        { .expect = "migrate-continue", .args = "{\"state\":\"pre-switchover\"}", .send = { OK } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"device\"},\"id\":$ID}\n" } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"completed\",\"downtime\":40},\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), 0);
    assert_null(error);
    /* A second start while the first runs never reaches QEMU. */
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), -EBUSY);
    free(error);
    error = NULL;
    VoHvMirrorProgress p;
    assert_int_equal(vo_qemu_mirror_query(vm, &p), 0);
    assert_false(p.ready);
    assert_int_equal(p.n_disks, 2);
    assert_int_equal(p.n_ready, 1);
    assert_int_equal(p.transferred, 410);
    assert_int_equal(p.total, 500);
    assert_int_equal(vo_qemu_mirror_query(vm, &p), 0);
    assert_true(p.ready);
    assert_int_equal(p.transferred, 500);
    assert_int_equal(vo_qemu_migrate_start(vm, "unix:/run/x/mig.sock", NULL, &error), 0);
    VoHvMigrationProgress m;
    assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
    assert_int_equal(m.status, VO_HV_MIGRATION_ACTIVE);
    assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
    assert_int_equal(m.status, VO_HV_MIGRATION_ACTIVE);
    assert_null(m.error);
    assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
    assert_int_equal(m.status, VO_HV_MIGRATION_ACTIVE);
    assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
    assert_int_equal(m.status, VO_HV_MIGRATION_COMPLETED);
    instance_close(&f);
}

/* Post-copy (libvirt's order): at pre-switchover the mirrors complete but
 * the migration stays held there, reported at the switch-over, so the
 * daemon moves the VM's ownership first (its disks whole at the
 * destination); only its migrate_continue lets post-copy start. */
static void test_post_copy_order(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS,
        { .expect = "query-jobs", .send = { BOTH_READY } },
        MIGRATE_START_STEPS("true"),
        { .expect = "migrate-start-postcopy", .send = { OK } },
        /* pre-switchover: the mirrors complete; no migrate-continue. */
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"pre-switchover\"},\"id\":$ID}\n" } },
        { .expect = "query-jobs", .send = { BOTH_READY } },
        MIRRORS_COMPLETE,
        /* Asked again while held: the mirrors are done, nothing more. */
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"pre-switchover\"},\"id\":$ID}\n" } },
        { .expect = "migrate-continue", .args = "{\"state\":\"pre-switchover\"}", .send = { OK } },
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"postcopy-active\"},\"id\":$ID}\n" } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), 0);
    VoHvMirrorProgress p;
    assert_int_equal(vo_qemu_mirror_query(vm, &p), 0);
    assert_true(p.ready);
    VoHvMigrationOptions opts = { .post_copy = true };
    assert_int_equal(vo_qemu_migrate_start(vm, "unix:/run/x/mig.sock", &opts, &error), 0);
    assert_int_equal(vo_qemu_migrate_start_post_copy(vm, &error), 0);
    VoHvMigrationProgress m;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
        assert_int_equal(m.status, VO_HV_MIGRATION_ACTIVE);
        assert_true(m.at_switchover);
        assert_null(m.error);
    }
    assert_int_equal(vo_qemu_migrate_continue(vm, &error), 0);
    assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
    assert_true(m.post_copy);
    assert_false(m.at_switchover);
    assert_null(error);
    instance_close(&f);
}

/* The destination's start of its exports over a unix socket. */
#define EXPORT_START_UNIX                                                                     \
    { .expect = "migrate-set-capabilities",                                                   \
      .args = "{\"capabilities\":[{\"capability\":\"late-block-activate\",\"state\":true}]}", \
      .send = { OK } },                                                                       \
    { .expect = "nbd-server-start",                                                           \
      .args = "{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":\"/run/x/nbd.sock\"}}}",  \
      .send = { OK } }

/* The destination: late-block-activate, the NBD server, one writable export
 * per disk; at the end the server stops before the VM runs. A failed
 * export stops the server (and so every export made). */
static void test_destination_exports(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "migrate-set-capabilities",
          .args = "{\"capabilities\":[{\"capability\":\"late-block-activate\",\"state\":true}]}",
          .send = { OK } },
        { .expect = "nbd-server-start",
          .args = "{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"10.0.0.2\",\"port\":"
                  "\"49153\"}}}",
          .send = { OK } },
        { .expect = "block-export-add",
          .args = "{\"type\":\"nbd\",\"id\":\"vireo-export-disk0\",\"node-name\":\"disk0\","
                  "\"name\":\"root\",\"writable\":true}",
          .send = { OK } },
        { .expect = "block-export-add",
          .args = "{\"type\":\"nbd\",\"id\":\"vireo-export-disk1\",\"node-name\":\"disk1\","
                  "\"name\":\"disk1\",\"writable\":true}",
          .send = { OK } },
        { .expect = "nbd-server-stop", .send = { OK } },
        { .expect = "cont", .send = { OK } },
        { .expect = "announce-self",
          .args = "{\"initial\":50,\"max\":550,\"rounds\":5,\"step\":100}",
          .send = { OK } },
        /* Again, over a unix socket; the second export fails. */
        EXPORT_START_UNIX,
        { .expect = "block-export-add",
          .args = "{\"type\":\"nbd\",\"id\":\"vireo-export-disk0\",\"node-name\":\"disk0\","
                  "\"name\":\"root\",\"writable\":true}",
          .send = { OK } },
        { .expect = "block-export-add",
          .args = "{\"type\":\"nbd\",\"id\":\"vireo-export-disk1\",\"node-name\":\"disk1\","
                  "\"name\":\"disk1\",\"writable\":true}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Cannot find device="
                    "'disk1' nor node-name='disk1'\"},\"id\":$ID}\n" } },
        { .expect = "nbd-server-stop", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    VoHvMirrorPlan tcp = PLAN;
    tcp.uri = "tcp:10.0.0.2:49153";
    assert_int_equal(vo_qemu_mirror_export(vm, &tcp, &error), 0);
    assert_true(vm->nbd_serving);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, true, &error),
                     0);
    assert_false(vm->nbd_serving);
    assert_int_equal(vo_qemu_mirror_export(vm, &PLAN, &error), -EIO);
    assert_non_null(strstr(error, "disk1"));
    assert_false(vm->nbd_serving);
    free(error);
    /* Bad plans never reach QEMU. */
    VoHvMirrorPlan bad = PLAN;
    bad.uri = "nbd://x";
    error = NULL;
    assert_int_equal(vo_qemu_mirror_export(vm, &bad, &error), -EINVAL);
    free(error);
    bad = PLAN;
    bad.n_disks = 0;
    error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &bad, &error), -EINVAL);
    assert_non_null(strstr(error, "at least one disk"));
    free(error);
    instance_close(&f);
}

/* The guest runs: its vCPUs stop before a job is cancelled and run again
 * once the jobs and nodes are gone. */
#define ABORT_STEPS(status0, status1)                                                         \
    { .expect = "query-jobs",                                                                 \
      .send = { JOBS(JOB(0, status0, 10, 100, ""), JOB(1, status1, 400, 400, "")) } },         \
    { .expect = "query-status", .send = { RUNNING } },                                        \
    { .expect = "stop", .send = { OK } },                                                     \
    { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk0\",\"force\":true}", \
      .send = { OK } },                                                                       \
    { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk1\",\"force\":true}", \
      .send = { OK } },                                                                       \
    { .expect = "query-jobs",                                                                 \
      .send = { JOBS(JOB(0, "concluded", 10, 100, ",\"error\":\"Operation cancelled\""),       \
                     JOB(1, "concluded", 400, 400, ",\"error\":\"Operation cancelled\"")) } }, \
    { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk0\"}", .send = { OK } },   \
    { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk1\"}", .send = { OK } },   \
    { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk0\"}", .send = { OK } }, \
    { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk1\"}", .send = { OK } }, \
    { .expect = "cont", .send = { OK } }

/* Cancel in the disk phase: the jobs are cancelled (force), dismissed, the
 * NBD nodes dropped; nothing to resume (no migration ran). */
static void test_cancel_disk_phase(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS,
        { .expect = "migrate_cancel", .send = { OK } },
        ABORT_STEPS("running", "ready"),
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), 0);
    assert_int_equal(vo_qemu_migrate_cancel(vm, &error), 0);
    assert_null(vm->mirror);
    /* Nothing is left to end: finish sends nothing (the VM never stopped). */
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    VoHvMirrorProgress p;
    assert_int_equal(vo_qemu_mirror_query(vm, &p), -ENOENT);
    free(p.error);
    instance_close(&f);
}

/* Cancel in the memory phase: migrate_cancel, the (ready) mirrors
 * cancelled; the failed finish resumes the source. */
static void test_cancel_memory_phase(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS,
        MIGRATE_START_STEPS("false"),
        { .expect = "migrate_cancel", .send = { OK } },
        ABORT_STEPS("ready", "ready"),
        { .expect = "cont", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), 0);
    assert_int_equal(vo_qemu_migrate_start(vm, "unix:/run/x/mig.sock", NULL, &error), 0);
    assert_int_equal(vo_qemu_migrate_cancel(vm, &error), 0);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_null(error);
    instance_close(&f);
}

/* A mirror job fails: mirror_query says which and why; migrate_start
 * refuses while a disk is not in sync; the failed finish cleans up. */
static void test_mirror_fails(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS,
        { .expect = "query-status",
          .send = { "{\"return\":{\"status\":\"running\",\"running\":true},\"id\":$ID}\n" } },
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "running", 10, 100, ""), JOB(1, "ready", 400, 400, "")) } },
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "concluded", 10, 100,
                             ",\"error\":\"Could not write to NBD server: Connection reset\""),
                         JOB(1, "ready", 400, 400, "")) } },
        /* finish (failed): only the running job is cancelled; the guest is
         * paused already (nothing to stop, nothing to resume). */
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "concluded", 10, 100, ",\"error\":\"x\""),
                         JOB(1, "ready", 400, 400, "")) } },
        { .expect = "query-status", .send = { PAUSED } },
        { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk1\",\"force\":true}",
          .send = { OK } },
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "concluded", 10, 100, ",\"error\":\"x\""),
                         JOB(1, "concluded", 400, 400, "")) } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk0\"}", .send = { OK } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk1\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk0\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk1\"}", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), 0);
    assert_int_equal(vo_qemu_migrate_start(vm, "unix:/run/x/mig.sock", NULL, &error), -EBUSY);
    assert_non_null(strstr(error, "not in sync"));
    free(error);
    error = NULL;
    VoHvMirrorProgress p;
    assert_int_equal(vo_qemu_mirror_query(vm, &p), -EIO);
    assert_false(p.ready);
    assert_non_null(strstr(p.error, "disk 0"));
    assert_non_null(strstr(p.error, "Connection reset"));
    free(p.error);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_null(vm->mirror);
    instance_close(&f);
}

/* A re-attached QEMU (an earlier vireod died mid-migration): its mirrors
 * are unknown to this instance, so the failed finish (the recovery's) finds
 * them by name: the job still running is cancelled, both dismissed, both
 * NBD nodes dropped; others' jobs and nodes are left. Asked once: a second
 * finish sends nothing. A re-attached destination stops an NBD server it
 * may still run (an error: none) before it continues. */
static void test_leftovers_of_an_earlier_vireod(void **state)
{
    (void)state;
    static const Step steps[] = {
        GREETING, CAPS,
        { .expect = "query-jobs",
          .send = { "{\"return\":[" JOB(0, "concluded", 10, 100, ",\"error\":\"NBD gone\"") ","
                    JOB(1, "ready", 400, 400, "") ","
                    "{\"id\":\"other-job\",\"type\":\"backup\",\"status\":\"running\"}"
                    "],\"id\":$ID}\n" } },
        { .expect = "query-named-block-nodes", .args = "{\"flat\":true}",
          .send = { "{\"return\":[{\"node-name\":\"disk0\"},{\"node-name\":\"vireo-nbd-disk0\"},"
                    "{\"node-name\":\"vireo-nbd-disk1\"}],\"id\":$ID}\n" } },
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "concluded", 10, 100, ",\"error\":\"NBD gone\""),
                         JOB(1, "ready", 400, 400, "")) } },
        { .expect = "query-status", .send = { RUNNING } },
        { .expect = "stop", .send = { OK } },
        { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk1\",\"force\":true}",
          .send = { OK } },
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "concluded", 10, 100, ",\"error\":\"NBD gone\""),
                         JOB(1, "concluded", 400, 400, "")) } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk0\"}", .send = { OK } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk1\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk0\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk1\"}", .send = { OK } },
        { .expect = "cont", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    vm->mirror_unknown = true; /* as qemu_attach sets it */
    char *error = NULL;
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_null(error);
    assert_false(vm->mirror_unknown);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    instance_close(&f);

    static const Step dest[] = {
        GREETING, CAPS,
        { .expect = "nbd-server-stop",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"NBD server not "
                    "running\"},\"id\":$ID}\n" } },
        { .expect = "cont", .send = { OK } },
        { .expect = "announce-self",
          .args = "{\"initial\":50,\"max\":550,\"rounds\":5,\"step\":100}", .send = { OK } },
        { 0 }
    };
    vm = instance_open(&f, dest);
    vm->mirror_unknown = true;
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_DESTINATION, true, true, &error),
                     0);
    assert_null(error);
    instance_close(&f);
}

/* A mirror that is not ready at pre-switchover (it fell out of sync):
 * nothing is completed, the migration is cancelled and reported failed. */
static void test_switchover_not_ready(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS,
        { .expect = "query-migrate",
          .send = { "{\"return\":{\"status\":\"pre-switchover\"},\"id\":$ID}\n" } },
        { .expect = "query-jobs",
          .send = { JOBS(JOB(0, "ready", 100, 100, ""),
                         JOB(1, "concluded", 300, 400, ",\"error\":\"Input/output error\"")) } },
        { .expect = "migrate_cancel", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), 0);
    VoHvMigrationProgress m;
    assert_int_equal(vo_qemu_migrate_query(vm, &m), 0);
    assert_int_equal(m.status, VO_HV_MIGRATION_FAILED);
    assert_non_null(strstr(m.error, "Input/output error"));
    free(m.error);
    instance_close(&f);
}

/* A start that fails half-way leaves nothing: the first job cancelled, both
 * NBD nodes dropped. */
static void test_start_fails_halfway(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        MIRROR_START_STEPS_BUT_LAST,
        { .expect = "blockdev-mirror",
          .args = "{\"job-id\":\"vireo-mirror-disk1\",\"device\":\"disk1\",\"target\":"
                  "\"vireo-nbd-disk1\",\"sync\":\"full\",\"copy-mode\":\"write-blocking\","
                  "\"auto-dismiss\":false}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Source and target image "
                    "have different sizes\"},\"id\":$ID}\n" } },
        { .expect = "query-jobs",
          .send = { "{\"return\":[" JOB(0, "running", 0, 100, "") "],\"id\":$ID}\n" } },
        { .expect = "query-status", .send = { PAUSED } },
        { .expect = "block-job-cancel", .args = "{\"device\":\"vireo-mirror-disk0\",\"force\":true}",
          .send = { OK } },
        { .expect = "query-jobs", .send = { "{\"return\":[],\"id\":$ID}\n" } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk0\"}", .send = { OK } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk1\"}",
          .send = { "{\"error\":{\"class\":\"GenericError\",\"desc\":\"Job not found\"},"
                    "\"id\":$ID}\n" } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk0\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk1\"}", .send = { OK } },
        { 0 }
    };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_start(vm, &PLAN, &error), -EIO);
    assert_non_null(strstr(error, "different sizes"));
    assert_null(vm->mirror);
    free(error);
    instance_close(&f);
}

/* A UEFI VM's NVRAM (slot VO_HV_NVRAM_SLOT): the flash's block node
 * (fw-vars) is exported on the destination and mirrored from on the
 * source, under the slot's names; a failed mirror of it names the NVRAM,
 * not "disk 4000" (the VM has no such disk). */
static void test_nvram_slot(void **state)
{
    static const Step steps[] = {
        GREETING, CAPS,
        /* Destination. */
        EXPORT_START_UNIX,
        { .expect = "block-export-add",
          .args = "{\"type\":\"nbd\",\"id\":\"vireo-export-disk4000\",\"node-name\":"
                  "\"fw-vars\",\"name\":\"disk4000\",\"writable\":true}",
          .send = { OK } },
        /* Source. */
        { .expect = "blockdev-add",
          .args = "{\"driver\":\"nbd\",\"node-name\":\"vireo-nbd-disk4000\",\"server\":"
                  "{\"path\":\"/run/x/nbd.sock\",\"type\":\"unix\"},\"export\":\"disk4000\"}",
          .send = { OK } },
        { .expect = "blockdev-mirror",
          .args = "{\"job-id\":\"vireo-mirror-disk4000\",\"device\":\"fw-vars\",\"target\":"
                  "\"vireo-nbd-disk4000\",\"sync\":\"full\",\"copy-mode\":\"write-blocking\","
                  "\"auto-dismiss\":false}",
          .send = { OK } },
        { .expect = "query-jobs",
          .send = { "{\"return\":[" JOB(4000, "concluded", 10, 100, ",\"error\":\"Connection "
                    "reset\"") "],\"id\":$ID}\n" } },
        /* finish (failed): the job concluded already: dismissed, node dropped. */
        { .expect = "query-jobs",
          .send = { "{\"return\":[" JOB(4000, "concluded", 10, 100, ",\"error\":\"x\"")
                    "],\"id\":$ID}\n" } },
        { .expect = "query-jobs",
          .send = { "{\"return\":[" JOB(4000, "concluded", 10, 100, ",\"error\":\"x\"")
                    "],\"id\":$ID}\n" } },
        { .expect = "job-dismiss", .args = "{\"id\":\"vireo-mirror-disk4000\"}", .send = { OK } },
        { .expect = "blockdev-del", .args = "{\"node-name\":\"vireo-nbd-disk4000\"}",
          .send = { OK } },
        { 0 }
    };
    static const VoHvMirrorDisk NVRAM[] = { { .slot = VO_HV_NVRAM_SLOT } };
    const VoHvMirrorPlan plan = { .uri = "unix:/run/x/nbd.sock", .disks = NVRAM, .n_disks = 1 };
    Fixture f;
    VoHvInstance *vm = instance_open(&f, steps);
    char *error = NULL;
    assert_int_equal(vo_qemu_mirror_export(vm, &plan, &error), 0);
    vm->nbd_serving = false; /* the same monitor plays the source next */
    assert_int_equal(vo_qemu_mirror_start(vm, &plan, &error), 0);
    VoHvMirrorProgress p;
    assert_int_equal(vo_qemu_mirror_query(vm, &p), -EIO);
    assert_non_null(strstr(p.error, "the mirror of the UEFI NVRAM failed: Connection reset"));
    assert_null(strstr(p.error, "4000"));
    free(p.error);
    assert_int_equal(vo_qemu_migrate_finish(vm, VO_HV_MIGRATION_SOURCE, false, false, &error), 0);
    assert_null(vm->mirror);
    instance_close(&f);
}

/* ---- the fake driver ---- */

static char fault_dir[64];

static void fault(const char *op, const char *err)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", fault_dir, op);
    assert_int_equal(vo_write_file_atomic(path, err, strlen(err)), 0);
}

static const char FAKE_SPEC[] =
    "{\"id\":\"6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b11\",\"name\":\"mir\",\"kernel\":{\"image\":\"k\"},"
    "\"memory_mib\":64,\"disks\":[{\"volume\":\"d/a\"},{\"volume\":\"d/b\"}]}";

static void test_fake(void **state)
{
    snprintf(fault_dir, sizeof(fault_dir), "/tmp/vireo-test-fake-XXXXXX");
    assert_non_null(mkdtemp(fault_dir));
    setenv("VIREO_FAKE_FAULTS", fault_dir, 1);
    _cleanup_free_ char *src_dir = vo_asprintf("%s/src", fault_dir);
    _cleanup_free_ char *dst_dir = vo_asprintf("%s/dst", fault_dir);
    VoVmSpec *spec = test_spec_resolved(FAKE_SPEC);
    char *error = NULL, *layout = NULL;
    VoHvDriver *d = NULL;
    assert_int_equal(vo_fake_driver_new(&d), 0);
    VoHvInstance *src = NULL, *dst = NULL;
    assert_int_equal(d->start(d, spec, src_dir, NULL, &src, &error), 0);
    assert_int_equal(d->resume(src), 0);
    assert_int_equal(d->layout(src, &layout, &error), 0);
    assert_int_equal(d->migrate_prepare(d, spec, layout, dst_dir, NULL, "unix:/tmp/m.sock", false, NULL, &dst,
                                        &error), 0);
    /* Faults, a slot the VM lacks, exports on a source: refused. */
    fault("mirror_export", "ENOSPC");
    assert_int_equal(d->mirror_export(dst, &PLAN, &error), -ENOSPC);
    free(error);
    error = NULL;
    VoHvMirrorDisk missing = { .slot = 5 };
    VoHvMirrorPlan bad = { .uri = "unix:/tmp/n.sock", .disks = &missing, .n_disks = 1 };
    assert_int_equal(d->mirror_export(dst, &bad, &error), -ENOENT);
    free(error);
    error = NULL;
    assert_int_equal(d->mirror_export(src, &PLAN, &error), -EINVAL);
    free(error);
    error = NULL;
    assert_int_equal(d->mirror_export(dst, &PLAN, &error), 0);
    fault("mirror_start", "ETIMEDOUT");
    assert_int_equal(d->mirror_start(src, &PLAN, &error), -ETIMEDOUT);
    free(error);
    error = NULL;

    /* A mirror that fails, then a cancel (disk phase). */
    assert_int_equal(d->mirror_start(src, &PLAN, &error), 0);
    VoHvMirrorProgress p;
    assert_int_equal(d->mirror_query(src, &p), 0);
    fault("mirror", "EIO");
    assert_int_equal(d->mirror_query(src, &p), -EIO);
    assert_non_null(strstr(p.error, "injected fault"));
    free(p.error);
    assert_int_equal(d->migrate_start(src, "unix:/tmp/m.sock", NULL, &error), -EBUSY);
    free(error);
    error = NULL;
    assert_int_equal(d->migrate_cancel(src, &error), 0);
    assert_int_equal(d->mirror_query(src, &p), -ENOENT);
    free(p.error);

    /* The whole script: a quarter of each disk per query, ready at the
     * fourth, migrate_start refused before; then the memory. */
    assert_int_equal(d->mirror_start(src, &PLAN, &error), 0);
    for (int i = 1; i <= 4; i++) {
        if (i < 4) {
            assert_int_equal(d->migrate_start(src, "unix:/tmp/m.sock", NULL, &error), -EBUSY);
            free(error);
            error = NULL;
        }
        assert_int_equal(d->mirror_query(src, &p), 0);
        assert_int_equal(p.n_disks, 2);
        assert_int_equal(p.total, 2ull << 30);
        assert_int_equal(p.transferred, (uint64_t)i * (512ull << 20));
        assert_int_equal(p.ready, i == 4);
    }
    assert_int_equal(d->migrate_start(src, "unix:/tmp/m.sock", NULL, &error), 0);
    VoHvMigrationProgress m;
    for (int i = 0; i < 4; i++)
        assert_int_equal(d->migrate_query(src, &m), 0);
    assert_int_equal(m.status, VO_HV_MIGRATION_COMPLETED);
    assert_int_equal(d->mirror_query(src, &p), 0);
    assert_true(p.ready);
    assert_int_equal(d->migrate_finish(dst, VO_HV_MIGRATION_DESTINATION, true, true, &error), 0);
    assert_int_equal(d->migrate_finish(src, VO_HV_MIGRATION_SOURCE, true, false, &error), 0);
    d->release(src);
    d->release(dst);
    free(layout);
    vo_vm_spec_free(spec);
    free(d->kvm_reason);
    free(d);
    vo_rm_rf(fault_dir);
    unsetenv("VIREO_FAKE_FAULTS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_order),
        cmocka_unit_test(test_post_copy_order),
        cmocka_unit_test(test_destination_exports),
        cmocka_unit_test(test_cancel_disk_phase),
        cmocka_unit_test(test_cancel_memory_phase),
        cmocka_unit_test(test_mirror_fails),
        cmocka_unit_test(test_leftovers_of_an_earlier_vireod),
        cmocka_unit_test(test_switchover_not_ready),
        cmocka_unit_test(test_start_fails_halfway),
        cmocka_unit_test(test_nvram_slot),
        cmocka_unit_test(test_fake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
