/* util.h: small shared helpers: cleanup attributes, ownership transfer,
 * logging and negative-errno conventions used across vireo. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void vo_freep(void *p) { free(*(void **)p); }
static inline void vo_closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void vo_fclosep(FILE **f) { if (*f) fclose(*f); }
void vo_strv_free(char **v);
static inline void vo_strv_freep(char ***v) { vo_strv_free(*v); }

#define _cleanup_free_ _cleanup_(vo_freep)
#define _cleanup_close_ _cleanup_(vo_closep)
#define _cleanup_fclose_ _cleanup_(vo_fclosep)
#define _cleanup_strv_ _cleanup_(vo_strv_freep)

/* Hand ownership out of a cleanup-managed variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

typedef enum { VO_LOG_DEBUG, VO_LOG_INFO, VO_LOG_WARN, VO_LOG_ERROR } VoLogLevel;

void vo_log_set_level(VoLogLevel level);
void vo_log(VoLogLevel level, const char *fmt, ...) _printf_(2, 3);
/* msg with control bytes as \xNN, cut to fit out (size >= 1). */
void vo_log_escape(const char *msg, char *out, size_t size);
#define log_debug(...) vo_log(VO_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) vo_log(VO_LOG_INFO, __VA_ARGS__)
#define log_warn(...) vo_log(VO_LOG_WARN, __VA_ARGS__)
#define log_error(...) vo_log(VO_LOG_ERROR, __VA_ARGS__)

/* Sets *ret_error (when ret_error is not NULL) to the formatted message and
 * returns r: `return vo_error_set(ret_error, -EINVAL, "x: %s is bad", x);` */
int vo_error_set(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
/* If-Match: 0 when expected is 0 (none was given) or equals the object's
 * revision rev, else -VO_EIFMATCH (HTTP 412) with *ret_error naming what
 * ("image 'x'") and both revisions. */
int vo_if_match_check(int64_t expected, int64_t rev, const char *what, char **ret_error);
/* The words of an -EAGAIN for the API: the store backend's own meaning of
 * it (store_message: "database is busy", "cluster has no quorum") in place
 * of strerror(EAGAIN) in message (or as the message when it is NULL); a
 * message that words its EAGAIN itself is kept. Returns a malloc'd string. */
char *vo_error_unavailable_message(const char *message, const char *store_message);
/* The same for -ETIMEDOUT (VO_STORE_EUNKNOWN: a write's outcome unknown):
 * store_message ("cluster has no quorum or did not answer in time: the change may or
 * may not have been made; ...") in place of strerror(ETIMEDOUT). */
char *vo_error_unknown_message(const char *message, const char *store_message);

/* Allocation that aborts on OOM: vireo does not try to limp on without memory. */
void *vo_malloc0(size_t n);
char *vo_strdup(const char *s);
char *vo_asprintf(const char *fmt, ...) _printf_(1, 2);
char *vo_vasprintf(const char *fmt, va_list ap) _printf_(1, 0);

/* strv: NULL-terminated vectors of owned strings. */
size_t vo_strv_len(char *const *v);
int vo_strv_push(char ***v, char *s); /* takes s */
int vo_strv_pushf(char ***v, const char *fmt, ...) _printf_(2, 3);
/* The strings of v with sep between them (malloc'd; "" for none). */
char *vo_strv_join(char *const *v, const char *sep);

/* Size strings: "512", "512M", "2G", "1T" (binary units). Returns 0 or -EINVAL/-ERANGE. */
int vo_parse_size(const char *s, uint64_t *ret_bytes);
/* The unit a bare number means (1 for bytes, 1<<20 for MiB). */
int vo_parse_size_default_unit(const char *s, uint64_t bare_unit, uint64_t *ret_bytes);

/* Monotonic and wall clock in milliseconds. */
int64_t vo_now_ms(void);
int64_t vo_now_us(void); /* monotonic, microseconds (timings in logs) */
int64_t vo_wall_ms(void);
/* clock (CLOCK_MONOTONIC, CLOCK_REALTIME) now plus ms (>= 0), normalised:
 * the deadline of a pthread_cond_timedwait on a condition of that clock. */
struct timespec vo_deadline_ms(clockid_t clock, int64_t ms);

/* Files. */
int vo_mkdir_p(const char *path, mode_t mode);
int vo_read_file(const char *path, size_t max, char **ret, size_t *ret_len);
/* Writes a temp file beside path, fsyncs it and renames it over path. */
int vo_write_file_atomic(const char *path, const char *data, size_t len);
/* The same without the fsync, for files of the run dir that do not outlive
 * a boot (a process restart needs only the rename), and for a log a power
 * cut may cost (a migrated VM's console log): an fsync behind
 * a loaded disk's journal can take seconds, which a once-a-second writer
 * such as the fence's RUN/fence.state, or a guest paused for its
 * migration's switch, cannot wait for. */
int vo_write_run_file_atomic(const char *path, const char *data, size_t len);
int vo_rm_rf(const char *path);
