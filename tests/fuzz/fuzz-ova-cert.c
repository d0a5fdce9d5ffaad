/* fuzz-ova-cert.c: libFuzzer target for an OVA's certificate file (.cert,
 * storage/ova-verify.c): its signature line and PEM certificates parsed,
 * then the signature checked over a fixed manifest and the signer against
 * the system's store. What parses must name the file it signs and hold a
 * certificate; a refusal must say why; nothing else may happen (the seeds
 * hold signatures that match, so the chain check runs too). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "storage/ova-verify.h"

/* What the seeds sign (with an EC key of a self-signed CA, and of a
 * certificate it issued: openssl req, x509 -req, dgst -sha256 -sign). */
static const char MANIFEST[] = "SHA256(vm.ovf)= "
                               "0000000000000000000000000000000000000000000000000000000000000000\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VoOvaCert *c = NULL;
    char *error = NULL;
    int r = vo_ova_cert_parse("vm.cert", (const char *)data, size, &c, &error);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error && !c && strstr(error, "'vm.cert'"));
        free(error);
        return 0;
    }
    FUZZ_CHECK(!error && c && vo_ova_cert_signed_file(c));
    char *signer = NULL;
    r = vo_ova_cert_verify(c, MANIFEST, strlen(MANIFEST), NULL, &signer, &error);
    FUZZ_CHECK(r == 0 ? signer && !error : r == -EINVAL && error && !signer);
    free(signer);
    free(error);
    vo_ova_cert_free(c);
    return 0;
}
