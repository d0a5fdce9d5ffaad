/* host-facts.c: what this machine is and how busy it is, from /proc (see
 * host-facts.h). The parsers are pure so that unit tests feed them text. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/host-facts.h"
#include "util/util.h"

/* The value after "key<spaces>: " on a line starting with key, or NULL. */
static const char *field(const char *line, const char *key)
{
    size_t n = strlen(key);
    if (strncmp(line, key, n) != 0)
        return NULL;
    const char *p = line + n;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static json_t *sorted_flags(const char *list, size_t len)
{
    _cleanup_free_ char *copy = strndup(list, len);
    json_t **items = NULL;
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        items = realloc(items, sizeof(*items) * (n + 1));
        if (!items)
            abort();
        items[n++] = json_string(t);
    }
    if (n)
        qsort(items, n, sizeof(*items), cmp_json_str);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(json_string_value(items[i]), json_string_value(items[i - 1])))
            json_array_append_new(arr, items[i]);
        else
            json_decref(items[i]);
    free(items);
    return arr;
}

void vo_host_facts_parse_cpuinfo(const char *text, VoHostFacts *f)
{
    unsigned processors = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *v;
        if (field(line, "processor"))
            processors++;
        else if (!f->cpu_model && (v = field(line, "model name")) && v < line + len)
            f->cpu_model = strndup(v, (size_t)(line + len - v));
        else if (!f->cpu_flags && (v = field(line, "flags")) && v <= line + len)
            f->cpu_flags = sorted_flags(v, (size_t)(line + len - v));
        line = end ? end + 1 : NULL;
    }
    if (!f->cpu_model)
        f->cpu_model = vo_strdup("unknown");
    if (!f->cpu_flags)
        f->cpu_flags = json_array();
    if (processors)
        f->cpus = processors;
}

void vo_host_facts_parse_meminfo(const char *text, VoHostFacts *f)
{
    uint64_t total_kib = 0, avail_kib = 0;
    for (const char *line = text; line && *line;) {
        const char *v;
        if ((v = field(line, "MemTotal")))
            total_kib = strtoull(v, NULL, 10);
        else if ((v = field(line, "MemAvailable")))
            avail_kib = strtoull(v, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (total_kib) {
        f->memory_mib = total_kib >> 10;
        f->memory_used_mib = avail_kib <= total_kib ? (total_kib - avail_kib) >> 10 : 0;
    }
}

bool vo_host_parse_cpu_sample(const char *text, VoCpuSample *s)
{
    uint64_t v[8] = { 0 };
    if (sscanf(text, "cpu %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                     " %" SCNu64 " %" SCNu64,
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
        return false;
    /* user nice system idle iowait irq softirq steal: idle and iowait are
     * not busy. */
    s->total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    s->busy = s->total - v[3] - v[4];
    return true;
}

double vo_host_cpu_busy(const VoCpuSample *before, const VoCpuSample *after)
{
    if (after->total <= before->total || after->busy < before->busy)
        return 0;
    double busy = (double)(after->busy - before->busy) / (double)(after->total - before->total);
    return busy > 1 ? 1 : busy;
}

void vo_host_facts_read(VoHostFacts *f)
{
    _cleanup_free_ char *cpuinfo = NULL, *meminfo = NULL;
    if (vo_read_file("/proc/cpuinfo", 4 << 20, &cpuinfo, NULL) < 0)
        cpuinfo = NULL;
    vo_host_facts_parse_cpuinfo(cpuinfo ? cpuinfo : "", f);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (!f->cpus)
        f->cpus = online > 0 ? (unsigned)online : 1;
    if (vo_read_file("/proc/meminfo", 1 << 20, &meminfo, NULL) == 0)
        vo_host_facts_parse_meminfo(meminfo, f);
}

bool vo_host_cpu_sample_read(VoCpuSample *s)
{
    _cleanup_free_ char *stat = NULL;
    return vo_read_file("/proc/stat", 1 << 20, &stat, NULL) == 0 &&
           vo_host_parse_cpu_sample(stat, s);
}

void vo_host_facts_clear(VoHostFacts *f)
{
    free(f->cpu_model);
    json_decref(f->cpu_flags);
    *f = (VoHostFacts){ 0 };
}
