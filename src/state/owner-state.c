/* owner-state.c: what the store says of an owner document, for the
 * start-up sweep: only a definite "not found" counts (owner-state.h). */
#include "state/owner-state.h"

VoOwnerState vo_store_owner_state(VoStore *s, const char *key, int *ret_errno)
{
    int64_t noted = vo_store_stale_read(); /* the caller's, kept below */
    vo_store_stale_reset();
    int r = vo_store_get(s, key, NULL, NULL);
    bool stale = vo_store_stale_read() != 0;
    vo_store_stale_note(noted);
    VoOwnerState st = r == 0 ? VO_OWNER_EXISTS
                      : r == -ENOENT && !stale ? VO_OWNER_GONE
                      : VO_OWNER_UNKNOWN;
    if (st == VO_OWNER_UNKNOWN && ret_errno)
        *ret_errno = r == -ENOENT ? -EAGAIN : r;
    return st;
}

const char *vo_owner_state_name(VoOwnerState st)
{
    switch (st) {
    case VO_OWNER_EXISTS:
        return "it exists";
    case VO_OWNER_GONE:
        return "it is gone";
    default:
        return "the store cannot say";
    }
}
