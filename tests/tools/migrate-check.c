/* migrate-check.c: a live migration with real QEMU through the QEMU driver,
 * on one host, checked by comparing guest RAM on both sides. Run by
 * tests/e2e/test_driver_migration.py:
 *   migrate-check IMAGE_DIR WORK_DIR
 * Boots a VM from the guest image (kernel, initrd, a qcow2 overlay of its
 * disk), hot-plugs a second disk and a vCPU and grows its memory (virtio-mem
 * above the boot size, which a destination built from the spec alone would
 * get wrong: the spec then holds the live size), starts a shell loop in the
 * guest that keeps writing, prepares a destination through the driver from
 * the source's recorded layout, migrates over a unix socket (held iterating
 * for a few passes: hold_iterating), then, with both sides paused (the source
 * after completion, the destination started with -S), saves both RAMs
 * (pmemsave) and compares them (a difference is described page by page, the
 * pages kept in WORK/ram-diff.src and .dst), resumes the destination and
 * ends the source. Every wait is bounded; every QEMU it
 * started is killed before it exits. Prints one line per step; exit 0 only
 * when the RAMs are identical and the destination runs.
 *   migrate-check IMAGE_DIR WORK_DIR --tls CERT_DIR PORT [--refused]
 * migrates over tcp:127.0.0.1:PORT with mutual TLS instead: CERT_DIR holds
 * ca.crt, src.crt, src.key (the source's) and dst-ca.crt, dst.crt, dst.key
 * (the destination's; dst-ca.crt is ca.crt unless the destination is of
 * another CA). Both sides' credentials must be gone at the end. With
 * --refused the destination's certificate must be refused: the migration
 * fails, the source runs on, nothing of the TLS setup is left there. */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hypervisor/driver.h"
#include "qemu/qemu-instance.h"
#include "util/spawn.h"
#include "util/unix-socket.h"
#include "util/util.h"

#define MEMORY_MIB 256     /* boot memory */
#define MAX_MEMORY_MIB 512
#define GROWN_MEMORY_MIB 320
#define BOOT_MARKER "vireo-guest: booted"

static VoHvDriver *driver;
static VoHvMigrationTls src_tls, dst_tls; /* --tls */
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
    fprintf(stderr, "migrate-check: ");
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

/* Types type (unless NULL) on the serial console, then reads it until text
 * shows, at most timeout_ms. */
static void wait_console(VoHvInstance *vm, const char *type, const char *text, int timeout_ms)
{
    int fd = vo_unix_connect(driver->console_socket(vm), 0);
    if (fd < 0)
        die("console: %s", strerror(-fd));
    if (type && write(fd, type, strlen(type)) != (ssize_t)strlen(type))
        die("console: cannot type '%s'", type);
    char buf[65536];
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
        if (memmem(buf, n, text, strlen(text))) {
            close(fd);
            return;
        }
    }
    close(fd);
    die("'%s' did not show on the console within %d s", text, timeout_ms / 1000);
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

/* Prints what differs in one page (how many bytes, where, the first few
 * 8-byte words on both sides) and appends both sides' page to
 * WORK/ram-diff.src and WORK/ram-diff.dst, to be read after a failure. */
static void describe_page(const char *work, uint64_t gpa, const char *a, const char *b,
                          size_t len)
{
    size_t bytes = 0, lo = len, hi = 0;
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i]) {
            bytes++;
            lo = i < lo ? i : lo;
            hi = i;
        }
    printf("  page 0x%llx: %zu bytes differ, at 0x%zx..0x%zx\n", (unsigned long long)gpa,
           bytes, lo, hi);
    size_t shown = 0;
    for (size_t i = lo & ~(size_t)7; i + 8 <= len && shown < 4; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x == y)
            continue;
        printf("    +0x%03zx: source %016llx destination %016llx\n", i,
               (unsigned long long)x, (unsigned long long)y);
        shown++;
    }
    const char *sides[2] = { "src", "dst" };
    const char *data[2] = { a, b };
    for (int s = 0; s < 2; s++) {
        _cleanup_free_ char *path = vo_asprintf("%s/ram-diff.%s", work, sides[s]);
        FILE *f = fopen(path, "a");
        if (f) {
            fwrite(&gpa, sizeof(gpa), 1, f);
            fwrite(data[s], 1, len, f);
            fclose(f);
        }
    }
}

#define HOLD_PASSES 6
#define HOLD_TIMEOUT_MS 60000

/* Waits (bounded) until the migration has synced its dirty bitmap
 * HOLD_PASSES times, or ended, then sets QEMU's default downtime limit. */
static void hold_iterating(VoHvInstance *vm)
{
    int64_t deadline = vo_now_ms() + HOLD_TIMEOUT_MS;
    json_int_t passes = 0;
    while (vo_now_ms() < deadline) {
        json_t *info = qmp(vm, "query-migrate", NULL);
        const char *status = json_string_value(json_object_get(info, "status")) ?: "";
        passes = json_integer_value(json_object_get(json_object_get(info, "ram"),
                                                    "dirty-sync-count"));
        bool going = !strcmp(status, "active") || !strcmp(status, "setup");
        json_decref(info);
        if (!going || passes >= HOLD_PASSES)
            break;
        poll(NULL, 0, 20);
    }
    json_decref(qmp(vm, "migrate-set-parameters", json_pack("{s:i}", "downtime-limit", 300)));
    printf("held the migration iterating for %lld passes\n", (long long)passes);
}

/* Saves guest RAM from addr (size bytes) on both sides; dies unless equal. */
static void compare_ram(const char *work, const char *what, uint64_t addr, uint64_t size)
{
    _cleanup_free_ char *src_ram = vo_asprintf("%s/src.ram", work);
    _cleanup_free_ char *dst_ram = vo_asprintf("%s/dst.ram", work);
    json_decref(qmp(src, "pmemsave", json_pack("{s:I, s:I, s:s}", "val", (json_int_t)addr,
                                               "size", (json_int_t)size, "filename", src_ram)));
    json_decref(qmp(dst, "pmemsave", json_pack("{s:I, s:I, s:s}", "val", (json_int_t)addr,
                                               "size", (json_int_t)size, "filename", dst_ram)));
    _cleanup_free_ char *a = NULL, *b = NULL;
    size_t a_len = 0, b_len = 0;
    if (vo_read_file(src_ram, size + 1, &a, &a_len) < 0 ||
        vo_read_file(dst_ram, size + 1, &b, &b_len) < 0 || a_len != size || b_len != size)
        die("guest RAM (%s): pmemsave gave %zu and %zu bytes of %llu", what, a_len, b_len,
            (unsigned long long)size);
    unlink(src_ram);
    unlink(dst_ram);
    /* Which 4 KiB pages differ: where they lie says what wrote them. */
    size_t pages = 0;
    char first[8][24];
    for (uint64_t off = 0; off < size; off += 4096) {
        size_t len = size - off < 4096 ? (size_t)(size - off) : 4096;
        if (!memcmp(a + off, b + off, len))
            continue;
        if (pages < 8)
            snprintf(first[pages], sizeof(first[pages]), "0x%llx",
                     (unsigned long long)(addr + off));
        if (pages < 64)
            describe_page(work, addr + off, a + off, b + off, len);
        pages++;
    }
    if (pages) {
        _cleanup_free_ char *list = vo_strdup("");
        for (size_t i = 0; i < pages && i < 8; i++) {
            char *longer = vo_asprintf("%s %s", list, first[i]);
            free(list);
            list = longer;
        }
        die("guest RAM (%s) differs between source and destination: %zu pages of 4 KiB, "
            "first at%s", what, pages, list);
    }
    printf("guest RAM identical: %s, %llu MiB\n", what, (unsigned long long)(size >> 20));
}

/* --tls: the credentials object and its dir are gone from vm. */
static void check_no_tls(VoHvInstance *vm, const char *side, const char *run_dir)
{
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

/* Where the virtio-mem device's memory is, and how much is plugged. */
static void virtio_mem_region(VoHvInstance *vm, uint64_t *ret_addr, uint64_t *ret_size)
{
    json_t *devices = qmp(vm, "query-memory-devices", NULL);
    size_t i;
    json_t *d;
    *ret_addr = *ret_size = 0;
    json_array_foreach(devices, i, d) {
        json_t *data = json_object_get(d, "data");
        if (!strcmp(json_string_value(json_object_get(d, "type")) ?: "", "virtio-mem")) {
            *ret_addr = (uint64_t)json_integer_value(json_object_get(data, "memaddr"));
            *ret_size = (uint64_t)json_integer_value(json_object_get(data, "max-size"));
        }
    }
    json_decref(devices);
    if (!*ret_size)
        die("no virtio-mem device");
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

static VoVmSpec *make_spec(const char *image_dir, const char *work)
{
    _cleanup_free_ char *image_json = vo_asprintf("%s/image.json", image_dir);
    json_t *image = json_load_file(image_json, 0, NULL);
    if (!image)
        die("cannot read %s", image_json);
    _cleanup_free_ char *base = vo_asprintf("%s/%s", image_dir,
                                            json_string_value(json_object_get(image, "disk")));
    _cleanup_free_ char *overlay = vo_asprintf("%s/root.qcow2", work);
    char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base,
                       overlay, NULL };
    if (run_cmd(create) != 0)
        die("qemu-img create %s failed", overlay);
    /* A spec names things (the root disk as volume "work/root.qcow2", the
     * kernel and initrd as image "guest"); resolving gives the driver the
     * files in work and image_dir. */
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:s, s:{s:s}, s:{s:s}, s:s, s:[{s:s, s:s}], s:[{s:s, s:s}]}",
        "id", "0b6e7c2a-1f3d-4e5a-9c8b-7a6d5e4f3a21", "name", "migcheck", "accel", "tcg",
        "vcpus", 1, "max_vcpus", 2, "memory_mib", MEMORY_MIB, "max_memory_mib", MAX_MEMORY_MIB, "machine", "q35",
        "kernel", "image", "guest", "initrd", "image", "guest",
        "cmdline", json_string_value(json_object_get(image, "cmdline")), "disks", "volume",
        "work/root.qcow2", "format", "qcow2", "nics", "mac", "52:54:00:12:34:56", "network", "user");
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

int main(int argc, char **argv)
{
    bool tls = argc >= 6 && !strcmp(argv[3], "--tls");
    bool refused = tls && argc == 7 && !strcmp(argv[6], "--refused");
    if (argc != 3 && !(tls && (argc == 6 || refused))) {
        fprintf(stderr, "usage: migrate-check IMAGE_DIR WORK_DIR [--tls CERT_DIR PORT "
                        "[--refused]]\n");
        return 2;
    }
    const char *image_dir = argv[1], *work = argv[2];
    _cleanup_free_ char *ca = NULL, *dst_ca = NULL, *src_cert = NULL, *src_key = NULL,
                        *dst_cert = NULL, *dst_key = NULL;
    if (tls) {
        ca = vo_asprintf("%s/ca.crt", argv[4]);
        src_cert = vo_asprintf("%s/src.crt", argv[4]);
        src_key = vo_asprintf("%s/src.key", argv[4]);
        dst_ca = vo_asprintf("%s/dst-ca.crt", argv[4]);
        dst_cert = vo_asprintf("%s/dst.crt", argv[4]);
        dst_key = vo_asprintf("%s/dst.key", argv[4]);
        src_tls = (VoHvMigrationTls){ .ca_cert = ca, .cert = src_cert, .key = src_key };
        dst_tls = (VoHvMigrationTls){ .ca_cert = dst_ca, .cert = dst_cert, .key = dst_key };
    }
    signal(SIGPIPE, SIG_IGN);
    vo_qemu_driver_new(&driver);
    VoVmSpec *spec = make_spec(image_dir, work);
    char *error = NULL;
    _cleanup_free_ char *src_dir = vo_asprintf("%s/src", work);
    _cleanup_free_ char *dst_dir = vo_asprintf("%s/dst", work);

    if (driver->start(driver, spec, src_dir, NULL, &src, &error) < 0)
        die("start: %s", error);
    if (driver->resume(src) < 0)
        die("resume failed");
    wait_console(src, NULL, BOOT_MARKER, 240000);
    printf("source booted\n");

    /* Hot-plugs: a second disk (slot 1) and a second vCPU. */
    _cleanup_free_ char *data = vo_asprintf("%s/data.qcow2", work);
    char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2", data, "16M", NULL };
    if (run_cmd(create) != 0)
        die("qemu-img create %s failed", data);
    VoVmSpec *now = vo_vm_spec_copy(spec);
    now->disks = realloc(now->disks, sizeof(VoDiskSpec) * 2);
    now->disks[1] = (VoDiskSpec){ .path = vo_strdup(data), .format = VO_DISK_QCOW2, .slot = 1 };
    now->n_disks = 2;
    if (driver->disk_attach(src, now, 1, &error) < 0)
        die("disk_attach: %s", error);
    unsigned vcpus = 0;
    if (driver->set_vcpus(src, 2, &vcpus, &error) < 0)
        die("set_vcpus: %s", error);
    now->vcpus = vcpus;
    uint64_t memory = 0;
    if (driver->set_memory(src, GROWN_MEMORY_MIB, &memory, &error) < 0)
        die("set_memory: %s", error);
    now->memory_mib = memory; /* as vireod keeps it: the live size */
    printf("hot-plugged disk slot 1 and vCPU 1 (%u vCPUs), memory %llu MiB\n", vcpus,
           (unsigned long long)memory);

    /* A guest that keeps writing (a shell loop, on one vCPU) while its
     * memory is copied: its writes after a page was sent must reach the
     * destination. The marker is split so the echo of the typed line does
     * not match it. */
    wait_console(src, "(while :; do i=$((i+1)); done) & echo dirty\"\"ing-started\n",
                 "dirtying-started", 60000);
    printf("guest dirties memory\n");

    char *layout = NULL;
    if (driver->layout(src, &layout, &error) < 0)
        die("layout: %s", error);
    printf("layout: %s\n", layout);
    _cleanup_free_ char *uri = tls ? vo_asprintf("tcp:127.0.0.1:%s", argv[5])
                                   : vo_asprintf("unix:%s/migrate.sock", work);
    if (driver->migrate_prepare(driver, now, layout, dst_dir, NULL, uri, false, tls ? &dst_tls : NULL,
                                &dst, &error) < 0)
        die("migrate_prepare: %s", error);
    /* A downtime limit of 1 ms keeps the migration iterating (syncing the
     * dirty bitmap and sending pages while the guest runs) until
     * HOLD_PASSES syncs are done: a write QEMU's dirty tracking misses after
     * a page was sent then shows as a difference below (an idle guest
     * rewrites its per-CPU data all the time). Then the usual limit lets it
     * converge. */
    VoHvMigrationOptions opts = { .max_bandwidth = 1ull << 30, .downtime_limit_ms = 1,
                                  .tls = tls ? &src_tls : NULL };
    if (driver->migrate_start(src, uri, &opts, &error) < 0)
        die("migrate_start: %s", error);
    if (!refused)
        hold_iterating(src);
    if (tls)
        printf("migrating over TLS to %s\n", uri);
    if (refused) {
        /* The source refuses the destination's certificate (or the other
         * way round): failed, and the source runs on as before. */
        if (wait_migration(src, "source", 120000) != VO_HV_MIGRATION_FAILED)
            die("the migration to a destination of another CA did not fail");
        if (driver->migrate_finish(dst, VO_HV_MIGRATION_DESTINATION, false, false, &error) < 0)
            die("finish destination: %s", error);
        struct pollfd pd = { .fd = driver->exit_fd(dst), .events = POLLIN };
        if (poll(&pd, 1, 30000) != 1)
            die("the destination did not end");
        if (driver->migrate_finish(src, VO_HV_MIGRATION_SOURCE, false, false, &error) < 0)
            die("finish source: %s", error);
        check_no_tls(src, "source", src_dir);
        VoHvInfo sinfo;
        if (driver->info(src, &sinfo) < 0 || sinfo.paused)
            die("the source does not run after the refused migration");
        printf("source runs on after the refused migration\n");
        free(layout);
        vo_vm_spec_free(now);
        vo_vm_spec_free(spec);
        end_all();
        printf("OK\n");
        return 0;
    }
    if (wait_migration(src, "source", 300000) != VO_HV_MIGRATION_COMPLETED)
        die("the migration did not complete");
    if (wait_migration(dst, "destination", 60000) != VO_HV_MIGRATION_COMPLETED)
        die("the destination did not complete");

    /* Both paused now: the source after completion, the destination by -S. */
    json_t *summary = qmp(src, "query-memory-size-summary", NULL);
    uint64_t boot_bytes = (uint64_t)json_integer_value(json_object_get(summary, "base-memory"));
    json_decref(summary);
    compare_ram(work, "boot memory", 0, boot_bytes);
    uint64_t vmem_addr, vmem_size;
    virtio_mem_region(src, &vmem_addr, &vmem_size);
    compare_ram(work, "virtio-mem", vmem_addr, vmem_size);
    if (tls) { /* the destination took the stream through its credentials */
        json_t *params = qmp(dst, "query-migrate-parameters", NULL);
        const char *creds = json_string_value(json_object_get(params, "tls-creds")) ?: "";
        if (strcmp(creds, "vireo-migration-tls"))
            die("the destination's tls-creds is '%s'", creds);
        printf("destination: tls-creds %s\n", creds);
        json_decref(params);
    }

    if (driver->migrate_finish(dst, VO_HV_MIGRATION_DESTINATION, true, true, &error) < 0)
        die("finish destination: %s", error);
    if (driver->migrate_finish(src, VO_HV_MIGRATION_SOURCE, true, false, &error) < 0)
        die("finish source: %s", error);
    struct pollfd p = { .fd = driver->exit_fd(src), .events = POLLIN };
    if (poll(&p, 1, 30000) != 1)
        die("the source did not end after the migration");
    VoHvInfo info;
    if (driver->info(dst, &info) < 0 || info.paused)
        die("the destination does not run");
    if (tls)
        check_no_tls(dst, "destination", dst_dir);
    printf("destination runs, source ended\n");
    free(layout);
    vo_vm_spec_free(now);
    vo_vm_spec_free(spec);
    end_all();
    printf("OK\n");
    return 0;
}
