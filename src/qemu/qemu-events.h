/* qemu-events.h: QEMU's asynchronous QMP events turned into the driver's
 * typed events (VoHvEvent, see hypervisor/driver.h): a table of event name
 * -> parser, and the reader the event loop runs on a VM's event monitor.
 * Shared by the QEMU driver and the fake driver (which plays the same
 * messages). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "hypervisor/driver.h"
#include "qmp/qmp.h"

/* What the parser remembers between events of one VM: a BLOCK_IO_ERROR
 * whose action is "stop" makes the STOP that follows (QEMU sends it just
 * after) a STOP for an I/O error; a RESUME forgets it. QEMU throttles
 * BLOCK_IO_ERROR (with QEMU 10, a second one within a second goes out a
 * second later, with its own timestamp), so one may arrive after a later
 * RESUME: its timestamp, older than the RESUME's, marks it late. */
typedef struct {
    bool io_error_stop;
    int64_t last_resume_us; /* timestamp of the last RESUME, 0: none */
    bool shutdown_seen;     /* the guest's SHUTDOWN came (the exit that follows is its
                             * power-off); not a host's (a signal, a quit) */
} VoQemuEventState;

/* Turns one QMP event message ({"event","data","timestamp"}) into *ret
 * (whose strings point into msg). 0; -ENOENT for an event vireo does not
 * handle (ret untouched); -EBADMSG when a field it needs is missing. */
int vo_qemu_event_parse(VoQemuEventState *st, json_t *msg, VoHvEvent *ret);

/* Reads every event available on q without blocking and calls fn(vm, ev,
 * userdata) for each that parses, in order; others are logged (debug) and
 * dropped. 0, or -ECONNRESET when the monitor closed (QEMU exits). */
int vo_qemu_events_read(VoQmp *q, VoQemuEventState *st, VoHvInstance *vm, VoHvEventFn fn,
                        void *userdata);
