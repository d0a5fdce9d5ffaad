/* records.c: the documents of images and backup records, and the plan that
 * reconciles backup documents with the pools at start (see records.h). */
#include "state/records.h"

#include <errno.h>
#include <string.h>

#include "conf/names.h"
#include "util/util.h"

/* A file of the image directory: a plain name, never a path. */
static bool plain_file(const char *name)
{
    return name && name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

int vo_image_doc_make(const char *name, json_t *meta, uint64_t size_bytes, int64_t created_ms,
                      json_t **ret, char **ret_error)
{
    const char *disk = NULL, *format = "raw", *kernel = NULL, *initrd = NULL, *cmdline = NULL;
    const char *template_of = NULL, *firmware = NULL;
    if (!vo_name_valid(name))
        return vo_error_set(ret_error, -EINVAL, "'%s' is not an image name", name ? name : "");
    if (!json_is_object(meta) ||
        json_unpack(meta, "{s:s, s?s, s?s, s?s, s?s, s?s, s?s}", "disk", &disk, "format",
                    &format, "kernel", &kernel, "initrd", &initrd, "cmdline", &cmdline,
                    "template_of", &template_of, "firmware", &firmware) < 0)
        return vo_error_set(ret_error, -EINVAL, "image.json needs \"disk\" and string fields");
    if (strcmp(format, "raw") && strcmp(format, "qcow2"))
        return vo_error_set(ret_error, -EINVAL, "format '%s' is not raw or qcow2", format);
    if (firmware && strcmp(firmware, "bios") && strcmp(firmware, "uefi"))
        return vo_error_set(ret_error, -EINVAL, "firmware '%s' is not bios or uefi", firmware);
    const char *files[] = { disk, kernel, initrd }, *keys[] = { "disk", "kernel", "initrd" };
    for (size_t i = 0; i < ELEMENTSOF(files); i++)
        if ((i == 0 || files[i]) && !plain_file(files[i]))
            return vo_error_set(ret_error, -EINVAL, "%s '%s' is not a file name inside the "
                                "image directory", keys[i], files[i]);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", name, "disk", disk, "format",
                            format, "size_bytes", (json_int_t)size_bytes, "created_at",
                            (json_int_t)created_ms);
    json_object_set_new(doc, "kernel", kernel ? json_string(kernel) : json_null());
    json_object_set_new(doc, "initrd", initrd ? json_string(initrd) : json_null());
    json_object_set_new(doc, "cmdline", cmdline ? json_string(cmdline) : json_null());
    if (template_of)
        json_object_set_new(doc, "template_of", json_string(template_of));
    if (firmware)
        json_object_set_new(doc, "firmware", json_string(firmware));
    /* "cloud_init": true: VMs made from it get a NoCloud seed by default. */
    if (json_is_true(json_object_get(meta, "cloud_init")))
        json_object_set_new(doc, "cloud_init", json_true());
    *ret = doc;
    return 0;
}

int vo_image_doc_parse(json_t *doc, const char *name, VoImageDoc *ret)
{
    VoImageDoc v = { 0 };
    json_int_t size = 0;
    if (!json_is_object(doc) ||
        json_unpack(doc, "{s:s, s:s, s:s, s:I}", "name", &v.name, "disk", &v.disk, "format",
                    &v.format, "size_bytes", &size) < 0 || size < 0)
        return -EINVAL;
    v.kernel = json_string_value(json_object_get(doc, "kernel"));
    v.initrd = json_string_value(json_object_get(doc, "initrd"));
    v.cmdline = json_string_value(json_object_get(doc, "cmdline"));
    v.firmware = json_string_value(json_object_get(doc, "firmware"));
    v.cloud_init = json_is_true(json_object_get(doc, "cloud_init"));
    v.size_bytes = (uint64_t)size;
    /* The name makes the image's directory (STATE/images/NAME): a plain
     * name, the one its key says, never a path out of there. */
    if (!vo_name_valid(v.name) || (name && strcmp(v.name, name)))
        return -EINVAL;
    if (!plain_file(v.disk) || (v.kernel && !plain_file(v.kernel)) ||
        (v.initrd && !plain_file(v.initrd)) || (strcmp(v.format, "raw") &&
                                                strcmp(v.format, "qcow2")))
        return -EINVAL;
    *ret = v;
    return 0;
}

json_t *vo_backup_doc_make(json_t *record, const char *pool)
{
    json_t *doc = json_deep_copy(record);
    json_object_set_new(doc, "pool", json_string(pool));
    return doc;
}

static size_t pool_rank(char *const *pools, const char *pool)
{
    size_t i = 0;
    for (; pools && pools[i]; i++)
        if (pool && !strcmp(pools[i], pool))
            break;
    return i;
}

static int cmp_docs(json_t *a, json_t *b, char *const *pools)
{
    size_t pa = pool_rank(pools, json_string_value(json_object_get(a, "pool")));
    size_t pb = pool_rank(pools, json_string_value(json_object_get(b, "pool")));
    if (pa != pb)
        return pa < pb ? -1 : 1;
    json_int_t ta = json_integer_value(json_object_get(a, "created_ms"));
    json_int_t tb = json_integer_value(json_object_get(b, "created_ms"));
    if (ta != tb)
        return ta < tb ? -1 : 1;
    return strcmp(json_string_value(json_object_get(a, "id")) ?: "",
                  json_string_value(json_object_get(b, "id")) ?: "");
}

void vo_backup_docs_sort(json_t *docs, char *const *pools)
{
    /* Insertion sort: a listing is small, and jansson arrays have no qsort. */
    size_t n = json_array_size(docs);
    for (size_t i = 1; i < n; i++) {
        json_t *cur = json_incref(json_array_get(docs, i));
        size_t k = i;
        while (k > 0 && cmp_docs(json_array_get(docs, k - 1), cur, pools) > 0) {
            json_array_set(docs, k, json_array_get(docs, k - 1));
            k--;
        }
        json_array_set(docs, k, cur);
        json_decref(cur);
    }
}

json_t *vo_backup_docs_plan(json_t *docs, json_t *found, char *const *unreadable)
{
    json_t *plan = json_object();
    const char *id;
    json_t *doc;
    json_object_foreach(found, id, doc) {
        json_t *have = json_object_get(docs, id);
        json_object_set_new(plan, id, json_string(!have ? "adopt"
                                                  : json_equal(have, doc) ? "keep" : "update"));
    }
    json_object_foreach(docs, id, doc) {
        if (json_object_get(found, id))
            continue;
        const char *pool = json_string_value(json_object_get(doc, "pool"));
        bool unread = false;
        for (char *const *p = unreadable; p && *p && pool; p++)
            unread = unread || !strcmp(*p, pool);
        /* A pool that holds no record at all while documents say it has
         * some is more likely not mounted yet (an empty mount point) than
         * emptied: its documents are kept. */
        bool empty = pool != NULL;
        const char *fid;
        json_t *f;
        json_object_foreach(found, fid, f) {
            const char *fpool = json_string_value(json_object_get(f, "pool"));
            if (fpool && pool && !strcmp(fpool, pool)) {
                empty = false;
                break;
            }
        }
        json_object_set_new(plan, id, json_string(unread || empty ? "keep" : "drop"));
    }
    return plan;
}
