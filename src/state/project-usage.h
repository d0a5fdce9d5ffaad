/* project-usage.h: a project's document and its VMs' usage documents in
 * the store (keys in state/keys.h; docs/projects.md): the quota check a
 * VM's save makes before it commits (its transaction then compares the
 * project's document: state/relations.h), and the reads of a project and
 * its usage. Unit-tested on SQLite (tests/unit/test-relations.c). */
#pragma once

#include <jansson.h>

#include "conf/quota.h"
#include "state/store.h"

/* The project's document a checked change is compared on (VoRelationsTxn's
 * project fields). */
typedef struct {
    char *key;
    char *doc; /* NULL: "default" without a document (compared absent) */
    int64_t rev;
} VoProjectGuard;
void vo_project_guard_clear(VoProjectGuard *g);

/* One VM's usage as its usage document says (all zeros for NULL). */
void vo_project_usage_of_doc(const char *text, VoQuota *ret);
/* The disk figure ("disk_bytes": the virtual sizes of its disks) of a VM's
 * usage document: among relations ({key: text}, as a VM's last written), or
 * as the store holds it (0 when it holds none). VM specs hold no disk
 * sizes, so a VM's figure is carried over from its last usage document
 * when it is loaded, moved or migrated in (daemon/vms.c). _in: -1 when
 * relations hold no usage document or one without the figure (written
 * before disk quotas: the VM's disks are then measured once). */
int64_t vo_project_usage_disk_in(json_t *relations);
int64_t vo_project_usage_disk_stored(VoStore *s, const char *project, const char *vm_id);
/* Checks VM vm_id's change in project from before to after (zeros: new in
 * it). 0 with *ret filled; -ENOENT (no such project), -VO_EQUOTA (over a
 * quota), or the store's error, with *ret_error saying so. */
int vo_project_check(VoStore *s, const char *project, const char *vm_id, const VoQuota *before,
                     const VoQuota *after, VoProjectGuard *ret, char **ret_error);
/* The words of the last refusal of vo_project_check on this thread (a
 * VM's save returns -VO_EQUOTA or -ENOENT with its words kept here), or
 * NULL (cleared at the start of each save). */
const char *vo_project_refusal(void);
void vo_project_set_refusal(char *words); /* takes words */

/* Adds the usage documents of host_id's VMs to relations ({vm_id: {key:
 * text}}, as vo_relations_by_vm): what the store holds of them. */
int vo_project_usage_of_host(VoStore *s, const char *host_id, json_t *relations);

/* Names: 0, or -EINVAL with words. -ENOENT with words saying how to make it. */
int vo_project_name_check(const char *name, char **ret_error);
int vo_project_not_found(const char *name, char **ret_error);
/* The project's document: 0 with *ret_doc (NULL for "default" without one)
 * and *ret_rev (VO_REV_NEW then), -ENOENT, or the store's error. */
int vo_project_read(VoStore *s, const char *name, json_t **ret_doc, int64_t *ret_rev,
                    char **ret_error);
/* The sum of a project's usage documents into u->used (zeroed first by the
 * caller), but except_vm's (the last segment of its key: a VM's id, or a
 * volume's usage name, project-objects.h); each VM {"vm","name","host"}
 * appended to u->vms and each volume or network {"kind","object","scope",
 * "host","disk_bytes"} to u->objects when those are arrays. volumes and
 * networks count the project's own on every host (a VM's disk that
 * follows its VM has no document of its own: not counted). */
typedef struct {
    const char *except_vm;
    VoQuota used;
    json_t *vms;
    json_t *objects;
    size_t volumes, networks;
} VoProjectUsage;
int vo_project_usage_read(VoStore *s, const char *name, VoProjectUsage *u);
/* Adds one usage document (key, value) to u, as vo_project_usage_read does. */
void vo_project_usage_add(VoProjectUsage *u, const char *key, const char *value);
