/* wait.c: waits for a task: reads it, then follows its changes on vireod's
 * event stream (GET /v1/events, from the revision read), polling GET
 * /v1/tasks/ID only when vireod has no events for it; draws a one-line
 * progress indicator on a terminal, and stops waiting (not the task) on Ctrl-C. */
#include "wait.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "cli.h"
#include "http.h"
#include "output.h"

#define PROGRESS_AFTER_MS 1000
/* Following a task on the event stream, this long without an event of it:
 * GET it again (it may have ended while its document could not be written). */
#define WAIT_REREAD_MS 30000

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    interrupted = 1;
}

/* The warnings already printed (an import's plan, before its task ran). */
static json_t *shown_warnings;

void task_warnings_shown(const json_t *warnings)
{
    if (!shown_warnings)
        shown_warnings = json_array();
    size_t i;
    json_t *w;
    json_array_foreach(warnings, i, w)
        if (json_is_string(w))
            json_array_append_new(shown_warnings, json_string(json_string_value(w)));
}

static bool warning_shown(const char *text)
{
    size_t i;
    json_t *w;
    json_array_foreach(shown_warnings, i, w)
        if (!strcmp(json_string_value(w), text))
            return true;
    return false;
}

/* An ended task's result.warnings (what it did otherwise than asked: an
 * import's NIC given a new MAC because another host took its MAC, say),
 * each on stderr once. The JSON output carries them itself. */
static void print_task_warnings(const json_t *task)
{
    if (cli_globals.json)
        return;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(json_object_get(task, "result"), "warnings"), i, w) {
        const char *text = json_string_value(w);
        if (text && !warning_shown(text)) {
            fprintf(stderr, "warning: %s\n", text);
            json_t *one = json_pack("[s]", text);
            task_warnings_shown(one);
            json_decref(one);
        }
    }
}

static bool task_ended(const json_t *task)
{
    const char *state = jstr(task, "state");
    return state && (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                     strcmp(state, "cancelled") == 0);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL); /* an early wake-up by SIGINT is what we want */
}

/* Draw the progress line unless it is the one on screen (kept in last).
 * Returns whether something is on screen. */
static bool progress_draw(const json_t *task, char *last, size_t last_size)
{
    char line[512];
    json_t *p = json_object_get(task, "progress");
    const char *message = jstr(task, "message");
    int n = snprintf(line, sizeof(line), "%s %s: ", jstr(task, "kind") ? jstr(task, "kind") : "task",
                     jstr(task, "target") ? jstr(task, "target") : "");
    if (n < 0)
        return last[0] != '\0';
    if (json_is_integer(p) && (size_t)n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%3" JSON_INTEGER_FORMAT "%% ",
                      json_integer_value(p));
    if (message && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, "%s", message);
    /* Keep it on one line: never reach the last column. */
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_col <= sizeof(line))
        line[ws.ws_col - 1] = '\0';
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    if (strcmp(line, last) == 0)
        return true;
    snprintf(last, last_size, "%s", line);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    return true;
}

static void progress_clear(void)
{
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* What a wait shares between the event stream and the polling. */
typedef struct {
    const char *id;
    json_t *current; /* the newest task document */
    bool ended;
    bool gone;       /* the operation's document was deleted */
    bool tty, drawn;
    int64_t start;
    char last_line[512];
} Waiting;

static void waiting_update(Waiting *w, json_t *task)
{
    json_decref(w->current);
    w->current = task;
    w->ended = task_ended(task);
    if (!w->ended && w->tty && vo_now_ms() - w->start >= PROGRESS_AFTER_MS)
        w->drawn = progress_draw(task, w->last_line, sizeof(w->last_line)) || w->drawn;
}

/* An event of the operation: its document, as GET /v1/tasks/ID shows it. */
static int on_task_event(const VoSseEvent *ev, void *userdata)
{
    Waiting *w = userdata;
    if (!strcmp(ev->event, "error"))
        return 2; /* the stream fell behind: read the task again */
    json_t *data = json_loads(ev->data, 0, NULL);
    if (!data)
        return 0;
    const char *action = jstr(data, "action");
    json_t *object = json_object_get(data, "object");
    if (action && !strcmp(action, "delete"))
        w->gone = true;
    else if (json_is_object(object))
        waiting_update(w, json_incref(object));
    json_decref(data);
    return w->ended || w->gone ? 1 : 0;
}

/* Reads the task (with its revision), then follows its changes on the event
 * stream from that revision: no change is missed between the two, and the
 * waiting ends the moment vireod commits the last one. Returns 0 when the
 * task ended (w->current), -ENOTSUP when this vireod has no event stream or
 * keeps this task outside the store (poll instead), -EINTR on Ctrl-C, or
 * another negative errno (printed). */
static int follow_task_events(Waiting *w, const char *path)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        HttpReply reply;
        int r = http_request("GET", path, NULL, &reply);
        if (r < 0)
            return r;
        if (reply.status != 200) {
            api_print_error(reply.status, reply.body, reply.len);
            http_reply_done(&reply);
            return -EIO;
        }
        json_t *task = json_loadb(reply.body, reply.len, 0, NULL);
        int64_t rev = reply.etag;
        http_reply_done(&reply);
        if (!task) {
            cli_error("vireod's answer to GET %s is not JSON", path);
            return -EBADMSG;
        }
        waiting_update(w, task);
        if (w->ended)
            return 0;
        if (rev <= 0)
            return -ENOTSUP; /* not an operation document: no events to follow */

        _cleanup_free_ char *id = api_escape(w->id);
        _cleanup_free_ char *events = vo_asprintf("/v1/events?kind=operation&object=%s", id);
        char last[32];
        snprintf(last, sizeof(last), "%lld", (long long)rev);
        w->gone = false;
        /* No event of the task for a while: read it again (its end may
         * have been written late, after a failed write: jobs/tasks.h). */
        r = http_stream_events(events, last, WAIT_REREAD_MS, on_task_event, w, &reply);
        if (r == -ETIMEDOUT) {
            attempt = -1; /* not a failure: as long as the task runs */
            continue;
        }
        if (r >= 0 && (reply.status < 200 || reply.status > 299)) {
            bool compacted = reply.status == 410;
            http_reply_done(&reply);
            if (compacted)
                continue; /* fell behind the change log: read it again */
            /* 404: an older vireod without the route; 503: over the
             * connection limits, say. Polling says what goes wrong. */
            return -ENOTSUP;
        }
        http_reply_done(&reply);
        if (r < 0)
            return r;
        if (w->ended)
            return 0;
        /* Deleted, fell behind (an error event), or the stream ended (vireod
         * stopping): read the task again, which says what became of it. */
        if (r == 0)
            return -ENOTSUP;
    }
    return -ENOTSUP;
}

/* The old way, for a vireod without events: GET the task every 50 ms (100 ms
 * after the first second). Returns 0 when it ended, -EINTR, or an errno. */
static int poll_task(Waiting *w, const char *path)
{
    for (;;) {
        int64_t elapsed = vo_now_ms() - w->start;
        sleep_ms(elapsed < 1000 ? 50 : 100);
        if (interrupted)
            return -EINTR;
        json_t *t = NULL;
        int r = api_call("GET", path, NULL, &t);
        if (r < 0)
            return r;
        waiting_update(w, t);
        if (w->ended)
            return 0;
        if (interrupted)
            return -EINTR;
    }
}

int task_wait(const json_t *task, json_t **ret_final)
{
    const char *id = jstr(task, "id");
    if (!id) {
        cli_error("vireod's answer names no task");
        return -EBADMSG;
    }
    if (task_ended(task)) {
        print_task_warnings(task);
        *ret_final = json_deep_copy(task);
        return 0;
    }

    _cleanup_free_ char *path = api_path("tasks", id, NULL);
    _cleanup_free_ char *id_copy = vo_strdup(id);
    _cleanup_free_ char *what = vo_asprintf("%s %s", jstr(task, "kind") ? jstr(task, "kind") : "task",
                                           jstr(task, "target") ? jstr(task, "target") : "");
    Waiting w = { .id = id_copy, .tty = isatty(STDERR_FILENO), .start = vo_now_ms() };

    /* Ctrl-C ends the waiting, not the task (unless SIGINT is ignored anyway). */
    struct sigaction sa = { .sa_handler = on_sigint }, old;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, NULL, &old);
    if (old.sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);

    int r = getenv("VIREO_WAIT_POLL") ? -ENOTSUP : follow_task_events(&w, path);
    if (r == -EINTR)
        interrupted = 1;
    else if (r == -ENOTSUP)
        r = poll_task(&w, path);
    sigaction(SIGINT, &old, NULL);
    if (w.drawn)
        progress_clear();

    if (interrupted || r == -EINTR) {
        json_decref(w.current);
        cli_error("stopped waiting; task %s (%s) keeps running: see 'vireo task show %s'", id_copy,
                  what, id_copy);
        return -EINTR;
    }
    if (r < 0) {
        json_decref(w.current);
        cli_error("lost track of task %s (%s): see 'vireo task show %s'", id_copy, what, id_copy);
        return r;
    }
    print_task_warnings(w.current);
    *ret_final = w.current;
    return 0;
}

int task_outcome(const json_t *task, const char *subject, json_t **ret_final)
{
    *ret_final = NULL;
    int r = task_wait(task, ret_final);
    if (r == -EINTR)
        return CLI_EXIT_INTERRUPTED;
    if (r < 0)
        return CLI_EXIT_FAIL;
    const json_t *final = *ret_final;
    if (jstr(final, "state") && strcmp(jstr(final, "state"), "succeeded") == 0)
        return CLI_EXIT_OK;
    if (jstr(final, "state") && strcmp(jstr(final, "state"), "cancelled") == 0) {
        cli_error("%s %s was cancelled", jstr(final, "kind") ? jstr(final, "kind") : "task",
                  subject);
        return CLI_EXIT_FAIL;
    }
    json_t *err = json_object_get(final, "error");
    const char *message = jstr(err, "message");
    const char *code = jstr(err, "code");
    if (message && code)
        cli_error("%s (%s)", message, code);
    else if (message)
        cli_error("%s", message);
    else
        cli_error("%s %s failed", jstr(final, "kind") ? jstr(final, "kind") : "task", subject);
    return CLI_EXIT_FAIL;
}

int run_task(const json_t *doc, const char *what, bool async, const char *subject,
             const char *done_word)
{
    json_t *task = json_object_get(doc, "task");
    if (!json_is_object(task) || !jstr(task, "id")) {
        cli_error("vireod's answer to %s has no task", what);
        return CLI_EXIT_FAIL;
    }
    if (async) {
        if (cli_globals.json)
            out_json(stdout, task);
        else
            printf("%s\n", jstr(task, "id"));
        return CLI_EXIT_OK;
    }

    json_t *final = NULL;
    int exit_status = task_outcome(task, subject, &final);
    if (!final)
        return exit_status;
    if (cli_globals.json)
        out_json(stdout, final);
    else if (exit_status == CLI_EXIT_OK && done_word)
        printf("%s: %s\n", subject, done_word);
    json_decref(final);
    return exit_status;
}

int run_action(const char *method, const char *path, const json_t *body, bool async,
               const char *subject, const char *done_word)
{
    json_t *doc = NULL;
    if (api_call(method, path, body, &doc) < 0)
        return CLI_EXIT_FAIL;
    _cleanup_free_ char *what = vo_asprintf("%s %s", method, path);
    int r = run_task(doc, what, async, subject, done_word);
    json_decref(doc);
    return r;
}
