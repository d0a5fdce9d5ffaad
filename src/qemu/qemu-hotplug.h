/* qemu-hotplug.h: the QEMU driver's hot-plug operations (disk and NIC
 * attach/detach on a running VM over QMP); see the ops in driver.h. */
#pragma once

#include "hypervisor/driver.h"

/* How long the guest gets to release a device after device_del. */
#define VO_QEMU_UNPLUG_TIMEOUT_MS 20000

int vo_qemu_disk_attach(VoHvInstance *vm, const VoVmSpec *spec, size_t index, char **ret_error);
int vo_qemu_disk_detach(VoHvInstance *vm, unsigned slot, char **ret_error);
/* Puts the ISO at path (NULL: none, an eject) into the VM's CD-ROM drive. */
int vo_qemu_cdrom_change(VoHvInstance *vm, const char *path, char **ret_error);
/* The same in the drive of the cloud-init seed (VO_QEMU_CIDATA_ID);
 * -ENODEV when the VM started without a seed (no such drive). */
int vo_qemu_seed_change(VoHvInstance *vm, const char *path, char **ret_error);
int vo_qemu_nic_attach(VoHvInstance *vm, const VoVmSpec *spec, const VoNicSpec *nic, int tap_fd,
                       char **ret_error);
int vo_qemu_nic_detach(VoHvInstance *vm, unsigned slot, char **ret_error);
