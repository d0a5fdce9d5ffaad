/* etcd-member.h: a host's etcd member: the argv that starts it (pure: no
 * I/O) and the member API (list, add as learner, promote, remove, health)
 * through etcd's JSON gateway with libcurl over mutual TLS.
 *
 * Files of a member (see docs/internals.md, "Cluster PKI and etcd members"):
 *   STATE_DIR/cluster/etcd/      its data (--data-dir)
 *   STATE_DIR/cluster/ca.crt     trusted CA, clients and peers
 *   STATE_DIR/cluster/host.crt   the host certificate, server and client,
 *   STATE_DIR/cluster/host.key   client port and peer port alike
 *   RUN_DIR/etcd.log             its log (zap) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster-config.h" /* VO_ETCD_*_PORT, vo_cluster_url */

#define VO_ETCD_PATH "/usr/bin/etcd"
#define VO_ETCD_QUOTA_BYTES (2ULL << 30)
#define VO_ETCD_HEARTBEAT_MS 100
#define VO_ETCD_ELECTION_MS 1000
#define VO_ETCD_COMPACTION_REVISIONS 10000

typedef struct {
    const char *etcd_path;       /* NULL: VO_ETCD_PATH */
    const char *name;            /* member name, unique in the cluster; no '=' ',' or space */
    const char *state_dir;       /* STATE_DIR: data, CA and host certificate under cluster/ */
    const char *run_dir;         /* RUN_DIR: etcd.log */
    const char *address;         /* the host's cluster address (IPv4 or IPv6 literal) */
    int client_port;             /* 0: 2379 */
    int peer_port;               /* 0: 2380 */
    const char *cluster_id;      /* --initial-cluster-token */
    const char *initial_cluster; /* NULL: only this member (a new cluster) */
    bool existing;               /* --initial-cluster-state existing (joining) */
    uint64_t quota_backend_bytes; /* 0: 2 GiB */
    int heartbeat_ms;            /* 0: 100 */
    int election_ms;             /* 0: 1000; at least 5 heartbeats */
} VoEtcdMemberConfig;

/* The argv (NULL-terminated, owned strv) that starts the member described
 * by c. -EINVAL with *ret_error naming the bad field. Pure. */
int vo_etcd_member_argv(const VoEtcdMemberConfig *c, char ***ret_argv, char **ret_error);

/* Where and how to reach an etcd member's client port. */
typedef struct {
    const char *endpoint;  /* "https://127.0.0.1:2379" */
    const char *ca_file;   /* CA that signed the member's certificate */
    const char *cert_file; /* client certificate; NULL: none (refused by a vireo member) */
    const char *key_file;
    int timeout_ms;        /* per request; 0: 5000 */
} VoEtcdEndpoint;

typedef struct {
    uint64_t id;
    char *name;         /* "" until a newly added member has started */
    char **peer_urls;   /* strv */
    char **client_urls; /* strv */
    bool learner;
} VoEtcdMember;

typedef struct {
    VoEtcdMember *v;
    size_t n;
} VoEtcdMembers;

void vo_etcd_members_clear(VoEtcdMembers *m);

/* Parses the "members" array of a gateway member list/add answer (the JSON
 * text of it). Pure; -EBADMSG on anything unexpected. */
int vo_etcd_members_parse(const char *json_text, VoEtcdMembers *ret);

/* The --initial-cluster value for a member just added with id new_id:
 * "name=peerurl,..." over every peer URL of m, new_name for new_id (as
 * etcdctl member add prints it). Pure. */
char *vo_etcd_initial_cluster(const VoEtcdMembers *m, uint64_t new_id, const char *new_name);

/* The calls below return 0 or: -ECONNREFUSED / -ETIMEDOUT / -EPROTO (TLS
 * refused: certificate) / -ECONNRESET (transport), or what etcd answered:
 * -ENOENT (no such member), -EEXIST (peer URL in use), -EINVAL (e.g.
 * promoting a voter), -EBUSY (a learner is already there: etcd 3.4 takes
 * one at a time), -EAGAIN (unavailable, no quorum, not in sync), -EIO
 * (other); *ret_error says which, with etcd's own message. */

int vo_etcd_member_list(const VoEtcdEndpoint *e, VoEtcdMembers *ret, char **ret_error);

/* Adds a learner with peer_url; returns its id and the --initial-cluster
 * string to start it with (as name; state existing). */
int vo_etcd_member_add_learner(const VoEtcdEndpoint *e, const char *name, const char *peer_url,
                               uint64_t *ret_id, char **ret_initial_cluster, char **ret_error);

/* Promotes learner id to a voting member, retrying (every 250 ms, at most
 * timeout_ms in all) while etcd answers that the learner is not yet in sync
 * with the leader; -ETIMEDOUT when it never is. */
int vo_etcd_member_promote(const VoEtcdEndpoint *e, uint64_t id, int timeout_ms, char **ret_error);

/* Removes member id. etcd refuses ("unhealthy cluster") to remove a live
 * voter that has been connected for under 5 s when the rest would then lack
 * a quorum of members connected that long; retried like promote for at
 * most timeout_ms. A member that is down is removed at once. */
int vo_etcd_member_remove(const VoEtcdEndpoint *e, uint64_t id, int timeout_ms, char **ret_error);

/* GET /health: 0 when the member answers {"health":"true"} (it has a
 * leader and can commit), -EAGAIN when it answers otherwise. */
int vo_etcd_endpoint_health(const VoEtcdEndpoint *e, char **ret_error);
