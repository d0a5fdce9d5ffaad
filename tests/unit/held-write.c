/* held-write.c: see held-write.h. */
#include "held-write.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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
