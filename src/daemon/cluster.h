/* cluster.h: vireod's cluster mode (docs/internals.md, "Cluster mode").
 *
 * At start (vo_cluster_open): STATE/cluster/cluster.json present → the host
 * is in a cluster: its etcd member (when it has one) is started or adopted
 * and supervised, d->store is the etcd host handle, d->cluster_store the raw
 * handle, d->peer_tls the host certificate; absent → SQLite, as always.
 *
 * Forming: vo_cluster_init (a one-host cluster), vo_cluster_join (this
 * standalone host into a cluster, through a member's vo_cluster_admit),
 * vo_cluster_leave, vo_cluster_host_remove. Each builds the new state in
 * STATE/cluster.new/cluster/ and commits it by one rename to STATE/cluster
 * (leave: moves STATE/cluster aside); a failure before that leaves the host
 * as it was, and what the attempt left is removed at the next start or
 * attempt. After the commit vireod re-executes itself once the reply is
 * sent (vo_cluster_reexec_after_reply): VMs keep running, as in any restart. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster/etcd-member.h"
#include "daemon/daemon.h"

#define VO_CLUSTER_STAGING "cluster.new"   /* STATE/cluster.new/cluster/... */
#define VO_CLUSTER_ETCD_PIDFILE "etcd.pid" /* RUN/etcd.pid */
#define VO_CLUSTER_MAX_VOTERS 3
/* How long vireod waits at start for its etcd member to be healthy. */
#define VO_CLUSTER_HEALTH_WAIT_MS 20000
/* How long a join waits for the new learner to be promoted. */
#define VO_CLUSTER_PROMOTE_MS 30000

/* ---- start and stop (cluster-start.c) ------------------------------------ */

/* Opens d->store: SQLite (standalone) or etcd (cluster mode, see above).
 * Removes what an unfinished init or join left. Needs d->host_id. 0, or
 * -errno with *ret_error. */
int vo_cluster_open(VoDaemon *d, char **ret_error);
/* On the event loop (once it exists): supervise the etcd member. */
void vo_cluster_watch(VoDaemon *d);
/* Closes the stores; the etcd member keeps running (like dnsmasq). */
void vo_cluster_close(VoDaemon *d);
/* The API listener of cluster mode: "ADDRESS:PORT" and the host's files;
 * false when standalone. */
bool vo_cluster_listen(VoDaemon *d, char **ret_listen);

/* The re-exec: once the current reply has gone out, vireod stops as on
 * SIGTERM and executes itself again with the same argv. */
void vo_cluster_reexec_after_reply(VoDaemon *d);
bool vo_cluster_reexec_wanted(VoDaemon *d);
/* Called by main after everything is released; returns only on failure. */
void vo_cluster_reexec(char **argv);

/* Paths of this host's cluster files (malloc'd): STATE/cluster[/name]. */
char *vo_cluster_path(const VoDaemon *d, const char *name);
/* The raw etcd handle or host handle over endpoints with dir's host.crt. */
int vo_cluster_store_open(const char *cluster_dir, char *const *endpoints, const char *host_id,
                          VoStore **ret);
/* The endpoint to reach this host's etcd member (or the first endpoint)
 * with the files in cluster_dir; fields point into bufs the caller frees. */
typedef struct {
    VoEtcdEndpoint e;
    char *endpoint, *ca, *cert, *key;
} VoClusterEndpoint;
void vo_cluster_endpoint(const char *cluster_dir, const char *endpoint, VoClusterEndpoint *ret);
void vo_cluster_endpoint_clear(VoClusterEndpoint *e);

/* ---- the etcd member (cluster-etcd.c) ------------------------------------ */

typedef struct VoClusterEtcd VoClusterEtcd;
/* Starts the member described by c with files under state_dir/cluster
 * (state_dir: STATE, or STATE/cluster.new while forming), or adopts the one
 * RUN/etcd.pid names when it runs with that data dir. */
int vo_cluster_etcd_start(VoDaemon *d, const char *state_dir, const VoClusterConfig *c,
                          VoClusterEtcd **ret, char **ret_error);
/* Waits at most timeout_ms for the local member's /health; 0 or -ETIMEDOUT. */
int vo_cluster_etcd_wait_healthy(const char *cluster_dir, const VoClusterConfig *c,
                                 int timeout_ms, char **ret_error);
/* Restarts it when it dies (bounded backoff), on d->loop. */
void vo_cluster_etcd_supervise(VoClusterEtcd *e, VoDaemon *d);
/* Stops the member (SIGTERM, then SIGKILL after timeout_ms); any thread;
 * no restart follows. e stays for vo_cluster_etcd_release. */
void vo_cluster_etcd_stop(VoClusterEtcd *e, int timeout_ms);
/* Stops supervising (loop thread, or no loop running); the member keeps
 * running unless stopped. Frees e. */
void vo_cluster_etcd_release(VoClusterEtcd *e);
/* The member's pid; 0 while it is not running (exited, its restart due). */
pid_t vo_cluster_etcd_pid(const VoClusterEtcd *e);
/* 0 when the member's ports (peer and client on c's address, client on
 * 127.0.0.1) can be bound; else -errno and a message naming the port. */
int vo_cluster_etcd_ports_check(const VoClusterConfig *c, char **ret_error);
/* Kills an etcd RUN/etcd.pid names whose data dir is under dir_prefix. */
void vo_cluster_etcd_kill_stale(const char *run_dir, const char *dir_prefix);

/* ---- a joiner's learner promoted after the commit (cluster-promote.c) ---- */

/* Marks (in the join's cluster_dir) learner member_id for promotion. */
int vo_cluster_promote_mark(const char *cluster_dir, uint64_t member_id, char **ret_error);
/* At start, the member running: promotes a marked learner through another
 * member (retried while it catches up, at most VO_CLUSTER_PROMOTE_MS) and
 * removes the mark; on failure, logs and tries again from a thread every
 * few seconds (the mark stays until then, for the next start too) and
 * answers true: the member is a learner still. A member the cluster no
 * longer has (removed) is logged as an error, not retried (true too). */
bool vo_cluster_promote_pending(const char *cluster_dir, const VoClusterConfig *c);
/* c's endpoints but this host's own member's (a strv to free). */
char **vo_cluster_other_endpoints(const VoClusterConfig *c);

/* ---- documents (cluster-copy.c) ------------------------------------------ */

/* Copies every document of from (SQLite) into to (an etcd host handle), in
 * transactions of at most 128 keys that each require the key be new; the
 * hosts service's lease-bound keys (cluster/hosts/, cluster/manager) and,
 * unless with_cluster, every cluster/ key are left out. VMs get their name
 * records (cluster/names/vms/<name>). */
int vo_cluster_copy_in(VoStore *from, VoStore *to, const char *host_id, bool with_cluster,
                       char **ret_error);
/* The host's own documents of an etcd host handle into a SQLite store. */
int vo_cluster_copy_out(VoStore *from, VoStore *to, char **ret_error);
/* Deletes the cluster records of a (raw) store that name host_id as their
 * "host": VM name records (cluster/names/vms/), group memberships
 * (cluster/group-members/), addresses (cluster/ipam/), project usage
 * (cluster/project-usage/) and kept rbd intents (cluster/pool-kept/), each
 * at the revision read. */
int vo_cluster_forget_records(VoStore *raw, const char *host_id);
/* Deletes the MAC index's held claims (cluster/claims/macs/<mac>,
 * daemon/mac-claims.h) of the VMs in host_id's namespace of a (raw) store
 * (those of its VM documents and of its relations: a VM without a document
 * too, a create cut short), each at the revision read: their MACs
 * are free in the cluster once the host left it. And the host's mark
 * cluster/mac-indexed/<host-id>, so that the host, joining again with the
 * same id, is not taken for indexed before its start. Before the
 * namespace goes. */
int vo_cluster_forget_macs(VoStore *raw, const char *host_id);
/* Deletes every key under prefix of a (raw) store, in batches. */
int vo_cluster_delete_prefix(VoStore *s, const char *prefix);

/* ---- a joiner's projects (cluster-join-projects.c) ---------------------- */

/* The projects of a standalone host's store: {name: {"usage": {"vcpus",
 * "memory_mib", "vms", "disk_bytes"}}} (what its VMs, volumes and networks
 * hold in each). 0 or the store's error. */
int vo_cluster_join_projects(VoStore *local, json_t **ret);
/* The member's check at admission: for each of the joiner's projects the
 * cluster has, its use must fit the cluster's quotas; what does not is
 * appended to *collisions. */
void vo_cluster_admit_projects(VoStore *cluster, json_t *projects, char ***collisions);
/* The joiner's project documents into the cluster (to: its etcd handle),
 * each project checked again and written compared on the cluster's
 * project document: its usage documents, its volumes' and networks'
 * documents, and its own document when the cluster lacks the project (its
 * name appended to *ret_created). -VO_EQUOTA, -EAGAIN or the store's error
 * with *ret_error. */
int vo_cluster_copy_projects(VoStore *local, VoStore *to, const char *host_id,
                             char ***ret_created, char **ret_error);
/* Undoes it (a failed join): host_id's object documents, and the created
 * projects left empty. */
void vo_cluster_copy_projects_undo(VoStore *raw, const char *host_id, char **created);

/* ---- steps shared by init, join and leave (cluster-init.c) -------------- */

/* One cluster change at a time: -EBUSY with *ret_error when another runs
 * or one has committed (vireod is about to re-execute); vo_cluster_end
 * ends it. */
int vo_cluster_begin(char **ret_error);
void vo_cluster_end(void);
/* Between a change's begin and end: it committed (STATE changed; vireod
 * re-executes after the reply), so every later begin is refused (-EBUSY).
 * vo_cluster_commit calls it. */
void vo_cluster_committed(void);
/* Removes what an earlier attempt left and makes STATE/cluster.new/cluster
 * (0700); returns STATE/cluster.new (malloc'd) or NULL. */
char *vo_cluster_staging_make(VoDaemon *d);
/* Removes STATE/cluster.new (its etcd member is stopped already). */
void vo_cluster_staging_remove(VoDaemon *d);
/* The commit point: STATE/cluster.new/cluster becomes STATE/cluster. */
int vo_cluster_commit(VoDaemon *d, char **ret_error);
/* 16 random hex digits. */
char *vo_cluster_random_id(void);
/* The join command's "ADDRESS:PORT" ("[v6]:PORT"). */
char *vo_cluster_host_port(const char *address, int port);

/* ---- forming (cluster-init.c, cluster-join.c, cluster-admit.c) ----------- */

/* POST /v1/cluster/init: {cluster, join_command, token, expires}. */
int vo_cluster_init(VoDaemon *d, const char *address, json_t **ret, char **ret_error);
/* A new join token (cluster/join-tokens/<id> on a lease of ttl_s):
 * {token, join_command, expires}. */
int vo_cluster_token(VoDaemon *d, VoStore *raw, const char *cluster_id, const char *ca_dir,
                     const char *address, int api_port, int64_t ttl_s, json_t **ret,
                     char **ret_error);
/* POST /v1/cluster/join on the joining host. */
int vo_cluster_join(VoDaemon *d, const char *target, const char *token, const char *address,
                    json_t **ret, char **ret_error);
/* POST /v1/cluster/join-request on a member: 0 with the answer, or -errno
 * (-EACCES token, -EEXIST collisions, -EBUSY another join) with why. */
int vo_cluster_admit(VoDaemon *d, const json_t *request, json_t **ret, char **ret_error);
/* GET /v1/cluster/ca. */
int vo_cluster_ca(VoDaemon *d, json_t **ret);

/* ---- the cluster (cluster-show.c, cluster-leave.c) ----------------------- */

json_t *vo_cluster_show(VoDaemon *d, int *ret_err);
/* *ret: {"left": true, "note"?: what the leave found and mended}. */
int vo_cluster_leave(VoDaemon *d, json_t **ret, char **ret_error);
/* At start: removes STATE/cluster when an init made it and did not reach
 * its commit (cluster.json), and stops its etcd member (cluster-init.c). */
void vo_cluster_init_recover(VoDaemon *d);
/* At start: finishes a leave that committed (STATE/cluster gone) but did
 * not move STATE/vireo.db.leaving into place, or removes that file when the
 * leave did not commit. */
void vo_cluster_leave_recover(const char *state_dir);
int vo_cluster_host_remove(VoDaemon *d, const char *host, char **ret_error);

/* ---- addresses (cluster-address.c) --------------------------------------- */

/* The IPv4 address of the interface of the default route. */
int vo_cluster_default_address(char **ret, char **ret_error);
/* address checked (an IP of this host, not loopback), or with NULL the
 * default one: *ret malloc'd. */
int vo_cluster_address_check(const char *address, char **ret, char **ret_error);
/* Whether address is one of this host's interface addresses. */
bool vo_cluster_address_is_local(const char *address);
