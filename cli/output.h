/* output.h: how the CLI prints things: JSON documents, aligned tables,
 * key/value listings and human-friendly sizes and durations. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* The document pretty-printed with sorted keys, then a newline. */
void out_json(FILE *f, const json_t *doc);

typedef struct OutTable OutTable;
OutTable *out_table_new(size_t n_cols, const char *const *headers);
/* Add a row of n_cols cells (copied; NULL prints as "-"). */
void out_table_add(OutTable *t, const char *const *cells);
/* Columns separated by two spaces; the last column is not padded. Widths count
 * UTF-8 characters, not bytes. */
void out_table_print(const OutTable *t, FILE *f);
void out_table_free(OutTable *t);

/* "key:" padded to a common width, then the value ("-" when NULL). */
void out_kv(FILE *f, const char *key, const char *value);

/* Formatting; each returns a newly allocated string. */
char *fmt_duration(int64_t seconds); /* "42s", "5m 3s", "2h 5m", "3d 4h" */
char *fmt_mib(uint64_t mib);         /* "512 MiB", "2 GiB", "1.5 GiB" */
char *fmt_bytes(uint64_t bytes);     /* "100 B", "4.0 KiB", "1.5 GiB" */

/* One event of GET /v1/events (its data: rev, kind, id, action, object) as
 * one line: "42 vm put ID name=web state=running" (an operation shows its
 * kind, state and progress). */
char *fmt_event_line(const json_t *event);

/* JSON field access that tolerates missing or mistyped fields. */
const char *jstr(const json_t *obj, const char *key); /* NULL unless a string */
/* Formats an integer field; NULL when absent or not an integer. */
char *jint_str(const json_t *obj, const char *key);
/* An array field of strings as "a, b, c" (a non-string item: "?"); NULL
 * when absent or not an array. */
char *jstrs_joined(const json_t *obj, const char *key);
