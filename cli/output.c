/* output.c: printing for the CLI: JSON documents (pretty, sorted keys), tables
 * with aligned columns, key/value listings and human-readable units. */
#include "output.h"

#include <inttypes.h>
#include <string.h>

#include "util/util.h"

struct OutTable {
    size_t n_cols;
    size_t n_rows;
    char **cells; /* (n_rows + 1) * n_cols, the headers first */
};

void out_json(FILE *f, const json_t *doc)
{
    json_dumpf(doc, f, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', f);
}

OutTable *out_table_new(size_t n_cols, const char *const *headers)
{
    OutTable *t = vo_malloc0(sizeof(*t));
    t->n_cols = n_cols;
    t->cells = vo_malloc0(n_cols * sizeof(char *));
    for (size_t i = 0; i < n_cols; i++)
        t->cells[i] = vo_strdup(headers[i]);
    return t;
}

void out_table_add(OutTable *t, const char *const *cells)
{
    size_t base = (t->n_rows + 1) * t->n_cols;
    char **p = realloc(t->cells, (base + t->n_cols) * sizeof(char *));
    if (!p)
        abort();
    t->cells = p;
    for (size_t i = 0; i < t->n_cols; i++)
        t->cells[base + i] = vo_strdup(cells[i] ? cells[i] : "-");
    t->n_rows++;
}

/* How many columns s takes: its UTF-8 characters (tree lines such as "├─"
 * are one byte sequence each but one column). */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void out_table_print(const OutTable *t, FILE *f)
{
    _cleanup_free_ size_t *width = vo_malloc0(t->n_cols * sizeof(size_t));
    for (size_t r = 0; r <= t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t w = display_width(t->cells[r * t->n_cols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r <= t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = t->cells[r * t->n_cols + c];
            if (c + 1 < t->n_cols)
                fprintf(f, "%s%*s  ", s, (int)(width[c] - display_width(s)), "");
            else
                fprintf(f, "%s\n", s);
        }
    }
}

void out_table_free(OutTable *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < (t->n_rows + 1) * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

void out_kv(FILE *f, const char *key, const char *value)
{
    fprintf(f, "%-*s %s\n", 12, key, value ? value : "-");
}

char *fmt_duration(int64_t s)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        return vo_asprintf("%" PRId64 "s", s);
    if (s < 3600)
        return vo_asprintf("%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
    if (s < 86400)
        return vo_asprintf("%" PRId64 "h %" PRId64 "m", s / 3600, s % 3600 / 60);
    return vo_asprintf("%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
}

/* value / 2^shift with at most one decimal, dropping ".0" when exact. */
static char *fmt_scaled(uint64_t value, unsigned shift, const char *unit)
{
    uint64_t whole = value >> shift;
    uint64_t frac = value & ((1ULL << shift) - 1);
    if (frac == 0)
        return vo_asprintf("%" PRIu64 " %s", whole, unit);
    /* Round to one decimal. */
    uint64_t tenths = (uint64_t)((long double)frac * 10 / (long double)(1ULL << shift) + 0.5L);
    if (tenths == 10) {
        whole++;
        tenths = 0;
    }
    return vo_asprintf("%" PRIu64 ".%" PRIu64 " %s", whole, tenths, unit);
}

char *fmt_mib(uint64_t mib)
{
    if (mib >= (1ULL << 20))
        return fmt_scaled(mib, 20, "TiB");
    if (mib >= 1024)
        return fmt_scaled(mib, 10, "GiB");
    return vo_asprintf("%" PRIu64 " MiB", mib);
}

char *fmt_bytes(uint64_t bytes)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    if (bytes < 1024)
        return vo_asprintf("%" PRIu64 " B", bytes);
    unsigned i = 0;
    while (i + 1 < ELEMENTSOF(units) && bytes >> (10 * (i + 2)) > 0)
        i++;
    return fmt_scaled(bytes, 10 * (i + 1), units[i]);
}

const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

char *jint_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return NULL;
    return vo_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
}

char *jstrs_joined(const json_t *obj, const char *key)
{
    json_t *a = json_object_get(obj, key);
    if (!json_is_array(a))
        return NULL;
    char *s = vo_strdup("");
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) {
        char *next = vo_asprintf("%s%s%s", s, i ? ", " : "",
                                 json_string_value(x) ? json_string_value(x) : "?");
        free(s);
        s = next;
    }
    return s;
}

/* " key=value" for the details of an event line; nothing when value is NULL. */
static void detail(char **line, const char *key, const char *value)
{
    if (!value)
        return;
    char *more = vo_asprintf("%s %s=%s", *line, key, value);
    free(*line);
    *line = more;
}

char *fmt_event_line(const json_t *event)
{
    json_t *rev = json_object_get(event, "rev");
    char *line = vo_asprintf("%" JSON_INTEGER_FORMAT " %s %s %s",
                             json_is_integer(rev) ? json_integer_value(rev) : (json_int_t)0,
                             jstr(event, "kind") ? jstr(event, "kind") : "?",
                             jstr(event, "action") ? jstr(event, "action") : "?",
                             jstr(event, "id") ? jstr(event, "id") : "?");
    const json_t *obj = json_object_get(event, "object");
    const char *kind = jstr(event, "kind");
    if (!json_is_object(obj) || !kind)
        return line;
    if (!strcmp(kind, "vm")) {
        detail(&line, "name", jstr(json_object_get(obj, "spec"), "name"));
        detail(&line, "state", jstr(json_object_get(obj, "status"), "state"));
    } else if (!strcmp(kind, "operation")) {
        detail(&line, "op", jstr(obj, "kind"));
        detail(&line, "target", jstr(obj, "target"));
        detail(&line, "state", jstr(obj, "state"));
        _cleanup_free_ char *progress = jint_str(obj, "progress");
        detail(&line, "progress", progress);
    } else {
        detail(&line, "name", jstr(obj, "name"));
        detail(&line, "state", jstr(obj, "state"));
    }
    /* One line, whatever the names hold. */
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    return line;
}
