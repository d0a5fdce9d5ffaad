/* qemu-events.c: the table of QMP events vireo handles and their parsers,
 * and the non-blocking reader of a VM's event monitor (see qemu-events.h). */
#include "qemu/qemu-events.h"

#include <string.h>

#include "util/util.h"

static const char *str(json_t *data, const char *key)
{
    return json_string_value(json_object_get(data, key));
}

static int parse_reset(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    ev->guest = json_is_true(json_object_get(data, "guest"));
    ev->reason = str(data, "reason");
    return 0;
}

static int parse_shutdown(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    /* Only the guest's own: QEMU also sends one, guest false, when it ends
     * on a signal ("host-signal": a SIGTERM from anyone) or on a quit. */
    if (json_is_true(json_object_get(data, "guest")))
        st->shutdown_seen = true;
    return parse_reset(st, data, ev); /* the same fields */
}

static int parse_stop(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    /* QEMU's STOP carries no reason; the fake driver may give one. */
    ev->reason = str(data, "reason");
    if (!ev->reason && st->io_error_stop)
        ev->reason = "io-error";
    return 0;
}

static int parse_resume(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    st->io_error_stop = false;
    if (ev->timestamp_us > st->last_resume_us)
        st->last_resume_us = ev->timestamp_us;
    return 0;
}

/* {"device": "" (a -blockdev disk has no BlockBackend name), "node-name",
 *  "qom-path", "operation", "action", "nospace", "reason"} */
static int parse_block_io_error(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    ev->node = str(data, "node-name");
    ev->device = str(data, "device");
    if (!ev->device || !*ev->device)
        ev->device = ev->node ? ev->node : str(data, "qom-path");
    ev->operation = str(data, "operation");
    ev->action = str(data, "action");
    ev->nospace = json_is_true(json_object_get(data, "nospace"));
    ev->reason = str(data, "reason");
    if (!ev->operation || !ev->action)
        return -EBADMSG;
    ev->late = ev->timestamp_us > 0 && ev->timestamp_us < st->last_resume_us;
    if (!strcmp(ev->action, "stop") && !ev->late)
        st->io_error_stop = true;
    return 0;
}

static int parse_device_deleted(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    /* "device" is absent for a device without an id (then only "path"). */
    ev->id = str(data, "device");
    return ev->id || str(data, "path") ? 0 : -EBADMSG;
}

static int parse_job_status(VoQemuEventState *st, json_t *data, VoHvEvent *ev)
{
    ev->id = str(data, "id");
    ev->status = str(data, "status");
    return ev->id && ev->status ? 0 : -EBADMSG;
}

static const struct {
    const char *name;
    VoHvEventType type;
    int (*parse)(VoQemuEventState *st, json_t *data, VoHvEvent *ev);
} event_table[] = {
    { "SHUTDOWN", VO_HV_EVENT_SHUTDOWN, parse_shutdown },
    { "RESET", VO_HV_EVENT_RESET, parse_reset },
    { "STOP", VO_HV_EVENT_STOP, parse_stop },
    { "RESUME", VO_HV_EVENT_RESUME, parse_resume },
    { "BLOCK_IO_ERROR", VO_HV_EVENT_BLOCK_IO_ERROR, parse_block_io_error },
    { "DEVICE_DELETED", VO_HV_EVENT_DEVICE_DELETED, parse_device_deleted },
    { "JOB_STATUS_CHANGE", VO_HV_EVENT_JOB_STATUS, parse_job_status },
    /* MIGRATION and friends: added with the migration entry points. */
};

int vo_qemu_event_parse(VoQemuEventState *st, json_t *msg, VoHvEvent *ret)
{
    const char *name = str(msg, "event");
    if (!name)
        return -EBADMSG;
    for (size_t i = 0; i < ELEMENTSOF(event_table); i++) {
        if (strcmp(event_table[i].name, name))
            continue;
        VoHvEvent ev = { .type = event_table[i].type, .name = event_table[i].name };
        json_t *ts = json_object_get(msg, "timestamp");
        ev.timestamp_us = json_integer_value(json_object_get(ts, "seconds")) * 1000000 +
                          json_integer_value(json_object_get(ts, "microseconds"));
        json_t *data = json_object_get(msg, "data"); /* NULL for STOP and RESUME */
        int r = event_table[i].parse(st, data, &ev);
        if (r < 0)
            return r;
        *ret = ev;
        return 0;
    }
    return -ENOENT;
}

int vo_qemu_events_read(VoQmp *q, VoQemuEventState *st, VoHvInstance *vm, VoHvEventFn fn,
                        void *userdata)
{
    /* Events already queued are handed out even when the monitor closed
     * meanwhile (the SHUTDOWN just before QEMU exits). */
    int r = vo_qmp_pump(q);
    json_t *msg;
    while ((msg = vo_qmp_next_event(q))) {
        VoHvEvent ev;
        int p = vo_qemu_event_parse(st, msg, &ev);
        if (p == 0)
            fn(vm, &ev, userdata);
        else if (p == -EBADMSG)
            log_warn("QMP event %s without the fields it needs; ignored",
                     str(msg, "event") ? str(msg, "event") : "(unnamed)");
        else
            log_debug("QMP event %s: not handled", str(msg, "event"));
        json_decref(msg);
    }
    return r < 0 ? -ECONNRESET : 0;
}
