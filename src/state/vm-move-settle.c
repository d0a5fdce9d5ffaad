/* vm-move-settle.c: settling an ownership transaction whose outcome is
 * unknown, by linearizable reads and a fencing write (vm-move-settle.h). */
#include "state/vm-move-settle.h"

#include <poll.h>
#include <string.h>

#include "util/util.h"

#define SETTLE_RETRY_MS 500

int vo_store_get_linear_value(VoStore *s, const char *key, char **ret_value, int64_t *ret_rev)
{
    _cleanup_free_ char *value = NULL;
    int64_t rev = 0;
    vo_store_stale_reset();
    int r = vo_store_get(s, key, &value, &rev);
    bool stale = vo_store_stale_read() != 0;
    vo_store_stale_reset();
    if (stale || (r < 0 && r != -ENOENT))
        return -EAGAIN;
    if (r >= 0 && ret_rev)
        *ret_rev = rev;
    if (r >= 0 && ret_value)
        *ret_value = TAKE_PTR(value);
    return r;
}

int vo_store_get_linear(VoStore *s, const char *key, int64_t *ret_rev)
{
    return vo_store_get_linear_value(s, key, NULL, ret_rev);
}

int vo_vm_move_settle(VoStore *raw, const char *vm_id, const char *src_host,
                      const char *dst_host, int64_t vm_rev, int give_up_ms,
                      int64_t *ret_moved_rev, int64_t *ret_src_rev, char **ret_error)
{
    _cleanup_free_ char *dst_key = vo_asprintf("h/%s/vms/%s", dst_host, vm_id);
    _cleanup_free_ char *src_key = vo_asprintf("h/%s/vms/%s", src_host, vm_id);
    int64_t give_up = vo_now_ms() + give_up_ms;
    for (;;) {
        int64_t rev = 0;
        int r = vo_store_get_linear(raw, dst_key, &rev);
        if (r >= 0) {
            *ret_moved_rev = rev;
            return 1;
        }
        if (r == -ENOENT) {
            /* Not moved as of now: a rewrite of the source's document at
             * vm_rev fences the move off (its compare can never hold). */
            _cleanup_free_ char *value = NULL;
            int64_t src_rev = 0;
            vo_store_stale_reset();
            r = vo_store_get(raw, src_key, &value, &src_rev);
            if (vo_store_stale_read())
                r = -EAGAIN;
            vo_store_stale_reset();
            if (r >= 0 && src_rev == vm_rev) {
                int64_t new_rev = 0;
                r = vo_store_put(raw, src_key, value, vm_rev, &new_rev);
                if (r >= 0) {
                    *ret_src_rev = new_rev;
                    return 0;
                }
                /* -ESTALE / -ENOENT: the move (or something) won: read again. */
            } else if (r >= 0 || r == -ENOENT) {
                /* Changed meanwhile: the move applied just now? Read dst once
                 * more before calling it foreign. */
                int64_t again = 0;
                int q = vo_store_get_linear(raw, dst_key, &again);
                if (q >= 0) {
                    *ret_moved_rev = again;
                    return 1;
                }
                if (q == -ENOENT)
                    return vo_error_set(ret_error, -EIO, "the VM's document %s is %s, not at "
                                        "revision %lld, and %s does not exist: changed by "
                                        "someone else", src_key, r >= 0 ? "at another revision"
                                        : "gone", (long long)vm_rev, dst_key);
            }
        }
        if (vo_now_ms() > give_up)
            return vo_error_set(ret_error, -ETIMEDOUT, "the store did not answer for %d s: "
                                "whether the VM's documents moved is unknown",
                                give_up_ms / 1000);
        (void)poll(NULL, 0, SETTLE_RETRY_MS);
    }
}
