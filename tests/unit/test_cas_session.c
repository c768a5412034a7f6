/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's session documents (cas_session.c): a full session parses into what
 * docs/cas.md says; every schema rule refuses with a message naming the member. */
#include <stdio.h>
#include <string.h>

#include "cas_session.h"
#include "test_util.h"

#define T_PCR "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
#define T_ACCESS \
    "\"access\": {\"read\": [\"arn:aws:iam::111122223333:role/auditor\"], " \
    "\"update\": [\"arn:aws:iam::111122223333:user/dev\"]}"

static const char t_full[] =
    "{\"name\": \"hospital\", " T_ACCESS ", "
    "\"services\": {\"api\": {\"image_sha384\": [\"" T_PCR "\"], \"certificate\": \"api_cert\", "
    "\"secrets\": [\"db_key\", \"greeting\"]}},"
    "\"secrets\": {\"api_ca_cert\": {\"kind\": \"x509-ca\", \"common_name\": \"Hospital API CA\", "
    "\"export_public\": true},"
    "\"api_cert\": {\"kind\": \"x509\", \"issuer\": \"api_ca_cert\", \"common_name\": \"api\", "
    "\"dns\": [\"api\", \"api.hospital.example\"], \"key_type\": \"EC_P384\", \"valid_hours\": 12},"
    "\"db_key\": {\"kind\": \"random\", \"size\": 48}, \"greeting\": {\"kind\": \"value\", \"value\": \"hi\"}}}";

static void test_full_session(void **state)
{
    (void)state;
    kms_cas_session *s = NULL;
    assert_ok(kms_cas_session_parse(t_full, sizeof(t_full) - 1, &s));
    assert_string_equal(s->name, "hospital");
    assert_false(s->has_predecessor);
    const kms_cas_service *api = kms_cas_session_service(s, "api");
    assert_non_null(api);
    assert_int_equal(api->n_images, 1);
    assert_int_equal(api->image_sha384[0][0], 0x0c);
    assert_false(api->allow_debug);
    assert_string_equal(api->certificate->name, "api_cert");
    assert_int_equal(api->n_secrets, 2);
    const kms_cas_secret *cert = kms_cas_session_secret(s, "api_cert");
    assert_int_equal(cert->kind, KMS_CAS_X509);
    assert_int_equal(cert->key_type, CL_KEY_EC_P384);
    assert_int_equal(cert->validity, 12 * 3600);
    assert_int_equal(cert->n_dns, 2);
    const kms_cas_secret *ca = kms_cas_session_secret(s, "api_ca_cert");
    assert_true(ca->export_public);
    assert_int_equal(ca->validity, 3650 * 86400); /* the default */
    assert_int_equal(strlen(ca->fingerprint), 64);
    assert_int_equal(kms_cas_session_secret(s, "db_key")->size, 48);
    assert_true(kms_cas_may_read(s, "arn:aws:iam::111122223333:role/auditor"));
    assert_false(kms_cas_may_update(s, "arn:aws:iam::111122223333:role/auditor"));
    assert_true(kms_cas_may_read(s, "arn:aws:iam::111122223333:user/dev"));
    assert_false(kms_cas_may_read(s, "arn:aws:iam::111122223333:user/other"));
    kms_cas_session_free(s);
}

/* Toggling export_public keeps a generated secret; changing its definition does not. */
static void test_fingerprint(void **state)
{
    (void)state;
    const char *a = "{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", "
                    "\"common_name\": \"A\"}}}";
    const char *b = "{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"export_public\": true, "
                    "\"common_name\": \"A\", \"kind\": \"x509-ca\"}}}";
    const char *c = "{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", "
                    "\"common_name\": \"B\"}}}";
    kms_cas_session *sa = NULL, *sb = NULL, *sc = NULL;
    assert_ok(kms_cas_session_parse(a, strlen(a), &sa));
    assert_ok(kms_cas_session_parse(b, strlen(b), &sb));
    assert_ok(kms_cas_session_parse(c, strlen(c), &sc));
    assert_string_equal(sa->secrets[0].fingerprint, sb->secrets[0].fingerprint);
    assert_string_not_equal(sa->secrets[0].fingerprint, sc->secrets[0].fingerprint);
    kms_cas_session_free(sa);
    kms_cas_session_free(sb);
    kms_cas_session_free(sc);
}

static void t_bad(const char *doc, cl_status code, const char *needle)
{
    kms_cas_session *s = NULL;
    assert_fails(kms_cas_session_parse(doc, strlen(doc), &s), code, needle);
    assert_null(s);
}

static void test_refusals(void **state)
{
    (void)state;
    t_bad("[]", CL_ERR_FORMAT, "must be a JSON object");
    t_bad("{\"name\": \"a\", \"name\": \"b\"}", CL_ERR_FORMAT, "duplicate object key");
    t_bad("{\"name\": \".hidden\", " T_ACCESS "}", CL_ERR_FORMAT, "\"name\" must be 1 to 128");
    t_bad("{\"name\": \"a b\", " T_ACCESS "}", CL_ERR_FORMAT, "\"name\" must be 1 to 128");
    t_bad("{\"name\": \"s\"}", CL_ERR_FORMAT, "\"access\" is missing");
    t_bad("{\"name\": \"s\", \"access\": {\"update\": []}}", CL_ERR_FORMAT, "must name at least one principal");
    t_bad("{\"name\": \"s\", \"access\": {\"update\": [\"arn:aws:iam::1:user/x\"]}}", CL_ERR_FORMAT,
          "update[0] \"arn:aws:iam::1:user/x\" is not arn:aws:iam::ACCOUNT");
    t_bad("{\"name\": \"s\", \"access\": {\"update\": [\"x\"], \"write\": []}}", CL_ERR_FORMAT,
          "access: unknown member \"write\"");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"predecessor\": \"abc\"}", CL_ERR_FORMAT,
          "\"predecessor\" must be the 64 hex digits");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"services\": {\"api\": {\"image_sha384\": [\"" T_PCR "\", \"" T_PCR
          "\"]}}}",
          CL_ERR_FORMAT, "image_sha384[1] repeats");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"services\": {\"api\": {\"image_sha384\": [\"zz\"]}}}", CL_ERR_FORMAT,
          "image_sha384[0] must be 96 hex digits");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"services\": {\"api\": {\"allow_debug\": 1}}}", CL_ERR_FORMAT,
          "\"allow_debug\" must be true or false");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"services\": {\"api\": {\"certificate\": \"nope\"}}}", CL_ERR_FORMAT,
          "\"certificate\" names nope, which is not an x509 secret");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", \"common_name\": \"C\"}}, "
          "\"services\": {\"api\": {\"secrets\": [\"ca\"]}}}",
          CL_ERR_FORMAT, "a CA's key never leaves the service");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"k\": {\"kind\": \"rsa\"}}}", CL_ERR_FORMAT,
          "kind \"rsa\" is not one of");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"k\": {\"kind\": \"random\", \"size\": 0}}}", CL_ERR_FORMAT,
          "\"size\" must be an integer from 1 to 1024");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"k\": {\"kind\": \"random\", \"export_public\": true}}}",
          CL_ERR_FORMAT, "a random secret cannot be exported publicly");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"c\": {\"kind\": \"x509\", \"issuer\": \"x\", "
          "\"common_name\": \"api\"}}}",
          CL_ERR_FORMAT, "\"issuer\" names x, which is not an x509-ca");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", \"common_name\": \"C\"}, "
          "\"c\": {\"kind\": \"x509\", \"issuer\": \"ca\", \"common_name\": \"api\", \"key_type\": \"DSA\"}}}",
          CL_ERR_FORMAT, "\"key_type\" must be EC_P256");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", \"common_name\": \"C\"}, "
          "\"c\": {\"kind\": \"x509\", \"issuer\": \"ca\", \"common_name\": \"api\", \"dns\": [\"-api\"]}}}",
          CL_ERR_FORMAT, "dns[0] \"-api\" is not a host name");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", \"common_name\": \"C\"}, "
          "\"c\": {\"kind\": \"x509\", \"issuer\": \"ca\", \"common_name\": \"api\", \"dns\": [\"*.api\"]}}}",
          CL_ERR_FORMAT, "no wildcard");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"ca\": {\"kind\": \"x509-ca\", \"common_name\": \"\"}}}",
          CL_ERR_FORMAT, "\"common_name\" is empty");
    t_bad("{\"name\": \"s\", " T_ACCESS ", \"secrets\": {\"bad name\": {\"kind\": \"random\"}}}", CL_ERR_FORMAT,
          "a name must be 1 to 64");
    char big[KMS_CAS_DOC_MAX + 2];
    memset(big, ' ', sizeof(big));
    assert_fails(kms_cas_session_parse(big, sizeof(big), &(kms_cas_session *){NULL}), CL_ERR_LIMIT, "over 65536");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_session),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
