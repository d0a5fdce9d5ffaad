/* qemu-schedstat.c: run_delay from schedstat text and its running total
 * over a process's threads (qemu-schedstat.h). */
#include "qemu/qemu-schedstat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int vo_schedstat_run_delay(const char *text, uint64_t *ret)
{
    unsigned long long run, delay;
    char end = 0;
    /* Three unsigned decimal fields; nothing else but the newline. */
    if (!text || strchr(text, '-') ||
        sscanf(text, "%llu %llu %*llu%c", &run, &delay, &end) != 3 || end != '\n')
        return -EINVAL;
    *ret = delay;
    return 0;
}

static int cmp_tid(const void *a, const void *b)
{
    int x = ((const VoThreadWait *)a)->tid, y = ((const VoThreadWait *)b)->tid;
    return (x > y) - (x < y);
}

uint64_t vo_thread_waits_add(VoThreadWaits *w, VoThreadWait *now, size_t n)
{
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
