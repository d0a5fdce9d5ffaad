/* migrate-resettle.h: a live migration's ownership switch whose outcome
 * stayed unknown (migrate-switch.c's vo_migrate_settle_switch asked the
 * store for its whole give-up time, or vireod's start did:
 * migrate-recover.c), a take-back whose outcome stayed unknown and a
 * post-copy that could not be recovered are settled again
 * in the background, with a bounded backoff (2 s doubling to 60 s; a
 * post-copy whose recovery failed: to 15 min, each new reason noted as an
 * event), until
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
/* Whether vm_id's intent is in the background's hands (queued, or being
 * settled now): until it is not, nothing else acts on that intent (vireo
 * vm migrate --resume hurries the background instead: below), so the two
 * never end or hand over the same source QEMU at once. */
bool vo_migrate_resettle_pending(const char *vm_id);
/* vireo vm migrate --resume while the background holds vm_id's intent of
 * migration: its next try is due at once instead of after its backoff
 * (after the one under way, if any). The count of unsettled tries that
 * try ends at (see vo_migrate_resettle_tries), or -1 when the background
 * holds no such intent (then the caller acts itself). */
int vo_migrate_resettle_hurry(const char *vm_id, const char *migration);
/* The tries on vm_id's intent of migration that ended unsettled, or -1
 * once the background holds it no more (settled, or vireod stopping). */
int vo_migrate_resettle_tries(const char *vm_id, const char *migration);
/* The wait before the next try after one that waited wait ms: doubled, to
 * 60 s while the store is asked, to 15 min once the try could not recover
 * a post-copy (stuck: each try costs a recovery attempt and the note). */
int64_t vo_migrate_resettle_next_wait(int64_t wait, bool stuck);
/* The background thread (vireod's main; standalone: nothing); each try on
 * a thread of its own, so one VM's long try holds up no other's. */
int vo_migrate_resettle_start(VoDaemon *d);
void vo_migrate_resettle_stop(VoDaemon *d);
