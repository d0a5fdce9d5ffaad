/* object-projects.h: volumes and networks in projects, the services' side
 * (docs/projects.md, "Volumes and networks"; the documents are
 * state/project-objects.h): which project a volume or network of this host
 * (or a shared one) belongs to, putting one in a project, the "project"
 * field of their JSON, and the rule a VM's save keeps: a VM of project P
 * uses volumes and networks of P or of no project. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "state/project-objects.h"

/* The scope of volumes of pool ("shared" for a shared pool, else this
 * host's id) and of network name ("cluster" for a cluster network). */
const char *vo_volume_scope(VoDaemon *d, const char *pool);
const char *vo_network_scope(VoDaemon *d, const char *name);

/* The project of volume key ("pool/name") or network name: 0 with
 * *ret_project (malloc'd, NULL: none) and *ret_disk_bytes (volumes; may be
 * NULL), or the store's error. */
int vo_volume_project(VoDaemon *d, const char *key, char **ret_project, int64_t *ret_disk_bytes);
int vo_network_project(VoDaemon *d, const char *name, char **ret_project);
/* The project of host host_id's own network name, as vo_network_project
 * (NULL: none; a cluster network's project is not the host's: NULL too). */
int vo_host_network_project(VoDaemon *d, const char *host_id, const char *name,
                            char **ret_project);
/* The project volume key is seen in: its own, else, for a disk of a VM of
 * this host, that VM's (a VM's disks made with it have no project of their
 * own: they follow their VM, counted in its figure). */
int vo_volume_project_seen(VoDaemon *d, const char *key, char **ret_project);
/* Puts it in project (NULL: none). -VO_EQUOTA, -ENOENT (no such project)
 * or the store's error, with *ret_error. */
int vo_network_project_set(VoDaemon *d, const char *name, const char *project,
                           char **ret_error);
/* Its figure grows by delta in the project it has at the commit
 * (vo_project_object_grow): 1 counted, 0 not (no project or no figure). */
int vo_volume_project_grow(VoDaemon *d, const char *key, int64_t delta, char **ret_error);

/* Moves it to project (NULL: none), refused (-EBUSY, naming the VM and its
 * host) while a VM of any host uses it, and never committed together with
 * a VM's save that comes to use it on another host (state/project-objects.h),
 * nor with its delete on another host (-ENOENT: nothing made for it); a
 * volume with a figure keeps it (disk_bytes: for one without); over the
 * project's disk quota -VO_EQUOTA, no such project -ENOENT, with
 * *ret_error. */
int vo_volume_project_move(VoDaemon *d, const char *key, const char *project,
                           int64_t disk_bytes, char **ret_error);
int vo_network_project_move(VoDaemon *d, const char *name, const char *project,
                            char **ret_error);

/* Sets "project" (a name or null) on each item of list (volumes, with
 * "pool" and "name"; networks, with "name"), as the store says (a volume
 * of no project of its own attached to a VM here: its VM's, and
 * "project_of_vm" true); then,
 * with only (not NULL), keeps those of project only. 0 or the store's
 * error. */
int vo_volumes_add_projects(VoDaemon *d, json_t *list, const char *only);
int vo_networks_add_projects(VoDaemon *d, json_t *list, const char *only);
/* The same for one volume's or network's JSON (kind "volume", "network";
 * null when the store cannot say). */
void vo_object_add_project(VoDaemon *d, json_t *item, const char *kind);

/* A VM's save from relations have to want (state/relations.h) in project:
 * every volume and network it newly uses (all of them when the VM comes
 * into the project) must be of that project or of none: else -EBUSY with
 * *ret_error naming both; -EBUSY too while one is being moved to another
 * project. The save commits compared on what was read (cmps: appended;
 * state/project-objects.h), so a move on another host and the save never
 * both commit. */
int vo_vm_objects_check(VoDaemon *d, const char *vm_name, const char *project, json_t *have,
                        json_t *want, VoObjectCompares *cmps, char **ret_error);
/* The same for one volume key (volume) or network: 0 or -EBUSY. */
int vo_vm_object_allowed(VoDaemon *d, const char *vm_name, const char *project, bool volume,
                         const char *object, char **ret_error);
