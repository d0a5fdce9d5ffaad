/* projects.h: projects, documents of the whole cluster (a standalone host
 * keeps them too, as a cluster of one; docs/projects.md):
 *   cluster/projects/<name>                    {"quotas": {...}, "created_at"}
 *   cluster/project-usage/<name>/<vm-id>       {"vm","name","host","vcpus","memory_mib"}
 * A VM belongs to one project (spec field "project"; none: "default",
 * which exists without a document until its quotas are set). Its usage
 * document is written in the VM's own transactions (state/relations.h).
 * A change that raises a VM's usage is checked against its project's
 * quotas with the project's document read first and the usage read after
 * it, and commits compared on that document (put again), so two changes
 * that race for the same room never both commit (one checks again). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"
#include "state/project-usage.h"

/* The API's side. Each returns 0 or -errno with *ret_error saying what to
 * fix. A project's JSON: {"name","quotas","usage","counts","created_at"}
 * (counts: {"volumes","networks"}, its own on every host). */
int vo_project_create(VoDaemon *d, const char *name, json_t *quotas, json_t **ret,
                      char **ret_error);
int vo_projects_list_json(VoDaemon *d, json_t **ret, char **ret_error);
/* With "vms": [{"vm","name","host"}] too. */
int vo_project_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
/* quotas: the limits to change ({"vcpus": 8, "vms": null}: null removes one). */
int vo_project_set(VoDaemon *d, const char *name, json_t *quotas, json_t **ret,
                   char **ret_error);
/* Refused (-EBUSY) while it holds a VM, naming them; "default" never. */
int vo_project_delete(VoDaemon *d, const char *name, char **ret_error);
/* -ENOENT with words when project (not "default") does not exist. */
int vo_project_exists(VoDaemon *d, const char *name, char **ret_error);
