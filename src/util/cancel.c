/* cancel.c: cancel tokens (see cancel.h). */
#include "util/cancel.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct VoCancel {
    atomic_bool requested;
    int fd; /* eventfd, written once on request; -1 when none */
};

static _Thread_local VoCancel *current;

VoCancel *vo_cancel_new(void)
{
    VoCancel *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    atomic_init(&c->requested, false);
    c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return c;
}

void vo_cancel_free(VoCancel *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

void vo_cancel_request(VoCancel *c)
{
    if (!c || atomic_exchange(&c->requested, true))
        return;
    uint64_t one = 1;
    if (c->fd >= 0 && write(c->fd, &one, sizeof(one)) < 0) {
        /* the flag alone still stops the work at its next check */
    }
}

bool vo_cancel_is_requested(const VoCancel *c)
{
    return c && atomic_load(&((VoCancel *)c)->requested);
}

void vo_cancel_set_current(VoCancel *c)
{
    current = c;
}

const VoCancel *vo_cancel_current(void)
{
    return current;
}

bool vo_cancelled(void)
{
    return vo_cancel_is_requested(current);
}

int vo_cancel_fd(void)
{
    return current ? current->fd : -1;
}
