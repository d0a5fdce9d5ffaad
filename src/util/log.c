/* log.c: leveled logging to stderr with a timestamp; thread-safe because each
 * line is formatted first and written with a single write(2). A message is
 * always one line: control bytes in it (a user's string with a newline in a
 * request path, say) are written as \xNN, so no one can forge log lines. */
#include "util.h"

#include <string.h>
#include <time.h>

static VoLogLevel min_level = VO_LOG_INFO;

void vo_log_set_level(VoLogLevel level)
{
    min_level = level;
}

void vo_log_escape(const char *msg, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)msg; *c && o + 5 <= size; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*c >> 4];
            out[o++] = hex[*c & 15];
        } else
            out[o++] = (char)*c;
    }
    out[o] = 0;
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
    char safe[sizeof(msg) * 4];
    vo_log_escape(msg, safe, sizeof(safe));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[sizeof(safe) + 64];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], safe);
    if (n > (int)sizeof(line))
        n = sizeof(line);
    (void)!write(STDERR_FILENO, line, (size_t)n);
}
