/* place-snapshot.h: the manager's inputs to placement, made from what the
 * store holds (pure: no I/O, the clock is a parameter). The snapshot comes
 * from the member documents (cluster/members/<id>: every host that belongs,
 * online or not) joined with the live records (cluster/hosts/<id>: the
 * placement fields of each, see placement.h) plus the manager's
 * reservations: creates it sent to a host that has not answered yet (a host
 * rewrites its record before it answers a create), so creates placed at the
 * same time see each other. A group's member counts come from
 * the group's member documents (cluster/group-members/<group>/<vm-id> =
 * {"vm","name","host"}) plus its in-flight reservations.
 * docs/internals.md, Placement (The manager path). */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "cluster/placement.h"

/* One host as the store has it. record NULL: no live record (offline). */
typedef struct {
    json_t *member; /* {"id","name",...} */
    json_t *record; /* the live record, or NULL */
} VoPlaceHostDocs;

/* A create the manager placed on a host that has not answered yet: it
 * counts on the host and in its group until the answer (or expiry). */
typedef struct {
    uint64_t id;
    char *host_id;
    char *group; /* or NULL */
    uint64_t memory_mib;
    unsigned vcpus;
    int64_t expires_ms;
    /* 0: the host has not answered. > 0: it created the VM, and a
     * snapshot from the store's revision settle_rev on shows it (the
     * reservation counts until the manager's cache holds that revision). */
    int64_t settle_rev;
} VoPlaceReservation;

typedef struct {
    VoPlaceReservation *items;
    size_t n;
    uint64_t next_id;
} VoPlaceReservations;

/* How long a reservation lives at most (longer than a forwarded create may
 * take: VO_FORWARD_TIMEOUT_MS). */
#define VO_PLACE_RESERVATION_TTL_MS 120000

/* The snapshot of n hosts: a host whose record is missing, or does not parse
 * (its words in *ret_warnings, a strv, NULL when none), is in it as offline,
 * so a 409 names it. A record's fields beyond placement's host document
 * (address, vms, version...) are ignored; the member document's id and name
 * win. Reservations (may be NULL) add to the committed memory and vCPUs of
 * their host. 0, or -EINVAL with *ret_error when a member document has no
 * valid id or name. */
int vo_place_snapshot_build(const VoPlaceHostDocs *docs, size_t n, VoPlacePolicy policy,
                            const VoPlaceReservations *res, VoPlaceSnapshot *ret,
                            char ***ret_warnings, char **ret_error);

/* The hosts holding members of group: counts from its member documents
 * (members: an object of key -> {"vm","name","host"}; may be NULL) plus
 * the reservations of the group. *ret (n entries, sorted by host id). */
void vo_place_group_hosts(json_t *members, const VoPlaceReservations *res, const char *group,
                          VoPlaceGroupHost **ret, size_t *ret_n);
void vo_place_group_hosts_free(VoPlaceGroupHost *g, size_t n);

/* Drops the reservations that expired (now_ms) or are on a host that has
 * no record (offline: nothing to add to). */
void vo_place_reservations_prune(VoPlaceReservations *r, const VoPlaceHostDocs *docs, size_t n,
                                 int64_t now_ms);
/* A new in-flight reservation; returns its id. */
uint64_t vo_place_reservation_add(VoPlaceReservations *r, const char *host_id, const char *group,
                                  uint64_t memory_mib, unsigned vcpus, int64_t now_ms);
/* The host answered (created: its record shows the VM now; or not): the
 * reservation goes. Unknown ids: nothing. */
void vo_place_reservation_drop(VoPlaceReservations *r, uint64_t id);
/* The host created the VM; the store shows it from revision rev on
 * (INT64_MAX: unknown, kept until it expires). Unknown ids: nothing. */
void vo_place_reservation_settle(VoPlaceReservations *r, uint64_t id, int64_t rev);
/* Drops the settled reservations a snapshot of revision rev shows; the
 * largest settle_rev left, unknown ones aside (0: none). */
int64_t vo_place_reservations_settled(VoPlaceReservations *r, int64_t rev);
void vo_place_reservations_clear(VoPlaceReservations *r);
/* The record revision a placed host answered with (its
 * Vireo-Record-Revision header: a decimal revision > 0), or 0 when text is
 * NULL or not one (the manager then reads the record itself). */
int64_t vo_place_record_rev_parse(const char *text);
