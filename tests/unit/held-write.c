/* held-write.c: see held-write.h. */
#include "held-write.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "util/util.h"

int test_held_write(const char *dir, const char *hold, void *(*write)(void *), void *arg,
                    VoStore *store, const char *key, const char *value)
{
    _cleanup_free_ char *hold_path = vo_asprintf("%s/%s.hold", dir, hold);
    _cleanup_free_ char *held_path = vo_asprintf("%s/%s.held", dir, hold);
    assert_int_equal(vo_write_file_atomic(hold_path, "", 0), 0);
    setenv("VIREO_FAKE_FAULTS", dir, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write, arg), 0);
    for (int i = 0; i < 300 && access(held_path, F_OK) != 0; i++)
        poll(NULL, 0, 100);
    int reached = access(held_path, F_OK);
    /* The other writer: no condition, as another host's set that won. */
    int put = vo_store_put(store, key, value, VO_REV_ANY, NULL);
    (void)unlink(hold_path);
    void *r = NULL;
    pthread_join(t, &r);
    unsetenv("VIREO_FAKE_FAULTS");
    assert_int_equal(reached, 0);
    assert_int_equal(put, 0);
    return (int)(intptr_t)r;
}

int settings_fixture_setup(void **state, const char *name, bool cluster)
{
    SettingsFixture *f = vo_malloc0(sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vireo-test-%s-XXXXXX", name);
    *state = f;
    if (!mkdtemp(f->dir))
        return -1;
    _cleanup_free_ char *path = vo_asprintf("%s/store.db", f->dir);
    if (vo_store_open(path, &f->store) < 0)
        return -1;
    f->d.store = f->store;
    if (cluster) {
        f->d.cluster_store = f->store;
        f->d.cluster = &f->cluster;
    }
    return 0;
}

int settings_fixture_teardown(void **state)
{
    SettingsFixture *f = *state;
    unsetenv("VIREO_FAKE_FAULTS");
    unsetenv("VIREO_TEST_STORE_FAULTS");
    if (f->store)
        vo_store_close(f->store);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}
