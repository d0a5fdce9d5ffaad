/* test-fence-state.c: the fence's shared files and decisions
 * (fence/fence-state.h): the deadline, when a lease is armed, fence.state
 * read/write, pid file checks against /proc/PID/cmdline, and the HA kill
 * list (a reused pid is left alone, a post-copy source kept). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
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
    /* At start: a deadline past or within a TTL is this boot's; one further
     * ahead is of an earlier boot (the monotonic clock restarted). */
    assert_true(vo_fence_state_plausible(90000, until, 6000));
    assert_true(vo_fence_state_plausible(1000, until, 6000));
    assert_false(vo_fence_state_plausible(1000, 900000000, 6000));
}

/* Right after `cluster init`/`join` on a busy machine the first grant
 * (a new TLS connection, an etcd that just started) can take seconds. A
 * lease armed by it with its deadline passed, or so near that the next
 * renewal cannot be confirmed in time, fenced a host over a lease that was
 * never in danger and under which nothing ran. */
static void test_arming_after_a_slow_grant(void **state)
{
    VoFenceLease s = { 0 };
    /* A grant sent at 1000 confirmed at 4900 (3.9 s): its deadline 5000
     * leaves 100 ms; not armed, so nothing to fence at 5000. */
    assert_false(vo_fence_confirmed(&s, 7, 1000, 4900));
    assert_int_equal(s.lease, 7);
    assert_int_equal(s.confirmed_until, 0);
    assert_false(vo_fence_expired(5000, s.confirmed_until));
    assert_false(vo_fence_expired(60000, s.confirmed_until));
    /* Confirmed after its deadline (4.5 s): not armed either. */
    VoFenceLease late = { 0 };
    assert_false(vo_fence_confirmed(&late, 8, 1000, 5500));
    assert_false(vo_fence_expired(5500, late.confirmed_until));
    /* The next keepalive, sent at 4900 and confirmed in 500 ms, arms it
     * until 8900 (3.5 s left for the next one). */
    assert_true(vo_fence_confirmed(&s, 7, 4900, 5400));
    assert_int_equal(s.confirmed_until, 8900);
    /* Armed, it does its job: no confirmed renewal by 8900 fences. */
    assert_false(vo_fence_expired(8899, s.confirmed_until));
    assert_true(vo_fence_expired(8900, s.confirmed_until));
    /* A slow renewal of an armed lease still counts (its deadline moves
     * on, as before): the lease held all along. */
    assert_true(vo_fence_confirmed(&s, 7, 5900, 8800));
    assert_int_equal(s.confirmed_until, 9900);
    /* The edge: a grant that took as long as it leaves the next renewal
     * (2 s of 4) arms; a millisecond more does not. */
    VoFenceLease edge = { 0 };
    assert_true(vo_fence_confirmed(&edge, 9, 1000, 3000));
    assert_int_equal(edge.confirmed_until, 5000);
    edge = (VoFenceLease){ 0 };
    assert_false(vo_fence_confirmed(&edge, 9, 1000, 3001));
}

/* The store says the lease is gone: an armed one fences, one never armed
 * (nothing ran under it) is only dropped. */
static void test_lease_lost(void **state)
{
    VoFenceLease s = { 0 };
    assert_false(vo_fence_confirmed(&s, 7, 1000, 4900));
    assert_false(vo_fence_lost(&s));
    assert_int_equal(s.lease, 0);
    assert_true(vo_fence_confirmed(&s, 8, 6000, 6100));
    assert_true(vo_fence_lost(&s));
    assert_int_equal(s.lease, 0);
    assert_int_equal(s.confirmed_until, 0);
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

/* vireod's view of RUN/fence.state: a lease while its deadline is ahead,
 * and never one of an earlier boot's clock (a run dir that outlived a
 * reboot: vireod may read it before the fence removes it, and it named no
 * lease the fence holds). */
static void test_state_confirmed(void **state)
{
    _cleanup_free_ char *path = vo_asprintf("%s/fence.state", dir);
    int64_t lease = -1;
    assert_int_equal(vo_fence_state_confirmed(path, 10000, &lease), -ENOENT);
    assert_int_equal(vo_fence_state_write(path, 42, 13000), 0);
    assert_int_equal(vo_fence_state_confirmed(path, 10000, &lease), 0);
    assert_int_equal(lease, 42);
    lease = -1;
    assert_int_equal(vo_fence_state_confirmed(path, 13000, &lease), -ENOENT);
    assert_int_equal(vo_fence_state_write(path, 43, 900000000), 0);
    assert_int_equal(vo_fence_state_confirmed(path, 10000, &lease), -ENOENT);
    assert_int_equal(lease, -1);
}

/* A child that sleeps with `tag` in its command line ($0 of sh). */
static pid_t spawn_tagged(const char *tag)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* Its own group (the sleep below it is killed with it at the end),
         * and not holding the test's output open. */
        setpgid(0, 0);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
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
    kill(-a, SIGKILL); /* the sleeps of both shells */
    kill(-b, SIGKILL);
    waitpid(b, NULL, 0);
    /* Removed: the next fence finds nothing of it; removing twice is fine. */
    assert_int_equal(vo_fence_ha_remove(dir, ours), 0);
    assert_int_equal(vo_fence_ha_remove(dir, ours), 0);
    assert_int_equal(vo_fence_ha_remove(dir, reused), 0);
    killed = vo_fence_kill_ha(dir);
    assert_int_equal(json_array_size(killed), 0);
    json_decref(killed);
}

/* A post-copy source kept (its mark): listed, never killed; unmarked, it
 * is killed as any HA QEMU. */
static void test_kill_ha_keeps_a_post_copy_source(void **state)
{
    const char *vm = "vm-3333-cccc";
    pid_t a = spawn_tagged(vm);
    assert_int_equal(vo_fence_ha_write(dir, vm, a), 0);
    assert_int_equal(vo_fence_post_copy_marked(dir, vm, a, NULL), 0);
    assert_int_equal(vo_fence_post_copy_mark(dir, vm, "host-2", a), 0);
    _cleanup_free_ char *to = NULL;
    assert_int_equal(vo_fence_post_copy_marked(dir, vm, a, &to), 1);
    assert_string_equal(to, "host-2");
    assert_int_equal(vo_fence_post_copy_marked(dir, vm, -1, NULL), 1);
    assert_int_equal(vo_fence_post_copy_mark(dir, "../escape", "host-2", a), -EINVAL);
    json_t *killed = vo_fence_kill_ha(dir);
    assert_int_equal(json_array_size(killed), 1);
    json_t *o = json_array_get(killed, 0);
    assert_false(json_is_true(json_object_get(o, "killed")));
    assert_string_equal(json_string_value(json_object_get(o, "kept")), "post-copy source");
    json_decref(killed);
    int status = 0;
    assert_int_equal(waitpid(a, &status, WNOHANG), 0); /* still alive */
    assert_int_equal(vo_fence_post_copy_unmark(dir, vm), 0);
    assert_int_equal(vo_fence_post_copy_unmark(dir, vm), 0);
    killed = vo_fence_kill_ha(dir);
    assert_true(json_is_true(json_object_get(json_array_get(killed, 0), "killed")));
    json_decref(killed);
    assert_int_equal(waitpid(a, &status, 0), a);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    kill(-a, SIGKILL);
}

/* A mark keeps only the QEMU it names, and only when it can be read: one a
 * dead vireod left for an earlier QEMU of the VM, or one the fence cannot
 * read, must not keep a running HA guest from the fence (the manager
 * starts it elsewhere: two QEMUs would write its disks). */
static void test_kill_ha_kills_despite_a_stale_or_unreadable_mark(void **state)
{
    const char *vm = "vm-4444-dddd", *other = "vm-5555-eeee";
    pid_t a = spawn_tagged(vm), b = spawn_tagged(other);
    assert_int_equal(vo_fence_ha_write(dir, vm, a), 0);
    assert_int_equal(vo_fence_ha_write(dir, other, b), 0);
    /* An earlier QEMU's mark (its pid long gone). */
    assert_int_equal(vo_fence_post_copy_mark(dir, vm, "host-2", a + 100000), 0);
    assert_int_equal(vo_fence_post_copy_marked(dir, vm, a, NULL), 0);
    /* A mark that cannot be read (a directory where the file should be). */
    _cleanup_free_ char *unreadable = vo_asprintf("%s/" VO_FENCE_POST_COPY_DIR "/%s", dir,
                                                  other);
    assert_int_equal(vo_mkdir_p(unreadable, 0750), 0);
    assert_int_equal(vo_fence_post_copy_marked(dir, other, b, NULL), 0);
    assert_int_equal(vo_fence_post_copy_marked(dir, other, -1, NULL), 0);
    json_t *killed = vo_fence_kill_ha(dir);
    assert_int_equal(json_array_size(killed), 2);
    size_t i;
    json_t *o;
    json_array_foreach(killed, i, o) {
        assert_true(json_is_true(json_object_get(o, "killed")));
        assert_null(json_object_get(o, "kept"));
    }
    json_decref(killed);
    int status = 0;
    assert_int_equal(waitpid(a, &status, 0), a);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_int_equal(waitpid(b, &status, 0), b);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    kill(-a, SIGKILL);
    kill(-b, SIGKILL);
}

/* Fenced again before vireod reconciled: the VMs killed the first time
 * stay in RUN/fenced (vireod starts them again from that list). */
static void test_merge_killed(void **state)
{
    json_t *vms = json_pack("[{s:s, s:i, s:b}]", "vm", "b", "pid", 12, "killed", 1);
    vo_fence_merge_killed(vms, NULL);
    vo_fence_merge_killed(vms, "not json");
    assert_int_equal(json_array_size(vms), 1);
    vo_fence_merge_killed(vms, "{\"vms\": [{\"vm\": \"a\", \"pid\": 10, \"killed\": true},"
                               " {\"vm\": \"b\", \"pid\": 11, \"killed\": true},"
                               " {\"vm\": \"c\", \"pid\": 13, \"killed\": false}]}");
    assert_int_equal(json_array_size(vms), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(vms, 0), "vm")), "b");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(vms, 0), "pid")), 12);
    assert_string_equal(json_string_value(json_object_get(json_array_get(vms, 1), "vm")), "a");
    assert_true(json_is_true(json_object_get(json_array_get(vms, 1), "killed")));
    json_decref(vms);
}

/* RUN/fenced goes only when it names the lease vireod reconciled for; the
 * killed VMs are read from it. */
static void test_fenced_clear(void **state)
{
    _cleanup_free_ char *path = vo_asprintf("%s/fenced", dir);
    assert_false(vo_fence_fenced_clear(path, 5)); /* no file */
    char **none = vo_fence_fenced_killed(path);
    assert_null(none[0]);
    vo_strv_free(none);
    const char *text = "{\"lease\": 5, \"vms\": [{\"vm\": \"a\", \"pid\": 1, \"killed\": true},"
                       " {\"vm\": \"b\", \"pid\": 2, \"killed\": false}]}";
    assert_int_equal(vo_write_file_atomic(path, text, strlen(text)), 0);
    char **killed = vo_fence_fenced_killed(path);
    assert_string_equal(killed[0], "a");
    assert_null(killed[1]);
    vo_strv_free(killed);
    /* Fenced again meanwhile (another lease named): it stays. */
    assert_false(vo_fence_fenced_clear(path, 4));
    assert_int_equal(access(path, F_OK), 0);
    _cleanup_free_ char *aside = vo_asprintf("%s.clearing", path);
    assert_int_equal(access(aside, F_OK), -1);
    assert_true(vo_fence_fenced_clear(path, 5));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(aside, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_arming_after_a_slow_grant),
        cmocka_unit_test(test_lease_lost),
        cmocka_unit_test_setup_teardown(test_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pid_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_ha, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_ha_keeps_a_post_copy_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_ha_kills_despite_a_stale_or_unreadable_mark,
                                        setup, teardown),
        cmocka_unit_test(test_merge_killed),
        cmocka_unit_test_setup_teardown(test_fenced_clear, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
