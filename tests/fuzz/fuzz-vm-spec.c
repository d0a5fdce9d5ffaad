/* fuzz-vm-spec.c: libFuzzer target for the VM spec parser (conf/vm-spec.c),
 * which reads stored VM documents and the specs inside backup records. The
 * input is JSON text. A spec that parses must validate without crashing
 * and print to JSON as its copy does; a valid one must parse back to the
 * same JSON (round trip). */
#include "conf/vm-spec.h"
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
    VoVmSpec *spec = NULL;
    char *error = NULL;
    int r = vo_vm_spec_from_json(doc, &spec, &error);
    json_decref(doc);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error && !spec);
        free(error);
        return 0;
    }
    FUZZ_CHECK(spec && !error);

    static const VoHostLimits limits = { .max_vcpus = 64, .max_memory_mib = 1024 * 1024 };
    r = vo_vm_spec_validate(spec, &limits, &error);
    FUZZ_CHECK(r == 0 ? !error : error != NULL);
    free(error);
    error = NULL;
    bool valid = r == 0;
    FUZZ_CHECK(vo_vm_spec_free_disk_slot(spec) <= VO_VM_MAX_SLOTS + spec->n_disks);
    FUZZ_CHECK(vo_vm_spec_free_nic_slot(spec) <= VO_VM_MAX_SLOTS + spec->n_nics);

    /* Every spec prints; a valid one parses back to the same JSON (an
     * invalid one may not: from_json leaves required keys to validate). */
    json_t *out = vo_vm_spec_to_json(spec);
    FUZZ_CHECK(out);
    VoVmSpec *again = NULL;
    r = vo_vm_spec_from_json(out, &again, &error);
    if (valid) {
        if (r < 0)
            fprintf(stderr, "printed spec does not parse: %s\n", error);
        FUZZ_CHECK(r == 0);
    }
    free(error);
    error = NULL;
    json_t *out2 = again ? vo_vm_spec_to_json(again) : NULL;
    if (valid)
        fuzz_check_json_equal(out, out2, "spec printed after a round trip");

    VoVmSpec *copy = vo_vm_spec_copy(spec);
    json_t *out3 = vo_vm_spec_to_json(copy);
    fuzz_check_json_equal(out, out3, "copy of the spec");

    json_decref(out);
    json_decref(out2);
    json_decref(out3);
    vo_vm_spec_free(again);
    vo_vm_spec_free(copy);
    vo_vm_spec_free(spec);
    return 0;
}
