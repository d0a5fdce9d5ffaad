/* backup-id.c: backup id making, id and disk file name validation (see
 * backup-id.h). */
#include "storage/backup-id.h"

#include <string.h>
#include <time.h>

#include "util/util.h"

bool vo_backup_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > VO_BACKUP_ID_MAX || id[0] == '-')
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return true;
}

char *vo_backup_id_make(const char *vm_name, int64_t wall_ms, uint32_t suffix)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    return vo_asprintf("%s-%s-%04x", vm_name, stamp, (unsigned)(suffix & 0xffff));
}

bool vo_backup_file_valid(const char *file)
{
    if (!file || strncmp(file, "disk", 4))
        return false;
    size_t digits = strspn(file + 4, "0123456789");
    return digits >= 1 && digits <= 10 && !strcmp(file + 4 + digits, ".qcow2");
}
