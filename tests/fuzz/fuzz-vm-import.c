/* fuzz-vm-import.c: libFuzzer target for the VM import parsers of untrusted
 * descriptors (conf/ovf.c, conf/libvirt-xml.c, conf/import-plan.c): the
 * input is tried as an OVF descriptor, as a libvirt domain XML and as an
 * OVA manifest. What parses must hold to what the daemon relies on (a
 * name, vCPUs and memory in range, disks within bounds, OVF files plain
 * names, libvirt disks absolute paths); what does not must say why and
 * return nothing. */
#include <string.h>

#include "conf/vm-import.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

static void check_plan(int r, VoImportPlan *p, char *error, bool ovf)
{
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && !p && error);
        free(error);
        return;
    }
    FUZZ_CHECK(p && !error && p->name);
    FUZZ_CHECK(p->vcpus >= 1 && p->vcpus <= VO_IMPORT_MAX_VCPUS);
    FUZZ_CHECK(p->memory_mib >= 1 && p->memory_mib <= VO_IMPORT_MAX_MEMORY_MIB);
    FUZZ_CHECK(p->n_disks <= VO_IMPORT_MAX_DISKS && p->n_nics <= VO_IMPORT_MAX_NICS);
    FUZZ_CHECK(!ovf || p->n_disks >= 1);
    for (size_t i = 0; i < p->n_disks; i++) {
        const char *f = p->disks[i].file;
        FUZZ_CHECK(f && p->disks[i].capacity_bytes <= VO_IMPORT_MAX_DISK_BYTES);
        FUZZ_CHECK(ovf ? vo_import_file_name_valid(f) : f[0] == '/' && !strstr(f, "/../"));
    }
    vo_import_plan_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    VoImportPlan *p = NULL;
    char *error = NULL;
    int r = vo_ovf_parse(text, size, &p, &error);
    check_plan(r, p, error, true);
    p = NULL;
    error = NULL;
    r = vo_libvirt_xml_parse(text, size, &p, &error);
    check_plan(r, p, error, false);

    char **names = NULL, **algos = NULL, **digests = NULL;
    error = NULL;
    r = vo_ova_manifest_parse(text, size, &names, &algos, &digests, &error);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error && !names && !algos && !digests);
    } else {
        FUZZ_CHECK(!error && vo_strv_len(names) == vo_strv_len(algos) &&
                   vo_strv_len(names) == vo_strv_len(digests));
        for (size_t i = 0; names && names[i]; i++)
            FUZZ_CHECK(vo_import_file_name_valid(names[i]) &&
                       strlen(digests[i]) == (strcmp(algos[i], "SHA1") ? 64u : 40u));
    }
    free(error);
    vo_strv_free(names);
    vo_strv_free(algos);
    vo_strv_free(digests);
    return 0;
}
