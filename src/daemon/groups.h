/* groups.h: placement groups, documents of the whole cluster (a standalone
 * host keeps them too, as a cluster of one):
 *   cluster/groups/<name>                   {"name","policy","created_at"}
 *   cluster/group-members/<name>/<vm-id>    {"vm","name","host"}
 * A VM joins a group when it is created (spec field "group"); its member
 * document is written in the VM's own transactions (state/relations.h) and
 * deleted with it, so the manager reads which hosts hold a group's members
 * with one range read. A group with members is not deleted: a delete first
 * marks the group's document "deleting": true (a claim, daemon.h), then
 * lists its members; a VM joins compared on the group's document unmarked
 * (vo_group_joinable), so one of the two loses. */
#pragma once

#include <jansson.h>

#include "cluster/placement.h"
#include "daemon/daemon.h"

#define VO_GROUPS_PREFIX "cluster/groups/"
#define VO_GROUP_MEMBERS_PREFIX "cluster/group-members/"

/* Each returns 0 or -errno with *ret_error saying what to fix. */
int vo_group_create(VoDaemon *d, const char *name, const char *policy, json_t **ret_doc,
                    char **ret_error);
int vo_group_delete(VoDaemon *d, const char *name, char **ret_error);
/* {"groups": [{"name","policy","created_at","members": n}]} sorted by name. */
int vo_groups_list_json(VoDaemon *d, json_t **ret, char **ret_error);
/* {"name","policy","created_at","members": [{"vm","name","host"}]} */
int vo_group_show_json(VoDaemon *d, const char *name, json_t **ret, char **ret_error);
/* The group's policy; -ENOENT (with words) when it does not exist. */
int vo_group_policy(VoDaemon *d, const char *name, VoGroupPolicy *ret, char **ret_error);
/* 0 and the revision of the group's document when a VM may join it now;
 * -EIDRM when it is gone or marked deleting; or the store's error. */
int vo_group_joinable(VoDaemon *d, const char *name, int64_t *ret_rev);
/* The group's member documents: {key: {"vm","name","host"}}. */
int vo_group_members(VoDaemon *d, const char *name, json_t **ret);
