/* keys.h: the store keys more than one daemon service names, in one place,
 * so that a service can write or delete another's per-VM documents without
 * calling (including) that service. The full key layout is in
 * docs/internals.md (Store, Key layout). Every function returns a malloc'd
 * key. */
#pragma once

#include <ctype.h>

#include "util/util.h"

/* A VM's document (the VM service). */
static inline char *vo_key_vm(const char *vm_id) { return vo_asprintf("vms/%s", vm_id); }

/* A VM name's claim, one per name in the store (on etcd: in the whole
 * cluster): {"vm": id, "host": host-id}, written in the transaction of the
 * VM's first document and deleted in its delete (state/relations.h). */
#define VO_KEY_VM_NAMES_PREFIX "cluster/names/vms/"
static inline char *vo_key_vm_name(const char *name)
{
    return vo_asprintf(VO_KEY_VM_NAMES_PREFIX "%s", name);
}

/* A MAC address's claim (daemon/mac-claims.h), one per MAC in the store
 * (on etcd: in the whole cluster), lower case: while a VM is being given
 * the MAC, {"host", "host_name", "vm": name} on a short lease; once the
 * VM's document holds it, {"vm": name, "vm_id": id} with no lease, written
 * and deleted with the VM's relations (state/relations.h), so that it is
 * the cluster's index of the MACs in use. */
#define VO_KEY_MAC_CLAIMS_PREFIX "cluster/claims/macs/"
/* A host's VMs' MACs are all in that index (written once its start-up
 * filled it in: daemon/mac-claims.h). */
#define VO_KEY_MAC_INDEXED_PREFIX "cluster/mac-indexed/"
static inline char *vo_key_mac_claim(const char *mac)
{
    char *key = vo_asprintf(VO_KEY_MAC_CLAIMS_PREFIX "%s", mac);
    for (char *c = key + sizeof(VO_KEY_MAC_CLAIMS_PREFIX) - 1; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return key;
}

/* Projects (daemon/projects.h, docs/projects.md): a project's document
 * (its quotas), and one usage document per VM in it, {"vm", "name",
 * "host", "vcpus", "memory_mib"}, written in the transaction of the VM's
 * document (state/relations.h); both of the whole cluster on etcd. */
#define VO_KEY_PROJECTS_PREFIX "cluster/projects/"
#define VO_KEY_PROJECT_USAGE_PREFIX "cluster/project-usage/"
/* Both of them, for one read of every project and its usage (GET
 * /v1/projects, projects-snapshot.c): a key of another kind starting so
 * ("cluster/project-...") would be read by every such list too. */
#define VO_KEY_PROJECTS_AND_USAGE_PREFIX "cluster/project"
static inline char *vo_key_project(const char *name)
{
    return vo_asprintf(VO_KEY_PROJECTS_PREFIX "%s", name);
}
static inline char *vo_key_project_usage_prefix(const char *name)
{
    return vo_asprintf(VO_KEY_PROJECT_USAGE_PREFIX "%s/", name);
}

/* A VM's snapshots (the snapshot service): one document per snapshot under
 * this prefix, and the one the disks are at. */
static inline char *vo_key_snapshots_prefix(const char *vm_id)
{
    return vo_asprintf("snapshots/%s/", vm_id);
}
static inline char *vo_key_snapshot_current(const char *vm_id)
{
    return vo_asprintf("snapshot-current/%s", vm_id);
}

/* The base of a VM's next incremental backup (the backup service). */
static inline char *vo_key_backup_base(const char *vm_id)
{
    return vo_asprintf("backup-base/%s", vm_id);
}

/* Relations (state/relations.h): which VM uses a volume ("pool/name"), a
 * network or an image. One document per VM and object; the prefixes list
 * every VM using the object. */
#define VO_KEY_USES_PREFIX "uses/"
static inline char *vo_key_uses_volume_prefix(const char *volume)
{
    return vo_asprintf("uses/volumes/%s/", volume);
}
static inline char *vo_key_uses_network_prefix(const char *network)
{
    return vo_asprintf("uses/networks/%s/", network);
}
static inline char *vo_key_uses_image_prefix(const char *image)
{
    return vo_asprintf("uses/images/%s/", image);
}

/* The task key of a VM's operations: a task on one of its objects queues
 * behind them (jobs/tasks.h). */
static inline char *vo_key_vm_task(const char *vm_id) { return vo_asprintf("vm/%s", vm_id); }
