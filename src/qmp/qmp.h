/* qmp.h: a synchronous QMP client for one QEMU monitor socket.
 * Transport: connect, read the greeting, negotiate qmp_capabilities (with
 * out-of-band execution when offered), send a command with an id, wait for
 * the matching return/error with a deadline, queueing asynchronous events
 * that arrive in between.
 * A VoQmp is used by one thread at a time (callers hold the VM's job lock). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct VoQmp VoQmp;

/* Connect to a unix socket path and negotiate capabilities within timeout_ms. */
int vo_qmp_connect(const char *socket_path, int timeout_ms, VoQmp **ret);
/* Same over an already connected fd (takes ownership; used by tests). */
int vo_qmp_open_fd(int fd, int timeout_ms, VoQmp **ret);
VoQmp *vo_qmp_close(VoQmp *q);
int vo_qmp_fd(VoQmp *q);

/* Send {"execute":cmd,"arguments":args,"id":N}; args may be NULL (borrowed).
 * On {"return":X}: 0 and *ret_return = new reference to X (ret_return may be NULL).
 * On {"error":{"class","desc"}}: -EIO and *ret_error = malloc'd "Class: desc" (may be NULL).
 * -ETIMEDOUT past the deadline, -ECONNRESET when the socket closes. */
int vo_qmp_execute(VoQmp *q, const char *cmd, json_t *args, int timeout_ms,
                   json_t **ret_return, char **ret_error);

/* vo_qmp_execute out of band ({"exec-oob":cmd}) when the monitor offered
 * the "oob" capability (negotiated at connect), in band otherwise: QEMU runs
 * it at once, even while its main loop is blocked or earlier in-band
 * commands wait. Only for commands whose schema says allow-oob (QEMU 10.0:
 * migrate-pause, migrate-recover, yank, query-yank); QEMU refuses others. */
int vo_qmp_execute_oob(VoQmp *q, const char *cmd, json_t *args, int timeout_ms,
                       json_t **ret_return, char **ret_error);
/* Whether out-of-band execution was negotiated. */
bool vo_qmp_oob(VoQmp *q);

/* vo_qmp_execute, passing the open file descriptor fd to QEMU along with the
 * command (SCM_RIGHTS), as the getfd command expects; fd stays open here. */
int vo_qmp_execute_fd(VoQmp *q, const char *cmd, json_t *args, int fd, int timeout_ms,
                      json_t **ret_return, char **ret_error);

/* Waits up to timeout_ms for event name (or any of the names it lists,
 * "MIGRATION|MIGRATION_PASS") (and, when key is not NULL, whose
 * data.key is the string value), already queued or still to come, and
 * removes it from the queue; every other event stays queued, in order.
 * 0 and *ret_event (new reference; ret_event may be NULL), -ETIMEDOUT, or
 * -ECONNRESET. */
int vo_qmp_wait_event(VoQmp *q, const char *name, const char *key, const char *value,
                      int timeout_ms, json_t **ret_event);

/* Pop the oldest queued event ({"event":..., "data":..., "timestamp":...}); NULL if none.
 * Returns a new reference. */
json_t *vo_qmp_next_event(VoQmp *q);
/* Read whatever is available without blocking and queue events; 0, or -ECONNRESET. */
int vo_qmp_pump(VoQmp *q);

/* Parsing what QEMU sends (pure; used by the client above). One received
 * line, without its '\n', of n bytes: 0 and *ret = a new reference to the
 * message object, or *ret = NULL for a blank line; -EBADMSG when it is not
 * a JSON object; -EMSGSIZE past 1 MiB. An integer int64 cannot hold (a
 * uint64 field near 2^64) is read as a real. */
int vo_qmp_parse_line(const char *line, size_t n, json_t **ret);

/* What a parsed message is: a command's reply (return or error; matched by
 * its "id"), an asynchronous event, the greeting, or none of these. */
typedef enum { VO_QMP_RETURN, VO_QMP_ERROR, VO_QMP_EVENT, VO_QMP_GREETING, VO_QMP_OTHER } VoQmpKind;
VoQmpKind vo_qmp_message_kind(json_t *msg);

/* Typed commands. */
int vo_qmp_query_status(VoQmp *q, int timeout_ms, char **ret_status, int *ret_running);
int vo_qmp_stop(VoQmp *q, int timeout_ms);            /* pause vCPUs */
int vo_qmp_cont(VoQmp *q, int timeout_ms);            /* resume vCPUs */
int vo_qmp_system_powerdown(VoQmp *q, int timeout_ms); /* ACPI power button */
int vo_qmp_system_reset(VoQmp *q, int timeout_ms);
int vo_qmp_quit(VoQmp *q, int timeout_ms);
