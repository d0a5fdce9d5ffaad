/* test-hold.c: hold and fault points for tests (test-hold.h). */
#include "util/test-hold.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/fault-file.h"
#include "util/util.h"

void vo_test_hold(const char *op)
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    if (!dir || !*dir) /* off: set empty, it would name files under / */
        return;
    _cleanup_free_ char *hold_path = vo_asprintf("%s/%s.hold", dir, op);
    if (access(hold_path, F_OK) != 0)
        return;
    _cleanup_free_ char *held_path = vo_asprintf("%s/%s.held", dir, op);
    (void)vo_write_file_atomic(held_path, "", 0);
    for (int i = 0; i < 12000 && access(hold_path, F_OK) == 0; i++)
        (void)poll(NULL, 0, 10);
}

int vo_test_fault(const char *op)
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    if (!dir || !*dir) /* off: set empty, it would name files under / */
        return 0;
    vo_test_hold(op);
    return vo_fault_file_take(dir, op);
}
