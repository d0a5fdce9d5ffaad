/* move.h: the cold move of a stopped VM to another host of the cluster
 * (docs/cluster.md, "Moving a stopped VM"; docs/internals.md, "Cold move"):
 * the source's task and peer file route (move.c) and the target's task
 * (move-incoming.c), which only other hosts start. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/vms.h"

/* Checks at once (the VM stopped, not moving; the target known, online,
 * not this host, compatible; pool a name) and queues the move task. to
 * NULL: the manager picks; pool NULL: the target's default pool. 4xx
 * errnos with *ret_error (-EBUSY for a running VM). */
int vo_vm_move(VoDaemon *d, VoVm *vm, const char *to, const char *pool, json_t **ret_task,
               char **ret_error);

/* Source, for the target's pull (GET /v1/moves/outgoing/{vm}/volumes/
 * {pool}.{volume}): the file of that volume, open read-only, when VM
 * vm_id is here, stopped, being moved and names the volume. -ENOENT,
 * -EBUSY with *ret_error. */
int vo_move_outgoing_file(VoDaemon *d, const char *vm_id, const char *pool, const char *volume,
                          int *ret_fd, uint64_t *ret_size, char **ret_error);

/* Target (POST /v1/moves/incoming, from the source host): checks the
 * request ({"vm","vm_name","source_host","vm_rev","pool","volumes":[{"from",
 * "name","format","image"?,"size_bytes","sha256"}]}) and queues the task
 * that takes the VM: *ret_task is the task. */
int vo_move_incoming(VoDaemon *d, json_t *body, json_t **ret_task, char **ret_error);

/* Test hook (tests/e2e/test_vm_move.py): on the target, a move fails after
 * it copied this many volumes (before the transaction). */
#define VO_MOVE_FAIL_ENV "VIREO_TEST_MOVE_FAIL_AFTER_VOLUMES"
/* Test hook: each volume's copy waits this many ms first (so a test can
 * cancel or kill midway). */
#define VO_MOVE_SLOW_ENV "VIREO_TEST_MOVE_SLOW_MS"
