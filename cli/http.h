/* http.h: the CLI's HTTP client for vireod's REST API (libcurl over the Unix
 * socket) and the printing of API errors. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/sse.h"

typedef struct {
    long status;
    char *body; /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    int64_t etag; /* the ETag header's revision ("42"), 0 when none */
    int64_t oldest_rev; /* a 410 from GET /v1/events: Vireo-Oldest-Revision, 0 when none */
    char stale[64]; /* Vireo-Stale: the answer may be out of date ("" when not) */
} HttpReply;

void http_reply_done(HttpReply *r);

/* One request to vireod: method, path ("/v1/..."), optional JSON body. Returns
 * 0 with whatever HTTP status came back, or a negative errno after printing why
 * vireod could not be talked to. */
int http_request(const char *method, const char *path, const json_t *body, HttpReply *ret);

/* Long transfers of volume data, with no overall time limit (only one for a
 * stall), a progress line "LABEL: 40% 12 MiB of 30 MiB" on a terminal after a
 * second, and Ctrl-C stopping them (-EINTR, nothing printed). file names the
 * local file in messages. Other failures are printed and return a negative
 * errno; otherwise 0 with whatever HTTP status came back. */

/* PUT path with the contents of fd (size bytes, or -1: unknown, sent chunked)
 * as an application/octet-stream body; the answer in *ret. */
int http_upload(const char *path, int fd, int64_t size, const char *file, const char *label,
                HttpReply *ret);
/* GET path: a 2xx answer's body is written to fd (runs of zeros as holes) and
 * its length stored in *ret_size; any other answer is collected in *ret. */
int http_download(const char *path, int fd, const char *file, const char *label, HttpReply *ret,
                  uint64_t *ret_size);

/* Requests after this wait up to seconds (at least the default 60 s) for
 * vireod's answer. */
void http_set_request_timeout(long seconds);

/* A request whose successful (2xx) answer is a JSON document, returned in
 * *ret (may be NULL to ignore it). An API error is printed as
 * "vireo: MESSAGE (CODE)". Returns 0, or a negative errno after printing. */
int api_call(const char *method, const char *path, const json_t *body, json_t **ret);

struct CliCommand;
/* The common start of a read command that takes no options: parse argv, GET
 * path, and under --output json print the document. Returns true with
 * *ret_doc for the caller to print as a table; false when it is done, with
 * the exit status in *ret_exit. */
/* GET path for display: false with *ret_exit when it failed or was printed
 * as JSON (--output json); true with *ret_doc to print as a table. */
bool api_read_path(const char *path, json_t **ret_doc, int *ret_exit);
bool api_read_command(const struct CliCommand *cmd, int argc, char **argv, const char *path,
                      json_t **ret_doc, int *ret_exit);
/* The same for a part of one VM (`vm disk list VM`, `snapshot list VM`):
 * parses VM, GETs /v1/vms/VM/WHAT. */
bool api_read_vm_part(const struct CliCommand *cmd, int argc, char **argv, const char *what,
                      const char **ret_vm, json_t **ret_doc, int *ret_exit);
/* A delete that answers at once (no task): DELETE /v1/COLLECTION/NAME, the
 * one positional argument. Returns the exit status. */
int api_delete_command(const struct CliCommand *cmd, int argc, char **argv,
                       const char *collection);
/* The same for path (a query added), printed as NAME: DELETE path. */
int api_delete_path(const char *path, const char *name);
/* Prints doc (taken) as JSON under --output json, else with show; returns
 * the exit status (OK). */
int api_print_doc(json_t *doc, void (*show)(const json_t *doc));
/* `NOUN show NAME`: GET /v1/COLLECTION/NAME, printed by api_print_doc. */
int api_show_command(const struct CliCommand *cmd, int argc, char **argv,
                     const char *collection, void (*show)(const json_t *doc));

/* Print the error of a non-2xx answer (JSON error body, or a generic line). */
void api_print_error(long status, const char *body, size_t len);

/* Print "cannot reach vireod at PATH: ...; is vireod running?". */
void api_print_unreachable(int err);

/* s escaped for a URL path segment or query value. */
char *api_escape(const char *s);
/* "/v1/<collection>/<escaped id><suffix>"; suffix may be NULL. */
char *api_path(const char *collection, const char *id, const char *suffix);
/* "/v1/pools/<pool>/volumes/<name><suffix>", escaped; suffix may be NULL. */
char *api_volume_path(const char *pool, const char *name, const char *suffix);

/* GET path as a Server-Sent Events stream (GET /v1/events...): with
 * last_event_id (may be NULL) as Last-Event-ID; every event goes to fn (see
 * util/sse.h) until fn returns non-zero (-> 1), the stream ends (-> 0), or
 * Ctrl-C (-> -EINTR, nothing printed). A non-2xx answer is returned in *ret
 * (status and body; no events) with 0. Other failures print why and return a
 * negative errno. No overall time limit: vireod sends a heartbeat every 15 s,
 * so a minute without a byte is a stall. idle_ms > 0: no event (heartbeats
 * do not count) for that long ends the stream with -ETIMEDOUT, nothing
 * printed (the caller looks again another way). */
int http_stream_events(const char *path, const char *last_event_id, int idle_ms,
                       VoSseEventFn fn, void *userdata, HttpReply *ret);

void http_global_init(void);
void http_global_done(void);
