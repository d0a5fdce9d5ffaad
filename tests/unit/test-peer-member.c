/* test-peer-member.c: the peer routes' member check (api/peer-member.h):
 * certificates of the same cluster CA are a member's when their name or
 * address is a member document's, not when they name no member (a
 * certificate made with the CA key for another host) or their host left
 * (its document deleted); DER (as TLS hands it) and PEM; garbage, an
 * empty certificate and no store are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/peer-member.h"
#include "cluster/pki.h"
#include "state/store.h"
#include "util/util.h"

typedef struct {
    char dir[64];
    VoStore *store;
    VoPkiPair ca, h1, h2, intruder;
} Fixture;

static int setup(void **state)
{
    Fixture *f = vo_malloc0(sizeof(*f));
    strcpy(f->dir, "/tmp/vireo-test-peer-member-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    _cleanup_free_ char *path = vo_asprintf("%s/state.db", f->dir);
    if (vo_store_open(path, &f->store) < 0 || vo_pki_ca_make("c1", &f->ca) < 0 ||
        vo_pki_host_issue(&f->ca, "10.0.0.1", "h1", &f->h1, NULL) < 0 ||
        vo_pki_host_issue(&f->ca, "10.0.0.2", "h2", &f->h2, NULL) < 0 ||
        vo_pki_host_issue(&f->ca, "10.0.0.9", "intruder", &f->intruder, NULL) < 0)
        return -1;
    /* h1 by its name and address; h2's document by another name: its
     * address alone matches. */
    if (vo_store_put(f->store, "cluster/members/id1",
                     "{\"id\":\"id1\",\"name\":\"h1\",\"address\":\"10.0.0.1\"}", VO_REV_ANY,
                     NULL) < 0 ||
        vo_store_put(f->store, "cluster/members/id2",
                     "{\"id\":\"id2\",\"name\":\"renamed\",\"address\":\"10.0.0.2\"}",
                     VO_REV_ANY, NULL) < 0 ||
        /* not a member document: ignored */
        vo_store_put(f->store, "cluster/hosts/id9", "{\"name\":\"intruder\"}", VO_REV_ANY,
                     NULL) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    vo_store_close(f->store);
    vo_pki_pair_clear(&f->ca);
    vo_pki_pair_clear(&f->h1);
    vo_pki_pair_clear(&f->h2);
    vo_pki_pair_clear(&f->intruder);
    _cleanup_free_ char *cmd = vo_asprintf("rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static bool is_member_pem(VoStore *s, const char *pem)
{
    gnutls_datum_t d = { .data = (unsigned char *)pem, .size = (unsigned)strlen(pem) };
    return vo_peer_cert_is_member(s, &d, GNUTLS_X509_FMT_PEM);
}

static void test_member_by_name_or_address(void **state)
{
    Fixture *f = *state;
    assert_true(is_member_pem(f->store, f->h1.cert_pem));
    assert_true(is_member_pem(f->store, f->h2.cert_pem));
}

static void test_ca_signed_but_no_member(void **state)
{
    Fixture *f = *state;
    assert_false(is_member_pem(f->store, f->intruder.cert_pem));
    /* the CA's own certificate names no host either */
    assert_false(is_member_pem(f->store, f->ca.cert_pem));
}

static void test_der_as_tls_hands_it(void **state)
{
    Fixture *f = *state;
    gnutls_datum_t pem = { .data = (unsigned char *)f->h1.cert_pem,
                           .size = (unsigned)strlen(f->h1.cert_pem) }, der = { 0 };
    assert_int_equal(gnutls_pem_base64_decode2("CERTIFICATE", &pem, &der), 0);
    assert_true(vo_peer_cert_is_member(f->store, &der, GNUTLS_X509_FMT_DER));
    /* DER read as PEM does not parse: refused */
    assert_false(vo_peer_cert_is_member(f->store, &der, GNUTLS_X509_FMT_PEM));
    gnutls_free(der.data);
}

static void test_a_host_that_left(void **state)
{
    Fixture *f = *state;
    assert_int_equal(vo_store_delete(f->store, "cluster/members/id2", VO_REV_ANY), 0);
    assert_false(is_member_pem(f->store, f->h2.cert_pem));
    assert_true(is_member_pem(f->store, f->h1.cert_pem));
}

static void test_garbage_and_no_store(void **state)
{
    Fixture *f = *state;
    assert_false(is_member_pem(f->store, "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                         "-----END CERTIFICATE-----\n"));
    gnutls_datum_t empty = { 0 };
    assert_false(vo_peer_cert_is_member(f->store, &empty, GNUTLS_X509_FMT_DER));
    assert_false(vo_peer_cert_is_member(f->store, NULL, GNUTLS_X509_FMT_DER));
    assert_false(is_member_pem(NULL, f->h1.cert_pem));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_member_by_name_or_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_signed_but_no_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_der_as_tls_hands_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_host_that_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_and_no_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
