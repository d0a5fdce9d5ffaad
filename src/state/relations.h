/* relations.h: which VM uses which volume, network and image, recorded as
 * documents in the store so that the services below the VM (volumes,
 * images, networks) answer "is it in use, by whom" without calling the VM
 * code.
 *
 * Keys (one document per object and VM; see docs/internals.md):
 *   uses/volumes/<pool>/<volume>/<vm-id>  {"vm", "name", "active"}
 *   uses/networks/<network>/<vm-id>       {"vm", "name", "active", "macs": [...]}
 *   uses/images/<image>/<vm-id>           {"vm", "name"}
 * A volume is used by a disk or by the kernel or initrd booted from it; an
 * image by a VM created from it or booting its kernel or initrd; a network
 * by a NIC on it ("user" networking is no network). "active": the VM is
 * starting, running, paused or stopping.
 *
 * The VM service writes them in the same transaction as the VM's document
 * (vo_relations_commit, compared on the VM document's revision), so they
 * change exactly when the definition does. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "conf/vm-spec.h"
#include "state/store.h"

/* The relation documents spec implies: a JSON object mapping each key to
 * the document's text (compact with sorted keys, so equal texts are equal
 * documents). */
json_t *vo_relations_of_vm(const VoVmSpec *spec, bool active);
/* Adds to want the VM's group member document, when it is in a group:
 * cluster/group-members/<group>/<vm-id> {"vm","name","host"} (a document
 * of the whole cluster, daemon/groups.h), host_id the host that holds it. */
void vo_relations_add_group(json_t *want, const VoVmSpec *spec, const char *host_id);
/* Adds to want the VM's usage document in its project:
 * cluster/project-usage/<project>/<vm-id> {"vm","name","host","vcpus",
 * "memory_mib","disk_bytes"}, the vCPUs and memory it may grow to (its
 * maximums) and disk_bytes, the virtual sizes of its disks (which the spec
 * does not hold: the VM service keeps the figure, daemon/vms.c). */
void vo_relations_add_project(json_t *want, const VoVmSpec *spec, const char *host_id,
                              int64_t disk_bytes);

/* Adds to want the VM's MAC index documents: for each NIC's MAC,
 * cluster/claims/macs/<mac> {"vm": name, "vm_id": id} (state/keys.h), the
 * claim made permanent. The VM service writes only those it claimed or
 * holds already (daemon/mac-claims.h). */
void vo_relations_add_macs(json_t *want, const VoVmSpec *spec);

/* One transaction on a VM: its document compared at vm_rev (VO_REV_NEW: it
 * must not exist), then: vm_doc put (NULL: left as it is) or, with
 * delete_vm, the document deleted; the documents of want whose text differs
 * from have put, those of have not in want deleted; every key of
 * also_delete (NULL-terminated, may be NULL) deleted. Returns 0 and the
 * store's revision after it, or the store's error (-ESTALE, -ENOENT,
 * -EEXIST when the VM document is not as expected).
 * The VM's name claim (cluster/names/vms/<name>, keys.h) goes in the same
 * transaction: claim_key (may be NULL) is created with claim_value and
 * must not exist (-ENOTUNIQ when another VM holds it); release_key (may be
 * NULL) is deleted (the old name of a rename).
 * group_key (may be NULL): the document of the group the VM joins
 * (cluster/groups/<g>), compared at group_rev (the revision read, not
 * marked deleting): -EIDRM when it changed or went meanwhile (a delete of
 * the group marked it; daemon/groups.h).
 * project_key (may be NULL): the document of the project whose quota the
 * change was checked against (cluster/projects/<p>), compared at
 * project_rev (VO_REV_NEW: it must not exist) and, when project_doc is
 * set, put again, so that every change checked against the same project
 * is serialised: -EXDEV when it changed meanwhile (check again).
 * object_cmps (n_object_cmps, may be 0): the documents of the volumes and
 * networks it comes to use, as the project check read them
 * (state/project-objects.h): VO_RELATIONS_EOBJECT when one changed or a
 * move of one began meanwhile (check again).
 * claim_cmps (n_claim_cmps, may be 0): short claims the change rests on (a
 * MAC address's: daemon/mac-claims.h) at the revisions they were made:
 * VO_RELATIONS_ECLAIM when one is gone or another's (its lease lapsed). */
#define VO_RELATIONS_EOBJECT (-ENOLINK)
#define VO_RELATIONS_ECLAIM (-EKEYEXPIRED)
typedef struct {
    const char *vm_key;
    int64_t vm_rev;
    const char *vm_doc;
    bool delete_vm;
    json_t *have, *want;
    char *const *also_delete;
    const char *claim_key, *claim_value, *release_key;
    const char *group_key;
    int64_t group_rev;
    const char *project_key, *project_doc;
    int64_t project_rev;
    const VoStoreCompare *object_cmps;
    size_t n_object_cmps;
    const VoStoreCompare *claim_cmps;
    size_t n_claim_cmps;
} VoRelationsTxn;
int vo_relations_commit(VoStore *s, const VoRelationsTxn *t, int64_t *ret_rev);

/* Every relation document in the store, by VM: {vm_id: {key: text}}. */
int vo_relations_by_vm(VoStore *s, json_t **ret);

/* A VM using an object. */
typedef struct {
    char *vm_id;
    char *name;
    bool active;
} VoRelationUser;
void vo_relation_user_clear(VoRelationUser *u);
/* A VoStoreListFn over relation documents {"vm","name","active"} into a
 * VoRelationUser: keeps the first user, or the first active one, and stops
 * the walk at an active one. */
int vo_relation_first_user(const char *key, const char *value, int64_t rev, void *userdata);

/* A VM using volume ("pool/name") or network: the first active one (in id
 * order), else the first; 1 with *ret filled, 0 when none uses it, or a
 * negative errno. */
int vo_relations_volume_user(VoStore *s, const char *volume, VoRelationUser *ret);
int vo_relations_network_user(VoStore *s, const char *network, VoRelationUser *ret);
/* How many VMs use image, or a negative errno. */
int vo_relations_image_users(VoStore *s, const char *image);
/* Every NIC on a vireo network, as [{"network", "mac", "name", "vm"}] (NULL on a
 * store error). */
json_t *vo_relations_network_nics(VoStore *s);
