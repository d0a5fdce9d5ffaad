/* store-fault.c: the store's test-only fault point (store.h,
 * vo_store_test_fault): a test makes one document's next writes fail, so
 * that what a failed save must not leave behind can be tested on a store
 * that otherwise works, or be applied with its answer lost, or held (a
 * store that answers slowly) while the test looks at the rest. Off unless
 * $VIREO_TEST_STORE_FAULTS names a directory (util/fault-file.h). */
#include "state/store.h"

#include <stdlib.h>
#include <string.h>

#include "util/fault-file.h"
#include "util/util.h"

int vo_store_test_fault(const VoStoreOp *ops, size_t n_ops, int *ret_lost)
{
    const char *dir = getenv("VIREO_TEST_STORE_FAULTS");
    if (!dir || !*dir)
        return 0;
    for (size_t i = 0; i < n_ops; i++) {
        _cleanup_free_ char *name = vo_asprintf("%s@%s", ops[i].kind == VO_STORE_PUT ? "put"
                                                                                   : "delete",
                                                ops[i].key);
        for (char *c = name; *c; c++)
            if (*c == '/')
                *c = '+';
        vo_fault_file_hold(dir, name); /* a slow store: held while put@KEY.hold is there */
        int r = vo_fault_file_take(dir, name);
        if (r < 0) {
            log_warn("test fault: store write %s failed (%s)", name, strerror(-r));
            return r;
        }
        _cleanup_free_ char *lost = vo_asprintf("lost@%s", name);
        r = vo_fault_file_take(dir, lost);
        if (r < 0 && *ret_lost == 0) {
            log_warn("test fault: store write %s applied, its answer lost (%s)", name,
                     strerror(-r));
            *ret_lost = r;
        }
    }
    return 0;
}
