/* peer-member.c: a TLS client certificate checked against the cluster's
 * member documents (peer-member.h). */
#include "api/peer-member.h"

#include <jansson.h>

typedef struct {
    gnutls_x509_crt_t crt;
    bool found;
} MemberMatch;

/* A member document whose name or address the certificate is for. */
static int match_member(const char *key, const char *value, int64_t rev, void *userdata)
{
    (void)key;
    (void)rev;
    MemberMatch *m = userdata;
    json_t *doc = json_loads(value, 0, NULL);
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *address = json_string_value(json_object_get(doc, "address"));
    if ((name && name[0] && gnutls_x509_crt_check_hostname(m->crt, name)) ||
        (address && address[0] && gnutls_x509_crt_check_hostname(m->crt, address)))
        m->found = true;
    json_decref(doc);
    return m->found ? 1 : 0;
}

bool vo_peer_cert_is_member(VoStore *store, const gnutls_datum_t *cert,
                            gnutls_x509_crt_fmt_t fmt)
{
    if (!store || !cert || !cert->data || !cert->size)
        return false;
    MemberMatch m = { 0 };
    if (gnutls_x509_crt_init(&m.crt) < 0)
        return false;
    if (gnutls_x509_crt_import(m.crt, cert, fmt) >= 0 &&
        vo_store_list(store, "cluster/members/", match_member, &m) < 0)
        m.found = false;
    gnutls_x509_crt_deinit(m.crt);
    return m.found;
}
