/* ova.c: the OVA (tar) reader of ova.h: ustar headers checked (checksum,
 * type, name, size within the file); a pax extended header's "size" and
 * "path" stand for the member that follows (how pax tars hold members of
 * 8 GiB and more, and long names; the path is checked like a ustar name),
 * other pax records and global headers are skipped; members copied out in
 * 1 MiB pieces with SHA-1 and SHA-256 (OpenSSL EVP). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/vm-import.h"
#include "storage/ova.h"
#include "util/util.h"

#define BLOCK 512
#define MAX_TEXT_MEMBER (1024 * 1024)
#define COPY_CHUNK (1024 * 1024)
#define MAX_PAX_HEADER (64 * 1024)
#define NAME_MAX_LEN 259

/* What a pax extended header ('x') says of the member that follows. */
typedef struct {
    bool has_size, has_path;
    uint64_t size;
    char path[NAME_MAX_LEN + 1];
} PaxNext;

static int parse_octal(const unsigned char *f, size_t n, uint64_t *ret)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && f[i] == ' ')
        i++;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v > (UINT64_MAX >> 3))
            return -EINVAL;
        v = (v << 3) | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return -EINVAL;
    *ret = v;
    return 0;
}

/* GNU base-256 for sizes of 8 GiB and more: the first byte's high bit. */
static int parse_size(const unsigned char *f, uint64_t *ret)
{
    if (!(f[0] & 0x80))
        return parse_octal(f, 12, ret);
    uint64_t v = f[0] & 0x3f;
    for (size_t i = 1; i < 12; i++) {
        if (v > (UINT64_MAX >> 8))
            return -EINVAL;
        v = (v << 8) | f[i];
    }
    *ret = v;
    return 0;
}

/* The records "LEN KEY=VALUE\n" of a pax extended header (LEN counts the
 * whole record, in decimal): "size" and "path" into next. -EINVAL for a
 * malformed record, a size that is not a plain decimal or a path too long. */
static int pax_parse(const char *buf, size_t n, PaxNext *next)
{
    size_t off = 0;
    while (off < n) {
        if (buf[off] == '\0')
            break; /* padding after the last record */
        size_t len = 0, i = off;
        for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
            if (len > n)
                return -EINVAL;
            len = len * 10 + (size_t)(buf[i] - '0');
        }
        if (i == off || i >= n || buf[i] != ' ' || len > n - off || len < (i - off) + 3 ||
            buf[off + len - 1] != '\n')
            return -EINVAL;
        const char *kv = buf + i + 1, *end = buf + off + len - 1;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq)
            return -EINVAL;
        size_t klen = (size_t)(eq - kv), vlen = (size_t)(end - eq - 1);
        const char *v = eq + 1;
        if (klen == 4 && !memcmp(kv, "size", 4)) {
            uint64_t size = 0;
            if (vlen == 0 || vlen > 20)
                return -EINVAL;
            for (size_t k = 0; k < vlen; k++) {
                if (v[k] < '0' || v[k] > '9' || size > (UINT64_MAX - 9) / 10)
                    return -EINVAL;
                size = size * 10 + (uint64_t)(v[k] - '0');
            }
            next->size = size;
            next->has_size = true;
        } else if (klen == 4 && !memcmp(kv, "path", 4)) {
            if (vlen > NAME_MAX_LEN || memchr(v, '\0', vlen))
                return -EINVAL;
            memcpy(next->path, v, vlen);
            next->path[vlen] = '\0';
            next->has_path = true;
        }
        off += len;
    }
    return 0;
}

static bool header_checksum_ok(const unsigned char *h)
{
    uint64_t want = 0;
    if (parse_octal(h + 148, 8, &want) < 0)
        return false;
    uint64_t sum = 0;
    for (size_t i = 0; i < BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return sum == want;
}

static int read_exact(int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO;
        done += (size_t)k;
    }
    return 0;
}

static int read_text(const VoOva *ova, const VoOvaMember *m, char **ret, size_t *ret_len,
                     char **ret_error)
{
    if (m->size > MAX_TEXT_MEMBER)
        return vo_error_set(ret_error, -EINVAL, "OVA: '%s' is %llu bytes, more than the 1 MiB "
                            "allowed", m->name, (unsigned long long)m->size);
    char *text = malloc(m->size + 1);
    if (!text)
        abort();
    int r = read_exact(ova->fd, text, m->size, m->offset);
    if (r < 0) {
        free(text);
        return vo_error_set(ret_error, r, "OVA: cannot read '%s'", m->name);
    }
    text[m->size] = '\0';
    *ret = text;
    *ret_len = m->size;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

static int scan(VoOva *ova, uint64_t file_size, char **ret_error)
{
    unsigned char h[BLOCK];
    uint64_t off = 0;
    unsigned pax_headers = 0;
    PaxNext pax = { 0 };
    for (;;) {
        if (off + BLOCK > file_size)
            return vo_error_set(ret_error, -EINVAL, "OVA: the tar ends without its end marker "
                                "(truncated?)");
        int r = read_exact(ova->fd, h, BLOCK, off);
        if (r < 0)
            return vo_error_set(ret_error, r, "OVA: cannot read: %s", strerror(-r));
        static const unsigned char zero[BLOCK];
        if (!memcmp(h, zero, BLOCK))
            return 0; /* the end marker */
        if (!header_checksum_ok(h))
            return vo_error_set(ret_error, -EINVAL, "OVA: not a tar file (a header checksum "
                                "is wrong at offset %llu)", (unsigned long long)off);
        char type = (char)h[156];
        uint64_t size = 0;
        if (parse_size(h + 124, &size) < 0)
            size = UINT64_MAX;
        if (type != 'x' && type != 'g' && pax.has_size)
            size = pax.size; /* the ustar field may not hold it */
        if (size > file_size - off - BLOCK)
            return vo_error_set(ret_error, -EINVAL, "OVA: a member at offset %llu claims more "
                                "data than the file has", (unsigned long long)off);
        char name[NAME_MAX_LEN + 1];
        /* ustar: prefix "/" name; a prefix is a directory: refused below. */
        snprintf(name, sizeof(name), "%.155s%s%.100s", h[345] && !memcmp(h + 257, "ustar", 5)
                                                           ? (const char *)h + 345 : "",
                 h[345] && !memcmp(h + 257, "ustar", 5) ? "/" : "", (const char *)h);
        if (type != 'x' && type != 'g' && pax.has_path)
            snprintf(name, sizeof(name), "%s", pax.path);
        uint64_t data = off + BLOCK;
        off = data + ((size + BLOCK - 1) / BLOCK) * BLOCK;
        if ((type == 'x' || type == 'g') && ++pax_headers > 2 * VO_IMPORT_MAX_FILES)
            return vo_error_set(ret_error, -EINVAL, "OVA: more than %d pax headers",
                                2 * VO_IMPORT_MAX_FILES);
        if (type == 'x') {
            /* Its records stand for the next member. */
            if (size > MAX_PAX_HEADER)
                return vo_error_set(ret_error, -EINVAL, "OVA: a pax header at offset %llu is "
                                    "%llu bytes, more than the %d allowed",
                                    (unsigned long long)(data - BLOCK),
                                    (unsigned long long)size, MAX_PAX_HEADER);
            _cleanup_free_ char *records = vo_malloc0(size + 1);
            pax = (PaxNext){ 0 };
            r = read_exact(ova->fd, records, size, data);
            if (r < 0)
                return vo_error_set(ret_error, r, "OVA: cannot read: %s", strerror(-r));
            if (pax_parse(records, size, &pax) < 0)
                return vo_error_set(ret_error, -EINVAL, "OVA: the pax header at offset %llu "
                                    "is malformed", (unsigned long long)(data - BLOCK));
            continue;
        }
        if (type == 'g')
            continue; /* global pax attributes: none that matters here */
        pax = (PaxNext){ 0 };
        if (type != '0' && type != '\0')
            return vo_error_set(ret_error, -EINVAL, "OVA: member '%.64s' is not a plain file "
                                "(tar type '%c'): refused", name, type > 0x20 ? type : '?');
        if (!vo_import_file_name_valid(name))
            return vo_error_set(ret_error, -EINVAL, "OVA: member '%.64s' has a path, not a "
                                "plain file name: refused", name);
        if (vo_ova_find(ova, name))
            return vo_error_set(ret_error, -EINVAL, "OVA: member '%.64s' is there twice", name);
        if (ova->n_members >= VO_IMPORT_MAX_FILES)
            return vo_error_set(ret_error, -EINVAL, "OVA: more than %d members",
                                VO_IMPORT_MAX_FILES);
        VoOvaMember *ms = realloc(ova->members, sizeof(*ms) * (ova->n_members + 1));
        if (!ms)
            abort();
        ova->members = ms;
        ms[ova->n_members++] = (VoOvaMember){ .name = vo_strdup(name), .offset = data,
                                              .size = size };
    }
}

int vo_ova_open(const char *path, VoOva *ret, char **ret_error)
{
    VoOva ova = { .fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) };
    if (ova.fd < 0)
        return vo_error_set(ret_error, -errno, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    int r = fstat(ova.fd, &st) < 0 ? -errno : 0;
    if (r >= 0 && !S_ISREG(st.st_mode))
        r = vo_error_set(ret_error, -EINVAL, "'%s' is not a regular file", path);
    if (r >= 0)
        r = scan(&ova, (uint64_t)st.st_size, ret_error);
    for (size_t i = 0; r >= 0 && i < ova.n_members; i++) {
        const VoOvaMember *m = &ova.members[i];
        if (ends_with(m->name, ".ovf")) {
            if (ova.ovf)
                r = vo_error_set(ret_error, -EINVAL, "OVA: two descriptors ('%s' and '%s')",
                                 ova.ovf_name, m->name);
            else if ((r = read_text(&ova, m, &ova.ovf, &ova.ovf_len, ret_error)) >= 0)
                ova.ovf_name = vo_strdup(m->name);
        } else if (ends_with(m->name, ".mf")) {
            if (ova.manifest)
                r = vo_error_set(ret_error, -EINVAL, "OVA: two manifests");
            else if ((r = read_text(&ova, m, &ova.manifest, &ova.manifest_len, ret_error)) >= 0)
                ova.manifest_name = vo_strdup(m->name);
        } else if (ends_with(m->name, ".cert")) {
            if (ova.cert)
                r = vo_error_set(ret_error, -EINVAL, "OVA: two certificates ('%s' and '%s')",
                                 ova.cert_name, m->name);
            else if ((r = read_text(&ova, m, &ova.cert, &ova.cert_len, ret_error)) >= 0)
                ova.cert_name = vo_strdup(m->name);
        }
    }
    if (r >= 0 && !ova.ovf)
        r = vo_error_set(ret_error, -EINVAL, "OVA: no OVF descriptor (a .ovf member) in '%s'",
                         path);
    if (r < 0) {
        vo_ova_close(&ova);
        return r;
    }
    *ret = ova;
    return 0;
}

void vo_ova_close(VoOva *ova)
{
    if (ova->fd >= 0)
        close(ova->fd);
    for (size_t i = 0; i < ova->n_members; i++)
        free(ova->members[i].name);
    free(ova->members);
    free(ova->ovf);
    free(ova->ovf_name);
    free(ova->manifest);
    free(ova->manifest_name);
    free(ova->cert);
    free(ova->cert_name);
    *ova = (VoOva){ .fd = -1 };
}

const VoOvaMember *vo_ova_find(const VoOva *ova, const char *name)
{
    for (size_t i = 0; i < ova->n_members; i++)
        if (!strcmp(ova->members[i].name, name))
            return &ova->members[i];
    return NULL;
}

static void hex(const unsigned char *md, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
    out[2 * n] = '\0';
}

/* Reads m in pieces into both digests, writing each piece to fd when >= 0. */
static int copy_member(const VoOva *ova, const VoOvaMember *m, int fd, char sha1[41],
                       char sha256[65], char **ret_error)
{
    EVP_MD_CTX *c1 = EVP_MD_CTX_new(), *c2 = EVP_MD_CTX_new();
    _cleanup_free_ unsigned char *buf = malloc(COPY_CHUNK);
    if (!c1 || !c2 || !buf || !EVP_DigestInit_ex(c1, EVP_sha1(), NULL) ||
        !EVP_DigestInit_ex(c2, EVP_sha256(), NULL))
        abort();
    int r = 0;
    for (uint64_t done = 0; done < m->size && r >= 0;) {
        size_t n = m->size - done < COPY_CHUNK ? (size_t)(m->size - done) : COPY_CHUNK;
        r = read_exact(ova->fd, buf, n, m->offset + done);
        if (r < 0) {
            vo_error_set(ret_error, r, "OVA: cannot read '%s': %s", m->name, strerror(-r));
            break;
        }
        EVP_DigestUpdate(c1, buf, n);
        EVP_DigestUpdate(c2, buf, n);
        for (size_t w = 0; fd >= 0 && w < n;) {
            ssize_t k = write(fd, buf + w, n - w);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                r = vo_error_set(ret_error, -errno, "cannot write '%s': %s", m->name,
                                 strerror(errno));
                break;
            }
            w += (size_t)k;
        }
        done += n;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(c1, md, &len);
    hex(md, len, sha1);
    EVP_DigestFinal_ex(c2, md, &len);
    hex(md, len, sha256);
    EVP_MD_CTX_free(c1);
    EVP_MD_CTX_free(c2);
    return r;
}

/* The text a member was read into (ova.h: the descriptor, the manifest, the
 * certificate), NULL for the others. */
static const char *text_of(const VoOva *ova, const VoOvaMember *m, size_t *ret_len)
{
    const struct {
        const char *name, *text;
        size_t len;
    } texts[] = { { ova->ovf_name, ova->ovf, ova->ovf_len },
                  { ova->manifest_name, ova->manifest, ova->manifest_len },
                  { ova->cert_name, ova->cert, ova->cert_len } };
    for (size_t i = 0; i < ELEMENTSOF(texts); i++)
        if (texts[i].name && texts[i].text && !strcmp(texts[i].name, m->name)) {
            *ret_len = texts[i].len;
            return texts[i].text;
        }
    return NULL;
}

int vo_ova_digest(const VoOva *ova, const VoOvaMember *m, char sha1[41], char sha256[65],
                  char **ret_error)
{
    /* What was read into memory is digested there: the bytes checked are
     * the bytes parsed, whatever the file holds by now. */
    size_t len = 0;
    const char *text = text_of(ova, m, &len);
    if (!text)
        return copy_member(ova, m, -1, sha1, sha256, ret_error);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(text, len, md, &n, EVP_sha1(), NULL))
        abort();
    hex(md, n, sha1);
    if (!EVP_Digest(text, len, md, &n, EVP_sha256(), NULL))
        abort();
    hex(md, n, sha256);
    return 0;
}

int vo_ova_extract(const VoOva *ova, const VoOvaMember *m, const char *dest, char sha1[41],
                   char sha256[65], char **ret_error)
{
    int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return vo_error_set(ret_error, -errno, "cannot create '%s': %s", dest, strerror(errno));
    int r = copy_member(ova, m, fd, sha1, sha256, ret_error);
    if (close(fd) < 0 && r >= 0)
        r = vo_error_set(ret_error, -errno, "cannot write '%s': %s", dest, strerror(errno));
    return r;
}
