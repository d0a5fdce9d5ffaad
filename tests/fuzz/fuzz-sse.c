/* fuzz-sse.c: libFuzzer target for the CLI's Server-Sent Events parser
 * (util/sse.c), which reads what arrives on GET /v1/events. The input is
 * the byte stream; it is fed twice, whole and then in chunks whose sizes
 * come from the input itself, and both feeds must give the same events and
 * the same resume point (a stream may be split anywhere on the way). */
#include <string.h>

#include "fuzz.h"
#include "util/sse.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

typedef struct {
    char *text; /* every event as "id\x1f event\x1f data\x1e", appended */
    size_t len;
} Seen;

static int on_event(const VoSseEvent *ev, void *userdata)
{
    Seen *s = userdata;
    FUZZ_CHECK(ev->id && ev->event && ev->data);
    char *one = vo_asprintf("%s\x1f%s\x1f%s\x1e", ev->id, ev->event, ev->data);
    size_t n = strlen(one);
    s->text = realloc(s->text, s->len + n + 1);
    FUZZ_CHECK(s->text);
    memcpy(s->text + s->len, one, n + 1);
    s->len += n;
    free(one);
    return 0;
}

static int feed(const uint8_t *data, size_t size, bool split, Seen *s, char **ret_last_id)
{
    VoSseParser *p = vo_sse_parser_new(on_event, s);
    int r = 0;
    for (size_t at = 0; at < size && r == 0;) {
        size_t n = split ? 1 + data[at] % 7 : size - at;
        if (n > size - at)
            n = size - at;
        r = vo_sse_feed(p, (const char *)data + at, n);
        at += n;
    }
    *ret_last_id = vo_strdup(vo_sse_last_id(p));
    vo_sse_parser_free(p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Seen whole = { 0 }, split = { 0 };
    char *whole_id = NULL, *split_id = NULL;
    int r1 = feed(data, size, false, &whole, &whole_id);
    int r2 = feed(data, size, true, &split, &split_id);
    FUZZ_CHECK(r1 == r2);
    FUZZ_CHECK(whole.len == split.len);
    FUZZ_CHECK(whole.len == 0 || memcmp(whole.text, split.text, whole.len) == 0);
    FUZZ_CHECK(strcmp(whole_id, split_id) == 0);
    free(whole.text);
    free(split.text);
    free(whole_id);
    free(split_id);
    return 0;
}
