/* project-objects.h: which project a volume or a network belongs to
 * (docs/projects.md, "Volumes and networks"), as two documents of the whole
 * cluster written in one transaction:
 *   cluster/object-projects/<kind>/<scope>/<id>   {"project","disk_bytes"}
 *   cluster/project-usage/<project>/<kind>:<scope>:<id with ':' for '/'>
 *       {"kind","object","scope","host","disk_bytes"}
 * kind "volume" (id "pool/name") or "network" (id its name); scope the id
 * of the host whose local pool or network it is, or "shared" (a shared
 * pool's volume) or "cluster" (a cluster network). The first answers "whose
 * is it" in one read; the second sits beside the project's VMs' usage
 * documents (project-usage.h), so a quota check and a project's delete see
 * it in the same listing. An object without documents has no project.
 * disk_bytes: what the volume counts against its project's disk quota (its
 * virtual size; 0 for a network, or a VM's disk its VM counts already).
 * Every change that raises what a project holds compares the project's
 * document at the revision read and puts it again (as a VM's save does),
 * so two changes racing for the last room, or a change and the project's
 * delete, never both commit.
 * A move to another project and a VM's save that comes to use the object,
 * on any two hosts, never both commit (a VM of one project using another
 * project's object): the move first marks the object
 *   cluster/object-moves/<kind>/<scope>/<id>   {"host","project"} (on a lease)
 * (made new), then looks for its users on every host, then commits its
 * documents compared on that mark; the save reads the mark (present: busy)
 * and the object's document, checks, and commits compared on both (the
 * mark absent, the document at the revision read: VoObjectCompares). So
 * a save that committed first is found by the move's look, and a save
 * that commits later finds the mark or the document changed (and checks
 * again). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/store.h"

#define VO_KEY_OBJECT_PROJECTS_PREFIX "cluster/object-projects/"
#define VO_KEY_OBJECT_MOVES_PREFIX "cluster/object-moves/"

typedef struct {
    const char *kind;  /* "volume" or "network" */
    const char *scope; /* a host id, "shared" or "cluster" */
    const char *id;    /* "pool/name" or a network's name */
} VoProjectObject;

/* The object's project: 0 with *ret_project (malloc'd; NULL: none) and
 * *ret_disk_bytes (may be NULL), or the store's error. */
int vo_project_object_get(VoStore *s, const VoProjectObject *o, char **ret_project,
                          int64_t *ret_disk_bytes);
/* Puts the object in project (NULL: in none), counting disk_bytes against
 * its disk quota (-1: the figure it has). Checked when it raises what the
 * project holds: -VO_EQUOTA (over the disk quota) or -ENOENT (no such
 * project), both with *ret_error; else 0 or the store's error. host_id:
 * the host that holds it (for the usage document). For a create: the
 * documents are written even when they say so already (left by a crash),
 * so vo_project_object_forget_gone never removes a new object's. */
int vo_project_object_set(VoStore *s, const VoProjectObject *o, const char *project,
                          int64_t disk_bytes, const char *host_id, char **ret_error);
/* A volume's figure grows by delta (< 0: given back), in the project it
 * has when the change commits (read and compared in one attempt, so a move
 * to another project committed meanwhile is never undone: the growth is
 * checked against the project it went to). 1 when counted (the object
 * has a project and a figure), 0 when not (nothing changed), -VO_EQUOTA
 * with *ret_error, or the store's error. */
int vo_project_object_grow(VoStore *s, const VoProjectObject *o, int64_t delta,
                           const char *host_id, char **ret_error);
/* What a VM's save compares on the objects it comes to use (the
 * documents above at the revisions it read, each one's move mark absent). */
typedef struct {
    VoStoreCompare *cmps;
    size_t n;
} VoObjectCompares;
void vo_object_compares_clear(VoObjectCompares *c);
/* The object's project for a save that comes to use it: 0 with
 * *ret_project (malloc'd; NULL: none) and its compares appended to add;
 * -EBUSY while a move of it is under way (on any host: its mark); or the
 * store's error. */
int vo_project_object_read(VoStore *s, const VoProjectObject *o, char **ret_project,
                           VoObjectCompares *add);

/* A move's mark (above), held while it looks for the object's users. */
typedef struct {
    char *key;
    int64_t rev, lease;
} VoObjectMoveMark;
#define VO_OBJECT_MOVE_TTL_MS 30000
/* Makes the mark (on a lease of VO_OBJECT_MOVE_TTL_MS): 0, -EBUSY with
 * *ret_error when another move of it is under way, or the store's error. */
int vo_project_object_mark(VoStore *s, const VoProjectObject *o, const char *host_id,
                           const char *project, VoObjectMoveMark *ret, char **ret_error);
/* vo_project_object_set compared on the mark as made (-EAGAIN with
 * *ret_error when it lapsed meanwhile: nothing changed) and on exists
 * (or NULL), the object's own document at the revision read after the
 * mark was made (-ENOENT with *ret_error when it was deleted meanwhile,
 * -EBUSY when it changed: nothing moved, no records made for an object
 * that is gone), then the mark goes (also on failure). disk_bytes counts
 * only for an object without a figure yet: one that has a figure keeps
 * it (as read at the commit: a grow committed meanwhile stays counted). */
int vo_project_object_set_marked(VoStore *s, const VoProjectObject *o, const char *project,
                                 int64_t disk_bytes, const char *host_id,
                                 const VoStoreCompare *exists, VoObjectMoveMark *mark,
                                 char **ret_error);
/* The key of the object's move mark (malloc'd): a change of who uses it
 * that the move's look may miss (a VM's move between hosts, whose users
 * the move looks for host by host) compares it absent. */
char *vo_project_object_mark_key(const VoProjectObject *o);
/* The mark goes, nothing moved (its users were found). */
void vo_project_object_unmark(VoStore *s, VoObjectMoveMark *mark);

/* Its documents go (the object was deleted). 0 or the store's error. */
int vo_project_object_forget(VoStore *s, const VoProjectObject *o);
/* Its documents go when gone(o, userdata) answers 1 (the object is no
 * more: a delete whose forget a crash cut short), asked after the object's
 * document was read and compared at that revision in the delete, so an
 * object made again meanwhile keeps its documents. 1 (removed), 0 (it has
 * no project, gone answered 0, or its documents changed meanwhile), gone's
 * error (it cannot tell), or the store's. */
typedef int (*VoProjectObjectGoneFn)(const VoProjectObject *o, void *userdata);
int vo_project_object_forget_gone(VoStore *s, const VoProjectObject *o,
                                  VoProjectObjectGoneFn gone, void *userdata);
/* Every object of kind in scope that has a project: {id: project}. */
int vo_project_objects_of(VoStore *s, const char *kind, const char *scope, json_t **ret);
/* The usage document's kind ("volume", "network") and object, or NULL for a
 * VM's usage document. */
const char *vo_project_usage_doc_kind(json_t *doc);

/* A volume's or network's project documents carried from one object (a
 * host's scope) to another (a VM's local volume that moves to another host
 * with its VM: docs/projects.md), inside a caller's transaction: read
 * first, then its compares and operations added to the caller's. */
typedef struct {
    bool found; /* the object has a project: there is something to carry */
    char *old_object_key, *old_usage_key, *new_object_key, *new_usage_key;
    char *object_text, *usage_text;
    int64_t object_rev, usage_rev;
} VoProjectObjectCarry;
#define VO_PROJECT_OBJECT_CARRY_CMPS 4
#define VO_PROJECT_OBJECT_CARRY_OPS 4
/* Reads from's documents: 0 (c->found false: it has no project) or the
 * store's error. host_id: the host that holds to. */
int vo_project_object_carry_read(VoStore *s, const VoProjectObject *from,
                                 const VoProjectObject *to, const char *host_id,
                                 VoProjectObjectCarry *c);
/* Appends the carry's compares (from's documents at the revisions read,
 * to's absent) and operations (from's deleted, to's put) to the caller's:
 * at most VO_PROJECT_OBJECT_CARRY_CMPS and _OPS of each. */
void vo_project_object_carry_add(const VoProjectObjectCarry *c, VoStoreCompare *cmps,
                                 size_t *n_cmps, VoStoreOp *ops, size_t *n_ops);
void vo_project_object_carry_clear(VoProjectObjectCarry *c);
