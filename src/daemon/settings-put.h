/* settings-put.h: a cluster settings document set field by field (PATCH
 * semantics) without losing another writer's field: read, merge the fields
 * given, write over the revision read, read again when it changed. Used by
 * the HA restart limit (ha-settings.c) and the DRS settings
 * (drs-config.c). */
#pragma once

#include <jansson.h>

#include "state/store.h"

/* Tries before a set whose document keeps changing under it gives up. */
#define VO_SETTINGS_PUT_TRIES 5

/* Reads the stored settings (defaults when absent) and their revision
 * into *ret_rev (VO_REV_NEW: none stored), applies the fields the request
 * gave (fields: the caller's, which also keeps the merged settings for its
 * answer), and returns the document to store (a new reference) in
 * *ret_doc. 0 or the store's -errno. */
typedef int (*VoSettingsMerge)(void *fields, int64_t *ret_rev, json_t **ret_doc);

/* Stores merge's document at key over the revision merge read; when
 * another writer changed it meanwhile, merges again over the new one, up to
 * VO_SETTINGS_PUT_TRIES times. hold: the test hold point (util/test-hold.h)
 * between the read and the write; what: the settings' name for messages
 * ("the DRS settings"). 0, or -ESTALE (409: changed under each try), or
 * the store's error, with *ret_error. */
int vo_settings_put(VoStore *store, const char *key, const char *hold, const char *what,
                    VoSettingsMerge merge, void *fields, char **ret_error);
