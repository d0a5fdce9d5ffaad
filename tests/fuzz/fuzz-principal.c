/* fuzz-principal.c: libFuzzer target for the principal header a peer sends
 * with a forwarded request (X-Vireo-Principal, api/access-principal.c).
 * Whatever parses must be a principal that can be passed on (root, user or
 * token) with names of printable characters, encode back to a header that
 * parses to the same principal, and encode canonically; a refusal must
 * come with a reason and leave the output untouched. Encoded for a
 * receiver that knows fewer members (an older host), it parses to the same
 * kind, role and uid, or is not sent (a uid that would read as root). */
#include <string.h>

#include "api/access.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

static void check_name(const char *s, size_t size, bool may_be_empty)
{
    size_t n = strnlen(s, size);
    FUZZ_CHECK(n < size);
    FUZZ_CHECK(may_be_empty || n > 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(s[i] > ' ' && s[i] <= '~');
}

static bool same(const VoPrincipal *a, const VoPrincipal *b)
{
    if (a->kind != b->kind || a->role != b->role || strcmp(a->name, b->name) ||
        strcmp(a->user, b->user) || strcmp(a->address, b->address) ||
        strcmp(a->host, b->host) || a->uid != b->uid || a->n_grants != b->n_grants)
        return false;
    for (size_t i = 0; i < a->n_grants; i++)
        if (vo_principal_role_in(a, a->grants[i].project) !=
            vo_principal_role_in(b, a->grants[i].project))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = 0;
    VoPrincipal p = { .kind = VO_PRINCIPAL_PEER, .role = VO_ROLE_VIEWER };
    char *why = NULL;
    int r = vo_principal_header_parse(text, &p, &why);
    free(text);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && why && *why);
        FUZZ_CHECK(p.kind == VO_PRINCIPAL_PEER && p.role == VO_ROLE_VIEWER);
        free(why);
        return 0;
    }
    FUZZ_CHECK(!why);
    FUZZ_CHECK(p.kind == VO_PRINCIPAL_ROOT || p.kind == VO_PRINCIPAL_USER ||
               p.kind == VO_PRINCIPAL_TOKEN);
    FUZZ_CHECK(p.role >= VO_ROLE_NONE && p.role <= VO_ROLE_ADMIN);
    FUZZ_CHECK(p.kind != VO_PRINCIPAL_ROOT || (p.role == VO_ROLE_ADMIN && !p.name[0]));
    FUZZ_CHECK(p.kind == VO_PRINCIPAL_TOKEN || !p.user[0]);
    FUZZ_CHECK(!p.session[0] && p.n_grants <= VO_GRANTS_MAX);
    if (p.kind != VO_PRINCIPAL_ROOT)
        check_name(p.name, sizeof(p.name), false);
    check_name(p.user, sizeof(p.user), true);
    check_name(p.address, sizeof(p.address), true);
    FUZZ_CHECK(p.kind == VO_PRINCIPAL_ROOT || !p.host[0]); /* only root names its host */
    FUZZ_CHECK(p.kind == VO_PRINCIPAL_ROOT || p.uid == 0);   /* and its uid */
    check_name(p.host, sizeof(p.host), true);
    for (size_t i = 0; i < p.n_grants; i++) {
        check_name(p.grants[i].project, sizeof(p.grants[i].project), false);
        FUZZ_CHECK(p.grants[i].role >= VO_ROLE_VIEWER && p.grants[i].role <= VO_ROLE_ADMIN);
    }
    char *again = vo_principal_header_encode(&p);
    FUZZ_CHECK(again && strlen(again) <= VO_PRINCIPAL_HEADER_MAX && !strpbrk(again, "\r\n"));
    VoPrincipal q = { 0 };
    FUZZ_CHECK(vo_principal_header_parse(again, &q, NULL) == 0);
    FUZZ_CHECK(same(&p, &q));
    char *third = vo_principal_header_encode(&q);
    FUZZ_CHECK(third && !strcmp(again, third));
    free(third);
    free(again);
    /* To a receiver that knows fewer members: never a uid read as root. */
    for (unsigned members = 0; members <= VO_PRINCIPAL_MEMBERS_ALL; members++) {
        char *older = NULL;
        int e = vo_principal_header_encode_for(&p, members, &older);
        if (e == -EPROTO) {
            FUZZ_CHECK(!older && p.uid != 0 && !(members & VO_PRINCIPAL_MEMBER_UID));
            continue;
        }
        FUZZ_CHECK(e == 0 && older);
        VoPrincipal o = { 0 };
        FUZZ_CHECK(vo_principal_header_parse(older, &o, NULL) == 0);
        FUZZ_CHECK(o.kind == p.kind && o.role == p.role && o.uid == p.uid);
        FUZZ_CHECK((members & VO_PRINCIPAL_MEMBER_HOST) ? !strcmp(o.host, p.host) : !o.host[0]);
        free(older);
    }
    return 0;
}
