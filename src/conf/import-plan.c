/* import-plan.c: the import plan (conf/vm-import.h) both descriptor parsers
 * fill, the helpers they share over libxml2 (conf/import-xml.h), and the
 * OVA manifest parser. Pure: no I/O. */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <libxml/parser.h>
#include <string.h>

#include "conf/import-xml.h"
#include "util/util.h"

#define MAX_TEXT 4096

VoImportPlan *vo_import_plan_free(VoImportPlan *p)
{
    if (!p)
        return NULL;
    for (size_t i = 0; i < p->n_disks; i++) {
        free(p->disks[i].file);
        free(p->disks[i].format);
    }
    for (size_t i = 0; i < p->n_nics; i++) {
        free(p->nics[i].network);
        free(p->nics[i].mac);
    }
    free(p->disks);
    free(p->nics);
    free(p->name);
    free(p->os_type);
    free(p->machine);
    vo_strv_free(p->warnings);
    free(p);
    return NULL;
}

/* libxml2 reports parse errors through a global handler; an untrusted
 * document must not fill the daemon's stderr. */
static void xml_quiet(void *ctx, const char *msg, ...)
{
}

xmlDoc *vo_import_xml_read(const char *xml, size_t len, const char *what, char **ret_error)
{
    if (len > VO_IMPORT_MAX_XML_BYTES) {
        vo_error_set(ret_error, -EINVAL, "%s: %zu bytes is more than the %d bytes allowed",
                     what, len, VO_IMPORT_MAX_XML_BYTES);
        return NULL;
    }
    xmlSetGenericErrorFunc(NULL, xml_quiet);
    /* No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading, no
     * network, no XML_PARSE_HUGE (libxml2's own depth and size limits). */
    xmlDoc *doc = xmlReadMemory(xml, (int)len, NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                                                           XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    if (!doc || !xmlDocGetRootElement(doc)) {
        const xmlError *e = xmlGetLastError();
        vo_error_set(ret_error, -EINVAL, "%s is not well-formed XML (line %d)", what,
                     e ? e->line : 0);
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

static bool named(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

xmlNode *vo_import_xml_child(const xmlNode *node, const char *name)
{
    for (xmlNode *c = node ? node->children : NULL; c; c = c->next)
        if (named(c, name))
            return c;
    return NULL;
}

xmlNode *vo_import_xml_next(const xmlNode *node)
{
    for (xmlNode *c = node->next; c; c = c->next)
        if (named(c, (const char *)node->name))
            return c;
    return NULL;
}

static char *trimmed(const char *s)
{
    if (!s || strlen(s) > MAX_TEXT)
        return NULL;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return n ? vo_asprintf("%.*s", (int)n, s) : NULL;
}

char *vo_import_xml_text(const xmlNode *node)
{
    if (!node)
        return NULL;
    xmlChar *content = xmlNodeGetContent(node);
    char *r = trimmed((const char *)content);
    xmlFree(content);
    return r;
}

char *vo_import_xml_child_text(const xmlNode *node, const char *name)
{
    return vo_import_xml_text(vo_import_xml_child(node, name));
}

char *vo_import_xml_attr(const xmlNode *node, const char *name)
{
    for (xmlAttr *a = node ? node->properties : NULL; a; a = a->next)
        if (!strcmp((const char *)a->name, name)) {
            xmlChar *v = xmlNodeListGetString(node->doc, a->children, 1);
            char *r = trimmed(v ? (const char *)v : "");
            xmlFree(v);
            return r;
        }
    return NULL;
}

int vo_import_parse_u64(const char *s, uint64_t *ret)
{
    if (!s || !*s || strlen(s) > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *ret = v;
    return 0;
}

uint64_t vo_import_unit_bytes(const char *unit)
{
    static const struct { const char *name; uint64_t bytes; } units[] = {
        { "b", 1 }, { "bytes", 1 }, { "byte", 1 },
        { "k", 1ULL << 10 }, { "kib", 1ULL << 10 }, { "kb", 1000 }, { "kilobytes", 1ULL << 10 },
        { "m", 1ULL << 20 }, { "mib", 1ULL << 20 }, { "mb", 1000000 }, { "megabytes", 1ULL << 20 },
        { "g", 1ULL << 30 }, { "gib", 1ULL << 30 }, { "gb", 1000000000 }, { "gigabytes", 1ULL << 30 },
        { "t", 1ULL << 40 }, { "tib", 1ULL << 40 }, { "tb", 1000000000000ULL },
    };
    if (!unit)
        return 0;
    char buf[64];
    size_t n = 0;
    for (const char *p = unit; *p && n < sizeof(buf) - 1; p++)
        if (!isspace((unsigned char)*p))
            buf[n++] = (char)tolower((unsigned char)*p);
    buf[n] = '\0';
    /* OVF (DSP0004 programmatic units): "byte*2^N" or "byte*N". */
    if (!strncmp(buf, "byte*", 5)) {
        uint64_t v = 0;
        if (!strncmp(buf + 5, "2^", 2))
            return vo_import_parse_u64(buf + 7, &v) == 0 && v < 63 ? 1ULL << v : 0;
        return vo_import_parse_u64(buf + 5, &v) == 0 && v < (1ULL << 50) ? v : 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(units); i++)
        if (!strcmp(buf, units[i].name))
            return units[i].bytes;
    return 0;
}

int vo_import_scale(uint64_t value, uint64_t unit, uint64_t per, uint64_t *ret)
{
    if (unit && value > UINT64_MAX / unit)
        return -ERANGE;
    *ret = value * unit / per;
    return 0;
}

int vo_import_memory(const char *what, const char *value, const char *unit, uint64_t bare_unit,
                     const char *bare_unit_name, uint64_t *ret_mib, char **ret_error)
{
    uint64_t n = 0, mib = 0, bytes = unit ? vo_import_unit_bytes(unit) : bare_unit;
    if (vo_import_parse_u64(value, &n) < 0 || !bytes ||
        vo_import_scale(n, bytes, 1ULL << 20, &mib) < 0 || mib < 1 ||
        mib > VO_IMPORT_MAX_MEMORY_MIB)
        return vo_error_set(ret_error, -EINVAL, "%s: memory '%.32s' (%.32s) is not a size from "
                            "1 MiB to 4 TiB", what, value ? value : "(none)",
                            unit ? unit : bare_unit_name);
    *ret_mib = mib;
    return 0;
}

void vo_import_warn(VoImportPlan *p, const char *fmt, ...)
{
    size_t n = vo_strv_len(p->warnings);
    if (n > VO_IMPORT_MAX_WARNINGS)
        return;
    if (n == VO_IMPORT_MAX_WARNINGS) {
        vo_strv_pushf(&p->warnings, "more warnings were left out");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vo_strv_push(&p->warnings, vo_vasprintf(fmt, ap));
    va_end(ap);
}

int vo_import_plan_add_disk(VoImportPlan *p, VoImportDisk disk, char **ret_error)
{
    if (p->n_disks >= VO_IMPORT_MAX_DISKS) {
        free(disk.file);
        free(disk.format);
        return vo_error_set(ret_error, -E2BIG, "more than %d disks", VO_IMPORT_MAX_DISKS);
    }
    VoImportDisk *d = realloc(p->disks, sizeof(*d) * (p->n_disks + 1));
    if (!d)
        abort();
    p->disks = d;
    p->disks[p->n_disks++] = disk;
    return 0;
}

int vo_import_plan_add_nic(VoImportPlan *p, VoImportNic nic, char **ret_error)
{
    if (p->n_nics >= VO_IMPORT_MAX_NICS) {
        free(nic.network);
        free(nic.mac);
        return vo_error_set(ret_error, -E2BIG, "more than %d network adapters",
                            VO_IMPORT_MAX_NICS);
    }
    VoImportNic *n = realloc(p->nics, sizeof(*n) * (p->n_nics + 1));
    if (!n)
        abort();
    p->nics = n;
    p->nics[p->n_nics++] = nic;
    return 0;
}

int vo_import_plan_check(const VoImportPlan *p, const char *what, char **ret_error)
{
    if (!p->name)
        return vo_error_set(ret_error, -EINVAL, "%s names no VM", what);
    if (p->vcpus < 1 || p->vcpus > VO_IMPORT_MAX_VCPUS)
        return vo_error_set(ret_error, -EINVAL, "%s: %u vCPUs is out of range (1-%d)", what,
                            p->vcpus, VO_IMPORT_MAX_VCPUS);
    if (p->memory_mib < 1 || p->memory_mib > VO_IMPORT_MAX_MEMORY_MIB)
        return vo_error_set(ret_error, -EINVAL, "%s: memory of %llu MiB is out of range "
                            "(1 MiB - 4 TiB)", what, (unsigned long long)p->memory_mib);
    for (size_t i = 0; i < p->n_disks; i++)
        if (p->disks[i].capacity_bytes > VO_IMPORT_MAX_DISK_BYTES)
            return vo_error_set(ret_error, -EINVAL, "%s: disk '%s' of %llu bytes is larger "
                                "than 64 TiB", what, p->disks[i].file,
                                (unsigned long long)p->disks[i].capacity_bytes);
    return 0;
}

bool vo_import_file_name_valid(const char *name)
{
    if (!name || !*name || strlen(name) > 255 || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static bool hex_valid(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s))
            return false;
    return true;
}

int vo_ova_manifest_parse(const char *text, size_t len, char ***ret_names, char ***ret_algos,
                          char ***ret_digests, char **ret_error)
{
    _cleanup_strv_ char **names = NULL, **algos = NULL, **digests = NULL;
    if (len > 64 * 1024)
        return vo_error_set(ret_error, -EINVAL, "manifest: larger than 64 KiB");
    size_t line_no = 0;
    for (size_t pos = 0; pos < len;) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        line_no++;
        if (n && start[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        _cleanup_free_ char *line = vo_asprintf("%.*s", (int)n, start);
        if (strlen(line) != n)
            return vo_error_set(ret_error, -EINVAL, "manifest line %zu: a NUL byte", line_no);
        /* ALGO(NAME)= HEX, or BSD's "ALGO (NAME) = HEX" (VirtualBox,
         * sha256sum --tag) */
        char *open = strchr(line, '(');
        char *close = strrchr(line, ')');
        char *eq = close ? close + 1 : NULL;
        while (eq && *eq == ' ')
            eq++;
        if (!open || !close || close < open || *eq != '=')
            return vo_error_set(ret_error, -EINVAL, "manifest line %zu: not ALGO(FILE)= DIGEST",
                                line_no);
        *open = *close = '\0';
        for (char *p = open; p > line && p[-1] == ' ';)
            *--p = '\0';
        const char *algo = line, *name = open + 1;
        char *digest = eq + 1;
        while (*digest == ' ')
            digest++;
        for (size_t k = strlen(digest); k && (digest[k - 1] == ' ' || digest[k - 1] == '\t');)
            digest[--k] = '\0';
        size_t hex_len = !strcmp(algo, "SHA256") ? 64 : !strcmp(algo, "SHA1") ? 40 : 0;
        if (!hex_len)
            return vo_error_set(ret_error, -EINVAL, "manifest line %zu: digest '%.16s' is not "
                                "SHA1 or SHA256", line_no, algo);
        if (!hex_valid(digest, hex_len))
            return vo_error_set(ret_error, -EINVAL, "manifest line %zu: the %s digest is not "
                                "%zu hex digits", line_no, algo, hex_len);
        if (!vo_import_file_name_valid(name))
            return vo_error_set(ret_error, -EINVAL, "manifest line %zu: '%.64s' is not a plain "
                                "file name", line_no, name);
        if (vo_strv_len(names) >= VO_IMPORT_MAX_FILES)
            return vo_error_set(ret_error, -EINVAL, "manifest: more than %d files",
                                VO_IMPORT_MAX_FILES);
        for (char *p = digest; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        vo_strv_pushf(&names, "%s", name);
        vo_strv_pushf(&algos, "%s", algo);
        vo_strv_pushf(&digests, "%s", digest);
    }
    *ret_names = TAKE_PTR(names);
    *ret_algos = TAKE_PTR(algos);
    *ret_digests = TAKE_PTR(digests);
    return 0;
}
