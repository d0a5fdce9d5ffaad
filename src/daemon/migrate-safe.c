/* migrate-safe.c: the test-only hooks of live migration (migrate-safe.h). */
#include "daemon/migrate-safe.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon/migrate.h"
#include "util/util.h"

bool vo_migrate_fault(const char *point)
{
    const char *dir = getenv("VIREO_TEST_MIGRATE_FAULT");
    if (!dir || !*dir)
        return false;
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, point);
    if (unlink(path) < 0)
        return false;
    log_warn("test fault: migration fault point '%s' taken", point);
    return true;
}

bool vo_migrate_fault_held(const char *point)
{
    const char *dir = getenv("VIREO_TEST_MIGRATE_FAULT");
    if (!dir || !*dir)
        return false;
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, point);
    return access(path, F_OK) == 0;
}

void vo_migrate_fault_wait(const char *point, int ms)
{
    for (int64_t until = vo_now_ms() + ms; vo_now_ms() < until && !vo_migrate_fault(point);)
        (void)poll(NULL, 0, 50);
}

int vo_migrate_idle_ms(void)
{
    const char *v = getenv("VIREO_TEST_MIGRATE_IDLE_MS");
    int ms = v ? atoi(v) : 0;
    return ms > 0 ? ms : VO_MIGRATION_INCOMING_IDLE_MS;
}

const char *vo_migrate_keep_ram_dir(void)
{
    const char *dir = getenv("VIREO_TEST_MIGRATE_KEEP_RAM");
    return dir && *dir ? dir : NULL;
}

uint64_t vo_migrate_test_post_copy_bandwidth(void)
{
    const char *v = getenv("VIREO_TEST_MIGRATE_POST_COPY_BANDWIDTH");
    long long n = v ? atoll(v) : 0;
    return n > 0 ? (uint64_t)n : 0;
}

int vo_migrate_post_copy_stall_ms(int otherwise)
{
    const char *v = getenv("VIREO_TEST_MIGRATE_POST_COPY_STALL_MS");
    int ms = v ? atoi(v) : 0;
    return ms > 0 ? ms : otherwise;
}
