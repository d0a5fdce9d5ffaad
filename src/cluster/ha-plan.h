/* ha-plan.h: the pure parts of HA recovery (docs/ha.md, "HA VMs and
 * recovery"): which VMs of a down host the manager restarts elsewhere and in
 * what order, and the restart limit (at most max_restarts restarts of a VM
 * within window_ms, counted in its document; the numbers are the cluster's
 * setting, daemon/ha-settings.h). No I/O, no clock: the caller passes the
 * time (wall clock: the count outlives the process) and the limit. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The restart limit: at most max_restarts HA starts of one VM within
 * window_ms. Its bounds (the setting's, checked where it is set) and its
 * default (no setting stored). */
typedef struct {
    unsigned max_restarts;
    int64_t window_ms;
} VoHaLimit;

#define VO_HA_MAX_RESTARTS_DEFAULT 3
#define VO_HA_MAX_RESTARTS_MIN 1
#define VO_HA_MAX_RESTARTS_MAX 100
#define VO_HA_WINDOW_MINUTES_DEFAULT 10
#define VO_HA_WINDOW_MINUTES_MIN 1
#define VO_HA_WINDOW_MINUTES_MAX (7 * 24 * 60)
#define VO_HA_LIMIT_DEFAULT                                                                    \
    ((VoHaLimit){ .max_restarts = VO_HA_MAX_RESTARTS_DEFAULT,                                  \
                  .window_ms = VO_HA_WINDOW_MINUTES_DEFAULT * 60000LL })

/* One VM of a down host, from its document. */
typedef struct {
    const char *vm_id;
    const char *name;
    const char *host_id; /* the down host */
    int priority;
    int64_t rev;         /* its document's revision */
} VoHaCandidate;

/* Whether a VM document (h/<host>/vms/<id>: {"spec","status","ha",...}) is
 * one to restart: "ha" true and its last state one a user wants running
 * (running, paused, starting), or "crashed" with "ha_landed" (an earlier
 * recovery moved it to this host, which died before starting it: its
 * first save drops the mark), or "stopped" or "crashed" with
 * "ha_start_failed" (its HA start failed on this host, which died before
 * its retries started it: any start, --ha off and the give-up drop the
 * mark). */
bool vo_ha_wanted(json_t *vm_doc);
/* Its restart priority (the document's "ha_priority", default 0). */
int vo_ha_priority(json_t *vm_doc);

/* Sorts the candidates in place: highest priority first, then by name, then
 * by id (a stable, total order). */
void vo_ha_order(VoHaCandidate *c, size_t n);

/* The restart limit's bookkeeping lives in the VM's document, so it
 * survives a vireod restart and a move of the manager role or of the VM:
 * top-level "ha_restarts", the wall-clock times (ms since the epoch) of
 * its last HA starts, oldest first: those within the longest window the
 * setting allows, at most its largest max_restarts (whatever the limit in
 * force: a limit set later, larger or with a longer window, counts every
 * start it should). The
 * manager writes it in the transaction that moves the VM off a down host
 * (state/vm-move.h); the host that starts it again (a fenced host's own
 * restart, a retry) in its next save. Anything else in the field (an older
 * document: absent) counts as no restart. */
#define VO_HA_RESTARTS_FIELD "ha_restarts"
/* A VM document's top-level mark (true) of a VM left stopped by a failed
 * HA start, not a user's: the only kind vireod follows again at start. */
#define VO_HA_START_FAILED_FIELD "ha_start_failed"

/* The limit in words for the messages that name it, e.g. "at most 3 HA
 * restarts within 10 minutes" (new string). */
char *vo_ha_limit_text(const VoHaLimit *limit);
/* "N time(s)": how often a VM was restarted or failed, in those messages
 * (new string). */
char *vo_ha_times_text(unsigned n);

/* Whether a VM whose document holds restarts may be restarted at now_ms
 * (fewer than limit->max_restarts of them within the window before it);
 * *ret_next_ms (may be NULL): when it may again (0 when it may now). */
bool vo_ha_restarts_allow(json_t *restarts, int64_t now_ms, const VoHaLimit *limit,
                          int64_t *ret_next_ms);
/* The list after one more restart at now_ms (new reference): those of
 * restarts within VO_HA_WINDOW_MINUTES_MAX, plus now_ms, the newest
 * VO_HA_MAX_RESTARTS_MAX: enough for any limit the setting may hold, not
 * only the one in force (which vo_ha_restarts_allow applies). */
json_t *vo_ha_restarts_add(json_t *restarts, int64_t now_ms);
/* restarts as the API shows them ("ha_restarts"): its times as
 * timestamps, anything else left out (new reference). */
json_t *vo_ha_restarts_json(json_t *restarts);
/* How many of restarts lie within the window before now_ms. */
unsigned vo_ha_restarts_recent(json_t *restarts, int64_t now_ms, const VoHaLimit *limit);

/* A failed HA start (a fenced host's own restart, or the start of a VM the
 * manager moved to this host) is tried again after a backoff:
 * VO_HA_RETRY_FIRST_MS, doubling after each failure, at most
 * VO_HA_RETRY_MAX_MS; every start counts against the restart limit. */
#define VO_HA_RETRY_FIRST_MS 2000
#define VO_HA_RETRY_MAX_MS 60000

/* After the failures-th failed start of a VM (each start recorded in
 * restarts, the failed one included): the delay before the next attempt,
 * or -1 when the restart limit allows none (the VM is then given up). */
int64_t vo_ha_retry_delay(json_t *restarts, unsigned failures, int64_t now_ms,
                          const VoHaLimit *limit);
