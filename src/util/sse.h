/* sse.h: Server-Sent Events as vireo uses them (GET /v1/events): which kind
 * and object a store key names, one change formatted as an event, the
 * Last-Event-ID / since revision parsed, and an incremental parser of an
 * event stream for clients (the CLI). Pure functions, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The object kinds events carry, from the key's first segment ("vms/<id>" is
 * a vm with id <id>; "volumes/<pool>/<name>" a volume with id "<pool>/<name>").
 * NULL-terminated. */
extern const char *const vo_sse_kinds[];

/* The kind (a vo_sse_kinds entry) and the object id of key; false for keys
 * that are vireod's own bookkeeping (not documents: no event is sent). */
bool vo_sse_key_object(const char *key, const char **ret_kind, const char **ret_id);

/* Whether name is one of vo_sse_kinds. */
bool vo_sse_kind_known(const char *name);
/* The key prefix of kind ("vms/" for vm), NULL when unknown. */
const char *vo_sse_kind_prefix(const char *kind);

/* One change as an SSE event, malloc'd:
 *   id: <rev>\nevent: <kind>\ndata: {"rev":..,"kind":..,"id":..,"action":"put"|"delete","object":..}\n\n
 * value is the document's JSON text (NULL for a delete: "object":null; text
 * that is not JSON is sent as a JSON string). index 0: the id is "<rev>";
 * otherwise "<rev>.<index>" (see VoSseIds). */
char *vo_sse_format_change(int64_t rev, unsigned index, const char *kind, const char *id,
                           bool deleted, const char *value);
/* The same with "host": host (the name of the host whose document changed,
 * in a cluster) in the data; host NULL: none (vo_sse_format_change). */
char *vo_sse_format_change_host(int64_t rev, unsigned index, const char *kind, const char *id,
                                bool deleted, const char *value, const char *host);

/* A revision as since= carries it: decimal digits, >= 0. Returns 0 or
 * -EINVAL. */
int vo_sse_parse_rev(const char *text, int64_t *ret_rev);
/* An event id as Last-Event-ID carries it: "<rev>" (every event of rev was
 * seen: *ret_index 0) or "<rev>.<i>" (the first i >= 1 events of rev on the
 * stream were seen). Returns 0 or -EINVAL. */
int vo_sse_parse_event_id(const char *text, int64_t *ret_rev, unsigned *ret_index);

/* Event ids along one stream. The changes of one store transaction share
 * its revision R; a client that drops after the first of them and resumes
 * with "R" would lose the others. So when more events of R follow on the
 * stream, the k-th is sent with id "R.k"; the last event of R has the
 * plain "R" (so a revision of one change keeps the plain id). A stream
 * resumed after "R.k" (watch from R-1, the same filters) skips the first k
 * events of R: nothing lost, nothing repeated. */
typedef struct {
    int64_t rev;      /* the revision being numbered */
    unsigned count;   /* its events sent (or skipped) so far */
    int64_t skip_rev; /* resumed after "skip_rev.skip_n": those were seen */
    unsigned skip_n;
} VoSseIds;

/* The next event of the stream, of revision rev; more: whether another event
 * of rev follows on the stream. False when it is to be skipped (seen before
 * the resume); else *ret_index is the index for vo_sse_format_change. */
bool vo_sse_ids_next(VoSseIds *ids, int64_t rev, bool more, unsigned *ret_index);

/* ---- the client side ---- */

typedef struct {
    const char *id;    /* "" when the event had no id: line */
    const char *event; /* "message" when the event had no event: line */
    const char *data;  /* data: lines joined with '\n' */
} VoSseEvent;

/* Called for each complete event; a non-zero return stops vo_sse_feed, which
 * returns it. Comment lines (": ...", heartbeats) are not events. */
typedef int (*VoSseEventFn)(const VoSseEvent *ev, void *userdata);

typedef struct VoSseParser VoSseParser;

VoSseParser *vo_sse_parser_new(VoSseEventFn fn, void *userdata);
VoSseParser *vo_sse_parser_free(VoSseParser *p);
/* Feeds bytes as they arrive (any split); returns 0, fn's non-zero return,
 * or -E2BIG when one line exceeds 16 MiB. */
int vo_sse_feed(VoSseParser *p, const char *data, size_t len);
/* The id of the last event seen (the resume point), "" before any. */
const char *vo_sse_last_id(const VoSseParser *p);
