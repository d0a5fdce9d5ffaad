/* test-cli.c: the CLI's command-line parsing (options anywhere, values, usage
 * errors, several positionals, two-word verbs, repeatable options), its option
 * value checks and its output formatting (also of UTF-8 tree lines). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "output.h"

/* Run fn with stderr going to a temporary file; return what it printed. */
static char *stderr_of(void (*fn)(void *), void *arg)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long n = ftell(tmp);
    rewind(tmp);
    char *buf = vo_malloc0((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return buf;
}

static int run_dummy(const CliCommand *cmd, int argc, char **argv)
{
    return 0;
}

static const CliCommand create_cmd = { "vm", "create", "NAME", "[--vcpus N] [--force]",
                                       "Create.", NULL, run_dummy };

typedef struct {
    char **argv;
    int argc;
    bool ok;
    int exit_status;
    const char *name, *vcpus;
    bool force;
} ParseCase;

static void do_parse(void *p)
{
    ParseCase *c = p;
    const CliOption opts[] = {
        { "--vcpus", &c->vcpus, NULL },
        { "--force", NULL, &c->force },
        { NULL, NULL, NULL },
    };
    c->ok = cli_parse_args(&create_cmd, c->argc, c->argv, opts, &c->name, &c->exit_status);
}

static char *parse(ParseCase *c, ...)
{
    static char *argv[16];
    va_list ap;
    va_start(ap, c);
    int n = 0;
    argv[n++] = (char *)"create";
    for (char *a; (a = va_arg(ap, char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    *c = (ParseCase){ .argv = argv, .argc = n };
    return stderr_of(do_parse, c);
}

static void test_parse_args(void **state)
{
    ParseCase c;
    _cleanup_free_ char *e1 = parse(&c, "web1", "--vcpus", "2", "--force", NULL);
    assert_true(c.ok);
    assert_string_equal(c.name, "web1");
    assert_string_equal(c.vcpus, "2");
    assert_true(c.force);
    assert_string_equal(e1, "");

    /* Options before the positional, "=" form, "--" ends options. */
    _cleanup_free_ char *e2 = parse(&c, "--vcpus=4", "--", "web2", NULL);
    assert_true(c.ok);
    assert_string_equal(c.name, "web2");
    assert_string_equal(c.vcpus, "4");
    assert_false(c.force);

    _cleanup_free_ char *e3 = parse(&c, "web1", "--bogus", NULL);
    assert_false(c.ok);
    assert_int_equal(c.exit_status, CLI_EXIT_USAGE);
    assert_string_equal(e3, "vireo: unknown option '--bogus' for 'vm create'; "
                            "try 'vireo vm create --help'\n");

    _cleanup_free_ char *e4 = parse(&c, NULL);
    assert_false(c.ok);
    assert_int_equal(c.exit_status, CLI_EXIT_USAGE);
    assert_non_null(strstr(e4, "needs NAME"));

    _cleanup_free_ char *e5 = parse(&c, "a", "b", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e5, "unexpected argument 'b'"));

    _cleanup_free_ char *e6 = parse(&c, "a", "--vcpus", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e6, "--vcpus needs a value"));

    _cleanup_free_ char *e7 = parse(&c, "a", "--force=yes", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e7, "--force takes no value"));

    _cleanup_free_ char *e8 = parse(&c, "", NULL);
    assert_false(c.ok);
    assert_int_equal(c.exit_status, CLI_EXIT_USAGE);
}

/* Several positionals, an optional one, and a two-word verb. */
static const CliCommand import_cmd = { "volume", "import", "POOL/NAME FILE", "[--upload]",
                                       "Import.", NULL, run_dummy };
static const CliCommand list_cmd = { "volume", "list", "[POOL]", NULL, "List.", NULL, run_dummy };
static const CliCommand disk_add_cmd = { "vm", "disk add", "VM [POOL/NAME]", "[--size SIZE]",
                                         "Add.", NULL, run_dummy };

typedef struct {
    const CliCommand *cmd;
    char **argv;
    int argc;
    bool ok;
    int exit_status;
    const char *args[2];
    const char *size;
    bool upload;
} MultiCase;

static void do_multi(void *p)
{
    MultiCase *c = p;
    const CliOption opts[] = {
        { "--upload", NULL, &c->upload },
        { "--size", &c->size, NULL },
        { NULL, NULL, NULL },
    };
    c->ok = cli_parse_args_n(c->cmd, c->argc, c->argv, opts, c->args, 2, &c->exit_status);
}

static char *multi(MultiCase *c, const CliCommand *cmd, ...)
{
    static char *argv[16];
    va_list ap;
    va_start(ap, cmd);
    int n = 0;
    argv[n++] = (char *)"verb";
    for (char *a; (a = va_arg(ap, char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    *c = (MultiCase){ .cmd = cmd, .argv = argv, .argc = n };
    return stderr_of(do_multi, c);
}

static void test_parse_positionals(void **state)
{
    MultiCase c;
    _cleanup_free_ char *e1 = multi(&c, &import_cmd, "default/d1", "--upload", "disk.vmdk", NULL);
    assert_true(c.ok);
    assert_string_equal(c.args[0], "default/d1");
    assert_string_equal(c.args[1], "disk.vmdk");
    assert_true(c.upload);
    assert_string_equal(e1, "");

    /* The missing one is named. */
    _cleanup_free_ char *e2 = multi(&c, &import_cmd, "default/d1", NULL);
    assert_false(c.ok);
    assert_int_equal(c.exit_status, CLI_EXIT_USAGE);
    assert_string_equal(e2, "vireo: 'volume import' needs FILE; try 'vireo volume import --help'\n");
    _cleanup_free_ char *e3 = multi(&c, &import_cmd, NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e3, "needs POOL/NAME;"));
    _cleanup_free_ char *e4 = multi(&c, &import_cmd, "a/b", "f", "g", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e4, "unexpected argument 'g' for 'volume import'"));
    _cleanup_free_ char *e5 = multi(&c, &import_cmd, "a/b", "", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e5, "FILE must not be empty"));

    /* An optional positional. */
    free(multi(&c, &list_cmd, NULL));
    assert_true(c.ok);
    assert_null(c.args[0]);
    assert_null(c.args[1]);
    free(multi(&c, &list_cmd, "fast", NULL));
    assert_true(c.ok);
    assert_string_equal(c.args[0], "fast");
    _cleanup_free_ char *e6 = multi(&c, &list_cmd, "fast", "slow", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e6, "unexpected argument 'slow'"));

    /* A two-word verb: its name in messages and help hints. */
    free(multi(&c, &disk_add_cmd, "web1", "--size", "1G", NULL));
    assert_true(c.ok);
    assert_string_equal(c.args[0], "web1");
    assert_null(c.args[1]);
    assert_string_equal(c.size, "1G");
    _cleanup_free_ char *e7 = multi(&c, &disk_add_cmd, "web1", "--bogus", NULL);
    assert_false(c.ok);
    assert_string_equal(e7, "vireo: unknown option '--bogus' for 'vm disk add'; "
                            "try 'vireo vm disk add --help'\n");
    _cleanup_free_ char *e8 = multi(&c, &disk_add_cmd, NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e8, "'vm disk add' needs VM;"));
}

/* Repeatable options next to ordinary ones. */
static const CliCommand net_create_cmd = { "network", "create", "NAME",
                                           "[--type T] [--remote ADDR]... [--network NET]...",
                                           "Create.", NULL, run_dummy };

typedef struct {
    char **argv;
    int argc;
    bool ok;
    int exit_status;
    const char *name, *type;
    bool no_lists; /* pass lists = NULL */
    char **remotes, **networks;
} ListCase;

static void do_lists(void *p)
{
    ListCase *c = p;
    const CliOption opts[] = { { "--type", &c->type, NULL }, { NULL, NULL, NULL } };
    const CliListOption lists[] = {
        { "--remote", &c->remotes },
        { "--network", &c->networks },
        { NULL, NULL },
    };
    c->ok = cli_parse_args_lists(&net_create_cmd, c->argc, c->argv, opts,
                                 c->no_lists ? NULL : lists, &c->name, 1, &c->exit_status);
}

static char *lists(ListCase *c, bool no_lists, ...)
{
    static char *argv[16];
    va_list ap;
    va_start(ap, no_lists);
    int n = 0;
    argv[n++] = (char *)"create";
    for (char *a; (a = va_arg(ap, char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    vo_strv_free(c->remotes);
    vo_strv_free(c->networks);
    *c = (ListCase){ .argv = argv, .argc = n, .no_lists = no_lists };
    return stderr_of(do_lists, c);
}

static void test_parse_lists(void **state)
{
    ListCase c = { 0 };
    /* Every value, in order, in both forms, mixed with other options and the
     * positional; a repeated ordinary option still keeps its last value. */
    _cleanup_free_ char *e1 = lists(&c, false, "--remote", "192.0.2.2", "ov1", "--type", "nat",
                                    "--remote=192.0.2.3", "--network", "a", "--type", "vxlan",
                                    "--remote", "192.0.2.4", NULL);
    assert_true(c.ok);
    assert_string_equal(e1, "");
    assert_string_equal(c.name, "ov1");
    assert_string_equal(c.type, "vxlan");
    assert_int_equal(vo_strv_len(c.remotes), 3);
    assert_string_equal(c.remotes[0], "192.0.2.2");
    assert_string_equal(c.remotes[1], "192.0.2.3");
    assert_string_equal(c.remotes[2], "192.0.2.4");
    assert_int_equal(vo_strv_len(c.networks), 1);
    assert_string_equal(c.networks[0], "a");

    /* Not given: the strv stays NULL. An empty value is kept (vireod judges it). */
    free(lists(&c, false, "ov1", "--network=", NULL));
    assert_true(c.ok);
    assert_null(c.remotes);
    assert_int_equal(vo_strv_len(c.networks), 1);
    assert_string_equal(c.networks[0], "");

    /* A value that looks like an option is still the value. */
    free(lists(&c, false, "ov1", "--remote", "--type", NULL));
    assert_true(c.ok);
    assert_null(c.type);
    assert_string_equal(c.remotes[0], "--type");

    _cleanup_free_ char *e2 = lists(&c, false, "ov1", "--remote", NULL);
    assert_false(c.ok);
    assert_int_equal(c.exit_status, CLI_EXIT_USAGE);
    assert_string_equal(e2, "vireo: --remote needs a value; try 'vireo network create --help'\n");

    /* Only whole names match; after "--" it is a positional. */
    _cleanup_free_ char *e3 = lists(&c, false, "ov1", "--remotes", "x", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e3, "unknown option '--remotes' for 'network create'"));
    _cleanup_free_ char *e4 = lists(&c, false, "--", "--remote", NULL);
    assert_true(c.ok);
    assert_string_equal(c.name, "--remote");
    assert_null(c.remotes);
    assert_string_equal(e4, "");

    /* Without lists, a repeatable option is unknown. */
    _cleanup_free_ char *e5 = lists(&c, true, "ov1", "--remote", "x", NULL);
    assert_false(c.ok);
    assert_non_null(strstr(e5, "unknown option '--remote'"));
    assert_null(c.remotes);
    vo_strv_free(c.remotes);
    vo_strv_free(c.networks);
}

static void test_find_command(void **state)
{
    static const CliCommand cmds[] = {
        { "vm", "create", "NAME", NULL, "Create.", NULL, run_dummy },
        { "vm", "disk add", "VM [POOL/NAME]", NULL, "Add.", NULL, run_dummy },
        { "vm", "disk list", "VM", NULL, "List.", NULL, run_dummy },
    };
    static const CliNoun noun = { "vm", "virtual machines", cmds, ELEMENTSOF(cmds) };
    int words = 0;
    char *a1[] = { (char *)"create", (char *)"web1", NULL };
    assert_ptr_equal(cli_find_command(&noun, 2, a1, &words), &cmds[0]);
    assert_int_equal(words, 1);
    char *a2[] = { (char *)"disk", (char *)"list", (char *)"web1", NULL };
    assert_ptr_equal(cli_find_command(&noun, 3, a2, &words), &cmds[2]);
    assert_int_equal(words, 2);
    char *a3[] = { (char *)"disk", NULL };
    assert_null(cli_find_command(&noun, 1, a3, &words));
    char *a4[] = { (char *)"disk", (char *)"frob", NULL };
    assert_null(cli_find_command(&noun, 2, a4, &words));
    char *a5[] = { (char *)"add", NULL };
    assert_null(cli_find_command(&noun, 1, a5, &words));
    assert_true(cli_is_verb_group(&noun, "disk"));
    assert_false(cli_is_verb_group(&noun, "dis"));
    assert_false(cli_is_verb_group(&noun, "create"));
    char name[64];
    assert_string_equal(cli_command_name(&cmds[1], name, sizeof(name)), "vm disk add");
}

typedef struct {
    const char *what, *s;
    bool ok;
    char *pool, *name;
} RefCase;

static void do_ref(void *p)
{
    RefCase *c = p;
    c->ok = cli_parse_volume_ref(c->what, c->s, &c->pool, &c->name);
}

static void test_volume_ref(void **state)
{
    RefCase c = { .what = "POOL/NAME", .s = "default/data1" };
    free(stderr_of(do_ref, &c));
    assert_true(c.ok);
    assert_string_equal(c.pool, "default");
    assert_string_equal(c.name, "data1");
    free(c.pool);
    free(c.name);

    static const char *const bad[] = { "data1", "/data1", "default/", "a/b/c", "/", "" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        c = (RefCase){ .what = "POOL/DST", .s = bad[i] };
        _cleanup_free_ char *e = stderr_of(do_ref, &c);
        assert_false(c.ok);
        assert_null(c.pool);
        assert_non_null(strstr(e, "vireo: POOL/DST: '"));
        assert_non_null(strstr(e, "is not POOL/NAME"));
    }
}

static void test_absolute_path(void **state)
{
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    assert_non_null(cwd);
    _cleanup_free_ char *a = cli_absolute_path("/no/such/file.qcow2");
    assert_string_equal(a, "/no/such/file.qcow2");
    _cleanup_free_ char *b = cli_absolute_path("no-such-file-for-test-cli.vmdk");
    _cleanup_free_ char *b_want = vo_asprintf("%s/no-such-file-for-test-cli.vmdk", cwd);
    assert_string_equal(b, b_want);
    _cleanup_free_ char *c = cli_absolute_path("./no-such-file-for-test-cli.vmdk");
    assert_string_equal(c, b_want);
    _cleanup_free_ char *d = cli_absolute_path(".");
    _cleanup_free_ char *real_cwd = realpath(cwd, NULL);
    assert_string_equal(d, real_cwd);
}

typedef struct {
    const char *s;
    bool ok;
    uint64_t v;
    int kind; /* 0 uint 1..8, 1 mib, 2 bytes, 3 choice */
} ValueCase;

static void do_value(void *p)
{
    ValueCase *c = p;
    static const char *const choices[] = { "auto", "kvm", "tcg", NULL };
    switch (c->kind) {
    case 0: c->ok = cli_parse_uint("--vcpus", c->s, 1, 8, &c->v); break;
    case 1: c->ok = cli_parse_mib("--memory", c->s, &c->v); break;
    case 2: c->ok = cli_parse_bytes("--disk-size", c->s, &c->v); break;
    default: c->ok = cli_parse_choice("--accel", c->s, choices); break;
    }
}

static char *value(ValueCase *c, int kind, const char *s)
{
    *c = (ValueCase){ .s = s, .kind = kind };
    return stderr_of(do_value, c);
}

static void test_values(void **state)
{
    ValueCase c;
    free(value(&c, 0, "4"));
    assert_true(c.ok);
    assert_int_equal(c.v, 4);
    _cleanup_free_ char *e1 = value(&c, 0, "two");
    assert_false(c.ok);
    assert_string_equal(e1, "vireo: --vcpus: 'two' is not a whole number\n");
    _cleanup_free_ char *e2 = value(&c, 0, "0");
    assert_false(c.ok);
    assert_non_null(strstr(e2, "too small"));
    _cleanup_free_ char *e3 = value(&c, 0, "9");
    assert_false(c.ok);
    assert_non_null(strstr(e3, "too large"));
    free(value(&c, 0, "-1"));
    assert_false(c.ok);
    free(value(&c, 0, "99999999999999999999999"));
    assert_false(c.ok);

    free(value(&c, 1, "512"));
    assert_true(c.ok);
    assert_int_equal(c.v, 512);
    free(value(&c, 1, "2G"));
    assert_true(c.ok);
    assert_int_equal(c.v, 2048);
    free(value(&c, 1, "1048576K"));
    assert_true(c.ok);
    assert_int_equal(c.v, 1024);
    _cleanup_free_ char *e4 = value(&c, 1, "12X");
    assert_false(c.ok);
    assert_string_equal(e4, "vireo: --memory: '12X' is not a size (use e.g. 512M or 2G)\n");
    _cleanup_free_ char *e5 = value(&c, 1, "1000K");
    assert_false(c.ok);
    assert_string_equal(e5, "vireo: --memory: '1000K' is not a whole number of MiB\n");
    _cleanup_free_ char *e6 = value(&c, 1, "99999999999T");
    assert_false(c.ok);
    assert_non_null(strstr(e6, "too large"));

    free(value(&c, 2, "10G"));
    assert_true(c.ok);
    assert_int_equal(c.v, 10ULL << 30);
    free(value(&c, 2, "4096"));
    assert_true(c.ok);
    assert_int_equal(c.v, 4096);
    /* Sizes go into JSON integers: at most INT64_MAX. */
    free(value(&c, 2, "8388607T"));
    assert_true(c.ok);
    assert_int_equal(c.v, 8388607ULL << 40);
    _cleanup_free_ char *e8 = value(&c, 2, "8388608T");
    assert_false(c.ok);
    assert_string_equal(e8, "vireo: --disk-size: '8388608T' is too large\n");

    free(value(&c, 3, "kvm"));
    assert_true(c.ok);
    _cleanup_free_ char *e7 = value(&c, 3, "xen");
    assert_false(c.ok);
    assert_string_equal(e7, "vireo: --accel: 'xen' is not one of auto, kvm, tcg\n");
}

static void test_formatting(void **state)
{
    static const struct {
        int64_t s;
        const char *want;
    } durations[] = {
        { -5, "0s" },        { 0, "0s" },          { 42, "42s" },        { 60, "1m 0s" },
        { 303, "5m 3s" },    { 3725, "1h 2m" },    { 86399, "23h 59m" }, { 273600, "3d 4h" },
    };
    for (size_t i = 0; i < ELEMENTSOF(durations); i++) {
        _cleanup_free_ char *s = fmt_duration(durations[i].s);
        assert_string_equal(s, durations[i].want);
    }

    static const struct {
        uint64_t v;
        const char *want;
    } mibs[] = {
        { 0, "0 MiB" }, { 512, "512 MiB" }, { 1023, "1023 MiB" }, { 1024, "1 GiB" },
        { 1536, "1.5 GiB" }, { 24105, "23.5 GiB" }, { 2047, "2.0 GiB" }, { 1 << 20, "1 TiB" },
    };
    for (size_t i = 0; i < ELEMENTSOF(mibs); i++) {
        _cleanup_free_ char *s = fmt_mib(mibs[i].v);
        assert_string_equal(s, mibs[i].want);
    }

    static const struct {
        uint64_t v;
        const char *want;
    } bytes[] = {
        { 0, "0 B" },
        { 1023, "1023 B" },
        { 1024, "1 KiB" },
        { 1610612736, "1.5 GiB" },
        { 64ULL << 20, "64 MiB" },
        { UINT64_MAX, "16.0 EiB" },
    };
    for (size_t i = 0; i < ELEMENTSOF(bytes); i++) {
        _cleanup_free_ char *s = fmt_bytes(bytes[i].v);
        assert_string_equal(s, bytes[i].want);
    }
}

static void test_table(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    static const char *const headers[] = { "NAME", "STATE", "UPTIME" };
    OutTable *t = out_table_new(3, headers);
    const char *r1[] = { "web1", "running", "5s" };
    const char *r2[] = { "a-much-longer-name", NULL, NULL };
    out_table_add(t, r1);
    out_table_add(t, r2);
    out_table_print(t, f);
    out_table_free(t);
    fclose(f);
    assert_string_equal(buf, "NAME                STATE    UPTIME\n"
                             "web1                running  5s\n"
                             "a-much-longer-name  -        -\n");
    free(buf);

    /* Widths count characters, not bytes: tree lines line up (snapshot list). */
    f = open_memstream(&buf, &len);
    assert_non_null(f);
    static const char *const tree_headers[] = { "NAME", "CREATED" };
    t = out_table_new(2, tree_headers);
    const char *t1[] = { "base", "t1" };
    const char *t2[] = { "├─ s2 *", "t2" };
    const char *t3[] = { "│  └─ s3", "t3" };
    out_table_add(t, t1);
    out_table_add(t, t2);
    out_table_add(t, t3);
    out_table_print(t, f);
    out_table_free(t);
    fclose(f);
    assert_string_equal(buf, "NAME      CREATED\n"
                             "base      t1\n"
                             "├─ s2 *   t2\n"
                             "│  └─ s3  t3\n");
    free(buf);
}

static void test_json(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_t *doc = json_pack("{s:i, s:s, s:[i]}", "b", 1, "a", "x", "c", 2);
    out_json(f, doc);
    json_decref(doc);
    fclose(f);
    assert_string_equal(buf, "{\n  \"a\": \"x\",\n  \"b\": 1,\n  \"c\": [\n    2\n  ]\n}\n");
    free(buf);

    json_t *o = json_pack("{s:s, s:i, s:b}", "s", "v", "i", 7, "b", 1);
    assert_string_equal(jstr(o, "s"), "v");
    assert_null(jstr(o, "i"));
    assert_null(jstr(o, "missing"));
    assert_null(jstr(NULL, "s"));
    _cleanup_free_ char *i = jint_str(o, "i");
    assert_string_equal(i, "7");
    assert_null(jint_str(o, "s"));
    json_decref(o);
}

static void test_event_line(void **state)
{
    json_t *ev = json_pack("{s:i, s:s, s:s, s:s, s:{s:{s:s}, s:{s:s}}}", "rev", 42, "kind", "vm",
                           "id", "abc", "action", "put", "object", "spec", "name", "web",
                           "status", "state", "running");
    char *line = fmt_event_line(ev);
    assert_string_equal(line, "42 vm put abc name=web state=running");
    free(line);
    json_decref(ev);

    ev = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:i}}", "rev", 7, "kind", "operation",
                   "id", "t1", "action", "put", "object", "kind", "import", "target", "d/v",
                   "state", "running", "progress", 40);
    line = fmt_event_line(ev);
    assert_string_equal(line, "7 operation put t1 op=import target=d/v state=running progress=40");
    free(line);
    json_decref(ev);

    /* A delete has no object; a name with a newline stays on one line. */
    ev = json_pack("{s:i, s:s, s:s, s:s, s:n}", "rev", 8, "kind", "pool", "id", "p",
                   "action", "delete", "object");
    line = fmt_event_line(ev);
    assert_string_equal(line, "8 pool delete p");
    free(line);
    json_decref(ev);
    ev = json_pack("{s:i, s:s, s:s, s:s, s:{s:s}}", "rev", 9, "kind", "network", "id", "n",
                   "action", "put", "object", "name", "a\nb");
    line = fmt_event_line(ev);
    assert_string_equal(line, "9 network put n name=a b");
    free(line);
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_args),
        cmocka_unit_test(test_parse_positionals),
        cmocka_unit_test(test_parse_lists),
        cmocka_unit_test(test_find_command),
        cmocka_unit_test(test_volume_ref),
        cmocka_unit_test(test_absolute_path),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_formatting),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_event_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
