/* daemon.h: the state vireod shares between its HTTP threads, task workers
 * and event loop.
 *
 * Services (docs/internals.md, Layers): task < volume (and pool) < image <
 * network < vm < snapshot < backup. A service's files may include those of
 * the services before it, never after (scripts/check-service-cycles.py,
 * run by the unit tests, fails on a cycle). What a lower service needs to
 * know of a higher one is in the store: which VM uses a volume, network or
 * image is recorded in relation documents (state/relations.h) written in
 * the same transaction as the VM's document.
 *
 * Lock order (a thread holding one may take only those after it):
 *   vm->job  →  d->vms_lock  →  vm->lock
 * The task registry's lock (VoTasks' ts->lock, jobs/tasks.c) comes after
 * all of these (a submit may run under a VM's job lock, say) and takes none
 * of them, only the store's lock (operation documents are written under it):
 *   ... → ts->lock → the store's lock
 * What it calls back (a task's work, a cancelled task's undo) runs with it
 * released.
 * d->storage_lock and d->networks_lock are leaves: held only while their
 * lists are read or changed, never while another of these locks is taken or
 * slow work (qemu-img, a task, a VM lookup) runs. Under them a store write
 * (the store's own lock is a leaf too), a directory listing, or a fork of
 * dnsmasq may happen: short, and they take none of these locks. A VM's
 * document and its relations are written under vm->lock (sometimes with
 * d->vms_lock held too); the volume and network services read the relations
 * holding none of these locks, or only their own leaf.
 *
 * A rule that spans two objects (a linked clone's base is never attached; a
 * non-shareable volume has one VM; a network with a NIC is not deleted; one
 * image name has one build) is kept by a claim, not by holding two locks: the
 * operation first marks the object under the lock that owns it (a volume's
 * busy or attaching, a network's attaching or deleting, a VM's deleting, an
 * image name in images_building), then checks the other object, then does
 * the long work and drops the mark once the relation is recorded (the VM's
 * transaction wrote its relation documents) or the operation failed. The
 * other operation sees the mark, or, when it comes later, the recorded
 * relation, and is refused with a 409. A VM being created has its relations
 * written when it is registered, before the claims on its networks are
 * dropped, so it counts as a user from then on. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "cluster/cluster-config.h"
#include "cluster/peer-client.h"
#include "conf/vm-spec.h"
#include "daemon/loop.h"
#include "hypervisor/driver.h"
#include "jobs/tasks.h"
#include "state/store.h"

typedef struct VoVm VoVm;
typedef struct VoPool VoPool;
typedef struct VoVolume VoVolume;
typedef struct VoNetwork VoNetwork;
typedef struct VoHosts VoHosts;
typedef struct VoClusterRuntime VoClusterRuntime;

typedef struct VoDaemon {
    char *state_dir;
    char *run_dir;
    char *socket_path;
    char *host_id;      /* STATE/host-id */
    char *host_name;    /* --name, default the hostname */
    char *host_address; /* the host's cluster address; NULL when standalone */
    char *web_dir;      /* the web UI's files (--web-dir, api/web-files.c); NULL: none */
    int64_t event_history; /* --event-history: changes the SQLite store keeps; 0: default */
    VoHosts *hosts;     /* daemon/hosts.h */
    /* Cluster mode (daemon/cluster.h); all NULL/empty when standalone. */
    VoClusterConfig *cluster;  /* STATE/cluster/cluster.json */
    VoStore *cluster_store;    /* raw etcd handle: "h/<host-id>/...", "cluster/..." */
    VoPeerTls peer_tls;        /* STATE/cluster/{host.crt,host.key,ca.crt} */
    VoClusterRuntime *cluster_rt; /* the etcd member's supervision, re-exec */
    /* DRS is not off (daemon/drs.h reads cluster/drs each round): the host
     * record, with its VMs' load, is published at least every
     * VO_HOST_DRS_REFRESH_MS (hosts.h). */
    atomic_bool drs_sampling;
    VoStore *store; /* the host's documents: SQLite, or the etcd host handle */
    VoLoop *loop;
    VoTasks *tasks;
    VoHvDriver *driver;
    char *hv_version; /* the driver's ->version, read once at start, or NULL */
    VoHostLimits limits;
    pthread_mutex_t vms_lock; /* protects vms/n_vms (the registry, not the VMs) */
    VoVm **vms;
    size_t n_vms;
    pthread_mutex_t storage_lock; /* protects pools and volumes */
    VoPool **pools;
    size_t n_pools;
    VoVolume **volumes;
    size_t n_volumes;
    char **images_building; /* image names a build or import holds (storage_lock) */
    pthread_mutex_t networks_lock; /* protects networks and their fields */
    VoNetwork **networks;
    size_t n_networks;
} VoDaemon;
