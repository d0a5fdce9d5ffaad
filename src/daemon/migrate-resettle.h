/* migrate-resettle.h: a live migration's ownership switch whose outcome
 * stayed unknown (migrate-switch.c's vo_migrate_settle_switch asked the
 * store for its whole give-up time, or vireod's start did:
 * migrate-recover.c), a take-back whose outcome stayed unknown and a
 * post-copy that could not be recovered are settled again
 * in the background, with a bounded backoff (2 s doubling to 60 s), until
 * the store says where the VM is: the destination's, the source QEMU ends
 * (post-copy: once it handed the rest over) and the destination's watcher
 * continues the guest; still the source's, the source runs on (when it ran)
 * and the destination's incoming QEMU ends. Each decision is logged and
 * recorded as a task of kind "migrate" (docs/cluster.md, "When the switch's
 * outcome is unknown"). Before, both QEMUs stayed paused until the source's
 * vireod restarted. */
#pragma once

#include "daemon/daemon.h"

/* The VM's kept intent (RUN/migrations/<vm-id>.json), of that migration
 * (its id), is settled later. */
void vo_migrate_resettle_later(VoDaemon *d, const char *vm_id, const char *name,
                               const char *migration);
/* vireo vm migrate --resume while the background holds vm_id's intent of
 * migration (queued, or being settled now): nothing else acts on it, so
 * the two never end or hand over one source QEMU at once, and its next try
 * is due at once instead of after its backoff.
 * The tries it made so far, or -1 when it holds none (then the caller acts
 * itself). */
int vo_migrate_resettle_hurry(const char *vm_id, const char *migration);
/* The tries the background made on vm_id's intent of migration, or -1 once
 * it holds none (settled, or vireod stopping); INT_MAX while a hurried try
 * has not started yet. Changed from what hurry returned: that try is over. */
int vo_migrate_resettle_tries(const char *vm_id, const char *migration);
/* The background thread (vireod's main; standalone: nothing). */
int vo_migrate_resettle_start(VoDaemon *d);
void vo_migrate_resettle_stop(VoDaemon *d);
