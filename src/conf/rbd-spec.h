/* rbd-spec.h: the parts of an rbd pool's create request (monitors, Ceph
 * pool, cephx user, keyring) checked without I/O, and the reading of a
 * cephx key out of a keyring file's text. No I/O here. */
#pragma once

#include <stdbool.h>

/* At most this many monitors in --monitors. */
#define VO_RBD_MAX_MONITORS 16

/* "IP[,IP...]": each an IPv4 address or [IPv6] address, with an optional
 * :PORT (1-65535); 1..VO_RBD_MAX_MONITORS of them, no spaces. */
bool vo_rbd_monitors_valid(const char *monitors);
/* A Ceph pool name: 1-63 of A-Z a-z 0-9 _ - . not starting with '.'. */
bool vo_rbd_pool_name_valid(const char *name);
/* A cephx user id without "client.": 1-63 of A-Z a-z 0-9 _ - . */
bool vo_rbd_user_valid(const char *user);
/* The key of [client.USER] in a keyring's text (or of the only section
 * when there is one): 0 and *ret_key (malloc'd), or -ENOENT with
 * *ret_error naming what is missing. A key is base64 (A-Z a-z 0-9 + / =). */
int vo_rbd_keyring_key(const char *text, const char *user, char **ret_key, char **ret_error);
