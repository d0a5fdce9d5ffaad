/* vm-move-settle.h: what a migration does when the outcome of its
 * ownership transaction (vm-move.h) is unknown (VO_STORE_EUNKNOWN: etcd may
 * or may not have applied it), and the linearizable reads both sides use
 * to learn who owns a VM before a QEMU of it runs (docs/internals.md,
 * "Live migration": the safety rule). */
#pragma once

#include <stdint.h>

#include "state/store.h"

/* A read of key that a quorum vouches for: 0 with *ret_rev (may be NULL)
 * when the key exists, -ENOENT when it does not, -EAGAIN when the store
 * could not say for sure (no answer, no quorum, or a read served stale
 * from one member). */
int vo_store_get_linear(VoStore *s, const char *key, int64_t *ret_rev);
/* vo_store_get_linear, with the key's value (*ret_value, malloc'd, may be
 * NULL) when it exists. */
int vo_store_get_linear_value(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev);

/* Settles a move of VM vm_id from h/<src>/ to h/<dst>/ whose transaction
 * may or may not have been applied: 1 with *ret_moved_rev when the VM's
 * document is under h/<dst>/ (the move happened); 0 with *ret_src_rev when
 * it is proven not to have happened and never will: the source's document
 * was rewritten, unchanged, at a new revision (compared at vm_rev), which
 * makes the move's compare fail for good. Retries while the store cannot
 * tell, up to give_up_ms; then -ETIMEDOUT (still unknown: the caller must
 * not run the guest at the source). -EIO with *ret_error when the
 * documents are in neither state (changed by someone else). */
int vo_vm_move_settle(VoStore *raw, const char *vm_id, const char *src_host,
                      const char *dst_host, int64_t vm_rev, int give_up_ms,
                      int64_t *ret_moved_rev, int64_t *ret_src_rev, char **ret_error);
