/* mem-source.c: names of where a running VM's memory in use was read
 * (VoHvMemSource: the words the host record's "vm_load" and the DRS
 * events use, docs/drs.md). */
#include <errno.h>
#include <string.h>

#include "hypervisor/driver.h"

static const char *const names[_VO_HV_MEM_SOURCE_MAX] = {
    [VO_HV_MEM_GUEST] = "guest",
    [VO_HV_MEM_BALLOON] = "balloon",
    [VO_HV_MEM_RSS] = "rss",
};

const char *vo_hv_mem_source_to_string(VoHvMemSource s)
{
    return (unsigned)s < _VO_HV_MEM_SOURCE_MAX ? names[s] : NULL;
}

int vo_hv_mem_source_from_string(const char *name, VoHvMemSource *ret)
{
    for (unsigned i = 0; name && i < _VO_HV_MEM_SOURCE_MAX; i++)
        if (!strcmp(name, names[i])) {
            *ret = (VoHvMemSource)i;
            return 0;
        }
    return -EINVAL;
}
