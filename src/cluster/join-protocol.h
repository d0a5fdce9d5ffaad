/* join-protocol.h: what a join request needs checked and what a member can
 * check, so hosts of different vireo versions join safely (docs/cluster.md,
 * "Joining across versions").
 *
 * A member publishes its join protocol and the checks it makes with its CA
 * (GET /v1/cluster/ca: "join": {"protocol": N, "checks": [...]}); a member
 * from before protocol 2 publishes nothing and makes the legacy checks
 * only. A joiner names the checks its documents need (a check per kind of
 * document that can collide with the cluster's) and does not ask a member
 * that cannot make one of them: it refuses, naming what to upgrade. A
 * protocol-2 request carries "protocol" and "checks"; a member refuses one
 * needing a check it does not know (409) and ignores the other fields it
 * does not know (each field that needs a check comes with that check's
 * name, so nothing it ignores needed checking). A request without
 * "protocol" is a legacy one (strict: no field beyond the legacy ones). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define VO_JOIN_PROTOCOL 2

/* The checks (names in requests and answers). */
#define VO_JOIN_CHECK_HOST "host"         /* host id and name */
#define VO_JOIN_CHECK_VMS "vm-names"      /* "vms": VM names */
#define VO_JOIN_CHECK_NETWORKS "networks" /* "networks": names and subnets */
#define VO_JOIN_CHECK_PROJECTS "projects" /* "projects": quotas */
#define VO_JOIN_CHECK_POOLS "pools"       /* "pools": names against shared pools */
/* "macs": [{"vm", "mac"}], the joiner's VMs' MACs against the cluster's VMs'
 * and its MAC index. Asked of a member that makes it; with one that does
 * not, the copy that enters the joiner's MACs in the index (create-only)
 * fails on one another VM holds, and the join is undone. */
#define VO_JOIN_CHECK_MACS "macs"

/* Every check this vireo's members make, NULL-terminated. */
extern const char *const vo_join_checks_made[];

/* The checks a request's documents need: the legacy ones always,
 * "projects" when it has projects, "pools" when it has a pool other than
 * builtin_pool (every host makes its own, so no shared pool can have taken
 * that name); for a legacy_member (before protocol 2), a pool other than
 * builtin_pool and its rbd pools (sent as "rbd_pools", which it checks).
 * A strv. */
char **vo_join_checks_needed(const json_t *projects, const json_t *pools,
                             const char *builtin_pool, bool legacy_member);

/* The names of needed a member does not make: offered is the member's
 * "checks" (a JSON array of names), or NULL for a member before protocol 2
 * (legacy checks only). A strv, NULL when it makes them all. */
char **vo_join_checks_missing(char *const *needed, const json_t *offered);

/* The joiner's decision before it asks member (its URL, for the message)
 * whose CA answer's "join" is member_join (NULL: a member before protocol
 * 2): 0, or -EPROTONOSUPPORT with a message naming the checks missing and
 * what to upgrade. */
int vo_join_member_usable(const char *member, const json_t *member_join, char *const *needed,
                          char **ret_error);

/* The member's decision on a request's protocol and "checks": 0 (*ret_legacy:
 * a request without "protocol"), -EINVAL (malformed), or -EPROTONOSUPPORT
 * naming the checks this member cannot make and what to upgrade. */
int vo_join_request_accepted(const json_t *req, bool *ret_legacy, char **ret_error);

/* The member's CA answer's "join" object. */
json_t *vo_join_protocol_json(void);
