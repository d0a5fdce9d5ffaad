/* test-access.c: access control's pure parts: the role table, password
 * hashing, API token, Authorization and Cookie parsing, durations, the
 * failure backoff, the sessions and the principal header of forwarded
 * requests (src/api/access-*.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/access.h"

static void test_roles_table(void **state)
{
    assert_int_equal(vo_access_role_needed("GET", "/v1/vms"), VO_ROLE_VIEWER);
    assert_int_equal(vo_access_role_needed("HEAD", "/v1/vms/{vm}"), VO_ROLE_VIEWER);
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms/{vm}/start"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms/{vm}/stop"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms/{vm}/snapshots"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms/{vm}/backups"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("GET", "/v1/vms/{vm}/console"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms/{vm}/send-keys"), VO_ROLE_OPERATOR);
    /* A one-time VNC password is a console: an operator may issue one. */
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms/{vm}/vnc-ticket"), VO_ROLE_OPERATOR);
    /* Console-like reads the table does not name are an operator's too. */
    assert_int_equal(vo_access_role_needed("GET", "/v1/vms/{vm}/vnc-websocket"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("GET", "/v1/vms/{vm}/display/screenshot.png"),
                     VO_ROLE_OPERATOR);
    assert_int_equal(vo_access_role_needed("GET", "/v1/vms/{vm}/console/log"), VO_ROLE_VIEWER);
    assert_int_equal(vo_access_role_needed("GET", "/v1/vms/{vm}/cloud-init"), VO_ROLE_ADMIN);
    /* Reads that give away more than state. */
    assert_int_equal(vo_access_role_needed("GET", "/v1/users"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed("GET", "/v1/tokens"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed("GET", "/v1/pools/{pool}/volumes/{volume}/data"),
                     VO_ROLE_ADMIN);
    /* Everything else, and what the table does not know, is an admin's. */
    assert_int_equal(vo_access_role_needed("POST", "/v1/networks"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed("POST", "/v1/vms"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed("DELETE", "/v1/vms/{vm}"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed("POST", "/v1/some/new/route"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed("PUT", "/v1/vms/{vm}/start"), VO_ROLE_ADMIN);
    assert_int_equal(vo_access_role_needed(NULL, NULL), VO_ROLE_ADMIN);
    assert_true(vo_access_route_public("POST", "/v1/login"));
    assert_false(vo_access_route_public("GET", "/v1/login"));
    assert_false(vo_access_route_public("POST", "/v1/logout"));
    VoRole r;
    assert_int_equal(vo_role_parse("operator", &r), 0);
    assert_int_equal(r, VO_ROLE_OPERATOR);
    assert_int_equal(vo_role_parse("Admin", &r), -EINVAL);
    assert_int_equal(vo_role_parse(NULL, &r), -EINVAL);
    assert_string_equal(vo_role_name(VO_ROLE_VIEWER), "viewer");
}

static void test_password_hash(void **state)
{
    char *h1 = NULL, *h2 = NULL;
    assert_int_equal(vo_access_password_hash("correct horse", &h1), 0);
    assert_int_equal(vo_access_password_hash("correct horse", &h2), 0);
    assert_true(strncmp(h1, "$argon2id$", 10) == 0);
    assert_string_not_equal(h1, h2); /* salted */
    assert_null(strstr(h1, "correct"));
    assert_true(vo_access_password_verify(h1, "correct horse"));
    assert_false(vo_access_password_verify(h1, "correct horsE"));
    assert_false(vo_access_password_verify(h1, ""));
    assert_false(vo_access_password_verify("garbage", "correct horse"));
    assert_false(vo_access_password_verify(NULL, "x"));
    assert_int_equal(vo_access_password_hash("", &h2 /* untouched */), -EINVAL);
    free(h1);
    free(h2);
}

static void test_tokens(void **state)
{
    VoTokenParts a, b, parsed;
    char *ta = NULL, *tb = NULL;
    assert_int_equal(vo_access_token_new(&a, &ta), 0);
    assert_int_equal(vo_access_token_new(&b, &tb), 0);
    assert_string_not_equal(ta, tb);
    assert_int_equal(strlen(a.id), VO_ACCESS_TOKEN_ID_LEN);
    assert_int_equal(strlen(a.secret), VO_ACCESS_SECRET_LEN);
    assert_int_equal(vo_access_token_parse(ta, &parsed), 0);
    assert_string_equal(parsed.id, a.id);
    assert_string_equal(parsed.secret, a.secret);
    /* Malformed ones. */
    assert_int_equal(vo_access_token_parse("", &parsed), -EINVAL);
    assert_int_equal(vo_access_token_parse(NULL, &parsed), -EINVAL);
    assert_int_equal(vo_access_token_parse("vireo_0123456789abcdef", &parsed), -EINVAL);
    assert_int_equal(vo_access_token_parse("vireo_0123456789ABCDEF_"
                                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &parsed),
                     -EINVAL);
    assert_int_equal(vo_access_token_parse("vireo_0123456789abcdef_"
                                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &parsed),
                     0);
    assert_int_equal(vo_access_token_parse("vireo_0123456789abcdef_"
                                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &parsed),
                     -EINVAL);
    assert_int_equal(vo_access_token_parse("vireo_0123456789abcdef_"
                                           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &parsed),
                     -EINVAL);
    char d1[65], d2[65];
    vo_access_secret_digest(a.secret, d1);
    vo_access_secret_digest(a.secret, d2);
    assert_string_equal(d1, d2);
    assert_int_equal(strlen(d1), 64);
    vo_access_secret_digest("abc", d2); /* SHA-256("abc") */
    assert_string_equal(d2, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(vo_access_equal("abc", "abc"));
    assert_false(vo_access_equal("abc", "abd"));
    assert_false(vo_access_equal("abc", "ab"));
    assert_false(vo_access_equal("", ""));
    free(ta);
    free(tb);
}

static void test_headers(void **state)
{
    assert_string_equal(vo_access_bearer("Bearer abc"), "abc");
    assert_string_equal(vo_access_bearer("bearer   abc"), "abc");
    assert_null(vo_access_bearer("Basic abc"));
    assert_null(vo_access_bearer("Bearer "));
    assert_null(vo_access_bearer(NULL));
    char v[16];
    assert_int_equal(vo_access_cookie_get("a=1; vireo_session=xyz; b=2", "vireo_session", v,
                                          sizeof(v)), 0);
    assert_string_equal(v, "xyz");
    assert_int_equal(vo_access_cookie_get("vireo_session=first", "vireo_session", v, sizeof(v)),
                     0);
    assert_string_equal(v, "first");
    assert_int_equal(vo_access_cookie_get("xvireo_session=no; other=1", "vireo_session", v,
                                          sizeof(v)), -ENOENT);
    assert_int_equal(vo_access_cookie_get("vireo_session=0123456789abcdefgh", "vireo_session",
                                          v, sizeof(v)), -EINVAL);
    assert_int_equal(vo_access_cookie_get("", "vireo_session", v, sizeof(v)), -ENOENT);
    assert_int_equal(vo_access_cookie_get(NULL, "vireo_session", v, sizeof(v)), -ENOENT);
    int64_t s;
    assert_int_equal(vo_access_duration_parse("90", &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(vo_access_duration_parse("45m", &s), 0);
    assert_int_equal(s, 2700);
    assert_int_equal(vo_access_duration_parse("30d", &s), 0);
    assert_int_equal(s, 30 * 86400);
    assert_int_equal(vo_access_duration_parse("2w", &s), 0);
    assert_int_equal(s, 14 * 86400);
    assert_int_equal(vo_access_duration_parse("0", &s), -EINVAL);
    assert_int_equal(vo_access_duration_parse("-5m", &s), -EINVAL);
    assert_int_equal(vo_access_duration_parse("5mm", &s), -EINVAL);
    assert_int_equal(vo_access_duration_parse("5y", &s), -EINVAL);
    assert_int_equal(vo_access_duration_parse("99999999999999w", &s), -EINVAL);
}

static void test_backoff(void **state)
{
    vo_backoff_reset_all();
    int64_t now = 1000000;
    for (int i = 0; i < VO_BACKOFF_FREE - 1; i++) {
        vo_backoff_failed("user:a", now);
        assert_int_equal(vo_backoff_locked("user:a", now), 0);
    }
    vo_backoff_failed("user:a", now); /* the 5th: 1 s */
    assert_int_equal(vo_backoff_locked("user:a", now), 1000);
    assert_int_equal(vo_backoff_locked("user:a", now + 1000), 0);
    vo_backoff_failed("user:a", now + 1000); /* doubles */
    assert_int_equal(vo_backoff_locked("user:a", now + 1000), 2000);
    for (int i = 0; i < 40; i++)
        vo_backoff_failed("user:a", now);
    assert_int_equal(vo_backoff_locked("user:a", now), VO_BACKOFF_MAX_MS);
    assert_int_equal(vo_backoff_locked("user:b", now), 0); /* keys are apart */
    vo_backoff_succeeded("user:a");
    assert_int_equal(vo_backoff_locked("user:a", now), 0);
    /* Bounded: more keys than the table holds, none locked, all fit in turn. */
    char key[32];
    for (int i = 0; i < VO_BACKOFF_MAX_KEYS + 100; i++) {
        snprintf(key, sizeof(key), "addr:%d", i);
        vo_backoff_failed(key, now + i);
    }
    assert_int_equal(vo_backoff_locked(key, now), 0);
    vo_backoff_reset_all();
}

/* An attempt counts before its outcome: parallel attempts (none of which
 * has failed yet) cannot all pass; only VO_BACKOFF_FREE do. */
static void test_backoff_attempt(void **state)
{
    vo_backoff_reset_all();
    int64_t now = 2000000;
    for (int i = 0; i < VO_BACKOFF_FREE; i++)
        assert_int_equal(vo_backoff_attempt("addr:p", now), 0);
    assert_int_equal(vo_backoff_attempt("addr:p", now), 1000);
    assert_int_equal(vo_backoff_attempt("addr:p", now + 500), 500); /* not counted */
    assert_int_equal(vo_backoff_attempt("addr:p", now + 1000), 0);  /* counted: 2 s */
    assert_int_equal(vo_backoff_locked("addr:p", now + 1000), 2000);
    vo_backoff_succeeded("addr:p"); /* a success clears it */
    assert_int_equal(vo_backoff_attempt("addr:p", now + 1000), 0);
    assert_int_equal(vo_backoff_locked("addr:p", now + 1000), 0);
    vo_backoff_reset_all();
}

static void test_sessions(void **state)
{
    char id[VO_ACCESS_SECRET_LEN + 1], id2[VO_ACCESS_SECRET_LEN + 1];
    VoSession s, found;
    int64_t now = 5000000;
    assert_int_equal(vo_session_create("alice", VO_ROLE_OPERATOR, now, id, &s), 0);
    assert_int_equal(vo_session_create("bob", VO_ROLE_VIEWER, now, id2, &found), 0);
    assert_string_not_equal(id, id2);
    assert_int_equal(strlen(s.csrf), VO_ACCESS_SECRET_LEN);
    assert_int_equal(vo_session_find(id, now + 1, &found), 0);
    assert_string_equal(found.user, "alice");
    assert_int_equal(found.role, VO_ROLE_OPERATOR);
    assert_string_equal(found.csrf, s.csrf);
    assert_int_equal(vo_session_find("nope", now, &found), -ENOENT);
    /* Expired. */
    assert_int_equal(vo_session_find(id, now + (int64_t)VO_SESSION_TTL_S * 1000, &found), -ENOENT);
    vo_session_delete(id);
    assert_int_equal(vo_session_find(id, now, &found), -ENOENT);
    vo_session_delete_user("bob");
    assert_int_equal(vo_session_find(id2, now, &found), -ENOENT);
}

static void test_principal(void **state)
{
    char out[128];
    VoPrincipal p = { .kind = VO_PRINCIPAL_TOKEN, .role = VO_ROLE_VIEWER };
    snprintf(p.name, sizeof(p.name), "0123456789abcdef");
    vo_principal_describe(&p, out, sizeof(out));
    assert_string_equal(out, "token:0123456789abcdef");
    snprintf(p.user, sizeof(p.user), "ann");
    vo_principal_describe(&p, out, sizeof(out));
    assert_string_equal(out, "token:0123456789abcdef (user:ann)");
    p = (VoPrincipal){ .kind = VO_PRINCIPAL_USER };
    snprintf(p.name, sizeof(p.name), "ann");
    vo_principal_describe(&p, out, sizeof(out));
    assert_string_equal(out, "user:ann");
    vo_access_set_current(&p);
    assert_int_equal(vo_access_current()->kind, VO_PRINCIPAL_USER);
    vo_access_set_current(NULL);
    assert_int_equal(vo_access_current()->kind, VO_PRINCIPAL_NONE);
}

/* Roles on projects: role none, the role on a project's objects, which
 * routes a project role reaches, and when a principal is scoped. */
static void test_project_roles(void **state)
{
    (void)state;
    VoRole r;
    assert_int_equal(vo_role_parse("none", &r), 0);
    assert_int_equal(r, VO_ROLE_NONE);
    assert_string_equal(vo_role_name(VO_ROLE_NONE), "none");
    VoPrincipal p = { .kind = VO_PRINCIPAL_TOKEN, .role = VO_ROLE_NONE, .n_grants = 2,
                      .grants = { { "team-a", VO_ROLE_OPERATOR }, { "team-b", VO_ROLE_VIEWER } } };
    assert_int_equal(vo_principal_role_in(&p, "team-a"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_principal_role_in(&p, "team-b"), VO_ROLE_VIEWER);
    assert_int_equal(vo_principal_role_in(&p, "team-c"), VO_ROLE_NONE);
    assert_int_equal(vo_principal_role_max(&p), VO_ROLE_OPERATOR);
    p.role = VO_ROLE_VIEWER; /* the higher of the cluster's and the project's */
    assert_int_equal(vo_principal_role_in(&p, "team-c"), VO_ROLE_VIEWER);
    p.needed = VO_ROLE_OPERATOR;
    assert_true(vo_principal_scoped(&p));
    p.needed = VO_ROLE_VIEWER;
    assert_false(vo_principal_scoped(&p));
    VoPrincipal root = { .kind = VO_PRINCIPAL_ROOT, .role = VO_ROLE_NONE,
                         .needed = VO_ROLE_ADMIN };
    assert_false(vo_principal_scoped(&root));
    assert_true(vo_access_route_scoped("GET", "/v1/vms"));
    assert_true(vo_access_route_scoped("POST", "/v1/vms"));
    assert_true(vo_access_route_scoped("POST", "/v1/vms/{vm}/start"));
    assert_true(vo_access_route_scoped("GET", "/v1/projects/{project}"));
    assert_false(vo_access_route_scoped("PATCH", "/v1/projects/{project}"));
    assert_false(vo_access_route_scoped("GET", "/v1/vmsx"));
    assert_false(vo_access_route_scoped("GET", "/v1/users"));
    assert_false(vo_access_route_scoped("GET", "/v1/tasks"));
    assert_true(vo_access_route_scoped("GET", "/v1/tasks/{id}"));
    /* A VM import reads host paths (disks, a CD-ROM's ISO): the cluster's
     * admins only, never a project's (docs/security.md). */
    assert_false(vo_access_route_scoped("POST", "/v1/vm-imports"));
    assert_int_equal(vo_access_role_needed("POST", "/v1/vm-imports"), VO_ROLE_ADMIN);
}

/* The principal a forwarded request carries (X-Vireo-Principal): what a
 * host encodes parses back the same; root carries no role of its own;
 * whatever is not exactly of that form is refused with a reason. */
static void test_principal_header(void **state)
{
    (void)state;
    VoPrincipal p = { .kind = VO_PRINCIPAL_TOKEN, .role = VO_ROLE_NONE, .n_grants = 2,
                      .grants = { { "team-a", VO_ROLE_OPERATOR }, { "team-b", VO_ROLE_VIEWER } },
                      .needed = VO_ROLE_ADMIN };
    snprintf(p.name, sizeof(p.name), "0123456789abcdef");
    snprintf(p.user, sizeof(p.user), "ann");
    snprintf(p.address, sizeof(p.address), "10.0.0.7");
    snprintf(p.session, sizeof(p.session), "secret-never-sent");
    char *text = vo_principal_header_encode(&p);
    assert_non_null(text);
    assert_null(strstr(text, "secret-never-sent"));
    assert_null(strchr(text, '\n'));
    VoPrincipal q;
    char *why = NULL;
    assert_int_equal(vo_principal_header_parse(text, &q, &why), 0);
    assert_null(why);
    assert_int_equal(q.kind, VO_PRINCIPAL_TOKEN);
    assert_int_equal(q.role, VO_ROLE_NONE);
    assert_string_equal(q.name, "0123456789abcdef");
    assert_string_equal(q.user, "ann");
    assert_string_equal(q.address, "10.0.0.7");
    assert_string_equal(q.session, "");
    assert_int_equal(q.needed, VO_ROLE_VIEWER); /* the target computes its own */
    assert_int_equal(q.n_grants, 2);
    assert_int_equal(vo_principal_role_in(&q, "team-a"), VO_ROLE_OPERATOR);
    assert_int_equal(vo_principal_role_in(&q, "team-b"), VO_ROLE_VIEWER);
    free(text);

    VoPrincipal user = { .kind = VO_PRINCIPAL_USER, .role = VO_ROLE_OPERATOR };
    snprintf(user.name, sizeof(user.name), "bob");
    text = vo_principal_header_encode(&user);
    assert_string_equal(text, "{\"grants\":{},\"kind\":\"user\",\"name\":\"bob\","
                              "\"role\":\"operator\",\"v\":1}");
    assert_int_equal(vo_principal_header_parse(text, &q, NULL), 0);
    assert_int_equal(q.kind, VO_PRINCIPAL_USER);
    assert_int_equal(q.role, VO_ROLE_OPERATOR);
    free(text);

    VoPrincipal root = { .kind = VO_PRINCIPAL_ROOT, .role = VO_ROLE_ADMIN };
    text = vo_principal_header_encode(&root);
    assert_string_equal(text, "{\"kind\":\"root\",\"v\":1}");
    assert_int_equal(vo_principal_header_parse(text, &q, NULL), 0);
    assert_int_equal(q.kind, VO_PRINCIPAL_ROOT);
    assert_int_equal(q.role, VO_ROLE_ADMIN);
    free(text);
    /* A cluster host's root names its host, and is audited as that host's. */
    snprintf(root.host, sizeof(root.host), "h1");
    text = vo_principal_header_encode(&root);
    assert_string_equal(text, "{\"host\":\"h1\",\"kind\":\"root\",\"v\":1}");
    assert_int_equal(vo_principal_header_parse(text, &q, NULL), 0);
    assert_string_equal(q.host, "h1");
    char who[128];
    vo_principal_describe(&q, who, sizeof(who));
    assert_string_equal(who, "root@h1");
    free(text);
    /* Only root names a host. */
    why = NULL;
    assert_int_equal(vo_principal_header_parse("{\"v\":1,\"kind\":\"user\",\"name\":\"bob\","
                                               "\"role\":\"viewer\",\"host\":\"h1\"}", &q, &why),
                     -EINVAL);
    assert_non_null(strstr(why, "host"));
    free(why);
    /* A peer's own request and an anonymous one name nobody. */
    VoPrincipal peer = { .kind = VO_PRINCIPAL_PEER, .role = VO_ROLE_ADMIN };
    assert_null(vo_principal_header_encode(&peer));
    VoPrincipal none = { .kind = VO_PRINCIPAL_NONE };
    assert_null(vo_principal_header_encode(&none));

    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\"} x",
        "{\"v\":2,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\"}",
        "{\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"peer\"}",
        "{\"v\":1,\"kind\":\"none\"}",
        "{\"v\":1,\"kind\":\"root\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"root\",\"name\":\"x\"}",
        "{\"v\":1,\"kind\":\"user\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"b b\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"b\\u00e9\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"root\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"user\":\"ann\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\",\"admin\":true}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"name\":\"root\",\"role\":\"viewer\"}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\",\"grants\":[]}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\","
        "\"grants\":{\"p\":\"none\"}}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\","
        "\"grants\":{\"p\":1}}",
        "{\"v\":1,\"kind\":\"user\",\"name\":\"0123456789012345678901234567890123456789"
        "012345678901234567890123\",\"role\":\"viewer\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q = (VoPrincipal){ .kind = VO_PRINCIPAL_PEER };
        why = NULL;
        if (vo_principal_header_parse(bad[i], &q, &why) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(why);
        assert_int_equal(q.kind, VO_PRINCIPAL_PEER); /* untouched */
        free(why);
    }
    /* More grants than a principal holds. */
    char many[2048] = "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\","
                      "\"grants\":{";
    for (int i = 0; i <= VO_GRANTS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"p%d\":\"viewer\"",
                 i ? "," : "", i);
    strcat(many, "}}");
    assert_int_equal(vo_principal_header_parse(many, &q, NULL), -EINVAL);
    /* Too long. */
    char *huge = malloc(VO_PRINCIPAL_HEADER_MAX + 2);
    memset(huge, ' ', VO_PRINCIPAL_HEADER_MAX + 1);
    huge[VO_PRINCIPAL_HEADER_MAX + 1] = 0;
    assert_int_equal(vo_principal_header_parse(huge, &q, NULL), -EINVAL);
    free(huge);
}

/* What a forward sends a receiver, by the optional members it understands
 * (its live record's "principal_members"): an older host (none) gets the
 * first form, which it parses strictly, so a rolling upgrade's older
 * receiver never answers 400 to a root request of a newer host; and a uid
 * of the Unix socket other than root's is named ("uid:N@HOST"), or not
 * sent at all to a host that would read root. */
static void test_principal_for_older_hosts(void **state)
{
    (void)state;
    json_t *names = vo_principal_members_json();
    assert_int_equal(vo_principal_members_parse(names), VO_PRINCIPAL_MEMBERS_ALL);
    json_decref(names);
    names = json_pack("[s, s, i]", "uid", "a-later-member", 3);
    assert_int_equal(vo_principal_members_parse(names), VO_PRINCIPAL_MEMBER_UID);
    json_decref(names);
    assert_int_equal(vo_principal_members_parse(NULL), 0);
    names = json_string("host");
    assert_int_equal(vo_principal_members_parse(names), 0);
    json_decref(names);

    VoPrincipal root = { .kind = VO_PRINCIPAL_ROOT, .role = VO_ROLE_ADMIN };
    snprintf(root.host, sizeof(root.host), "h1");
    char *text = NULL, who[128];
    /* The host's root: its host to whoever knows the member; the first
     * form, audited "root", to an older host. */
    assert_int_equal(vo_principal_header_encode_for(&root, 0, &text), 0);
    assert_string_equal(text, "{\"kind\":\"root\",\"v\":1}");
    free(text);
    assert_int_equal(vo_principal_header_encode_for(&root, VO_PRINCIPAL_MEMBER_HOST, &text), 0);
    assert_string_equal(text, "{\"host\":\"h1\",\"kind\":\"root\",\"v\":1}");
    free(text);
    /* Another uid of the socket: named, and audited as itself. */
    root.uid = 65534;
    vo_principal_describe(&root, who, sizeof(who));
    assert_string_equal(who, "uid:65534@h1");
    assert_int_equal(vo_principal_header_encode_for(&root, VO_PRINCIPAL_MEMBERS_ALL, &text), 0);
    assert_string_equal(text, "{\"host\":\"h1\",\"kind\":\"root\",\"uid\":65534,\"v\":1}");
    VoPrincipal q;
    assert_int_equal(vo_principal_header_parse(text, &q, NULL), 0);
    assert_int_equal(q.kind, VO_PRINCIPAL_ROOT);
    assert_int_equal(q.uid, 65534);
    vo_principal_describe(&q, who, sizeof(who));
    assert_string_equal(who, "uid:65534@h1");
    free(text);
    /* ... never sent to a host that would take it for root. */
    text = (char *)"untouched";
    assert_int_equal(vo_principal_header_encode_for(&root, VO_PRINCIPAL_MEMBER_HOST, &text),
                     -EPROTO);
    assert_null(text);
    assert_int_equal(vo_principal_header_encode_for(&root, 0, &text), -EPROTO);
    assert_null(text);
    /* Without a host (one host alone): "uid:N". */
    root.host[0] = 0;
    vo_principal_describe(&root, who, sizeof(who));
    assert_string_equal(who, "uid:65534");
    /* Users and tokens carry neither member: the same to every host. */
    VoPrincipal user = { .kind = VO_PRINCIPAL_USER, .role = VO_ROLE_OPERATOR };
    snprintf(user.name, sizeof(user.name), "bob");
    char *all = NULL;
    assert_int_equal(vo_principal_header_encode_for(&user, 0, &text), 0);
    assert_int_equal(vo_principal_header_encode_for(&user, VO_PRINCIPAL_MEMBERS_ALL, &all), 0);
    assert_string_equal(text, all);
    free(text);
    free(all);
    /* A peer's own request names nobody, whatever the receiver knows. */
    VoPrincipal peer = { .kind = VO_PRINCIPAL_PEER };
    assert_int_equal(vo_principal_header_encode_for(&peer, VO_PRINCIPAL_MEMBERS_ALL, &text), 0);
    assert_null(text);

    static const char *const bad[] = {
        "{\"v\":1,\"kind\":\"user\",\"name\":\"bob\",\"role\":\"viewer\",\"uid\":7}",
        "{\"v\":1,\"kind\":\"root\",\"uid\":-1}",
        "{\"v\":1,\"kind\":\"root\",\"uid\":4294967295}",
        "{\"v\":1,\"kind\":\"root\",\"uid\":\"7\"}",
        "{\"v\":1,\"kind\":\"root\",\"uid\":7.5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *why = NULL;
        if (vo_principal_header_parse(bad[i], &q, &why) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(why, "uid"));
        free(why);
    }
}

/* A forward reads the receiver's record only for a principal whose header
 * depends on it (vo_principal_members_matter): every other one is sent the
 * same to every host, so skipping the read never changes what is sent. */
static void test_principal_members_matter(void **state)
{
    (void)state;
    VoPrincipal ps[] = {
        { .kind = VO_PRINCIPAL_USER, .role = VO_ROLE_OPERATOR, .name = "bob",
          .address = "10.0.0.1", .n_grants = 1, .grants = { { "team", VO_ROLE_ADMIN } } },
        { .kind = VO_PRINCIPAL_TOKEN, .role = VO_ROLE_VIEWER, .name = "t1", .user = "bob" },
        { .kind = VO_PRINCIPAL_PEER },
        { .kind = VO_PRINCIPAL_NONE },
        { .kind = VO_PRINCIPAL_ROOT, .role = VO_ROLE_ADMIN, .host = "h1" },
        { .kind = VO_PRINCIPAL_ROOT, .role = VO_ROLE_ADMIN, .host = "h1", .uid = 1000 },
    };
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        char *all = NULL;
        int e_all = vo_principal_header_encode_for(&ps[i], VO_PRINCIPAL_MEMBERS_ALL, &all);
        bool differs = false;
        for (unsigned m = 0; m < VO_PRINCIPAL_MEMBERS_ALL; m++) {
            char *text = NULL;
            int e = vo_principal_header_encode_for(&ps[i], m, &text);
            differs |= e != e_all || (!text) != (!all) || (text && strcmp(text, all));
            free(text);
        }
        free(all);
        if (differs != vo_principal_members_matter(&ps[i]))
            fail_msg("principal %zu: its header %s on the receiver's members", i,
                     differs ? "depends" : "does not depend");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_table), cmocka_unit_test(test_password_hash),
        cmocka_unit_test(test_tokens),      cmocka_unit_test(test_headers),
        cmocka_unit_test(test_backoff),     cmocka_unit_test(test_backoff_attempt),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_principal),
        cmocka_unit_test(test_project_roles),
        cmocka_unit_test(test_principal_header),
        cmocka_unit_test(test_principal_for_older_hosts),
        cmocka_unit_test(test_principal_members_matter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
