/* net-exec.h: carrying out network plans on the host (ip, bridge, nft,
 * sysctl), probing the host's kernel features and links, creating VM taps
 * on a bridge, and reading dnsmasq's lease file. vireod's side of net-plan. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "network/net-plan.h"

/* How long one ip/bridge/nft/sysctl run may take. */
#define VO_NET_STEP_TIMEOUT_MS 10000

/* Runs a listing that prints JSON on stdout (`ip -j ...`). Only stdout is
 * returned: warnings on stderr are never mixed into it. When iproute2 says
 * "Dump was interrupted" on stderr (a table changed during the dump; the
 * output may be incomplete) it runs again, at most VO_NET_DUMP_ATTEMPTS
 * times in all, then fails with -EAGAIN. Other failures: -EIO, -ETIMEDOUT
 * or -errno, with *ret_error naming the command and what it printed. */
#define VO_NET_DUMP_ATTEMPTS 5
int vo_net_run_listing(char *const argv[], char **ret_stdout, char **ret_error);

/* Probes the kernel features (after `modprobe -q` of each module, failures
 * ignored: modules load on demand) and lists the host's links with
 * `ip -j -d link show`. A module counts as present when /sys/module/MOD
 * exists or the kernel lists it as built in; nf_tables built in without
 * parameters has no /sys/module entry, so `nft list tables` succeeding
 * counts too. *ret_links is freed with vo_host_links_free. -errno with
 * *ret_error (naming what failed) when the links cannot be read. */
int vo_net_probe(VoHostCaps *ret_caps, VoHostLink **ret_links, size_t *ret_n, char **ret_error);
void vo_host_links_free(VoHostLink *links, size_t n);

/* The remotes of dev's all-zeros FDB entries (`bridge -j fdb show dev
 * DEV`), for vo_net_plan_fdb. -errno with *ret_error. */
int vo_net_fdb_remotes(const char *dev, uint32_t **ret, size_t *ret_n, char **ret_error);
/* dev's unicast entries with a remote (vo_net_fdb_parse_macs), for
 * vo_net_plan_fdb_macs. -errno with *ret_error. */
int vo_net_fdb_macs(const char *dev, VoFdbEntry **ret, size_t *ret_n, char **ret_error);

/* The program a step runs, as a NULL-terminated vector (vo_strv_free).
 * Joined with spaces it equals vo_net_step_render's line, except:
 *  - SYSCTL adds -q (sysctl otherwise echoes "key = value" on success);
 *  - NFT without a path passes the text as one argument, its lines joined
 *    with "; " (render shows that argument in single quotes).
 * DNSMASQ_START/STOP: -EOPNOTSUPP (vireod runs dnsmasq itself). */
int vo_net_step_argv(const VoNetStep *st, char ***ret_argv);

/* Carries out DNSMASQ_START and DNSMASQ_STOP steps; 0 or -errno. */
typedef int (*VoDnsmasqFn)(const VoNetStep *st, void *userdata);

/* Runs p's steps in order. NFT steps with a path first write their text to
 * it (atomically, creating the directory). DNSMASQ_* steps call dnsmasq
 * (NULL: -EOPNOTSUPP). `bridge fdb append` failing with "File exists"
 * succeeds. stop_on_error: stop at the first failure (setup); otherwise run
 * every step and return the first failure (teardown). The message names
 * the failed step (rendered) and the tool's output. */
int vo_net_plan_execute(const VoNetPlan *p, VoDnsmasqFn dnsmasq, void *userdata,
                        bool stop_on_error, char **ret_error);

/* Creates tap NAME (not persistent: it vanishes when the last fd closes,
 * i.e. when QEMU exits), attaches it to BRIDGE and brings it up. The fd
 * is O_CLOEXEC and has IFF_VNET_HDR (QEMU's -netdev tap,fd=N,vhost=off
 * detects it and enables virtio-net offloads); clear O_CLOEXEC or dup it
 * into QEMU. -EEXIST when a link NAME exists; -ENODEV when BRIDGE does
 * not; other -errno; each with *ret_error. */
int vo_tap_open(const char *name, const char *bridge, int *ret_fd, char **ret_error);

/* dnsmasq's lease file: "EXPIRY MAC IP HOSTNAME CLIENTID" per line.
 * expires is seconds since the epoch (0: never); mac is lower case;
 * hostname is NULL for "*". */
typedef struct {
    char mac[18];
    char ip[16];
    char *hostname;
    int64_t expires;
} VoLease;

/* Malformed lines (and dnsmasq's "duid" line) are skipped. 0 always
 * (memory errors abort); *ret is NULL when there are none. */
int vo_leases_parse(const char *text, VoLease **ret, size_t *ret_n);
void vo_leases_free(VoLease *l, size_t n);
/* The lease for mac (case-insensitive) that lasts longest (expires 0
 * first), or NULL. */
const VoLease *vo_leases_find_mac(const VoLease *l, size_t n, const char *mac);
