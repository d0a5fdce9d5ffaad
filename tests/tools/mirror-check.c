/* mirror-check.c: a live migration of a VM with LOCAL disks with real QEMU
 * through the QEMU driver (mirror_* ops), on one host, two directories
 * standing for two hosts. Run by tests/e2e/test_driver_migration.py:
 *   mirror-check IMAGE_DIR WORK_DIR
 * The source's disks (WORK/src-files): a qcow2 linked clone of the image's
 * disk (the base image, which "both hosts have": the destination gets a
 * copy of it first) and a data disk. The destination's files
 * (WORK/dst-files), made as the caller would: an overlay on its copy of the
 * base (only the top layer is copied: sync "top") and an empty qcow2 of the
 * same size (copied whole). The guest formats the data disk and runs a loop
 * that writes files on it, each with its checksum, syncing after each,
 * while the disks and the memory move. First two attempts are cancelled,
 * one in the disk phase and one in the memory phase: each time the
 * destination is gone, no block job or NBD node is left on the source, and
 * the source runs on, its guest still writing. The third attempt
 * completes. Then, with both sides paused, guest
 * RAM is compared (pmemsave); the source ends; `qemu-img compare` says the
 * source's and destination's disks (top layers with their bases) are
 * identical; the destination runs, stops the loop, and checks every file's
 * checksum. Every wait is bounded; every QEMU it started is killed before
 * it exits. Prints one line per step; exit 0 only when all checks pass.
 *   mirror-check IMAGE_DIR WORK_DIR --tls CERT_DIR PORT
 * does the same over TCP with mutual TLS (memory on 127.0.0.1:PORT+2(n-1),
 * NBD on the next port, for attempt n): CERT_DIR holds ca.crt, src.crt,
 * src.key, dst-ca.crt, dst.crt, dst.key (as migrate-check's); after each
 * cancel and at the end no TLS credentials may be left on either side. */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hypervisor/driver.h"
#include "qemu/qemu-instance.h"
#include "util/unix-socket.h"
#include "util/util.h"

#define MEMORY_MIB 256
#define DATA_SIZE "64M"
#define BOOT_MARKER "vireo-guest: booted"

static VoHvDriver *driver;
static bool g_tls; /* --tls: its settings for each side, its first port */
static VoHvMigrationTls g_src_tls, g_dst_tls;
static int g_port;
static VoHvInstance *src, *dst;

static void end_all(void)
{
    VoHvInstance *vms[] = { src, dst };
    for (size_t i = 0; i < ELEMENTSOF(vms); i++) {
        if (!vms[i])
            continue;
        driver->kill(vms[i]);
        struct pollfd p = { .fd = driver->exit_fd(vms[i]), .events = POLLIN };
        (void)poll(&p, 1, 10000);
        bool clean;
        char *reason = NULL;
        driver->reap(vms[i], &clean, &reason);
        free(reason);
        driver->release(vms[i]);
    }
    src = dst = NULL;
}

static void _printf_(1, 2) die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mirror-check: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    end_all();
    exit(1);
}

static int run_cmd(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Types line (when not NULL) on the serial console, then reads until text
 * and the end of its line show, at most timeout_ms; returns what follows
 * text on that line (malloc'd). Markers the guest prints are computed by
 * its shell ($((...))), so the echo of the typed line never matches. */
static char *console(VoHvInstance *vm, const char *line, const char *text, int timeout_ms)
{
    int fd = vo_unix_connect(driver->console_socket(vm), 0);
    if (fd < 0)
        die("console: %s", strerror(-fd));
    if (line) {
        _cleanup_free_ char *l = vo_asprintf("%s\n", line);
        if (write(fd, l, strlen(l)) != (ssize_t)strlen(l))
            die("console: cannot type");
    }
    static char buf[65536];
    size_t n = 0;
    int64_t deadline = vo_now_ms() + timeout_ms;
    while (vo_now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 200) <= 0)
            continue;
        if (n > sizeof(buf) / 2) { /* keep the tail */
            memmove(buf, buf + n - 1024, 1024);
            n = 1024;
        }
        ssize_t k = read(fd, buf + n, sizeof(buf) - n - 1);
        if (k <= 0)
            break;
        n += (size_t)k;
        buf[n] = 0;
        char *at = memmem(buf, n, text, strlen(text));
        char *eol = at ? strpbrk(at, "\r\n") : NULL;
        if (eol) {
            close(fd);
            return strndup(at + strlen(text), (size_t)(eol - at - strlen(text)));
        }
    }
    close(fd);
    die("'%s' did not show on the console within %d s", text, timeout_ms / 1000);
    return NULL;
}

static json_t *qmp(VoHvInstance *vm, const char *cmd, json_t *args)
{
    char *error = NULL;
    json_t *ret = NULL;
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vo_qmp_execute(vm->qmp, cmd, args, 60000, &ret, &error);
    pthread_mutex_unlock(&vm->qmp_lock);
    json_decref(args);
    if (r < 0)
        die("%s: %s", cmd, error ? error : strerror(-r));
    return ret;
}

static VoHvMigrationStatus wait_migration(VoHvInstance *vm, const char *side, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    VoHvMigrationProgress p = { 0 };
    while (vo_now_ms() < deadline) {
        free(p.error);
        if (driver->migrate_query(vm, &p) < 0)
            die("%s: query: %s", side, p.error ? p.error : "failed");
        if (p.status == VO_HV_MIGRATION_COMPLETED || p.status == VO_HV_MIGRATION_FAILED ||
            p.status == VO_HV_MIGRATION_CANCELLED)
            break;
        poll(NULL, 0, 100);
    }
    printf("%s: %s, %llu of %llu bytes, %llu passes, downtime %llu ms%s%s\n", side,
           vo_hv_migration_status_to_string(p.status), (unsigned long long)p.transferred,
           (unsigned long long)p.total, (unsigned long long)p.passes,
           (unsigned long long)p.downtime_ms, p.error ? ": " : "", p.error ? p.error : "");
    free(p.error);
    return p.status;
}

/* The disk phase: until every mirror is ready, at most timeout_ms. */
static void wait_mirrors(VoHvInstance *vm, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms, last = 0;
    VoHvMirrorProgress p = { 0 };
    while (vo_now_ms() < deadline) {
        free(p.error);
        if (driver->mirror_query(vm, &p) < 0)
            die("mirror: %s", p.error ? p.error : "failed");
        if (p.ready)
            break;
        if (vo_now_ms() - last > 2000) {
            printf("disks: %zu of %zu ready, %llu of %llu bytes\n", p.n_ready, p.n_disks,
                   (unsigned long long)p.transferred, (unsigned long long)p.total);
            last = vo_now_ms();
        }
        poll(NULL, 0, 100);
    }
    free(p.error);
    if (!p.ready)
        die("the disks were not in sync within %d s", timeout_ms / 1000);
    printf("disks ready: %zu disks, %llu of %llu bytes\n", p.n_disks,
           (unsigned long long)p.transferred, (unsigned long long)p.total);
}

static void compare_ram(const char *work, uint64_t size)
{
    _cleanup_free_ char *src_ram = vo_asprintf("%s/src.ram", work);
    _cleanup_free_ char *dst_ram = vo_asprintf("%s/dst.ram", work);
    json_decref(qmp(src, "pmemsave", json_pack("{s:I, s:I, s:s}", "val", (json_int_t)0, "size",
                                               (json_int_t)size, "filename", src_ram)));
    json_decref(qmp(dst, "pmemsave", json_pack("{s:I, s:I, s:s}", "val", (json_int_t)0, "size",
                                               (json_int_t)size, "filename", dst_ram)));
    char *cmp[] = { "cmp", "-s", src_ram, dst_ram, NULL };
    int same = run_cmd(cmp);
    unlink(src_ram);
    unlink(dst_ram);
    if (same != 0)
        die("guest RAM differs between source and destination");
    printf("guest RAM identical: %llu MiB\n", (unsigned long long)(size >> 20));
}

static void compare_disk(const char *a, const char *b)
{
    /* -U: the paused destination still has the files open. */
    char *cmp[] = { "qemu-img", "compare", "-q", "-U", (char *)a, (char *)b, NULL };
    if (run_cmd(cmp) != 0)
        die("qemu-img compare: %s and %s differ", a, b);
    printf("disks identical: %s\n", strrchr(a, '/') + 1);
}

/* "work/NAME" is NAME in the work dir. */
static int resolve_volume(void *userdata, const char *key, char **ret_path, char **ret_error)
{
    const char *const *dirs = userdata;
    *ret_path = vo_asprintf("%s/%s", dirs[0], key + strlen("work/"));
    return 0;
}

static int resolve_image_file(void *userdata, const char *image, bool initrd, char **ret_path,
                              char **ret_error)
{
    const char *const *dirs = userdata;
    *ret_path = vo_asprintf("%s/%s", dirs[1], initrd ? "initrd.img" : "vmlinux");
    return 0;
}

static void qemu_img(const char *fmt_args, ...) _printf_(1, 2);
static void qemu_img(const char *fmt_args, ...)
{
    va_list ap;
    va_start(ap, fmt_args);
    _cleanup_free_ char *cmd = vo_vasprintf(fmt_args, ap);
    va_end(ap);
    char *argv[] = { "sh", "-c", cmd, NULL };
    if (run_cmd(argv) != 0)
        die("failed: %s", cmd);
}

static VoVmSpec *make_spec(const char *image_dir, const char *work)
{
    _cleanup_free_ char *image_json = vo_asprintf("%s/image.json", image_dir);
    json_t *image = json_load_file(image_json, 0, NULL);
    if (!image)
        die("cannot read %s", image_json);
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:i, s:i, s:s, s:{s:s}, s:{s:s}, s:s, s:[{s:s, s:s}, {s:s, s:s}], "
        "s:[{s:s, s:s}]}",
        "id", "3c0f6d2e-8a41-4b7e-9d2c-5e6f7a8b9c01", "name", "mircheck", "accel", "tcg",
        "vcpus", 1, "memory_mib", MEMORY_MIB, "machine", "q35", "kernel", "image", "guest",
        "initrd", "image", "guest", "cmdline", json_string_value(json_object_get(image, "cmdline")),
        "disks", "volume", "work/src-files/root.qcow2", "format", "qcow2", "volume",
        "work/src-files/data.qcow2", "format", "qcow2", "nics", "mac", "52:54:00:12:34:57",
        "network", "user");
    json_decref(image);
    VoVmSpec *named = NULL, *spec = NULL;
    char *error = NULL;
    if (!doc || vo_vm_spec_from_json(doc, &named, &error) < 0)
        die("spec: %s", error ? error : "cannot build it");
    json_decref(doc);
    const char *dirs[2] = { work, image_dir };
    const VoSpecResolver res = { resolve_volume, resolve_image_file, dirs };
    if (vo_vm_spec_resolve(named, &res, &spec, &error) < 0)
        die("resolve: %s", error);
    vo_vm_spec_free(named);
    return spec;
}

/* The attempt under way: its destination's migration and NBD URIs and the
 * mirror plan. */
static char g_uri[256], g_nbd[256];
static VoHvMirrorPlan g_plan, g_src_plan; /* the destination's, the source's */

/* --tls: the credentials object and its dir are gone from vm. */
static void check_no_tls(VoHvInstance *vm, const char *side, const char *run_dir)
{
    if (!g_tls)
        return;
    json_t *objects = qmp(vm, "qom-list", json_pack("{s:s}", "path", "/objects"));
    size_t i;
    json_t *o;
    json_array_foreach(objects, i, o)
        if (!strcmp(json_string_value(json_object_get(o, "name")) ?: "", "vireo-migration-tls"))
            die("%s: the TLS credentials object is still there", side);
    json_decref(objects);
    json_t *params = qmp(vm, "query-migrate-parameters", NULL);
    if (strcmp(json_string_value(json_object_get(params, "tls-creds")) ?: "", ""))
        die("%s: the migration still names TLS credentials", side);
    json_decref(params);
    _cleanup_free_ char *tls_dir = vo_asprintf("%s/migration-tls", run_dir);
    if (access(tls_dir, F_OK) == 0)
        die("%s: %s is still there", side, tls_dir);
    printf("%s: no TLS credentials left\n", side);
}

/* Destination of attempt n: fresh files, as the caller makes them (an
 * overlay on the base copied there, an empty data disk of the same size),
 * its QEMU prepared from the source's layout, its disks exported. */
static void prepare_destination(const VoVmSpec *spec, const char *work, const char *df, int n,
                                const VoHvMirrorDisk *disks)
{
    char *error = NULL, *layout = NULL;
    qemu_img("rm -f '%s/root.qcow2' '%s/data.qcow2'", df, df);
    qemu_img("qemu-img create -q -f qcow2 -F raw -b '%s/base.raw' '%s/root.qcow2'", df, df);
    qemu_img("qemu-img create -q -f qcow2 '%s/data.qcow2' " DATA_SIZE, df);
    VoVmSpec *dspec = vo_vm_spec_copy(spec);
    free(dspec->disks[0].path);
    dspec->disks[0].path = vo_asprintf("%s/root.qcow2", df);
    free(dspec->disks[1].path);
    dspec->disks[1].path = vo_asprintf("%s/data.qcow2", df);
    if (driver->layout(src, &layout, &error) < 0)
        die("layout: %s", error);
    if (g_tls) {
        snprintf(g_uri, sizeof(g_uri), "tcp:127.0.0.1:%d", g_port + 2 * (n - 1));
        snprintf(g_nbd, sizeof(g_nbd), "tcp:127.0.0.1:%d", g_port + 2 * (n - 1) + 1);
    } else {
        snprintf(g_uri, sizeof(g_uri), "unix:%s/migrate-%d.sock", work, n);
        snprintf(g_nbd, sizeof(g_nbd), "unix:%s/nbd-%d.sock", work, n);
    }
    g_plan = (VoHvMirrorPlan){ .uri = g_nbd, .disks = disks, .n_disks = 2,
                               .tls = g_tls ? &g_dst_tls : NULL };
    g_src_plan = g_plan;
    g_src_plan.tls = g_tls ? &g_src_tls : NULL;
    _cleanup_free_ char *run_dir = vo_asprintf("%s/dst%d", work, n);
    if (driver->migrate_prepare(driver, dspec, layout, run_dir, NULL, g_uri, false,
                                g_tls ? &g_dst_tls : NULL, &dst, &error) < 0)
        die("migrate_prepare: %s", error);
    if (driver->mirror_export(dst, &g_plan, &error) < 0)
        die("mirror_export: %s", error);
    free(layout);
    vo_vm_spec_free(dspec);
}

static long guest_count(VoHvInstance *vm)
{
    char *n = console(vm, "echo COUNT-$((1+1)) n=$(cat /mnt/d/count 2>/dev/null || echo 0)",
                      "COUNT-2 n=", 30000);
    long c = strtol(n, NULL, 10);
    free(n);
    return c;
}

/* Until the source copies memory (active, bytes sent), at most timeout_ms. */
static void wait_memory_phase(VoHvInstance *vm, int timeout_ms)
{
    int64_t deadline = vo_now_ms() + timeout_ms;
    VoHvMigrationProgress p = { 0 };
    while (vo_now_ms() < deadline) {
        free(p.error);
        p.error = NULL;
        if (driver->migrate_query(vm, &p) < 0)
            die("query: %s", p.error ? p.error : "failed");
        if (p.status == VO_HV_MIGRATION_ACTIVE && p.transferred > 0)
            break;
        if (p.status != VO_HV_MIGRATION_SETUP && p.status != VO_HV_MIGRATION_ACTIVE)
            die("the migration ended (%s) before its cancel",
                vo_hv_migration_status_to_string(p.status));
        poll(NULL, 0, 100);
    }
    free(p.error);
    printf("memory phase: %llu of %llu bytes\n", (unsigned long long)p.transferred,
           (unsigned long long)p.total);
}

/* After a cancel, as the caller ends it: the destination killed, the
 * source with no job and no NBD node left, running, its guest writing. */
static void check_cancelled(const char *phase, const char *work)
{
    char *error = NULL;
    if (driver->migrate_finish(dst, VO_HV_MIGRATION_DESTINATION, false, false, &error) < 0)
        die("finish destination: %s", error);
    struct pollfd p = { .fd = driver->exit_fd(dst), .events = POLLIN };
    if (poll(&p, 1, 10000) != 1)
        die("the destination did not end");
    bool clean;
    char *reason = NULL;
    driver->reap(dst, &clean, &reason);
    free(reason);
    driver->release(dst);
    dst = NULL;
    if (driver->migrate_finish(src, VO_HV_MIGRATION_SOURCE, false, false, &error) < 0)
        die("finish source: %s", error);
    VoHvMirrorProgress mp;
    if (driver->mirror_query(src, &mp) != -ENOENT)
        die("a mirror is still under way after the cancel");
    free(mp.error);
    json_t *jobs = qmp(src, "query-jobs", NULL);
    if (json_array_size(jobs))
        die("block jobs left after the cancel");
    json_decref(jobs);
    json_t *nodes = qmp(src, "query-named-block-nodes", NULL), *node;
    size_t i;
    json_array_foreach(nodes, i, node)
        if (!strncmp(json_string_value(json_object_get(node, "node-name")) ?: "", "vireo-nbd", 9))
            die("NBD node %s left after the cancel",
                json_string_value(json_object_get(node, "node-name")));
    json_decref(nodes);
    int fd = g_tls ? -1 : vo_unix_connect(g_nbd + 5, 0); /* TCP: its QEMU ended above */
    if (fd >= 0)
        die("the destination's NBD server still answers");
    _cleanup_free_ char *src_dir = vo_asprintf("%s/src", work);
    check_no_tls(src, "source", src_dir);
    VoHvInfo info;
    if (driver->info(src, &info) < 0 || info.paused)
        die("the source does not run after the cancel");
    long c0 = guest_count(src), c = c0;
    for (int k = 0; k < 60 && c <= c0; k++) {
        poll(NULL, 0, 1000);
        c = guest_count(src);
    }
    if (c <= c0)
        die("the guest's writer stopped after the cancel");
    printf("cancelled in the %s phase: destination gone, no block job or NBD node left, "
           "the source runs (the guest wrote files %ld to %ld)\n", phase, c0, c);
}

/* The guest's writer: files f0..f39 rewritten in turn on the data disk,
 * each with random data, synced, then its checksum written beside it (via a
 * rename, synced): a file whose .sum exists is complete. /mnt/d/count says
 * how many were written (renamed into place too: a writer killed between
 * the truncation and the write of a plain "echo >" left it empty). */
static const char WRITER[] =
    "(i=0; while [ $i -lt 100000 ]; do j=$((i%40)); rm -f /mnt/d/f$j.sum; "
    "dd if=/dev/urandom of=/mnt/d/f$j bs=64k count=4 2>/dev/null; sync; "
    "sha256sum /mnt/d/f$j > /mnt/d/f$j.sum.tmp; mv /mnt/d/f$j.sum.tmp /mnt/d/f$j.sum; "
    "i=$((i+1)); echo $i > /mnt/d/count.tmp; mv /mnt/d/count.tmp /mnt/d/count; sync; "
    "done) >/dev/null 2>&1 & echo $! > /tmp/w.pid; "
    "echo WRITER-$((1+1))";

int main(int argc, char **argv)
{
    g_tls = argc == 6 && !strcmp(argv[3], "--tls");
    if (argc != 3 && !g_tls) {
        fprintf(stderr, "usage: mirror-check IMAGE_DIR WORK_DIR [--tls CERT_DIR PORT]\n");
        return 2;
    }
    const char *image_dir = argv[1], *work = argv[2];
    _cleanup_free_ char *ca = NULL, *dst_ca = NULL, *src_cert = NULL, *src_key = NULL,
                        *dst_cert = NULL, *dst_key = NULL;
    if (g_tls) {
        ca = vo_asprintf("%s/ca.crt", argv[4]);
        src_cert = vo_asprintf("%s/src.crt", argv[4]);
        src_key = vo_asprintf("%s/src.key", argv[4]);
        dst_ca = vo_asprintf("%s/dst-ca.crt", argv[4]);
        dst_cert = vo_asprintf("%s/dst.crt", argv[4]);
        dst_key = vo_asprintf("%s/dst.key", argv[4]);
        g_src_tls = (VoHvMigrationTls){ .ca_cert = ca, .cert = src_cert, .key = src_key };
        g_dst_tls = (VoHvMigrationTls){ .ca_cert = dst_ca, .cert = dst_cert, .key = dst_key };
        g_port = atoi(argv[5]);
        printf("memory and disks over TLS from port %d\n", g_port);
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    vo_qemu_driver_new(&driver);
    _cleanup_free_ char *image_json = vo_asprintf("%s/image.json", image_dir);
    json_t *image = json_load_file(image_json, 0, NULL);
    if (!image)
        die("cannot read %s", image_json);
    _cleanup_free_ char *base = vo_asprintf("%s/%s", image_dir,
                                            json_string_value(json_object_get(image, "disk")));
    json_decref(image);

    /* The source host's files: a linked clone of the image, a data disk. */
    _cleanup_free_ char *sf = vo_asprintf("%s/src-files", work);
    _cleanup_free_ char *df = vo_asprintf("%s/dst-files", work);
    qemu_img("mkdir -p '%s' '%s'", sf, df);
    qemu_img("qemu-img create -q -f qcow2 -F raw -b '%s' '%s/root.qcow2'", base, sf);
    qemu_img("qemu-img create -q -f qcow2 '%s/data.qcow2' " DATA_SIZE, sf);
    VoVmSpec *spec = make_spec(image_dir, work);
    char *error = NULL;
    _cleanup_free_ char *src_dir = vo_asprintf("%s/src", work);

    if (driver->start(driver, spec, src_dir, NULL, &src, &error) < 0)
        die("start: %s", error);
    if (driver->resume(src) < 0)
        die("resume failed");
    free(console(src, NULL, BOOT_MARKER, 240000));
    printf("source booted\n");
    free(console(src, "mke2fs -q /dev/vdb && mkdir -p /mnt/d && mount /dev/vdb /mnt/d && "
                      "echo SETUP-$((1+1))",
                 "SETUP-2", 120000));
    free(console(src, WRITER, "WRITER-2", 30000));
    /* Wait (bounded) until the writer has written a few files. */
    long before = 0;
    for (int i = 0; i < 60 && before < 3; i++) {
        char *n = console(src, "echo COUNT-$((1+1)) n=$(cat /mnt/d/count 2>/dev/null || echo 0)",
                          "COUNT-2 n=", 30000);
        before = strtol(n, NULL, 10);
        free(n);
        if (before < 3)
            poll(NULL, 0, 1000);
    }
    if (before < 3)
        die("the guest's writer did not write");
    printf("guest writes files on the data disk: %ld written before the migration\n", before);

    /* The destination host has the base image (copied first). */
    qemu_img("cp '%s' '%s/base.raw'", base, df);
    const VoHvMirrorDisk disks[] = { { .slot = 0, .export = "root", .top_only = true },
                                     { .slot = 1, .export = "data" } };

    /* A cancel in the disk phase, then one in the memory phase: each time
     * the source runs on as before, nothing is left of the attempt. */
    prepare_destination(spec, work, df, 1, disks);
    if (driver->mirror_start(src, &g_src_plan, &error) < 0)
        die("mirror_start: %s", error);
    VoHvMirrorProgress mp;
    if (driver->mirror_query(src, &mp) < 0)
        die("mirror_query: %s", mp.error);
    if (driver->migrate_cancel(src, &error) < 0)
        die("migrate_cancel: %s", error);
    check_cancelled("disk", work);

    prepare_destination(spec, work, df, 2, disks);
    if (driver->mirror_start(src, &g_src_plan, &error) < 0)
        die("mirror_start: %s", error);
    wait_mirrors(src, 300000);
    /* Slow, so the cancel finds it copying memory. */
    VoHvMigrationOptions slow = { .max_bandwidth = 4ull << 20,
                                  .tls = g_tls ? &g_src_tls : NULL };
    if (driver->migrate_start(src, g_uri, &slow, &error) < 0)
        die("migrate_start: %s", error);
    wait_memory_phase(src, 120000);
    if (driver->migrate_cancel(src, &error) < 0)
        die("migrate_cancel: %s", error);
    if (wait_migration(src, "source (cancelled)", 60000) != VO_HV_MIGRATION_CANCELLED)
        die("the cancelled migration did not end cancelled");
    check_cancelled("memory", work);

    /* The migration itself. */
    prepare_destination(spec, work, df, 3, disks);
    if (driver->mirror_start(src, &g_src_plan, &error) < 0)
        die("mirror_start: %s", error);
    printf("mirrors started\n");
    wait_mirrors(src, 300000);
    VoHvMigrationOptions opts = { .max_bandwidth = 1ull << 30,
                                  .tls = g_tls ? &g_src_tls : NULL };
    if (driver->migrate_start(src, g_uri, &opts, &error) < 0)
        die("migrate_start: %s", error);
    if (wait_migration(src, "source", 300000) != VO_HV_MIGRATION_COMPLETED)
        die("the migration did not complete");
    if (wait_migration(dst, "destination", 60000) != VO_HV_MIGRATION_COMPLETED)
        die("the destination did not complete");

    /* Both paused now: the source after completion, the destination by -S. */
    compare_ram(work, (uint64_t)MEMORY_MIB << 20);
    if (driver->migrate_finish(src, VO_HV_MIGRATION_SOURCE, true, false, &error) < 0)
        die("finish source: %s", error);
    struct pollfd p = { .fd = driver->exit_fd(src), .events = POLLIN };
    if (poll(&p, 1, 30000) != 1)
        die("the source did not end after the migration");
    printf("source ended\n");
    _cleanup_free_ char *sr = vo_asprintf("%s/root.qcow2", sf);
    _cleanup_free_ char *dr = vo_asprintf("%s/root.qcow2", df);
    _cleanup_free_ char *sd = vo_asprintf("%s/data.qcow2", sf);
    _cleanup_free_ char *dd = vo_asprintf("%s/data.qcow2", df);
    compare_disk(sr, dr);
    compare_disk(sd, dd);

    if (driver->migrate_finish(dst, VO_HV_MIGRATION_DESTINATION, true, true, &error) < 0)
        die("finish destination: %s", error);
    VoHvInfo info;
    if (driver->info(dst, &info) < 0 || info.paused)
        die("the destination does not run");
    printf("destination runs\n");
    _cleanup_free_ char *dst_dir = vo_asprintf("%s/dst3", work);
    check_no_tls(dst, "destination", dst_dir);
    /* The writer stops; every complete file's checksum is checked. */
    char *res = console(dst,
                        "kill $(cat /tmp/w.pid); sleep 1; sync; n=0; bad=0; "
                        "for s in /mnt/d/*.sum; do if sha256sum -c -s $s; then n=$((n+1)); "
                        "else bad=$((bad+1)); fi; done; "
                        "echo CHECK-$((1+1)) n=$n bad=$bad count=$(cat /mnt/d/count)",
                        "CHECK-2 ", 120000);
    long n = 0, bad = -1, count = 0;
    if (sscanf(res, "n=%ld bad=%ld count=%ld", &n, &bad, &count) != 3)
        die("cannot read the guest's check: '%s'", res);
    free(res);
    printf("guest checked %ld files on the destination: %ld bad; %ld written in all (%ld before "
           "the migration)\n", n, bad, count, before);
    if (bad != 0 || n < 1)
        die("files written during the migration are damaged on the destination");
    if (count <= before)
        die("the guest wrote nothing during the migration");
    vo_vm_spec_free(spec);
    end_all();
    printf("OK\n");
    return 0;
}
