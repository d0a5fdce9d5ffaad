/* vm-place-api.h: where POST /v1/vms is served in a cluster. A create
 * without X-Vireo-Forwarded goes to the manager (forwarded with
 * X-Vireo-Place, asked again once only when the request never reached it:
 * the connection was not taken (after the role moved) or it answered it is
 * not the manager; a request it may have got is never repeated: 503, the
 * outcome unknown); the manager places it (a host asked with X-Vireo-Place
 * that is not the manager answers 503 and does nothing)
 * and forwards it to the chosen host with "host" set to that host's id, or
 * serves it itself; a forwarded create is served where it arrives.
 * Standalone: served here; a "host" must name this host. */
#pragma once

#include <stdbool.h>

#include "api/http.h"
#include "daemon/cluster-place.h"

#define VO_PLACE_HEADER "X-Vireo-Place"

/* True when rep is the answer (forwarded, or an error). False: create the VM
 * here; *ret_choice may then hold a reservation: pass it to
 * vo_api_vm_create_done with the result. */
bool vo_api_vm_create_elsewhere(VoRequest *req, VoReply *rep, const VoPlaceAsk *ask,
                                VoPlaceChoice *ret_choice);
/* After a create served here: rewrites the host's record (in a cluster:
 * from this thread, its revision answered in VO_RECORD_REV_HEADER on
 * rep's 202, so the manager that placed it reads nothing more), then gives
 * back or keeps the reservation. */
void vo_api_vm_create_done(VoRequest *req, VoReply *rep, VoPlaceChoice *choice, bool created);
