/* migrate-args.h: the request of a live migration (POST /v1/vms/{vm}/migrate)
 * and its defaults; parsed here, pure, so the unit tests reach it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The defaults a user would want (the issue's): QEMU's downtime limit,
 * bandwidth unlimited on the cluster link. */
#define VO_MIGRATE_DEFAULT_DOWNTIME_MS 300
/* "Unlimited": QEMU needs a number; 100 GB/s is beyond any link. */
#define VO_MIGRATE_UNLIMITED_BANDWIDTH (100ull << 30)
/* The memory phase must end (the switch-over reached) within this many
 * seconds of its start, else the migration is aborted as one that does
 * not converge (docs/cluster.md, "Live migration"). */
#define VO_MIGRATE_DEFAULT_CONVERGE_TIMEOUT_S 600
#define VO_MIGRATE_MAX_CONVERGE_TIMEOUT_S 86400

typedef struct {
    const char *to;        /* host name or id; NULL: the manager picks */
    const char *pool;      /* the target's pool for local disks; NULL: "default" */
    uint64_t bandwidth;    /* bytes/s; 0: unlimited */
    unsigned max_downtime_ms; /* 0: the default */
    bool verify_memory;    /* compare guest RAM on both sides before the switch */
    unsigned converge_timeout_s; /* 0: VO_MIGRATE_DEFAULT_CONVERGE_TIMEOUT_S */
    bool force_converge;   /* throttle the vCPUs harder (still aborted at the limit) */
    bool post_copy;        /* switch to post-copy after the first full pass of RAM */
} VoMigrateArgs;

/* Parses the body of POST /v1/vms/{vm}/migrate ({"to", "pool",
 * "max_downtime_ms", "bandwidth" (bytes/s or "SIZE/s"), "verify_memory",
 * "converge_timeout_s", "force_converge", "post_copy"}) into *ret (strings
 * point into body). -EINVAL with *ret_error naming the field. Pure. */
int vo_migrate_args_parse(json_t *body, VoMigrateArgs *ret, char **ret_error);

