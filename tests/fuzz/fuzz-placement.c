/* fuzz-placement.c: libFuzzer target for VM placement (cluster/placement.c
 * and placement-json.c). The input is JSON {"snapshot": {...}, "request":
 * {...}}: both parsers must either accept (and print back to what parses to
 * the same) or refuse with a message and nothing left; an accepted pair is
 * placed, and the result must hold: the chosen host passes every hard rule,
 * a refusal has a reason for every host (or the pinned one), and the choice
 * does not depend on the order of the hosts. */
#include <string.h>

#include "cluster/placement.h"
#include "fuzz.h"

/* The chosen host meets the rules a reason would name. */
static void check_fits(const VoPlaceHost *h, const VoPlaceRequest *req)
{
    FUZZ_CHECK(h->state == VO_HOST_ONLINE);
    FUZZ_CHECK(req->accel != VO_ACCEL_KVM || h->accel == VO_ACCEL_KVM);
    double mem = (double)h->memory_mib * h->mem_ratio;
    FUZZ_CHECK((double)h->committed_memory_mib + (double)req->memory_mib <= mem);
    double cpu = (double)h->cpus * h->cpu_ratio;
    FUZZ_CHECK((double)h->committed_vcpus + (double)req->vcpus <= cpu);
    size_t n_pools = vo_strv_len(h->pools);
    for (size_t i = 0; req->pools && req->pools[i]; i++) {
        bool found = false;
        for (size_t j = 0; j < n_pools && !found; j++)
            found = !strcmp(h->pools[j], req->pools[i]);
        FUZZ_CHECK(found);
    }
}

static void check_round_trip(const VoPlaceSnapshot *snap, const VoPlaceRequest *req)
{
    char *error = NULL;
    json_t *a = vo_place_snapshot_to_json(snap);
    FUZZ_CHECK(a);
    VoPlaceSnapshot s2;
    FUZZ_CHECK(vo_place_snapshot_from_json(a, &s2, &error) == 0 && !error);
    json_t *b = vo_place_snapshot_to_json(&s2);
    fuzz_check_json_equal(a, b, "snapshot");
    json_decref(a);
    json_decref(b);
    vo_place_snapshot_clear(&s2);

    a = vo_place_request_to_json(req);
    FUZZ_CHECK(a);
    VoPlaceRequest r2;
    FUZZ_CHECK(vo_place_request_from_json(a, &r2, &error) == 0 && !error);
    b = vo_place_request_to_json(&r2);
    fuzz_check_json_equal(a, b, "request");
    json_decref(a);
    json_decref(b);
    vo_place_request_clear(&r2);
}

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
    VoPlaceSnapshot snap;
    int r = vo_place_snapshot_from_json(json_object_get(doc, "snapshot"), &snap, &error);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error && !snap.hosts && !snap.n_hosts);
        free(error);
        error = NULL;
    }
    VoPlaceRequest req;
    int rr = vo_place_request_from_json(json_object_get(doc, "request"), &req, &error);
    if (rr < 0) {
        FUZZ_CHECK(rr == -EINVAL && error && !req.group && !req.cpu_model && !req.pools && !req.host);
        free(error);
    }
    json_decref(doc);
    if (r < 0 || rr < 0) {
        vo_place_snapshot_clear(&snap);
        vo_place_request_clear(&req);
        return 0;
    }
    check_round_trip(&snap, &req);

    VoPlaceResult res;
    r = vo_place(&snap, &req, &res);
    if (r == -ENOENT) {
        FUZZ_CHECK(req.host && res.host == -1 && !res.verdicts);
    } else {
        FUZZ_CHECK(r == 0 && res.n_verdicts == snap.n_hosts);
        /* Every host has a verdict (the pinned one only, when pinned), and
         * words exactly for those left out. */
        for (size_t i = 0; i < snap.n_hosts; i++) {
            VoPlaceWhy why = res.verdicts[i].why;
            FUZZ_CHECK((why == VO_PLACE_UNCHECKED) == (res.pinned >= 0 && (ssize_t)i != res.pinned));
            char *reason = vo_place_reason(&snap, &req, &res, i);
            FUZZ_CHECK((why > VO_PLACE_FITS) == (reason != NULL));
            FUZZ_CHECK(!reason || reason[0]);
            free(reason);
        }
        if (res.host >= 0) {
            FUZZ_CHECK((size_t)res.host < snap.n_hosts && res.verdicts[res.host].why == VO_PLACE_FITS);
            FUZZ_CHECK(res.pinned < 0 || res.pinned == res.host);
            check_fits(&snap.hosts[res.host], &req);
        } else {
            for (size_t i = 0; i < snap.n_hosts; i++)
                FUZZ_CHECK(res.verdicts[i].why != VO_PLACE_FITS);
            char *msg = vo_place_reasons_format(&snap, &req, &res);
            FUZZ_CHECK(msg && (!strncmp(msg, "no host fits: ", 14) || !strncmp(msg, "host ", 5)));
            free(msg);
        }
        /* The same hosts in reverse order: the same choice. */
        VoPlaceSnapshot rev = { .hosts = malloc((snap.n_hosts + 1) * sizeof(VoPlaceHost)),
                                .n_hosts = snap.n_hosts, .policy = snap.policy };
        FUZZ_CHECK(rev.hosts);
        for (size_t i = 0; i < snap.n_hosts; i++)
            rev.hosts[i] = snap.hosts[snap.n_hosts - 1 - i];
        VoPlaceResult res2;
        FUZZ_CHECK(vo_place(&rev, &req, &res2) == 0);
        FUZZ_CHECK(res2.host == (res.host < 0 ? -1 : (ssize_t)snap.n_hosts - 1 - res.host));
        vo_place_result_clear(&res2);
        free(rev.hosts);
    }
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&snap);
    vo_place_request_clear(&req);
    return 0;
}
