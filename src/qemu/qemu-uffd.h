/* qemu-uffd.h: lets a confined QEMU open /dev/userfaultfd for a moment, so
 * that it can take a post-copy migration (docs/security.md). QEMU opens the
 * device once, the first time it needs a userfaultfd (when post-copy's
 * capability is set on the destination), and keeps it open; as its
 * unprivileged user it cannot open it (root's, 0600, and the kernel's
 * vm.unprivileged_userfaultfd is 0). The grant lasts only while that
 * capability is set. */
#pragma once

#include <sys/stat.h>

#include "hypervisor/driver.h"

typedef struct {
    int fd;          /* the device, locked (flock) while granted; -1: nothing granted */
    struct stat was; /* its owner and mode before */
} VoQemuUffdGrant;

/* Gives the driver's QEMU group read-write access to /dev/userfaultfd until
 * vo_qemu_uffd_revoke, under an exclusive lock on the device (vireods of one
 * machine take turns). Nothing when QEMU is not confined. 0, or -errno with
 * *ret_error (-EOPNOTSUPP: the kernel has no /dev/userfaultfd). */
int vo_qemu_uffd_grant(const VoHvDriver *d, VoQemuUffdGrant *ret, char **ret_error);

/* Puts the owner and mode back and unlocks. */
void vo_qemu_uffd_revoke(VoQemuUffdGrant *g);

/* At start (confined QEMU only): a grant an earlier vireod, killed during
 * it, left (the device QEMU's group's, with group access) is taken back
 * (root's group, no group access); every grant does the same first. */
void vo_qemu_uffd_repair(const VoHvDriver *d);
