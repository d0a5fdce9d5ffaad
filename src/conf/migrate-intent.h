/* migrate-intent.h: the intent file a live migration keeps in the run dir
 * (RUN_DIR/migrations/<vm-id>.json, one per migration this host takes
 * part in) and what vireod does with one it finds at start, after a crash
 * (docs/internals.md, "Live migration", "A vireod that dies mid-migration").
 * Pure: the daemon reads the store and QEMU, this decides. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

typedef enum {
    VO_MIGRATE_ROLE_SOURCE,
    VO_MIGRATE_ROLE_DESTINATION,
} VoMigrateRole;

/* What to do with a migration an earlier vireod left. */
typedef enum {
    VO_MIGRATE_RECOVER_NOTHING,  /* not ours to touch (logged) */
    VO_MIGRATE_RECOVER_RESUME,   /* source, VM still ours: cancel a stream in flight,
                                  * continue the source QEMU (when it ran) */
    VO_MIGRATE_RECOVER_SETTLE,   /* source, VM still ours but the switch was under way:
                                  * settle it with the store first (moved: QUIT, else RESUME) */
    VO_MIGRATE_RECOVER_QUIT,     /* source, the VM is the destination's: end this QEMU,
                                  * remove its run and state dirs */
    VO_MIGRATE_RECOVER_CONTINUE, /* destination, the store gives the VM here: continue it */
    VO_MIGRATE_RECOVER_DESTROY,  /* destination, not ours: kill the incoming QEMU, remove
                                  * what it made */
} VoMigrateRecover;

typedef struct {
    VoMigrateRole role;
    const char *vm, *name;   /* the VM's id and name */
    const char *migration;   /* the migration's id (the peer's incoming record) */
    const char *peer;        /* the other host's id */
    const char *peer_url;    /* the other host's API (source: the destination's) */
    const char *phase;       /* source: prepare, disks, memory, switch, switched;
                              * destination: prepare, ready */
    bool resume;             /* the VM ran at the source when the migration began */
    long long rev;           /* source, from phase switch: the VM document's revision the
                              * switch compares */
    long long back_rev;      /* source, once its task sent a take-back (phase switched):
                              * the revision of the destination's document the take-back
                              * compares (the one the switch wrote); 0: none sent. Until
                              * that take-back is decided, reading the VM at the peer
                              * proves nothing: it may still apply */
    json_t *spec;            /* the VM's spec document (borrowed): QEMU is found with it
                              * when the VM's documents are gone */
} VoMigrateIntent;

/* The file's JSON (new reference). */
json_t *vo_migrate_intent_to_json(const VoMigrateIntent *i);
/* Parses a file's JSON (strings point into doc). -EINVAL with *ret_error. */
int vo_migrate_intent_from_json(json_t *doc, VoMigrateIntent *ret, char **ret_error);

/* The decision: vm_here: the store gives the VM to this host (its
 * documents are in this host's namespace); vm_at_peer: the store gives it
 * to the peer. */
VoMigrateRecover vo_migrate_recover_decide(const VoMigrateIntent *i, bool vm_here,
                                           bool vm_at_peer);

const char *vo_migrate_recover_to_string(VoMigrateRecover r);
