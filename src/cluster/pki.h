/* pki.h: the cluster's certificates (OpenSSL 3): one cluster CA, one host
 * certificate per host (TLS server and client: vireod's listener, its etcd
 * member, outgoing calls), PEM files written atomically, fingerprints and
 * chain checks. Keys and certificates travel as PEM strings.
 *
 * A joining host does not send a CSR: the host that holds the CA key makes
 * the joiner's key and certificate (vo_pki_host_issue) and hands both over
 * the mutually authenticated TLS connection of the join call, the joiner
 * having checked that server against the CA fingerprint in its token. */
#pragma once

#include <stdbool.h>

#include "util/sha256.h"

/* A certificate and its private key, both PEM. */
typedef struct {
    char *cert_pem;
    char *key_pem;
} VoPkiPair;

/* Frees both strings (the key wiped first); p may be NULL. */
void vo_pki_pair_clear(VoPkiPair *p);

#define VO_PKI_CA_DAYS (10 * 365 + 3)
#define VO_PKI_HOST_DAYS (5 * 365 + 1)

/* A new cluster CA: EC P-256 key, self-signed, CN "vireo cluster <cluster_id>",
 * valid 10 years, CA:TRUE (pathlen 0), keyUsage keyCertSign+cRLSign.
 * 0, -EINVAL (cluster_id not 1-64 letters, digits, -_.) or -EIO/-ENOMEM. */
int vo_pki_ca_make(const char *cluster_id, VoPkiPair *ret_ca);

/* A host certificate signed by ca: new EC P-256 key, CN host_name, SAN
 * IP:address, IP:127.0.0.1, DNS:host_name, extendedKeyUsage serverAuth and
 * clientAuth, keyUsage digitalSignature, 5 years, random 159-bit serial.
 * address is an IPv4 or IPv6 literal; host_name a DNS name (letters, digits,
 * '-', '.', at most 253). -EINVAL on a bad address or name (*ret_error says
 * which), -EKEYREJECTED when ca's key does not match its certificate. */
int vo_pki_host_issue(const VoPkiPair *ca, const char *address, const char *host_name,
                      VoPkiPair *ret_host, char **ret_error);

/* Writes dir/<name>.crt (0644) and dir/<name>.key (0600, never readable by
 * others even for an instant), each by tmp + fsync + rename, then fsyncs
 * dir; the key is written first. dir is made (0700) when missing.
 * p->key_pem may be NULL (only the certificate is written). */
int vo_pki_pair_write(const char *dir, const char *name, const VoPkiPair *p);

/* Reads dir/<name>.crt and dir/<name>.key and checks that both parse and
 * that the key belongs to the certificate: 0, -ENOENT, -EINVAL (not PEM of
 * a certificate / key), -EKEYREJECTED (key of another certificate). With
 * want_key false only the certificate is read (ret->key_pem NULL). */
int vo_pki_pair_load(const char *dir, const char *name, bool want_key, VoPkiPair *ret);

/* SHA-256 of the certificate's DER encoding as 64 lower-case hex digits
 * (what `openssl x509 -noout -fingerprint -sha256` prints, without colons). */
int vo_pki_fingerprint(const char *cert_pem, char ret[VO_SHA256_HEX_LEN + 1]);

/* 0 when cert_pem is signed by the CA in ca_cert_pem and valid now (as a
 * TLS client and server certificate); -EKEYREJECTED with *ret_error saying
 * why not; -EINVAL when either is not a PEM certificate. */
int vo_pki_verify(const char *ca_cert_pem, const char *cert_pem, char **ret_error);
