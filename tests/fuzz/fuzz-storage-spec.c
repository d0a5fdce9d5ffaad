/* fuzz-storage-spec.c: libFuzzer target for the pool and volume create
 * request parsers (conf/storage-spec.c), i.e. the bodies of POST /v1/pools
 * and POST /v1/pools/NAME/volumes. The input is JSON text, tried as both.
 * What parses must hold to the rules the daemon relies on; what does not
 * must say why and leave nothing behind. */
#include <string.h>

#include "conf/names.h"
#include "conf/storage-spec.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!doc)
        return 0;
    char *error = NULL;

    VoPoolSpec pool;
    int r = vo_pool_spec_from_json(doc, &pool, &error);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error && !pool.name && !pool.type && !pool.path);
    } else {
        FUZZ_CHECK(!error && vo_name_valid(pool.name) && pool.path[0] == '/');
        FUZZ_CHECK(!strcmp(pool.type, "dir") || !strcmp(pool.type, "backup"));
    }
    free(error);
    error = NULL;
    vo_pool_spec_clear(&pool);

    VoVolumeSpec vol;
    r = vo_volume_spec_from_json(doc, &vol, &error);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error && !vol.name && !vol.format && !vol.import_path);
    } else {
        FUZZ_CHECK(!error && vo_name_valid(vol.name));
        FUZZ_CHECK(!strcmp(vol.format, "qcow2") || !strcmp(vol.format, "raw"));
        FUZZ_CHECK(vol.import_path ? vol.size_bytes == 0 && vol.import_path[0] == '/'
                                   : vol.size_bytes > 0 && vol.size_bytes <= VO_VOLUME_MAX_BYTES);
    }
    free(error);
    vo_volume_spec_clear(&vol);
    json_decref(doc);
    return 0;
}
