/* time-format.h: wall-clock milliseconds as ISO-8601 UTC strings for the API. */
#pragma once

#include <jansson.h>
#include <stdint.h>

/* "2026-11-22T01:02:03Z" into buf (at least 21 bytes). */
void vo_time_format(int64_t wall_ms, char buf[static 32]);
json_t *vo_time_json(int64_t wall_ms);
