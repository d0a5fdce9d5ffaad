/* access.c: the `vireo user ...` and `vireo token ...` commands (users and
 * API tokens of the HTTPS listener for users: /v1/users, /v1/tokens;
 * docs/security.md, "Access"). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "output.h"

static const char *const roles[] = { "admin", "operator", "viewer", NULL };

/* "P1=operator, P2=viewer" of a user's roles on projects ("" for none). */
static char *grants_words(const json_t *u)
{
    char *s = vo_strdup("");
    const char *project;
    json_t *role;
    json_object_foreach(json_object_get(u, "grants"), project, role) {
        char *more = vo_asprintf("%s%s%s=%s", s, *s ? ", " : "", project,
                                 json_string_value(role) ? json_string_value(role) : "?");
        free(s);
        s = more;
    }
    return s;
}

static void print_user(const json_t *u)
{
    out_kv(stdout, "name:", jstr(u, "name"));
    out_kv(stdout, "role:", jstr(u, "role"));
    _cleanup_free_ char *grants = grants_words(u);
    if (*grants)
        out_kv(stdout, "projects:", grants);
}

static int user_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *role = NULL, *file = NULL;
    const CliOption opts[] = { { "--role", &role, NULL }, { "--password-file", &file, NULL },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!role)
        return cli_usage_error("user create", "'user create' needs --role "
                               "admin|operator|viewer|none");
    static const char *const user_roles[] = { "admin", "operator", "viewer", "none", NULL };
    if (!cli_parse_choice("--role", role, user_roles))
        return CLI_EXIT_USAGE;
    char *pw = cli_read_password("--password-file", file);
    if (!pw)
        return CLI_EXIT_FAIL;
    json_t *body = json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "password", pw);
    explicit_bzero(pw, strlen(pw));
    free(pw);
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/users", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_user);
}

static int user_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/users", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "NAME", "ROLE", "PROJECTS", "CREATED" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *u;
    json_array_foreach(doc, i, u) {
        _cleanup_free_ char *grants = grants_words(u);
        const char *cells[] = { jstr(u, "name"), jstr(u, "role"), grants,
                                jstr(u, "created_at") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int user_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "users");
}

static int user_passwd(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *file = NULL;
    const CliOption opts[] = { { "--password-file", &file, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    char *pw = cli_read_password("--password-file", file);
    if (!pw)
        return CLI_EXIT_FAIL;
    json_t *body = json_pack("{s:s}", "password", pw);
    explicit_bzero(pw, strlen(pw));
    free(pw);
    _cleanup_free_ char *path = vo_asprintf("/v1/users/%s/password", name);
    json_t *doc = NULL;
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    json_decref(doc);
    if (r < 0)
        return CLI_EXIT_FAIL;
    if (!cli_globals.json)
        printf("password of %s changed (their sessions ended)\n", name);
    return CLI_EXIT_OK;
}

static void print_token(const json_t *t)
{
    out_kv(stdout, "id:", jstr(t, "id"));
    out_kv(stdout, "role:", jstr(t, "role"));
    if (json_is_string(json_object_get(t, "user")))
        out_kv(stdout, "user:", jstr(t, "user"));
    out_kv(stdout, "expires:", json_is_string(json_object_get(t, "expires_at"))
                                   ? jstr(t, "expires_at") : "never");
    if (json_is_string(json_object_get(t, "secret"))) {
        out_kv(stdout, "secret:", jstr(t, "secret"));
        fputs("\nThe secret is shown this once: keep it (Authorization: Bearer SECRET).\n",
              stdout);
    }
}

static int token_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *role = NULL, *user = NULL, *expires = NULL;
    const CliOption opts[] = { { "--role", &role, NULL }, { "--user", &user, NULL },
                               { "--expires", &expires, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    if (!role)
        return cli_usage_error("token create",
                               "'token create' needs --role admin|operator|viewer");
    if (!cli_parse_choice("--role", role, roles))
        return CLI_EXIT_USAGE;
    json_t *body = json_pack("{s:s}", "role", role);
    if (user)
        json_object_set_new(body, "user", json_string(user));
    if (expires)
        json_object_set_new(body, "expires", json_string(expires));
    json_t *doc = NULL;
    int r = api_call("POST", "/v1/tokens", body, &doc);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_token);
}

static int token_list(const CliCommand *cmd, int argc, char **argv)
{
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_command(cmd, argc, argv, "/v1/tokens", &doc, &exit_status))
        return exit_status;
    static const char *const headers[] = { "ID", "ROLE", "USER", "EXPIRES", "CREATED BY" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *tok;
    json_array_foreach(doc, i, tok) {
        const char *cells[] = { jstr(tok, "id"), jstr(tok, "role"),
                                json_is_string(json_object_get(tok, "user")) ? jstr(tok, "user") : "-",
                                json_is_string(json_object_get(tok, "expires_at"))
                                    ? jstr(tok, "expires_at") : "never",
                                jstr(tok, "created_by") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

/* `user grant USER --role R --project P` and `user revoke USER --project P`. */
static int user_grant_or_revoke(const CliCommand *cmd, int argc, char **argv, bool grant)
{
    const char *name = NULL, *role = NULL, *project = NULL;
    const CliOption opts[] = { { "--role", &role, NULL }, { "--project", &project, NULL },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!project || (grant && !role))
        return cli_usage_error(grant ? "user grant" : "user revoke", grant
                               ? "'user grant' needs --role admin|operator|viewer and --project P"
                               : "'user revoke' needs --project P");
    if (grant && !cli_parse_choice("--role", role, roles))
        return CLI_EXIT_USAGE;
    json_t *doc = NULL;
    int r;
    if (grant) {
        _cleanup_free_ char *path = api_path("users", name, "/grants");
        json_t *body = json_pack("{s:s, s:s}", "project", project, "role", role);
        r = api_call("POST", path, body, &doc);
        json_decref(body);
    } else {
        _cleanup_free_ char *escaped = api_escape(project);
        _cleanup_free_ char *base = api_path("users", name, "/grants");
        _cleanup_free_ char *path = vo_asprintf("%s/%s", base, escaped);
        r = api_call("DELETE", path, NULL, &doc);
    }
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(doc, print_user);
}

static int user_grant(const CliCommand *cmd, int argc, char **argv)
{
    return user_grant_or_revoke(cmd, argc, argv, true);
}

static int user_revoke(const CliCommand *cmd, int argc, char **argv)
{
    return user_grant_or_revoke(cmd, argc, argv, false);
}

static int token_revoke(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "tokens");
}

static const CliCommand user_commands[] = {
    { "user", "create", "NAME", "--role admin|operator|viewer|none [--password-file FILE]",
      "Create a user of the HTTPS API and web UI (asks the password twice).",
      "Roles (on the whole cluster; on one project: vireo user grant):\n"
      "  viewer                reads only\n"
      "  operator              also VM lifecycle, consoles, snapshots, backups\n"
      "  admin                 everything\n"
      "  none                  nothing but what roles on projects give\n"
      "  --password-file FILE  the password is FILE's first line (- : standard input);\n"
      "                        at least 8 characters. Stored as an argon2id hash.\n"
      "\nExample:\n  vireo user create alice --role operator\n",
      user_create },
    { "user", "list", NULL, NULL, "List the users and their roles.", NULL, user_list },
    { "user", "delete", "NAME", NULL, "Delete a user, their sessions and their tokens.", NULL,
      user_delete },
    { "user", "passwd", "NAME", "[--password-file FILE]",
      "Set a user's password (their open sessions end).", NULL, user_passwd },
    { "user", "grant", "NAME", "--role admin|operator|viewer --project P",
      "Give a user a role on project P (on its VMs; docs/projects.md).",
      "On P's VMs the higher of the user's cluster role and this one counts. A user\n"
      "with role none sees only the VMs of their projects (others answer 404) and\n"
      "creates VMs only in a project where they are admin. Their tokens likewise\n"
      "(each at most the token's role).\n"
      "\nExample:\n  vireo user create bob --role none\n"
      "  vireo user grant bob --role operator --project team-a\n", user_grant },
    { "user", "revoke", "NAME", "--project P", "Take back a user's role on project P.", NULL,
      user_revoke },
};

const CliNoun cli_noun_user = { "user", "users of the HTTPS API and web UI", user_commands,
                                ELEMENTSOF(user_commands) };

static const CliCommand token_commands[] = {
    { "token", "create", NULL, "--role admin|operator|viewer [--user NAME] [--expires DURATION]",
      "Create an API token for scripts; its secret is printed once.",
      "  --user NAME           the token acts for user NAME (deleted with the user; its\n"
      "                        role at most the user's)\n"
      "  --expires DURATION    3600, 90m, 12h, 30d or 2w (default: never)\n"
      "Use: curl -H 'Authorization: Bearer SECRET' https://HOST:8443/v1/vms\n"
      "Only the secret's SHA-256 is stored: a lost secret cannot be shown again.\n",
      token_create },
    { "token", "list", NULL, NULL, "List the API tokens (never their secrets).", NULL,
      token_list },
    { "token", "revoke", "ID", NULL, "Revoke an API token: it is refused from now on.", NULL,
      token_revoke },
};

const CliNoun cli_noun_token = { "token", "API tokens for scripts (Authorization: Bearer)",
                                 token_commands, ELEMENTSOF(token_commands) };
