/* peer-member.h: whether a TLS client certificate is a cluster member's,
 * the check every peer-only route makes (vo_request_from_member, http.h,
 * uses it). The listener already checked the cluster CA signed the
 * certificate; this says whether it names a host that is a member now (a
 * host that left, or a certificate made elsewhere with the CA key, is
 * not). */
#pragma once

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>

#include "state/store.h"

/* True when cert (fmt: DER as TLS hands it, or PEM) has a CN or SAN (DNS
 * or IP) for the "name" or "address" of a document under cluster/members/
 * of store (the raw cluster handle). False on a cert that does not parse,
 * no store, or a store that cannot be read. */
bool vo_peer_cert_is_member(VoStore *store, const gnutls_datum_t *cert,
                            gnutls_x509_crt_fmt_t fmt);
