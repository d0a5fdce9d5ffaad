/* projects-snapshot.h: every project with its document and its usage, read
 * as of one store revision (one list over both prefixes), for GET
 * /v1/projects: a volume, network or VM moved between two projects while
 * it reads counts in one of them, never in both nor in neither. */
#pragma once

#include <jansson.h>

#include "state/project-usage.h"
#include "state/store.h"

typedef struct {
    char *name;
    json_t *doc; /* NULL: "default" without a document */
    VoProjectUsage usage; /* its sums (no vms nor objects listed) */
} VoProjectRead;

/* The projects with a document, in name order, then "default" when it has
 * none (usage documents of a project without one are not listed): 0 with
 * *ret and *ret_n, or the store's error. A damaged document is left out. */
int vo_projects_snapshot(VoStore *s, VoProjectRead **ret, size_t *ret_n);
void vo_projects_snapshot_free(VoProjectRead *all, size_t n);
