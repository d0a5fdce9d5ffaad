/* fuzz-join-token.c: libFuzzer target for the join token parser
 * (cluster/join-token.c), which reads what a user pastes after --token.
 * The input is tried twice: as the token text itself, and as the JSON
 * inside a token (base64url-encoded here first). Whatever parses must
 * encode back to a token that parses to the same fields, and must satisfy
 * every check the parser promises; a refusal must come with a message. */
#include <string.h>

#include "cluster/join-token.h"
#include "fuzz.h"

#define NOW 1800000000LL

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

static char *b64url(const uint8_t *in, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    FUZZ_CHECK(out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        if (i + 1 < n)
            *o++ = a[v >> 6 & 63];
        if (i + 2 < n)
            *o++ = a[v & 63];
    }
    *o = 0;
    return out;
}

static void try_text(const char *text)
{
    VoJoinToken t = { 0 };
    char *err = NULL;
    int r = vo_join_token_parse(text, NOW, &t, &err);
    if (r < 0) {
        FUZZ_CHECK(err && *err);
        FUZZ_CHECK(r == -EILSEQ || r == -EBADMSG || r == -EINVAL || r == -EPROTONOSUPPORT ||
                   r == -EKEYEXPIRED);
        FUZZ_CHECK(!t.cluster && !t.id && !t.address);
        free(err);
        return;
    }
    FUZZ_CHECK(!err);
    FUZZ_CHECK(t.expires > NOW);
    FUZZ_CHECK(strlen(t.secret) == VO_JOIN_TOKEN_HEX_LEN && strlen(t.ca_sha256) == VO_JOIN_TOKEN_HEX_LEN);
    FUZZ_CHECK(t.cluster && *t.cluster && t.id && *t.id && t.address && strchr(t.address, ':'));
    char *again = vo_join_token_encode(&t);
    VoJoinToken u = { 0 };
    FUZZ_CHECK(vo_join_token_parse(again, NOW, &u, NULL) == 0);
    FUZZ_CHECK(!strcmp(t.cluster, u.cluster) && !strcmp(t.id, u.id) && !strcmp(t.secret, u.secret) &&
               !strcmp(t.ca_sha256, u.ca_sha256) && !strcmp(t.address, u.address) && t.expires == u.expires);
    /* Encoding is canonical: a second round gives the same text. */
    char *third = vo_join_token_encode(&u);
    FUZZ_CHECK(!strcmp(again, third));
    free(third);
    free(again);
    vo_join_token_clear(&u);
    vo_join_token_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = 0;
    try_text(text);
    free(text);
    char *wrapped = b64url(data, size);
    try_text(wrapped);
    free(wrapped);
    return 0;
}
