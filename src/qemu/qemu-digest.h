/* qemu-digest.h: the QEMU driver's memory_digest op (qemu-digest.c). */
#pragma once

#include "hypervisor/driver.h"

int vo_qemu_memory_digest(VoHvInstance *vm, char ret[65], char **ret_error);
