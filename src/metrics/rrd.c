/* rrd.c: fixed-size ring archives of averaged samples and their file,
 * updated in place with per-row checksums (rrd.h). */
#include "metrics/rrd.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

const VoRrdArchiveDef vo_rrd_archives[VO_RRD_ARCHIVES] = {
    { "1h", 10, 360 },
    { "1d", 60, 1440 },
    { "30d", 1800, 1440 },
};

static const char MAGIC[8] = { 'V', 'O', 'R', 'R', 'D', '0', '2', '\n' };
#define NO_SLOT INT64_MIN

typedef struct {
    int64_t cur; /* the slot in progress; NO_SLOT: none yet */
    double sum[VO_RRD_MAX_COLS]; /* values times their weights */
    float n[VO_RRD_MAX_COLS];    /* the weights (seconds covered) */
    int64_t *slot; /* per row: the slot it holds, NO_SLOT: none */
    float *v;      /* rows * n_cols */
    uint8_t *dirty;
} Arch;

struct VoRrd {
    unsigned n_cols;
    int fd;
    bool header_dirty;
    Arch a[VO_RRD_ARCHIVES];
};

static uint32_t crc_table[256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t vo_crc32(const void *data, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_table_init);
    const uint32_t *table = crc_table;
    uint32_t crc = 0xFFFFFFFFu;
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static size_t header_size(unsigned n_cols)
{
    return sizeof(MAGIC) + 8 + VO_RRD_ARCHIVES * (16 + 12 * (size_t)n_cols) + 4;
}

static size_t row_size(unsigned n_cols)
{
    return 8 + 4 * (size_t)n_cols + 4;
}

static off_t row_offset(const VoRrd *r, unsigned a, unsigned i)
{
    size_t off = header_size(r->n_cols);
    for (unsigned b = 0; b < a; b++)
        off += vo_rrd_archives[b].rows * row_size(r->n_cols);
    return (off_t)(off + i * row_size(r->n_cols));
}

static size_t file_size(unsigned n_cols)
{
    size_t rows = 0;
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++)
        rows += vo_rrd_archives[a].rows;
    return header_size(n_cols) + rows * row_size(n_cols);
}

static void reset_acc(Arch *ar)
{
    memset(ar->sum, 0, sizeof(ar->sum));
    memset(ar->n, 0, sizeof(ar->n));
}

VoRrd *vo_rrd_new(unsigned n_cols)
{
    if (n_cols == 0 || n_cols > VO_RRD_MAX_COLS)
        return NULL;
    VoRrd *r = vo_malloc0(sizeof(*r));
    r->n_cols = n_cols;
    r->fd = -1;
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++) {
        Arch *ar = &r->a[a];
        unsigned rows = vo_rrd_archives[a].rows;
        ar->cur = NO_SLOT;
        ar->slot = vo_malloc0(sizeof(*ar->slot) * rows);
        ar->v = vo_malloc0(sizeof(*ar->v) * rows * n_cols);
        ar->dirty = vo_malloc0(rows);
        for (unsigned i = 0; i < rows; i++)
            ar->slot[i] = NO_SLOT;
    }
    return r;
}

void vo_rrd_free(VoRrd *r)
{
    if (!r)
        return;
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++) {
        free(r->a[a].slot);
        free(r->a[a].v);
        free(r->a[a].dirty);
    }
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

/* ---- serialisation ---- */

static void put(uint8_t **p, const void *v, size_t n)
{
    memcpy(*p, v, n);
    *p += n;
}

static void get(const uint8_t **p, void *v, size_t n)
{
    memcpy(v, *p, n);
    *p += n;
}

static void header_encode(const VoRrd *r, uint8_t *buf)
{
    uint8_t *p = buf;
    uint32_t n_cols = r->n_cols, n_arch = VO_RRD_ARCHIVES;
    put(&p, MAGIC, sizeof(MAGIC));
    put(&p, &n_cols, 4);
    put(&p, &n_arch, 4);
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++) {
        uint32_t step = vo_rrd_archives[a].step_s, rows = vo_rrd_archives[a].rows;
        put(&p, &step, 4);
        put(&p, &rows, 4);
        put(&p, &r->a[a].cur, 8);
        put(&p, r->a[a].sum, 8 * r->n_cols);
        put(&p, r->a[a].n, 4 * r->n_cols);
    }
    uint32_t crc = vo_crc32(buf, (size_t)(p - buf));
    put(&p, &crc, 4);
}

/* 0, -EINVAL (not this geometry: start afresh) or -EBADMSG (checksum). */
static int header_decode(VoRrd *r, const uint8_t *buf)
{
    const uint8_t *p = buf;
    char magic[8];
    uint32_t n_cols, n_arch;
    get(&p, magic, 8);
    get(&p, &n_cols, 4);
    get(&p, &n_arch, 4);
    if (memcmp(magic, MAGIC, 8) || n_cols != r->n_cols || n_arch != VO_RRD_ARCHIVES)
        return -EINVAL;
    int64_t cur[VO_RRD_ARCHIVES];
    double sum[VO_RRD_ARCHIVES][VO_RRD_MAX_COLS];
    float n[VO_RRD_ARCHIVES][VO_RRD_MAX_COLS];
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++) {
        uint32_t step, rows;
        get(&p, &step, 4);
        get(&p, &rows, 4);
        if (step != vo_rrd_archives[a].step_s || rows != vo_rrd_archives[a].rows)
            return -EINVAL;
        get(&p, &cur[a], 8);
        get(&p, sum[a], 8 * n_cols);
        get(&p, n[a], 4 * n_cols);
    }
    uint32_t crc;
    size_t len = (size_t)(p - buf);
    get(&p, &crc, 4);
    if (crc != vo_crc32(buf, len))
        return -EBADMSG;
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++) {
        r->a[a].cur = cur[a];
        memcpy(r->a[a].sum, sum[a], sizeof(sum[a]));
        memcpy(r->a[a].n, n[a], sizeof(n[a]));
    }
    return 0;
}

static void row_encode(const VoRrd *r, unsigned a, unsigned i, uint8_t *buf)
{
    uint8_t *p = buf;
    put(&p, &r->a[a].slot[i], 8);
    put(&p, &r->a[a].v[(size_t)i * r->n_cols], 4 * r->n_cols);
    uint32_t crc = vo_crc32(buf, (size_t)(p - buf));
    put(&p, &crc, 4);
}

/* false when the row's checksum fails (it stays empty). */
static bool row_decode(VoRrd *r, unsigned a, unsigned i, const uint8_t *buf)
{
    size_t len = 8 + 4 * (size_t)r->n_cols;
    uint32_t crc;
    memcpy(&crc, buf + len, 4);
    if (crc != vo_crc32(buf, len))
        return false;
    int64_t slot;
    memcpy(&slot, buf, 8);
    unsigned rows = vo_rrd_archives[a].rows;
    /* A row holds the slot that maps to it; anything else is damage. */
    if (slot != NO_SLOT && (slot < 0 || (uint64_t)slot % rows != i))
        return false;
    r->a[a].slot[i] = slot;
    memcpy(&r->a[a].v[(size_t)i * r->n_cols], buf + 8, 4 * r->n_cols);
    return true;
}

static int write_all_at(int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = pwrite(fd, p, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        len -= (size_t)w;
        off += w;
    }
    return 0;
}

/* Writes everything (a new or reset file). */
static int write_whole(VoRrd *r)
{
    size_t size = file_size(r->n_cols);
    uint8_t *buf = vo_malloc0(size);
    header_encode(r, buf);
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++)
        for (unsigned i = 0; i < vo_rrd_archives[a].rows; i++) {
            row_encode(r, a, i, buf + row_offset(r, a, i));
            r->a[a].dirty[i] = 0;
        }
    int ret = ftruncate(r->fd, 0) < 0 ? -errno : write_all_at(r->fd, buf, size, 0);
    free(buf);
    r->header_dirty = false;
    return ret;
}

int vo_rrd_open(const char *path, unsigned n_cols, VoRrd **ret)
{
    *ret = NULL;
    VoRrd *r = vo_rrd_new(n_cols);
    if (!r)
        return -EINVAL;
    r->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (r->fd < 0) {
        int e = -errno;
        vo_rrd_free(r);
        return e;
    }
    struct stat st;
    size_t size = file_size(n_cols);
    int result = 0;
    if (fstat(r->fd, &st) == 0 && st.st_size == 0) {
        int e = write_whole(r); /* new */
        if (e < 0) {
            vo_rrd_free(r);
            return e;
        }
        *ret = r;
        return 0;
    }
    uint8_t *buf = vo_malloc0(size);
    ssize_t got = (size_t)st.st_size == size ? pread(r->fd, buf, size, 0) : -1;
    int h = got == (ssize_t)size ? header_decode(r, buf) : -EINVAL;
    if (h == -EINVAL) {
        /* Not ours, or another geometry: afresh. */
        free(buf);
        VoRrd *fresh = vo_rrd_new(n_cols);
        fresh->fd = r->fd;
        r->fd = -1;
        vo_rrd_free(r);
        r = fresh;
        int e = write_whole(r);
        if (e < 0) {
            vo_rrd_free(r);
            return e;
        }
        *ret = r;
        return 1;
    }
    if (h == -EBADMSG) {
        result = 1; /* the slots in progress are lost; rows stand */
        r->header_dirty = true;
    }
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++)
        for (unsigned i = 0; i < vo_rrd_archives[a].rows; i++)
            if (!row_decode(r, a, i, buf + row_offset(r, a, i))) {
                result = 1;
                r->a[a].dirty[i] = 1; /* rewritten empty at the next sync */
            }
    free(buf);
    *ret = r;
    return result;
}

int vo_rrd_sync(VoRrd *r)
{
    if (r->fd < 0)
        return -EBADF;
    uint8_t buf[8 + 4 * VO_RRD_MAX_COLS + 4];
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++)
        for (unsigned i = 0; i < vo_rrd_archives[a].rows; i++) {
            if (!r->a[a].dirty[i])
                continue;
            row_encode(r, a, i, buf);
            int e = write_all_at(r->fd, buf, row_size(r->n_cols), row_offset(r, a, i));
            if (e < 0)
                return e;
            r->a[a].dirty[i] = 0;
        }
    if (r->header_dirty) {
        uint8_t *h = vo_malloc0(header_size(r->n_cols));
        header_encode(r, h);
        int e = write_all_at(r->fd, h, header_size(r->n_cols), 0);
        free(h);
        if (e < 0)
            return e;
        r->header_dirty = false;
    }
    return 0;
}

/* ---- archives ---- */

/* The slot in progress, averaged, into its row. */
static void flush(VoRrd *r, unsigned a)
{
    Arch *ar = &r->a[a];
    bool any = false;
    for (unsigned c = 0; c < r->n_cols; c++)
        any |= ar->n[c] > 0;
    if (!any || ar->cur == NO_SLOT)
        return;
    unsigned rows = vo_rrd_archives[a].rows;
    unsigned i = (unsigned)((uint64_t)ar->cur % rows);
    ar->slot[i] = ar->cur;
    for (unsigned c = 0; c < r->n_cols; c++)
        ar->v[(size_t)i * r->n_cols + c] = ar->n[c] ? (float)(ar->sum[c] / ar->n[c]) : NAN;
    ar->dirty[i] = 1;
}

void vo_rrd_update(VoRrd *r, int64_t t_s, const double *values)
{
    vo_rrd_update_weighted(r, t_s, values, NULL);
}

void vo_rrd_update_weighted(VoRrd *r, int64_t t_s, const double *values, const double *weights)
{
    if (t_s < 0)
        return;
    for (unsigned a = 0; a < VO_RRD_ARCHIVES; a++) {
        Arch *ar = &r->a[a];
        int64_t slot = t_s / vo_rrd_archives[a].step_s;
        if (ar->cur != NO_SLOT && slot < ar->cur)
            continue;
        if (slot != ar->cur) {
            flush(r, a);
            ar->cur = slot;
            reset_acc(ar);
        }
        for (unsigned c = 0; c < r->n_cols; c++)
            if (isfinite(values[c])) {
                double w = weights && isfinite(weights[c]) && weights[c] > 0 ? weights[c] : 1;
                ar->sum[c] += values[c] * w;
                ar->n[c] += (float)w;
            }
    }
    r->header_dirty = true;
}

int vo_rrd_archive_index(const char *range)
{
    for (int a = 0; a < VO_RRD_ARCHIVES; a++)
        if (range && !strcmp(range, vo_rrd_archives[a].range))
            return a;
    return -1;
}

json_t *vo_rrd_series_json(const VoRrd *r, unsigned a, const char *const *names,
                           const char *const *units)
{
    const Arch *ar = &r->a[a];
    unsigned rows = vo_rrd_archives[a].rows, step = vo_rrd_archives[a].step_s;
    json_t *ts = json_array(), *vals[VO_RRD_MAX_COLS];
    for (unsigned c = 0; c < r->n_cols; c++)
        vals[c] = json_array();
    if (ar->cur != NO_SLOT) {
        for (int64_t s = ar->cur - rows + 1; s < ar->cur; s++) {
            if (s < 0)
                continue;
            unsigned i = (unsigned)((uint64_t)s % rows);
            if (ar->slot[i] != s)
                continue;
            json_array_append_new(ts, json_integer(s * step));
            for (unsigned c = 0; c < r->n_cols; c++) {
                float v = ar->v[(size_t)i * r->n_cols + c];
                json_array_append_new(vals[c], isfinite(v) ? json_real(v) : json_null());
            }
        }
        bool any = false;
        for (unsigned c = 0; c < r->n_cols; c++)
            any |= ar->n[c] > 0;
        if (any) {
            json_array_append_new(ts, json_integer(ar->cur * step));
            for (unsigned c = 0; c < r->n_cols; c++)
                json_array_append_new(vals[c], ar->n[c] ? json_real(ar->sum[c] / ar->n[c])
                                                        : json_null());
        }
    }
    json_t *series = json_object();
    for (unsigned c = 0; c < r->n_cols; c++)
        json_object_set_new(series, names[c],
                            json_pack("{s:s, s:o}", "unit", units[c], "values", vals[c]));
    return json_pack("{s:s, s:I, s:o, s:o}", "range", vo_rrd_archives[a].range, "step",
                     (json_int_t)step, "timestamps", ts, "series", series);
}

double vo_rrd_counter_rate(uint64_t before, uint64_t now, double seconds)
{
    if (!(seconds > 0))
        return NAN;
    if (now >= before)
        return (double)(now - before) / seconds;
    /* A 32-bit counter wrapped: it was in its upper half and is now in its
     * lower half (a reset from there looks the same; rare enough). */
    if (before <= UINT32_MAX && before >= UINT32_C(1) << 31 && now < UINT32_C(1) << 31)
        return (double)((UINT64_C(1) << 32) - before + now) / seconds;
    return NAN; /* reset */
}
