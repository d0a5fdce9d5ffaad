/* test-cluster-etcd.c: the supervision of the host's etcd member
 * (daemon/cluster-etcd.c, on daemon/loop.c): a member stopped while its
 * restart is pending (it exited and its backoff runs, as a learner's that
 * never started when its host leaves) is not started again. Its stand-in
 * is a script that counts its starts and exits. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/cluster.h"
#include "daemon/loop.h"
#include "util/util.h"

/* cluster-start.c's (for the health check, which this test never makes). */
void vo_cluster_endpoint(const char *cluster_dir, const char *endpoint, VoClusterEndpoint *ret)
{
    (void)cluster_dir;
    *ret = (VoClusterEndpoint){ .endpoint = vo_strdup(endpoint) };
    ret->e.endpoint = ret->endpoint;
}

void vo_cluster_endpoint_clear(VoClusterEndpoint *e)
{
    free(e->endpoint);
    *e = (VoClusterEndpoint){ 0 };
}

static void *run_loop(void *loop)
{
    (void)vo_loop_run(loop);
    return NULL;
}

static void quit(void *loop)
{
    vo_loop_quit(loop);
}

/* How many times the stand-in started (one line each). */
static int starts(const char *count_path)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (vo_read_file(count_path, 1 << 16, &text, &len) < 0)
        return 0;
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

static void test_stopped_in_its_backoff_is_not_started_again(void **state)
{
    (void)state;
    char top[] = "/tmp/vireo-test-cluster-etcd-XXXXXX";
    assert_non_null(mkdtemp(top));
    _cleanup_free_ char *script = vo_asprintf("%s/etcd", top);
    _cleanup_free_ char *count = vo_asprintf("%s/starts", top);
    _cleanup_free_ char *text = vo_asprintf("#!/bin/sh\necho started >> '%s'\nexit 1\n", count);
    assert_int_equal(vo_write_file_atomic(script, text, strlen(text)), 0);
    assert_int_equal(chmod(script, 0755), 0);
    assert_int_equal(setenv("VIREO_ETCD", script, 1), 0);

    VoDaemon d = { .state_dir = top, .run_dir = top };
    assert_int_equal(vo_loop_new(&d.loop), 0);
    VoClusterConfig c = { .address = "127.0.0.1", .etcd_name = "h1", .cluster_id = "c1",
                          .etcd_client_port = VO_ETCD_CLIENT_PORT,
                          .etcd_peer_port = VO_ETCD_PEER_PORT,
                          .etcd_initial_cluster = "h1=https://127.0.0.1:2380" };
    VoClusterEtcd *e = NULL;
    char *error = NULL;
    int r = vo_cluster_etcd_start(&d, top, &c, &e, &error);
    if (r < 0)
        fail_msg("start: %s", error);
    vo_cluster_etcd_supervise(e, &d);
    pthread_t loop_thread;
    assert_int_equal(pthread_create(&loop_thread, NULL, run_loop, d.loop), 0);

    /* It exited at once: the loop saw it and set its restart 1 s later. */
    for (int i = 0; i < 100 && starts(count) < 1; i++)
        usleep(20000);
    assert_int_equal(starts(count), 1);
    usleep(500000);
    vo_cluster_etcd_stop(e, 1000); /* a leave's thread, as vo_cluster_leave */
    usleep(2000000);               /* past that restart */
    assert_int_equal(starts(count), 1);
    assert_int_equal(vo_cluster_etcd_pid(e), 0);

    vo_loop_call(d.loop, quit, d.loop);
    assert_int_equal(pthread_join(loop_thread, NULL), 0);
    vo_cluster_etcd_release(e);
    vo_loop_free(d.loop);
    (void)vo_rm_rf(top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stopped_in_its_backoff_is_not_started_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
