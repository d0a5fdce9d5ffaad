/* store-json.h: reading store documents as JSON objects. */
#pragma once

#include <jansson.h>

#include "state/store.h"

/* Lists prefix into `into`: {last key component: parsed document}; values
 * that are not JSON objects are skipped. 0 or the store's error. */
int vo_store_list_objects(VoStore *s, const char *prefix, json_t *into);
