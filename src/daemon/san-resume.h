/* san-resume.h: vireod says which VMs a lost iSCSI target holds, and
 * resumes the VMs it paused (docs/storage-san.md "Losing the target").
 * The targets of this host's VMs' LUNs are probed (a login each, the pool's
 * own scan, storage-iscsi.h), each on a thread of its own (one target that
 * does not answer, a login timeout of 10 s, delays no other's probe), and
 * one probe per target serves every VM on it: every VO_SAN_PROBE_MS a
 * target a VM waits for (paused on its error, or held) or found lost,
 * every VO_SAN_RUNNING_PROBE_MS one only running VMs use. A running VM
 * whose target is found lost (no answer, login refused, or a LUN of the
 * VM's no longer listed) gets san_state "I/O held: target lost since TIME
 * (POOL: WHY)" (libiscsi holds its requests while it reconnects), cleared
 * once the target answers with its LUNs again. A VM of this host paused with
 * an I/O error (state_reason io-error) whose disks include LUNs of an iSCSI
 * pool is watched: once a probe found a target lost (or it was held
 * before) and a later one finds every LUN of the VM back, the VM is
 * resumed (the resume task, which retries the failed requests).
 * The VM's "san_state" says what happened: "paused: I/O error on POOL
 * (target lost since TIME: WHY)", then "resumed after N s". A VM paused by
 * its user, or by an error on a disk of another kind of pool (a directory
 * pool out of space), is never resumed here; nor one whose targets always
 * answered with its LUNs (a medium error: the user's resume). Only the
 * VM's own host (the one running its QEMU) does this. */
#pragma once

#include "daemon/daemon.h"

#define VO_SAN_PROBE_MS 3000
#define VO_SAN_RUNNING_PROBE_MS 10000

int vo_san_resume_start(VoDaemon *d);
void vo_san_resume_stop(void);
