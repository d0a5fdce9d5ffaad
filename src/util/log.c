/* log.c: leveled logging to stderr with a timestamp; thread-safe because each
 * line is formatted first and written with a single write(2). */
#include "util.h"

#include <string.h>
#include <time.h>

static VoLogLevel min_level = VO_LOG_INFO;

void vo_log_set_level(VoLogLevel level)
{
    min_level = level;
}

void vo_log(VoLogLevel level, const char *fmt, ...)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };
    if (level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2200];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], msg);
    if (n > (int)sizeof(line))
        n = sizeof(line);
    (void)!write(STDERR_FILENO, line, (size_t)n);
}
