/* vm-internal.h: what the files of the VM lifecycle (vms.c and its parts,
 * vm-disks.c, ...) share about a VM beyond the public vms.h: the object
 * itself and the helpers that change its state. Not for the API layer. */
#pragma once

#include <stdatomic.h>

#include "daemon/console.h"
#include "daemon/mac-claims.h"
#include "daemon/vms.h"
#include "vireo/errors.h"

struct VoVm {
    atomic_int refs;
    VoDaemon *d;
    pthread_mutex_t job;
    /* The brief holders of job (samplers, quick API operations) holding or
     * trying it now (jobs/job-lock.h, daemon/vm-job.h). */
    atomic_int job_brief;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    /* Replaced (and the old one freed) only with both job and lock held:
     * read it holding either, or copy what is needed under lock. */
    VoVmSpec *spec;
    int64_t rev;
    VoVmState state;
    char *exit_reason;
    int64_t created_at, started_at;
    VoHvInstance *hv;
    VoHvInfo info;
    /* What the running VM has (vCPUs plugged, memory), as last asked by a
     * task; GET shows these rather than wait on QEMU. */
    VoHvResources live;
    bool live_known;
    bool stop_requested; /* an exit now is a stop, not a crash */
    bool provisioning;   /* create task still running */
    bool deleting;       /* a delete task is queued or running: no second one */
    bool deleted;        /* gone: a create task running now must not save it */
    bool watching;       /* exit fd registered on the loop */
    VoConsole *console;  /* loop thread only */
    /* Why the VM is paused (VO_VM_REASON_*), NULL in other states. */
    char *state_reason;
    unsigned io_errors;     /* I/O errors that paused it (vm-events.c) */
    unsigned resets;        /* resets since it started, a reboot's as one (vm-reset-group.h) */
    int64_t last_reset_at;  /* wall ms of the last one counted, 0 for none */
    int64_t reset_group_us; /* wall µs of the first reset of the last group, 0: none */
    /* Resets are saved at most every RESET_SAVE_MS (a guest in a reset loop
     * resets many times a second): the last save's time (monotonic ms), a
     * save due, and its timer on the loop (-1: none). Loop thread only. */
    int64_t reset_saved_ms;
    bool reset_save_pending;
    int reset_timer_fd;
    int events_fd;          /* event source on the loop, -1: none; loop thread only */
    bool hv_stopped;        /* the vCPUs are stopped, as the events say; loop thread only */
    /* A STOP, RESUME or stopping I/O error came while a task held the job
     * lock: the task reads the run state from the hypervisor when it ends
     * (vo_vm_job_end). Under vm->lock. */
    bool run_state_missed;
    /* A definition from before specs named things, with host paths that name
     * no volume or image: what is wrong (GET shows it; starting and changing
     * the VM are refused), and the document as it was, which is what is
     * saved (so nothing of it is lost) until the VM is deleted. */
    char *problem;
    json_t *stored_spec;
    /* The relation documents (state/relations.h) last written with the
     * VM's document, {key: text}: a save writes only what changed. vm->lock. */
    json_t *uses;
    /* The name this VM holds the claim of (cluster/names/vms/<name>,
     * state/keys.h), NULL: none yet; written with its documents (vo_vm_write).
     * name_conflict: a name another VM's claim holds, found when it was
     * loaded (two hosts that had a VM of one name before they met): not
     * claimed, until it is renamed. vm->lock. */
    char *claimed_name;
    char *name_conflict;
    /* The next write changes the definition: a usage that grows is checked
     * against the project's quotas (daemon/projects.h); other writes (state
     * changes, the relations rebuilt at start) never are. vm->lock. */
    bool check_quota;
    /* The next write gives it MACs claimed (mac-claims.h): the write
     * compares the claims, and fails with VO_RELATIONS_ECLAIM when one
     * lapsed. Set and cleared by that write's caller. vm->lock. */
    const VoMacClaims *mac_claims;
    /* The virtual sizes of its disks, in bytes, as its project's usage
     * document says (disk_bytes; VM specs hold no sizes): set at create
     * and by a disk's hot-plug, detach or resize, carried over from the
     * stored document when it is loaded, moved or migrated in. vm->lock. */
    int64_t disk_bytes;
    /* Live migration (migrate.c), under vm->lock: the migration task's id
     * and the destination host's name while it runs (other operations are
     * refused, naming the task); migrated_away once the ownership
     * transaction moved the VM's documents to the destination: this host
     * writes none of them again. */
    char *migration_task;
    char *migration_to;
    bool migrated_away;
    /* The migration whose claim made it this host's (its document's
     * "claimed_in", state/vm-claim-mark.h), or NULL: kept in every save, so
     * that migration's source, whose QEMU may run the guest again, never
     * takes it back. vm->lock. */
    char *claimed_in;
    /* What HA recovery last said of it (docs/ha.md): "restarted on HOST
     * after N ms", "unplaceable: ...", "restart limit: ...". Kept in its
     * document (top-level "ha_state"). vm->lock. */
    char *ha_state;
    /* What vireod last did of a pause on a lost iSCSI target
     * (san-resume.h): "paused: I/O error on POOL (target lost since ...)",
     * "resumed after N s". Kept in its document ("san_state"). vm->lock. */
    char *san_state;
    /* Moved here by HA recovery and not started yet (its document's
     * "ha_landed"): its next start is an HA restart, retried when it fails
     * (ha-retry.h). vm->lock. */
    bool ha_landed;
    /* Its HA starts within the restart limit's window (its document's
     * "ha_restarts", cluster/ha-plan.h), or NULL. vm->lock. */
    json_t *ha_restarts;
    /* Its last start failed and was an HA start (a restart by HA recovery
     * or a retry of one), not a user's: only such a VM is tried again
     * (ha-retry.h), also after a vireod restart. Kept in its document
     * (top-level "ha_start_failed"); any start clears it. vm->lock. */
    bool ha_start_failed;
    /* A save of "starting" got no answer and vireod could not tell whether
     * it landed (vm-start-unknown.h): a later save refused for a stale
     * revision reads the document again and takes it up. vm->lock. */
    bool start_unknown;
    /* A restore over its RBD disks is under way, or was cut short by a
     * crash: its document's "rbd_restore_undo" (vm-rbd-restore-undo.h),
     * there for whichever host starts it next. Job lock and vm->lock. */
    bool rbd_restore_undo;
    /* Saves the loop hands to a thread (vm-save-later.c), under vm->lock:
     * a change not written yet (save_due), a thread of this VM's saves
     * running (saver_running). */
    bool save_due;
    bool saver_running;
    /* Under save_lock: a write of the thread's under way outside vm->lock
     * (saving: every other write of the VM waits for it, vm->lock held,
     * on save_done), then what it made until whoever holds vm->lock next
     * makes it the VM's (save_landed: vo_vm_save_landed_take). */
    pthread_mutex_t save_lock;
    pthread_cond_t save_done;
    bool saving;
    struct VoVmSaveLanded *save_landed;
};

/* Reasons of a paused VM (state_reason). */
#define VO_VM_REASON_USER "user"         /* vireo paused it (vireo vm pause) */
#define VO_VM_REASON_IO_ERROR "io-error" /* a disk write failed (host out of space) */
#define VO_VM_REASON_UNKNOWN "unknown"   /* the hypervisor paused it otherwise */

/* State sets for vo_vm_precheck: the states an operation accepts, as bits. */
#define IN(state) (1u << (state))
#define ACTIVE_STATES (IN(VO_VM_STARTING) | IN(VO_VM_RUNNING) | IN(VO_VM_PAUSED) | IN(VO_VM_STOPPING))
#define INACTIVE_STATES (IN(VO_VM_DEFINED) | IN(VO_VM_STOPPED) | IN(VO_VM_CRASHED))

VoVm *vo_vm_ref(VoVm *vm);
/* A reference to every VM of the host now (*ret_n of them; the array is
 * malloc'd, each entry unref'd by the caller). */
VoVm **vo_vms_ref_all(VoDaemon *d, size_t *ret_n);
bool vo_vm_state_active(VoVmState s);
char *vo_vm_state_dir(VoDaemon *d, const char *id);
/* The cloud-init seed ISO of spec (vm-cloudinit.c), made or remade when its
 * settings changed: *ret_path its file in the VM's state directory. */
int vo_vm_cloud_init_seed(VoDaemon *d, const VoVmSpec *spec, char **ret_path, char **ret_error);
char *vo_vm_run_dir(VoDaemon *d, const char *id);
/* Caller holds vm->lock. Writes the VM's document and its relation
 * documents (uses/...) in one transaction. */
int vo_vm_save(VoVm *vm);
/* Caller holds vm->lock, which it lets go during the store's write and
 * holds again on return: writes the VM's document as it is now (its copy
 * taken first) and its relations, unless it was migrated away or deleted.
 * For vm-save-later.c; a failure is logged. */
int vo_vm_save_unlocked(VoVm *vm);
/* vm-save-later.c. Caller holds vm->lock. The VM's document is due to be
 * saved as it is then: a thread of the VM's own writes it soon, without
 * the caller waiting for the store (the loop thread's saves). Saves of
 * one VM are made one at a time, each of its state at that moment, so a
 * later state is never overwritten by an earlier one. */
void vo_vm_save_later(VoVm *vm);
/* Caller holds vm->lock: waits until no save of the VM made outside the
 * lock is under way, and makes what it wrote the VM's. The lock stays held
 * throughout (callers change the VM, then save it: nobody sees or writes
 * a change half made). Every write that compares the VM's document
 * (vm->rev) does this first. */
void vo_vm_save_settle(VoVm *vm);
/* The same for a caller that took vm->lock just now and has read or
 * changed nothing yet (a task's If-Match compare): the lock is let go
 * while it waits, so the loop is not held by a task waiting for the store.
 * Whatever it reads afterwards is as the save left it. */
void vo_vm_save_settle_first(VoVm *vm);
/* Caller holds vm->lock: a save written outside it and done (save_landed)
 * becomes the VM's (its revision, relations, name claim), or its failure
 * is logged. vm-save.c; for vo_vm_save_settle and the save thread. */
void vo_vm_save_landed_take(VoVm *vm);
/* Caller holds vm->lock: vo_vm_save_settle, then also a save still due is
 * made now (so the store has the state in memory): the save's result. */
int vo_vm_save_flush(VoVm *vm);
/* vireod's end: waits for the saves handed to threads, as long as one of
 * them started or ended a round within the last stuck_ms; how many were
 * not done. */
int vo_vms_saves_wait(int stuck_ms);
/* Sets the state and saves the VM: the save's result (the state is set
 * in memory either way). Caller holds vm->lock. */
int vo_vm_set_state(VoVm *vm, VoVmState state);
/* The same with the reason for a paused state (copied; NULL: none). Any
 * other state clears the reason. Caller holds vm->lock. */
int vo_vm_set_state_reason(VoVm *vm, VoVmState state, const char *reason);
/* The same for the loop thread: the state and reason are set in memory
 * now and the save handed to a thread (vo_vm_save_later). */
void vo_vm_set_state_later(VoVm *vm, VoVmState state, const char *reason);
/* Loop thread: watch the running VM's event source (vm->hv set), and stop
 * watching it, handing out what is left (vm-events.c). */
void vo_vm_events_watch(VoVm *vm);
void vo_vm_events_unwatch(VoVm *vm);
bool vo_vm_wait_exit(VoVm *vm, int timeout_ms);
/* Ends a task's hold of the VM (caller holds vm->job, not vm->lock): when
 * events changed the run state while it held it (run_state_missed), or
 * sync, asks the hypervisor (query-status) and shows what it says, then
 * releases the job lock. See "QMP events" in docs/internals.md. */
void vo_vm_job_end(VoVm *vm, bool sync);
/* The VM (its name, malloc'd) a volume ("pool/name") is attached to, or
 * NULL, from the registry: also a VM still being created. */
char *vo_vms_volume_user(VoDaemon *d, const char *key);
/* Online resize through QEMU (-ENOTCONN when no running VM holds the
 * volume, so the caller resizes the file itself): registered with the volume
 * service at start-up (vo_storage_set_online_resize). */
int vo_vm_resize_volume_online(VoDaemon *d, const char *key, uint64_t size, char **ret_error);
/* Disk quota (docs/projects.md): what volume key ("pool/name") counts in
 * the figure of a VM that has it as a disk: its virtual size, but 0 when
 * its project counts it, when it is shareable and of no project (no VM
 * owns it), or when it cannot be read; a change of the VM's disk figure by
 * delta bytes, saved in its project's usage document (a growth checked
 * against the quota: -VO_EQUOTA or -ENOENT with *ret_error naming the
 * quota, the use and what was asked; nothing changed then); and, for the
 * volume service's resize (vo_storage_set_disk_grow), the same for the VM
 * here that has volume key as a disk (0 when none has). */
int64_t vo_vm_volume_virtual_size(VoDaemon *d, const char *key);
int vo_vm_disk_bytes_change(VoVm *vm, int64_t delta, char **ret_error);
/* vm-disks.c: -EBUSY (409) when a volume of the VM (a disk, its NVRAM) is
 * marked by a restore (storage.h): one writing over it now, or one that did
 * not end well. A start asks before its task and again once "starting" is
 * saved (the restore marks first, then looks for VMs that run). */
int vo_vm_spec_check_restores(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
/* The start task's (a hold point for tests first). */
int vo_vm_start_check_restores(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
int vo_vm_check_restores(VoVm *vm, char **ret_error);
/* The start task's, once a restore over the VM's RBD disks that a crash cut
 * short is rolled back (or none was): the marks it left on them go. */
void vo_vm_spec_settle_restores(VoDaemon *d, const VoVmSpec *spec);
int vo_vm_volume_grow(VoDaemon *d, const char *key, int64_t delta, char **ret_error);
/* Caller holds d->vms_lock. */
VoVm *vo_vms_find_locked(VoDaemon *d, const char *name_or_id);
/* The first VM for which fn (called with vm->lock held) is true, referenced;
 * NULL when none. */
VoVm *vo_vms_find_if(VoDaemon *d, bool (*fn)(VoVm *vm, const void *arg), const void *arg);
/* Refuses (with *ret_error) unless the VM's state is in allowed (IN() bits). */
int vo_vm_precheck(VoVm *vm, unsigned allowed, const char *verb, char **ret_error);
/* The guest agent, for a task holding the job lock on a running VM
 * (vm-agent.c): guest-shutdown sent (true) or why not; the guest's file
 * systems frozen (true; thaw after) or why not (thawed again in case);
 * thaw (a failure is only logged). All bounded. */
bool vo_vm_agent_shutdown(VoVm *vm, VoHvInstance *hv, char **ret_reason);
bool vo_vm_agent_freeze(VoVm *vm, VoHvInstance *hv, char **ret_reason);
void vo_vm_agent_thaw(VoVm *vm, VoHvInstance *hv);
/* Caller holds the job lock: the guest agent's shutdown, then ACPI (unless
 * force), then kill; waits for the exit. */
int vo_vm_stop_locked(VoTask *t, VoVm *vm, bool force, int timeout_s);
/* Opens a tap on its network's bridge for each NIC that is not "user"
 * (fds[i] = -1 for those); vo_vm_close_taps closes and frees. */
int vo_vm_open_taps(VoDaemon *d, const VoVmSpec *spec, int **ret_fds, char **ret_error);
void vo_vm_close_taps(int *fds, size_t n);
/* Claims the network of each of spec's NICs (vo_network_claim), all or
 * none, for a VM being registered; released once it is in the registry. */
int vo_vm_claim_networks(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
void vo_vm_release_networks(VoDaemon *d, const VoVmSpec *spec);
/* For a change of a VM's disks or NICs (vm-change.c): takes the job lock and
 * gives the running VM's instance (*ret_hv; NULL when the VM is stopped, so
 * only its definition changes) and a copy of its spec to edit. Fails the
 * task (lock released) when the VM is in between (starting, paused, ...). */
int vo_vm_lock_for_change(VoTask *t, VoVm *vm, const char *verb, VoHvInstance **ret_hv,
                          VoVmSpec **ret_next);
/* If-Match of a VM operation (vm-change.c): caller holds the job lock and
 * vm->lock, before changing anything. 0 when the request that queued t named
 * no revision or the VM is still at it; otherwise releases both locks, fails
 * t and returns -VO_EIFMATCH (412). */
int vo_vm_check_if_match(VoTask *t, VoVm *vm);
/* Caller holds the job lock (so hv stays), not vm->lock: asks the running
 * VM what it has now and keeps it for GET (vm-resources.c). */
void vo_vm_refresh_live(VoVm *vm, VoHvInstance *hv);
/* Caller holds the job lock: next (stolen) becomes the VM's spec and is
 * saved; when saving fails the old spec stays. */
int vo_vm_commit_spec(VoVm *vm, VoVmSpec *next);
/* The same for a spec given MACs claimed (mac-claims.h, may be NULL): the
 * save confirms the claims, VO_RELATIONS_ECLAIM when one lapsed. */
int vo_vm_commit_spec_claimed(VoVm *vm, VoVmSpec *next, const VoMacClaims *mac_claims);
/* The words of a save the VM's project refused (over a quota, the project
 * gone, a volume or network of another project or being moved to one) for
 * the save's result r, or NULL (malloc'd). */
char *vo_vm_save_refusal(int r);
/* Queues an operation on the VM as a task keyed by the VM's id (one runs at a
 * time per VM; see jobs/tasks.h); args are the task's (freed when refused).
 * -EUSERS with *ret_error when too many wait. */
int vo_vm_submit(VoDaemon *d, VoVm *vm, const char *kind, VoTaskFn fn, void *args,
                 VoTaskFreeFn free_args, json_t **ret_task, char **ret_error);
/* The same for an operation that also needs the task key also (NULL: none). */
int vo_vm_submit_keyed(VoDaemon *d, VoVm *vm, const char *kind, const char *also,
                       VoTaskFn fn, void *args, VoTaskFreeFn free_args, json_t **ret_task,
                       char **ret_error);
/* The same, cancellable (vireo task cancel): undo(args) undoes what the
 * caller prepared when the task is cancelled before it runs; fn stops at a
 * cancel and returns -ECANCELED after undoing what it made. */
int vo_vm_submit_cancellable(VoDaemon *d, VoVm *vm, const char *kind, const char *also,
                             VoTaskFn fn, void *args, VoTaskFreeFn free_args, VoTaskFreeFn undo,
                             json_t **ret_task, char **ret_error);
/* Registers a new stopped VM with spec (taken; its id, name and MACs already
 * unique), e.g. a restored backup. -EEXIST when the name is taken.
 * mac_claims (may be NULL): the claims on its MACs (mac-claims.h), which
 * its document's write confirms: -EKEYEXPIRED when one lapsed. */
int vo_vm_define(VoDaemon *d, VoVmSpec *spec, const VoMacClaims *mac_claims, char **ret_error);
/* vm-register.c: a new VM registered as provisioning at the request (as a
 * create is): its name claimed here and in the cluster, its MACs (claims
 * confirmed), networks, group and project room (quotas checked with
 * disk_bytes) taken; no document yet. spec is taken. *ret_vm: a reference.
 * -EEXIST (name taken, here or on another host), -VO_EQUOTA, -EAGAIN, ... */
int vo_vm_register_provisioning(VoDaemon *d, VoVmSpec *spec, const VoMacClaims *mac_claims,
                                int64_t disk_bytes, VoVm **ret_vm, char **ret_error);
/* Its document written with spec next (taken): made, no longer
 * provisioning. On failure it stays provisioning (the caller unregisters). */
int vo_vm_register_done(VoVm *vm, VoVmSpec *next, char **ret_error);
/* A VM registered so whose making failed: its relations and name claim go,
 * it leaves the registry and its state directory goes. */
void vo_vm_unregister_provisioning(VoVm *vm);
/* The error of a write whose MAC claims lapsed (VO_RELATIONS_ECLAIM). */
char *vo_vm_mac_claim_lapsed(const char *name);

/* The cluster's MAC index (mac-claims.h, vm-mac-index.c). Adds to want the
 * index documents of spec's MACs that the write may put: those in have
 * (its relations as stored) and those claims holds (claimed for it). */
void vo_vm_add_mac_index(json_t *want, const VoVmSpec *spec, json_t *have,
                         const VoMacClaims *claims);
/* A VM that came to this host (a migration, a move, an HA restart) as
 * the index has it: its MACs entered where absent (a VM of an older host,
 * or one whose host could not enter them), and those it holds returned as
 * its relations (a new reference); one another VM holds, or is being given
 * at this moment, is logged and left out, so that no write of this VM ever
 * puts it or deletes it. */
json_t *vo_vm_mac_index_enter(VoDaemon *d, const VoVmSpec *spec);
/* The index documents among a VM's relations uses (a new reference). */
json_t *vo_vm_mac_index_of(json_t *uses);
/* At start, once the VMs are loaded: the held claims of this host's VMs
 * that have no document go (orphans: {vm-id: relations} as stored, those
 * of no loaded VM), this host's VMs' MACs are entered in the index where
 * missing, and then the host is marked as indexed
 * (cluster/mac-indexed/<host-id>). A MAC another VM holds there is
 * logged. */
void vo_vms_mac_index_fill(VoDaemon *d, json_t *orphans);

/* Live migration (migrate.c, migrate-incoming.c). Destination: registers
 * the VM whose documents the ownership transaction just moved here (spec
 * taken; rev: its document's revision), running on hv (taken; a paused
 * incoming instance), with the state of status ({"state",...}); watches
 * it. claimed_in (may be NULL): the migration whose claim made it this
 * host's (its document's mark, kept by every save); doc (may be NULL: it
 * is read): the document's text at rev, as the claim wrote it (one read
 * fewer while the guest waits paused). The caller then resumes it.
 * -EEXIST when the id is here already. */
int vo_vm_adopt_incoming(VoDaemon *d, VoVmSpec *spec, json_t *status, int64_t rev,
                         const char *claimed_in, const char *doc, VoHvInstance *hv,
                         VoVm **ret_vm, char **ret_error);
/* Cold move (move.c, and maintenance.c's move of a VM on shared disks),
 * destination: registers the stopped VM whose
 * document (vms/<vm_id>) the move's transaction just put here. -EEXIST
 * when it is here already, -EINVAL when the document is not a stopped
 * VM's. */
int vo_vm_adopt_moved(VoDaemon *d, const char *vm_id, char **ret_error);
/* A live migration's source, the VM taken back while in no table and its
 * QEMU gone: registers the VM of the document here (any state) and
 * records it crashed, its exit reason why (saved). Errors as
 * vo_vm_adopt_moved. */
int vo_vm_adopt_crashed(VoDaemon *d, const char *vm_id, const char *why, char **ret_error);
/* Source, after the switch: waits (bounded) for the VM's QEMU to be gone,
 * drops the VM from the registry and removes its run and state dirs. */
void vo_vm_forget_migrated(VoVm *vm);
/* The VM's document as stored ({"spec","status"}); vm->lock held. */
json_t *vo_vm_document_locked(VoVm *vm);

/* vm-resolve.c. The copy of spec the driver gets: each disk's path, the
 * kernel's and the initrd's, as this host's pools and images have them
 * (*ret_error names what is missing). */
int vo_vm_resolve(VoDaemon *d, const VoVmSpec *spec, VoVmSpec **ret, char **ret_error);
/* Upgrades a spec document written when specs held host paths, in place
 * (vo_vm_spec_upgrade_json with this host's pools and images). */
int vo_vm_spec_upgrade(VoDaemon *d, json_t *doc, bool *ret_changed, char ***ret_problems);
/* Sets "path" of each disk (objects with "volume") of a JSON view: its file
 * on this host, null when it has none. Caller holds no VM or registry lock. */
void vo_vm_json_add_disk_paths(VoDaemon *d, json_t *disks);
