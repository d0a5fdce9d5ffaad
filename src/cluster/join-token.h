/* join-token.h: the token `vireo cluster init` prints for `vireo cluster
 * join ADDRESS:PORT --token TOKEN`. TOKEN is the base64url (no padding) of
 * the compact JSON
 *   {"v":1,"cluster":ID,"id":TOKEN_ID,"secret":HEX64,"expires":UNIX_S,
 *    "ca_sha256":HEX64,"address":"ADDR:PORT"}
 * The secret is 32 random bytes; the cluster keeps only its SHA-256
 * (cluster/join-tokens/<id> = vo_join_token_record()) under a lease of the
 * token's TTL. ca_sha256 is the CA certificate's fingerprint
 * (vo_pki_fingerprint): the joiner checks the server against it. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#define VO_JOIN_TOKEN_VERSION 1
#define VO_JOIN_TOKEN_HEX_LEN 64
#define VO_JOIN_TOKEN_MAX_LEN 2048     /* characters of an encoded token */
#define VO_JOIN_TOKEN_DEFAULT_TTL_S 3600

typedef struct {
    char *cluster;                             /* cluster id */
    char *id;                                  /* token id: 16 hex digits */
    char secret[VO_JOIN_TOKEN_HEX_LEN + 1];    /* 64 hex digits */
    int64_t expires;                           /* unix seconds */
    char ca_sha256[VO_JOIN_TOKEN_HEX_LEN + 1]; /* 64 lower-case hex digits */
    char *address;                             /* "ADDR:PORT" of a vireod to join through */
} VoJoinToken;

/* Frees the strings and wipes the secret; t may be NULL. */
void vo_join_token_clear(VoJoinToken *t);

/* A new token with a random id and secret expiring at now_s + ttl_s.
 * -EINVAL (with *ret_error) on an empty or over-long cluster id or address,
 * a ca_sha256 that is not 64 hex digits, or ttl_s <= 0. */
int vo_join_token_make(const char *cluster, const char *ca_sha256, const char *address,
                       int64_t ttl_s, int64_t now_s, VoJoinToken *ret, char **ret_error);

/* The token as the text to print (base64url of the compact JSON). */
char *vo_join_token_encode(const VoJoinToken *t);

/* Parses text strictly. Errors, each with a message for the CLI:
 *   -EILSEQ   not base64url ("token is not a vireo join token ...")
 *   -EBADMSG  not a JSON object ("token is not a vireo join token ...")
 *   -EPROTONOSUPPORT  "v" other than 1
 *   -EINVAL   a field missing, of the wrong type or form, or unknown
 *   -EKEYEXPIRED  "token expired at 2026-01-02T03:04:05Z"
 * now_s is the current unix time (an argument so tests are exact). */
int vo_join_token_parse(const char *text, int64_t now_s, VoJoinToken *ret, char **ret_error);

/* SHA-256 of the secret's hex text, as hex: what the cluster stores. */
void vo_join_token_secret_hash(const char *secret, char ret[VO_JOIN_TOKEN_HEX_LEN + 1]);

/* The document stored at cluster/join-tokens/<id>: {"secret_sha256","expires"}. */
json_t *vo_join_token_record(const VoJoinToken *t);

/* Checks a presented token against its stored record: 0 when the secret's
 * hash equals the record's secret_sha256 (compared in constant time) and
 * the record has not expired at now_s; -EACCES "join token is not valid"
 * otherwise, -EKEYEXPIRED when only its expiry fails, -EINVAL when record
 * is malformed. */
int vo_join_token_check(const VoJoinToken *t, const json_t *record, int64_t now_s, char **ret_error);
