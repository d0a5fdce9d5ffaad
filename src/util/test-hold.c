/* test-hold.c: hold and fault points for tests (test-hold.h). */
#include "util/test-hold.h"

#include <stdlib.h>

#include "util/fault-file.h"
#include "util/util.h"

void vo_test_hold(const char *op)
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    if (!dir || !*dir) /* off: set empty, it would name files under / */
        return;
    vo_fault_file_hold(dir, op);
}

int vo_test_fault(const char *op)
{
    const char *dir = getenv("VIREO_FAKE_FAULTS");
    if (!dir || !*dir) /* off: set empty, it would name files under / */
        return 0;
    vo_test_hold(op);
    return vo_fault_file_take(dir, op);
}
