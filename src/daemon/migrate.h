/* migrate.h: live migration of a running VM to another host of the
 * cluster (docs/cluster.md, "Live migration"; docs/internals.md, "Live
 * migration"): the source's task (migrate.c) and the destination's peer
 * side (migrate-incoming.c), which only other hosts call. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/cluster-view.h"
#include "daemon/vms.h"

#include "conf/migrate-args.h"
#include "conf/migrate-intent.h"
#include "jobs/tasks.h"

/* Checks at once (target host known, online, not this host; the VM
 * running, not migrating, every disk on a shared pool) and queues the
 * migration task. 4xx errnos with *ret_error. */
int vo_vm_migrate(VoDaemon *d, VoVm *vm, const VoMigrateArgs *args, json_t **ret_task,
                  char **ret_error);

/* Shared with the cold move (move.c). The target host of a move: to (a
 * name or id), or the manager's pick when NULL, a host with pool (the
 * move's --pool, where its volumes of this host's own pools go; NULL:
 * default); known, online, not this host. 0 and *ret (to clear), or a 4xx
 * errno with *ret_error. */
int vo_migrate_find_target(VoDaemon *d, VoVm *vm, const char *to, const char *pool,
                           VoClusterHost *ret, char **ret_error);
/* Clears the VM's migration_task and migration_to (the mark a migration
 * or a cold move set while it is queued or runs). */
void vo_migrate_clear_mark(VoVm *vm);
/* 409 (-EBUSY) with every reason the VM cannot run on the target
 * (cluster/migrate-compat.h; a stopped VM is checked without a layout), or
 * naming the task that holds the VM ("cannot VERB VM ...": "migrate",
 * "move"). */
int vo_migrate_check_compat(VoDaemon *d, VoVm *vm, const VoVmSpec *spec, const char *target_id,
                            const char *target_name, const char *verb, char **ret_error);
/* METHOD url+path with a JSON body to a peer; 0 with its 2xx answer in
 * *ret (may be NULL), or -errno with *ret_error (its error message, or why
 * it could not be reached; 409 -> -EBUSY, 404 -> -ENOENT, other 4xx ->
 * -EINVAL, 5xx -> -EIO). */
int vo_migrate_peer_call(VoDaemon *d, const char *url, const char *method, const char *path,
                         json_t *body, json_t **ret, char **ret_error);
/* The same with a timeout of its own (the default: 30 s). */
int vo_migrate_peer_call_timeout(VoDaemon *d, const char *url, const char *method,
                                 const char *path, json_t *body, int timeout_ms, json_t **ret,
                                 char **ret_error);
/* 0 when every disk (and a kernel or initrd from a volume, the UEFI NVRAM,
 * the CD-ROM's ISO) is on a shared pool; -EBUSY with *ret_error naming the
 * first that is not (maintenance.c asks it before moving a VM). */
int vo_migrate_check_disks(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
/* The volume key of the VM's i-th file that goes with it to another host
 * (i < VO_MIGRATE_VOLUMES(spec)): its disks, kernel, initrd, then the UEFI
 * NVRAM; NULL when it has none there. */
#define VO_MIGRATE_VOLUMES(spec) ((spec)->n_disks + 3)
const char *vo_migrate_volume_at(const VoVmSpec *spec, size_t i);
/* 0 when the VM's CD-ROM is empty or holds an ISO of a shared pool; else
 * -EBUSY with *ret_error naming the ISO and the fix (vireo vm cdrom eject):
 * a migration or move (what: "vm migrate", "vm move") does not copy an ISO
 * of a host's own pool (docs/cluster.md, "CD-ROM media"). */
int vo_migrate_check_cdrom(VoDaemon *d, const VoVmSpec *spec, const char *what,
                           char **ret_error);
/* 0 unless the VM boots UEFI and its NVRAM volume (the UEFI variables:
 * boot entries, secure-boot keys) is not named, not known or its file is
 * gone: then -EBUSY with *ret_error saying so and how to give it a fresh
 * one. A migration or move (what) is refused at once rather than started
 * there without it (docs/cluster.md, "UEFI NVRAM"). */
int vo_migrate_check_nvram(VoDaemon *d, const VoVmSpec *spec, const char *what,
                           char **ret_error);

/* The TLS of a migration's streams between hosts (qemu-tls.c): this
 * host's cluster certificate, key and CA (d->peer_tls), checked by the
 * peer against the cluster CA; NULL when standalone (no certificates). */
const VoHvMigrationTls *vo_migration_tls(VoDaemon *d, VoHvMigrationTls *buf);

/* Post-copy, the source's side (migrate.c; migrate-recover.c too, for a
 * source QEMU a dead vireod left): the VM moved to the destination in the
 * store, so the switch-over goes on (the device state is sent) and is
 * waited for (bounded) until the post-copy phase runs (*ret_post_copy), or a
 * pre-copy that converged completed. Nothing has run at the destination
 * yet either way. 0, or -errno with *error. */
int vo_migrate_continue_switchover(VoDaemon *d, VoHvInstance *hv, bool *ret_post_copy,
                                   char **error);
/* Post-copy, after the switch-over: waits while the rest of RAM flows from
 * here (no limit while it moves; -ETIMEDOUT after 5 min without a byte,
 * -EIO when it breaks) until QEMU completes; progress on t (NULL: none),
 * the final progress in *fin (its error the caller's to free). */
int vo_migrate_finish_post_copy(VoTask *t, VoDaemon *d, VoHvInstance *hv, int64_t start,
                                VoHvMigrationProgress *fin, char **error);

/* Post-copy recovery (migrate-resume.c). Waits (bounded) until this
 * side's post-copy is paused; with may_pause, one still flowing a few
 * seconds on (the other side saw the link break, this one not yet) is
 * paused on purpose, and one whose QEMU does not answer query-migrate (its
 * main loop blocked on a missing page) is paused out of band at once.
 * 0: paused; 1: it completed after all; 2: QEMU's main loop does not
 * answer (paused out of band, or already: migrate-recover, out of band
 * too, tells); -errno. */
int vo_migrate_wait_post_copy_paused(VoDaemon *d, VoHvInstance *hv, bool may_pause,
                                     char **error);
/* Source: a paused post-copy (its stream broke) resumed to the destination
 * at peer_url (migration: the destination's incoming record; vm_id: its
 * VM, adopted there already or not), trying at most *tries_left times more
 * (counted down: one budget for the whole migration). 0 once the rest of
 * memory flows again; -EIO when every try failed: then both QEMUs must be
 * kept (each holds memory the other lacks). */
int vo_migrate_resume_post_copy(VoDaemon *d, VoHvInstance *hv, const char *peer_url,
                                const char *migration, const char *vm_id, const char *name,
                                int *tries_left, char **error);
/* The tries one migration has (the budget above). */
int vo_migrate_resume_tries(void);

/* Destination (migrate-incoming.c), from the source host's peer routes. */
int vo_migration_prepare(VoDaemon *d, json_t *body, json_t **ret, char **ret_error);
int vo_migration_digest(VoDaemon *d, const char *id, json_t **ret, char **ret_error);
int vo_migration_commit(VoDaemon *d, const char *id, json_t *body, char **ret_error);
int vo_migration_abort(VoDaemon *d, const char *id, char **ret_error);
/* Post-copy recovery, the destination's half: its QEMU for migration id
 * (incoming still, or adopted as VM body.vm), paused, listens for the
 * source's resumed stream on a new port: *ret {"uri"}. */
int vo_migration_recover(VoDaemon *d, const char *id, json_t *body, json_t **ret,
                         char **ret_error);
/* The source is still there (its disk phase: no memory stream yet). */
int vo_migration_alive(VoDaemon *d, const char *id, char **ret_error);
/* At vireod's shutdown, before the VM table goes: the incoming watcher
 * thread ends and is joined (incoming QEMUs stay, like every VM's). */
void vo_migration_shutdown(void);
/* The intent file of a migration this host takes part in
 * (RUN_DIR/migrations/<vm-id>.json; migrate-recover.c): saved (tmp +
 * rename) before each step that matters, dropped at its end. */
int vo_migration_intent_save(VoDaemon *d, const VoMigrateIntent *i);
void vo_migration_intent_drop(VoDaemon *d, const char *vm_id);
/* At start, after the VMs are loaded and before the API serves: each
 * intent an earlier vireod left is finished or undone. */
void vo_migrations_recover(VoDaemon *d);
/* The VM's kept intent of migration (its id), a source's switch whose
 * outcome was unknown, is settled again as vireod's start would
 * (migrate-resettle.h), a kept post-copy's recovery with one attempt. True
 * once done (that intent gone, or the file another migration's now), false
 * while still unknown; *ret_stuck (malloc'd, may stay NULL): why the
 * post-copy could not be recovered, when that is what is left. */
bool vo_migration_resettle(VoDaemon *d, const char *vm_id, const char *migration,
                           char **ret_stuck);
/* The background still cannot settle vm_id's migration (its post-copy not
 * recovered: why), after tries tries; the next in next_ms: recorded as an
 * event (a task of kind "migrate" that failed at once, with "stuck": why),
 * as vireo events and the task list show it. */
void vo_migration_note_stuck(VoDaemon *d, const char *vm_id, const char *name,
                             const char *why, int tries, int64_t next_ms);
/* Source: a take-back of VM vm_id from host peer (compared at back_rev, the
 * revision the switch wrote there) whose outcome is unknown, settled by the
 * store (vm-move-settle.h): 0 with *ret_here_rev, it applied (the VM is
 * this host's); 1, the VM is the peer's for good (its document there was
 * rewritten at back_rev, which no take-back in flight can pass, or the peer
 * had claimed it); negative (*ret_error): still unknown after give_up_ms.
 * migrate-switch.c. */
int vo_migrate_settle_take_back(VoDaemon *d, const char *vm_id, const char *peer,
                                int64_t back_rev, int give_up_ms, int64_t *ret_here_rev,
                                char **ret_error);
/* Source, after the switch, its QEMU running the guest again (QEMU does
 * once the device state could not be sent: the destination never had the
 * guest, and claims no VM it does not hold, migrate-incoming.c): the VM's
 * document taken back from host peer, compared at the revision a quorum's
 * read gives there (a take-back whose outcome is unknown is settled as
 * vo_migrate_settle_take_back), but never once the peer claimed it in
 * migration `migration` (its claim mark, vm-claim-mark.h: its QEMU held
 * the guest and runs it). 0 with *ret_here_rev: the VM is this host's
 * again (or was already); -ENOENT: it is neither at the peer nor here
 * (deleted, or restarted elsewhere); -EEXIST: the peer claimed it (this
 * copy must end); other negative (*ret_error): not taken back now. Moves
 * no volume document (the caller keeps a VM with local volumes as it is).
 * migrate-switch.c. */
int vo_migrate_take_back_running(VoDaemon *d, const char *vm_id, const char *peer,
                                 const char *migration, int give_up_ms, int64_t *ret_here_rev,
                                 char **ret_error);
/* Whether a source QEMU hv runs the guest again after the switch: once
 * its device state could not be sent (the destination gone at the
 * switch-over), its migration fails and QEMU restarts the guest here (a
 * moment after it says failed: waited for, bounded). Never ended then: it
 * is the only copy (the destination never had the device state, so it
 * claims nothing: migrate-incoming.c). migrate-recover.c. */
bool vo_migrate_source_runs_guest(VoDaemon *d, VoHvInstance *hv);
/* Source of intent i, its QEMU running the guest again after the switch
 * (vo_migrate_source_runs_guest): the VM's documents taken back from the
 * peer (vo_migrate_take_back_running), its post-copy mark gone. 0 with
 * *ret_rev (its document's revision here); -ENOENT: the VM is at the peer
 * no more (deleted, or restarted elsewhere after the peer died), or the
 * peer claimed it in this migration (its QEMU holds the guest), so this
 * copy must end (the caller ends it); else negative, logged, and
 * *ret_error (may be NULL) says why: a VM with local volumes (their
 * documents moved too), or the take-back refused or unanswered (the QEMU
 * is kept running: the next try takes it back). migrate-recover.c. */
int vo_migration_take_back_here(VoDaemon *d, const VoMigrateIntent *i, int64_t *ret_rev,
                                char **ret_error);
/* A post-copy this host was the source of whose recovery failed (its QEMU
 * and intent kept): key is the VM's id or name; 0 with its id and name
 * (malloc'd), -ENOENT when there is none here, -EBUSY (*ret_error) while
 * its migration task still runs. */
int vo_migration_kept_source(VoDaemon *d, const char *key, char **ret_vm_id, char **ret_name,
                             char **ret_error);
/* Tries that recovery again now, as vireod's start does (bounded tries):
 * 0 once the rest of memory is at the destination (this QEMU ended, the
 * intent gone); -ENOENT when none is kept here; -EIO when it failed again
 * (all kept). */
int vo_migration_resume_kept(VoDaemon *d, const char *vm_id, char **ret_error);

/* vireo vm migrate VM --resume (migrate-retry.c), on the VM's host (or
 * any, for a peer's question: ask_peers false): the recovery of VM vm_id's
 * kept post-copy queued as a task ("migrate-resume") on the host that keeps
 * its source QEMU, this one or another online host asked in turn (peer
 * route POST /v1/migrations/outgoing/{vm}/resume). 0 with *ret_task (that
 * host's task), -EBUSY (409) when no host keeps one, -ENOENT for a peer's
 * question none here answers. */
int vo_migrate_resume_request(VoDaemon *d, const char *vm_id, const char *name, bool ask_peers,
                              json_t **ret_task, char **ret_error);

/* An incoming migration neither committed nor aborted this long after its
 * last sign of life (prepare, a running stream, a call) is aborted. */
#define VO_MIGRATION_INCOMING_IDLE_MS 60000
