/* projects-snapshot.c: every project and its usage from one list of the
 * store (projects-snapshot.h). */
#include "state/projects-snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "state/keys.h"
#include "util/util.h"

#define DEFAULT_PROJECT "default"

typedef struct {
    VoProjectRead *all;
    size_t n;
    json_t *index; /* {name: its index in all} */
} Snapshot;

static VoProjectRead *project_named(Snapshot *s, const char *name, size_t len)
{
    _cleanup_free_ char *key = vo_asprintf("%.*s", (int)len, name);
    json_t *i = json_object_get(s->index, key);
    if (i)
        return &s->all[json_integer_value(i)];
    s->all = realloc(s->all, (s->n + 1) * sizeof(*s->all));
    if (!s->all)
        abort();
    s->all[s->n] = (VoProjectRead){ .name = vo_strdup(key) };
    json_object_set_new(s->index, key, json_integer((json_int_t)s->n));
    return &s->all[s->n++];
}

static int collect(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)rev;
    Snapshot *s = userdata;
    size_t docs = strlen(VO_KEY_PROJECTS_PREFIX), usage = strlen(VO_KEY_PROJECT_USAGE_PREFIX);
    if (!strncmp(key, VO_KEY_PROJECTS_PREFIX, docs)) {
        VoProjectRead *p = project_named(s, key + docs, strlen(key + docs));
        json_decref(p->doc);
        p->doc = json_loads(value, 0, NULL);
        if (!p->doc) /* damaged: a document all the same (NULL is "none") */
            p->doc = json_null();
    } else if (!strncmp(key, VO_KEY_PROJECT_USAGE_PREFIX, usage)) {
        const char *name = key + usage, *slash = strchr(name, '/');
        if (slash)
            vo_project_usage_add(&project_named(s, name, (size_t)(slash - name))->usage, key,
                                 value);
    }
    return 0;
}

static void clear_read(VoProjectRead *p)
{
    free(p->name);
    json_decref(p->doc);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const VoProjectRead *)a)->name, ((const VoProjectRead *)b)->name);
}

int vo_projects_snapshot(VoStore *store, VoProjectRead **ret, size_t *ret_n)
{
    Snapshot s = { .index = json_object() };
    int r = vo_store_list(store, VO_KEY_PROJECTS_AND_USAGE_PREFIX, collect, &s);
    json_decref(s.index);
    if (r < 0) {
        vo_projects_snapshot_free(s.all, s.n);
        return r;
    }
    /* Those with a document first, then "default" without one (one with a
     * damaged document is left out, as any other). */
    size_t kept = 0;
    VoProjectRead default_read = { 0 };
    bool default_listed = false;
    for (size_t i = 0; i < s.n; i++) {
        VoProjectRead *p = &s.all[i];
        bool is_default = !strcmp(p->name, DEFAULT_PROJECT);
        default_listed |= is_default && p->doc;
        if (json_is_object(p->doc))
            s.all[kept++] = *p;
        else if (is_default && !p->doc)
            default_read = *p;
        else
            clear_read(p);
    }
    qsort(s.all, kept, sizeof(*s.all), by_name);
    if (!default_listed) {
        s.all = realloc(s.all, (kept + 1) * sizeof(*s.all));
        if (!s.all)
            abort();
        s.all[kept++] = default_read.name ? default_read
                                          : (VoProjectRead){ .name = vo_strdup(DEFAULT_PROJECT) };
    }
    *ret = s.all;
    *ret_n = kept;
    return 0;
}

void vo_projects_snapshot_free(VoProjectRead *all, size_t n)
{
    for (size_t i = 0; all && i < n; i++)
        clear_read(&all[i]);
    free(all);
}
