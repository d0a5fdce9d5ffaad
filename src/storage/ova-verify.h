/* ova-verify.h: what an OVA's manifest (.mf) and certificate (.cert) vouch
 * for. The manifest must list every member but itself and the certificate,
 * and name only members; the certificate holds the manifest's signature
 * ("SHA256(NAME.mf)= HEX", as `openssl dgst -sha256 -sign KEY -hex` gives
 * it; SHA1, SHA384 and SHA512 too) and then the signer's certificate in PEM,
 * perhaps followed by intermediate CAs (DMTF DSP0243, "Package signing").
 * The signature is checked with the signer's public key and the signer's
 * certificate against a CA bundle or the system's store. Each refusal names
 * the file it concerns. */
#pragma once

#include <stddef.h>

#include "storage/ova.h"

typedef struct VoOvaCert VoOvaCert;

/* Every member of ova but its manifest and certificate is in names (the
 * manifest's), and every name is a member of ova: 0, or -EINVAL naming the
 * first file that is not. */
int vo_ova_manifest_covers(const VoOva *ova, char *const *names, char **ret_error);

/* Parses a .cert file's text (named cert_name in the errors): 0 with *ret,
 * or -EINVAL saying what is malformed. */
int vo_ova_cert_parse(const char *cert_name, const char *text, size_t len, VoOvaCert **ret,
                      char **ret_error);
void vo_ova_cert_free(VoOvaCert *c);
/* The file c signs (the manifest's name, as the signature line states it). */
const char *vo_ova_cert_signed_file(const VoOvaCert *c);

/* Checks that c signs manifest (its text) and that the signer's certificate
 * chains to a CA of ca_file (a PEM bundle; NULL: the system's store), valid
 * now, and that its extended key usage, when stated, includes code
 * signing. 0 with *ret_signer (the signer's subject, one line), or -EINVAL:
 * a signature that does not match, a signer not trusted (with OpenSSL's
 * reason) or not for code signing, a ca_file without certificates. */
int vo_ova_cert_verify(const VoOvaCert *c, const char *manifest, size_t manifest_len,
                       const char *ca_file, char **ret_signer, char **ret_error);
