/* project-heal.h: usage documents of projects whose volume or network is
 * gone (a crash of vireod between the object's delete and the removal of
 * its project's documents, or a store error then): removed at start and
 * at a project's delete for the objects this host can tell about, so the
 * project is not "not empty" forever; the others named with their host
 * (docs/projects.md, "Left behind by a crash"). */
#pragma once

#include <jansson.h>

#include "daemon/daemon.h"

/* Removes the documents of this host's volumes (local pools) and networks
 * that are gone, in project (NULL: every project). The number removed, or
 * the store's error. */
int vo_project_heal(VoDaemon *d, const char *project);
/* For a project's delete refused for object one ({"kind","object","scope",
 * "host"}, as vo_project_usage_read lists it): "" when it is this host's or
 * the whole cluster's, else " (on host 'h2', offline: ...)" saying why this
 * host cannot tell whether it still exists. malloc'd. */
char *vo_project_object_where(VoDaemon *d, json_t *one);
