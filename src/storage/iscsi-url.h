/* iscsi-url.h: the iSCSI names vireo handles, without I/O: a portal
 * ("IP[:PORT]"), a target's IQN, and the string that stands for an iSCSI
 * pool or LUN where a dir pool has a directory or a file:
 *   iscsi://[USER@]HOST:PORT/TARGET[/LUN][?secret=FILE&initiator=IQN]
 * (docs/storage-san.md). A LUN's string is what a VM disk's resolved path
 * holds; the QEMU layer turns it into -blockdev driver=iscsi (the CHAP secret
 * file into -object secret). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define VO_ISCSI_DEFAULT_PORT 3260
#define VO_ISCSI_URL_PREFIX "iscsi://"

typedef struct {
    char *host;      /* IPv4 address or host name */
    unsigned port;
    char *target;    /* IQN */
    int lun;         /* -1: none (a pool) */
    char *user;      /* CHAP user, or NULL */
    char *secret;    /* file holding the CHAP secret, or NULL */
    char *initiator; /* initiator IQN, or NULL */
} VoIscsiUrl;

void vo_iscsi_url_clear(VoIscsiUrl *u);
/* "IP[:PORT]" (port 1-65535, default 3260; IPv6 is not supported): 0, or
 * -EINVAL with *ret_error naming what to fix. */
int vo_iscsi_portal_parse(const char *s, char **ret_host, unsigned *ret_port, char **ret_error);
/* An IQN ("iqn.YYYY-MM.reversed.domain[:name]", lower case) or EUI name
 * ("eui." and 16 hex digits). */
bool vo_iscsi_name_valid(const char *s);
/* A CHAP user name: 1-64 characters of [A-Za-z0-9._:-]. */
bool vo_iscsi_user_valid(const char *s);
bool vo_iscsi_url_is(const char *s);
/* The string of u (lun < 0: a pool's), malloc'd. */
char *vo_iscsi_url_format(const VoIscsiUrl *u);
/* The same without user, secret and initiator (what qemu-img opens). */
char *vo_iscsi_url_plain(const VoIscsiUrl *u);
/* Parses what vo_iscsi_url_format writes: 0, or -EINVAL (*ret left empty). */
int vo_iscsi_url_parse(const char *s, VoIscsiUrl *ret);
/* The options of QEMU's iscsi driver that open LUN u (lun >= 0): portal,
 * target, LUN, initiator name, and with CHAP the user and
 * "password-secret": secret_id (an --object secret the caller adds, read
 * from u->secret). For a VM's -blockdev and for qemu-img's "json:" names
 * alike; NULL when u names no LUN. */
json_t *vo_iscsi_url_blockdev(const VoIscsiUrl *u, const char *secret_id);
