/* object-gate.h: the project gate of volumes and networks (object-gate.c),
 * which project-gate.c asks for a principal scoped to projects. */
#pragma once

#include <stdbool.h>

#include "api/access.h"
#include "api/http.h"

/* 1: may go on; 0: refused, rep filled (404 or 403); -1: not a volume's
 * or network's route. */
int vo_api_object_gate(VoRequest *req, VoReply *rep, const VoPrincipal *p, const char *pattern);
/* The volume a VM route's body names in field (a disk added, a CD-ROM, a
 * create's disk_volume): false with 404 unless p may see it. */
bool vo_api_object_gate_volume_of_vm(VoRequest *req, VoReply *rep, const VoPrincipal *p,
                                     const char *field);
/* The same for the networks a VM route's body names in field (a NIC's
 * "network", a create's "networks"): another project's answers 404. */
bool vo_api_object_gate_network_of_vm(VoRequest *req, VoReply *rep, const VoPrincipal *p,
                                      const char *field);
/* Keeps the volumes (of its projects) and networks (of its projects and of
 * none) p may see in the answer of GET /v1/volumes or /v1/networks. */
void vo_api_object_filter(const VoPrincipal *p, VoReply *rep, const char *pattern);
/* Sets each pool's "volumes" in the answer of GET /v1/pools or
 * /v1/pools/{pool} to the count of the volumes p may see there
 * (pool-counts.c), not the pool's all. */
void vo_api_object_filter_pools(VoDaemon *d, const VoPrincipal *p, VoReply *rep,
                                const char *pattern);
