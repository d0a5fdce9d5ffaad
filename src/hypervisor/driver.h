/* driver.h: the one interface vireod uses to run VMs. The QEMU driver is the
 * real one; the fake driver (in memory, deterministic, with injectable faults)
 * serves control-plane tests and scale simulations. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/vm-spec.h"

typedef struct VoHvDriver VoHvDriver;
typedef struct VoHvInstance VoHvInstance; /* a running VM, driver-private */

typedef struct {
    pid_t pid;
    /* The uid its process runs as (a confined QEMU's own, or vireod's);
     * has_uid false: no process of its own (the fake driver). */
    uid_t uid;
    bool has_uid;
    VoAccel accel; /* the accelerator in use */
    bool paused;
    bool io_error; /* paused by a disk I/O error (QEMU's status "io-error") */
} VoHvInfo;

/* A backup of every disk of a VM at one instant (see docs/backups-api.md).
 * Each disk is copied into a new qcow2 target file; an incremental backup
 * copies only what the disk's persistent dirty bitmap says changed since the
 * backup parent_path belongs to. */
typedef struct {
    unsigned slot;           /* VoDiskSpec.slot: names the QEMU node */
    const char *path;        /* the disk's file and format (for a stopped VM) */
    VoDiskFormat format;
    bool readonly;           /* with raw: no dirty bitmap, so full backups only */
    uint64_t virtual_size;
    const char *target_path; /* the new file; created by the driver */
    const char *parent_path; /* the previous backup's file of this disk, as the
                              * target's backing file (relative to it), or NULL */
} VoHvBackupDisk;

typedef struct {
    const VoHvBackupDisk *disks;
    size_t n_disks;
    bool incremental;     /* wanted; done only when every bitmap is usable */
    const char *bitmap;   /* the name of the VM's persistent dirty bitmap */
    const char *work_dir; /* for sockets and logs (the VM's run dir) */
    uint64_t speed;       /* bytes/s the whole copy may use at most, shared
                           * evenly by the disks' jobs; 0: no limit */
    void (*progress)(int percent, void *userdata);
    /* Called right before the instant of the copy (freeze true: e.g. the
     * guest's file systems are frozen) and right after it (false), the
     * second always when the first was made, also when the copy could not
     * start; NULL: none. */
    void (*quiesce)(bool freeze, void *userdata);
    void *userdata;
} VoHvBackupPlan;

typedef struct {
    bool incremental; /* what was done */
    char *reason;     /* why a wanted incremental became full, or NULL */
    bool jobs_failed; /* on failure: the jobs certainly did not succeed (never
                       * started, or concluded with an error), so no bitmap was
                       * synchronised; false when that is not known */
} VoHvBackupResult;

/* A running VM's vCPUs and memory: what it has now and the range a live
 * change may reach (fixed when it started: boot vCPUs cannot be unplugged,
 * memory below the boot size needs the balloon). */
typedef struct {
    unsigned vcpus, min_vcpus, max_vcpus;
    uint64_t memory_mib;      /* what the guest has now (balloon included) */
    uint64_t boot_memory_mib; /* -m at start */
    uint64_t boot_memory_kib; /* the same in KiB as QEMU has it: a TCG VM with memory
                               * hot-plug has a few KiB more (qemu-argv.c, boot_pad_kib) */
    uint64_t min_memory_mib, max_memory_mib;
} VoHvResources;

/* Where a VM's memory in use (VoHvLoad) came from, best first. */
typedef enum {
    VO_HV_MEM_GUEST,   /* the guest's own use, from the balloon's statistics */
    VO_HV_MEM_BALLOON, /* the balloon's actual (what the guest may use), below RSS */
    VO_HV_MEM_RSS,     /* the process's resident memory */
    _VO_HV_MEM_SOURCE_MAX,
} VoHvMemSource;
/* "guest", "balloon", "rss" (hypervisor/mem-source.c); NULL out of range. */
const char *vo_hv_mem_source_to_string(VoHvMemSource s);
int vo_hv_mem_source_from_string(const char *name, VoHvMemSource *ret); /* -EINVAL */

/* What a running VM uses (the DRS samples, docs/drs.md): the CPU time its
 * process used so far and the time its threads waited, runnable, for a CPU
 * (the caller takes deltas over wall time: used + waited is its demand) and the
 * memory it uses: the guest's own use when the balloon's statistics report
 * it (its total less what it has available, as monitoring counts a host's
 * use), else the smaller of the process's resident memory and the
 * balloon's actual (what the guest may use), else the resident memory. */
typedef struct {
    uint64_t cpu_ns;       /* user + system time since the process started */
    uint64_t wait_ns;      /* runnable but not running, since the driver first asked */
    uint64_t mem_used_mib;
    VoHvMemSource mem_source;
    /* The process's resident memory: about what a live migration copies,
     * the guest's page cache too, which mem_used_mib from the guest's
     * statistics leaves out (the DRS move cost). */
    uint64_t rss_mib;
    /* When cpu_ns and wait_ns were read (monotonic ms; 0: not said): the
     * caller's wall time between two samples runs between these, not
     * between its calls, which also wait for the balloon's answer. */
    int64_t at_ms;
} VoHvLoad;

/* What a running VM uses, for monitoring (docs/monitoring.md): counters
 * since its process started (the sampler takes rates) and memory now. */
typedef struct {
    uint64_t cpu_ns;        /* user + system time of the process */
    uint64_t rss_bytes;     /* the process's resident memory */
    uint64_t balloon_bytes; /* the balloon's actual (have_balloon) */
    bool have_balloon;
    uint64_t rd_bytes, wr_bytes, rd_ops, wr_ops; /* all disks (have_disk) */
    bool have_disk;
} VoHvStats;

/* What a running VM reports on its own (QMP events for QEMU), as the
 * driver's events_read hands them to the daemon. The strings point into the
 * driver's message and are valid only during the callback. Migration events
 * come later (append new types at the end). */
typedef enum {
    VO_HV_EVENT_SHUTDOWN,       /* the VM is about to exit (reason, guest) */
    VO_HV_EVENT_RESET,          /* the VM was reset (reason, guest) */
    VO_HV_EVENT_STOP,           /* vCPUs stopped (reason: "io-error" or NULL) */
    VO_HV_EVENT_RESUME,         /* vCPUs run again */
    VO_HV_EVENT_BLOCK_IO_ERROR, /* device/node, operation, action, nospace, reason */
    VO_HV_EVENT_DEVICE_DELETED, /* id: a device the guest released (hot-unplug) */
    VO_HV_EVENT_JOB_STATUS,     /* id, status: a block job changed status */
    _VO_HV_EVENT_MAX
} VoHvEventType;

typedef struct {
    VoHvEventType type;
    const char *name;      /* the hypervisor's own name of the event ("STOP") */
    int64_t timestamp_us;  /* when the hypervisor sent it (wall clock); 0 if unknown */
    const char *reason;    /* SHUTDOWN/RESET/STOP: why; BLOCK_IO_ERROR: the error */
    bool guest;            /* SHUTDOWN/RESET: the guest asked for it */
    const char *device;    /* BLOCK_IO_ERROR: device (or node) name */
    const char *node;      /* BLOCK_IO_ERROR: block node name, or NULL */
    const char *operation; /* BLOCK_IO_ERROR: "read" or "write" */
    const char *action;    /* BLOCK_IO_ERROR: "stop", "report" or "ignore" */
    bool nospace;          /* BLOCK_IO_ERROR: the host ran out of space */
    bool late;             /* BLOCK_IO_ERROR: held back by the hypervisor (QEMU
                            * throttles them) until after a later RESUME: about a
                            * stop that is over */
    const char *id;        /* DEVICE_DELETED: device id; JOB_STATUS: job id */
    const char *status;    /* JOB_STATUS: the job's new status */
} VoHvEvent;

#define VO_HV_AGENT_NO_REPLY 1u /* agent_command: no reply on success */

typedef void (*VoHvEventFn)(VoHvInstance *vm, const VoHvEvent *ev, void *userdata);

/* ---- Live migration (types) ------------------------------------------------
 * See docs/internals.md, "Driver". A migration runs between a source
 * instance (a running VM) and a destination instance started paused from
 * the same spec and the source's hardware layout (->layout), waiting on a
 * URI: "tcp:HOST:PORT" or "unix:PATH". */
typedef enum {
    VO_HV_MIGRATION_NONE,      /* none started */
    VO_HV_MIGRATION_SETUP,
    VO_HV_MIGRATION_ACTIVE,    /* copying (also QEMU's other in-progress states) */
    VO_HV_MIGRATION_COMPLETED,
    VO_HV_MIGRATION_FAILED,
    VO_HV_MIGRATION_CANCELLING,
    VO_HV_MIGRATION_CANCELLED,
    VO_HV_MIGRATION_FAILING,   /* failed, QEMU's clean-up still under way: ends failed */
    _VO_HV_MIGRATION_MAX
} VoHvMigrationStatus;
const char *vo_hv_migration_status_to_string(VoHvMigrationStatus s);
/* Cancelling or failing: ending, its end state (cancelled, failed) to come. */
static inline bool vo_hv_migration_ending(VoHvMigrationStatus s)
{
    return s == VO_HV_MIGRATION_CANCELLING || s == VO_HV_MIGRATION_FAILING;
}
/* Failed or cancelled, or on its way there. */
static inline bool vo_hv_migration_ended_or_ending(VoHvMigrationStatus s)
{
    return s == VO_HV_MIGRATION_FAILED || s == VO_HV_MIGRATION_CANCELLED ||
           vo_hv_migration_ending(s);
}

/* Mutual TLS for the streams between hosts (memory and local disks), made
 * from this host's cluster certificate (see docs/internals.md, "Live
 * migration entry points"): both ends present their certificate and verify
 * the other's against ca_cert. Paths are absolute PEM files, read when the
 * stream is set up. NULL where a struct holds one: plain (unix: URIs, one
 * host). */
typedef struct {
    const char *ca_cert;   /* the cluster CA */
    const char *cert, *key; /* this host's certificate (server and client use) and key */
    const char *hostname;  /* client side: the name or address the destination's
                            * certificate must carry; NULL: the URI's host */
} VoHvMigrationTls;

/* Auto-converge's vCPU throttle: QEMU's defaults (first throttle 20%, then
 * +10% each round the dirty rate still beats the bandwidth), and what a
 * forced convergence asks for instead (docs/internals.md, "Live
 * migration entry points"). The throttle never passes 99%. */
#define VO_HV_THROTTLE_INITIAL 20
#define VO_HV_THROTTLE_INCREMENT 10
#define VO_HV_FORCE_THROTTLE_INITIAL 50
#define VO_HV_FORCE_THROTTLE_INCREMENT 25

typedef struct {
    uint64_t max_bandwidth;   /* bytes per second; 0: the hypervisor's default */
    uint64_t post_copy_bandwidth; /* post-copy's background push (bytes per second);
                                   * 0: max_bandwidth (0 there too: unlimited) */
    unsigned downtime_limit_ms; /* 0: the hypervisor's default */
    bool auto_converge;       /* throttle vCPUs when memory is dirtied faster than sent */
    bool force_converge;      /* with auto_converge: throttle harder and sooner (QEMU:
                               * VO_HV_FORCE_THROTTLE_* below, tail-slow on) */
    bool post_copy;           /* post-copy allowed (QEMU's postcopy-ram, on both sides:
                               * migrate_prepare's post_copy too); the switch to it is
                               * migrate_start_post_copy */
    const VoHvMigrationTls *tls; /* the memory stream over mutual TLS; NULL: plain */
} VoHvMigrationOptions;

typedef struct {
    VoHvMigrationStatus status;
    uint64_t transferred, remaining, total; /* bytes of RAM */
    uint64_t dirty_pages_rate;              /* pages per second */
    uint64_t page_size;                     /* bytes */
    uint64_t expected_downtime_ms;          /* while active */
    uint64_t downtime_ms;                   /* the real one, once completed */
    uint64_t total_time_ms;
    uint64_t passes;                        /* dirty-memory sync rounds */
    unsigned throttle_pct;                  /* vCPUs throttled this much (auto-converge) */
    bool switching;                         /* active, but past the memory copy: at its
                                             * switch-over (QEMU's pre-switchover, device) */
    bool post_copy;                         /* active in post-copy: the source's vCPUs are
                                             * stopped, its device state sent; the rest of
                                             * RAM follows (QEMU's postcopy-active) */
    bool post_copy_paused;                  /* post-copy's stream broke: pages left behind
                                             * on both sides, nothing flows until a
                                             * recovery (QEMU's postcopy-paused) */
    bool post_copy_recovering;              /* a recovery of that stream is under way
                                             * (QEMU's postcopy-recover-setup and
                                             * postcopy-recover): flowing again soon */
    bool at_switchover;                     /* paused before the switch-over, waiting for
                                             * migrate_continue (a post-copy migration's
                                             * stop; the disk mirrors' is the driver's) */
    char *error;                            /* why it failed (malloc'd), or NULL */
} VoHvMigrationProgress;

typedef enum { VO_HV_MIGRATION_SOURCE, VO_HV_MIGRATION_DESTINATION } VoHvMigrationSide;

/* ---- Live migration of local disks (types; ops mirror_* below) -----------
 * A VM whose disks are not shared copies them to the destination before its
 * memory (libvirt's order): the destination serves its new files (made by
 * the caller: empty, same virtual size; for a linked clone an overlay on the
 * same base image, present there) over NBD (mirror_export), the source
 * mirrors each disk into them (mirror_start, write-blocking once in sync),
 * and once mirror_query says every disk is ready the memory migration starts
 * (migrate_start); at its switch-over the driver completes the mirrors
 * before the destination may run. */
/* The slot a plan gives a UEFI VM's NVRAM (the machine's second flash
 * chip, a qcow2 volume): mirrored like a disk, never a disk's slot. */
#define VO_HV_NVRAM_SLOT 4000u

typedef struct {
    unsigned slot;      /* VoDiskSpec.slot, the same on both sides; VO_HV_NVRAM_SLOT:
                         * the UEFI NVRAM */
    const char *export; /* the disk's NBD export name; NULL: "disk<slot>" */
    bool top_only;      /* source: the destination's file is an overlay on the
                         * same base image, so only the top layer is copied
                         * (sync "top"); false: the whole disk ("full") */
} VoHvMirrorDisk;

typedef struct {
    const char *uri; /* the destination's NBD server: "tcp:HOST:PORT" or "unix:/PATH" */
    const VoHvMirrorDisk *disks;
    size_t n_disks;
    uint64_t speed; /* bytes/s each disk's copy may use at most; 0: no limit */
    const VoHvMigrationTls *tls; /* NBD over mutual TLS (server on the destination,
                                  * client on the source); NULL: plain */
} VoHvMirrorPlan;

typedef struct {
    size_t n_disks, n_ready;
    bool ready;                   /* every disk in sync: the memory phase may start */
    uint64_t transferred, total;  /* bytes of the disk phase, all disks */
    char *error;                  /* a mirror failed: why (malloc'd), or NULL */
} VoHvMirrorProgress;

struct VoHvDriver {
    const char *name;
    /* Launches the VM with its vCPUs stopped (so the console can be attached
     * before the first byte); vo continues it with ->resume. */
    /* tap_fds: per NIC, an open tap for a NIC on a vireo network, -1 for a
     * user-mode NIC (NULL: none); the driver hands them to the VM. */
    int (*start)(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir, const int *tap_fds,
                 VoHvInstance **ret, char **ret_error);
    /* Re-attaches to a VM started by an earlier vireod; -ESRCH when it is gone. */
    int (*attach)(VoHvDriver *d, const VoVmSpec *spec, const char *run_dir, VoHvInstance **ret);
    int (*info)(VoHvInstance *vm, VoHvInfo *ret);
    int (*pause)(VoHvInstance *vm);
    int (*resume)(VoHvInstance *vm);
    int (*powerdown)(VoHvInstance *vm); /* ACPI power button */
    int (*reset)(VoHvInstance *vm);
    int (*kill)(VoHvInstance *vm);      /* immediate stop */
    /* Grows the disk in slot (VoDiskSpec.slot) while the VM runs (the guest
     * sees it at once); -EOPNOTSUPP when the driver cannot. */
    int (*resize_disk)(VoHvInstance *vm, unsigned slot, uint64_t size);
    /* Internal snapshots of a running VM, every disk of spec at the same
     * instant: op "save" (with the memory state in the boot disk), "load" or
     * "delete" of tag. */
    int (*snapshot)(VoHvInstance *vm, const char *op, const char *tag, const VoVmSpec *spec,
                    char **ret_error);
    /* Hot-plug into a running VM. disk_attach plugs spec->disks[index] (its
     * slot already chosen; spec is the definition with the disk in it);
     * nic_attach plugs nic, backed by tap_fd (an open tap; -1 for a "user"
     * NIC), of which the driver keeps its own copy. On failure nothing is
     * left plugged. The detach calls ask the guest to release the device in
     * slot and wait for it (bounded): -ETIMEDOUT when it did not, and the
     * device stays. -EOPNOTSUPP when the driver cannot. */
    int (*disk_attach)(VoHvInstance *vm, const VoVmSpec *spec, size_t index, char **ret_error);
    int (*disk_detach)(VoHvInstance *vm, unsigned slot, char **ret_error);
    int (*nic_attach)(VoHvInstance *vm, const VoVmSpec *spec, const VoNicSpec *nic, int tap_fd,
                      char **ret_error);
    int (*nic_detach)(VoHvInstance *vm, unsigned slot, char **ret_error);
    /* Media change in the running VM's CD-ROM drive: the ISO at path goes
     * in (NULL: the drive is emptied). NULL op: not supported. */
    int (*cdrom_change)(VoHvInstance *vm, const char *path, char **ret_error);
    /* The same in the drive of the cloud-init seed (cidata) a VM started
     * with one has: after a settings change, a reboot inside the guest
     * reads the new seed, as a start would. -ENODEV: the VM started
     * without a seed (no such drive). NULL op: not supported (the new
     * seed waits for the next start). */
    int (*seed_change)(VoHvInstance *vm, const char *path, char **ret_error);
    /* The display of a VM that has one (spec->display): screendump gives
     * a PNG of its screen (malloc'd); send_keys presses each combination of
     * combos (arrays of QMP KeyValues: qemu/qemu-keys.h) in order;
     * vnc_socket is the Unix socket of its VNC server (with password: of
     * the one that asks for the password vnc_ticket set; NULL when it has
     * none). NULL: not supported. */
    int (*screendump)(VoHvInstance *vm, char **ret_png, size_t *ret_len, char **ret_error);
    int (*send_keys)(VoHvInstance *vm, json_t *combos, char **ret_error);
    const char *(*vnc_socket)(VoHvInstance *vm, bool password);
    /* A one-time VNC password: sets password on the display's second VNC
     * server (the one that asks for one), valid for new viewers during
     * ttl_seconds. -EBUSY when this QEMU has no such server (started before it
     * existed: a restart gives it one). NULL: not supported. */
    int (*vnc_ticket)(VoHvInstance *vm, const char *password, unsigned ttl_seconds,
                      char **ret_error);
    /* Backs up every disk of a running VM at one instant (plan above). On
     * failure the bitmaps still hold every change since the last successful
     * backup; the caller removes the target files. */
    int (*backup)(VoHvInstance *vm, const VoHvBackupPlan *plan, VoHvBackupResult *ret,
                  char **ret_error);
    /* vCPU and memory hot-plug (see VoHvResources). query_resources reports
     * what the running VM has and can reach; with wait false it gives up
     * with -EAGAIN rather than wait for another operation on the VM.
     * set_vcpus plugs or unplugs vCPUs (the guest must release each one
     * unplugged; bounded wait, -ETIMEDOUT when it did not). set_memory grows
     * or shrinks the hot-pluggable memory and, below the boot size, inflates
     * the balloon, waiting (bounded) for the guest. Both report what the VM
     * has afterwards, also on failure. */
    int (*query_resources)(VoHvInstance *vm, bool wait, VoHvResources *ret);
    int (*set_vcpus)(VoHvInstance *vm, unsigned n, unsigned *ret_now, char **ret_error);
    int (*set_memory)(VoHvInstance *vm, uint64_t mib, uint64_t *ret_now_mib, char **ret_error);
    /* The VM's load now (VoHvLoad); never waits for another operation on
     * the VM (a busy monitor: the balloon is not asked, RSS stands). */
    int (*load)(VoHvInstance *vm, VoHvLoad *ret);
    /* The VM's event source: an fd that turns readable when events wait
     * (-1: none, e.g. a QEMU started by an older vireod). Only the daemon's
     * event loop reads it: events_read takes what is there without blocking
     * and calls fn for each event, in order; 0, or -ECONNRESET once the
     * source is gone (the VM is exiting: exit_fd follows). Never a command
     * round-trip, so it is safe on the loop while other threads run
     * commands on the VM. */
    int (*events_fd)(VoHvInstance *vm);
    int (*events_read)(VoHvInstance *vm, VoHvEventFn fn, void *userdata);
    /* An fd that turns readable once the VM is gone (a pidfd for QEMU). */
    int (*exit_fd)(VoHvInstance *vm);
    /* After exit_fd turned readable: was it a clean shutdown, and why did it end. */
    void (*reap)(VoHvInstance *vm, bool *ret_clean, char **ret_reason);
    /* The guest agent (QEMU: qemu-ga on a virtio-serial channel): runs one
     * command with args (borrowed, may be NULL), one at a time per VM, and
     * waits at most timeout_ms (the wait for another command's turn
     * included); *ret (may be NULL) gets its "return" value. flags
     * VO_HV_AGENT_NO_REPLY: the command answers nothing when it succeeds
     * (guest-shutdown). An agent that is absent or silent gives -ENOTCONN
     * with a message saying "the guest agent does not answer"; one that
     * refuses the command gives -EIO with its reason. NULL op: no agent. */
    int (*agent_command)(VoHvInstance *vm, const char *cmd, json_t *args, unsigned flags,
                         int timeout_ms, json_t **ret, char **ret_error);
    /* Unix socket of the serial console, or NULL when the driver has none. */
    const char *(*console_socket)(VoHvInstance *vm);
    void (*release)(VoHvInstance *vm);
    /* ---- Live migration (ops; types above) ----
     * layout: the hardware layout the running VM has now (machine version,
     * CPU model, ports and slots, hot-plugged vCPUs and memory): JSON text
     * (malloc'd), the driver's own format, handed as is to the destination's
     * migrate_prepare. Recorded in the VM's run dir as it changes, so a
     * re-attached instance has it too. */
    int (*layout)(VoHvInstance *vm, char **ret_layout, char **ret_error);
    /* Destination: starts a VM identical to the source (spec + layout), its
     * vCPUs stopped, waiting for an incoming migration on uri; on failure
     * nothing is left running. tap_fds as for start. tls (NULL: plain): the
     * incoming stream must be mutual TLS with a certificate of tls->ca_cert;
     * the credentials go at migrate_finish. post_copy: the source may switch
     * to post-copy (-EOPNOTSUPP when this host cannot: no userfaultfd). */
    int (*migrate_prepare)(VoHvDriver *d, const VoVmSpec *spec, const char *layout,
                           const char *run_dir, const int *tap_fds, const char *uri,
                           bool post_copy, const VoHvMigrationTls *tls, VoHvInstance **ret,
                           char **ret_error);
    /* Source: starts migrating to uri (returns once it is under way). */
    int (*migrate_start)(VoHvInstance *vm, const char *uri, const VoHvMigrationOptions *opts,
                         char **ret_error);
    /* Source, a migration started with opts->post_copy: stops the vCPUs here,
     * sends the device state, and the destination may run (continued by its
     * migrate_finish) while the rest of RAM follows on demand and in the
     * background. Past this, the source can no longer simply resume: its
     * RAM is still whole, but QEMU will not cancel a post-copy migration. */
    int (*migrate_start_post_copy)(VoHvInstance *vm, char **ret_error);
    /* Source, a migration started with opts->post_copy: both sides stop
     * before the switch-over (query's at_switchover; the destination has
     * run nothing) until this lets it go on: the device state goes, and
     * the post-copy phase starts (or a pre-copy that converged completes).
     * Until then migrate_cancel resumes the source as before. */
    int (*migrate_continue)(VoHvInstance *vm, char **ret_error);
    /* Post-copy recovery (its stream broke: both sides' query says
     * post_copy_paused; the guest's memory is split between them, so
     * neither may end). Destination: listens on uri for the source's
     * resumed stream (QEMU's migrate-recover). Source: sends the rest of
     * the memory there, resuming the paused migration (QEMU's migrate with
     * resume). NULL in a driver without post-copy. */
    int (*migrate_recover)(VoHvInstance *vm, const char *uri, char **ret_error);
    int (*migrate_resume)(VoHvInstance *vm, const char *uri, char **ret_error);
    /* Either side, in post-copy: breaks its stream on purpose (QEMU's
     * migrate-pause), so a side that has not seen the link go yet is
     * paused and can be recovered. */
    int (*migrate_pause)(VoHvInstance *vm, char **ret_error);
    /* Either side: where the migration is; ret->error is the caller's to free. */
    int (*migrate_query)(VoHvInstance *vm, VoHvMigrationProgress *ret);
    /* Source: waits up to timeout_ms for the migration's status to change
     * (QEMU's MIGRATION event), so a caller can ask migrate_query seldom
     * and still see the end at once. 0 when it changed (or may have: an
     * event of an earlier migration counts too), -ETIMEDOUT, -ECANCELED
     * when cancellable and cancel is asked of the calling thread's work
     * (util/cancel.h; seen within 50 ms), or -errno when the instance's
     * monitor is gone. With passes, a pass over memory ending (a dirty
     * sync: QEMU's MIGRATION_PASS, which post-copy's switch waits for)
     * ends it too. NULL: the caller polls. */
    int (*migrate_wait)(VoHvInstance *vm, int timeout_ms, bool cancellable, bool passes);
    /* Source: cancels a migration under way (the VM keeps running here; the
     * caller kills the destination instance). Any TLS credentials the
     * migration or the mirrors made are removed (also by migrate_finish). */
    int (*migrate_cancel)(VoHvInstance *vm, char **ret_error);
    /* Ends a migration on one side. succeeded: the destination is resumed
     * when resume (the caller says whether the VM ran on the source when
     * the migration started: a paused VM stays paused), the source stopped
     * (its process ends); failed: the destination is killed, the source
     * resumed when its vCPUs ran when its migrate_start began it (the
     * driver remembers; resume is not used on the source). */
    int (*migrate_finish)(VoHvInstance *vm, VoHvMigrationSide side, bool succeeded, bool resume,
                          char **ret_error);
    /* A digest of the guest's RAM (boot memory and hot-pluggable memory),
     * 64 hex digits of SHA-256, of a VM whose vCPUs are stopped (a source
     * after its migration completed, a destination waiting paused): equal
     * on both sides of a migration when every page arrived. Files it needs
     * go in the VM's run dir and are removed. */
    int (*memory_digest)(VoHvInstance *vm, char ret[65], char **ret_error);
    /* ---- Live migration of local disks (types above; qemu-mirror.c) ----
     * mirror_export, destination, after migrate_prepare: serves the disks of
     * plan (slot, export name) writable over NBD at plan->uri; the server
     * stops at migrate_finish (or with the instance).
     * mirror_start, source: a mirror of each disk of plan into the
     * destination's export; returns once under way; on failure nothing is
     * left (no job, no NBD connection).
     * mirror_query, source: the disk phase; -EIO with ret->error once a
     * mirror failed (the caller cancels with migrate_cancel).
     * With mirrors running, migrate_start refuses (-EBUSY) until every disk
     * is ready, and migrate_query completes the mirrors at the switch-over;
     * migrate_cancel and a failed migrate_finish on the source cancel them
     * too (the VM runs on with its own disks). */
    int (*mirror_export)(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error);
    int (*mirror_start)(VoHvInstance *vm, const VoHvMirrorPlan *plan, char **ret_error);
    int (*mirror_query)(VoHvInstance *vm, VoHvMirrorProgress *ret);
    /* The machine types (and their aliases) the hypervisor has, a sorted
     * NULL-terminated strv the caller frees (an empty one when it cannot
     * tell); the host publishes them so a migration's target is checked
     * for the VM's (cluster/migrate-compat.h). May run a program: called
     * once, at start. */
    char **(*machines)(VoHvDriver *d);
    /* The hypervisor's version ("10.0.2"), malloc'd, or NULL when it cannot
     * tell; the host publishes it (its record's "qemu_version", GET
     * /v1/host). May run a program: called once, at start. NULL: unknown. */
    char *(*version)(VoHvDriver *d);
    /* Whether a VM with this firmware can start here (UEFI: OVMF's code
     * and vars files, the secure-boot pair for secure_boot): 0, or -EINVAL
     * with *ret_error naming what is missing and how to install it. The
     * host publishes what passes (its record's "firmware"), so a move's or
     * migration's target is checked for a UEFI VM's (cluster/
     * migrate-compat.h). NULL: every firmware. */
    int (*firmware_check)(VoHvDriver *d, VoFirmware firmware, bool secure_boot,
                          char **ret_error);
    /* The VM's monitoring counters now (VoHvStats); like load it never
     * waits for another operation on the VM: a busy monitor leaves the
     * balloon and disk counters out (have_* false). NULL: none. */
    int (*stats)(VoHvInstance *vm, VoHvStats *ret);
    /* Sets a running VM's cgroup limits from spec again (its cpu_weight,
     * cpu_limit); it may ask QEMU (its vCPU threads), so callers hold no VM
     * lock, only its job. -ENODEV when it has no cgroup. NULL: none. */
    int (*cgroup_update)(VoHvInstance *vm, const VoVmSpec *spec, char **ret_error);
    bool kvm_usable;
    char *kvm_reason;
    /* QEMU's confinement (qemu-confine.h, qemu-cgroup.h): the unprivileged
     * user it runs as (NULL: root, unconfined) and its ids, and the cgroup
     * directory each VM's QEMU gets one below (NULL: no cgroups). */
    char *qemu_user;
    uid_t qemu_uid;
    gid_t qemu_gid;
    /* vireod --qemu-uid-range: each VM's QEMU gets a uid of its own from
     * first..last (qemu-uids.h), its gid staying qemu_gid; 0: all share
     * qemu_uid. */
    uid_t qemu_uid_first, qemu_uid_last;
    struct VoCgroupHost *cgroups;
};

int vo_qemu_driver_new(VoHvDriver **ret);
int vo_fake_driver_new(VoHvDriver **ret);
