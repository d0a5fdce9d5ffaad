/* vm-reset-group.c: a reboot's resets counted once (vm-reset-group.h). */
#include "daemon/vm-reset-group.h"

bool vo_reset_counts(int64_t *group_start_us, int64_t at_us)
{
    if (*group_start_us && at_us >= *group_start_us &&
        at_us - *group_start_us < VO_RESET_GROUP_US)
        return false;
    *group_start_us = at_us;
    return true;
}
