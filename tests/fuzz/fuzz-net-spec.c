/* fuzz-net-spec.c: libFuzzer target for the network spec parser
 * (network/net-spec.c), which reads POST /v1/networks bodies and stored
 * network documents. The input is JSON text. A spec that parses must
 * validate and check for conflicts without crashing and print to JSON as its
 * copy does; a valid one must parse back to the same JSON (round trip). */
#include <string.h>

#include "fuzz.h"
#include "network/net-spec.h"

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
    VoNetSpec *spec = NULL;
    char *error = NULL;
    int r = vo_net_spec_from_json(doc, &spec, &error);
    json_decref(doc);
    if (r < 0) {
        FUZZ_CHECK(error && !spec);
        free(error);
        return 0;
    }
    FUZZ_CHECK(spec && !error);

    r = vo_net_spec_validate(spec, &error);
    FUZZ_CHECK(r == 0 ? !error : error != NULL);
    free(error);
    error = NULL;
    bool valid = r == 0;

    /* Every spec prints; a valid one parses back to the same JSON (an
     * invalid one may not: from_json leaves required keys to validate). */
    json_t *out = vo_net_spec_to_json(spec);
    FUZZ_CHECK(out);
    VoNetSpec *again = NULL;
    r = vo_net_spec_from_json(out, &again, &error);
    if (valid) {
        if (r < 0)
            fprintf(stderr, "printed spec does not parse: %s\n", error);
        FUZZ_CHECK(r == 0);
    }
    free(error);
    error = NULL;
    json_t *out2 = again ? vo_net_spec_to_json(again) : NULL;
    if (valid)
        fuzz_check_json_equal(out, out2, "spec printed after a round trip");

    VoNetSpec *copy = vo_net_spec_copy(spec);
    json_t *out3 = vo_net_spec_to_json(copy);
    fuzz_check_json_equal(out, out3, "copy of the spec");

    if (valid) {
        /* A valid network conflicts with an equal one under another pointer. */
        const VoNetSpec *others[] = { copy };
        r = vo_net_spec_check_conflicts(spec, others, 1, &error);
        FUZZ_CHECK(r == -EEXIST && error);
        free(error);
        error = NULL;
        char ifname[VO_IFNAME_SIZE];
        if (spec->type == VO_NET_VLAN && spec->uplink) {
            if (vo_net_vlan_ifname(spec->uplink, spec->vlan_id, ifname, &error) == 0)
                FUZZ_CHECK(vo_ifname_valid(ifname));
            free(error);
            error = NULL;
        }
        vo_net_vxlan_ifname(spec->vni, ifname);
        FUZZ_CHECK(vo_ifname_valid(ifname));
    }
    char bridge[VO_IFNAME_SIZE];
    vo_net_bridge_name(spec->name, bridge);
    FUZZ_CHECK(strlen(bridge) <= VO_IFNAME_MAX);

    json_decref(out);
    json_decref(out2);
    json_decref(out3);
    vo_net_spec_free(again);
    vo_net_spec_free(copy);
    vo_net_spec_free(spec);
    return 0;
}
