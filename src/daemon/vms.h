/* vms.h: the VM registry and lifecycle: each VM's definition, state machine,
 * persistence in the store, and the operations the API runs as tasks. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"
#include "daemon/mac-claims.h"

typedef enum {
    VO_VM_DEFINED,
    VO_VM_STARTING,
    VO_VM_RUNNING,
    VO_VM_PAUSED,
    VO_VM_STOPPING,
    VO_VM_STOPPED,
    VO_VM_CRASHED,
    _VO_VM_STATE_MAX,
} VoVmState;

const char *vo_vm_state_to_string(VoVmState s);

/* Loads every VM from the store, re-attaches to running QEMUs, marks the dead
 * ones crashed, then starts autostart VMs once per host boot. */
int vo_vms_load(VoDaemon *d);

/* "a VM named 'NAME' already exists", naming the host that has it when it
 * is another host of the cluster (its name claim, state/keys.h). */
char *vo_vm_name_taken_message(VoDaemon *d, const char *name);

/* Looks a VM up by name or id; returns a reference (vo_vm_unref it) or NULL. */
VoVm *vo_vms_find(VoDaemon *d, const char *name_or_id);
/* The project the VM counts against ("default" when none): a copy. */
char *vo_vm_project(VoVm *vm);
void vo_vm_unref(VoVm *vm);
static inline void vo_vm_unrefp(VoVm **vm) { if (*vm) vo_vm_unref(*vm); }
#define _cleanup_vm_ __attribute__((cleanup(vo_vm_unrefp)))

/* API representation (new reference). */
json_t *vo_vm_to_json(VoVm *vm);
/* The store revision of the VM's document (its ETag), and a copy of its id. */
int64_t vo_vm_rev(VoVm *vm);
char *vo_vm_id(VoVm *vm);
/* A copy of the VM's name, read under vm->lock (a task committing a new
 * definition frees the old one, name included). */
char *vo_vm_name(VoVm *vm);
/* summary: only what a listing shows (id, name, state, vcpus, memory_mib,
 * accel, accel_active, pid, uptime_s, autostart), for big lists. */
/* Sets "project" on every VM of arr that has none ("default": VMs listed
 * from other hosts' documents), and keeps only project's when not NULL. */
void vo_vms_json_by_project(json_t *arr, const char *project);
json_t *vo_vms_list_json(VoDaemon *d, bool summary);

/* Operations. Each checks its preconditions at once (returning -EBUSY etc.
 * with *ret_error set) and then queues a task; *ret_task is the task JSON. */
typedef struct {
    const char *name;
    const char *image;
    unsigned vcpus;
    uint64_t memory_mib;
    unsigned max_vcpus;       /* 0: vcpus (no vCPU hot-plug) */
    uint64_t max_memory_mib;  /* 0: memory_mib (no memory hot-plug) */
    uint64_t disk_size_bytes; /* 0: the image's size */
    VoAccel accel;
    bool autostart;
    bool full_clone;          /* a full copy of the image instead of a linked clone */
    const char *const *networks; /* one NIC on each; NULL: the default network */
    size_t n_networks;
    /* The NICs' MACs, in order (at most one per NIC; NULL entries and the
     * NICs after the last: new ones), claimed in the cluster
     * (daemon/mac-claims.h); NULL: all new. */
    const char *const *macs;
    size_t n_macs;
    const char *group; /* placement group (must exist: the API checks), or NULL */
    const char *pool;  /* where the boot disk is made; NULL: "default". A shared
                        * pool makes a VM that can live-migrate (vireo vm migrate) */
    bool blank;        /* no image: an empty disk of disk_size_bytes, firmware boot */
    bool has_cdrom;    /* a CD-ROM drive, with ISO volume cdrom ("pool/name") or empty */
    const char *cdrom;
    VoBootDev boot[_VO_BOOT_MAX]; /* firmware boot order; n_boot 0: the default */
    size_t n_boot;
    const char *firmware; /* "bios" | "uefi"; NULL: the image's preference, else bios */
    bool secure_boot;     /* uefi only */
    /* "vga" | "virtio" | "none"; NULL: vga when cdrom is given (an ISO
     * install), else none. */
    const char *display;
    json_t *cloud_init;   /* a "cloud_init" object (borrowed), or NULL: the image's default */
    bool ha;           /* highly available (docs/ha.md): pool must be shared */
    int ha_priority;
    const char *ha_group;
    /* An existing volume ("pool/name", e.g. an iSCSI LUN) as the boot disk,
     * attached as it is (not made, not owned: kept when the VM goes), under
     * the rule of a disk add (one VM unless shareable); the image gives the
     * kernel. Not with blank, pool or disk_size_bytes. */
    const char *disk_volume;
    const char *project; /* the project it counts against (must exist); NULL: "default" */
} VoVmCreateArgs;

int vo_vm_create(VoDaemon *d, const VoVmCreateArgs *args, json_t **ret_task, json_t **ret_vm,
                 char **ret_error);
/* fn is called (holding no lock) whenever a VM leaves this host's registry
 * (deleted, a create undone): the hosts service, above the VMs, rewrites
 * the host's record then so placement sees the room again. */
void vo_vms_set_gone_hook(void (*fn)(VoDaemon *d));
int vo_vm_start(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error);
/* The same for an HA restart (ha-retry.c): never refused by the queue's bound. */
int vo_vm_start_ha(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error);
/* cloud-init (vm-cloudinit.c): the settings and the seed's documents as the
 * guest gets them; set replaces the settings (NULL: none) and remakes the
 * seed, which a running VM reads at its next start. */
json_t *vo_vm_cloud_init_json(VoDaemon *d, VoVm *vm);
int vo_vm_cloud_init_set(VoDaemon *d, VoVm *vm, json_t *settings, json_t **ret_task,
                         char **ret_error);
/* A start whose firmware boots dev first, for this run only (until the VM
 * stops): the VM's stored boot order is not changed. */
int vo_vm_start_once(VoDaemon *d, VoVm *vm, VoBootDev dev, json_t **ret_task,
                     char **ret_error);
int vo_vm_stop(VoDaemon *d, VoVm *vm, bool force, int timeout_s, json_t **ret_task,
               char **ret_error);
int vo_vm_reboot(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error);
int vo_vm_pause(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error);
int vo_vm_resume(VoDaemon *d, VoVm *vm, json_t **ret_task, char **ret_error);
/* vo_vm_resume of a VM still paused for paused_reason (a static string,
 * VO_VM_REASON_*) when its task runs; else the task fails, VM untouched. */
int vo_vm_resume_if(VoDaemon *d, VoVm *vm, const char *paused_reason, json_t **ret_task,
                    char **ret_error);
int vo_vm_delete(VoDaemon *d, VoVm *vm, bool force, bool keep_disks, json_t **ret_task,
                 char **ret_error);

/* Disks (vm-disks.c). While the VM is stopped: add an existing volume or a
 * new one, remove one (its volume is kept), list them. */
json_t *vo_vm_disks_json(VoVm *vm);
typedef struct {
    const char *volume;  /* "pool/name" of an existing volume, or NULL: */
    const char *pool;    /* a new volume in pool (default "default") */
    uint64_t size_bytes; /* of this size */
    const char *format;  /* qcow2 (default) or raw */
} VoVmDiskAdd;
int vo_vm_disk_add(VoDaemon *d, VoVm *vm, const VoVmDiskAdd *add, json_t **ret_task,
                   char **ret_error);
int vo_vm_disk_remove(VoDaemon *d, VoVm *vm, size_t index, json_t **ret_task, char **ret_error);
/* Turns a stopped VM's boot disk (flattened) plus its kernel into image NAME. */
int vo_vm_template(VoDaemon *d, VoVm *vm, const char *image, json_t **ret_task, char **ret_error);
/* A new VM NAME, a copy of the stopped VM vm (vm-clone.c): full must be
 * true (linked clones are refused); pool (NULL: each disk's own) takes its
 * volumes. */
int vo_vm_clone(VoDaemon *d, VoVm *vm, const char *name, bool full, const char *pool,
                json_t **ret_task, char **ret_error);

/* The MAC of a new VM's NIC (the VM not registered yet: earlier[0..n) are
 * its NICs so far): wanted (lower-cased) when it is a valid unicast MAC that
 * no NIC on this host, on another host of the cluster or earlier has, and
 * NULL; else a new 52:54:00 MAC, and why wanted was not kept ("" when it
 * is NULL; else words such as "is in use on this host"). */
/* The new MAC is claimed in *claims (made when NULL) for VM vm_name
 * (daemon/mac-claims.h) when claims is not NULL; a wanted one is not
 * (the caller claimed it). A claim the store fails leaves ret "" (no MAC:
 * the caller fails, 503-like; never an unclaimed one). */
const char *vo_vms_new_nic_mac(VoDaemon *d, const char *wanted, const VoNicSpec *earlier,
                               size_t n, VoMacClaims **claims, const char *vm_name,
                               char ret[18]);
/* A MAC asked for (mac, the request's field naming it in messages) for
 * VM vm_name, whose NICs so far are earlier[0..n): checked (-EINVAL:
 * malformed, multicast, all zeros, twice in the VM) and claimed in
 * *claims (made when NULL): -EEXIST when another VM has it or is being
 * given it (the index, this host's VMs, the documents of hosts not in the
 * index), -EAGAIN when the store cannot say; *ret_error set. Claims it
 * made stay in *claims (the caller releases them). */
int vo_vms_claim_given_mac(VoDaemon *d, VoMacClaims **claims, const char *vm_name,
                           const char *field, const char *mac, const VoNicSpec *earlier,
                           size_t n, char **ret_error);
/* A new 52:54:00 MAC free on this host and among earlier[0..n), claimed
 * in the cluster in *claims (made when NULL) for VM vm_name: 0, -EEXIST
 * (16 draws all taken) or the store's -errno (logged). */
int vo_vms_claim_new_mac(VoDaemon *d, VoMacClaims **claims, const char *vm_name,
                         const VoNicSpec *earlier, size_t n, char ret[18]);

/* NICs (vm-nics.c), while the VM is stopped. */
json_t *vo_vm_nics_json(VoDaemon *d, VoVm *vm);
int vo_vm_nic_add(VoDaemon *d, VoVm *vm, const char *network, const char *mac,
                  json_t **ret_task, char **ret_error);
int vo_vm_nic_remove(VoDaemon *d, VoVm *vm, size_t index, json_t **ret_task, char **ret_error);
/* The CD-ROM (vm-cdrom.c): puts ISO volume ("pool/name"; NULL: eject) into
 * the VM's drive, stopped (a drive is added) or running (media change; a
 * running VM without a drive: -EBUSY). -ENOENT / -EINVAL for a volume that
 * is unknown / not an ISO. */
int vo_vm_cdrom_set(VoDaemon *d, VoVm *vm, const char *volume, json_t **ret_task,
                    char **ret_error);

/* Firmware (vm-firmware.c). 0 when spec's firmware can run here (UEFI: OVMF
 * installed), else -EINVAL naming the missing file. */
int vo_vm_firmware_check(VoDaemon *d, const VoVmSpec *spec, char **ret_error);
/* Makes a UEFI NVRAM volume for spec ("VM-nvram" in pool, NULL: its boot
 * disk's pool): a qcow2 copy of OVMF's vars template (Microsoft keys with
 * secure_boot); *ret_key: "pool/name". */
int vo_vm_nvram_create(VoDaemon *d, const VoVmSpec *spec, const char *pool, char **ret_key,
                       char **ret_error);
/* The same as a copy of copy_of (a qcow2 file: a backup's NVRAM), or of
 * OVMF's template when NULL. */
int vo_vm_nvram_create_from(VoDaemon *d, const VoVmSpec *spec, const char *pool,
                            const char *copy_of, char **ret_key, char **ret_error);
/* The same for vm (its create task), recorded as its spec's nvram. */
int vo_vm_nvram_make(VoVm *vm, const char *pool, char **ret_key, char **ret_error);

/* Offline edit; NULL/0 fields stay. autostart: -1 keep, 0/1 set. Raising
 * vcpus (memory_mib) beyond the maximum raises the maximum with it, unless
 * the same edit sets the maximum. */
typedef struct {
    const char *name;
    unsigned vcpus;
    uint64_t memory_mib;
    unsigned max_vcpus;
    uint64_t max_memory_mib;
    int autostart;
    /* High availability (docs/ha.md), also on a running VM: ha -1 keep, 0/1
     * set (on: every disk must be in a shared pool, else -EBUSY naming it);
     * ha_priority when ha_priority_set; ha_group NULL keep, "" none. */
    int ha;
    bool ha_priority_set;
    int ha_priority;
    const char *ha_group;
    /* Firmware, while stopped: NULL keep, "bios" | "uefi" (a switch to uefi
     * makes the NVRAM volume, one to bios deletes it); secure_boot when
     * secure_boot_set. */
    const char *firmware;
    bool secure_boot_set;
    bool secure_boot;
    /* The display, while stopped: NULL keep, "vga" | "virtio" | "none". */
    const char *display;
    /* The project it moves to (NULL keep; also while it runs): checked
     * against that project's quotas (daemon/projects.h). */
    const char *project;
    /* Its QEMU's cgroup, also on a running VM (applied at once): cpu_weight
     * when cpu_weight_set (0: the default), cpu_limit in cores when
     * cpu_limit_set (0: none). */
    bool cpu_weight_set, cpu_limit_set;
    unsigned cpu_weight;
    double cpu_limit;
    /* The firmware's boot order when boot_set (n_boot 0: the default), also
     * on a running VM: saved, it takes effect at the VM's next start. */
    bool boot_set;
    VoBootDev boot[_VO_BOOT_MAX];
    size_t n_boot;
    int64_t if_match; /* > 0: the VM's revision must be this, else -EPROTO */
} VoVmEdit;

/* vm-ha.c: 0 when every disk (and kernel/initrd volume, the UEFI NVRAM
 * and the CD-ROM's ISO) of s is in a shared pool; -EBUSY with *ret_error
 * naming the first that is not. */
int vo_vm_ha_check_disks(VoDaemon *d, const VoVmSpec *s, char **ret_error);
/* The CD-ROM part of it: 0 when iso is NULL or of a shared pool. */
int vo_vm_ha_check_cdrom(VoDaemon *d, const char *vm, const char *iso, char **ret_error);
/* Whether volume key "POOL/NAME" is in a shared pool (every host of the
 * cluster reaches the same file). */
bool vo_volume_is_shared(VoDaemon *d, const char *key);
int vo_vm_edit(VoDaemon *d, VoVm *vm, const VoVmEdit *edit, char **ret_error);

/* vCPUs and memory of a running VM (vm-resources.c): a task changes them
 * live (vcpus / memory_mib 0: unchanged), within the VM's maximums and what
 * it was started with, and saves the new values in its definition. Refused
 * at once (with *ret_error naming the limit) when out of reach. autostart
 * (0/1; -1: unchanged) given along is saved before the task is queued, while
 * the VM's job lock is held: all of the request is applied, or none.
 * if_match > 0: the VM's revision the request read (If-Match), compared under
 * the VM's lock at once and again by the task before it changes anything
 * (-VO_EIFMATCH, 412, when the VM moved on; nothing changes). */
int vo_vm_set_resources(VoDaemon *d, VoVm *vm, unsigned vcpus, uint64_t memory_mib,
                        int autostart, int64_t if_match, json_t **ret_task, char **ret_error);
/* Adds what a running VM has now (vcpus_plugged, memory_actual_mib) to its
 * document; nothing when it does not run or the driver is busy. */
void vo_vm_add_live_resources(VoVm *vm, json_t *doc);

/* The guest agent (vm-agent.c). What the agent of a running VM reports,
 * asked now with a short timeout: {"agent": true, "os", "hostname",
 * "interfaces", "ips"} or {"agent": false, "reason"}. */
json_t *vo_vm_guest_json(VoVm *vm);
/* Runs command (an array of strings: the program, then its arguments) in
 * the guest with input (may be NULL) on its stdin, waiting at most
 * timeout_s for it to end: *ret gets {"exit_code", "signal", "stdout",
 * "stderr", "truncated"}. -ENOTCONN when the agent does not answer (409),
 * -EINVAL when the command is wrong or cannot run, -ETIMEDOUT when it runs
 * on. */
int vo_vm_exec(VoVm *vm, json_t *command, const char *input, int timeout_s, json_t **ret,
               char **ret_error);
/* Sets a guest user's password (crypted: password is a crypt(3) hash). */
int vo_vm_set_password(VoVm *vm, const char *user, const char *password, bool crypted,
                       char **ret_error);

/* The display (vm-display.c) of a running or paused VM: -EBUSY (409) with
 * *ret_error when it has none or is not running. A PNG of its screen
 * (malloc'd); key presses, each combination of combos (arrays of QMP
 * KeyValues: qemu/qemu-keys.h) in order; its VNC server's Unix socket. */
int vo_vm_screenshot(VoVm *vm, char **ret_png, size_t *ret_len, char **ret_error);
int vo_vm_send_keys(VoVm *vm, json_t *combos, char **ret_error);
int vo_vm_vnc_socket(VoVm *vm, bool password, char **ret_path, char **ret_error);
/* A one-time VNC password (VO_VNC_PASSWORD_LEN characters, malloc'd) for
 * the VM's VNC server that asks for one: it admits viewers that connect
 * within ttl_seconds (those connected stay); a new one replaces it. */
#define VO_VNC_PASSWORD_LEN 8
int vo_vm_vnc_ticket(VoVm *vm, unsigned ttl_seconds, char **ret_password, char **ret_error);

/* Console: attach a client fd (taken) on the loop thread; on_closed gets
 * userdata when it ends. -ENOTCONN when the VM has no console now. */
typedef void (*VoVmConsoleClosed)(void *userdata);
void vo_vm_console_attach(VoDaemon *d, VoVm *vm, int fd, char *initial, size_t initial_len,
                          VoVmConsoleClosed on_closed, void *userdata);
bool vo_vm_is_active(VoVm *vm);
char *vo_vm_console_log_path(VoDaemon *d, VoVm *vm);

/* Daemon shutdown: drop every VM object (VMs keep running). Returns how
 * many VM saves were given up on still running: then the VMs are kept, and
 * the store must stay open (their threads still write through it). */
int vo_vms_release_all(VoDaemon *d);

/* After this host fenced itself and holds a new lease (daemon/fence.h):
 * VMs whose documents are no longer in its namespace (moved away by HA
 * recovery) are forgotten (a QEMU of theirs still there is killed: the VM
 * is another host's now) and their run dirs removed; the rest stay, their
 * revision read again (the manager may have noted an ha_state on them). 0,
 * or the store's error (nothing decided for the VMs not yet read: call
 * again). */
int vo_vms_reconcile_fenced(VoDaemon *d);
/* Once more after the fenced state ended (hosts.c), the record saying so
 * out: a VM whose document left this host's namespace since the reconcile
 * (a manager's move that committed in between) is forgotten, unless it has
 * a QEMU here, or is being deleted or migrated (their own paths forget
 * it). 0, or the store's error. */
int vo_vms_forget_moved_off_fenced(VoDaemon *d);
/* Then, the fenced state over: starts again the VMs of `killed` (ids the
 * fence killed) that are still this host's, HA and crashed. */
void vo_vms_restart_fenced(VoDaemon *d, char **killed);
/* Starts again here the HA VM vm, crashed and this host's, through the HA
 * start's path: counted against the restart limit (past it: left crashed,
 * again_why), a failed start tried again after the backoff. what: how it
 * crashed, for the log ("was killed by this host's fence"). One at a time:
 * a VM no longer crashed, or whose HA start is under way (another caller's
 * restart of the same crash), is left as it is (logged). */
void vo_vm_ha_restart_here(VoDaemon *d, VoVm *vm, const char *what, const char *again_why);
