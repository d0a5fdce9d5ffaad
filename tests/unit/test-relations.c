/* test-relations.c: the relation documents (state/relations.h) a VM's
 * definition implies, their transaction with the VM's document (only what
 * changed is written; nothing when the VM's document is not as expected;
 * all of a VM's documents go in one delete), and the reads the volume and
 * network services answer "in use" with, on a real SQLite store; the short
 * claims a write rests on, confirmed in it; and a
 * project's quota check committed with them under interleaved changes
 * (state/project-usage.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "state/keys.h"
#include "state/project-usage.h"
#include "state/relations.h"
#include "util/util.h"
#include "vireo/errors.h"

#define VM1 "11111111-1111-1111-1111-111111111111"
#define VM2 "22222222-2222-2222-2222-222222222222"

typedef struct {
    char dir[64];
    VoStore *store;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-relations-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", f->dir);
    *state = f;
    return vo_store_open(path, &f->store) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->store);
    (void)vo_rm_rf(f->dir);
    free(f);
    return 0;
}

/* A VM from image "alpine" (also booting its kernel), with a boot and a data
 * disk, an initrd from a volume, two NICs on "lan", one on "user", one on
 * "dmz". */
static VoVmSpec *make_spec(const char *id, const char *name)
{
    VoVmSpec *s = vo_malloc0(sizeof(*s));
    s->id = vo_strdup(id);
    s->name = vo_strdup(name);
    s->image = vo_strdup("alpine");
    s->kernel_from.image = vo_strdup("alpine");
    s->initrd_from.volume = vo_strdup("default/initrd");
    s->disks = vo_malloc0(sizeof(VoDiskSpec) * 2);
    s->disks[0].volume = vo_asprintf("default/%s", name);
    s->disks[1].volume = vo_strdup("fast/data");
    s->n_disks = 2;
    static const char *nets[] = { "lan", "user", "dmz", "lan" };
    s->nics = vo_malloc0(sizeof(VoNicSpec) * 4);
    for (size_t i = 0; i < 4; i++) {
        s->nics[i].network = vo_strdup(nets[i]);
        s->nics[i].mac = vo_asprintf("52:54:00:00:00:%02zx", i);
    }
    s->n_nics = 4;
    return s;
}

static json_t *doc_of(json_t *rel, const char *key)
{
    const char *text = json_string_value(json_object_get(rel, key));
    assert_non_null(text);
    return json_loads(text, 0, NULL);
}

static void test_of_vm(void **state)
{
    (void)state;
    _cleanup_vm_spec_ VoVmSpec *s = make_spec(VM1, "web");
    json_t *rel = vo_relations_of_vm(s, true);
    /* 3 volumes, 1 image (two uses, one document), 2 networks ("user" is none). */
    assert_int_equal(json_object_size(rel), 6);
    json_t *vol = doc_of(rel, "uses/volumes/fast/data/" VM1);
    assert_string_equal(json_string_value(json_object_get(vol, "vm")), VM1);
    assert_string_equal(json_string_value(json_object_get(vol, "name")), "web");
    assert_true(json_is_true(json_object_get(vol, "active")));
    json_decref(vol);
    assert_non_null(json_object_get(rel, "uses/volumes/default/web/" VM1));
    assert_non_null(json_object_get(rel, "uses/volumes/default/initrd/" VM1));
    assert_non_null(json_object_get(rel, "uses/images/alpine/" VM1));
    json_t *lan = doc_of(rel, "uses/networks/lan/" VM1);
    json_t *macs = json_object_get(lan, "macs");
    assert_int_equal(json_array_size(macs), 2);
    assert_string_equal(json_string_value(json_array_get(macs, 0)), "52:54:00:00:00:00");
    assert_string_equal(json_string_value(json_array_get(macs, 1)), "52:54:00:00:00:03");
    json_decref(lan);
    assert_non_null(json_object_get(rel, "uses/networks/dmz/" VM1));
    assert_null(json_object_get(rel, "uses/networks/user/" VM1));
    json_decref(rel);
}

static int commit(VoStore *st, const char *vm_key, int64_t rev, const char *doc, json_t *have,
                  json_t *want, int64_t *ret_rev)
{
    VoRelationsTxn t = { .vm_key = vm_key, .vm_rev = rev, .vm_doc = doc, .have = have,
                         .want = want };
    return vo_relations_commit(st, &t, ret_rev);
}

static int64_t rev_of(VoStore *st, const char *key)
{
    _cleanup_free_ char *v = NULL;
    int64_t rev = 0;
    return vo_store_get(st, key, &v, &rev) < 0 ? -1 : rev;
}

static void test_commit_and_reads(void **state)
{
    Fixture *f = *state;
    VoStore *st = f->store;
    _cleanup_vm_spec_ VoVmSpec *s = make_spec(VM1, "web");
    json_t *have = vo_relations_of_vm(s, false);
    int64_t rev = 0;
    assert_int_equal(commit(st, "vms/" VM1, VO_REV_NEW, "{}", NULL, have, &rev), 0);
    assert_int_equal(rev_of(st, "vms/" VM1), rev);
    assert_int_equal(rev_of(st, "uses/volumes/fast/data/" VM1), rev);

    VoRelationUser u;
    assert_int_equal(vo_relations_volume_user(st, "fast/data", &u), 1);
    assert_string_equal(u.vm_id, VM1);
    assert_string_equal(u.name, "web");
    assert_false(u.active);
    vo_relation_user_clear(&u);
    assert_int_equal(vo_relations_volume_user(st, "fast/dat", &u), 0); /* a prefix is no volume */
    assert_int_equal(vo_relations_volume_user(st, "fast/data2", &u), 0);
    assert_int_equal(vo_relations_network_user(st, "dmz", &u), 1);
    vo_relation_user_clear(&u);
    assert_int_equal(vo_relations_network_user(st, "user", &u), 0);
    assert_int_equal(vo_relations_image_users(st, "alpine"), 1);
    assert_int_equal(vo_relations_image_users(st, "alp"), 0);
    json_t *nics = vo_relations_network_nics(st);
    assert_int_equal(json_array_size(nics), 3);
    json_t *first = json_array_get(nics, 0); /* key order: dmz first */
    assert_string_equal(json_string_value(json_object_get(first, "network")), "dmz");
    assert_string_equal(json_string_value(json_object_get(first, "mac")), "52:54:00:00:00:02");
    assert_string_equal(json_string_value(json_object_get(first, "name")), "web");
    json_decref(nics);

    /* A second VM on the same image. */
    _cleanup_vm_spec_ VoVmSpec *s2 = make_spec(VM2, "db");
    json_t *have2 = vo_relations_of_vm(s2, false);
    assert_int_equal(commit(st, "vms/" VM2, VO_REV_NEW, "{}", NULL, have2, NULL), 0);
    assert_int_equal(vo_relations_image_users(st, "alpine"), 2);

    /* Started, and the data disk detached: the volume documents carrying
     * "active" are rewritten, the data disk's goes, the others stay as they
     * were (same revision). */
    int64_t image_rev = rev_of(st, "uses/images/alpine/" VM1);
    free(s->disks[1].volume);
    s->disks[1].volume = NULL;
    s->n_disks = 1;
    json_t *want = vo_relations_of_vm(s, true);
    int64_t rev2 = 0;
    assert_int_equal(commit(st, "vms/" VM1, rev, "{\"v\":2}", have, want, &rev2), 0);
    assert_true(rev2 > rev);
    assert_int_equal(rev_of(st, "uses/volumes/fast/data/" VM1), -1);
    assert_int_equal(rev_of(st, "uses/volumes/default/web/" VM1), rev2);
    assert_int_equal(rev_of(st, "uses/images/alpine/" VM1), image_rev);
    assert_int_equal(vo_relations_volume_user(st, "default/web", &u), 1);
    assert_true(u.active);
    vo_relation_user_clear(&u);

    /* A stale writer (the revision before) changes nothing. */
    json_t *none = json_object();
    VoRelationsTxn stale = { .vm_key = "vms/" VM1, .vm_rev = rev, .delete_vm = true,
                             .have = want, .want = none };
    assert_int_equal(vo_relations_commit(st, &stale, NULL), -ESTALE);
    assert_int_equal(rev_of(st, "uses/volumes/default/web/" VM1), rev2);

    /* The delete: its document, its relations and what is kept for it, in
     * one transaction (one revision); the other VM's stay. */
    assert_int_equal(vo_store_put(st, "snapshots/" VM1 "/s1", "{}", VO_REV_NEW, NULL), 0);
    assert_int_equal(vo_store_put(st, "backup-base/" VM1, "{}", VO_REV_NEW, NULL), 0);
    char *also[] = { "snapshots/" VM1 "/s1", "backup-base/" VM1, "snapshot-current/" VM1, NULL };
    VoRelationsTxn del = { .vm_key = "vms/" VM1, .vm_rev = rev2, .delete_vm = true,
                           .have = want, .want = none, .also_delete = also };
    int64_t before = 0, after = 0;
    assert_int_equal(st->ops->revision(st, &before), 0);
    assert_int_equal(vo_relations_commit(st, &del, NULL), 0);
    assert_int_equal(st->ops->revision(st, &after), 0);
    assert_int_equal(after, before + 1);
    assert_int_equal(rev_of(st, "vms/" VM1), -1);
    assert_int_equal(rev_of(st, "snapshots/" VM1 "/s1"), -1);
    assert_int_equal(rev_of(st, "backup-base/" VM1), -1);
    assert_int_equal(vo_relations_volume_user(st, "default/web", &u), 0);
    assert_int_equal(vo_relations_image_users(st, "alpine"), 1);
    assert_int_equal(vo_relations_network_user(st, "lan", &u), 1);
    assert_string_equal(u.name, "db");
    vo_relation_user_clear(&u);

    /* By VM: what the start-up rebuild starts from. */
    json_t *by = NULL;
    assert_int_equal(vo_relations_by_vm(st, &by), 0);
    assert_int_equal(json_object_size(by), 1);
    assert_int_equal(json_object_size(json_object_get(by, VM2)), json_object_size(have2));
    json_decref(by);

    /* Relations of a VM whose document is absent go with a compare on that. */
    VoRelationsTxn orphan = { .vm_key = "vms/" VM2, .vm_rev = VO_REV_NEW, .have = have2,
                              .want = none };
    assert_int_equal(vo_relations_commit(st, &orphan, NULL), -EEXIST); /* it exists */
    assert_int_equal(vo_store_delete(st, "vms/" VM2, VO_REV_ANY), 0);
    assert_int_equal(vo_relations_commit(st, &orphan, NULL), 0);
    assert_int_equal(vo_relations_image_users(st, "alpine"), 0);
    json_decref(none);
    json_decref(have);
    json_decref(have2);
    json_decref(want);
}

/* A shared volume: its running VM is named, whichever VM comes first. */
static void test_active_user_first(void **state)
{
    Fixture *f = *state;
    _cleanup_vm_spec_ VoVmSpec *s1 = make_spec(VM1, "stopped");
    _cleanup_vm_spec_ VoVmSpec *s2 = make_spec(VM2, "running");
    json_t *r1 = vo_relations_of_vm(s1, false), *r2 = vo_relations_of_vm(s2, true);
    assert_int_equal(commit(f->store, "vms/" VM1, VO_REV_NEW, "{}", NULL, r1, NULL), 0);
    VoRelationUser u;
    assert_int_equal(vo_relations_volume_user(f->store, "fast/data", &u), 1);
    assert_string_equal(u.name, "stopped");
    assert_false(u.active);
    vo_relation_user_clear(&u);
    assert_int_equal(commit(f->store, "vms/" VM2, VO_REV_NEW, "{}", NULL, r2, NULL), 0);
    assert_int_equal(vo_relations_volume_user(f->store, "fast/data", &u), 1);
    assert_string_equal(u.name, "running");
    assert_true(u.active);
    vo_relation_user_clear(&u);
    json_decref(r1);
    json_decref(r2);
}

/* Name claims: created with the VM's first document (one VM per name: a
 * second VM's transaction fails -ENOTUNIQ and writes nothing), moved by a
 * rename in one transaction, freed with the VM's delete. */
static void test_name_claims(void **state)
{
    Fixture *f = *state;
    _cleanup_free_ char *k1 = vo_key_vm(VM1), *k2 = vo_key_vm(VM2);
    _cleanup_free_ char *claim = vo_key_vm_name("web"), *other = vo_key_vm_name("db");
    assert_string_equal(claim, "cluster/names/vms/web");
    json_t *none = json_object();
    VoRelationsTxn t1 = { .vm_key = k1, .vm_rev = VO_REV_NEW, .vm_doc = "{\"n\":1}",
                          .have = none, .want = none, .claim_key = claim,
                          .claim_value = "{\"host\":\"h1\",\"vm\":\"" VM1 "\"}" };
    int64_t rev1 = 0;
    assert_int_equal(vo_relations_commit(f->store, &t1, &rev1), 0);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(vo_store_get(f->store, claim, &text, NULL), 0);
    assert_non_null(strstr(text, VM1));

    /* Another VM of the same name: refused as a name conflict, nothing of
     * it written. */
    VoRelationsTxn t2 = { .vm_key = k2, .vm_rev = VO_REV_NEW, .vm_doc = "{\"n\":2}",
                          .have = none, .want = none, .claim_key = claim,
                          .claim_value = "{\"host\":\"h2\",\"vm\":\"" VM2 "\"}" };
    assert_int_equal(vo_relations_commit(f->store, &t2, NULL), -ENOTUNIQ);
    assert_int_equal(vo_store_get(f->store, k2, NULL, NULL), -ENOENT);
    /* Its own document's compare failing is still -EEXIST, not a name. */
    t1.claim_key = other;
    assert_int_equal(vo_relations_commit(f->store, &t1, NULL), -EEXIST);
    assert_int_equal(vo_store_get(f->store, other, NULL, NULL), -ENOENT);

    /* A rename: the new name claimed, the old one freed, at once. */
    VoRelationsTxn rename = { .vm_key = k1, .vm_rev = rev1, .vm_doc = "{\"n\":3}",
                              .have = none, .want = none, .claim_key = other,
                              .claim_value = "{}", .release_key = claim };
    int64_t rev2 = 0;
    assert_int_equal(vo_relations_commit(f->store, &rename, &rev2), 0);
    assert_int_equal(vo_store_get(f->store, claim, NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(f->store, other, NULL, NULL), 0);
    /* Now the first name is free for the other VM. */
    assert_int_equal(vo_relations_commit(f->store, &t2, NULL), 0);

    /* A delete frees the name with the document (also_delete). */
    char *also[] = { other, NULL };
    VoRelationsTxn del = { .vm_key = k1, .vm_rev = rev2, .delete_vm = true, .have = none,
                           .want = none, .also_delete = also };
    assert_int_equal(vo_relations_commit(f->store, &del, NULL), 0);
    assert_int_equal(vo_store_get(f->store, other, NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(f->store, k1, NULL, NULL), -ENOENT);
    json_decref(none);
}

/* Joining a group is compared on the group's document: a change of it (a
 * delete's mark) or its going fails the VM's write with -EIDRM, nothing of
 * it written; with the name claim in the same transaction too. */
static void test_group_join_compared(void **state)
{
    Fixture *f = *state;
    _cleanup_free_ char *k1 = vo_key_vm(VM1), *claim = vo_key_vm_name("g1");
    const char *group = "cluster/groups/web";
    int64_t grev = 0, marked = 0;
    assert_int_equal(vo_store_put(f->store, group, "{\"name\":\"web\"}", VO_REV_NEW, &grev), 0);
    json_t *none = json_object(), *want = json_object();
    json_object_set_new(want, "cluster/group-members/web/" VM1, json_string("{\"vm\":1}"));
    /* Marked meanwhile: refused. */
    assert_int_equal(vo_store_put(f->store, group, "{\"deleting\":true}", grev, &marked), 0);
    VoRelationsTxn t = { .vm_key = k1, .vm_rev = VO_REV_NEW, .have = none, .want = want,
                         .claim_key = claim, .claim_value = "{}", .group_key = group,
                         .group_rev = grev };
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), -EIDRM);
    assert_int_equal(vo_store_get(f->store, "cluster/group-members/web/" VM1, NULL, NULL),
                     -ENOENT);
    assert_int_equal(vo_store_get(f->store, claim, NULL, NULL), -ENOENT);
    /* Gone: refused too. */
    assert_int_equal(vo_store_delete(f->store, group, marked), 0);
    t.group_rev = marked;
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), -EIDRM);
    /* As read: joined. */
    assert_int_equal(vo_store_put(f->store, group, "{\"name\":\"web\"}", VO_REV_NEW, &grev), 0);
    t.group_rev = grev;
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), 0);
    assert_int_equal(vo_store_get(f->store, "cluster/group-members/web/" VM1, NULL, NULL), 0);
    assert_int_equal(vo_store_get(f->store, claim, NULL, NULL), 0);
    /* The name claim's failure is still told as such with a group compare. */
    _cleanup_free_ char *k2 = vo_key_vm(VM2);
    t.vm_key = k2;
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), -ENOTUNIQ);
    json_decref(none);
    json_decref(want);
}

/* The short claims a write rests on (a MAC's: daemon/mac-claims.h),
 * compared at the revisions they were made: one gone (its lease lapsed)
 * or made again by another fails the VM's write with VO_RELATIONS_ECLAIM,
 * nothing of it written; as made, the write commits. */
static void test_claims_confirmed(void **state)
{
    Fixture *f = *state;
    _cleanup_free_ char *k1 = vo_key_vm(VM1), *name = vo_key_vm_name("m1");
    const char *mac = "cluster/claims/macs/52:54:00:0c:1a:4e";
    int64_t made = 0, again = 0;
    assert_int_equal(vo_store_put(f->store, mac, "{\"vm\":\"m1\"}", VO_REV_NEW, &made), 0);
    json_t *none = json_object();
    VoStoreCompare claims[] = { { .key = mac, .expected_rev = made } };
    VoRelationsTxn t = { .vm_key = k1, .vm_rev = VO_REV_NEW, .vm_doc = "{}", .have = none,
                         .want = none, .claim_key = name, .claim_value = "{}",
                         .claim_cmps = claims, .n_claim_cmps = 1 };
    /* Lapsed: gone. */
    assert_int_equal(vo_store_delete(f->store, mac, made), 0);
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), VO_RELATIONS_ECLAIM);
    assert_int_equal(vo_store_get(f->store, k1, NULL, NULL), -ENOENT);
    assert_int_equal(vo_store_get(f->store, name, NULL, NULL), -ENOENT);
    /* Lapsed and taken by another since. */
    assert_int_equal(vo_store_put(f->store, mac, "{\"vm\":\"m2\"}", VO_REV_NEW, &again), 0);
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), VO_RELATIONS_ECLAIM);
    assert_int_equal(vo_store_get(f->store, k1, NULL, NULL), -ENOENT);
    /* As made: written. */
    claims[0].expected_rev = again;
    assert_int_equal(vo_relations_commit(f->store, &t, NULL), 0);
    assert_int_equal(vo_store_get(f->store, k1, NULL, NULL), 0);
    json_decref(none);
}

/* The MAC index (daemon/mac-claims.h): a claim on a lease, compared in the
 * VM's write that puts it again as the VM's, stays when the lease goes
 * (revoked: the claim's end), and goes with the VM's delete. Keys are
 * lower case. */
static void test_mac_claim_made_the_vms(void **state)
{
    Fixture *f = *state;
    _cleanup_free_ char *k1 = vo_key_vm(VM1);
    _cleanup_vm_spec_ VoVmSpec *s = make_spec(VM1, "web");
    free(s->nics[1].mac);
    s->nics[1].mac = vo_strdup("52:54:00:0C:1A:4E");
    const char *key = "cluster/claims/macs/52:54:00:0c:1a:4e";
    json_t *macs = json_object();
    vo_relations_add_macs(macs, s);
    assert_int_equal(json_object_size(macs), 4);
    json_t *doc = doc_of(macs, key);
    assert_string_equal(json_string_value(json_object_get(doc, "vm")), "web");
    assert_string_equal(json_string_value(json_object_get(doc, "vm_id")), VM1);
    json_decref(doc);
    json_t *want = json_object();
    json_object_set(want, key, json_object_get(macs, key));

    int64_t lease = 0, made = 0;
    assert_int_equal(f->store->ops->lease_grant(f->store, 30000, &lease), 0);
    assert_int_equal(vo_store_put_lease(f->store, key, "{\"vm\":\"web\"}", VO_REV_NEW, lease,
                                        &made), 0);
    VoStoreCompare claims[] = { { .key = key, .expected_rev = made } };
    json_t *none = json_object();
    VoRelationsTxn t = { .vm_key = k1, .vm_rev = VO_REV_NEW, .vm_doc = "{}", .have = none,
                         .want = want, .claim_cmps = claims, .n_claim_cmps = 1 };
    int64_t rev = 0;
    assert_int_equal(vo_relations_commit(f->store, &t, &rev), 0);
    assert_int_equal(f->store->ops->lease_revoke(f->store, lease), 0);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(vo_store_get(f->store, key, &text, NULL), 0);
    assert_string_equal(text, json_string_value(json_object_get(macs, key)));
    /* The VM's delete: gone with it. */
    VoRelationsTxn del = { .vm_key = k1, .vm_rev = rev, .delete_vm = true, .have = want,
                           .want = none };
    assert_int_equal(vo_relations_commit(f->store, &del, NULL), 0);
    assert_int_equal(vo_store_get(f->store, key, NULL, NULL), -ENOENT);
    json_decref(none);
    json_decref(want);
    json_decref(macs);
}

/* A project's quota under interleaved changes (state/project-usage.h with
 * the transaction above): two VMs checked against the same last slot both
 * pass the check, the first to commit wins and the second's transaction
 * fails (-EXDEV), and its check again refuses it naming the quota; a
 * project deleted between a check and its commit fails the commit; a
 * delete compared on the project as read fails after a create. This is
 * the interleaving two hosts of a cluster make (one host serialises its
 * own creates under its registry lock). */

static void put_project(VoStore *s, const char *name, const char *doc)
{
    _cleanup_free_ char *key = vo_key_project(name);
    assert_int_equal(vo_store_put(s, key, doc, VO_REV_NEW, NULL), 0);
}

/* The usage documents VM id in project would have ({key: text}). */
static json_t *usage_of(const char *id, const char *project, unsigned vcpus)
{
    VoVmSpec spec = { .id = (char *)id, .name = (char *)id, .vcpus = vcpus,
                      .max_vcpus = vcpus, .memory_mib = 64, .max_memory_mib = 64,
                      .project = (char *)project };
    json_t *want = json_object();
    vo_relations_add_project(want, &spec, "host-a", 0);
    return want;
}

static int commit_usage(VoStore *s, const char *id, json_t *want, const VoProjectGuard *g)
{
    _cleanup_free_ char *key = vo_key_vm(id);
    VoRelationsTxn t = { .vm_key = key, .vm_rev = VO_REV_NEW, .vm_doc = "{}", .want = want,
                         .project_key = g->key, .project_doc = g->doc,
                         .project_rev = g->rev };
    return vo_relations_commit(s, &t, NULL);
}

static const VoQuota none = { 0 };
static const VoQuota one_vm = { .vcpus = 1, .memory_mib = 64, .vms = 1 };

static void test_last_slot_taken_once(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "p", "{\"quotas\":{\"vms\":1}}");
    VoProjectGuard g1 = { 0 }, g2 = { 0 };
    char *error = NULL;
    /* Both checked before either commits: both fit. */
    assert_int_equal(vo_project_check(f->store, "p", VM1, &none, &one_vm, &g1, &error), 0);
    assert_int_equal(vo_project_check(f->store, "p", VM2, &none, &one_vm, &g2, &error), 0);
    json_t *w1 = usage_of(VM1, "p", 1), *w2 = usage_of(VM2, "p", 1);
    assert_int_equal(commit_usage(f->store, VM1, w1, &g1), 0);
    /* The second was checked against a use that is no more. */
    assert_int_equal(commit_usage(f->store, VM2, w2, &g2), -EXDEV);
    vo_project_guard_clear(&g2);
    assert_int_equal(vo_project_check(f->store, "p", VM2, &none, &one_vm, &g2, &error),
                     -VO_EQUOTA);
    assert_string_equal(error, "project 'p': quota vms is 1 (1 in use); this needs 1");
    free(error);
    VoProjectUsage u = { .vms = json_array() };
    assert_int_equal(vo_project_usage_read(f->store, "p", &u), 0);
    assert_int_equal(u.used.vms, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(u.vms, 0), "vm")), VM1);
    json_decref(u.vms);
    vo_project_guard_clear(&g1);
    vo_project_guard_clear(&g2);
    json_decref(w1);
    json_decref(w2);
}

/* The disk figure: written in the usage document, read back as a VM
 * loaded, moved or migrated in gets it (the spec holds no sizes), and two
 * disk growths checked at once against the room for one: one commits. */
static void test_disk_figure(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "p", "{\"quotas\":{\"disk_bytes\":5000}}");
    VoVmSpec spec = { .id = (char *)VM1, .name = (char *)VM1, .vcpus = 1, .max_vcpus = 1,
                      .memory_mib = 64, .max_memory_mib = 64, .project = (char *)"p" };
    json_t *w1 = json_object();
    vo_relations_add_project(w1, &spec, "host-a", 3000);
    assert_int_equal(vo_project_usage_disk_in(w1), 3000);
    json_t *old = json_pack("{s:s}", "cluster/project-usage/p/" VM1,
                            "{\"vm\":\"" VM1 "\",\"vcpus\":1,\"memory_mib\":64}");
    assert_int_equal(vo_project_usage_disk_in(old), -1); /* from before disk quotas */
    json_decref(old);
    VoQuota grown = one_vm;
    grown.disk_bytes = 3000;
    VoProjectGuard g1 = { 0 }, g2 = { 0 };
    char *error = NULL;
    assert_int_equal(vo_project_check(f->store, "p", VM1, &none, &grown, &g1, &error), 0);
    assert_int_equal(vo_project_check(f->store, "p", VM2, &none, &grown, &g2, &error), 0);
    assert_int_equal(commit_usage(f->store, VM1, w1, &g1), 0);
    assert_int_equal(vo_project_usage_disk_stored(f->store, "p", VM1), 3000);
    assert_int_equal(vo_project_usage_disk_stored(f->store, "p", VM2), 0);
    assert_int_equal(vo_project_usage_disk_stored(f->store, "other", VM1), 0);
    spec.id = spec.name = (char *)VM2;
    json_t *w2 = json_object();
    vo_relations_add_project(w2, &spec, "host-a", 3000);
    assert_int_equal(commit_usage(f->store, VM2, w2, &g2), -EXDEV);
    vo_project_guard_clear(&g2);
    assert_int_equal(vo_project_check(f->store, "p", VM2, &none, &grown, &g2, &error),
                     -VO_EQUOTA);
    assert_string_equal(error, "project 'p': quota disk_bytes is 5000 (3000 in use); "
                        "this needs 3000");
    free(error);
    VoProjectUsage u = { 0 };
    assert_int_equal(vo_project_usage_read(f->store, "p", &u), 0);
    assert_int_equal(u.used.disk_bytes, 3000);
    vo_project_guard_clear(&g1);
    vo_project_guard_clear(&g2);
    json_decref(w1);
    json_decref(w2);
}

static void test_project_deleted_between(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "gone", "{\"quotas\":{}}");
    VoProjectGuard g = { 0 };
    char *error = NULL;
    assert_int_equal(vo_project_check(f->store, "gone", VM1, &none, &one_vm, &g, &error), 0);
    /* A delete that read the project (and no usage) before the commit. */
    _cleanup_free_ char *key = vo_key_project("gone");
    assert_int_equal(vo_store_delete(f->store, key, g.rev), 0);
    json_t *w = usage_of(VM1, "gone", 1);
    assert_int_equal(commit_usage(f->store, VM1, w, &g), -EXDEV);
    vo_project_guard_clear(&g);
    assert_int_equal(vo_project_check(f->store, "gone", VM1, &none, &one_vm, &g, &error),
                     -ENOENT);
    assert_non_null(strstr(error, "project 'gone' does not exist"));
    free(error);
    json_decref(w);
}

static void test_delete_after_a_create_fails(void **state)
{
    Fixture *f = *state;
    put_project(f->store, "busy", "{\"quotas\":{}}");
    json_t *doc = NULL;
    int64_t read_rev = 0;
    char *error = NULL;
    /* The delete read the project first, then a create committed. */
    assert_int_equal(vo_project_read(f->store, "busy", &doc, &read_rev, &error), 0);
    json_decref(doc);
    VoProjectGuard g = { 0 };
    assert_int_equal(vo_project_check(f->store, "busy", VM1, &none, &one_vm, &g, &error), 0);
    json_t *w = usage_of(VM1, "busy", 1);
    assert_int_equal(commit_usage(f->store, VM1, w, &g), 0);
    _cleanup_free_ char *key = vo_key_project("busy");
    assert_int_equal(vo_store_delete(f->store, key, read_rev), -ESTALE);
    vo_project_guard_clear(&g);
    json_decref(w);
}

static void test_default_without_document(void **state)
{
    Fixture *f = *state;
    VoProjectGuard g = { 0 };
    char *error = NULL;
    /* "default" has no document until its quotas are set: unlimited, and
     * the commit compares it absent (a quota set meanwhile is seen). */
    assert_int_equal(vo_project_check(f->store, "default", VM1, &none, &one_vm, &g, &error), 0);
    assert_null(g.doc);
    assert_int_equal(g.rev, VO_REV_NEW);
    put_project(f->store, "default", "{\"quotas\":{\"vms\":0}}");
    json_t *w = usage_of(VM1, NULL, 1);
    assert_int_equal(commit_usage(f->store, VM1, w, &g), -EXDEV);
    vo_project_guard_clear(&g);
    assert_int_equal(vo_project_check(f->store, "default", VM1, &none, &one_vm, &g, &error),
                     -VO_EQUOTA);
    free(error);
    json_decref(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_last_slot_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_deleted_between, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_after_a_create_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_without_document, setup, teardown),
        cmocka_unit_test(test_of_vm),
        cmocka_unit_test_setup_teardown(test_commit_and_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_active_user_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_figure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_join_compared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_confirmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mac_claim_made_the_vms, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
