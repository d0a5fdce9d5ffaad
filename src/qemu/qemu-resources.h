/* qemu-resources.h: vCPU and memory hot-plug of a running QEMU VM, the QEMU
 * driver's query_resources, set_vcpus and set_memory ops (see driver.h). */
#pragma once

#include "hypervisor/driver.h"

int vo_qemu_query_resources(VoHvInstance *vm, bool wait, VoHvResources *ret);
int vo_qemu_set_vcpus(VoHvInstance *vm, unsigned n, unsigned *ret_now, char **ret_error);
int vo_qemu_set_memory(VoHvInstance *vm, uint64_t mib, uint64_t *ret_now_mib, char **ret_error);
