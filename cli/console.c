/* console.c: `vireo console NAME` attaches the terminal to a VM's serial
 * console over an upgraded HTTP connection (raw socket, not libcurl);
 * `--log` prints what the console has shown so far; `--vnc` relays VNC
 * viewers on a local TCP port (off loopback: with a one-time password). */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "cli.h"
#include "util/unix-socket.h"
#include "http.h"
#include "output.h"

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

/* Opens an upgraded connection to GET path (Upgrade: protocol): the
 * socket, with what vireod sent after its 101 in head[*ret_body..*ret_len);
 * -1 after printing why not (what: "console" in messages). */
static int upgrade_open(const char *path, const char *protocol, const char *what,
                        char head[HEAD_MAX], size_t *ret_body, size_t *ret_len)
{
    int fd = console_connect();
    if (fd < 0)
        return -1;
    _cleanup_free_ char *request = vo_asprintf("GET %s HTTP/1.1\r\n"
                                               "Host: vireod\r\n"
                                               "Connection: Upgrade\r\n"
                                               "Upgrade: %s\r\n"
                                               "\r\n",
                                               path, protocol);
    int r = write_all(fd, request, strlen(request));
    if (r < 0) {
        cli_error("sending the %s request to vireod failed: %s", what, strerror(-r));
        close(fd);
        return -1;
    }

    size_t len = 0;
    char *end;
    while (!(end = memmem(head, len, "\r\n\r\n", 4))) {
        if (len == HEAD_MAX) {
            cli_error("vireod's answer to the %s request is malformed", what);
            close(fd);
            return -1;
        }
        ssize_t n = read_timeout(fd, head + len, HEAD_MAX - len, ERROR_BODY_TIMEOUT_MS);
        if (n == 0) {
            cli_error("vireod closed the connection without answering the %s request", what);
            close(fd);
            return -1;
        }
        if (n < 0) {
            cli_error("reading vireod's answer to the %s request failed: %s", what,
                      strerror((int)-n));
            close(fd);
            return -1;
        }
        len += (size_t)n;
    }
    size_t head_len = (size_t)(end - head) + 4;
    int status = 0;
    if (sscanf(head, "HTTP/%*d.%*d %d", &status) != 1) {
        cli_error("vireod's answer to the %s request is malformed", what);
        close(fd);
        return -1;
    }
    if (status != 101) {
        report_refusal(fd, status, head, head_len, head + head_len, len - head_len);
        close(fd);
        return -1;
    }
    *ret_body = head_len;
    *ret_len = len;
    return fd;
}

static int console_attach(const char *name)
{
    _cleanup_free_ char *path = api_path("vms", name, "/console");
    char head[HEAD_MAX];
    size_t head_len = 0, len = 0;
    _cleanup_close_ int fd = upgrade_open(path, "vireo-console", "console", head, &head_len, &len);
    if (fd < 0)
        return CLI_EXIT_FAIL;
    int r;

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

/* ---- vireo console VM --vnc: a local TCP port for VNC viewers ---- */

/* The least an RFB viewer sends up to and with its VNC authentication
 * response: its ProtocolVersion (12 bytes), in 3.7/3.8 its security type (1),
 * the DES response (16). */
#define RFB_AUTH_BYTES 28

/* Both ways between viewer and stream until either side closes. With
 * auth_deadline (vo_now_ms; 0: none): also ends then if the viewer has not
 * sent RFB_AUTH_BYTES by that time, the password's expiry, after which
 * QEMU admits nobody: a peer that connects and stays silent (or stops
 * before the password) holds vireod's stream and QEMU's connection no
 * longer than that. */
static void pump(int viewer, int stream, int64_t auth_deadline)
{
    char buf[65536];
    size_t from_viewer = 0;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = viewer, .events = POLLIN },
                                 { .fd = stream, .events = POLLIN } };
        int timeout = -1;
        if (auth_deadline && from_viewer < RFB_AUTH_BYTES) {
            int64_t left = auth_deadline - vo_now_ms();
            if (left <= 0)
                return;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        if (poll(pfd, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (!pfd[i].revents)
                continue;
            ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || write_all(pfd[1 - i].fd, buf, (size_t)n) < 0)
                return;
            if (i == 0)
                from_viewer += (size_t)n;
        }
    }
}

/* --listen ADDR:PORT, an IPv4 address. *ret_loopback: on 127.0.0.0/8,
 * where viewers need no password (only this machine reaches it). */
static int parse_listen(const char *listen_arg, struct sockaddr_in *ret, bool *ret_loopback)
{
    const char *colon = strrchr(listen_arg, ':');
    char host[64];
    if (!colon || (size_t)(colon - listen_arg) >= sizeof(host)) {
        cli_error("--listen: '%s' is not ADDRESS:PORT (e.g. 127.0.0.1:5900)", listen_arg);
        return -EINVAL;
    }
    memcpy(host, listen_arg, (size_t)(colon - listen_arg));
    host[colon - listen_arg] = 0;
    uint64_t port;
    memset(ret, 0, sizeof(*ret));
    ret->sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &ret->sin_addr) != 1) {
        cli_error("--listen: '%s' is not an IPv4 address (e.g. 127.0.0.1:5900)", host);
        return -EINVAL;
    }
    if (!cli_parse_uint("--listen's port", colon + 1, 0, 65535, &port))
        return -EINVAL;
    ret->sin_port = htons((uint16_t)port);
    *ret_loopback = (ntohl(ret->sin_addr.s_addr) >> 24) == 127;
    return 0;
}

/* Off loopback, viewers go to the VM's VNC server that asks for a password:
 * a one-time one, issued now (POST .../vnc-ticket) and printed once, that
 * admits viewers connecting within ttl seconds. malloc'd; NULL: reported. */
static char *vnc_ticket(const char *name, uint64_t ttl)
{
    _cleanup_free_ char *path = api_path("vms", name, "/vnc-ticket");
    json_t *body = json_pack("{s:I}", "ttl_seconds", (json_int_t)ttl), *doc = NULL;
    int r = api_call("POST", path, body, &doc);
    json_decref(body);
    if (r < 0)
        return NULL;
    const char *password = jstr(doc, "password");
    char *copy = password ? vo_strdup(password) : NULL;
    json_decref(doc);
    if (!copy)
        cli_error("vireod gave no VNC password");
    return copy;
}

static int console_vnc(const char *name, const char *listen_arg, const char *ttl_arg)
{
    struct sockaddr_in addr;
    bool loopback;
    uint64_t ttl = 60;
    if (parse_listen(listen_arg ? listen_arg : "127.0.0.1:5900", &addr, &loopback) < 0 ||
        (ttl_arg && !cli_parse_uint("--password-ttl", ttl_arg, 5, 3600, &ttl)))
        return CLI_EXIT_USAGE;
    if (ttl_arg && loopback)
        return cli_usage_error("console", "--password-ttl goes with a --listen address off "
                               "loopback (on 127.0.0.0/8 viewers need no password)");
    /* Taken before the request: no later than QEMU's expiry of it. */
    int64_t expires = loopback ? 0 : vo_now_ms() + (int64_t)ttl * 1000;
    _cleanup_free_ char *password = loopback ? NULL : vnc_ticket(name, ttl);
    if (!loopback && !password)
        return CLI_EXIT_FAIL;
    _cleanup_free_ char *path = api_path("vms", name, loopback ? "/vnc" : "/vnc?password=true");
    /* The first stream now: a VM without a display (or not running) is
     * reported before anything listens. It serves the first viewer. */
    char head[HEAD_MAX];
    size_t body = 0, len = 0;
    int first = upgrade_open(path, "vireo-vnc", "VNC", head, &body, &len);
    if (first < 0)
        return CLI_EXIT_FAIL;
    _cleanup_close_ int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 8) < 0) {
        cli_error("cannot listen on %s: %s", listen_arg ? listen_arg : "127.0.0.1:5900",
                  strerror(errno));
        close(first);
        return CLI_EXIT_FAIL;
    }
    socklen_t alen = sizeof(addr);
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
    printf("VNC console of %s on %s:%u (e.g. vncviewer %s::%u); Ctrl-C ends.\n", name, ip,
           ntohs(addr.sin_port), ip, ntohs(addr.sin_port));
    if (password)
        printf("VNC password: %s (one-time: admits viewers that connect within %" PRIu64
               " s; run this again for a new one)\n", password, ttl);
    fflush(stdout);
    signal(SIGCHLD, SIG_IGN); /* the viewers' relays reap themselves */
    for (;;) {
        int client = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            cli_error("accepting a VNC viewer failed: %s", strerror(errno));
            if (first >= 0)
                close(first);
            return CLI_EXIT_FAIL;
        }
        if (expires && vo_now_ms() >= expires) {
            /* The password admits nobody any more: no stream for a viewer
             * that cannot get in (a port open to the network). */
            close(client);
            if (first >= 0)
                close(first);
            first = -1;
            continue;
        }
        int stream = first;
        size_t pending = first >= 0 ? len - body : 0;
        first = -1;
        if (stream < 0) {
            stream = upgrade_open(path, "vireo-vnc", "VNC", head, &body, &len);
            pending = len - body;
        }
        if (stream < 0) {
            close(client);
            continue; /* reported; the VM may come back */
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            if (pending == 0 || write_all(client, head + body, pending) == 0)
                pump(client, stream, expires);
            _exit(0);
        }
        if (pid < 0)
            cli_error("cannot serve a VNC viewer: %s", strerror(errno));
        close(client);
        close(stream);
    }
}

static int console_run(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *listen_arg = NULL, *ttl_arg = NULL;
    bool log = false, vnc = false;
    const CliOption opts[] = { { "--log", NULL, &log }, { "--vnc", NULL, &vnc },
                               { "--listen", &listen_arg, NULL },
                               { "--password-ttl", &ttl_arg, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if ((listen_arg || ttl_arg) && !vnc)
        return cli_usage_error("console", listen_arg ? "--listen goes with --vnc"
                                                     : "--password-ttl goes with --vnc");
    if (log && vnc)
        return cli_usage_error("console", "--log and --vnc contradict each other");
    if (vnc)
        return console_vnc(name, listen_arg, ttl_arg);
    return log ? console_log(name) : console_attach(name);
}

static const CliCommand console_commands[] = {
    { "console", NULL, "NAME",
      "[--log] [--vnc [--listen 127.0.0.1:5900] [--password-ttl SECONDS]]",
      "Attach to a running VM's serial console (or offer its screen over VNC).",
      "Options:\n"
      "  --log                 print what the console has shown so far (last ~1 MiB)\n"
      "                        instead of attaching\n"
      "  --vnc                 the graphical console of a VM with a display (vm create\n"
      "                        --display vga): listen on a local TCP port and relay\n"
      "                        each VNC viewer that connects to the VM's VNC server\n"
      "                        (through vireod); runs until Ctrl-C\n"
      "  --listen ADDR:PORT    where --vnc listens (default 127.0.0.1:5900; port 0:\n"
      "                        any free one, printed). On loopback (127.0.0.0/8)\n"
      "                        viewers need no password; on any other address\n"
      "                        (0.0.0.0: all) vireod sets a one-time VNC password,\n"
      "                        printed once, that viewers must give (VNC\n"
      "                        authentication; the stream is not encrypted: prefer\n"
      "                        an SSH tunnel on untrusted networks)\n"
      "  --password-ttl SECONDS  off loopback: how long the password admits new\n"
      "                        viewers (5-3600, default 60); those connected stay,\n"
      "                        later ones and those that did not give it in time\n"
      "                        are disconnected. A password asked for the same VM\n"
      "                        later (by anyone) replaces it\n"
      "\n"
      "Ctrl-] detaches. On a terminal, input is passed through raw. When input is not\n"
      "a terminal it is sent as is; at its end, output is shown for one more second.\n"
      "\nExamples:\n"
      "  vireo console web1\n"
      "  echo 'uname -a' | vireo console web1\n"
      "  vireo console web1 --log | tail\n"
      "  vireo console inst --vnc --listen 127.0.0.1:5901   (then: vncviewer :1)\n"
      "  vireo console inst --vnc --listen 0.0.0.0:5901     (prints a one-time password)\n",
      console_run },
};

const CliNoun cli_noun_console = { "console", "a VM's serial console", console_commands,
                                   ELEMENTSOF(console_commands) };
