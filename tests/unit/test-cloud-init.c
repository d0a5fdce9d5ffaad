/* test-cloud-init.c: a VM's cloud-init settings (conf/cloud-init.c):
 * validation of every field, the JSON round-trip inside a VM spec, the CLI's
 * --ci-network and key-file forms, and the NoCloud seed's documents: YAML
 * quoting, network-config v2, and an instance-id that is stable for the same
 * settings and changes with them. The documents are parsed back with
 * python3's yaml module where it exists (cloud-init's own parser). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/cloud-init.h"
#include "conf/vm-spec.h"
#include "qemu/qemu-argv.h"
#include "util/util.h"

#define ID "6f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10"
#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0b2rX5qQx7r4cK2lq4mT8n1xq0a7R1g5Yv3yQ0Zk9a me@host"
#define HASH "$6$saltsalt$Dz9h0yq0xV8a1mT7yF0s2Ykq8pZ7uH9dN3cA5bL1eW4rQ6tG2jK8mS0vX3zC7nB9pR5uY1wE4qT6iO8aS2dF0g."
#define MAC "52:54:00:12:34:56"

static VoCloudInit *parse(const char *text, char **ret_error)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    VoCloudInit *ci = NULL;
    int r = vo_cloud_init_from_json(doc, &ci, ret_error);
    json_decref(doc);
    if (r < 0)
        assert_null(ci);
    return ci;
}

static void expect_error(const char *text, const char *fragment)
{
    _cleanup_free_ char *err = NULL;
    VoCloudInit *ci = parse(text, &err);
    if (ci) {
        vo_cloud_init_free(ci);
        fail_msg("accepted: %s", text);
    }
    if (!strstr(err, fragment))
        fail_msg("error for %s is '%s', expected '%s'", text, err, fragment);
}

static void test_validation(void **state)
{
    (void)state;
    expect_error("[]", "expected an object");
    expect_error("{\"bogus\":1}", "cloud_init.bogus: unknown key");
    expect_error("{\"user\":\"Bad User\"}", "cloud_init.user");
    expect_error("{\"user\":\"\"}", "cloud_init.user");
    expect_error("{\"user\":\"root\"}", "root");
    expect_error("{\"user\":\"abcdefghijabcdefghijabcdefghijabc\"}", "cloud_init.user");
    expect_error("{\"user\":7}", "cloud_init.user: expected a string");
    expect_error("{\"user\":\"u\",\"password_hash\":\"secret\"}", "cloud_init.password_hash");
    expect_error("{\"user\":\"u\",\"password_hash\":\"$1$abc$defdefdefdefdefdefdef\"}",
                 "cloud_init.password_hash");
    expect_error("{\"user\":\"u\",\"password_hash\":\"$6$salt$abc\\ndefdefdefdefdefdef\"}",
                 "cloud_init.password_hash");
    expect_error("{\"password_hash\":\"" HASH "\"}", "give the user");
    expect_error("{\"ssh_keys\":\"" KEY "\"}", "expected an array");
    expect_error("{\"ssh_keys\":[\"not a key\"]}", "cloud_init.ssh_keys[0]");
    expect_error("{\"ssh_keys\":[\"" KEY "\", \"ssh-ed25519 AAAA\\nroot\"]}",
                 "cloud_init.ssh_keys[1]");
    expect_error("{\"ssh_keys\":[\"ssh-ed25519 not;base64;at;all;here\"]}", "ssh_keys[0]");
    expect_error("{\"hostname\":\"-bad\"}", "cloud_init.hostname");
    expect_error("{\"hostname\":\"a..b\"}", "cloud_init.hostname");
    expect_error("{\"hostname\":\"a b\"}", "cloud_init.hostname");
    expect_error("{\"user_data\":\"users: []\"}", "#cloud-config");
    expect_error("{\"user_data\":\"#cloud-config\\n\",\"user\":\"u\"}", "together with");
    expect_error("{\"network\":\"dhcp\"}", "cloud_init.network: expected an object");
    expect_error("{\"network\":{\"mode\":\"auto\"}}", "cloud_init.network.mode");
    expect_error("{\"network\":{\"mode\":\"static\"}}", "cloud_init.network.address");
    expect_error("{\"network\":{\"mode\":\"static\",\"address\":\"10.0.0.5\"}}",
                 "cloud_init.network.address");
    expect_error("{\"network\":{\"mode\":\"static\",\"address\":\"10.0.0.5/33\"}}",
                 "cloud_init.network.address");
    expect_error("{\"network\":{\"mode\":\"static\",\"address\":\"10.0.0.5/24\","
                 "\"gateway\":\"fe80::1\"}}", "cloud_init.network.gateway");
    expect_error("{\"network\":{\"mode\":\"static\",\"address\":\"10.0.0.5/24\","
                 "\"dns\":[\"x\"]}}", "cloud_init.network.dns[0]");
    expect_error("{\"network\":{\"mode\":\"dhcp\",\"address\":\"10.0.0.5/24\"}}",
                 "for mode static");
    expect_error("{\"network\":{\"mode\":\"dhcp\",\"extra\":1}}", "cloud_init.network.extra");

    /* user-data bounded at 64 KiB. */
    size_t n = VO_CI_MAX_USER_DATA + 1;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    memcpy(big, "#cloud-config\n", 14);
    big[n] = 0;
    json_t *o = json_pack("{s:s}", "user_data", big);
    VoCloudInit *ci = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_cloud_init_from_json(o, &ci, &err), -EINVAL);
    assert_non_null(strstr(err, "at most"));
    json_decref(o);
    free(big);

    /* Valid ones. */
    const char *good[] = {
        "{}",
        "{\"user\":\"alice\",\"password_hash\":\"" HASH "\",\"ssh_keys\":[\"" KEY "\"]}",
        "{\"hostname\":\"web-1.example.org\",\"network\":{\"mode\":\"dhcp\"}}",
        "{\"user_data\":\"#!/bin/sh\\necho hi\\n\",\"hostname\":\"h\"}",
        "{\"network\":{\"mode\":\"static\",\"address\":\"192.168.1.5/24\",\"gateway\":"
        "\"192.168.1.1\",\"dns\":[\"192.168.1.1\",\"2001:db8::53\"]}}",
        "{\"network\":{\"mode\":\"static\",\"address\":\"2001:db8::5/64\"}}",
    };
    for (size_t i = 0; i < ELEMENTSOF(good); i++) {
        _cleanup_free_ char *e = NULL;
        VoCloudInit *g = parse(good[i], &e);
        if (!g)
            fail_msg("refused %s: %s", good[i], e);
        vo_cloud_init_free(g);
    }
}

/* In a VM spec: parsed, checked, kept through to_json and copy. */
static void test_spec_round_trip(void **state)
{
    (void)state;
    const char *text = "{\"id\":\"" ID "\",\"name\":\"a\",\"cloud_init\":{\"user\":\"alice\","
                       "\"ssh_keys\":[\"" KEY "\"],\"network\":{\"mode\":\"static\","
                       "\"address\":\"10.1.2.3/24\",\"gateway\":\"10.1.2.1\",\"dns\":[\"10.1.2.1\"]}}}";
    json_t *doc = json_loads(text, 0, NULL);
    VoVmSpec *spec = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &err), 0);
    assert_string_equal(spec->cloud_init->user, "alice");
    assert_int_equal(spec->cloud_init->net, VO_CI_NET_STATIC);
    json_t *back = vo_vm_spec_to_json(spec);
    assert_true(json_equal(json_object_get(back, "cloud_init"), json_object_get(doc, "cloud_init")));
    spec->cloud_init_path = vo_strdup("/state/vms/x/cidata.iso");
    VoVmSpec *copy = vo_vm_spec_copy(spec);
    assert_string_equal(copy->cloud_init_path, "/state/vms/x/cidata.iso");
    assert_string_equal(copy->cloud_init->address, "10.1.2.3/24");
    vo_vm_spec_unresolve(copy);
    assert_null(copy->cloud_init_path);
    /* A spec without it has none. */
    json_object_del(doc, "cloud_init");
    VoVmSpec *plain = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &plain, NULL), 0);
    assert_null(plain->cloud_init);
    json_t *pj = vo_vm_spec_to_json(plain);
    assert_null(json_object_get(pj, "cloud_init"));
    /* Bad settings refuse the spec, naming the field. */
    json_object_set_new(doc, "cloud_init", json_pack("{s:s}", "hostname", "no spaces"));
    VoVmSpec *bad = NULL;
    _cleanup_free_ char *err2 = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &bad, &err2), -EINVAL);
    assert_non_null(strstr(err2, "cloud_init.hostname"));
    json_decref(pj);
    json_decref(back);
    json_decref(doc);
    vo_vm_spec_free(plain);
    vo_vm_spec_free(copy);
    vo_vm_spec_free(spec);
}

/* What every reader of a VM sees (vm show, lists, events, backups): no
 * user_data nor password_hash, the rest as it is. */
static void test_redact(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s, s:s, s:s, s:[s], s:s}", "user", "alice", "password_hash", HASH,
                          "hostname", "h1", "ssh_keys", KEY, "user_data", "#cloud-config\n");
    vo_cloud_init_json_redact(o);
    assert_null(json_object_get(o, "password_hash"));
    assert_null(json_object_get(o, "user_data"));
    assert_string_equal(json_string_value(json_object_get(o, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(o, "hostname")), "h1");
    assert_int_equal(json_array_size(json_object_get(o, "ssh_keys")), 1);
    json_decref(o);
    vo_cloud_init_json_redact(NULL);
    json_t *n = json_null();
    vo_cloud_init_json_redact(n);
    json_decref(n);
}

static void test_cli_forms(void **state)
{
    (void)state;
    json_t *n = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_cloud_init_network_parse("dhcp", &n, &err), 0);
    assert_string_equal(json_string_value(json_object_get(n, "mode")), "dhcp");
    json_decref(n);
    assert_int_equal(vo_cloud_init_network_parse("static:10.0.0.5/24,gw=10.0.0.1,dns=1.1.1.1;9.9.9.9",
                                                 &n, &err), 0);
    json_t *want = json_loads("{\"mode\":\"static\",\"address\":\"10.0.0.5/24\",\"gateway\":"
                              "\"10.0.0.1\",\"dns\":[\"1.1.1.1\",\"9.9.9.9\"]}", 0, NULL);
    assert_true(json_equal(n, want));
    json_decref(want);
    json_decref(n);
    assert_int_equal(vo_cloud_init_network_parse("static", &n, &err), -EINVAL);
    free(TAKE_PTR(err));
    assert_int_equal(vo_cloud_init_network_parse("static:gw=1.2.3.4", &n, &err), -EINVAL);
    assert_non_null(strstr(err, "no address"));
    free(TAKE_PTR(err));
    assert_int_equal(vo_cloud_init_network_parse("static:1.2.3.4/8,mtu=9000", &n, &err), -EINVAL);
    assert_non_null(strstr(err, "mtu=9000"));
    free(TAKE_PTR(err));
    assert_int_equal(vo_cloud_init_network_parse("manual", &n, &err), -EINVAL);
    free(TAKE_PTR(err));

    /* A key file: comments and blank lines skipped, CRLF tolerated. */
    json_t *keys = NULL;
    assert_int_equal(vo_cloud_init_keys_parse("# mine\n\n" KEY "\r\n  " KEY " two\n", &keys, &err), 0);
    assert_int_equal(json_array_size(keys), 2);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), KEY);
    json_decref(keys);
    assert_int_equal(vo_cloud_init_keys_parse("-----BEGIN OPENSSH PRIVATE KEY-----\n", &keys, &err),
                     -EINVAL);
    assert_non_null(strstr(err, "line 1"));
    free(TAKE_PTR(err));
    assert_int_equal(vo_cloud_init_keys_parse("# nothing\n", &keys, &err), -EINVAL);
    assert_non_null(strstr(err, "no ssh public key"));
}

static void test_yaml_quote(void **state)
{
    (void)state;
    char *b = NULL;
    vo_yaml_quote(&b, "plain");
    assert_string_equal(b, "\"plain\"");
    free(TAKE_PTR(b));
    vo_yaml_quote(&b, "a\"b\\c\nd\te: f # g");
    assert_string_equal(b, "\"a\\\"b\\\\c\\x0ad\\x09e: f # g\"");
    free(TAKE_PTR(b));
    vo_yaml_quote(&b, "$6$x$y/z.");
    assert_string_equal(b, "\"$6$x$y/z.\"");
    free(b);
}

static VoCloudInit *must(const char *text)
{
    _cleanup_free_ char *err = NULL;
    VoCloudInit *ci = parse(text, &err);
    if (!ci)
        fail_msg("%s", err);
    return ci;
}

static void test_seed_documents(void **state)
{
    (void)state;
    VoCloudInit *ci = must("{\"user\":\"alice\",\"password_hash\":\"" HASH "\",\"ssh_keys\":[\"" KEY
                           "\"],\"network\":{\"mode\":\"dhcp\"}}");
    VoCloudInitSeed s = { 0 };
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    assert_true(!strncmp(s.user_data, "#cloud-config\n", 14));
    assert_non_null(strstr(s.user_data, "hostname: \"vm1\"\n"));
    assert_non_null(strstr(s.user_data, "  - name: \"alice\"\n"));
    assert_non_null(strstr(s.user_data, "    passwd: \"" HASH "\"\n"));
    assert_non_null(strstr(s.user_data, "    lock_passwd: false\n"));
    assert_non_null(strstr(s.user_data, "      - \"" KEY "\"\n"));
    assert_non_null(strstr(s.user_data, "ssh_pwauth: true\n"));
    assert_true(!strncmp(s.meta_data, "instance-id: \"vireo-6f1c1c9e-", 29));
    assert_non_null(strstr(s.meta_data, "local-hostname: \"vm1\"\n"));
    assert_string_equal(s.network_config, "version: 2\nethernets:\n  nic0:\n    match:\n"
                                          "      macaddress: \"" MAC "\"\n    dhcp4: true\n");
    _cleanup_free_ char *iid = vo_strdup(s.instance_id);
    vo_cloud_init_seed_clear(&s);

    /* The same settings: the same instance-id (a restart does not re-run
     * cloud-init); changed settings, another VM, another MAC: a new one. */
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    assert_string_equal(s.instance_id, iid);
    vo_cloud_init_seed_clear(&s);
    assert_int_equal(vo_cloud_init_render(ci, "7f1c1c9e-5b7e-4c59-9a43-0d2f1e3a7b10", "vm1", MAC, &s), 0);
    assert_string_not_equal(s.instance_id, iid);
    vo_cloud_init_seed_clear(&s);
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", "52:54:00:12:34:57", &s), 0);
    assert_string_not_equal(s.instance_id, iid);
    vo_cloud_init_seed_clear(&s);
    free(ci->hostname);
    ci->hostname = vo_strdup("other");
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    assert_string_not_equal(s.instance_id, iid);
    assert_non_null(strstr(s.meta_data, "local-hostname: \"other\"\n"));
    vo_cloud_init_seed_clear(&s);
    vo_cloud_init_free(ci);

    /* Static network; no key, no user: nothing of a user in user-data. */
    ci = must("{\"network\":{\"mode\":\"static\",\"address\":\"10.0.0.5/24\",\"gateway\":"
              "\"10.0.0.1\",\"dns\":[\"10.0.0.1\"]}}");
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    assert_null(strstr(s.user_data, "users:"));
    assert_non_null(strstr(s.user_data, "ssh_pwauth: false\n"));
    assert_string_equal(s.network_config,
                        "version: 2\nethernets:\n  nic0:\n    match:\n      macaddress: \"" MAC
                        "\"\n    addresses:\n      - \"10.0.0.5/24\"\n    routes:\n"
                        "      - to: \"0.0.0.0/0\"\n        via: \"10.0.0.1\"\n"
                        "    nameservers:\n      addresses:\n        - \"10.0.0.1\"\n");
    vo_cloud_init_seed_clear(&s);
    /* No NIC: no network-config (cloud-init's fallback). */
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", NULL, &s), 0);
    assert_null(s.network_config);
    vo_cloud_init_seed_clear(&s);
    vo_cloud_init_free(ci);

    /* The defaults ({}): no network-config; the user's own user-data as given. */
    ci = must("{}");
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    assert_null(s.network_config);
    vo_cloud_init_seed_clear(&s);
    vo_cloud_init_free(ci);
    ci = must("{\"user_data\":\"#cloud-config\\nruncmd: [[touch, /x]]\\n\"}");
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    assert_string_equal(s.user_data, "#cloud-config\nruncmd: [[touch, /x]]\n");
    vo_cloud_init_seed_clear(&s);
    vo_cloud_init_free(ci);
}

/* A key comment with YAML's special characters reads back as written (by a
 * real YAML parser, when python3-yaml is there). */
static void test_seed_parses_as_yaml(void **state)
{
    (void)state;
    if (system("python3 -c 'import yaml' 2>/dev/null") != 0)
        skip();
    VoCloudInit *ci = must("{\"user\":\"alice\",\"ssh_keys\":[\"ssh-ed25519 "
                           "AAAAC3NzaC1lZDI1NTE5AAAAIB0b2rX5qQx7r4cK2lq4mT8n1xq0a7R1g5Yv3yQ0Zk9a "
                           "a: \\\"b\\\" # c \\\\ d' e]\"],\"hostname\":\"h1\"}");
    VoCloudInitSeed s = { 0 };
    assert_int_equal(vo_cloud_init_render(ci, ID, "vm1", MAC, &s), 0);
    char path[] = "/tmp/test-cloud-init.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s.user_data, strlen(s.user_data)), (ssize_t)strlen(s.user_data));
    close(fd);
    _cleanup_free_ char *cmd = vo_asprintf(
        "python3 -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); "
        "k = d[\"users\"][0][\"ssh_authorized_keys\"][0]; "
        "sys.exit(0 if k.endswith(\"a: \\\"b\\\" # c \\\\ d\\x27 e]\") and d[\"hostname\"] == \"h1\" "
        "and d[\"users\"][0][\"name\"] == \"alice\" else 1)' %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
    vo_cloud_init_seed_clear(&s);
    vo_cloud_init_free(ci);
}

static int volume_path(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    *ret_path = vo_asprintf("/pools/%s.img", key);
    return 0;
}

static int image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                      char **ret_error)
{
    return -ENOENT;
}

static bool argv_has(char **argv, const char *opt, const char *fragment)
{
    for (size_t i = 0; argv[i] && argv[i + 1]; i++)
        if (!strcmp(argv[i], opt) && strstr(argv[i + 1], fragment))
            return true;
    return false;
}

/* The seed is a second read-only CD-ROM (AHCI port 2; PIIX's ide.0 on pc)
 * beside the user's drive (port 1), never in the boot order; none without a
 * seed path. */
static void test_qemu_argv(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"id\":\"" ID "\",\"name\":\"a\",\"disks\":[{\"volume\":"
                             "\"p/d\"}],\"cdrom\":{\"volume\":\"p/iso\"},\"cloud_init\":{}}",
                             0, NULL);
    VoVmSpec *spec = NULL, *resolved = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(vo_vm_spec_from_json(doc, &spec, &err), 0);
    VoSpecResolver res = { .volume_path = volume_path, .image_file = image_file };
    assert_int_equal(vo_vm_spec_resolve(spec, &res, &resolved, &err), 0);
    VoQemuCaps caps = { .binary = "qemu-system-x86_64" };
    VoQemuPaths paths = { .qmp_socket = "/r/qmp", .console_socket = "/r/console",
                          .pidfile = "/r/pid" };
    char **argv = NULL;
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    assert_false(argv_has(argv, "-drive", "cidata"));
    vo_strv_free(TAKE_PTR(argv));
    resolved->cloud_init_path = vo_strdup("/state/vms/" ID "/cidata.iso");
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    assert_true(argv_has(argv, "-drive", "if=none,id=drive-cidata0,media=cdrom,readonly=on,"
                                         "format=raw,file=/state/vms/" ID "/cidata.iso"));
    assert_true(argv_has(argv, "-device", "{\"driver\":\"ide-cd\",\"id\":\"cidata0\","
                                          "\"bus\":\"ide.2\",\"drive\":\"drive-cidata0\"}"));
    assert_true(argv_has(argv, "-drive", "id=drive-cdrom0"));
    vo_strv_free(TAKE_PTR(argv));
    /* machine pc: PIIX has ide.0 and ide.1 only; the seed on ide.0. */
    free(resolved->machine);
    resolved->machine = vo_strdup("pc");
    assert_int_equal(vo_qemu_build_argv(resolved, &caps, &paths, &argv, &err), 0);
    assert_true(argv_has(argv, "-device", "{\"driver\":\"ide-cd\",\"id\":\"cidata0\","
                                          "\"bus\":\"ide.0\",\"drive\":\"drive-cidata0\"}"));
    assert_false(argv_has(argv, "-device", "\"bus\":\"ide.2\""));
    vo_strv_free(argv);
    vo_vm_spec_free(resolved);
    vo_vm_spec_free(spec);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_spec_round_trip),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_cli_forms),
        cmocka_unit_test(test_yaml_quote),
        cmocka_unit_test(test_seed_documents),
        cmocka_unit_test(test_seed_parses_as_yaml),
        cmocka_unit_test(test_qemu_argv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
