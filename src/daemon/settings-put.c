/* settings-put.c: read, merge, write over the revision read, retry
 * (settings-put.h). */
#include "daemon/settings-put.h"

#include <string.h>

#include "util/test-hold.h"
#include "util/util.h"

int vo_settings_put(VoStore *store, const char *key, const char *hold, const char *what,
                    VoSettingsMerge merge, void *fields, char **ret_error)
{
    for (int attempt = 1;; attempt++) {
        int64_t rev = VO_REV_NEW;
        json_t *doc = NULL;
        int r = merge(fields, &rev, &doc);
        if (r < 0)
            return vo_error_set(ret_error, r, "cannot read %s: %s", what, strerror(-r));
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        vo_test_hold(hold); /* tests change the document here */
        r = vo_store_put(store, key, text, rev, NULL);
        if (r >= 0)
            return 0;
        /* Changed (or made, or removed) since the read. */
        bool changed = r == -ESTALE || r == -EEXIST || r == -ENOENT;
        if (!changed)
            return vo_error_set(ret_error, r, "cannot save %s: %s", what, strerror(-r));
        if (attempt == VO_SETTINGS_PUT_TRIES)
            return vo_error_set(ret_error, -ESTALE, "%s changed under this set %d times "
                                "(others are setting them at once): try again", what,
                                attempt);
    }
}
