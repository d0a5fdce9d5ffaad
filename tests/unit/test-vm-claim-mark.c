/* test-vm-claim-mark.c: the destination's claim mark in a VM's document
 * (state/vm-claim-mark.c): a marked document keeps everything else and
 * names its migration; only that migration's mark counts (an older
 * migration's mark, a document without one, or no JSON at all is no claim
 * of this migration); a second claim replaces the first's mark. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "state/vm-claim-mark.h"

#define DOC "{\"spec\":{\"name\":\"ctr\"},\"status\":{\"state\":\"running\"}}"

static void test_a_marked_document_names_its_migration(void **state)
{
    (void)state;
    char *marked = vo_vm_doc_claim_mark(DOC, "m1");
    assert_non_null(marked);
    json_t *doc = json_loads(marked, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, VO_VM_CLAIMED_IN_FIELD)), "m1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "spec"), "name")),
                        "ctr");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(doc, "status"), "state")), "running");
    json_decref(doc);
    assert_true(vo_vm_doc_claimed_in(marked, "m1"));
    assert_false(vo_vm_doc_claimed_in(marked, "m2"));
    free(marked);
}

static void test_only_this_migrations_mark_is_a_claim(void **state)
{
    (void)state;
    assert_false(vo_vm_doc_claimed_in(DOC, "m1"));
    assert_false(vo_vm_doc_claimed_in("not json", "m1"));
    assert_false(vo_vm_doc_claimed_in("{\"claimed_in\":7}", "m1"));
    assert_false(vo_vm_doc_claimed_in(DOC, NULL));
    assert_null(vo_vm_doc_claim_mark("not json", "m1"));
    assert_null(vo_vm_doc_claim_mark("[1]", "m1"));
    /* A later migration's claim replaces the mark. */
    char *first = vo_vm_doc_claim_mark(DOC, "m1");
    char *second = vo_vm_doc_claim_mark(first, "m2");
    assert_true(vo_vm_doc_claimed_in(second, "m2"));
    assert_false(vo_vm_doc_claimed_in(second, "m1"));
    free(first);
    free(second);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_marked_document_names_its_migration),
        cmocka_unit_test(test_only_this_migrations_mark_is_a_claim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
