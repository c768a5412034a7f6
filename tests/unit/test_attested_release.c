/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kms:RecipientAttestation:* condition keys (src/kms/attested_release.c). The verification and
 * the answers are tested end to end with real peers in tests/integration/kms_recipient.py
 * and enclave_kms.py.
 */
#include <string.h>

#include "attested_release.h"
#include "test_util.h"

static void fill(kms_recipient *r)
{
    kms_recipient_init(r);
    r->present = true;
    r->doc.pcr_mask = 1u << 0 | 1u << 15;
    memset(r->pcr_hex[0], 'a', 96);
    memset(r->pcr_hex[15], 'f', 96);
}

static void test_lookup(void **state)
{
    (void)state;
    kms_recipient r;
    fill(&r);
    kms_cond_values v;
    memset(&v, 0, sizeof(v));
    assert_true(kms_recipient_lookup(&r, "kms:RecipientAttestation:PCR0", &v));
    assert_true(v.present);
    assert_int_equal(v.n, 1);
    assert_string_equal(v.v[0], r.pcr_hex[0]);
    memset(&v, 0, sizeof(v));
    assert_true(kms_recipient_lookup(&r, "KMS:recipientattestation:imagesha384", &v)); /* key names ignore case */
    assert_true(v.present);
    assert_string_equal(v.v[0], r.pcr_hex[0]);
    memset(&v, 0, sizeof(v));
    assert_true(kms_recipient_lookup(&r, "kms:RecipientAttestation:pcr15", &v));
    assert_string_equal(v.v[0], r.pcr_hex[15]);
    /* A PCR the document does not have: a known key, absent. */
    memset(&v, 0, sizeof(v));
    assert_true(kms_recipient_lookup(&r, "kms:RecipientAttestation:PCR8", &v));
    assert_false(v.present);
    /* Not PCR names: unknown keys. */
    const char *bad[] = {"kms:RecipientAttestation:PCR01", "kms:RecipientAttestation:PCR32",
                         "kms:RecipientAttestation:PCR",   "kms:RecipientAttestation:PCR1x",
                         "kms:RecipientAttestation:PCR-1", "kms:RecipientAttestation:Other",
                         "kms:EncryptionContext:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&v, 0, sizeof(v));
        assert_false(kms_recipient_lookup(&r, bad[i], &v));
        assert_false(v.present);
    }
    /* No Recipient in the request: the keys are known and absent. */
    memset(&v, 0, sizeof(v));
    assert_true(kms_recipient_lookup(NULL, "kms:RecipientAttestation:PCR0", &v));
    assert_false(v.present);
    kms_recipient_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lookup)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
