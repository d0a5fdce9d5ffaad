/* qemu-schedstat.c: run_delay from schedstat text and its running total
 * over a process's threads (qemu-schedstat.h). */
#include "qemu/qemu-schedstat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int vo_schedstat_run_delay(const char *text, uint64_t *ret)
{
    /* Exactly three unsigned decimal fields, one space apart, then the
     * newline (or the end). */
    uint64_t field[3];
    const char *p = text;
    for (int i = 0; p && i < 3; i++) {
        if (i > 0 && *p++ != ' ')
            return -EINVAL;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno)
            return -EINVAL;
        field[i] = v;
        p = end;
    }
    if (!p || !(*p == 0 || (*p == '\n' && p[1] == 0)))
        return -EINVAL;
    *ret = field[1];
    return 0;
}

static int cmp_tid(const void *a, const void *b)
{
    int x = ((const VoThreadWait *)a)->tid, y = ((const VoThreadWait *)b)->tid;
    return (x > y) - (x < y);
}

uint64_t vo_thread_waits_add(VoThreadWaits *w, VoThreadWait *now, size_t n)
{
    if (n)
        qsort(now, n, sizeof(*now), cmp_tid);
    uint64_t added = 0;
    for (size_t i = 0; w->primed && i < n; i++) {
        const VoThreadWait *was = w->n ? bsearch(&now[i], w->threads, w->n,
                                                 sizeof(*now), cmp_tid)
                                       : NULL;
        if (was && now[i].run_delay_ns >= was->run_delay_ns)
            added += now[i].run_delay_ns - was->run_delay_ns;
        else
            added += now[i].run_delay_ns; /* born since the last reading */
    }
    free(w->threads);
    w->threads = n ? vo_malloc0(n * sizeof(*now)) : NULL;
    if (n)
        memcpy(w->threads, now, n * sizeof(*now));
    w->n = n;
    w->primed = true;
    w->total_ns += added;
    return added;
}

void vo_thread_waits_clear(VoThreadWaits *w)
{
    free(w->threads);
    *w = (VoThreadWaits){ 0 };
}
