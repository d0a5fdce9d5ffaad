/* test-placement.c: VM placement (cluster/placement.c): every filter reason,
 * spread against pack, groups, pinning, ties, VMs placed one after another,
 * the "no host fits" message, and the strict JSON form of the inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/place-network-projects.h"
#include "cluster/placement.h"
#include "util/util.h"

/* A sorted strv from a NULL-terminated list of literals. */
static char **strv(const char *first, ...)
{
    char **v = vo_malloc0(sizeof(char *));
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        vo_strv_push(&v, vo_strdup(s));
    va_end(ap);
    vo_place_strv_sort(v);
    return v;
}

/* An online kvm host with 16 GiB, 4 CPUs, ratios 1.0 / 4.0, pool "default". */
static VoPlaceHost host(const char *name)
{
    return (VoPlaceHost){ .id = vo_asprintf("id-%s", name), .name = vo_strdup(name),
                          .state = VO_HOST_ONLINE, .accel = VO_ACCEL_KVM,
                          .cpu_model = vo_strdup("AMD EPYC 7B13"),
                          .cpu_flags = strv("sse4_2", "avx", "avx2", "aes", NULL),
                          .pools = strv("default", NULL), .memory_mib = 16384, .cpus = 4,
                          .mem_ratio = 1.0, .cpu_ratio = 4.0 };
}

/* A snapshot of n hosts named by the letters of names ("abc"). */
static VoPlaceSnapshot snapshot(const char *names)
{
    size_t n = strlen(names);
    VoPlaceSnapshot s = { .hosts = vo_malloc0(n * sizeof(VoPlaceHost)), .n_hosts = n };
    for (size_t i = 0; i < n; i++) {
        char name[2] = { names[i], 0 };
        s.hosts[i] = host(name);
    }
    return s;
}

static VoPlaceRequest request(unsigned vcpus, uint64_t memory_mib)
{
    return (VoPlaceRequest){ .vcpus = vcpus, .memory_mib = memory_mib };
}

/* The chosen host's name, or NULL; res is cleared unless ret_res. */
static const char *place(const VoPlaceSnapshot *s, const VoPlaceRequest *req, VoPlaceResult *ret_res)
{
    VoPlaceResult res;
    assert_int_equal(vo_place(s, req, &res), 0);
    assert_int_equal(res.n_verdicts, s->n_hosts);
    const char *chosen = res.host >= 0 ? s->hosts[res.host].name : NULL;
    if (res.host >= 0)
        assert_int_equal(res.verdicts[res.host].why, VO_PLACE_FITS);
    if (ret_res)
        *ret_res = res;
    else
        vo_place_result_clear(&res);
    return chosen;
}

static void add_member(VoPlaceRequest *req, const char *host_id)
{
    for (size_t i = 0; i < req->n_group_hosts; i++)
        if (!strcmp(req->group_hosts[i].host_id, host_id)) {
            req->group_hosts[i].count++;
            return;
        }
    req->group_hosts = realloc(req->group_hosts, (req->n_group_hosts + 1) * sizeof(VoPlaceGroupHost));
    assert_non_null(req->group_hosts);
    req->group_hosts[req->n_group_hosts++] = (VoPlaceGroupHost){ .host_id = vo_strdup(host_id),
                                                                 .count = 1 };
}

/* Host i's reason in words is want (NULL: none). */
static void assert_reason(const VoPlaceSnapshot *s, const VoPlaceRequest *req, const VoPlaceResult *res,
                          size_t i, const char *want)
{
    char *got = vo_place_reason(s, req, res, i);
    if (want && (!got || strcmp(got, want)))
        fail_msg("host %zu: '%s', wanted '%s'", i, got ? got : "(none)", want);
    if (!want && got)
        fail_msg("host %zu: '%s', wanted no reason", i, got);
    free(got);
}

/* Places req, then commits it to the chosen host (and its group); the name. */
static const char *place_commit(VoPlaceSnapshot *s, VoPlaceRequest *req)
{
    VoPlaceResult res;
    assert_int_equal(vo_place(s, req, &res), 0);
    assert_true(res.host >= 0);
    VoPlaceHost *h = &s->hosts[res.host];
    h->committed_memory_mib += req->memory_mib;
    h->committed_vcpus += req->vcpus;
    if (req->group)
        add_member(req, h->id);
    vo_place_result_clear(&res);
    return h->name;
}

static void test_filter_reasons(void **state)
{
    VoPlaceSnapshot s = snapshot("abcdefgh");
    s.hosts[0].state = VO_HOST_OFFLINE;
    s.hosts[1].state = VO_HOST_MAINTENANCE;
    s.hosts[2].state = VO_HOST_FENCED;
    s.hosts[3].accel = VO_ACCEL_TCG;
    vo_strv_free(s.hosts[4].cpu_flags);
    s.hosts[4].cpu_flags = strv("sse4_2", NULL);
    vo_strv_free(s.hosts[5].pools);
    s.hosts[5].pools = strv("default", "p2", NULL);
    s.hosts[6].committed_memory_mib = 14336;
    s.hosts[7].cpus = 1;
    s.hosts[7].committed_vcpus = 2;
    for (size_t i = 0; i < s.n_hosts; i++)
        vo_strv_push(&s.hosts[i].pools, vo_strdup("p1")), vo_place_strv_sort(s.hosts[i].pools);
    vo_strv_free(s.hosts[5].pools);
    s.hosts[5].pools = strv("default", "p2", NULL);

    VoPlaceRequest req = request(4, 8192);
    req.accel = VO_ACCEL_KVM;
    req.cpu_model = vo_strdup("EPYC-Rome");
    req.cpu_flags = strv("avx2", "avx", NULL);
    req.pools = strv("p1", NULL);

    VoPlaceResult res;
    assert_null(place(&s, &req, &res));
    const char *want[] = { "offline", "in maintenance", "fenced", "needs kvm, host has tcg",
                           "lacks CPU flags avx,avx2", "cannot reach pool p1",
                           "needs 8192 MiB, 2048 MiB free (ratio 1.0)",
                           "needs 4 vCPUs, 2 free (ratio 4.0)" };
    const VoPlaceWhy why[] = { VO_PLACE_OFFLINE, VO_PLACE_MAINTENANCE, VO_PLACE_FENCED,
                               VO_PLACE_NO_KVM, VO_PLACE_CPU_FLAGS_MISSING, VO_PLACE_POOLS,
                               VO_PLACE_MEMORY, VO_PLACE_VCPUS };
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        assert_reason(&s, &req, &res, i, want[i]);
        assert_int_equal(res.verdicts[i].why, why[i]);
    }
    assert_int_equal(res.verdicts[6].free, 2048);
    char *msg = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(msg, "no host fits: a: offline; b: in maintenance; c: fenced; "
                             "d: needs kvm, host has tcg; e: lacks CPU flags avx,avx2; "
                             "f: cannot reach pool p1; g: needs 8192 MiB, 2048 MiB free (ratio 1.0); "
                             "h: needs 4 vCPUs, 2 free (ratio 4.0)");
    free(msg);
    vo_place_result_clear(&res);

    /* Two pools missing; other ratios as they are; a tcg VM runs on kvm hosts. */
    vo_strv_free(req.pools);
    req.pools = strv("p1", "p3", NULL);
    s.hosts[6].mem_ratio = 1.25; /* 20480 - 14336 = 6144 free */
    s.hosts[7].cpu_ratio = 1.5;  /* 1 vCPU given out, 2 committed: 0 free */
    assert_null(place(&s, &req, &res));
    assert_reason(&s, &req, &res, 5, "cannot reach pools p1,p3");
    assert_reason(&s, &req, &res, 6, "cannot reach pool p3");
    vo_place_result_clear(&res);
    vo_strv_free(req.pools);
    req.pools = NULL;
    req.vcpus = 1;
    assert_string_equal(place(&s, &req, &res), "f");
    assert_reason(&s, &req, &res, 6, "needs 8192 MiB, 6144 MiB free (ratio 1.25)");
    assert_reason(&s, &req, &res, 7, "needs 1 vCPU, 0 free (ratio 1.5)");
    vo_place_result_clear(&res);

    /* Without the CPU and accelerator demands, d, e and f fit; d wins the
     * tie by name (all empty). */
    req.accel = VO_ACCEL_TCG;
    free(req.cpu_model);
    req.cpu_model = NULL;
    assert_string_equal(place(&s, &req, &res), "d");
    assert_reason(&s, &req, &res, 3, NULL);
    assert_reason(&s, &req, &res, 4, NULL);
    assert_reason(&s, &req, &res, 5, NULL);
    assert_reason(&s, &req, &res, 0, "offline");
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_cpu_host(void **state)
{
    VoPlaceSnapshot s = snapshot("abcd");
    free(s.hosts[0].cpu_model);
    s.hosts[0].cpu_model = vo_strdup("Intel Xeon");
    vo_strv_free(s.hosts[1].cpu_flags);
    s.hosts[1].cpu_flags = strv("aes", "avx", "sse4_2", NULL);
    vo_strv_push(&s.hosts[2].cpu_flags, vo_strdup("vmx"));
    s.hosts[3].committed_memory_mib = 8192; /* identical, but fuller than the others */

    VoPlaceRequest req = request(1, 1024);
    req.cpu_model = vo_strdup("host");
    req.cpu_host_model = vo_strdup("AMD EPYC 7B13");
    req.cpu_flags = strv("aes", "avx", "avx2", "sse4_2", NULL);
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "d");
    assert_reason(&s, &req, &res, 0, "CPU model is 'Intel Xeon', the VM (cpu host) needs 'AMD EPYC 7B13'");
    assert_reason(&s, &req, &res, 1, "lacks CPU flags avx2");
    assert_reason(&s, &req, &res, 2, "has CPU flags the VM (cpu host) lacks: vmx");
    vo_place_result_clear(&res);

    /* A host-CPU VM that never ran goes anywhere. */
    free(req.cpu_host_model);
    req.cpu_host_model = NULL;
    assert_string_equal(place(&s, &req, NULL), "a");
    /* A named model needs a subset only: c has more. */
    free(req.cpu_model);
    req.cpu_model = vo_strdup("EPYC");
    assert_string_equal(place(&s, &req, &res), "a");
    assert_reason(&s, &req, &res, 1, "lacks CPU flags avx2");
    assert_reason(&s, &req, &res, 2, NULL);
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_spread_and_pack(void **state)
{
    VoPlaceSnapshot s = snapshot("abcd");
    s.hosts[0].committed_memory_mib = 8192;
    s.hosts[1].committed_memory_mib = 2048;
    s.hosts[2].committed_memory_mib = 12288;
    s.hosts[3].committed_memory_mib = 15360; /* 1024 free: too little */
    VoPlaceRequest req = request(1, 2048);
    assert_string_equal(place(&s, &req, NULL), "b");
    s.policy = VO_PLACE_PACK;
    assert_string_equal(place(&s, &req, NULL), "c");

    /* The fraction is counted with the VM on the host: a bigger empty host
     * is lighter (spread), a smaller one fuller (pack). */
    for (size_t i = 0; i < s.n_hosts; i++)
        s.hosts[i].committed_memory_mib = 0;
    s.hosts[2].memory_mib = 65536;
    s.hosts[0].memory_mib = 4096;
    assert_string_equal(place(&s, &req, NULL), "a");
    s.policy = VO_PLACE_SPREAD;
    assert_string_equal(place(&s, &req, NULL), "c");

    /* Equal memory: CPU load decides, then the vCPU fraction. */
    s.hosts[0].memory_mib = s.hosts[2].memory_mib = 16384;
    s.hosts[0].load = 0.5;
    s.hosts[1].load = 0.2;
    s.hosts[2].load = 0.9;
    s.hosts[3].load = 0.2;
    s.hosts[1].committed_vcpus = 3;
    assert_string_equal(place(&s, &req, NULL), "d");
    s.policy = VO_PLACE_PACK;
    assert_string_equal(place(&s, &req, NULL), "c");
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_ties(void **state)
{
    /* Equal hosts in any order: the first name wins, with either policy. */
    VoPlaceSnapshot s = snapshot("cab");
    VoPlaceRequest req = request(2, 1024);
    assert_string_equal(place(&s, &req, NULL), "a");
    s.policy = VO_PLACE_PACK;
    assert_string_equal(place(&s, &req, NULL), "a");
    /* Same name twice (not from the parser): the smaller id. */
    free(s.hosts[1].name);
    s.hosts[1].name = vo_strdup("c");
    assert_string_equal(place(&s, &req, NULL), "b");
    free(s.hosts[2].id);
    s.hosts[2].id = vo_strdup("id-0");
    free(s.hosts[2].name);
    s.hosts[2].name = vo_strdup("c");
    VoPlaceResult res;
    place(&s, &req, &res);
    assert_int_equal(res.host, 2);
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_six_vms_two_each(void **state)
{
    VoPlaceSnapshot s = snapshot("abc");
    VoPlaceRequest req = request(1, 1024);
    unsigned per_host[3] = { 0 };
    for (int k = 0; k < 6; k++)
        per_host[place_commit(&s, &req)[0] - 'a']++;
    assert_int_equal(per_host[0], 2);
    assert_int_equal(per_host[1], 2);
    assert_int_equal(per_host[2], 2);

    /* Pack fills one host before the next: 16 x 1 GiB on a, then b. */
    vo_place_snapshot_clear(&s);
    s = snapshot("abc");
    s.policy = VO_PLACE_PACK;
    for (int k = 0; k < 16; k++)
        assert_string_equal(place_commit(&s, &req), "a");
    assert_string_equal(place_commit(&s, &req), "b");
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_too_big(void **state)
{
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[1].committed_memory_mib = 4096;
    s.hosts[2].mem_ratio = 2.0;
    VoPlaceRequest req = request(2, 40000);
    VoPlaceResult res;
    assert_null(place(&s, &req, &res));
    char *msg = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(msg, "no host fits: a: needs 40000 MiB, 16384 MiB free (ratio 1.0); "
                             "b: needs 40000 MiB, 12288 MiB free (ratio 1.0); "
                             "c: needs 40000 MiB, 32768 MiB free (ratio 2.0)");
    free(msg);
    vo_place_result_clear(&res);

    /* Committed beyond what the ratio gives: 0 free, not a wrapped number. */
    s.hosts[0].committed_memory_mib = 20000;
    req.memory_mib = 1;
    assert_string_equal(place(&s, &req, &res), "c"); /* the lightest by physical memory */
    assert_reason(&s, &req, &res, 0, "needs 1 MiB, 0 MiB free (ratio 1.0)");
    vo_place_result_clear(&res);

    /* No hosts at all. */
    VoPlaceSnapshot empty = { 0 };
    assert_null(place(&empty, &req, &res));
    msg = vo_place_reasons_format(&empty, &req, &res);
    assert_string_equal(msg, "no host fits: the cluster has no hosts");
    free(msg);
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_group_spread(void **state)
{
    /* a is much emptier, so without the group every member would go there. */
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[1].committed_memory_mib = 8192;
    s.hosts[2].committed_memory_mib = 8192;
    VoPlaceRequest req = request(1, 512);
    req.group = vo_strdup("g1");
    req.group_policy = VO_GROUP_SPREAD;
    assert_string_equal(place_commit(&s, &req), "a");
    assert_string_equal(place_commit(&s, &req), "b");
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "c");
    assert_reason(&s, &req, &res, 0, "group g1 (spread) already has a VM here");
    assert_reason(&s, &req, &res, 1, "group g1 (spread) already has a VM here");
    vo_place_result_clear(&res);
    assert_string_equal(place_commit(&s, &req), "c");

    /* Soft: a 4th member on 3 hosts goes where the group has the fewest
     * (all 1: weighing decides: a), a 5th not there again. */
    assert_string_equal(place_commit(&s, &req), "a");
    assert_string_equal(place(&s, &req, &res), "b");
    assert_reason(&s, &req, &res, 0, "group g1 (spread) has 2 VMs here, another host has 1");
    vo_place_result_clear(&res);

    /* A host without members that does not fit is no reason to refuse:
     * the fitting hosts with the fewest members take it. */
    vo_place_request_clear(&req);
    req = request(1, 512);
    req.group = vo_strdup("g1");
    add_member(&req, "id-a");
    add_member(&req, "id-b");
    add_member(&req, "id-b");
    add_member(&req, "id-elsewhere");
    s.hosts[2].state = VO_HOST_OFFLINE;
    assert_string_equal(place(&s, &req, &res), "a");
    assert_reason(&s, &req, &res, 1, "group g1 (spread) has 2 VMs here, another host has 1");
    assert_reason(&s, &req, &res, 2, "offline");
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_group_together(void **state)
{
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[1].committed_memory_mib = 8192;
    VoPlaceRequest req = request(1, 4096);
    req.group = vo_strdup("g2");
    req.group_policy = VO_GROUP_TOGETHER;
    /* The first member goes where spread sends it, the next follow it. */
    assert_string_equal(place_commit(&s, &req), "a");
    s.hosts[0].committed_memory_mib += 4096; /* a is now the fullest */
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "a");
    assert_reason(&s, &req, &res, 1, "group g2 (together) lives on host a");
    assert_reason(&s, &req, &res, 2, "group g2 (together) lives on host a");
    vo_place_result_clear(&res);
    /* Its host full: nowhere, and each host says why. */
    s.hosts[0].committed_memory_mib = 16384;
    assert_null(place(&s, &req, &res));
    char *msg = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(msg, "no host fits: a: needs 4096 MiB, 0 MiB free (ratio 1.0); "
                             "b: group g2 (together) lives on host a; "
                             "c: group g2 (together) lives on host a");
    free(msg);
    vo_place_result_clear(&res);
    /* Members on a host that left the snapshot: named by its id. */
    free(req.group_hosts[0].host_id);
    req.group_hosts[0].host_id = vo_strdup("id-gone");
    assert_null(place(&s, &req, &res));
    assert_reason(&s, &req, &res, 2, "group g2 (together) lives on host id-gone");
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_pinned(void **state)
{
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[1].committed_memory_mib = 15360;
    VoPlaceRequest req = request(1, 2048);
    req.host = vo_strdup("c");
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "c");
    assert_int_equal(res.pinned, 2);
    vo_place_result_clear(&res);
    free(req.host);
    req.host = vo_strdup("id-c"); /* by id too */
    assert_string_equal(place(&s, &req, NULL), "c");

    /* A pinned host that does not fit: its reason alone. */
    free(req.host);
    req.host = vo_strdup("b");
    s.hosts[0].state = VO_HOST_OFFLINE;
    assert_null(place(&s, &req, &res));
    assert_reason(&s, &req, &res, 0, NULL);
    assert_reason(&s, &req, &res, 2, NULL);
    assert_int_equal(res.verdicts[0].why, VO_PLACE_UNCHECKED); /* offline, but not looked at */
    char *msg = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(msg, "host b does not fit: needs 2048 MiB, 1024 MiB free (ratio 1.0)");
    free(msg);
    vo_place_result_clear(&res);

    /* Pinning overrides a spread group's preference, not a together group. */
    free(req.host);
    req.host = vo_strdup("c");
    req.group = vo_strdup("g1");
    add_member(&req, "id-c");
    assert_string_equal(place(&s, &req, NULL), "c");
    req.group_policy = VO_GROUP_TOGETHER;
    free(req.group_hosts[0].host_id);
    req.group_hosts[0].host_id = vo_strdup("id-b");
    assert_null(place(&s, &req, &res));
    assert_reason(&s, &req, &res, 2, "group g1 (together) lives on host b");
    vo_place_result_clear(&res);

    /* A host the snapshot does not have. */
    free(req.host);
    req.host = vo_strdup("zz");
    res.host = 7;
    assert_int_equal(vo_place(&s, &req, &res), -ENOENT);
    assert_int_equal(res.host, -1);
    assert_null(res.verdicts);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

/* ---- JSON ---- */

#define HOST_DOC                                                                               \
    "{\"id\": \"0f5c\", \"name\": \"h1\", \"state\": \"online\", \"accel\": \"kvm\", "         \
    "\"cpu_model\": \"AMD EPYC\", \"cpu_flags\": [\"sse\", \"avx2\", \"aes\"], "               \
    "\"pools\": [\"default\", \"shared\"], \"memory_mib\": 16384, \"cpus\": 4, "               \
    "\"mem_ratio\": 1, \"cpu_ratio\": 4.0, \"committed_memory_mib\": 1024, "                   \
    "\"committed_vcpus\": 2, \"load\": 0.25"

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    return doc;
}

/* A move's source is excluded: its verdict and words, the least loaded of
 * the others chosen, a pin on it refused, a spread group still weighed,
 * a together group living on the source leaves no target. */
static void test_exclude(void **state)
{
    (void)state;
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[1].committed_memory_mib = 4096; /* b busier than c */
    VoPlaceRequest req = request(1, 1024);
    req.exclude = strv("id-a", NULL);
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "c");
    assert_int_equal(res.verdicts[0].why, VO_PLACE_EXCLUDED);
    assert_reason(&s, &req, &res, 0, "excluded (the host the VM moves from)");
    vo_place_result_clear(&res);

    /* A spread group with a member on c: b, though busier. */
    req.group = vo_strdup("web");
    req.group_policy = VO_GROUP_SPREAD;
    add_member(&req, "id-c");
    assert_string_equal(place(&s, &req, NULL), "b");

    /* Together with members only on the excluded source: nowhere. */
    req.group_policy = VO_GROUP_TOGETHER;
    for (size_t i = 0; i < req.n_group_hosts; i++)
        free(req.group_hosts[i].host_id);
    req.n_group_hosts = 0;
    add_member(&req, "id-a");
    assert_null(place(&s, &req, &res));
    char *words = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(words, "no host fits: a: excluded (the host the VM moves from); "
                               "b: group web (together) lives on host a; "
                               "c: group web (together) lives on host a");
    free(words);
    vo_place_result_clear(&res);

    /* Pinned to the excluded host: refused with that reason. */
    free(req.group);
    req.group = NULL;
    req.host = vo_strdup("a");
    assert_null(place(&s, &req, &res));
    words = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(words, "host a does not fit: excluded (the host the VM moves from)");
    free(words);
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

/* A UEFI VM (an HA restart, DRS, an evacuation: migrate-target.c) goes
 * only to a host that publishes its OVMF; a host that says nothing (an
 * older vireod) is left out too, as migrate-compat refuses it. */
static void test_firmware(void **state)
{
    (void)state;
    VoPlaceSnapshot s = snapshot("abcd");
    s.hosts[0].committed_memory_mib = 8192; /* a busiest: chosen last */
    s.hosts[1].firmware = strv("bios", NULL);
    s.hosts[2].firmware = strv("bios", "uefi", NULL);
    s.hosts[3].firmware = NULL;
    VoPlaceRequest req = request(1, 1024);
    /* BIOS: any host, the lightest. */
    assert_string_equal(place(&s, &req, NULL), "b");
    req.firmware = "uefi";
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "c"); /* a says nothing (host() sets none) */
    assert_int_equal(res.verdicts[0].why, VO_PLACE_FIRMWARE);
    assert_int_equal(res.verdicts[1].why, VO_PLACE_FIRMWARE);
    assert_int_equal(res.verdicts[3].why, VO_PLACE_FIRMWARE);
    assert_reason(&s, &req, &res, 1, "has no OVMF for uefi (install the ovmf package there)");
    assert_reason(&s, &req, &res, 2, NULL);
    vo_place_result_clear(&res);
    s.hosts[0].firmware = strv("bios", "uefi", "uefi-secure-boot", NULL);
    s.hosts[2].committed_memory_mib = 12288; /* c busier than a now */
    assert_string_equal(place(&s, &req, NULL), "a");
    s.hosts[0].state = VO_HOST_MAINTENANCE;
    assert_string_equal(place(&s, &req, &res), "c");
    assert_reason(&s, &req, &res, 3, "does not say which firmware it has (its vireod is "
                                     "older), the VM needs uefi");
    vo_place_result_clear(&res);
    /* Secure boot needs its own pair: only a has it, and a is away. */
    req.firmware = "uefi-secure-boot";
    assert_null(place(&s, &req, &res));
    char *words = vo_place_reasons_format(&s, &req, &res);
    assert_string_equal(words, "no host fits: a: in maintenance; b: has no OVMF for "
                               "uefi-secure-boot (install the ovmf package there); c: has no "
                               "OVMF for uefi-secure-boot (install the ovmf package there); d: "
                               "does not say which firmware it has (its vireod is older), the "
                               "VM needs uefi-secure-boot");
    free(words);
    vo_place_result_clear(&res);
    /* The record's list, read and written back. */
    json_t *doc = vo_place_host_to_json(&s.hosts[2]);
    VoPlaceHost h;
    char *error = NULL;
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), 0);
    assert_string_equal(h.firmware[1], "uefi");
    assert_null(h.firmware[2]);
    vo_place_host_clear(&h);
    json_object_set_new(doc, "firmware", json_string("uefi"));
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), -EINVAL);
    assert_non_null(strstr(error, "firmware: must be an array of strings"));
    free(error);
    json_decref(doc);
    vo_place_snapshot_clear(&s);
}

/* The networks' projects as the placement cache keeps them: host "id-X"'s
 * network NAME in project P for each "X/NAME=P". */
static json_t *owners(const char *first, ...)
{
    json_t *o = json_object();
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        const char *eq = strchr(s, '=');
        _cleanup_free_ char *key = vo_asprintf("id-%.*s", (int)(eq - s), s);
        json_object_set_new(o, key, json_pack("{s:{s:s}, s:i}", "doc", "project", eq + 1,
                                              "rev", 1));
    }
    va_end(ap);
    return o;
}

/* A new VM of project pa naming network lan goes to the host whose lan is
 * pa's or of no project, never to one whose own lan is another project's
 * (that host refuses the create); and a network no host has, or only
 * another project's, is told apart. */
static void test_networks_of_another_project(void **state)
{
    (void)state;
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[0].networks = strv("lan", NULL);
    s.hosts[1].networks = strv("dmz", "lan", NULL);
    s.hosts[2].networks = strv("lan", NULL);
    s.hosts[1].committed_memory_mib = 4096; /* a, the least loaded, would be chosen */
    s.hosts[2].committed_memory_mib = 8192;
    json_t *o = owners("a/lan=pb", "b/lan=pa", "b/dmz=pb", "c/lan=pb", NULL);
    const char *nics[] = { "lan" };
    VoPlaceRequest req = request(1, 1024);
    req.networks = vo_place_networks_needed(nics, 1);
    assert_string_equal(vo_place_network_owner(o, "id-a", "lan"), "pb");
    assert_null(vo_place_network_owner(o, "id-a", "dmz"));
    assert_false(vo_place_networks_project_ok(o, "id-a", req.networks, "pa"));
    assert_true(vo_place_networks_project_ok(o, "id-b", req.networks, "pa"));
    assert_true(vo_place_networks_project_ok(NULL, "id-a", req.networks, "pa"));
    assert_false(vo_place_networks_project_ok(o, "id-a", req.networks, NULL)); /* default */
    assert_string_equal(place(&s, &req, NULL), "a"); /* without the filter */
    vo_place_drop_foreign_networks(&s, req.networks, o, "pa");
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "b");
    assert_int_equal(res.verdicts[0].why, VO_PLACE_NETWORKS);
    assert_reason(&s, &req, &res, 0,
                  "has no network lan (or it is in error or of another project there)");
    vo_place_result_clear(&res);
    /* Only the networks asked for are looked at: b keeps its dmz of pb. */
    assert_string_equal(s.hosts[1].networks[0], "dmz");
    assert_null(vo_place_network_nowhere(&s, req.networks));
    /* Of pb only where it is: none for pa. */
    json_object_set_new(o, "id-b/lan", json_pack("{s:{s:s}}", "doc", "project", "pb"));
    vo_place_drop_foreign_networks(&s, req.networks, o, "pa");
    assert_null(place(&s, &req, NULL));
    assert_string_equal(vo_place_network_nowhere(&s, req.networks), "lan");
    vo_place_snapshot_clear(&s);
    /* No host has it; a host that does not say (an older vireod) may have
     * it, and so may an offline host (its record is gone: the 409 names it
     * offline, rather than a 400 saying no host has the network). */
    s = snapshot("ab");
    s.hosts[0].networks = strv("dmz", NULL);
    s.hosts[1].networks = strv(NULL);
    assert_string_equal(vo_place_network_nowhere(&s, req.networks), "lan");
    vo_strv_free(s.hosts[1].networks);
    s.hosts[1].networks = NULL;
    assert_null(vo_place_network_nowhere(&s, req.networks));
    s.hosts[1].state = VO_HOST_OFFLINE;
    assert_null(vo_place_network_nowhere(&s, req.networks));
    s.hosts[1].state = VO_HOST_MAINTENANCE; /* it says: its networks count */
    s.hosts[1].networks = strv(NULL);
    assert_string_equal(vo_place_network_nowhere(&s, req.networks), "lan");
    assert_null(vo_place_network_nowhere(&s, NULL));
    json_decref(o);
    vo_place_snapshot_clear(&s);
    vo_place_request_clear(&req);
}

/* A VM with NICs on networks (an HA restart, DRS, an evacuation) goes only
 * to a host that has each of them; a host that says nothing (an older
 * vireod) is not filtered on; "user" is every host's. */
static void test_networks(void **state)
{
    (void)state;
    VoPlaceSnapshot s = snapshot("abc");
    s.hosts[0].networks = strv("dmz", "lan", NULL);
    s.hosts[1].networks = strv("lan", NULL);
    s.hosts[2].committed_memory_mib = 8192; /* c says nothing and is the busiest */
    const char *nics[] = { "lan", "user", "dmz", "lan" };
    VoPlaceRequest req = request(1, 1024);
    req.networks = vo_place_networks_needed(nics, 4);
    assert_string_equal(req.networks[0], "dmz");
    assert_string_equal(req.networks[1], "lan");
    assert_null(req.networks[2]);
    s.hosts[0].committed_memory_mib = 4096; /* a busier than b: b would be chosen */
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "a");
    assert_int_equal(res.verdicts[1].why, VO_PLACE_NETWORKS);
    assert_reason(&s, &req, &res, 1,
                  "has no network dmz (or it is in error or of another project there)");
    vo_place_result_clear(&res);
    s.hosts[0].state = VO_HOST_MAINTENANCE;
    assert_string_equal(place(&s, &req, NULL), "c");
    vo_strv_free(s.hosts[1].networks);
    s.hosts[1].networks = strv("web", NULL);
    s.hosts[2].networks = strv(NULL);
    assert_null(place(&s, &req, &res));
    assert_reason(&s, &req, &res, 1,
                  "has no networks dmz,lan (or they are in error or of another project there)");
    vo_place_result_clear(&res);
    /* Only "user": nothing needed, every host fits. */
    assert_null(vo_place_networks_needed(nics + 1, 1));
    /* The record's list, read and written back. A name no VM can ask for
     * (a newer vireod's, say) is left out, not the host; the list must be
     * one. */
    json_t *doc = vo_place_host_to_json(&s.hosts[1]);
    VoPlaceHost h;
    char *error = NULL;
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), 0);
    assert_string_equal(h.networks[0], "web");
    vo_place_host_clear(&h);
    json_object_set_new(doc, "networks", json_pack("[s, s, i, s]", "Bad/Name", "web", 7, "web"));
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), 0);
    assert_string_equal(h.networks[0], "web");
    assert_null(h.networks[1]);
    vo_place_host_clear(&h);
    json_object_set_new(doc, "networks", json_pack("[s]", "Bad/Name"));
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), 0);
    assert_non_null(h.networks);
    assert_null(h.networks[0]); /* says it has none: filtered on */
    vo_place_host_clear(&h);
    json_object_set_new(doc, "networks", json_string("web"));
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), -EINVAL);
    assert_non_null(strstr(error, "networks: must be an array of strings"));
    free(error);
    json_decref(doc);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

/* A stand-in for "is this pool's volume copied by a move": "san" (a host's
 * own pool) is, the others are shared. */
static bool copied_san(const char *pool, void *userdata)
{
    (*(int *)userdata)++;
    return !strcmp(pool, "san");
}

static void assert_strv(char **v, const char *want)
{
    _cleanup_free_ char *joined = vo_strv_join(v, ",");
    assert_string_equal(joined, want);
}

/* The pools a VM needs: each named one (a volume's, a bare pool's), once,
 * sorted, always with the default pool; a move leaves out the pools whose
 * volumes it copies. A create on a volume of one host's own pool fits only
 * the hosts that have that pool. */
static void test_pools_needed(void **state)
{
    (void)state;
    const char *create[] = { "fast", "san/lun1", NULL, "isos/debian.iso", "", "fast/v0" };
    char **v = vo_place_pools_needed(create, 6, "default", NULL, NULL);
    assert_strv(v, "default,fast,isos,san");
    vo_strv_free(v);
    v = vo_place_pools_needed(NULL, 0, "default", NULL, NULL);
    assert_strv(v, "default");
    vo_strv_free(v);
    int asked = 0;
    const char *move[] = { "san/lun1", "shared/disk", NULL, "shared/nvram" };
    v = vo_place_pools_needed(move, 4, "default", copied_san, &asked);
    assert_strv(v, "default,shared");
    assert_int_equal(asked, 3);
    vo_strv_free(v);

    /* h1 (a) has san: the only host that fits, however loaded. */
    VoPlaceSnapshot s = snapshot("ab");
    vo_strv_free(s.hosts[0].pools);
    s.hosts[0].pools = strv("default", "san", NULL);
    s.hosts[0].committed_memory_mib = 8192;
    VoPlaceRequest req = request(1, 1024);
    req.pools = vo_place_pools_needed(create + 1, 1, "default", NULL, NULL);
    VoPlaceResult res;
    assert_string_equal(place(&s, &req, &res), "a");
    assert_int_equal(res.verdicts[1].why, VO_PLACE_POOLS);
    assert_reason(&s, &req, &res, 1, "cannot reach pool san");
    vo_place_result_clear(&res);
    /* A pool no host has: none fits, each says so. */
    vo_strv_free(req.pools);
    req.pools = vo_place_pools_needed(create, 1, "default", NULL, NULL);
    assert_null(place(&s, &req, &res));
    assert_reason(&s, &req, &res, 0, "cannot reach pool fast");
    vo_place_result_clear(&res);
    vo_place_request_clear(&req);
    vo_place_snapshot_clear(&s);
}

static void test_json_host(void **state)
{
    json_t *doc = load(HOST_DOC "}");
    VoPlaceHost h;
    char *error = NULL;
    assert_int_equal(vo_place_host_from_json(doc, &h, &error), 0);
    assert_string_equal(h.name, "h1");
    assert_int_equal(h.accel, VO_ACCEL_KVM);
    assert_string_equal(h.cpu_flags[0], "aes"); /* sorted */
    assert_string_equal(h.cpu_flags[2], "sse");
    assert_int_equal(h.memory_mib, 16384);
    assert_true(h.cpu_ratio == 4.0 && h.load == 0.25);
    json_t *out = vo_place_host_to_json(&h);
    VoPlaceHost h2;
    assert_int_equal(vo_place_host_from_json(out, &h2, &error), 0);
    json_t *out2 = vo_place_host_to_json(&h2);
    assert_true(json_equal(out, out2));
    json_decref(out);
    json_decref(out2);
    vo_place_host_clear(&h2);
    vo_place_host_clear(&h);
    json_decref(doc);
}

static void assert_snapshot_refused(const char *text, const char *needle)
{
    json_t *doc = load(text);
    VoPlaceSnapshot s;
    char *error = NULL;
    assert_int_equal(vo_place_snapshot_from_json(doc, &s, &error), -EINVAL);
    assert_null(s.hosts);
    assert_int_equal(s.n_hosts, 0);
    assert_non_null(error);
    if (!strstr(error, needle))
        fail_msg("%s: '%s' does not mention '%s'", text, error, needle);
    free(error);
    json_decref(doc);
}

#define SNAP(extra) "{\"hosts\": [" HOST_DOC extra "}]}"

static void test_json_snapshot(void **state)
{
    json_t *doc = load("{\"policy\": \"pack\", \"hosts\": [" HOST_DOC "}, "
                       "{\"id\": \"77\", \"name\": \"h2\", \"state\": \"maintenance\", "
                       "\"accel\": \"tcg\", \"cpu_model\": \"\", \"cpu_flags\": [], \"pools\": [], "
                       "\"memory_mib\": 1, \"cpus\": 1, \"mem_ratio\": 0.5, \"cpu_ratio\": 1, "
                       "\"committed_memory_mib\": 0, \"committed_vcpus\": 0, \"load\": 1}]}");
    VoPlaceSnapshot s;
    char *error = NULL;
    assert_int_equal(vo_place_snapshot_from_json(doc, &s, &error), 0);
    assert_int_equal(s.policy, VO_PLACE_PACK);
    assert_int_equal(s.n_hosts, 2);
    assert_int_equal(s.hosts[1].state, VO_HOST_MAINTENANCE);
    json_t *out = vo_place_snapshot_to_json(&s);
    VoPlaceSnapshot s2;
    assert_int_equal(vo_place_snapshot_from_json(out, &s2, &error), 0);
    json_t *out2 = vo_place_snapshot_to_json(&s2);
    assert_true(json_equal(out, out2));
    json_decref(out);
    json_decref(out2);
    vo_place_snapshot_clear(&s2);
    vo_place_snapshot_clear(&s);
    json_decref(doc);

    assert_snapshot_refused("[]", "snapshot: must be an object");
    assert_snapshot_refused("{\"hosts\": {}}", "hosts: must be an array");
    assert_snapshot_refused("{\"policy\": \"even\", \"hosts\": []}", "policy: 'even'");
    assert_snapshot_refused("{\"hosts\": [], \"zone\": 1}", "zone");
    assert_snapshot_refused("{\"hosts\": [1]}", "hosts[0]: host: must be an object");
    assert_snapshot_refused(SNAP(", \"rack\": 2"), "rack");
    assert_snapshot_refused("{\"hosts\": [{\"id\": \"x\"}]}", "hosts[0]: host:");
    assert_snapshot_refused("{\"hosts\": [" HOST_DOC "}, " HOST_DOC "}]}", "id '0f5c' appears twice");
    assert_snapshot_refused(SNAP(", \"zzz\": null"), "zzz");

    /* One field of a good host document wrong at a time. */
    struct {
        const char *key, *value, *needle;
    } bad[] = {
        { "id", "\"\"", "id: '' is not a host id" },
        { "id", "\"a/b\"", "is not a host id" },
        { "name", "\"h 1\"", "name 'h 1' is not a host name" },
        { "state", "\"up\"", "state 'up' is not one of" },
        { "accel", "\"auto\"", "accel 'auto' is not kvm or tcg" },
        { "cpu_model", "\"a\\u0001\"", "cpu_model: control characters" },
        { "cpu_flags", "[\"avx\", \"avx\"]", "cpu_flags: 'avx' is listed twice" },
        { "cpu_flags", "[\"a b\"]", "cpu_flags[0]: 'a b' is not a valid name" },
        { "cpu_flags", "[1]", "cpu_flags[0]: must be a string" },
        { "cpu_flags", "\"avx\"", "cpu_flags: must be an array" },
        { "pools", "[\"Default\"]", "pools[0]: 'Default' is not a valid pool name" },
        { "memory_mib", "0", "memory_mib: 0 is out of range" },
        { "memory_mib", "1.5", "memory_mib" },
        { "cpus", "-1", "cpus: -1 is out of range" },
        { "mem_ratio", "0", "mem_ratio: 0 is out of range" },
        { "cpu_ratio", "101", "cpu_ratio: 101 is out of range" },
        { "committed_memory_mib", "-5", "committed_memory_mib: -5 is out of range" },
        { "committed_vcpus", "\"2\"", "committed_vcpus" },
        { "load", "1.5", "load: 1.5 is out of range (0..1)" },
        { "load", "-0.1", "load: -0.1 is out of range" },
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        json_t *host = load(HOST_DOC "}");
        char *wrapped_text = vo_asprintf("[%s]", bad[i].value);
        json_t *wrapped = load(wrapped_text);
        json_object_set(host, bad[i].key, json_array_get(wrapped, 0));
        json_decref(wrapped);
        free(wrapped_text);
        json_t *snap = json_pack("{s:[o]}", "hosts", host);
        char *text = json_dumps(snap, JSON_COMPACT);
        assert_snapshot_refused(text, bad[i].needle);
        free(text);
        json_decref(snap);
    }
    /* The same name twice. */
    json_t *a = load(HOST_DOC "}"), *b = load(HOST_DOC "}");
    json_object_set_new(b, "id", json_string("other"));
    json_t *snap = json_pack("{s:[o,o]}", "hosts", a, b);
    char *text = json_dumps(snap, JSON_COMPACT);
    assert_snapshot_refused(text, "name 'h1' appears twice");
    free(text);
    json_decref(snap);
}

static void assert_request_refused(const char *text, const char *needle)
{
    json_t *doc = load(text);
    VoPlaceRequest req;
    char *error = NULL;
    assert_int_equal(vo_place_request_from_json(doc, &req, &error), -EINVAL);
    assert_null(req.group);
    assert_null(req.cpu_model);
    assert_null(req.pools);
    assert_non_null(error);
    if (!strstr(error, needle))
        fail_msg("%s: '%s' does not mention '%s'", text, error, needle);
    free(error);
    json_decref(doc);
}

static void test_json_request(void **state)
{
    const char *full = "{\"vcpus\": 2, \"memory_mib\": 2048, \"accel\": \"kvm\", "
                       "\"cpu_model\": \"host\", \"cpu_flags\": [\"b\", \"a\"], "
                       "\"cpu_host_model\": \"AMD EPYC\", \"pools\": [\"default\"], "
                       "\"group\": {\"name\": \"web\", \"policy\": \"together\", "
                       "\"hosts\": {\"id-1\": 2, \"id-2\": 1}}, \"host\": \"h1\", "
                       "\"exclude\": [\"id-1\"], \"networks\": [\"dmz\", \"lan\"]}";
    json_t *doc = load(full);
    VoPlaceRequest req;
    char *error = NULL;
    assert_int_equal(vo_place_request_from_json(doc, &req, &error), 0);
    assert_int_equal(req.vcpus, 2);
    assert_int_equal(req.accel, VO_ACCEL_KVM);
    assert_string_equal(req.cpu_flags[0], "a");
    assert_int_equal(req.group_policy, VO_GROUP_TOGETHER);
    assert_int_equal(req.n_group_hosts, 2);
    assert_string_equal(req.host, "h1");
    assert_string_equal(req.exclude[0], "id-1");
    assert_null(req.exclude[1]);
    assert_string_equal(req.networks[1], "lan");
    json_t *out = vo_place_request_to_json(&req);
    json_object_set_new(doc, "cpu_flags", json_pack("[s,s]", "a", "b"));
    assert_true(json_equal(doc, out));
    json_decref(out);
    vo_place_request_clear(&req);
    json_decref(doc);

    doc = load("{\"vcpus\": 1, \"memory_mib\": 64}");
    assert_int_equal(vo_place_request_from_json(doc, &req, &error), 0);
    assert_int_equal(req.accel, VO_ACCEL_AUTO);
    assert_null(req.group);
    vo_place_request_clear(&req);
    json_decref(doc);

    assert_request_refused("{\"memory_mib\": 64}", "vcpus");
    assert_request_refused("{\"vcpus\": 0, \"memory_mib\": 64}", "vcpus: 0 is out of range");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 0}", "memory_mib: 0 is out of range");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"disk\": 1}", "disk");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"accel\": \"any\"}",
                           "accel: 'any' is not one of auto, kvm, tcg");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"cpu_flags\": [\"a\"]}",
                           "need cpu_model");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"cpu_model\": \"EPYC\", "
                           "\"cpu_host_model\": \"x\"}", "only with cpu_model 'host'");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"cpu_model\": \"\"}", "cpu_model: empty");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"cpu_model\": \"x\", "
                           "\"cpu_flags\": [\"a\", \"a\"]}", "'a' is listed twice");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"pools\": [\"-p\"]}", "pools[0]");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": \"g\"}",
                           "group: must be an object");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": {\"name\": \"g\"}}",
                           "group:");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": {\"name\": \"G\", "
                           "\"policy\": \"spread\"}}", "group: name 'G' is invalid");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": {\"name\": \"g\", "
                           "\"policy\": \"apart\"}}", "policy 'apart' is not spread or together");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": {\"name\": \"g\", "
                           "\"policy\": \"spread\", \"hosts\": {\"h\": 0}}}", "hosts.h must be a count");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": {\"name\": \"g\", "
                           "\"policy\": \"spread\", \"hosts\": {\"a b\": 1}}}", "'a b' is not a host id");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"group\": {\"name\": \"g\", "
                           "\"policy\": \"spread\", \"hosts\": [1]}}", "hosts must be an object");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"host\": \"\"}", "host: '' is not");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"exclude\": \"id-1\"}",
                           "exclude: must be an array");
    assert_request_refused("{\"vcpus\": 1, \"memory_mib\": 64, \"exclude\": [\"a\", \"a\"]}",
                           "exclude: 'a' is listed twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_reasons),
        cmocka_unit_test(test_cpu_host),
        cmocka_unit_test(test_spread_and_pack),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_six_vms_two_each),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_group_spread),
        cmocka_unit_test(test_group_together),
        cmocka_unit_test(test_pinned),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_firmware),
        cmocka_unit_test(test_networks),
        cmocka_unit_test(test_networks_of_another_project),
        cmocka_unit_test(test_pools_needed),
        cmocka_unit_test(test_json_host),
        cmocka_unit_test(test_json_snapshot),
        cmocka_unit_test(test_json_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
