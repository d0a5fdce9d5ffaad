/* rbd-watchers.h: the clients that hold an RBD image open (its watchers),
 * and the blocklist that ends a dead client's watch at once instead of
 * after Ceph's watch timeout (osd_client_watch_timeout, 30 s). Each call
 * opens its own connection (bounded: VO_RBD_TIMEOUT_S). */
#pragma once

#include <stdint.h>

#include "storage/rbd-client.h"

/* The addresses ("IP:PORT/NONCE", one per client instance) of image's
 * watchers: their count with *ret (NULL-terminated; none: NULL), 0 when
 * there is no such image, or -errno. */
int vo_rbd_watchers(const VoRbdConf *c, const char *image, char ***ret, char **ret_error);
/* Blocklists client address addr for expire_s seconds (the cephx user
 * needs the monitor cap `profile rbd`, which allows it). */
int vo_rbd_blocklist(const VoRbdConf *c, const char *addr, uint32_t expire_s, char **ret_error);
