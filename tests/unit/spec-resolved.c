/* spec-resolved.c: see spec-resolved.h. */
#include "spec-resolved.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "util/util.h"

static int volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    *ret_path = vo_asprintf("/v/%s", key);
    return 0;
}

static int image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                      char **ret_error)
{
    *ret_path = vo_asprintf("/i/%s/%s", image, initrd ? "initrd" : "vmlinux");
    return 0;
}

VoVmSpec *test_spec_resolved(const char *json)
{
    json_t *doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    VoVmSpec *spec = NULL, *resolved = NULL;
    char *error = NULL;
    if (vo_vm_spec_from_json(doc, &spec, &error) < 0)
        fail_msg("spec: %s", error);
    json_decref(doc);
    const VoSpecResolver res = { volume_path, image_file, NULL };
    if (vo_vm_spec_resolve(spec, &res, &resolved, &error) < 0)
        fail_msg("resolve: %s", error);
    vo_vm_spec_free(spec);
    return resolved;
}
