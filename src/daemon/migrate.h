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

#include "conf/migrate-args.h"

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
/* At vireod's shutdown, before the VM table goes: the incoming watcher
 * thread ends and is joined (incoming QEMUs stay, like every VM's). */
void vo_migration_shutdown(void);
/* An incoming migration neither committed nor aborted this long after its
 * last sign of life (prepare, a running stream, a call) is aborted. */
#define VO_MIGRATION_INCOMING_IDLE_MS 60000
