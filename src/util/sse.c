/* sse.c: Server-Sent Events helpers (see sse.h): store keys to kinds and
 * object ids, events formatted for GET /v1/events, and the client-side
 * stream parser (lines ending in \n, \r\n or \r; fields id, event, data). */
#include "util/sse.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "conf/cloud-init.h"
#include "util/util.h"

#define MAX_LINE (16u << 20)

/* Key prefix → kind. Keys under other prefixes (settings/, intents, ...) are
 * vireod's bookkeeping, not documents users see. */
static const struct {
    const char *prefix;
    const char *kind;
} kind_table[] = {
    { "vms/", "vm" },           { "volumes/", "volume" },   { "pools/", "pool" },
    { "networks/", "network" }, { "operations/", "operation" }, { "images/", "image" },
    { "backups/", "backup" },   { "snapshots/", "snapshot" },
};

const char *const vo_sse_kinds[] = { "vm",    "volume", "pool",   "network", "operation",
                                     "image", "backup", "snapshot", NULL };

bool vo_sse_key_object(const char *key, const char **ret_kind, const char **ret_id)
{
    for (size_t i = 0; i < ELEMENTSOF(kind_table); i++) {
        size_t n = strlen(kind_table[i].prefix);
        if (!strncmp(key, kind_table[i].prefix, n) && key[n]) {
            *ret_kind = kind_table[i].kind;
            *ret_id = key + n;
            return true;
        }
    }
    return false;
}

bool vo_sse_kind_known(const char *name)
{
    for (size_t i = 0; vo_sse_kinds[i]; i++)
        if (!strcmp(vo_sse_kinds[i], name))
            return true;
    return false;
}

const char *vo_sse_kind_prefix(const char *kind)
{
    for (size_t i = 0; i < ELEMENTSOF(kind_table); i++)
        if (!strcmp(kind_table[i].kind, kind))
            return kind_table[i].prefix;
    return NULL;
}

char *vo_sse_format_change(int64_t rev, unsigned index, const char *kind, const char *id,
                           bool deleted, const char *value)
{
    return vo_sse_format_change_host(rev, index, kind, id, deleted, value, NULL);
}

char *vo_sse_format_change_host(int64_t rev, unsigned index, const char *kind, const char *id,
                                bool deleted, const char *value, const char *host)
{
    json_t *object = json_null();
    if (!deleted && value) {
        object = json_loads(value, JSON_DECODE_ANY, NULL);
        if (!object)
            object = json_string(value);
        if (!object) /* not UTF-8 either */
            object = json_null();
    }
    /* Every reader sees the stream: a VM's or backup's cloud-init secrets
     * are an admin's (GET /v1/vms/{vm}/cloud-init). */
    if (!strcmp(kind, "vm") || !strcmp(kind, "backup"))
        vo_cloud_init_hide_secrets(object);
    json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:o}", "rev", (json_int_t)rev, "kind", kind,
                            "id", id, "action", deleted ? "delete" : "put", "object", object);
    if (!doc) /* an id that is not UTF-8: never from vireod's own keys */
        doc = json_pack("{s:I, s:s, s:n, s:s, s:n}", "rev", (json_int_t)rev, "kind", kind, "id",
                        "action", deleted ? "delete" : "put", "object");
    if (host)
        json_object_set_new(doc, "host", json_string(host));
    /* JSON_COMPACT escapes newlines inside strings: data stays one line. */
    char *data = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *ev = index ? vo_asprintf("id: %lld.%u\nevent: %s\ndata: %s\n\n", (long long)rev,
                                   index, kind, data)
                     : vo_asprintf("id: %lld\nevent: %s\ndata: %s\n\n", (long long)rev, kind, data);
    free(data);
    return ev;
}

int vo_sse_parse_rev(const char *text, int64_t *ret_rev)
{
    if (!text || !text[0] || strlen(text) > 18)
        return -EINVAL;
    int64_t v = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -EINVAL;
        v = v * 10 + (*c - '0');
    }
    *ret_rev = v;
    return 0;
}

int vo_sse_parse_event_id(const char *text, int64_t *ret_rev, unsigned *ret_index)
{
    const char *dot = text ? strchr(text, '.') : NULL;
    if (!dot) {
        *ret_index = 0;
        return vo_sse_parse_rev(text, ret_rev);
    }
    size_t n = (size_t)(dot - text);
    char rev_text[24];
    int64_t index = 0;
    if (n == 0 || n >= sizeof(rev_text) || strlen(dot + 1) > 9 ||
        vo_sse_parse_rev(dot + 1, &index) < 0 || index < 1)
        return -EINVAL;
    memcpy(rev_text, text, n);
    rev_text[n] = '\0';
    if (vo_sse_parse_rev(rev_text, ret_rev) < 0 || *ret_rev < 1)
        return -EINVAL;
    *ret_index = (unsigned)index;
    return 0;
}

bool vo_sse_ids_next(VoSseIds *ids, int64_t rev, bool more, unsigned *ret_index)
{
    if (rev != ids->rev) {
        ids->rev = rev;
        ids->count = 0;
    }
    ids->count++;
    if (rev == ids->skip_rev && ids->count <= ids->skip_n)
        return false;
    *ret_index = more ? ids->count : 0;
    return true;
}

/* ---- parser ---- */

typedef struct {
    char *s;
    size_t len, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = realloc(b->s, cap);
        if (!b->s)
            abort();
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_set(Buf *b, const char *s, size_t n)
{
    b->len = 0;
    buf_add(b, s, n);
}

struct VoSseParser {
    VoSseEventFn fn;
    void *userdata;
    Buf line, id, event, data;
    bool has_data;
    bool after_cr; /* the last byte was \r: a \n right after it ends nothing */
};

VoSseParser *vo_sse_parser_new(VoSseEventFn fn, void *userdata)
{
    VoSseParser *p = vo_malloc0(sizeof(*p));
    p->fn = fn;
    p->userdata = userdata;
    buf_set(&p->line, "", 0);
    buf_set(&p->id, "", 0);
    buf_set(&p->event, "", 0);
    buf_set(&p->data, "", 0);
    return p;
}

VoSseParser *vo_sse_parser_free(VoSseParser *p)
{
    if (p) {
        free(p->line.s);
        free(p->id.s);
        free(p->event.s);
        free(p->data.s);
        free(p);
    }
    return NULL;
}

const char *vo_sse_last_id(const VoSseParser *p)
{
    return p->id.s;
}

/* An empty line: dispatch the event collected so far. */
static int dispatch(VoSseParser *p)
{
    int r = 0;
    if (p->has_data) {
        if (p->data.len > 0 && p->data.s[p->data.len - 1] == '\n')
            p->data.s[--p->data.len] = '\0';
        VoSseEvent ev = { .id = p->id.s, .event = p->event.len ? p->event.s : "message",
                          .data = p->data.s };
        r = p->fn(&ev, p->userdata);
    }
    p->has_data = false;
    buf_set(&p->data, "", 0);
    buf_set(&p->event, "", 0);
    return r;
}

static int process_line(VoSseParser *p)
{
    const char *line = p->line.s;
    size_t len = p->line.len;
    if (len == 0)
        return dispatch(p);
    if (line[0] == ':')
        return 0; /* a comment: heartbeats */
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    if (colon && *value == ' ')
        value++;
    size_t value_len = (size_t)(line + len - value);
    if (name_len == 4 && !strncmp(line, "data", 4)) {
        buf_add(&p->data, value, value_len);
        buf_add(&p->data, "\n", 1);
        p->has_data = true;
    } else if (name_len == 5 && !strncmp(line, "event", 5))
        buf_set(&p->event, value, value_len);
    else if (name_len == 2 && !strncmp(line, "id", 2) && !memchr(value, '\0', value_len))
        buf_set(&p->id, value, value_len);
    /* retry: and unknown fields are ignored, as the standard says. */
    return 0;
}

int vo_sse_feed(VoSseParser *p, const char *data, size_t len)
{
    for (size_t i = 0; i < len;) {
        char c = data[i];
        if (c == '\n' && p->after_cr) { /* the \n of a \r\n */
            p->after_cr = false;
            i++;
            continue;
        }
        p->after_cr = false;
        if (c == '\n' || c == '\r') {
            p->after_cr = c == '\r';
            i++;
            int r = process_line(p);
            buf_set(&p->line, "", 0);
            if (r)
                return r;
            continue;
        }
        /* The run of ordinary bytes up to the next line end, in one go. */
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        if (p->line.len + (j - i) > MAX_LINE)
            return -E2BIG;
        buf_add(&p->line, data + i, j - i);
        i = j;
    }
    return 0;
}
