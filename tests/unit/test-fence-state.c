/* test-fence-state.c: the fence's shared files and decisions
 * (fence/fence-state.h): the deadline, fence.state read/write, pid file
 * checks against /proc/PID/cmdline, and the HA kill list (a reused pid is
 * left alone). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fence/fence-state.h"
#include "util/util.h"

static char dir[64];

static int setup(void **state)
{
    strcpy(dir, "/tmp/vireo-test-fence-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    return vo_rm_rf(dir);
}

static void test_deadline(void **state)
{
    /* Sent at 1000, TTL 6 s, margin 2 s: trusted until 5000, fenced at it. */
    int64_t until = vo_fence_confirmed_until(1000, 6000, 2000);
    assert_int_equal(until, 5000);
    assert_false(vo_fence_expired(4999, until));
    assert_true(vo_fence_expired(5000, until));
    assert_true(vo_fence_expired(90000, until));
    /* Never held a lease: nothing to fence. */
    assert_false(vo_fence_expired(90000, 0));
    /* The lease cannot have expired at the store before we fence: the TTL
     * starts no earlier than the keepalive was sent. */
    assert_true(until < 1000 + 6000);
}

static void test_state_file(void **state)
{
    _cleanup_free_ char *path = vo_asprintf("%s/fence.state", dir);
    int64_t lease = 0, until = 0;
    assert_int_equal(vo_fence_state_read(path, &lease, &until), -ENOENT);
    assert_int_equal(vo_fence_state_write(path, 7587882612345678901LL, 123456), 0);
    assert_int_equal(vo_fence_state_read(path, &lease, &until), 0);
    assert_int_equal(lease, 7587882612345678901LL);
    assert_int_equal(until, 123456);
    /* Rewritten: the new values, no temp file left. */
    assert_int_equal(vo_fence_state_write(path, 42, 99), 0);
    assert_int_equal(vo_fence_state_read(path, &lease, &until), 0);
    assert_int_equal(lease, 42);
    assert_int_equal(until, 99);
    _cleanup_free_ char *tmp = vo_asprintf("%s.tmp.%d", path, (int)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    /* Not such a document: -EINVAL, nothing returned. */
    static const char *const bad[] = { "", "[]", "{\"lease\": 0, \"confirmed_until\": 1}",
                                       "{\"lease\": \"1\", \"confirmed_until\": 1}",
                                       "{\"lease\": 5}" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_int_equal(vo_write_file_atomic(path, bad[i], strlen(bad[i])), 0);
        lease = until = -1;
        assert_int_equal(vo_fence_state_read(path, &lease, &until), -EINVAL);
        assert_int_equal(lease, -1);
    }
}

/* A child that sleeps with `tag` in its command line ($0 of sh). */
static pid_t spawn_tagged(const char *tag)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", tag, "-c", "sleep 30", (char *)NULL);
        _exit(127);
    }
    /* Until exec happened: the command line names the tag. */
    for (int i = 0; i < 200 && !vo_fence_cmdline_has(pid, tag, false); i++)
        usleep(10000);
    return pid;
}

static void test_pid_check(void **state)
{
    _cleanup_free_ char *pidfile = vo_asprintf("%s/fence.pid", dir);
    pid_t pid = 0;
    assert_int_equal(vo_fence_pid_check(pidfile, "sh", NULL, &pid), -ENOENT);
    assert_int_equal(vo_write_file_atomic(pidfile, "abc\n", 4), 0);
    assert_int_equal(vo_fence_pid_check(pidfile, "sh", NULL, &pid), -EINVAL);
    /* This process: alive, but not the program asked for. */
    assert_int_equal(vo_fence_pid_write(pidfile, getpid()), 0);
    assert_int_equal(vo_fence_pid_check(pidfile, VO_FENCE_EXE, NULL, &pid), -ESRCH);
    pid_t child = fork();
    if (child == 0) {
        execl("/bin/sleep", "/bin/sleep", "30", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !vo_fence_cmdline_is(child, "sleep"); i++)
        usleep(10000);
    assert_int_equal(vo_fence_pid_write(pidfile, child), 0);
    assert_int_equal(vo_fence_pid_check(pidfile, "sleep", NULL, &pid), 0);
    assert_int_equal(pid, child);
    assert_int_equal(vo_fence_pid_check(pidfile, "sleep", "30", &pid), 0);
    /* Another run dir's (an argument it lacks): not ours. */
    assert_int_equal(vo_fence_pid_check(pidfile, "sleep", "31", &pid), -ESRCH);
    kill(child, SIGKILL);
    /* A zombie is no live process. */
    for (int i = 0; i < 200 && vo_fence_cmdline_is(child, "sleep"); i++)
        usleep(10000);
    assert_int_equal(vo_fence_pid_check(pidfile, "sleep", NULL, &pid), -ESRCH);
    waitpid(child, NULL, 0);
    assert_int_equal(vo_fence_pid_check(pidfile, "sleep", NULL, &pid), -ESRCH);
}

static void test_kill_ha(void **state)
{
    const char *ours = "vm-1111-aaaa", *reused = "vm-2222-bbbb";
    pid_t a = spawn_tagged(ours);
    pid_t b = spawn_tagged("some-other-program");
    assert_int_equal(vo_fence_ha_write(dir, ours, a), 0);
    /* The file of a VM whose pid another process has now. */
    assert_int_equal(vo_fence_ha_write(dir, reused, b), 0);
    assert_int_equal(vo_fence_ha_write(dir, "../escape", b), -EINVAL);
    json_t *killed = vo_fence_kill_ha(dir);
    assert_int_equal(json_array_size(killed), 2);
    size_t i;
    json_t *o;
    json_array_foreach(killed, i, o) {
        const char *vm = json_string_value(json_object_get(o, "vm"));
        bool k = json_is_true(json_object_get(o, "killed"));
        assert_true(!strcmp(vm, ours) ? k : !k);
    }
    json_decref(killed);
    int status = 0;
    assert_int_equal(waitpid(a, &status, 0), a);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(waitpid(b, &status, WNOHANG), 0); /* still alive */
    kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    /* Removed: the next fence finds nothing of it; removing twice is fine. */
    assert_int_equal(vo_fence_ha_remove(dir, ours), 0);
    assert_int_equal(vo_fence_ha_remove(dir, ours), 0);
    assert_int_equal(vo_fence_ha_remove(dir, reused), 0);
    killed = vo_fence_kill_ha(dir);
    assert_int_equal(json_array_size(killed), 0);
    json_decref(killed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline),
        cmocka_unit_test_setup_teardown(test_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pid_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_ha, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
