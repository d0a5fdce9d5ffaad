/* fault-file.c: test-only fault points as files (fault-file.h). */
#include "util/fault-file.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

int vo_fault_file_take(const char *dir, const char *name)
{
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, name);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 64, &text, NULL) < 0)
        return 0;
    /* "N ERR": the next N takes fail (the count kept in the file). */
    char *rest = NULL;
    long times = strtol(text, &rest, 10);
    if (rest != text && times > 1) {
        _cleanup_free_ char *left = vo_asprintf("%ld%s", times - 1, rest);
        (void)vo_write_file_atomic(path, left, strlen(left));
    } else
        (void)unlink(path);
    if (rest != text)
        text = memmove(text, rest + strspn(rest, " "), strlen(rest + strspn(rest, " ")) + 1);
    static const struct { const char *name; int err; } errnos[] = {
        { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "ENOMEM", ENOMEM }, { "EBUSY", EBUSY },
        { "ETIMEDOUT", ETIMEDOUT }, { "ESTALE", ESTALE },
    };
    for (size_t i = 0; i < ELEMENTSOF(errnos); i++)
        if (!strncmp(text, errnos[i].name, strlen(errnos[i].name)))
            return -errnos[i].err;
    return -EIO;
}

void vo_fault_file_hold(const char *dir, const char *name)
{
    _cleanup_free_ char *hold_path = vo_asprintf("%s/%s.hold", dir, name);
    if (access(hold_path, F_OK) != 0)
        return;
    _cleanup_free_ char *held_path = vo_asprintf("%s/%s.held", dir, name);
    (void)vo_write_file_atomic(held_path, "", 0);
    for (int i = 0; i < 12000 && access(hold_path, F_OK) == 0; i++)
        (void)poll(NULL, 0, 10);
}
