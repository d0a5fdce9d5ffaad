/* cluster-config.h: STATE_DIR/cluster/cluster.json, what makes a host a
 * member of a cluster. Its presence is the switch: vireod runs on etcd when
 * it is there and complete, standalone on SQLite otherwise. It is written
 * last (tmp, fsync, rename, fsync of the directory) when a host forms or
 * joins a cluster, so a crash before that leaves the host standalone. The
 * certificates beside it: ca.crt, ca.key, host.crt, host.key. */
#pragma once

#include <stdbool.h>

#define VO_CLUSTER_DIR "cluster"
#define VO_CLUSTER_CONFIG "cluster.json"
#define VO_CLUSTER_API_PORT 8443
#define VO_ETCD_CLIENT_PORT 2379
#define VO_ETCD_PEER_PORT 2380

typedef struct {
    char *cluster_id;
    char *address;        /* this host's cluster address (IPv4 or IPv6 text) */
    int api_port;         /* vireod's HTTPS listener (mutual TLS) */
    int etcd_client_port; /* the local etcd member's, when it runs one */
    int etcd_peer_port;
    bool etcd_member;        /* this host runs an etcd member (voting, or a
                              * learner until promoted) */
    char *etcd_name;         /* its member name */
    char *etcd_initial_cluster; /* "name=https://ip:port,..." for its first start */
    bool etcd_existing;      /* it joined an existing etcd cluster */
    char **endpoints;        /* etcd client URLs this host uses, NULL-terminated */
} VoClusterConfig;

/* Reads STATE_DIR/cluster/cluster.json. 0; -ENOENT when the host is
 * standalone; -EINVAL with *ret_error naming what is wrong. */
int vo_cluster_config_load(const char *state_dir, VoClusterConfig *c, char **ret_error);
/* Parses the document (pure; the fuzz target's and the tests' entry). */
int vo_cluster_config_parse(const char *text, VoClusterConfig *c, char **ret_error);
/* The document, malloc'd compact JSON. */
char *vo_cluster_config_format(const VoClusterConfig *c);
/* Writes dir/cluster.json atomically (dir: the cluster directory, or the
 * one being made before it is renamed into place). */
int vo_cluster_config_save(const char *dir, const VoClusterConfig *c);
void vo_cluster_config_clear(VoClusterConfig *c);

/* "https://ADDRESS:PORT" with IPv6 addresses in brackets; malloc'd. */
char *vo_cluster_url(const char *address, int port);
