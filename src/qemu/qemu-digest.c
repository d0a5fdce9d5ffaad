/* qemu-digest.c: the QEMU driver's memory_digest op (driver.h): a SHA-256
 * of a paused guest's RAM, for checking a live migration (both sides
 * paused: the source after completion, the destination started with -S).
 * pmemsave writes the boot memory (guest-physical 0 up to the base memory
 * size) and then each virtio-mem region (its whole range) to one file in
 * the VM's run dir, which is hashed and removed (test-only: with
 * VIREO_TEST_MIGRATE_KEEP_RAM=DIR each region's file is kept as
 * DIR/<the run dir, '/' as '_'>.<n>.ram, for a test to compare both sides
 * itself; docs/internals.md, "Test-only hooks"). Kept apart from
 * qemu-migrate.c so the migration ops and this check change independently. */
#include "qemu/qemu-digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qemu/qemu-instance.h"
#include "util/util.h"

/* Appends size bytes of guest memory at addr to out (pmemsave to a scratch
 * file, then copied: pmemsave truncates its file). */
static int save_region(VoHvInstance *vm, const char *scratch, uint64_t addr, uint64_t size,
                       unsigned index, EVP_MD_CTX *ctx, char **ret_error)
{
    json_t *args = json_pack("{s:I, s:I, s:s}", "val", (json_int_t)addr, "size",
                             (json_int_t)size, "filename", scratch);
    int r = vo_qemu_command(vm, "pmemsave", args, NULL, ret_error);
    json_decref(args);
    if (r < 0)
        return r;
    FILE *f = fopen(scratch, "re");
    if (!f)
        return vo_error_set(ret_error, -errno, "cannot read %s: %s", scratch, strerror(errno));
    char buf[1 << 16];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        total += n;
    }
    fclose(f);
    const char *keep = getenv("VIREO_TEST_MIGRATE_KEEP_RAM");
    if (keep && *keep) {
        _cleanup_free_ char *flat = vo_strdup(vm->run_dir);
        for (char *c = flat; *c; c++)
            if (*c == '/')
                *c = '_';
        _cleanup_free_ char *kept = vo_asprintf("%s/%s.%u.ram", keep, flat, index);
        if (rename(scratch, kept) < 0)
            return vo_error_set(ret_error, -errno, "cannot keep %s as %s: %s", scratch, kept,
                                strerror(errno));
    }
    (void)unlink(scratch);
    if (total != size)
        return vo_error_set(ret_error, -EIO, "pmemsave wrote %zu of %llu bytes", total,
                            (unsigned long long)size);
    return 0;
}

int vo_qemu_memory_digest(VoHvInstance *vm, char ret[65], char **ret_error)
{
    _cleanup_free_ char *scratch = vo_asprintf("%s/memory-digest.ram", vm->own_dir);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return vo_error_set(ret_error, -ENOMEM, "cannot start a SHA-256 digest");
    }
    json_t *summary = NULL, *devices = NULL;
    pthread_mutex_lock(&vm->qmp_lock);
    int r = vo_qemu_command(vm, "query-memory-size-summary", NULL, &summary, ret_error);
    uint64_t base = (uint64_t)json_integer_value(json_object_get(summary, "base-memory"));
    if (r >= 0 && !base)
        r = vo_error_set(ret_error, -EPROTO, "QEMU reports no base memory");
    if (r >= 0)
        r = save_region(vm, scratch, 0, base, 0, ctx, ret_error);
    if (r >= 0)
        r = vo_qemu_command(vm, "query-memory-devices", NULL, &devices, ret_error);
    size_t i;
    unsigned regions = 1;
    json_t *dev;
    json_array_foreach(devices, i, dev) {
        if (r < 0)
            break;
        json_t *data = json_object_get(dev, "data");
        if (strcmp(json_string_value(json_object_get(dev, "type")) ?: "", "virtio-mem"))
            continue;
        uint64_t addr = (uint64_t)json_integer_value(json_object_get(data, "memaddr"));
        uint64_t size = (uint64_t)json_integer_value(json_object_get(data, "max-size"));
        if (size)
            r = save_region(vm, scratch, addr, size, regions++, ctx, ret_error);
    }
    pthread_mutex_unlock(&vm->qmp_lock);
    (void)unlink(scratch);
    json_decref(summary);
    json_decref(devices);
    unsigned char md[32];
    unsigned int n = 0;
    if (r >= 0 && (EVP_DigestFinal_ex(ctx, md, &n) != 1 || n != 32))
        r = vo_error_set(ret_error, -EIO, "SHA-256 failed");
    EVP_MD_CTX_free(ctx);
    if (r < 0)
        return r;
    for (unsigned k = 0; k < 32; k++)
        snprintf(ret + 2 * k, 3, "%02x", md[k]);
    return 0;
}
