/* ha-recover-internal.h: what the three files of HA recovery share
 * (ha-recover.h is the daemon's view of them): the round
 * (ha-recover.c: down hosts, placing and moving their HA VMs), the
 * hand-overs (ha-handover.c: up to 4 worker threads per chosen host register and
 * start each moved VM there) and the hand-overs that failed
 * (ha-handover-follow.c: looked at again each round). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/ha-plan.h"
#include "daemon/daemon.h"

/* ---- the round (ha-recover.c) ---- */

/* Whether the round's runner is being stopped. */
bool vo_ha_recover_stopping(void);
/* A vo_store_list callback: {doc id (the key's last part): {"doc", "rev"}}
 * into userdata (a JSON object). */
int vo_ha_collect_doc(const char *key, const char *value, int64_t rev, void *userdata);
/* Places and moves one VM, and queues its hand-over to the chosen host's
 * worker: true when it moved. src_fenced: its host is online but fenced,
 * its live record at revision src_record_rev. The round's thread, the
 * hand-overs' lock held. */
bool vo_ha_recover_one(VoDaemon *d, const VoHaCandidate *c, json_t *vm_doc,
                       const char *down_name, int64_t since_ms, bool src_fenced,
                       int64_t src_record_rev);

/* ---- the hand-overs (ha-handover.c) ---- */

/* Queues the hand-over of a VM moved to host_id to that host's worker (the
 * round's thread, the hand-overs' lock held). When it is already under way,
 * or no thread could be made, it stays with the failed ones (due after its
 * backoff). */
void vo_ha_handover_start(VoDaemon *d, const char *vm_id, const char *host_id,
                          const char *name, const char *from, bool from_fenced,
                          int64_t since_ms, json_int_t failed, bool again);
/* Whether a VM's hand-over is queued or under way. */
bool vo_ha_handover_in_flight(const char *vm_id);
/* Before the first hand-over; after the last round (vo_ha_recover_stop,
 * the round's thread ended): ends the workers, each finishing the call
 * under way. */
void vo_ha_handover_workers_begin(void);
void vo_ha_handover_workers_end(void);

/* ---- the hand-overs that failed (ha-handover-follow.c) ---- */

/* The round's thread holds this lock through each round (with the round's
 * own memory); a hand-over worker takes it only to put back a VM whose
 * hand-over failed. Taken before the workers' lock. */
void vo_ha_handovers_lock(void);
void vo_ha_handovers_unlock(void);
/* The table's life: made at start, emptied when the role is lost (a new
 * manager fills it again from the documents), freed at stop. */
void vo_ha_handovers_begin(void);
void vo_ha_handovers_forget(void);
void vo_ha_handovers_end(void);
/* Adds a VM (the lock held), due again after the backoff of its failed
 * tries so far. */
void vo_ha_handovers_add(const char *vm_id, const char *host_id, const char *name,
                         const char *from, bool from_fenced, int64_t since_ms,
                         json_int_t failed);
/* A hand-over that failed, put back (the lock held) unless the round put
 * the VM there meanwhile (that entry is newer), the table is gone or this
 * host is no longer the manager. */
void vo_ha_handovers_put_back(VoDaemon *d, const char *vm_id, const char *host_id,
                              const char *name, const char *from, bool from_fenced,
                              int64_t since_ms, json_int_t failed);
/* A new manager's table, from the VM documents of the hosts online, once
 * per role (again at the next round while a host's documents cannot be
 * read). */
void vo_ha_handovers_seed(VoDaemon *d, json_t *records);
/* Looks at the due entries: what each VM's document on its host says now
 * decides (handed over again, placed again, or dropped). */
void vo_ha_handovers_follow(VoDaemon *d, json_t *records);
