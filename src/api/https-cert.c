/* https-cert.c: the certificate of the HTTPS listener for users on a host
 * in no cluster, made at first start under STATE/https and kept (the
 * operator may replace https.crt and https.key with their own). */
#include <string.h>
#include <unistd.h>

#include "api/http.h"
#include "cluster/pki.h"
#include "util/util.h"

int vo_api_https_cert(VoDaemon *d, const char *address, char **ret_cert, char **ret_key,
                      char **ret_error)
{
    _cleanup_free_ char *dir = vo_asprintf("%s/https", d->state_dir);
    char *cert = vo_asprintf("%s/https.crt", dir), *key = vo_asprintf("%s/https.key", dir);
    if (access(cert, F_OK) == 0 || access(key, F_OK) == 0) {
        *ret_cert = cert;
        *ret_key = key;
        return 0; /* the operator's, or the one made before: checked as it loads */
    }
    char host[256] = "localhost";
    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
    /* A wildcard or IPv6 listener: the certificate names the loopback. */
    const char *ip = address && strcmp(address, "0.0.0.0") && !strchr(address, ':') ? address
                                                                                    : "127.0.0.1";
    VoPkiPair ca = { 0 }, pair = { 0 };
    _cleanup_free_ char *error = NULL;
    int r = vo_pki_ca_make("https-local", &ca);
    if (r == 0)
        r = vo_pki_host_issue(&ca, ip, host, &pair, &error);
    if (r == 0) {
        free(ca.key_pem); /* it signs nothing else: not kept */
        ca.key_pem = NULL;
        r = vo_pki_pair_write(dir, "ca", &ca);
    }
    if (r == 0)
        r = vo_pki_pair_write(dir, "https", &pair);
    vo_pki_pair_clear(&ca);
    vo_pki_pair_clear(&pair);
    if (r < 0) {
        free(cert);
        free(key);
        return vo_error_set(ret_error, r, "cannot make the HTTPS certificate in %s: %s", dir,
                            error ? error : strerror(-r));
    }
    log_info("made a self-signed HTTPS certificate: %s (its CA: %s/ca.crt)", cert, dir);
    *ret_cert = cert;
    *ret_key = key;
    return 0;
}
