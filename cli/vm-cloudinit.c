/* vm-cloudinit.c: a VM's cloud-init settings from the command line: the
 * --ci-* options of `vm create` and `vm cloud-init set`, and
 * `vm cloud-init show` (GET/PUT /v1/vms/VM/cloud-init). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "conf/cloud-init.h"
#include "http.h"
#include "output.h"
#include "util/util.h"
#include "wait.h"

/* The text of file path (at most max bytes), or NULL after an error naming
 * option. */
static char *read_option_file(const char *option, const char *path, size_t max)
{
    char *text = NULL;
    size_t len = 0;
    int r = vo_read_file(path, max + 1, &text, &len);
    if (r < 0) {
        cli_error("%s %s: %s", option, path, strerror(-r));
        return NULL;
    }
    if (len > max || strlen(text) != len) {
        cli_error("%s %s: %s", option, path,
                  len > max ? "too big" : "has a NUL byte (not a text file)");
        free(text);
        return NULL;
    }
    return text;
}

/* The password given by --ci-password-file or --ci-ask-password, hashed;
 * NULL after an error. */
static char *password_hash_of(const CliCloudInitOpts *o)
{
    char *password = cli_read_password("--ci-password-file", o->password_file);
    if (!password)
        return NULL;
    char *hash = cli_crypt_password(password);
    explicit_bzero(password, strlen(password));
    free(password);
    return hash;
}

bool cli_cloud_init_apply(const CliCloudInitOpts *o, json_t *ci)
{
    if (!!o->password_hash + !!o->password_file + o->ask_password > 1) {
        cli_error("--ci-password-hash, --ci-password-file and --ci-ask-password: give one");
        return false;
    }
    if (o->user)
        json_object_set_new(ci, "user", json_string(o->user));
    if (o->password_hash)
        json_object_set_new(ci, "password_hash", json_string(o->password_hash));
    if (o->password_file || o->ask_password) {
        char *hash = password_hash_of(o);
        if (!hash)
            return false;
        json_object_set_new(ci, "password_hash", json_string(hash));
        free(hash);
    }
    if (o->hostname)
        json_object_set_new(ci, "hostname", json_string(o->hostname));
    if (o->ssh_key) {
        _cleanup_free_ char *text = read_option_file("--ci-ssh-key", o->ssh_key,
                                                     VO_CI_MAX_KEYS * VO_CI_MAX_KEY_LEN);
        json_t *keys = NULL;
        _cleanup_free_ char *error = NULL;
        if (!text)
            return false;
        if (vo_cloud_init_keys_parse(text, &keys, &error) < 0) {
            cli_error("--ci-ssh-key %s: %s", o->ssh_key, error);
            return false;
        }
        json_object_set_new(ci, "ssh_keys", keys);
    }
    if (o->user_data) {
        char *text = read_option_file("--ci-user-data", o->user_data, VO_CI_MAX_USER_DATA);
        if (!text)
            return false;
        json_object_set_new(ci, "user_data", json_string(text));
        free(text);
        if (!json_object_get(ci, "user_data")) {
            cli_error("--ci-user-data %s: not UTF-8 text", o->user_data);
            return false;
        }
    }
    if (o->network) {
        json_t *net = NULL;
        _cleanup_free_ char *error = NULL;
        if (vo_cloud_init_network_parse(o->network, &net, &error) < 0) {
            cli_error("%s", error);
            return false;
        }
        json_object_set_new(ci, "network", net);
    }
    return true;
}

bool cli_cloud_init_given(const CliCloudInitOpts *o)
{
    return o->user || o->password_hash || o->password_file || o->ask_password || o->hostname ||
           o->ssh_key || o->user_data || o->network;
}

static void print_settings(const json_t *doc)
{
    json_t *s = json_object_get(doc, "settings");
    if (!json_is_object(s)) {
        printf("cloud-init: none (no seed is attached)\n");
        return;
    }
    const char *keys[] = { "user", "password_hash", "hostname" };
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        const char *v = json_string_value(json_object_get(s, keys[i]));
        _cleanup_free_ char *k = vo_asprintf("%s:", keys[i]);
        out_kv(stdout, k, v ? (i == 1 ? "(set)" : v) : "(default)");
    }
    _cleanup_free_ char *nkeys = vo_asprintf("%zu", json_array_size(json_object_get(s, "ssh_keys")));
    out_kv(stdout, "ssh_keys:", nkeys);
    out_kv(stdout, "user_data:", json_object_get(s, "user_data") ? "(given)" : "(made by vireo)");
    json_t *n = json_object_get(s, "network");
    _cleanup_free_ char *net = NULL;
    if (!n)
        net = vo_strdup("(default: DHCP, cloud-init's fallback)");
    else if (!strcmp(json_string_value(json_object_get(n, "mode")) ?: "", "dhcp"))
        net = vo_strdup("dhcp");
    else
        net = vo_asprintf("static %s%s%s",
                          json_string_value(json_object_get(n, "address")) ?: "",
                          json_object_get(n, "gateway") ? " gw " : "",
                          json_string_value(json_object_get(n, "gateway")) ?: "");
    out_kv(stdout, "network:", net);
    out_kv(stdout, "instance_id:", json_string_value(json_object_get(doc, "instance_id")) ?: "");
    printf("\n--- user-data\n%s", json_string_value(json_object_get(doc, "user_data")) ?: "");
    printf("--- meta-data\n%s", json_string_value(json_object_get(doc, "meta_data")) ?: "");
    const char *nc = json_string_value(json_object_get(doc, "network_config"));
    if (nc)
        printf("--- network-config\n%s", nc);
}

int cli_vm_cloud_init_show(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL;
    json_t *doc = NULL;
    int exit_status;
    if (!api_read_vm_part(cmd, argc, argv, "cloud-init", &vm, &doc, &exit_status))
        return exit_status;
    return api_print_doc(doc, print_settings);
}

int cli_vm_cloud_init_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *vm = NULL;
    CliCloudInitOpts o = { 0 };
    bool clear = false, reset = false, async = false;
    const CliOption opts[] = { CLI_CLOUD_INIT_OPTIONS(o),
                               { "--none", NULL, &clear },
                               { "--reset", NULL, &reset },
                               { "--async", NULL, &async },
                               { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &vm, &exit_status))
        return exit_status;
    if (clear && (reset || cli_cloud_init_given(&o)))
        return cli_usage_error("vm cloud-init set", "--none removes the settings: give no "
                               "other option with it");
    if (!clear && !reset && !cli_cloud_init_given(&o))
        return cli_usage_error("vm cloud-init set", "give at least one --ci-* option, "
                               "--reset or --none");
    _cleanup_free_ char *path = api_path("vms", vm, "/cloud-init");
    json_t *settings = NULL;
    if (!clear) {
        /* The current settings, changed by the options given (--reset:
         * from none). */
        json_t *doc = NULL;
        if (!reset && api_call("GET", path, NULL, &doc) < 0)
            return CLI_EXIT_FAIL;
        json_t *cur = json_object_get(doc, "settings");
        settings = json_is_object(cur) ? json_deep_copy(cur) : json_object();
        json_decref(doc);
        if (o.user_data) { /* vireo's user-data fields do not go with the user's own */
            json_object_del(settings, "user");
            json_object_del(settings, "password_hash");
            json_object_del(settings, "ssh_keys");
        }
        if (o.user || o.ssh_key || o.password_hash || o.password_file || o.ask_password)
            json_object_del(settings, "user_data");
        if (!cli_cloud_init_apply(&o, settings)) {
            json_decref(settings);
            return CLI_EXIT_USAGE;
        }
    }
    json_t *body = json_pack("{s:o}", "settings", settings ? settings : json_null());
    int r = run_action("PUT", path, body, async, vm,
                       clear ? "cloud-init settings removed" : "cloud-init settings changed");
    json_decref(body);
    return r;
}

