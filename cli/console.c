/* console.c: `vireo console NAME` attaches the terminal to a VM's serial
 * console over an upgraded HTTP connection (raw socket, not libcurl);
 * `--log` prints what the console has shown so far. */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <termios.h>

#include "cli.h"
#include "util/unix-socket.h"
#include "http.h"

#define DETACH_BYTE 0x1d          /* Ctrl-] */
#define LINGER_AFTER_EOF_MS 1000  /* keep printing output after stdin ends */
#define ERROR_BODY_TIMEOUT_MS 10000
#define HEAD_MAX 16384
#define ERROR_BODY_MAX (1u << 20)

static struct termios saved_termios;
static volatile sig_atomic_t termios_saved;

static void tty_restore(void)
{
    if (termios_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
        termios_saved = 0;
    }
}

static void on_fatal_signal(int sig)
{
    tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int tty_make_raw(void)
{
    static bool hooks_installed;
    if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
        return -errno;
    if (!hooks_installed) {
        static const int sigs[] = { SIGTERM, SIGHUP, SIGQUIT, SIGINT };
        struct sigaction sa = { .sa_handler = on_fatal_signal };
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
            sigaction(sigs[i], &sa, NULL);
        atexit(tty_restore);
        hooks_installed = true;
    }
    struct termios raw = saved_termios;
    cfmakeraw(&raw);
    termios_saved = 1;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0) {
        termios_saved = 0;
        return -errno;
    }
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* read(2) that gives up after timeout_ms without data (-ETIMEDOUT). */
static ssize_t read_timeout(int fd, char *buf, size_t size, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = read(fd, buf, size);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : n;
    }
}

static int console_connect(void)
{
    int fd = vo_unix_connect(cli_globals.socket, 0);
    if (fd < 0)
        api_print_unreachable(-fd);
    return fd;
}

/* The value of header `name` in the response head, or NULL. Not NUL-terminated:
 * *ret_len gets its length. */
static const char *find_header(const char *head, size_t head_len, const char *name,
                               size_t *ret_len)
{
    size_t name_len = strlen(name);
    const char *end = head + head_len;
    const char *line = memmem(head, head_len, "\r\n", 2);
    while (line && line + 2 < end) {
        line += 2;
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
            strncasecmp(line, name, name_len) == 0) {
            const char *v = line + name_len + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *ret_len = (size_t)(eol - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/* Decode a chunked body in place. Returns 1 when complete (*len updated),
 * 0 when more data is needed, -EBADMSG when malformed. */
static int dechunk(char *buf, size_t *len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(buf + in, *len - in, "\r\n", 2);
        if (!eol)
            return 0;
        char *end = NULL;
        unsigned long size = strtoul(buf + in, &end, 16);
        if (end == buf + in)
            return -EBADMSG;
        size_t data = (size_t)(eol - buf) + 2;
        if (size == 0) {
            *len = out;
            return 1; /* trailers, if any, are of no interest */
        }
        if (*len - data < size + 2)
            return 0;
        memmove(buf + out, buf + data, size);
        out += size;
        in = data + size + 2;
    }
}

/* A non-101 answer: read its body and print it as an API error. */
static void report_refusal(int fd, int status, const char *head, size_t head_len,
                           const char *rest, size_t rest_len)
{
    size_t cap = rest_len + 4096, len = rest_len;
    _cleanup_free_ char *body = vo_malloc0(cap + 1);
    memcpy(body, rest, rest_len);

    size_t vlen = 0;
    const char *v = find_header(head, head_len, "Content-Length", &vlen);
    long long content_length = v ? strtoll(v, NULL, 10) : -1;
    v = find_header(head, head_len, "Transfer-Encoding", &vlen);
    bool chunked = v && vlen >= 7 && strncasecmp(v, "chunked", 7) == 0;

    for (;;) {
        if (chunked) {
            size_t tmp_len = len;
            _cleanup_free_ char *tmp = vo_malloc0(len + 1);
            memcpy(tmp, body, len);
            int r = dechunk(tmp, &tmp_len);
            if (r != 0) {
                if (r > 0) {
                    memcpy(body, tmp, tmp_len);
                    len = tmp_len;
                }
                break;
            }
        } else if (content_length >= 0 && len >= (size_t)content_length) {
            len = (size_t)content_length;
            break;
        }
        if (len >= ERROR_BODY_MAX)
            break;
        if (cap - len < 4096) {
            cap *= 2;
            char *p = realloc(body, cap + 1);
            if (!p)
                break;
            body = p;
        }
        ssize_t n = read_timeout(fd, body + len, cap - len, ERROR_BODY_TIMEOUT_MS);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    body[len] = '\0';
    api_print_error(status, body, len);
}

typedef enum { END_DETACHED, END_CLOSED, END_INPUT_DONE, END_ERROR } RelayEnd;

static RelayEnd relay(int sock, bool tty)
{
    char buf[65536];
    bool input_open = true;
    int64_t linger_until = 0;

    for (;;) {
        struct pollfd p[2] = {
            { .fd = sock, .events = POLLIN },
            { .fd = input_open ? STDIN_FILENO : -1, .events = POLLIN },
        };
        int timeout = -1;
        if (!input_open) {
            int64_t left = linger_until - vo_now_ms();
            if (left <= 0)
                return END_INPUT_DONE;
            timeout = (int)left;
        }
        int r = poll(p, 2, timeout);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            tty_restore();
            cli_error("poll: %s", strerror(errno));
            return END_ERROR;
        }
        if (p[0].revents) {
            ssize_t n = read(sock, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != ECONNRESET) {
                int err = errno;
                tty_restore();
                cli_error("reading the console: %s", strerror(err));
                return END_ERROR;
            }
            if (n <= 0)
                return END_CLOSED;
            if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
                return END_DETACHED; /* nobody reads our output any more */
        }
        if (input_open && p[1].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                if (tty)
                    return END_DETACHED; /* the terminal went away */
                input_open = false;
                linger_until = vo_now_ms() + LINGER_AFTER_EOF_MS;
                continue;
            }
            char *detach = memchr(buf, DETACH_BYTE, (size_t)n);
            size_t len = detach ? (size_t)(detach - buf) : (size_t)n;
            if (len > 0 && write_all(sock, buf, len) < 0)
                return END_CLOSED;
            if (detach)
                return END_DETACHED;
        }
    }
}

static int console_attach(const char *name)
{
    _cleanup_close_ int fd = console_connect();
    if (fd < 0)
        return CLI_EXIT_FAIL;

    _cleanup_free_ char *path = api_path("vms", name, "/console");
    _cleanup_free_ char *request = vo_asprintf("GET %s HTTP/1.1\r\n"
                                               "Host: vireod\r\n"
                                               "Connection: Upgrade\r\n"
                                               "Upgrade: vireo-console\r\n"
                                               "\r\n",
                                               path);
    int r = write_all(fd, request, strlen(request));
    if (r < 0) {
        cli_error("sending the console request to vireod failed: %s", strerror(-r));
        return CLI_EXIT_FAIL;
    }

    char head[HEAD_MAX];
    size_t len = 0;
    char *end;
    while (!(end = memmem(head, len, "\r\n\r\n", 4))) {
        if (len == sizeof(head)) {
            cli_error("vireod's answer to the console request is malformed");
            return CLI_EXIT_FAIL;
        }
        ssize_t n = read_timeout(fd, head + len, sizeof(head) - len, ERROR_BODY_TIMEOUT_MS);
        if (n == 0) {
            cli_error("vireod closed the connection without answering the console request");
            return CLI_EXIT_FAIL;
        }
        if (n < 0) {
            cli_error("reading vireod's answer to the console request failed: %s", strerror((int)-n));
            return CLI_EXIT_FAIL;
        }
        len += (size_t)n;
    }
    size_t head_len = (size_t)(end - head) + 4;
    int status = 0;
    if (sscanf(head, "HTTP/%*d.%*d %d", &status) != 1) {
        cli_error("vireod's answer to the console request is malformed");
        return CLI_EXIT_FAIL;
    }
    if (status != 101) {
        report_refusal(fd, status, head, head_len, head + head_len, len - head_len);
        return CLI_EXIT_FAIL;
    }

    bool tty = isatty(STDIN_FILENO);
    if (tty) {
        fprintf(stderr, "Connected to %s's console; Ctrl-] detaches.\n", name);
        fflush(stderr);
        r = tty_make_raw();
        if (r < 0) {
            cli_error("cannot put the terminal in raw mode: %s", strerror(-r));
            return CLI_EXIT_FAIL;
        }
    }
    if (len > head_len && write_all(STDOUT_FILENO, head + head_len, len - head_len) < 0) {
        tty_restore();
        return CLI_EXIT_OK;
    }

    RelayEnd how = relay(fd, tty);
    tty_restore();
    switch (how) {
    case END_DETACHED:
        if (tty)
            fprintf(stderr, "\nDetached from %s's console.\n", name);
        return CLI_EXIT_OK;
    case END_CLOSED:
        fprintf(stderr, "%sConsole of %s closed by vireod (the VM stopped).\n", tty ? "\n" : "",
                name);
        return CLI_EXIT_OK;
    case END_INPUT_DONE:
        return CLI_EXIT_OK;
    case END_ERROR:
        break;
    }
    return CLI_EXIT_FAIL;
}

static int console_log(const char *name)
{
    _cleanup_free_ char *path = api_path("vms", name, "/console/log");
    HttpReply reply;
    if (http_request("GET", path, NULL, &reply) < 0)
        return CLI_EXIT_FAIL;
    int exit_status = CLI_EXIT_OK;
    if (reply.status < 200 || reply.status > 299) {
        api_print_error(reply.status, reply.body, reply.len);
        exit_status = CLI_EXIT_FAIL;
    } else if (reply.len > 0 && write_all(STDOUT_FILENO, reply.body, reply.len) < 0) {
        exit_status = CLI_EXIT_FAIL;
    }
    http_reply_done(&reply);
    return exit_status;
}

static int console_run(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL;
    bool log = false;
    const CliOption opts[] = { { "--log", NULL, &log }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    return log ? console_log(name) : console_attach(name);
}

static const CliCommand console_commands[] = {
    { "console", NULL, "NAME", "[--log]", "Attach to a running VM's serial console.",
      "Options:\n"
      "  --log                 print what the console has shown so far (last ~1 MiB)\n"
      "                        instead of attaching\n"
      "\n"
      "Ctrl-] detaches. On a terminal, input is passed through raw. When input is not\n"
      "a terminal it is sent as is; at its end, output is shown for one more second.\n"
      "\nExamples:\n"
      "  vireo console web1\n"
      "  echo 'uname -a' | vireo console web1\n"
      "  vireo console web1 --log | tail\n",
      console_run },
};

const CliNoun cli_noun_console = { "console", "a VM's serial console", console_commands,
                                   ELEMENTSOF(console_commands) };
