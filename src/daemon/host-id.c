/* host-id.c: this host's stable id in STATE/host-id (see host-id.h). */
#include "daemon/host-id.h"

#include <errno.h>
#include <string.h>

#include "conf/names.h"
#include "util/util.h"

#define HOST_ID_FILE "host-id"

char *vo_host_id(VoDaemon *d)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", d->state_dir, HOST_ID_FILE);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 256, &text, NULL) >= 0) {
        size_t n = strspn(text, "0123456789abcdef");
        if (n >= 8 && n <= 64 && (!text[n] || text[n] == '\n')) {
            text[n] = 0;
            return TAKE_PTR(text);
        }
        log_warn("%s is not a host id; making a new one", path);
    }
    char uuid[37], id[33];
    if (vo_uuid_generate(uuid) < 0)
        return NULL;
    size_t k = 0;
    for (const char *p = uuid; *p && k < 32; p++)
        if (*p != '-')
            id[k++] = *p;
    id[k] = 0;
    _cleanup_free_ char *line = vo_asprintf("%s\n", id);
    if (vo_write_file_atomic(path, line, strlen(line)) < 0) {
        log_error("cannot write the host id %s: %s", path, strerror(errno));
        return NULL;
    }
    return vo_strdup(id);
}
