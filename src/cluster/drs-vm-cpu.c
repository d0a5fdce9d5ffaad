/* drs-vm-cpu.c: the CPU DRS weighs a VM by (drs-vm-cpu.h): its host's
 * sample, else the last the manager knew of it. */
#include "cluster/drs-vm-cpu.h"

double vo_drs_vm_cpu_measure(json_t *load, json_t *known, const char *vm_id, bool *ret_carried)
{
    json_t *v = json_object_get(load, "cpu_demand");
    if (!json_is_number(v))
        v = json_object_get(load, "cpu");
    bool carried = !json_is_number(v);
    if (carried) /* no sample on this host yet: not an idle VM */
        v = vm_id ? json_object_get(known, vm_id) : NULL;
    if (ret_carried)
        *ret_carried = carried && json_is_number(v);
    double cpu = json_is_number(v) ? json_number_value(v) : 0;
    return cpu > 0 ? cpu : 0;
}
