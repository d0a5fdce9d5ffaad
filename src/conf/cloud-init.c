/* cloud-init.c: a VM's cloud-init settings: parsing and validation of the
 * "cloud_init" spec object, and the NoCloud seed documents made from them.
 * Every value written into YAML goes through vo_yaml_quote (a double-quoted
 * scalar), so no value can change the document's structure. */
#include "conf/cloud-init.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/sha256.h"
#include "util/util.h"

VoCloudInit *vo_cloud_init_free(VoCloudInit *ci)
{
    if (!ci)
        return NULL;
    free(ci->user);
    free(ci->password_hash);
    vo_strv_free(ci->ssh_keys);
    free(ci->hostname);
    free(ci->user_data);
    free(ci->address);
    free(ci->gateway);
    vo_strv_free(ci->dns);
    free(ci);
    return NULL;
}

static char **strv_copy(char **v)
{
    char **out = NULL;
    for (size_t i = 0; v && v[i]; i++)
        vo_strv_push(&out, vo_strdup(v[i]));
    return out;
}

VoCloudInit *vo_cloud_init_copy(const VoCloudInit *ci)
{
    if (!ci)
        return NULL;
    VoCloudInit *c = vo_malloc0(sizeof(*c));
    *c = (VoCloudInit){ .user = vo_strdup(ci->user), .password_hash = vo_strdup(ci->password_hash),
                        .ssh_keys = strv_copy(ci->ssh_keys), .hostname = vo_strdup(ci->hostname),
                        .user_data = vo_strdup(ci->user_data), .net = ci->net,
                        .address = vo_strdup(ci->address), .gateway = vo_strdup(ci->gateway),
                        .dns = strv_copy(ci->dns) };
    return c;
}

/* ---- validation ------------------------------------------------------------ */

/* A POSIX-ish user name as useradd takes it: [a-z_][a-z0-9_-]{0,31}. */
static bool user_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* A crypt(3) hash of a scheme glibc/libxcrypt in Debian verifies: SHA-512
 * ($6$), SHA-256 ($5$), yescrypt ($y$), bcrypt ($2b$ $2a$ $2y$); salt and
 * hash of [A-Za-z0-9./] with '$', '=' and ',' (rounds=, parameters). */
static bool password_hash_valid(const char *s)
{
    static const char *const schemes[] = { "$6$", "$5$", "$y$", "$2b$", "$2a$", "$2y$" };
    bool known = false;
    for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
        known = known || !strncmp(s, schemes[i], strlen(schemes[i]));
    size_t n = strlen(s);
    if (!known || n < 20 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("./$=,", s[i]))
            return false;
    return true;
}

/* An ssh public key line: TYPE BASE64 [COMMENT] (no options). */
static bool ssh_key_valid(const char *s)
{
    static const char *const types[] = { "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256",
                                         "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                                         "sk-ssh-ed25519@openssh.com",
                                         "sk-ecdsa-sha2-nistp256@openssh.com" };
    size_t n = strlen(s);
    if (n == 0 || n > VO_CI_MAX_KEY_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    const char *sp = strchr(s, ' ');
    if (!sp)
        return false;
    bool known = false;
    for (size_t i = 0; i < ELEMENTSOF(types); i++)
        known = known || ((size_t)(sp - s) == strlen(types[i]) && !strncmp(s, types[i], (size_t)(sp - s)));
    if (!known)
        return false;
    const char *b = sp + 1, *e = b;
    while (*e && (isalnum((unsigned char)*e) || *e == '+' || *e == '/' || *e == '='))
        e++;
    return e - b >= 16 && (*e == 0 || *e == ' ');
}

/* A host name: dot-separated labels of [A-Za-z0-9-], 1-63 characters, not
 * starting or ending with '-'; 253 characters at most. */
static bool hostname_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)s[i]) && s[i] != '-')
            return false;
        if (label == 0 && s[i] == '-')
            return false;
        label++;
    }
    return true;
}

/* family of an IPv4 or IPv6 address, or 0. */
static int ip_family(const char *s)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, s, buf) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, s, buf) == 1)
        return AF_INET6;
    return 0;
}

/* "IP/PREFIX": its family, or 0. */
static int cidr_family(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || strlen(s) > 64)
        return 0;
    char ip[65];
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = 0;
    int family = ip_family(ip);
    char *end = NULL;
    errno = 0;
    long prefix = strtol(slash + 1, &end, 10);
    if (!family || !slash[1] || *end || errno || prefix < 1 ||
        prefix > (family == AF_INET ? 32 : 128) || !isdigit((unsigned char)slash[1]))
        return 0;
    return family;
}

int vo_cloud_init_validate(const VoCloudInit *ci, char **ret_error)
{
    if (ci->user && !user_valid(ci->user))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.user: '%s' is not a user name: use "
                            "1-32 characters of a-z, 0-9, '_' and '-', starting with a letter "
                            "or '_'", ci->user);
    if (ci->user && !strcmp(ci->user, "root"))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.user: root is not a user cloud-init "
                            "makes: give another name (it gets sudo)");
    if (ci->password_hash && !password_hash_valid(ci->password_hash))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.password_hash: not a crypt(3) hash "
                            "of SHA-512 ($6$), SHA-256 ($5$), yescrypt ($y$) or bcrypt ($2b$): "
                            "make one with `mkpasswd -m sha-512` or `openssl passwd -6`");
    size_t n_keys = 0;
    for (size_t i = 0; ci->ssh_keys && ci->ssh_keys[i]; i++, n_keys++)
        if (!ssh_key_valid(ci->ssh_keys[i]))
            return vo_error_set(ret_error, -EINVAL, "cloud_init.ssh_keys[%zu]: not an ssh public "
                                "key (\"TYPE BASE64 [COMMENT]\" of ssh-ed25519, ssh-rsa, "
                                "ecdsa-sha2-*, on one line, at most %d bytes): give the .pub "
                                "file", i, VO_CI_MAX_KEY_LEN);
    if (n_keys > VO_CI_MAX_KEYS)
        return vo_error_set(ret_error, -EINVAL, "cloud_init.ssh_keys: %zu keys; at most %d",
                            n_keys, VO_CI_MAX_KEYS);
    if (ci->hostname && !hostname_valid(ci->hostname))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.hostname: '%s' is not a host name "
                            "(labels of a-z, 0-9 and '-', 1-63 characters each, joined by '.')",
                            ci->hostname);
    if (ci->user_data) {
        size_t n = strlen(ci->user_data);
        if (n > VO_CI_MAX_USER_DATA)
            return vo_error_set(ret_error, -EINVAL, "cloud_init.user_data: %zu bytes; at most %d",
                                n, VO_CI_MAX_USER_DATA);
        if (strncmp(ci->user_data, "#cloud-config", 13) && strncmp(ci->user_data, "#!", 2))
            return vo_error_set(ret_error, -EINVAL, "cloud_init.user_data: must start with "
                                "#cloud-config (a cloud-config document) or #! (a script)");
        if (ci->user || ci->password_hash || ci->ssh_keys)
            return vo_error_set(ret_error, -EINVAL, "cloud_init.user_data: given together with "
                                "user, password_hash or ssh_keys, which vireo writes into the "
                                "user-data it makes: put them into your user-data instead");
    }
    if (ci->password_hash && !ci->user)
        return vo_error_set(ret_error, -EINVAL, "cloud_init.password_hash: give the user it is "
                            "for too (--ci-user)");
    if (ci->net == VO_CI_NET_STATIC) {
        int family = ci->address ? cidr_family(ci->address) : 0;
        if (!family)
            return vo_error_set(ret_error, -EINVAL, "cloud_init.network.address: '%s' is not "
                                "IP/PREFIX (e.g. 192.168.10.5/24)", ci->address ? ci->address : "");
        if (ci->gateway && ip_family(ci->gateway) != family)
            return vo_error_set(ret_error, -EINVAL, "cloud_init.network.gateway: '%s' is not an "
                                "address of the same family as %s", ci->gateway, ci->address);
        size_t n_dns = 0;
        for (size_t i = 0; ci->dns && ci->dns[i]; i++, n_dns++)
            if (!ip_family(ci->dns[i]))
                return vo_error_set(ret_error, -EINVAL, "cloud_init.network.dns[%zu]: '%s' is "
                                    "not an IP address", i, ci->dns[i]);
        if (n_dns > VO_CI_MAX_DNS)
            return vo_error_set(ret_error, -EINVAL, "cloud_init.network.dns: at most %d servers",
                                VO_CI_MAX_DNS);
    } else if (ci->address || ci->gateway || ci->dns)
        return vo_error_set(ret_error, -EINVAL, "cloud_init.network: address, gateway and dns "
                            "are for mode static");
    return 0;
}

/* ---- JSON -------------------------------------------------------------------- */

static int string_field(json_t *o, const char *key, char **ret, char **ret_error)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.%s: expected a string", key);
    *ret = vo_strdup(json_string_value(v));
    return 0;
}

static int strv_field(json_t *o, const char *key, const char *what, char ***ret, char **ret_error)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return vo_error_set(ret_error, -EINVAL, "%s: expected an array of strings", what);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e))
            return vo_error_set(ret_error, -EINVAL, "%s[%zu]: expected a string", what, i);
        vo_strv_push(ret, vo_strdup(json_string_value(e)));
    }
    return 0;
}

static int only_keys(json_t *o, const char *const *keys, size_t n, const char *what,
                     char **ret_error)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool known = false;
        for (size_t i = 0; i < n; i++)
            known = known || !strcmp(k, keys[i]);
        if (!known)
            return vo_error_set(ret_error, -EINVAL, "%s.%s: unknown key", what, k);
    }
    return 0;
}

static int parse_network(json_t *n, VoCloudInit *ci, char **ret_error)
{
    static const char *const keys[] = { "mode", "address", "gateway", "dns" };
    if (!n || json_is_null(n))
        return 0;
    if (!json_is_object(n))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.network: expected an object "
                            "{\"mode\": \"dhcp\"|\"static\", ...}");
    int r = only_keys(n, keys, ELEMENTSOF(keys), "cloud_init.network", ret_error);
    if (r < 0)
        return r;
    const char *mode = json_string_value(json_object_get(n, "mode"));
    if (mode && !strcmp(mode, "dhcp"))
        ci->net = VO_CI_NET_DHCP;
    else if (mode && !strcmp(mode, "static"))
        ci->net = VO_CI_NET_STATIC;
    else
        return vo_error_set(ret_error, -EINVAL, "cloud_init.network.mode: expected \"dhcp\" or "
                            "\"static\"");
    json_t *a = json_object_get(n, "address"), *g = json_object_get(n, "gateway");
    if ((a && !json_is_string(a)) || (g && !json_is_string(g)))
        return vo_error_set(ret_error, -EINVAL, "cloud_init.network: address and gateway are "
                            "strings");
    ci->address = vo_strdup(json_string_value(a));
    ci->gateway = vo_strdup(json_string_value(g));
    return strv_field(n, "dns", "cloud_init.network.dns", &ci->dns, ret_error);
}

int vo_cloud_init_from_json(json_t *o, VoCloudInit **ret, char **ret_error)
{
    static const char *const keys[] = { "user", "password_hash", "ssh_keys", "hostname",
                                        "user_data", "network" };
    if (!json_is_object(o))
        return vo_error_set(ret_error, -EINVAL, "cloud_init: expected an object");
    int r = only_keys(o, keys, ELEMENTSOF(keys), "cloud_init", ret_error);
    if (r < 0)
        return r;
    VoCloudInit *ci = vo_malloc0(sizeof(*ci));
    if ((r = string_field(o, "user", &ci->user, ret_error)) >= 0 &&
        (r = string_field(o, "password_hash", &ci->password_hash, ret_error)) >= 0 &&
        (r = strv_field(o, "ssh_keys", "cloud_init.ssh_keys", &ci->ssh_keys, ret_error)) >= 0 &&
        (r = string_field(o, "hostname", &ci->hostname, ret_error)) >= 0 &&
        (r = string_field(o, "user_data", &ci->user_data, ret_error)) >= 0 &&
        (r = parse_network(json_object_get(o, "network"), ci, ret_error)) >= 0)
        r = vo_cloud_init_validate(ci, ret_error);
    if (r < 0) {
        vo_cloud_init_free(ci);
        return r;
    }
    *ret = ci;
    return 0;
}

static json_t *strv_json(char **v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

void vo_cloud_init_hide_secrets(json_t *doc)
{
    json_t *ci = json_object_get(doc, "cloud_init");
    if (!ci)
        ci = json_object_get(json_object_get(doc, "spec"), "cloud_init");
    if (!json_is_object(ci))
        return;
    static const char *const secrets[] = { "password_hash", "user_data" };
    for (size_t i = 0; i < ELEMENTSOF(secrets); i++)
        if (json_object_get(ci, secrets[i]))
            json_object_set_new(ci, secrets[i], json_string(VO_CI_HIDDEN));
}

json_t *vo_cloud_init_to_json(const VoCloudInit *ci)
{
    json_t *o = json_object();
    const char *keys[] = { "user", "password_hash", "hostname", "user_data" };
    const char *vals[] = { ci->user, ci->password_hash, ci->hostname, ci->user_data };
    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        if (vals[i])
            json_object_set_new(o, keys[i], json_string(vals[i]));
    if (ci->ssh_keys)
        json_object_set_new(o, "ssh_keys", strv_json(ci->ssh_keys));
    if (ci->net != VO_CI_NET_DEFAULT) {
        json_t *n = json_pack("{s:s}", "mode", ci->net == VO_CI_NET_DHCP ? "dhcp" : "static");
        if (ci->address)
            json_object_set_new(n, "address", json_string(ci->address));
        if (ci->gateway)
            json_object_set_new(n, "gateway", json_string(ci->gateway));
        if (ci->dns)
            json_object_set_new(n, "dns", strv_json(ci->dns));
        json_object_set_new(o, "network", n);
    }
    return o;
}

/* ---- the CLI's forms ------------------------------------------------------- */

int vo_cloud_init_network_parse(const char *s, json_t **ret, char **ret_error)
{
    static const char usage[] = "expected dhcp or static:IP/PREFIX[,gw=GW][,dns=IP[;IP...]]";
    if (!strcmp(s, "dhcp")) {
        *ret = json_pack("{s:s}", "mode", "dhcp");
        return 0;
    }
    if (strncmp(s, "static:", 7))
        return vo_error_set(ret_error, -EINVAL, "--ci-network '%s': %s", s, usage);
    _cleanup_free_ char *copy = vo_strdup(s + 7);
    json_t *n = json_pack("{s:s}", "mode", "static");
    char *save = NULL;
    bool first = true;
    for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        if (first && !strchr(part, '='))
            json_object_set_new(n, "address", json_string(part));
        else if (!strncmp(part, "gw=", 3))
            json_object_set_new(n, "gateway", json_string(part + 3));
        else if (!strncmp(part, "dns=", 4)) {
            json_t *dns = json_array();
            char *save2 = NULL;
            for (char *ip = strtok_r(part + 4, ";", &save2); ip; ip = strtok_r(NULL, ";", &save2))
                json_array_append_new(dns, json_string(ip));
            json_object_set_new(n, "dns", dns);
        } else {
            json_decref(n);
            return vo_error_set(ret_error, -EINVAL, "--ci-network: '%s' is not understood: %s",
                                part, usage);
        }
        first = false;
    }
    if (!json_object_get(n, "address")) {
        json_decref(n);
        return vo_error_set(ret_error, -EINVAL, "--ci-network '%s': no address: %s", s, usage);
    }
    *ret = n;
    return 0;
}

int vo_cloud_init_keys_parse(const char *text, json_t **ret, char **ret_error)
{
    json_t *a = json_array();
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const char *s = p;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        if (n && *s != '#') {
            _cleanup_free_ char *line = strndup(s, n);
            if (!ssh_key_valid(line)) {
                json_decref(a);
                return vo_error_set(ret_error, -EINVAL, "line %zu is not an ssh public key "
                                    "(\"TYPE BASE64 [COMMENT]\"): give the .pub file",
                                    json_array_size(a) + 1);
            }
            json_array_append_new(a, json_string(line));
        }
        p = e ? e + 1 : p + strlen(p);
    }
    if (json_array_size(a) == 0) {
        json_decref(a);
        return vo_error_set(ret_error, -EINVAL, "no ssh public key in it");
    }
    *ret = a;
    return 0;
}

/* ---- the seed ------------------------------------------------------------------ */

static void append(char **buf, const char *fmt, ...) _printf_(2, 3);
static void append(char **buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *more = vo_vasprintf(fmt, ap);
    va_end(ap);
    size_t have = *buf ? strlen(*buf) : 0, add = strlen(more);
    char *n = realloc(*buf, have + add + 1);
    if (!n)
        abort();
    memcpy(n + have, more, add + 1);
    *buf = n;
}

/* YAML's double-quoted style: '"' and '\' escaped, control characters (and
 * DEL) as \xNN; other bytes (UTF-8 included) as they are. */
void vo_yaml_quote(char **buf, const char *s)
{
    append(buf, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            append(buf, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            append(buf, "\\x%02x", *p);
        else
            append(buf, "%c", *p);
    }
    append(buf, "\"");
}

static void append_kv(char **buf, const char *indent, const char *key, const char *value)
{
    append(buf, "%s%s: ", indent, key);
    vo_yaml_quote(buf, value);
    append(buf, "\n");
}

static char *render_user_data(const VoCloudInit *ci, const char *hostname)
{
    if (ci->user_data)
        return vo_strdup(ci->user_data);
    char *b = vo_strdup("#cloud-config\n# written by vireo from the VM's cloud_init settings\n");
    append_kv(&b, "", "hostname", hostname);
    append(&b, "preserve_hostname: false\n");
    if (ci->user) {
        append(&b, "users:\n");
        append_kv(&b, "  - ", "name", ci->user);
        append(&b, "    shell: /bin/bash\n");
        append(&b, "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n");
        append(&b, "    lock_passwd: %s\n", ci->password_hash ? "false" : "true");
        if (ci->password_hash)
            append_kv(&b, "    ", "passwd", ci->password_hash);
        if (ci->ssh_keys) {
            append(&b, "    ssh_authorized_keys:\n");
            for (size_t i = 0; ci->ssh_keys[i]; i++) {
                append(&b, "      - ");
                vo_yaml_quote(&b, ci->ssh_keys[i]);
                append(&b, "\n");
            }
        }
    } else if (ci->ssh_keys) { /* the image's default user */
        append(&b, "ssh_authorized_keys:\n");
        for (size_t i = 0; ci->ssh_keys[i]; i++) {
            append(&b, "  - ");
            vo_yaml_quote(&b, ci->ssh_keys[i]);
            append(&b, "\n");
        }
    }
    append(&b, "ssh_pwauth: %s\n", ci->password_hash ? "true" : "false");
    return b;
}

static char *render_network(const VoCloudInit *ci, const char *mac)
{
    if (ci->net == VO_CI_NET_DEFAULT || !mac)
        return NULL;
    char *b = vo_strdup("version: 2\nethernets:\n  nic0:\n    match:\n");
    append_kv(&b, "      ", "macaddress", mac);
    if (ci->net == VO_CI_NET_DHCP) {
        append(&b, "    dhcp4: true\n");
        return b;
    }
    append(&b, "    addresses:\n      - ");
    vo_yaml_quote(&b, ci->address);
    append(&b, "\n");
    if (ci->gateway) {
        append(&b, "    routes:\n      - to: %s\n        via: ",
               strchr(ci->gateway, ':') ? "\"::/0\"" : "\"0.0.0.0/0\"");
        vo_yaml_quote(&b, ci->gateway);
        append(&b, "\n");
    }
    if (ci->dns) {
        append(&b, "    nameservers:\n      addresses:\n");
        for (size_t i = 0; ci->dns[i]; i++) {
            append(&b, "        - ");
            vo_yaml_quote(&b, ci->dns[i]);
            append(&b, "\n");
        }
    }
    return b;
}

void vo_cloud_init_seed_clear(VoCloudInitSeed *s)
{
    free(s->instance_id);
    free(s->user_data);
    free(s->meta_data);
    free(s->network_config);
    *s = (VoCloudInitSeed){ 0 };
}

int vo_cloud_init_render(const VoCloudInit *ci, const char *vm_id, const char *vm_name,
                         const char *mac, VoCloudInitSeed *ret)
{
    const char *hostname = ci->hostname ? ci->hostname : vm_name;
    if (!vm_id || !hostname)
        return -EINVAL;
    VoCloudInitSeed s = { .user_data = render_user_data(ci, hostname),
                          .network_config = render_network(ci, mac) };
    /* The instance-id: the VM's id and a digest of what the guest is told. */
    _cleanup_free_ char *all = vo_asprintf("%s\n%s\n%s\n%s", vm_id, hostname, s.user_data,
                                           s.network_config ? s.network_config : "");
    char digest[VO_SHA256_HEX_LEN + 1];
    vo_sha256_data(all, strlen(all), digest);
    s.instance_id = vo_asprintf("vireo-%.8s-%.16s", vm_id, digest);
    append_kv(&s.meta_data, "", "instance-id", s.instance_id);
    append_kv(&s.meta_data, "", "local-hostname", hostname);
    *ret = s;
    return 0;
}
