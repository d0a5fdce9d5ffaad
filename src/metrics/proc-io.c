/* proc-io.c: /proc/diskstats and /proc/net/dev summed (proc-io.h). */
#include "metrics/proc-io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int vo_diskstats_sum(const char *text, bool (*want)(const char *name), VoDiskCounters *ret)
{
    *ret = (VoDiskCounters){ 0 };
    int lines = 0;
    for (const char *line = text; line && *line;) {
        unsigned major, minor;
        char name[64];
        uint64_t rd, rd_merged, rd_sect, rd_ms, wr, wr_merged, wr_sect;
        if (sscanf(line, "%u %u %63s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                         " %" SCNu64 " %" SCNu64,
                   &major, &minor, name, &rd, &rd_merged, &rd_sect, &rd_ms, &wr, &wr_merged,
                   &wr_sect) == 10) {
            lines++;
            if (want(name)) {
                ret->rd_ops += rd;
                ret->wr_ops += wr;
                ret->rd_bytes += rd_sect * 512;
                ret->wr_bytes += wr_sect * 512;
            }
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return lines ? 0 : -EINVAL;
}

int vo_netdev_sum(const char *text, bool (*want)(const char *name), VoNetCounters *ret)
{
    *ret = (VoNetCounters){ 0 };
    if (!text || !strstr(text, "Receive"))
        return -EINVAL;
    for (const char *line = text; line && *line;) {
        const char *colon = strchr(line, ':'), *end = strchr(line, '\n');
        if (colon && (!end || colon < end)) {
            const char *s = line;
            while (*s == ' ')
                s++;
            char name[64];
            size_t n = (size_t)(colon - s);
            uint64_t v[9];
            if (n > 0 && n < sizeof(name) &&
                sscanf(colon + 1,
                       "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                       " %" SCNu64 " %" SCNu64 " %" SCNu64,
                       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) == 9) {
                memcpy(name, s, n);
                name[n] = 0;
                if (want(name)) {
                    ret->rx_bytes += v[0];
                    ret->tx_bytes += v[8];
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}
