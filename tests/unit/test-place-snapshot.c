/* test-place-snapshot.c: the manager's inputs to placement
 * (cluster/place-snapshot.c): the snapshot from member documents and live
 * records (extra record fields, missing or unusable records as offline),
 * reservations counted on their host and group, pruned when they expire or
 * their host goes, rapid creates spreading only thanks to them; plus the
 * VM spec's "group" field and its member document (state/relations.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/place-snapshot.h"
#include "conf/vm-spec.h"
#include "state/relations.h"
#include "util/util.h"

/* A member document and a record as vireod writes them (hosts.c), with the
 * fields placement does not read (address, vms, version, updated_at...). */
static json_t *member(const char *id, const char *name)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:f, s:f}", "id", id, "name", name, "address",
                     "10.0.0.1", "joined_at", 1, "mem_ratio", 1.0, "cpu_ratio", 4.0);
}

static json_t *record(const char *id, const char *name, json_int_t memory, json_int_t committed)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s,s], s:[s], s:I, s:I, s:i, s:f, s:f,"
                     " s:I, s:i, s:f, s:i, s:i, s:s, s:i}",
                     "id", id, "name", name, "address", "10.0.0.1", "state", "online", "accel",
                     "tcg", "cpu_model", "QEMU Virtual CPU", "cpu_flags", "sse2", "avx", "pools",
                     "default", "memory_mib", memory, "memory_used_mib", (json_int_t)100,
                     "cpus", 4, "mem_ratio", 1.0, "cpu_ratio", 4.0, "committed_memory_mib",
                     committed, "committed_vcpus", 0, "load", 0.1, "vms", 0, "vms_running", 0,
                     "version", "0.1", "updated_at", 1);
}

typedef struct {
    VoPlaceHostDocs docs[8];
    size_t n;
} Docs;

static void docs_add(Docs *d, const char *id, const char *name, json_t *rec)
{
    d->docs[d->n++] = (VoPlaceHostDocs){ .member = member(id, name), .record = rec };
}

static void docs_clear(Docs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        json_decref(d->docs[i].member);
        json_decref(d->docs[i].record);
    }
    d->n = 0;
}

/* Three online hosts of 4096 MiB with nothing committed. */
static void three_hosts(Docs *d)
{
    docs_add(d, "id-a", "a", record("id-a", "a", 4096, 0));
    docs_add(d, "id-b", "b", record("id-b", "b", 4096, 0));
    docs_add(d, "id-c", "c", record("id-c", "c", 4096, 0));
}

static void test_build_from_records(void **state)
{
    (void)state;
    Docs d = { 0 };
    three_hosts(&d);
    /* Its record names it otherwise: the member document wins. */
    json_object_set_new(d.docs[1].record, "name", json_string("stale"));
    VoPlaceSnapshot s;
    char **warnings = NULL, *error = NULL;
    assert_int_equal(vo_place_snapshot_build(d.docs, d.n, VO_PLACE_PACK, NULL, &s, &warnings,
                                             &error), 0);
    assert_null(warnings);
    assert_int_equal(s.n_hosts, 3);
    assert_int_equal(s.policy, VO_PLACE_PACK);
    assert_string_equal(s.hosts[1].name, "b");
    assert_int_equal(s.hosts[0].state, VO_HOST_ONLINE);
    assert_int_equal(s.hosts[0].accel, VO_ACCEL_TCG);
    assert_int_equal(s.hosts[0].memory_mib, 4096);
    assert_string_equal(s.hosts[0].pools[0], "default");
    assert_string_equal(s.hosts[0].cpu_flags[0], "avx"); /* sorted */
    vo_place_snapshot_clear(&s);
    docs_clear(&d);
}

static void test_missing_or_bad_record_is_offline(void **state)
{
    (void)state;
    Docs d = { 0 };
    docs_add(&d, "id-a", "a", record("id-a", "a", 4096, 0));
    docs_add(&d, "id-b", "b", NULL); /* no record: its lease expired */
    json_t *bad = record("id-c", "c", 4096, 0);
    json_object_set_new(bad, "load", json_real(1.5));
    docs_add(&d, "id-c", "c", bad);
    VoPlaceSnapshot s;
    char **warnings = NULL, *error = NULL;
    assert_int_equal(vo_place_snapshot_build(d.docs, d.n, VO_PLACE_SPREAD, NULL, &s, &warnings,
                                             &error), 0);
    assert_int_equal(s.n_hosts, 3);
    assert_int_equal(s.hosts[1].state, VO_HOST_OFFLINE);
    assert_int_equal(s.hosts[2].state, VO_HOST_OFFLINE);
    assert_non_null(warnings);
    assert_int_equal(vo_strv_len(warnings), 1);
    assert_non_null(strstr(warnings[0], "host c"));
    assert_non_null(strstr(warnings[0], "load"));
    /* The 409 names each host that does not fit and why. */
    VoPlaceRequest req = { .vcpus = 1, .memory_mib = 8192 };
    VoPlaceResult res;
    assert_int_equal(vo_place(&s, &req, &res), 0);
    assert_int_equal(res.host, -1);
    _cleanup_free_ char *msg = vo_place_reasons_format(&s, &req, &res);
    assert_non_null(strstr(msg, "a: needs 8192 MiB, 4096 MiB free"));
    assert_non_null(strstr(msg, "b: offline"));
    assert_non_null(strstr(msg, "c: offline"));
    vo_place_result_clear(&res);
    vo_strv_free(warnings);
    vo_place_snapshot_clear(&s);
    docs_clear(&d);
}

static void test_member_without_name_refused(void **state)
{
    (void)state;
    Docs d = { 0 };
    three_hosts(&d);
    json_object_del(d.docs[2].member, "name");
    VoPlaceSnapshot s;
    char *error = NULL;
    assert_int_equal(vo_place_snapshot_build(d.docs, d.n, VO_PLACE_SPREAD, NULL, &s, NULL, &error),
                     -EINVAL);
    assert_non_null(strstr(error, "member document 2"));
    assert_int_equal(s.n_hosts, 0);
    free(error);
    docs_clear(&d);
}

/* Places a 512 MiB VM on the snapshot made now, reserving it; the chosen
 * host's name. */
static const char *place_reserving(Docs *d, VoPlaceReservations *r, bool reserve, int64_t now)
{
    VoPlaceSnapshot s;
    char *error = NULL;
    vo_place_reservations_prune(r, d->docs, d->n, now);
    assert_int_equal(vo_place_snapshot_build(d->docs, d->n, VO_PLACE_SPREAD, r, &s, NULL,
                                             &error), 0);
    VoPlaceRequest req = { .vcpus = 1, .memory_mib = 512 };
    VoPlaceResult res;
    assert_int_equal(vo_place(&s, &req, &res), 0);
    assert_true(res.host >= 0);
    static char name[8];
    snprintf(name, sizeof(name), "%s", s.hosts[res.host].name);
    if (reserve)
        vo_place_reservation_add(r, s.hosts[res.host].id, NULL, 512, 1, now);
    vo_place_result_clear(&res);
    vo_place_snapshot_clear(&s);
    return name;
}

static void test_reservations_spread_rapid_creates(void **state)
{
    (void)state;
    Docs d = { 0 };
    three_hosts(&d);
    VoPlaceReservations r = { 0 };
    /* Six creates before any record shows one: 2/2/2 thanks to the
     * reservations. */
    int count[3] = { 0 };
    for (int i = 0; i < 6; i++)
        count[place_reserving(&d, &r, true, 1000)[0] - 'a']++;
    assert_int_equal(count[0], 2);
    assert_int_equal(count[1], 2);
    assert_int_equal(count[2], 2);
    assert_int_equal(r.n, 6);
    /* Without them every one would go to the same host. */
    VoPlaceReservations none = { 0 };
    const char *first = place_reserving(&d, &none, false, 1000);
    char keep = first[0];
    for (int i = 0; i < 5; i++)
        assert_int_equal(place_reserving(&d, &none, false, 1000)[0], keep);
    vo_place_reservations_clear(&r);
    docs_clear(&d);
}

static void test_reservation_counts_and_drop(void **state)
{
    (void)state;
    Docs d = { 0 };
    three_hosts(&d);
    VoPlaceReservations r = { 0 };
    uint64_t x = vo_place_reservation_add(&r, "id-b", "g", 1000, 2, 0);
    uint64_t y = vo_place_reservation_add(&r, "id-b", NULL, 24, 1, 0);
    assert_int_not_equal(x, y);
    VoPlaceSnapshot s;
    char *error = NULL;
    assert_int_equal(vo_place_snapshot_build(d.docs, d.n, VO_PLACE_SPREAD, &r, &s, NULL, &error), 0);
    assert_int_equal(s.hosts[1].committed_memory_mib, 1024);
    assert_int_equal(s.hosts[1].committed_vcpus, 3);
    assert_int_equal(s.hosts[0].committed_memory_mib, 0);
    vo_place_snapshot_clear(&s);
    /* The host answered: the reservation goes (its record shows the VM). */
    vo_place_reservation_drop(&r, x);
    vo_place_reservation_drop(&r, 12345); /* unknown: nothing */
    assert_int_equal(r.n, 1);
    assert_int_equal(r.items[0].id, y);
    vo_place_reservations_clear(&r);
    assert_int_equal(r.n, 0);
    docs_clear(&d);
}

/* Settled reservations (created; the manager's cache shows them from a
 * revision on) count until a snapshot of that revision; unknown ones
 * (INT64_MAX) until they expire. */
static void test_reservations_settled(void **state)
{
    (void)state;
    VoPlaceReservations r = { 0 };
    uint64_t a = vo_place_reservation_add(&r, "h1", NULL, 512, 1, 0);
    uint64_t b = vo_place_reservation_add(&r, "h2", NULL, 512, 1, 0);
    uint64_t c = vo_place_reservation_add(&r, "h3", NULL, 512, 1, 0);
    uint64_t in_flight = vo_place_reservation_add(&r, "h1", NULL, 512, 1, 0);
    vo_place_reservation_settle(&r, a, 10);
    vo_place_reservation_settle(&r, b, 20);
    vo_place_reservation_settle(&r, c, INT64_MAX);
    vo_place_reservation_settle(&r, 999, 5); /* unknown: nothing */
    /* Nothing is dropped by a look at the wanted revision. */
    assert_int_equal(vo_place_reservations_settled(&r, INT64_MIN), 20);
    assert_int_equal(r.n, 4);
    assert_int_equal(vo_place_reservations_settled(&r, 15), 20); /* a goes */
    assert_int_equal(r.n, 3);
    assert_int_equal(vo_place_reservations_settled(&r, 20), 0); /* b goes */
    assert_int_equal(r.n, 2);
    assert_int_equal(r.items[0].id, c);
    assert_int_equal(r.items[1].id, in_flight);
    assert_int_equal(r.items[1].settle_rev, 0); /* in flight: never dropped by a revision */
    assert_int_equal(vo_place_reservations_settled(&r, INT64_MAX), 0); /* c goes */
    assert_int_equal(r.n, 1);
    vo_place_reservations_clear(&r);
}

/* The chosen host answers its record's revision (Vireo-Record-Revision):
 * parsed strictly, and the reservation settled on it stays counted until a
 * snapshot at that revision or newer (the manager reads no record). */
static void test_record_rev_answered(void **state)
{
    (void)state;
    assert_int_equal(vo_place_record_rev_parse("12345"), 12345);
    assert_int_equal(vo_place_record_rev_parse("9223372036854775807"), INT64_MAX);
    assert_int_equal(vo_place_record_rev_parse(NULL), 0);
    assert_int_equal(vo_place_record_rev_parse(""), 0);
    assert_int_equal(vo_place_record_rev_parse("0"), 0);
    assert_int_equal(vo_place_record_rev_parse("-5"), 0);
    assert_int_equal(vo_place_record_rev_parse("012"), 0);
    assert_int_equal(vo_place_record_rev_parse("12x"), 0);
    assert_int_equal(vo_place_record_rev_parse(" 12"), 0);
    assert_int_equal(vo_place_record_rev_parse("9223372036854775808"), 0); /* overflow */
    VoPlaceReservations r = { 0 };
    uint64_t a = vo_place_reservation_add(&r, "h1", NULL, 512, 1, 0);
    vo_place_reservation_settle(&r, a, vo_place_record_rev_parse("41"));
    /* A snapshot older than the record: still reserved, and the manager
     * waits for revision 41. */
    assert_int_equal(vo_place_reservations_settled(&r, 40), 41);
    assert_int_equal(r.n, 1);
    assert_int_equal(vo_place_reservations_settled(&r, 41), 0);
    assert_int_equal(r.n, 0);
    vo_place_reservations_clear(&r);
}

static void test_reservations_pruned(void **state)
{
    (void)state;
    Docs d = { 0 };
    three_hosts(&d);
    VoPlaceReservations r = { 0 };
    vo_place_reservation_add(&r, "id-a", NULL, 512, 1, 0);
    vo_place_reservation_add(&r, "id-b", NULL, 512, 1, 5000);
    vo_place_reservation_add(&r, "id-gone", NULL, 512, 1, 5000); /* no longer a member */
    vo_place_reservations_prune(&r, d.docs, d.n, 1000);
    assert_int_equal(r.n, 2);
    /* The first expires. */
    vo_place_reservations_prune(&r, d.docs, d.n, VO_PLACE_RESERVATION_TTL_MS);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.items[0].host_id, "id-b");
    /* Its host goes offline (no record): nothing to add to. */
    json_decref(d.docs[1].record);
    d.docs[1].record = NULL;
    vo_place_reservations_prune(&r, d.docs, d.n, 6000);
    assert_int_equal(r.n, 0);
    vo_place_reservations_clear(&r);
    docs_clear(&d);
}

static void test_group_hosts(void **state)
{
    (void)state;
    json_t *members = json_pack(
        "{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}",
        "cluster/group-members/g/vm1", "vm", "vm1", "name", "w1", "host", "id-b",
        "cluster/group-members/g/vm2", "vm", "vm2", "name", "w2", "host", "id-a",
        "cluster/group-members/g/vm3", "vm", "vm3", "name", "w3", "host", "id-b");
    VoPlaceReservations r = { 0 };
    vo_place_reservation_add(&r, "id-c", "g", 512, 1, 0);
    vo_place_reservation_add(&r, "id-c", "other", 512, 1, 0);
    vo_place_reservation_add(&r, "id-a", NULL, 512, 1, 0);
    VoPlaceGroupHost *g = NULL;
    size_t n = 0;
    vo_place_group_hosts(members, &r, "g", &g, &n);
    assert_int_equal(n, 3);
    assert_string_equal(g[0].host_id, "id-a");
    assert_int_equal(g[0].count, 1);
    assert_string_equal(g[1].host_id, "id-b");
    assert_int_equal(g[1].count, 2);
    assert_string_equal(g[2].host_id, "id-c"); /* in flight */
    assert_int_equal(g[2].count, 1);
    vo_place_group_hosts_free(g, n);
    /* No members yet, none in flight. */
    vo_place_group_hosts(NULL, &r, "none", &g, &n);
    assert_int_equal(n, 0);
    assert_null(g);
    vo_place_reservations_clear(&r);
    json_decref(members);
}

/* A spread group of 3 created one after another, each reserved before the
 * next is placed: three hosts. */
static void test_spread_group_with_reservations(void **state)
{
    (void)state;
    Docs d = { 0 };
    three_hosts(&d);
    /* b is emptier: without the group every member would go there. */
    json_object_set_new(d.docs[0].record, "committed_memory_mib", json_integer(1024));
    json_object_set_new(d.docs[2].record, "committed_memory_mib", json_integer(1024));
    VoPlaceReservations r = { 0 };
    bool used[3] = { false };
    for (int i = 0; i < 3; i++) {
        VoPlaceSnapshot s;
        char *error = NULL;
        assert_int_equal(vo_place_snapshot_build(d.docs, d.n, VO_PLACE_SPREAD, &r, &s, NULL,
                                                 &error), 0);
        VoPlaceRequest req = { .vcpus = 1, .memory_mib = 64, .group = "g",
                               .group_policy = VO_GROUP_SPREAD };
        vo_place_group_hosts(NULL, &r, "g", &req.group_hosts, &req.n_group_hosts);
        VoPlaceResult res;
        assert_int_equal(vo_place(&s, &req, &res), 0);
        assert_true(res.host >= 0);
        assert_false(used[res.host]);
        used[res.host] = true;
        vo_place_reservation_add(&r, s.hosts[res.host].id, "g", 64, 1, 0);
        vo_place_group_hosts_free(req.group_hosts, req.n_group_hosts);
        vo_place_result_clear(&res);
        vo_place_snapshot_clear(&s);
    }
    vo_place_reservations_clear(&r);
    docs_clear(&d);
}

static void test_spec_group_and_member_document(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:s, s:s, s:s}", "id", "vm-1", "name", "w1", "group", "web");
    VoVmSpec *spec = NULL;
    char *error = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &error), 0);
    assert_string_equal(spec->group, "web");
    json_t *back = vo_vm_spec_to_json(spec);
    assert_string_equal(json_string_value(json_object_get(back, "group")), "web");
    json_decref(back);
    VoVmSpec *copy = vo_vm_spec_copy(spec);
    assert_string_equal(copy->group, "web");
    vo_vm_spec_free(copy);

    json_t *want = json_object();
    vo_relations_add_group(want, spec, "host-1");
    const char *text = json_string_value(json_object_get(want, "cluster/group-members/web/vm-1"));
    assert_non_null(text);
    assert_string_equal(text, "{\"host\":\"host-1\",\"name\":\"w1\",\"vm\":\"vm-1\"}");
    json_decref(want);
    vo_vm_spec_free(spec);
    json_decref(doc);

    /* Not in a group: no document; an invalid group name refused. */
    doc = json_pack("{s:s, s:s}", "id", "vm-2", "name", "w2");
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &error), 0);
    want = json_object();
    vo_relations_add_group(want, spec, "host-1");
    assert_int_equal(json_object_size(want), 0);
    json_decref(want);
    vo_vm_spec_free(spec);
    json_object_set_new(doc, "group", json_string("Bad/Name"));
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &error), -EINVAL);
    assert_non_null(strstr(error, "group"));
    free(error);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_from_records),
        cmocka_unit_test(test_missing_or_bad_record_is_offline),
        cmocka_unit_test(test_member_without_name_refused),
        cmocka_unit_test(test_reservations_spread_rapid_creates),
        cmocka_unit_test(test_reservation_counts_and_drop),
        cmocka_unit_test(test_reservations_settled),
        cmocka_unit_test(test_record_rev_answered),
        cmocka_unit_test(test_reservations_pruned),
        cmocka_unit_test(test_group_hosts),
        cmocka_unit_test(test_spread_group_with_reservations),
        cmocka_unit_test(test_spec_group_and_member_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
