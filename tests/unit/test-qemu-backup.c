/* test-qemu-backup.c: the backup jobs (qemu/qemu-backup.c) against the
 * scripted QMP server (qmp-server.c): what the transaction asks of QEMU (a
 * bandwidth limit is each job's "speed", shared evenly by the disks; none
 * without one) and a backup cancelled while its jobs run (job-cancel for
 * each, waited for, nodes closed, -ECANCELED, the jobs known failed so no
 * bitmap was synchronised). The target files are made by the real qemu-img.
 * A stopped VM's backup whose qemu-storage-daemon dies midway says how it
 * ended and what it logged last (tests/unit/fake-qsd.py plays the daemon). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "qemu/qemu-backup.h"
#include "qmp-server.h"
#include "util/cancel.h"
#include "util/util.h"

#define OK "{\"return\":{},\"id\":$ID}\n"
#define BITMAP "vireo-backup-0b7c"

typedef struct {
    char dir[64];
    char *targets[2];
    char *add_args[2];
    char *transaction;
    VoHvBackupDisk disks[2];
    VoHvBackupPlan plan;
    Step steps[32];
    size_t n;
} Fixture;

static int progress_calls;
static void count_progress(int percent, void *userdata)
{
    (void)userdata;
    assert_true(percent >= 0 && percent <= 100);
    progress_calls++;
}

static void step(Fixture *f, const char *expect, const char *args, const char *reply)
{
    assert_true(f->n < ELEMENTSOF(f->steps) - 1);
    f->steps[f->n++] = (Step){ .expect = expect, .args = args, .send = { reply } };
}

/* Two disks: slot 0 qcow2 (keeps the bitmap), slot 2 raw (no bitmap); the
 * script up to and including the transaction (speed: each job's, 0 none). */
static void setup(Fixture *f, uint64_t plan_speed, uint64_t job_speed)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vireo-test-backup-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    static const unsigned slots[2] = { 0, 2 };
    for (size_t i = 0; i < 2; i++) {
        f->targets[i] = vo_asprintf("%s/disk%u.qcow2", f->dir, slots[i]);
        f->disks[i] = (VoHvBackupDisk){ .slot = slots[i], .path = "/nonexistent",
                                        .format = i == 0 ? VO_DISK_QCOW2 : VO_DISK_RAW,
                                        .virtual_size = 1 << 20, .target_path = f->targets[i] };
        f->add_args[i] = vo_asprintf("{\"driver\":\"qcow2\",\"node-name\":\"vireo-target%u\","
                                     "\"file\":{\"driver\":\"file\",\"filename\":\"%s\"},"
                                     "\"backing\":null}", slots[i], f->targets[i]);
    }
    f->plan = (VoHvBackupPlan){ .disks = f->disks, .n_disks = 2, .bitmap = BITMAP,
                                .work_dir = f->dir, .speed = plan_speed,
                                .progress = count_progress };
    _cleanup_free_ char *speed = job_speed ? vo_asprintf(",\"speed\":%llu",
                                                         (unsigned long long)job_speed)
                                           : vo_strdup("");
    f->transaction = vo_asprintf(
        "{\"actions\":["
        "{\"type\":\"blockdev-backup\",\"data\":{\"job-id\":\"vireo-backup0\",\"device\":\"disk0\","
        "\"target\":\"vireo-target0\",\"sync\":\"full\",\"auto-dismiss\":false%s,"
        "\"bitmap\":\"" BITMAP "\",\"bitmap-mode\":\"on-success\"}},"
        "{\"type\":\"blockdev-backup\",\"data\":{\"job-id\":\"vireo-backup2\",\"device\":\"disk2\","
        "\"target\":\"vireo-target2\",\"sync\":\"full\",\"auto-dismiss\":false%s}}],"
        "\"properties\":{\"completion-mode\":\"grouped\"}}", speed, speed);
    f->steps[f->n++] = (Step)GREETING;
    f->steps[f->n++] = (Step)CAPS;
    /* Leftovers of an earlier backup: none. */
    step(f, "query-jobs", NULL, "{\"return\":[],\"id\":$ID}\n");
    step(f, "query-named-block-nodes", "{\"flat\":true}", "{\"return\":[],\"id\":$ID}\n");
    /* The bitmap of the qcow2 disk is there and usable: nothing to add. */
    step(f, "query-named-block-nodes", "{\"flat\":true}",
         "{\"return\":[{\"node-name\":\"disk0\",\"dirty-bitmaps\":[{\"name\":\"" BITMAP "\","
         "\"busy\":false,\"inconsistent\":false}]},{\"node-name\":\"disk2\"}],\"id\":$ID}\n");
    step(f, "blockdev-add", f->add_args[0], OK);
    step(f, "blockdev-add", f->add_args[1], OK);
    step(f, "transaction", f->transaction, OK);
}

/* The jobs are dismissed and the targets closed, whatever the outcome. */
static void teardown_steps(Fixture *f)
{
    step(f, "job-dismiss", "{\"id\":\"vireo-backup0\"}", OK);
    step(f, "job-dismiss", "{\"id\":\"vireo-backup2\"}", OK);
    step(f, "blockdev-del", "{\"node-name\":\"vireo-target0\"}", OK);
    step(f, "blockdev-del", "{\"node-name\":\"vireo-target2\"}", OK);
}

static int run(Fixture *f, VoHvBackupResult *result, char **error)
{
    Server server;
    VoQmp *qmp = client_open(&server, f->steps);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    int r = vo_qemu_backup_over_qmp(qmp, &lock, &f->plan, result, error);
    vo_qmp_close(qmp);
    server_join(&server);
    return r;
}

static void cleanup(Fixture *f)
{
    for (size_t i = 0; i < 2; i++) {
        unlink(f->targets[i]);
        free(f->targets[i]);
        free(f->add_args[i]);
    }
    free(f->transaction);
    assert_int_equal(rmdir(f->dir), 0);
}

#define JOB(id, status, extra)                                                            \
    "{\"id\":\"" id "\",\"type\":\"backup\",\"status\":\"" status "\",\"current-progress\":" \
    "524288,\"total-progress\":1048576" extra "}"

static void test_bwlimit_is_the_jobs_speed(void **state)
{
    (void)state;
    Fixture f;
    /* 3 MiB/s for two disks: 1.5 MiB/s each. */
    setup(&f, 3 << 20, 3 << 19);
    step(&f, "query-jobs", NULL,
         "{\"return\":[" JOB("vireo-backup0", "concluded", "") "," JOB("vireo-backup2",
         "concluded", "") "],\"id\":$ID}\n");
    teardown_steps(&f);
    VoHvBackupResult result = { 0 };
    char *error = NULL;
    progress_calls = 0;
    assert_int_equal(run(&f, &result, &error), 0);
    assert_null(error);
    assert_false(result.incremental);
    assert_true(progress_calls >= 1);
    free(result.reason);
    cleanup(&f);

    /* A limit smaller than the disks: each job still gets 1 byte/s, never 0
     * (which QEMU reads as "no limit"). */
    setup(&f, 1, 1);
    step(&f, "query-jobs", NULL,
         "{\"return\":[" JOB("vireo-backup0", "concluded", "") "," JOB("vireo-backup2",
         "concluded", "") "],\"id\":$ID}\n");
    teardown_steps(&f);
    result = (VoHvBackupResult){ 0 };
    assert_int_equal(run(&f, &result, &error), 0);
    free(result.reason);
    cleanup(&f);
}

static VoCancel *token;
static void cancel_now(int fd)
{
    (void)fd;
    vo_cancel_request(token);
}

static void test_cancel_while_the_jobs_run(void **state)
{
    (void)state;
    Fixture f;
    setup(&f, 0, 0); /* no limit: no "speed" at all */
    /* Cancel is asked once the transaction is under way. */
    f.steps[f.n - 1].custom = cancel_now;
    step(&f, "query-jobs", NULL,
         "{\"return\":[" JOB("vireo-backup0", "running", "") "," JOB("vireo-backup2",
         "running", "") "],\"id\":$ID}\n");
    step(&f, "job-cancel", "{\"id\":\"vireo-backup0\"}", OK);
    step(&f, "job-cancel", "{\"id\":\"vireo-backup2\"}", OK);
    /* Waited for: first still going, then concluded as cancelled. */
    step(&f, "query-jobs", NULL,
         "{\"return\":[" JOB("vireo-backup0", "aborting", "") "," JOB("vireo-backup2",
         "concluded", ",\"error\":\"Operation canceled\"") "],\"id\":$ID}\n");
    step(&f, "query-jobs", NULL,
         "{\"return\":[" JOB("vireo-backup0", "concluded", ",\"error\":\"Operation canceled\"")
         "," JOB("vireo-backup2", "concluded", ",\"error\":\"Operation canceled\"")
         "],\"id\":$ID}\n");
    teardown_steps(&f);
    /* The guest was stopped by an I/O error meanwhile (a guest write the
     * copy-before-write filter could not copy to a full target): with the
     * jobs and their filter gone, it is resumed. */
    step(&f, "query-status", NULL,
         "{\"return\":{\"status\":\"io-error\",\"running\":false},\"id\":$ID}\n");
    step(&f, "cont", NULL, OK);
    token = vo_cancel_new();
    assert_non_null(token);
    vo_cancel_set_current(token);
    VoHvBackupResult result = { 0 };
    char *error = NULL;
    assert_int_equal(run(&f, &result, &error), -ECANCELED);
    vo_cancel_set_current(NULL);
    vo_cancel_free(token);
    assert_non_null(error);
    assert_non_null(strstr(error, "cancelled"));
    /* Concluded with an error: no bitmap was synchronised, the base stands. */
    assert_true(result.jobs_failed);
    free(error);
    free(result.reason);
    cleanup(&f);
}

/* A stopped VM's backup whose qemu-storage-daemon (tests/unit/fake-qsd.py)
 * dies at its first command after the handshake: the error says how it
 * ended and what its log says last, not just "Connection reset by peer". */
static void qsd_dies(const char *how, const char *expect)
{
    char dir[] = "/tmp/vireo-test-qsd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *target = vo_asprintf("%s/disk0.qcow2", dir);
    VoHvBackupDisk disk = { .slot = 0, .path = "/nonexistent", .format = VO_DISK_QCOW2,
                            .virtual_size = 1 << 20, .target_path = target };
    VoHvBackupPlan plan = { .disks = &disk, .n_disks = 1, .bitmap = BITMAP, .work_dir = dir };
    setenv("VIREO_QEMU_STORAGE_DAEMON", FAKE_QSD, 1);
    setenv("FAKE_QSD_END", how, 1);
    VoHvBackupResult result = { 0 };
    char *error = NULL;
    int r = vo_qemu_backup_offline(&plan, &result, &error);
    unsetenv("VIREO_QEMU_STORAGE_DAEMON");
    unsetenv("FAKE_QSD_END");
    assert_int_equal(r, -ECONNRESET);
    assert_non_null(error);
    assert_non_null(strstr(error, expect));
    assert_non_null(strstr(error, "in the middle of the backup (Connection reset by peer)"));
    assert_non_null(strstr(error, "its log ends: fake-qsd: dying at query-jobs"));
    assert_true(result.jobs_failed);
    free(error);
    free(result.reason);
    /* Its socket and pidfile are gone; its log stays for whoever looks. */
    _cleanup_free_ char *log = vo_asprintf("%s/backup-qsd.log", dir);
    assert_int_equal(unlink(log), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_storage_daemon_killed_mid_backup(void **state)
{
    (void)state;
    qsd_dies("kill", "qemu-storage-daemon was killed by signal 9 (Killed)");
}

static void test_storage_daemon_exits_mid_backup(void **state)
{
    (void)state;
    qsd_dies("exit", "qemu-storage-daemon exited with status 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bwlimit_is_the_jobs_speed),
        cmocka_unit_test(test_cancel_while_the_jobs_run),
        cmocka_unit_test(test_storage_daemon_killed_mid_backup),
        cmocka_unit_test(test_storage_daemon_exits_mid_backup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
