/* cluster-view.h: what a host reads of the other hosts of its cluster, for
 * "any door" (docs/internals.md): their member documents (name, API
 * address), whether their live record is there (online), and their own
 * documents through the raw etcd handle (d->cluster_store, keys
 * h/<host-id>/...): where a VM or task lives, their VMs and tasks. Shared
 * infrastructure: it calls no service. Standalone (no cluster_store) there
 * are no other hosts: the lookups find nothing. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "daemon/daemon.h"

/* The name of the member host_id (malloc'd), or NULL when unknown. */
char *vo_host_name_of(VoDaemon *d, const char *host_id);

typedef struct {
    char *id;
    char *name;
    char *url;   /* its HTTPS API, NULL when its member document has no address */
    bool online; /* its live record (lease-bound) is there */
    unsigned principal_members; /* the optional members of X-Vireo-Principal it
                                 * understands, as its live record says
                                 * (api/access.h; 0: an older host, or offline) */
} VoClusterHost;
void vo_cluster_host_clear(VoClusterHost *h);

/* The member host_id: 0, -ENOENT, or the store's error. */
int vo_cluster_host_get(VoDaemon *d, const char *host_id, VoClusterHost *ret);
/* The member named (or with the id) name: 0, -ENOENT, or the store's error. */
int vo_cluster_host_find(VoDaemon *d, const char *name, VoClusterHost *ret);

/* Where a VM this host does not have lives: by name (its claim,
 * cluster/names/vms/<name>) or by id (the other hosts' documents). 1 with
 * *ret_host (its host id) and *ret_doc (its document, or NULL while it is
 * being created) malloc'd; 0 when no other host has it; or the store's
 * error. */
int vo_cluster_locate_vm(VoDaemon *d, const char *name_or_id, char **ret_host, char **ret_doc);
/* The host of another host's task (its operation document): 1 with
 * *ret_host and *ret_doc (the document; ret_doc may be NULL) malloc'd, 0,
 * or the store's error. */
int vo_cluster_locate_task(VoDaemon *d, const char *id, char **ret_host, char **ret_doc);

/* Appends the VMs of the other hosts (or only of the host with id only_host,
 * when not NULL) to arr, from their documents (vo_vm_doc_to_api: "host",
 * "host_state"). 0 or the store's error. The hosts' live records, read
 * once for their state, are handed out in *ret_records ({host id: record},
 * every host's, this one's too; NULL standalone or on an error) when
 * ret_records is not NULL: what else the list shows of them
 * (vo_post_copy_paused_add) needs no read of its own. */
int vo_cluster_add_vms(VoDaemon *d, bool summary, const char *only_host, json_t *arr,
                       json_t **ret_records);
/* Several hosts may have their own pool of one name: a volume of such a
 * pool is on the hosts whose documents hold it (h/<host>/volumes/POOL/NAME).
 * The id of the one host that holds every volume of keys ("POOL/NAME";
 * NULL entries skipped) not in a shared pool (malloc'd); NULL when none
 * is named, when no host or several hold one, or the store cannot be read
 * (placement and the chosen host's checks answer then). */
char *vo_cluster_own_volumes_host(VoDaemon *d, const char *const *keys, size_t n);
/* Appends the other hosts' tasks (their operation documents, with "host"). */
int vo_cluster_add_tasks(VoDaemon *d, json_t *arr);

/* Calls fn on every document under h/<host>/<sub>/ of each other host (its
 * key's last part, value), with the host (name, url, online). fn returns 0
 * or -errno to stop. 0, fn's error or the store's. Standalone: nothing. */
typedef int (*VoClusterDocFn)(const VoClusterHost *h, const char *name, const char *value,
                              void *userdata);
int vo_cluster_each_doc(VoDaemon *d, const char *sub, VoClusterDocFn fn, void *userdata);
/* The same on the hosts that have no document mark_prefix<host-id> (one
 * read each): those whose documents an index stands for (the MAC index's
 * cluster/mac-indexed/, daemon/mac-claims.h). */
int vo_cluster_each_doc_unmarked(VoDaemon *d, const char *mark_prefix, const char *sub,
                                 VoClusterDocFn fn, void *userdata);
