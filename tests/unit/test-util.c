/* test-util.c: size parsing, string vectors, API error mapping, the
 * KVM-usability probe and the periodic thread (util/periodic.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu/qemu-caps.h"
#include "util/periodic.h"
#include "util/spawn.h"
#include "util/unix-socket.h"
#include "util/util.h"
#include "vireo/errors.h"

static void test_parse_size(void **state)
{
    uint64_t v = 0;
    assert_int_equal(vo_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(vo_parse_size("4K", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(vo_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ULL << 20);
    assert_int_equal(vo_parse_size("2g", &v), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(vo_parse_size("1T", &v), 0);
    assert_int_equal(v, 1ULL << 40);
    assert_int_equal(vo_parse_size("3GiB", &v), 0);
    assert_int_equal(v, 3ULL << 30);
    assert_int_equal(vo_parse_size_default_unit("256", 1 << 20, &v), 0);
    assert_int_equal(v, 256ULL << 20);

    assert_int_equal(vo_parse_size("", &v), -EINVAL);
    assert_int_equal(vo_parse_size("M", &v), -EINVAL);
    assert_int_equal(vo_parse_size("-1G", &v), -EINVAL);
    assert_int_equal(vo_parse_size("12X", &v), -EINVAL);
    assert_int_equal(vo_parse_size("1.5G", &v), -EINVAL);
    assert_int_equal(vo_parse_size("10GG", &v), -EINVAL);
    assert_int_equal(vo_parse_size(" 1G", &v), -EINVAL);
    assert_int_equal(vo_parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(vo_parse_size("99999999999T", &v), -ERANGE);
}

static void test_strv(void **state)
{
    _cleanup_strv_ char **v = NULL;
    assert_int_equal(vo_strv_len(v), 0);
    vo_strv_push(&v, vo_strdup("a"));
    vo_strv_pushf(&v, "%s-%d", "b", 2);
    assert_int_equal(vo_strv_len(v), 2);
    assert_string_equal(v[1], "b-2");
    assert_null(v[2]);
    _cleanup_free_ char *joined = vo_strv_join(v, "; "), *none = vo_strv_join(NULL, ", ");
    assert_string_equal(joined, "a; b-2");
    assert_string_equal(none, "");
}

static void test_error_mapping(void **state)
{
    assert_int_equal(vo_error_from_errno(-EINVAL), VO_ERR_INVALID_ARGUMENT);
    assert_int_equal(vo_error_from_errno(-ENOENT), VO_ERR_NOT_FOUND);
    assert_int_equal(vo_error_from_errno(-EEXIST), VO_ERR_ALREADY_EXISTS);
    assert_int_equal(vo_error_from_errno(-EBUSY), VO_ERR_INVALID_STATE);
    assert_int_equal(vo_error_from_errno(-ESTALE), VO_ERR_CONFLICT);
    assert_int_equal(vo_error_from_errno(-EIO), VO_ERR_INTERNAL);
    assert_int_equal(vo_error_from_errno(-ENOSPC), VO_ERR_INSUFFICIENT_STORAGE);
    assert_int_equal(vo_error_http_status(VO_ERR_INSUFFICIENT_STORAGE), 507);
    assert_int_equal(vo_error_http_status(VO_ERR_NOT_FOUND), 404);
    assert_int_equal(vo_error_http_status(VO_ERR_ALREADY_EXISTS), 409);
    assert_int_equal(vo_error_http_status(VO_ERR_PAYLOAD_TOO_LARGE), 413);
    assert_int_equal(vo_error_http_status(VO_ERR_UNSUPPORTED_MEDIA), 415);
    assert_string_equal(vo_error_code_name(VO_ERR_INVALID_STATE), "invalid-state");
    for (int c = 0; c < _VO_ERR_MAX; c++) {
        assert_non_null(vo_error_code_name((VoErrorCode)c));
        assert_true(vo_error_http_status((VoErrorCode)c) >= 400);
    }
}

/* -EAGAIN in the API's words: the store backend's meaning replaces the
 * errno's text; a message that says more is kept. */
static void test_unavailable_message(void **state)
{
    _cleanup_free_ char *generic = vo_asprintf("cannot save VM 'a': %s", strerror(EAGAIN));
    char *m = vo_error_unavailable_message(generic, "cluster has no quorum");
    assert_string_equal(m, "cannot save VM 'a': cluster has no quorum");
    free(m);
    m = vo_error_unavailable_message(NULL, "cluster has no quorum");
    assert_string_equal(m, "cluster has no quorum");
    free(m);
    m = vo_error_unavailable_message(NULL, NULL);
    assert_string_equal(m, strerror(EAGAIN));
    free(m);
    m = vo_error_unavailable_message(generic, NULL);
    assert_string_equal(m, generic);
    free(m);
    m = vo_error_unavailable_message("`nft`: its dump was interrupted", "database is busy");
    assert_string_equal(m, "`nft`: its dump was interrupted");
    free(m);
    assert_int_equal(vo_error_from_errno(-EAGAIN), VO_ERR_UNAVAILABLE);
    assert_int_equal(vo_error_http_status(VO_ERR_UNAVAILABLE), 503);
    /* A store write's outcome unknown (VO_STORE_EUNKNOWN): 503 in its words. */
    _cleanup_free_ char *timed = vo_asprintf("cannot save VM 'a': %s", strerror(ETIMEDOUT));
    m = vo_error_unknown_message(timed, "the change may or may not have been made");
    assert_string_equal(m, "cannot save VM 'a': the change may or may not have been made");
    free(m);
    assert_int_equal(vo_error_from_errno(-ETIMEDOUT), VO_ERR_UNAVAILABLE);
}

static char tmpdir[] = "/tmp/vireo-test-util-XXXXXX";

static char *write_tmp(const char *name, const char *content)
{
    char *p = vo_asprintf("%s/%s", tmpdir, name);
    assert_int_equal(vo_write_file_atomic(p, content, strlen(content)), 0);
    return p;
}

/* vo_deadline_ms: now on that clock plus ms, normalised (nanoseconds
 * below a second), for the waits that each computed it by hand. */
static void test_deadline_ms(void **state)
{
    (void)state;
    const int64_t cases[] = { 0, 1, 999, 1000, 1999, 2500, 60000 };
    const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME };
    for (size_t c = 0; c < 2; c++)
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            struct timespec before, after;
            clock_gettime(clocks[c], &before);
            struct timespec t = vo_deadline_ms(clocks[c], cases[i]);
            clock_gettime(clocks[c], &after);
            assert_true(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
            int64_t t_ns = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
            int64_t lo = (int64_t)before.tv_sec * 1000000000LL + before.tv_nsec;
            int64_t hi = (int64_t)after.tv_sec * 1000000000LL + after.tv_nsec;
            assert_true(t_ns >= lo + cases[i] * 1000000LL);
            assert_true(t_ns <= hi + cases[i] * 1000000LL);
        }
}

static void test_kvm_probe(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    _cleanup_free_ char *dev = write_tmp("kvm", "");
    _cleanup_free_ char *vmx = write_tmp("cpuinfo-vmx", "processor\t: 0\nflags\t\t: fpu vme vmx sse\n");
    _cleanup_free_ char *svm = write_tmp("cpuinfo-svm", "flags\t: fpu svm\n");
    _cleanup_free_ char *none = write_tmp("cpuinfo-pvm", "flags\t: fpu vme hypervisor sse4_2\n");
    _cleanup_free_ char *missing = vo_asprintf("%s/no-such-kvm", tmpdir);
    _cleanup_free_ char *reason = NULL;

    assert_true(vo_qemu_kvm_usable(dev, vmx, NULL));
    assert_true(vo_qemu_kvm_usable(dev, svm, NULL));
    /* A /dev/kvm that opens is not enough (PVM): the CPU must show vmx or svm. */
    assert_false(vo_qemu_kvm_usable(dev, none, &reason));
    assert_non_null(strstr(reason, "neither vmx nor svm"));
    free(TAKE_PTR(reason));
    assert_false(vo_qemu_kvm_usable(missing, vmx, &reason));
    assert_non_null(strstr(reason, "cannot be opened"));
    assert_int_equal(vo_rm_rf(tmpdir), 0);
}

/* A listener that does not accept (a stopped QEMU) with its backlog full:
 * a connect gives up at its deadline instead of blocking for ever (QEMU's
 * event monitor is connected this way under the VM's locks at start-up). */
static void test_unix_connect_wait_bounded(void **state)
{
    char sockdir[] = "/tmp/vireo-test-XXXXXX";
    assert_non_null(mkdtemp(sockdir));
    _cleanup_free_ char *path = vo_asprintf("%s/full.sock", sockdir);
    int lfd = vo_unix_listen(path, 0600);
    assert_true(lfd >= 0);
    assert_int_equal(listen(lfd, 0), 0); /* the smallest backlog */
    int queued[8], n = 0;
    for (; n < 8; n++) {
        queued[n] = vo_unix_connect(path, SOCK_NONBLOCK);
        if (queued[n] < 0)
            break;
    }
    assert_true(n > 0 && n < 8); /* the backlog filled */
    alarm(20); /* a blocking connect would hang here: fail instead */
    int64_t t0 = vo_now_ms();
    assert_int_equal(vo_unix_connect_wait(path, 200), -ETIMEDOUT);
    assert_true(vo_now_ms() - t0 >= 200);
    alarm(0);
    /* Accepted one: there is room again. */
    int a = accept(lfd, NULL, NULL);
    assert_true(a >= 0);
    int fd = vo_unix_connect_wait(path, 200);
    assert_true(fd >= 0);
    close(fd);
    close(a);
    /* Nobody listening: answered at once, not waited for. */
    close(lfd);
    assert_int_equal(vo_unix_connect_wait(path, 10000), -ECONNREFUSED);
    _cleanup_free_ char *none = vo_asprintf("%s/none.sock", sockdir);
    assert_int_equal(vo_unix_connect_wait(none, 10000), -ENOENT);
    for (int i = 0; i < n; i++)
        close(queued[i]);
    assert_int_equal(vo_rm_rf(sockdir), 0);
}

static bool yes(pid_t pid, void *userdata)
{
    (void)pid;
    (void)userdata;
    return true;
}

static bool no(pid_t pid, void *userdata)
{
    (void)pid;
    (void)userdata;
    return false;
}

/* A stored pid gets a pidfd only for the process meant, and only while it
 * still runs after the check (an ended one's pid may be another's by now). */
static void test_pidfd_open_if(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    int fd = vo_pidfd_open_if(child, yes, NULL);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(vo_pidfd_open_if(child, no, NULL), -ESRCH);
    assert_int_equal(vo_pidfd_open_if(0, yes, NULL), -ESRCH);
    kill(child, SIGKILL);
    /* Ended (not reaped yet, so the pid is still its own): refused. */
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(vo_pidfd_open_if(child, yes, NULL), -ESRCH);
    assert_int_equal(waitpid(child, NULL, 0), child);
}

/* vo_write_file_atomic writes through no symlink planted at its temp name
 * (its dir may be a confined QEMU's run dir): the link goes, the file it
 * pointed to stays as it was. */
static void test_write_atomic_no_symlink(void **state)
{
    (void)state;
    char dir[] = "/tmp/vireo-test-atomic-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *victim = vo_asprintf("%s/victim", dir);
    _cleanup_free_ char *path = vo_asprintf("%s/file", dir);
    _cleanup_free_ char *tmp = vo_asprintf("%s.tmp.%d", path, (int)getpid());
    assert_int_equal(vo_write_file_atomic(victim, "keep", 4), 0);
    assert_int_equal(symlink(victim, tmp), 0);
    assert_int_equal(vo_write_file_atomic(path, "new", 3), 0);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(vo_read_file(victim, 64, &text, NULL), 0);
    assert_string_equal(text, "keep");
    free(text);
    text = NULL;
    assert_int_equal(vo_read_file(path, 64, &text, NULL), 0);
    assert_string_equal(text, "new");
    struct stat st;
    assert_int_equal(lstat(tmp, &st), -1);
    assert_int_equal(vo_rm_rf(dir), 0);
}

static atomic_int rounds;

static void count_round(void *userdata)
{
    (void)userdata;
    atomic_fetch_add(&rounds, 1);
}

/* A round at once, the next after the period (not before), one at once
 * when woken, none after the stop; a second start does nothing. */
static void test_periodic(void **state)
{
    (void)state;
    static VoPeriodic p = VO_PERIODIC_INIT;
    assert_false(vo_periodic_stop(&p));
    atomic_store(&rounds, 0);
    assert_int_equal(vo_periodic_start(&p, count_round, NULL, 60000), 0);
    assert_true(vo_periodic_started(&p));
    assert_int_equal(vo_periodic_start(&p, count_round, NULL, 60000), 0);
    for (int i = 0; i < 400 && atomic_load(&rounds) < 1; i++)
        poll(NULL, 0, 5);
    poll(NULL, 0, 50);
    assert_int_equal(atomic_load(&rounds), 1);
    vo_periodic_wake(&p);
    for (int i = 0; i < 400 && atomic_load(&rounds) < 2; i++)
        poll(NULL, 0, 5);
    assert_int_equal(atomic_load(&rounds), 2);
    assert_false(vo_periodic_stopping(&p));
    int64_t t0 = vo_now_ms();
    assert_true(vo_periodic_stop(&p));
    assert_true(vo_now_ms() - t0 < 2000); /* not the 60-s period */
    assert_false(vo_periodic_started(&p));
    int after = atomic_load(&rounds);
    poll(NULL, 0, 30);
    assert_int_equal(atomic_load(&rounds), after);
    /* Started again, with a short period: rounds follow one another. */
    assert_int_equal(vo_periodic_start(&p, count_round, NULL, 10), 0);
    for (int i = 0; i < 400 && atomic_load(&rounds) < after + 3; i++)
        poll(NULL, 0, 5);
    assert_true(atomic_load(&rounds) >= after + 3);
    assert_true(vo_periodic_stop(&p));
}

/* A round that waits until the test lets it end, counting itself. */
static atomic_bool round_may_end;

static void held_round(void *userdata)
{
    (void)userdata;
    atomic_fetch_add(&rounds, 1);
    for (int i = 0; i < 400 && !atomic_load(&round_may_end); i++)
        poll(NULL, 0, 5);
}

/* A wake that comes while a round runs is not lost: the next round follows
 * at once, not a period later; and a stop asked during a round waits for
 * it, then runs no more. */
static void test_periodic_wake_during_round(void **state)
{
    (void)state;
    static VoPeriodic p = VO_PERIODIC_INIT;
    atomic_store(&rounds, 0);
    atomic_store(&round_may_end, false);
    assert_int_equal(vo_periodic_start(&p, held_round, NULL, 60000), 0);
    for (int i = 0; i < 400 && atomic_load(&rounds) < 1; i++)
        poll(NULL, 0, 5);
    assert_int_equal(atomic_load(&rounds), 1);
    vo_periodic_wake(&p); /* during round 1 */
    atomic_store(&round_may_end, true);
    for (int i = 0; i < 400 && atomic_load(&rounds) < 2; i++)
        poll(NULL, 0, 5);
    assert_int_equal(atomic_load(&rounds), 2);
    int64_t t0 = vo_now_ms();
    assert_true(vo_periodic_stop(&p));
    assert_true(vo_now_ms() - t0 < 2000);
    poll(NULL, 0, 20);
    assert_int_equal(atomic_load(&rounds), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pidfd_open_if),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_strv),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_unavailable_message),
        cmocka_unit_test(test_deadline_ms),
        cmocka_unit_test(test_kvm_probe),
        cmocka_unit_test(test_unix_connect_wait_bounded),
        cmocka_unit_test(test_write_atomic_no_symlink),
        cmocka_unit_test(test_periodic),
        cmocka_unit_test(test_periodic_wake_during_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
