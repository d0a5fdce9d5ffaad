/* store-etcd-internal.h: what the files of the store's etcd backend
 * (store-etcd.c, store-etcd-call.c, store-etcd-quorum.c,
 * store-etcd-watch.c) share and nothing else uses: the handle and a
 * watch, the quorum they track, and the helpers that were one file's own
 * (static) before store-etcd.c was split, under their names then; each is
 * described where it is defined. */
#pragma once

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "state/store.h"

#define MAX_IDLE_HANDLES 8
/* An answer (or one line of a watch stream) larger than this is refused
 * (-EMSGSIZE): a list halves its page then. */
#define MAX_ANSWER_BYTES (64u << 20)

/* Once a quorum is known lost, a linearizable read is tried every
 * PROBE_EVERY_MS (each waiting at most PROBE_TIMEOUT_MS); reads answer
 * serializable meanwhile. A serializable read connects within
 * LOCAL_CONNECT_MS or tries the next endpoint. */
#define PROBE_EVERY_MS 1000
#define PROBE_TIMEOUT_MS 3000
#define LOCAL_CONNECT_MS 2000

/* What a request needs of etcd: a linearizable read or a write need a
 * quorum (their failure says it is lost; a read's success that it is
 * back), a serializable read only a member; the probe's own read changes
 * nothing itself. */
typedef enum { CALL_READ, CALL_WRITE, CALL_LOCAL, CALL_PROBE } CallKind;

/* Whether the cluster behind some endpoints has a quorum, as its handles
 * last saw it: shared by every handle opened on the same endpoints (a
 * daemon's host and raw handles), so one failure is paid once. */
typedef struct Quorum {
    struct Quorum *next;
    char *endpoints; /* the key: the normalized list */
    int refs;
    int64_t lost_since; /* unix ms; 0: not known lost (under quorum_lock) */
} Quorum;

typedef struct EtcdStore EtcdStore;

struct VoStoreWatch {
    EtcdStore *s;
    struct VoStoreWatch *next; /* in s->watches, under s->lock */
    char *prefix;              /* the caller's prefix (keys are reported with it) */
    char *ekey;                /* the etcd range watched */
    size_t ekey_len;
    char *eend;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Under lock. */
    VoStoreEvent *ev;
    size_t n, cap;
    size_t queued_bytes; /* of ev's strings */
    int64_t next_rev;    /* where the stream (re)starts: after the last event queued */
    bool stream_created; /* etcd answered this stream's create request */
    bool stream_checked; /* ... and its start is known not compacted */
    /* The revision this stream started at while its start is unchecked
     * (0: checked): its changes are not handed out until the check says
     * nothing before them was lost. */
    int64_t unchecked_from;
    bool created;        /* ... and its start revision is known not compacted */
    int connect_error;   /* the first attempt failed (-errno) */
    bool compacted;      /* changes were lost to a compaction */
    bool canceled;       /* the store is closing */
    bool woken;
    bool stop;           /* the thread ends */
    CURLM *multi;        /* set before the watch is linked into s->watches */
    pthread_t thread;
    bool thread_started;
    /* The stream's partial line (the thread's own). */
    char *buf;
    size_t buf_len, buf_cap;
};

struct EtcdStore {
    VoStore base;
    char **endpoints;
    size_t n_endpoints;
    char *prefix; /* "vireo/h/<host-id>/" or "vireo/" */
    char *ca_file, *cert_file, *key_file;
    int timeout_ms;
    pthread_mutex_t lock;
    /* Under lock. */
    int refs; /* the handle, and each watch */
    bool closing;
    size_t endpoint; /* the one tried first */
    CURL *idle[MAX_IDLE_HANDLES];
    size_t n_idle;
    VoStoreWatch *watches;
    int64_t compacted; /* the last compaction revision known */
    Quorum *quorum;
    /* The probe thread (started when the quorum is lost, ends when it is
     * back or the handle closes; etcd_close joins it). Under lock. */
    pthread_cond_t probe_cond;
    pthread_t probe;
    bool probing, probe_joinable;
};

typedef struct {
    char *data;
    size_t len, cap;
    bool too_large; /* refused: beyond MAX_ANSWER_BYTES */
} Buf;

/* store-etcd.c */
int64_t vo_etcd_header_rev(json_t *answer);
json_t *vo_etcd_range_request(const char *key, size_t key_len, const char *end, int64_t rev);
int vo_etcd_probe_rev(EtcdStore *s, int64_t rev);
void vo_etcd_store_unref(EtcdStore *s);

/* store-etcd-call.c */
json_t *vo_etcd_b64_json(const char *data, size_t len);
int64_t vo_etcd_json_i64(json_t *obj, const char *key);
char *vo_etcd_json_b64(json_t *obj, const char *key, size_t *ret_len);
char *vo_etcd_map_key(EtcdStore *s, const char *key);
char *vo_etcd_prefix_end(const char *prefix);
extern pthread_once_t vo_etcd_curl_once;
void vo_etcd_curl_init_once(void);
size_t vo_etcd_buf_write(char *ptr, size_t size, size_t nmemb, void *userdata);
void vo_etcd_setup_handle(EtcdStore *s, CURL *c, const char *url, struct curl_slist *headers);
size_t vo_etcd_endpoint_first(EtcdStore *s);
void vo_etcd_endpoint_failed(EtcdStore *s, size_t e);
int vo_etcd_call_ex(EtcdStore *s, const char *path, json_t *req, CallKind kind, json_t **ret);
int vo_etcd_call(EtcdStore *s, const char *path, json_t *req, json_t **ret);
int vo_etcd_call_write(EtcdStore *s, const char *path, json_t *req, json_t **ret);

/* store-etcd-quorum.c */
void vo_etcd_quorum_seen(EtcdStore *s, CallKind kind, int r);
int vo_etcd_call_read(EtcdStore *s, const char *path, json_t *req, json_t **ret);
int64_t vo_etcd_stale_since(VoStore *base);
int vo_etcd_request_timeout_ms(VoStore *base);
Quorum *vo_etcd_quorum_ref(const char *endpoints);
void vo_etcd_quorum_unref(Quorum *q);

/* store-etcd-watch.c */
void vo_etcd_watch_close(VoStoreWatch *w);
int vo_etcd_watch_open(VoStore *base, const char *prefix, int64_t after_rev,
                    VoStoreWatch **ret);
int vo_etcd_watch_next(VoStoreWatch *w, int timeout_ms, VoStoreEvent **ret_events,
                    size_t *ret_n);
void vo_etcd_watch_wake(VoStoreWatch *w);
