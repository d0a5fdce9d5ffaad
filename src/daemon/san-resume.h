/* san-resume.h: vireod resumes the VMs a lost iSCSI target paused
 * (docs/storage-san.md "Losing the target"). A VM of this host paused with
 * an I/O error (state_reason io-error) whose disks include LUNs of an iSCSI
 * pool is watched: its targets are logged in to every VO_SAN_PROBE_MS (the
 * pools' own scan, storage-iscsi.h: bounded by its login timeout), and once
 * a probe found a target lost (no answer, login refused, or a LUN of the
 * VM's no longer listed) and a later one finds every LUN of the VM back,
 * the VM is resumed (the resume task, which retries the failed requests).
 * The VM's "san_state" says what happened: "paused: I/O error on POOL
 * (target lost since TIME: WHY)", then "resumed after N s". A VM paused by
 * its user, or by an error on a disk of another kind of pool (a directory
 * pool out of space), is never resumed here; nor one whose targets always
 * answered with its LUNs (a medium error: the user's resume). Only the
 * VM's own host (the one running its QEMU) does this. */
#pragma once

#include "daemon/daemon.h"

#define VO_SAN_PROBE_MS 3000

int vo_san_resume_start(VoDaemon *d);
void vo_san_resume_stop(void);
