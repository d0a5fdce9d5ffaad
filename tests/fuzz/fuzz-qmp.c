/* fuzz-qmp.c: libFuzzer target for what vireod reads from QEMU's monitor
 * (qmp/qmp.c). The input is the byte stream QEMU would send. Each line goes
 * through the pure parser (vo_qmp_parse_line, vo_qmp_message_kind); then the
 * whole stream is put in a socket whose other end is closed after it, and
 * the real client reads it: greeting, capabilities negotiation (command id
 * 1), query-status (id 2), event waits and the event queue. Nothing blocks:
 * the client sees the end of the stream once the input is consumed. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "qmp/qmp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

static void parse_lines(const char *p, const char *end)
{
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *msg = (json_t *)1;
        int r = vo_qmp_parse_line(p, n, &msg);
        if (r < 0) {
            FUZZ_CHECK(!msg && (r == -EBADMSG || r == -EMSGSIZE));
        } else if (msg) {
            FUZZ_CHECK(json_is_object(msg));
            VoQmpKind k = vo_qmp_message_kind(msg);
            FUZZ_CHECK(k <= VO_QMP_OTHER);
            if (k == VO_QMP_EVENT)
                FUZZ_CHECK(json_is_string(json_object_get(msg, "event")));
            json_decref(msg);
        }
        p += n + 1;
    }
}

/* Runs the client on a socket that holds the stream. */
static void run_client(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    /* As much as the socket takes without blocking (well over 100 KiB). */
    for (size_t off = 0; off < size;) {
        ssize_t k = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    shutdown(sv[1], SHUT_WR);

    VoQmp *q = NULL;
    if (vo_qmp_open_fd(sv[0], 1000, &q) == 0) {
        char *status = NULL;
        int running = -1;
        if (vo_qmp_query_status(q, 1000, &status, &running) == 0)
            FUZZ_CHECK(status && (running == 0 || running == 1));
        free(status);
        json_t *ev = NULL;
        if (vo_qmp_wait_event(q, "BLOCK_JOB_COMPLETED", "device", "backup0", 1000, &ev) == 0)
            FUZZ_CHECK(!strcmp(json_string_value(json_object_get(ev, "event")),
                               "BLOCK_JOB_COMPLETED"));
        json_decref(ev);
        (void)vo_qmp_pump(q);
        while ((ev = vo_qmp_next_event(q))) {
            FUZZ_CHECK(json_is_string(json_object_get(ev, "event")));
            json_decref(ev);
        }
        vo_qmp_close(q);
    }
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_lines((const char *)data, (const char *)data + size);
    run_client(data, size);
    return 0;
}
