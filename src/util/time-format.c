/* time-format.c: ISO-8601 formatting of wall-clock times (see time-format.h). */
#include "util/time-format.h"

#include <stdio.h>
#include <time.h>

void vo_time_format(int64_t wall_ms, char buf[static 32])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *vo_time_json(int64_t wall_ms)
{
    char buf[32];
    vo_time_format(wall_ms, buf);
    return json_string(buf);
}
