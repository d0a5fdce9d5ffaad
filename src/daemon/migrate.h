/* migrate.h: live migration of a running VM to another host of the
 * cluster (docs/cluster.md, "Live migration"; docs/internals.md, "Live
 * migration"): the source's task (migrate.c) and the destination's peer
 * side (migrate-incoming.c), which only other hosts call. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/vms.h"

/* The defaults a user would want (the issue's): QEMU's downtime limit,
 * bandwidth unlimited on the cluster link. */
#define VO_MIGRATE_DEFAULT_DOWNTIME_MS 300
/* "Unlimited": QEMU needs a number; 100 GB/s is beyond any link. */
#define VO_MIGRATE_UNLIMITED_BANDWIDTH (100ull << 30)

typedef struct {
    const char *to;        /* host name or id; NULL: the manager picks */
    uint64_t bandwidth;    /* bytes/s; 0: unlimited */
    unsigned max_downtime_ms; /* 0: the default */
    bool verify_memory;    /* compare guest RAM on both sides before the switch */
} VoMigrateArgs;

/* Parses the body of POST /v1/vms/{vm}/migrate ({"to", "max_downtime_ms",
 * "bandwidth" (bytes/s or "SIZE/s"), "verify_memory"}) into *ret (strings
 * point into body). -EINVAL with *ret_error naming the field. Pure. */
int vo_migrate_args_parse(json_t *body, VoMigrateArgs *ret, char **ret_error);

/* Checks at once (target host known, online, not this host; the VM
 * running, not migrating, every disk on a shared pool) and queues the
 * migration task. 4xx errnos with *ret_error. */
int vo_vm_migrate(VoDaemon *d, VoVm *vm, const VoMigrateArgs *args, json_t **ret_task,
                  char **ret_error);

/* Destination (migrate-incoming.c), from the source host's peer routes. */
int vo_migration_prepare(VoDaemon *d, json_t *body, json_t **ret, char **ret_error);
int vo_migration_digest(VoDaemon *d, const char *id, json_t **ret, char **ret_error);
int vo_migration_commit(VoDaemon *d, const char *id, json_t *body, char **ret_error);
int vo_migration_abort(VoDaemon *d, const char *id, char **ret_error);
/* An incoming migration neither committed nor aborted this long after its
 * last sign of life (prepare, a running stream, a call) is aborted. */
#define VO_MIGRATION_INCOMING_IDLE_MS 60000
