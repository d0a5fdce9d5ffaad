/* drs-vm-memory.c: the memory DRS weighs a VM by (drs-vm-memory.h): its
 * host's measure, else its configured size. */
#include "cluster/drs-vm-memory.h"

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0;
}

uint64_t vo_drs_vm_memory_measure(json_t *load, json_t *spec, const char **ret_source)
{
    double used = num(load, "mem_mib");
    if (used >= 1) {
        const char *source = json_string_value(json_object_get(load, "mem_source"));
        *ret_source = source ? source : "rss"; /* an older vireod's: RSS or the balloon's */
        return (uint64_t)used;
    }
    *ret_source = "configured";
    double size = num(spec, "memory_mib");
    return size > 0 ? (uint64_t)size : 0;
}
