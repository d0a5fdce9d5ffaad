/* host-id.h: this host's stable id, which the files vireod makes in pools
 * that other hosts may share carry, so that each host sweeps only its own. */
#pragma once

#include "daemon/daemon.h"

/* STATE/host-id (8-64 lowercase hex digits), made on first use. malloc'd;
 * NULL when it can be neither read nor made. */
char *vo_host_id(VoDaemon *d);
