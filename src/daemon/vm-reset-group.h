/* vm-reset-group.h: which of a running VM's resets vireo counts. One reboot
 * of a guest that SeaBIOS started is two RESET events from QEMU, ~40 ms
 * apart (the firmware resets the machine once more after a warm reset):
 * the resets within VO_RESET_GROUP_US of the first of a group count once,
 * so a reboot counts one and a guest in a reset loop about one a second. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* How long after the first reset of a group a reset joins it (µs). */
#define VO_RESET_GROUP_US 1000000

/* A reset at at_us (wall clock: the event's own time, else now). Returns
 * whether it counts: true for the first of a new group, which it then
 * starts (*group_start_us = at_us); false for one within VO_RESET_GROUP_US
 * after *group_start_us. *group_start_us 0 means no group (none since the
 * start). A reset dated before the group (a clock set back) starts a new
 * one. */
bool vo_reset_counts(int64_t *group_start_us, int64_t at_us);
