/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verification of attestation documents: the two real Nitro documents in
 * tests/vectors/nitro (at their stated times, and just outside their windows),
 * then every kind of tampering, each rejected with the reason asserted.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloister/attestation.h"
#include "cloister/crypto.h"

#include "attestation_internal.h"
#include "test_util.h"

#define EVERVAULT "evervault-debug-2023-09-18.b64"
#define NITRITE "nitrite-production-2024-09-07.b64"

/* "2023-09-18T17:18:00Z" -> Unix seconds. */
static int64_t t_utc(const char *s)
{
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &sec) != 6) fail_msg("bad time %s", s);
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    return (int64_t)timegm(&tm);
}

static void load_doc(const char *name, cl_buf *out)
{
    char rel[128];
    cl_buf text;
    (void)snprintf(rel, sizeof(rel), "tests/vectors/nitro/%s", name);
    cl_buf_init(&text, 1 << 20);
    assert_ok(cl_buf_read_file(&text, t_source_path(rel)));
    while (text.len > 0 && (text.data[text.len - 1] == '\n' || text.data[text.len - 1] == '\r')) text.len--;
    cl_buf_init(out, 1 << 20);
    assert_ok(cl_base64_decode((const char *)text.data, text.len, false, out));
    cl_buf_free(&text);
}

static void aws_roots(cl_attest_roots *r)
{
    cl_attest_roots_init(r);
    assert_ok(cl_attest_roots_add_file(r, t_source_path("tests/vectors/nitro/aws-nitro-enclaves-root-g1.pem")));
}

static CL_MUST_USE cl_status verify_at(const cl_buf *doc, const char *when, cl_attest_doc *out)
{
    cl_attest_roots r;
    aws_roots(&r);
    cl_attest_policy pol = {.verify_at = t_utc(when)};
    cl_status rc = cl_attest_verify(doc->data, doc->len, &r, &pol, out);
    cl_attest_roots_free(&r);
    return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return false;
    return true;
}

static void test_evervault_verifies(void **state)
{
    (void)state;
    cl_buf b;
    cl_attest_doc d;
    load_doc(EVERVAULT, &b);
    assert_int_equal(b.len, 4748);
    cl_attest_doc_init(&d);
    assert_ok(verify_at(&b, "2023-09-18T17:18:00Z", &d));
    assert_false(d.tagged);
    assert_string_equal(d.module_id, "i-0918f6c55e3b61d89-enc018aa8b8e2285d13");
    assert_string_equal(d.digest, "SHA384");
    assert_int_equal(d.timestamp_ms, 1695049410860ull);
    assert_int_equal(d.pcr_mask, 0xffff);
    /* debug mode: PCR0, PCR1 and PCR2 are zero */
    for (int i = 0; i < 3; i++) assert_true(all_zero(d.pcrs[i], CL_ATTEST_PCR_LEN));
    assert_int_equal(d.cabundle_len, 4);
    assert_false(d.has_public_key);
    assert_true(d.has_user_data);
    assert_int_equal(d.user_data.len, 91);
    assert_true(d.has_nonce);
    assert_int_equal(d.nonce.len, 256);
    assert_int_equal(d.certificate.len, 640);
    cl_attest_doc_free(&d);
    cl_buf_free(&b);
}

/* The README says this document's signature is high-S: s > n/2. We must not enforce low-S. */
static void test_evervault_signature_is_high_s(void **state)
{
    (void)state;
    cl_buf b;
    cl_attest_doc d;
    load_doc(EVERVAULT, &b);
    cl_attest_doc_init(&d);
    assert_ok(cl_attest_doc_parse(b.data, b.len, &d));
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
    BIGNUM *half = BN_dup(EC_GROUP_get0_order(g));
    BIGNUM *s = BN_bin2bn(d.signature + 48, 48, NULL);
    assert_non_null(half);
    assert_non_null(s);
    assert_int_equal(BN_rshift1(half, half), 1);
    assert_true(BN_cmp(s, half) > 0);
    BN_free(s);
    BN_free(half);
    EC_GROUP_free(g);
    cl_attest_doc_free(&d);
    cl_buf_free(&b);
}

static void test_nitrite_verifies(void **state)
{
    (void)state;
    cl_buf b;
    cl_attest_doc d;
    load_doc(NITRITE, &b);
    assert_int_equal(b.len, 7539);
    cl_attest_doc_init(&d);
    assert_ok(verify_at(&b, "2024-09-07T14:37:39Z", &d));
    assert_string_equal(d.module_id, "i-0a22e5c5f24d22174-enc0191cceb4289903f");
    assert_int_equal(d.timestamp_ms, 1725719859545ull);
    assert_false(all_zero(d.pcrs[0], CL_ATTEST_PCR_LEN));
    assert_true(d.has_public_key && d.has_user_data && d.has_nonce);
    assert_int_equal(d.public_key.len, 1024);
    assert_int_equal(d.user_data.len, 1024);
    assert_int_equal(d.nonce.len, 1024);
    cl_attest_doc_free(&d);
    cl_buf_free(&b);
}

static void test_windows(void **state)
{
    (void)state;
    cl_buf e, n;
    load_doc(EVERVAULT, &e);
    load_doc(NITRITE, &n);
    /* at the edges of the leaf's window: valid */
    assert_ok(verify_at(&e, "2023-09-18T17:37:11Z", NULL));
    assert_ok(verify_at(&n, "2024-09-07T14:37:36Z", NULL));
    assert_ok(verify_at(&n, "2024-09-07T17:37:38Z", NULL));
    /* one second outside */
    assert_fails(verify_at(&e, "2023-09-18T14:37:08Z", NULL), CL_ERR_EXPIRED,
                 "the document's certificate (CN=i-0918f6c55e3b61d89-enc018aa8b8e2285d13.us-east-1.aws) is not valid "
                 "before 2023-09-18T14:37:09Z (verification time 2023-09-18T14:37:08Z)");
    assert_fails(verify_at(&e, "2023-09-18T17:37:13Z", NULL), CL_ERR_EXPIRED,
                 "the document's certificate (CN=i-0918f6c55e3b61d89-enc018aa8b8e2285d13.us-east-1.aws) expired at "
                 "2023-09-18T17:37:12Z (verification time 2023-09-18T17:37:13Z)");
    assert_fails(verify_at(&n, "2024-09-07T14:37:35Z", NULL), CL_ERR_EXPIRED,
                 "is not valid before 2024-09-07T14:37:36Z");
    assert_fails(verify_at(&n, "2024-09-07T17:37:40Z", NULL), CL_ERR_EXPIRED, "expired at 2024-09-07T17:37:39Z");
    /* later, an intermediate has expired and is named */
    assert_fails(
        verify_at(&e, "2023-09-24T00:00:00Z", NULL), CL_ERR_EXPIRED,
        "cabundle[2] (CN=c4f9d06c60d7cb92.zonal.us-east-1.aws.nitro-enclaves) expired at 2023-09-23T14:03:53Z");
    /* before the root existed */
    assert_fails(verify_at(&e, "2019-01-01T00:00:00Z", NULL), CL_ERR_EXPIRED,
                 "cabundle[0] (CN=aws.nitro-enclaves) is not valid before 2019-10-28T13:28:05Z");
    /* and after it expires (Nitro 3.2.3.1: the root's validity is checked too) */
    assert_fails(verify_at(&e, "2049-12-01T00:00:00Z", NULL), CL_ERR_EXPIRED,
                 "cabundle[0] (CN=aws.nitro-enclaves) expired at 2049-10-28T14:28:05Z");
    cl_buf_free(&e);
    cl_buf_free(&n);
}

static void test_tag18(void **state)
{
    (void)state;
    cl_buf b, t;
    cl_attest_doc d;
    load_doc(NITRITE, &b);
    cl_buf_init(&t, 1 << 20);
    assert_ok(cl_buf_append_u8(&t, 0xd2)); /* tag 18 */
    assert_ok(cl_buf_append(&t, b.data, b.len));
    cl_attest_doc_init(&d);
    assert_ok(verify_at(&t, "2024-09-07T14:37:39Z", &d));
    assert_true(d.tagged);
    assert_ok(verify_at(&b, "2024-09-07T14:37:39Z", &d));
    assert_false(d.tagged);
    t.data[0] = 0xd3; /* tag 19: COSE_Mac0, not COSE_Sign1 */
    assert_fails(verify_at(&t, "2024-09-07T14:37:39Z", NULL), CL_ERR_FORMAT, "CBOR tag 19");
    cl_attest_doc_free(&d);
    cl_buf_free(&b);
    cl_buf_free(&t);
}

static void test_truncated(void **state)
{
    (void)state;
    cl_buf b;
    cl_attest_doc d;
    load_doc(EVERVAULT, &b);
    cl_attest_doc_init(&d);
    for (size_t n = 0; n < b.len; n++) {
        cl_status rc = cl_attest_doc_parse(b.data, n, &d);
        if (rc != CL_ERR_FORMAT) fail_msg("prefix of %zu bytes: %s (%s)", n, cl_status_name(rc), cl_error_message());
    }
    assert_fails(cl_attest_doc_parse(b.data, b.len - 1, &d), CL_ERR_FORMAT,
                 "CBOR string at offset 4650 claims 96 bytes, only 95 remain");
    assert_fails(cl_attest_doc_parse(b.data, 0, &d), CL_ERR_FORMAT, "attestation document is empty");
    /* and one byte too many */
    assert_ok(cl_buf_append_u8(&b, 0));
    assert_fails(cl_attest_doc_parse(b.data, b.len, &d), CL_ERR_FORMAT, "1 unexpected bytes after the CBOR item");
    cl_attest_doc_free(&d);
    cl_buf_free(&b);
}

static void test_wrong_root(void **state)
{
    (void)state;
    cl_buf b, der;
    cl_attest_roots r;
    cl_attest_key k;
    load_doc(EVERVAULT, &b);
    assert_ok(cl_attest_key_generate(&k));
    cl_attest_cert_params p = {
        .common_name = "Cloister sim root", .not_before = 1, .not_after = 4102444800, .ca = true, .path_len = -1};
    cl_buf_init(&der, 4096);
    assert_ok(cl_attest_cert_issue(&k, &p, NULL, NULL, 0, &der));
    cl_attest_roots_init(&r);
    cl_attest_policy pol = {.verify_at = t_utc("2023-09-18T17:18:00Z")};
    assert_fails(cl_attest_verify(b.data, b.len, &r, &pol, NULL), CL_ERR_USAGE, "no attestation root is configured");
    assert_ok(cl_attest_roots_add(&r, der.data, der.len));
    assert_fails(cl_attest_verify(b.data, b.len, &r, &pol, NULL), CL_ERR_AUTH,
                 "cabundle[0] (CN=aws.nitro-enclaves, SHA-256 "
                 "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b) is not a configured attestation "
                 "root");
    /* both roots configured: the AWS one is used */
    assert_ok(cl_attest_roots_add_file(&r, t_source_path("tests/vectors/nitro/aws-nitro-enclaves-root-g1.pem")));
    assert_int_equal(r.count, 2);
    assert_ok(cl_attest_verify(b.data, b.len, &r, &pol, NULL));
    cl_attest_roots_free(&r);
    cl_attest_key_free(&k);
    cl_buf_free(&der);
    cl_buf_free(&b);
}

static void test_policy(void **state)
{
    (void)state;
    cl_buf e, n;
    cl_attest_doc d;
    cl_attest_roots r;
    load_doc(EVERVAULT, &e);
    load_doc(NITRITE, &n);
    aws_roots(&r);
    cl_attest_doc_init(&d);
    cl_attest_policy pol = {.verify_at = t_utc("2024-09-07T14:37:39Z")};
    assert_ok(cl_attest_verify(n.data, n.len, &r, &pol, &d));

    /* expected PCRs: right, wrong, absent */
    cl_attest_pcr want[2];
    want[0].index = 0;
    memcpy(want[0].value, d.pcrs[0], CL_ATTEST_PCR_LEN);
    want[1].index = 8;
    memcpy(want[1].value, d.pcrs[8], CL_ATTEST_PCR_LEN);
    pol.pcrs = want;
    pol.pcr_count = 2;
    assert_ok(cl_attest_verify(n.data, n.len, &r, &pol, NULL));
    want[1].value[47] ^= 1;
    char msg[256];
    cl_buf hex;
    cl_buf_init(&hex, 256);
    assert_ok(cl_buf_append_hex(&hex, want[1].value, CL_ATTEST_PCR_LEN));
    (void)snprintf(msg, sizeof(msg), "expected %s", cl_buf_cstr(&hex));
    assert_fails(cl_attest_verify(n.data, n.len, &r, &pol, NULL), CL_ERR_DENIED, "PCR8 is ");
    assert_fails(cl_attest_verify(n.data, n.len, &r, &pol, NULL), CL_ERR_DENIED, msg);
    want[1].value[47] ^= 1;
    want[1].index = 20;
    assert_fails(cl_attest_verify(n.data, n.len, &r, &pol, NULL), CL_ERR_DENIED, "PCR20 is absent from the document");
    pol.pcrs = NULL;
    pol.pcr_count = 0;

    /* nonce */
    uint8_t nonce[1024];
    memcpy(nonce, d.nonce.data, sizeof(nonce));
    pol.nonce = nonce;
    pol.nonce_len = sizeof(nonce);
    assert_ok(cl_attest_verify(n.data, n.len, &r, &pol, NULL));
    nonce[1023] ^= 0x80;
    assert_fails(cl_attest_verify(n.data, n.len, &r, &pol, NULL), CL_ERR_DENIED, "nonce mismatch");
    pol.nonce_len = 16;
    assert_fails(cl_attest_verify(n.data, n.len, &r, &pol, NULL), CL_ERR_DENIED, "expected ");
    pol.nonce = NULL;
    pol.nonce_len = 0;

    /* maximum age: evervault's document is 8069.140 s old at 17:18:00 */
    cl_attest_policy pe = {.verify_at = t_utc("2023-09-18T17:18:00Z"), .max_age_ms = 8069140};
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    pe.max_age_ms = 8069139;
    assert_fails(cl_attest_verify(e.data, e.len, &r, &pe, NULL), CL_ERR_EXPIRED,
                 "document is too old: created 2023-09-18T15:03:30Z, 8069140 ms before the verification time "
                 "2023-09-18T17:18:00Z; maximum age 8069139 ms");
    /* the verification time is checked */
    cl_attest_policy bad_time = {.verify_at = 0};
    assert_fails(cl_attest_verify(e.data, e.len, &r, &bad_time, NULL), CL_ERR_USAGE, "between 1970 and 9999");
    bad_time.verify_at = INT64_MAX / 10;
    assert_fails(cl_attest_verify(e.data, e.len, &r, &bad_time, NULL), CL_ERR_USAGE, "between 1970 and 9999");
    assert_fails(cl_attest_verify(e.data, e.len, &r, NULL, NULL), CL_ERR_USAGE, "no verification policy");
    /* nitrite's timestamp is 0.545 s after its stated verification time: inside the allowed skew */
    assert_true(d.timestamp_ms > (uint64_t)t_utc("2024-09-07T14:37:39Z") * 1000);

    cl_buf_free(&hex);
    cl_attest_doc_free(&d);
    cl_attest_roots_free(&r);
    cl_buf_free(&e);
    cl_buf_free(&n);
}

/* --- tampering: re-encode the payload from its decoded fields, change one, splice ---- */

typedef struct spliced {
    cl_attest_create_params p;
    uint8_t pcrs[16][CL_ATTEST_PCR_LEN];
    cl_attest_blob cab[CL_ATTEST_MAX_CABUNDLE];
    cl_attest_blob pk, ud, nonce;
    cl_buf certs[CL_ATTEST_MAX_CABUNDLE + 1]; /* writable copies */
    cl_buf fields[3];
} spliced;

static void splice_init(spliced *s, const cl_attest_doc *d)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(d->pcr_mask, 0xffff);
    memcpy(s->pcrs, d->pcrs, sizeof(s->pcrs));
    for (size_t i = 0; i <= d->cabundle_len; i++) {
        const cl_buf *src = i == 0 ? &d->certificate : &d->cabundle[i - 1];
        cl_buf_init(&s->certs[i], 4096);
        assert_ok(cl_buf_append(&s->certs[i], src->data, src->len));
    }
    const cl_buf *f[3] = {&d->public_key, &d->user_data, &d->nonce};
    for (int i = 0; i < 3; i++) {
        cl_buf_init(&s->fields[i], 4096);
        if (f[i]->len) assert_ok(cl_buf_append(&s->fields[i], f[i]->data, f[i]->len));
    }
    s->p.module_id = d->module_id;
    s->p.timestamp_ms = d->timestamp_ms;
    s->p.pcrs = (const uint8_t(*)[CL_ATTEST_PCR_LEN])s->pcrs;
    s->p.pcr_count = 16;
    s->p.certificate = (cl_attest_blob){s->certs[0].data, s->certs[0].len};
    for (size_t i = 0; i < d->cabundle_len; i++)
        s->cab[i] = (cl_attest_blob){s->certs[i + 1].data, s->certs[i + 1].len};
    s->p.cabundle = s->cab;
    s->p.cabundle_len = d->cabundle_len;
    s->pk = (cl_attest_blob){s->fields[0].data, s->fields[0].len};
    s->ud = (cl_attest_blob){s->fields[1].data, s->fields[1].len};
    s->nonce = (cl_attest_blob){s->fields[2].data, s->fields[2].len};
    s->p.public_key = d->has_public_key ? &s->pk : NULL;
    s->p.user_data = d->has_user_data ? &s->ud : NULL;
    s->p.nonce = d->has_nonce ? &s->nonce : NULL;
}

static void splice_free(spliced *s)
{
    for (size_t i = 0; i < CL_ATTEST_MAX_CABUNDLE + 1; i++) cl_buf_free(&s->certs[i]);
    for (int i = 0; i < 3; i++) cl_buf_free(&s->fields[i]);
}

/* The document with the spliced payload and the original signature. */
static void splice_build(const spliced *s, const cl_attest_doc *d, cl_buf *out)
{
    cl_buf payload;
    cl_buf_init(&payload, 1 << 16);
    assert_ok(cl_attest_payload_encode(&s->p, &payload));
    cl_buf_free(out);
    cl_buf_init(out, 1 << 16);
    assert_ok(cl_attest_cose_encode(d->protected_header.data, d->protected_header.len, payload.data, payload.len,
                                    d->signature, false, out));
    cl_buf_free(&payload);
}

static void test_reencode_is_identical(void **state)
{
    (void)state;
    const char *names[2] = {EVERVAULT, NITRITE};
    for (int i = 0; i < 2; i++) {
        cl_buf b, out;
        cl_attest_doc d;
        spliced s;
        load_doc(names[i], &b);
        cl_attest_doc_init(&d);
        assert_ok(cl_attest_doc_parse(b.data, b.len, &d));
        splice_init(&s, &d);
        cl_buf_init(&out, 1);
        splice_build(&s, &d, &out);
        /* our encoder writes exactly what Nitro writes */
        assert_int_equal(out.len, b.len);
        assert_memory_equal(out.data, b.data, b.len);
        splice_free(&s);
        cl_buf_free(&out);
        cl_attest_doc_free(&d);
        cl_buf_free(&b);
    }
}

static void test_tampered_fields(void **state)
{
    (void)state;
    const char *at = "2024-09-07T14:37:39Z";
    cl_buf b, t;
    cl_attest_doc d;
    spliced s;
    load_doc(NITRITE, &b);
    cl_attest_doc_init(&d);
    assert_ok(cl_attest_doc_parse(b.data, b.len, &d));
    cl_buf_init(&t, 1);
    const char *sig_msg = "COSE signature does not verify";
    char module_id[64];

    for (int field = 0; field < 10; field++) {
        splice_init(&s, &d);
        (void)snprintf(module_id, sizeof(module_id), "%s", d.module_id);
        switch (field) {
        case 0:
            module_id[2] ^= 1;
            s.p.module_id = module_id;
            break;
        case 1: s.p.timestamp_ms += 1; break;
        case 2: s.pcrs[0][0] ^= 1; break;
        case 3: s.pcrs[15][47] ^= 0x80; break;
        case 4: s.fields[0].data[100] ^= 1; break;  /* public_key */
        case 5: s.fields[1].data[0] ^= 1; break;    /* user_data */
        case 6: s.fields[2].data[1023] ^= 1; break; /* nonce */
        case 7: s.p.nonce = NULL; break;            /* nonce removed (encoded null) */
        case 8: s.ud.len -= 1; break;               /* user_data shortened */
        default: s.p.pcr_count = 15; break;         /* PCR15 dropped */
        }
        splice_build(&s, &d, &t);
        cl_status rc = verify_at(&t, at, NULL);
        if (rc != CL_ERR_AUTH || strstr(cl_error_message(), sig_msg) == NULL)
            fail_msg("tampered field %d: %s: %s", field, cl_status_name(rc), cl_error_message());
        splice_free(&s);
    }
    /* the signature itself, and its protected header */
    cl_buf sig;
    cl_buf_init(&sig, 128);
    assert_ok(cl_buf_append(&t, "", 0));
    uint8_t bad[CL_ATTEST_SIG_LEN];
    memcpy(bad, d.signature, sizeof(bad));
    bad[50] ^= 1;
    cl_buf_reset(&t);
    assert_ok(cl_attest_cose_encode(d.protected_header.data, d.protected_header.len, d.payload.data, d.payload.len, bad,
                                    false, &t));
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, sig_msg);
    static const uint8_t es256[] = {0xa1, 0x01, 0x26}; /* {1: -7} */
    cl_buf_reset(&t);
    assert_ok(cl_attest_cose_encode(es256, sizeof(es256), d.payload.data, d.payload.len, d.signature, false, &t));
    assert_fails(verify_at(&t, at, NULL), CL_ERR_UNSUPPORTED, "COSE algorithm is not ES384 (-35)");
    static const uint8_t es384_kid[] = {0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x00}; /* {1: -35, 4: h'00'} */
    cl_buf_reset(&t);
    assert_ok(
        cl_attest_cose_encode(es384_kid, sizeof(es384_kid), d.payload.data, d.payload.len, d.signature, false, &t));
    assert_fails(verify_at(&t, at, NULL), CL_ERR_UNSUPPORTED, "COSE protected header has 2 entries");
    /* digest is checked before any crypto */
    splice_init(&s, &d);
    cl_buf payload;
    cl_buf_init(&payload, 1 << 16);
    assert_ok(cl_attest_payload_encode(&s.p, &payload));
    uint8_t *p = memmem(payload.data, payload.len, "SHA384", 6);
    assert_non_null(p);
    p[5] = '5';
    cl_buf_reset(&t);
    assert_ok(cl_attest_cose_encode(d.protected_header.data, d.protected_header.len, payload.data, payload.len,
                                    d.signature, false, &t));
    assert_fails(verify_at(&t, at, NULL), CL_ERR_UNSUPPORTED, "digest is \"SHA385\", expected \"SHA384\"");
    splice_free(&s);
    cl_buf_free(&payload);
    cl_buf_free(&sig);
    cl_buf_free(&t);
    cl_attest_doc_free(&d);
    cl_buf_free(&b);
}

static void test_tampered_chain(void **state)
{
    (void)state;
    const char *at = "2023-09-18T17:18:00Z";
    cl_buf b, other, t;
    cl_attest_doc d, od;
    spliced s;
    load_doc(EVERVAULT, &b);
    load_doc(NITRITE, &other);
    cl_attest_doc_init(&d);
    cl_attest_doc_init(&od);
    assert_ok(cl_attest_doc_parse(b.data, b.len, &d));
    assert_ok(cl_attest_doc_parse(other.data, other.len, &od));
    cl_buf_init(&t, 1);

    /* a byte of each certificate changed (in its signature, so it still parses) */
    for (size_t i = 0; i <= 4; i++) {
        splice_init(&s, &d);
        s.certs[i].data[s.certs[i].len - 2] ^= 1;
        splice_build(&s, &d, &t);
        if (i == 1)
            assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, "cabundle[0] (CN=aws.nitro-enclaves, SHA-256");
        else
            assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, "certificate signature failure");
        splice_free(&s);
    }
    /* each cabundle certificate removed */
    for (size_t i = 0; i < 4; i++) {
        splice_init(&s, &d);
        for (size_t j = i; j + 1 < 4; j++) s.cab[j] = s.cab[j + 1];
        s.p.cabundle_len = 3;
        splice_build(&s, &d, &t);
        if (i == 0)
            assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH,
                         "cabundle[0] (CN=cc543213cf8f4ca4.us-east-1.aws.nitro-enclaves, SHA-256");
        else
            assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, "unable to get local issuer certificate");
        splice_free(&s);
    }
    /* adjacent intermediates swapped: the chain still builds, but not in cabundle's order */
    splice_init(&s, &d);
    cl_attest_blob tmp = s.cab[1];
    s.cab[1] = s.cab[2];
    s.cab[2] = tmp;
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH,
                 "cabundle is out of order: issuer 2 of the chain is cabundle[1] (CN=c4f9d06c60d7cb92.zonal");
    splice_free(&s);
    /* root and first intermediate swapped */
    splice_init(&s, &d);
    tmp = s.cab[0];
    s.cab[0] = s.cab[1];
    s.cab[1] = tmp;
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, "is not a configured attestation root");
    splice_free(&s);
    /* an extra certificate appended to cabundle */
    splice_init(&s, &d);
    s.cab[4] = (cl_attest_blob){od.cabundle[3].data, od.cabundle[3].len};
    s.p.cabundle_len = 5;
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, "cabundle holds certificates outside the chain");
    splice_free(&s);
    /* the leaf replaced by the other document's leaf, or by the last intermediate */
    splice_init(&s, &d);
    s.p.certificate = (cl_attest_blob){od.certificate.data, od.certificate.len};
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH,
                 "at the document's certificate (CN=i-0a22e5c5f24d22174-enc0191cceb4289903f.us-east-1.aws) (depth 0): "
                 "unable to get local issuer certificate");
    s.p.certificate = s.cab[3];
    s.p.cabundle_len = 3;
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH,
                 "is a CA certificate; the signing certificate must be an end entity");
    splice_free(&s);
    /* cabundle[3] replaced by the other document's */
    splice_init(&s, &d);
    s.cab[3] = (cl_attest_blob){od.cabundle[3].data, od.cabundle[3].len};
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_AUTH, "certificate chain does not verify");
    splice_free(&s);
    /* not a certificate at all */
    splice_init(&s, &d);
    s.cab[2].len = 10;
    splice_build(&s, &d, &t);
    assert_fails(verify_at(&t, at, NULL), CL_ERR_FORMAT, "cabundle[2] is not a DER X.509 certificate");
    splice_free(&s);

    cl_buf_free(&t);
    cl_attest_doc_free(&d);
    cl_attest_doc_free(&od);
    cl_buf_free(&b);
    cl_buf_free(&other);
}

static void test_chain_cache(void **state)
{
    (void)state;
    cl_buf e, n;
    cl_attest_roots r;
    load_doc(EVERVAULT, &e);
    load_doc(NITRITE, &n);
    aws_roots(&r);
    assert_fails(cl_attest_roots_enable_cache(&r, 0), CL_ERR_USAGE, "chain cache size");
    assert_ok(cl_attest_roots_enable_cache(&r, 2));
    cl_attest_policy pe = {.verify_at = t_utc("2023-09-18T17:18:00Z")};
    cl_attest_policy pn = {.verify_at = t_utc("2024-09-07T14:37:39Z")};
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_int_equal(cl_attest_roots_cache_hits(&r), 0);
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_int_equal(cl_attest_roots_cache_hits(&r), 1);
    /* the cached window is the chain's: the last valid second hits, the next one fails as before */
    pe.verify_at = t_utc("2023-09-18T17:37:11Z");
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_int_equal(cl_attest_roots_cache_hits(&r), 2);
    pe.verify_at = t_utc("2023-09-18T17:37:12Z");
    assert_fails(cl_attest_verify(e.data, e.len, &r, &pe, NULL), CL_ERR_EXPIRED,
                 "the document's certificate (CN=i-0918f6c55e3b61d89-enc018aa8b8e2285d13.us-east-1.aws) expired at "
                 "2023-09-18T17:37:12Z");
    pe.verify_at = t_utc("2023-09-18T14:37:08Z");
    assert_fails(cl_attest_verify(e.data, e.len, &r, &pe, NULL), CL_ERR_EXPIRED, "is not valid before");
    assert_int_equal(cl_attest_roots_cache_hits(&r), 2);
    /* a cached chain never skips the signature or the policy */
    pe.verify_at = t_utc("2023-09-18T17:18:00Z");
    e.data[e.len - 1] ^= 1;
    assert_fails(cl_attest_verify(e.data, e.len, &r, &pe, NULL), CL_ERR_AUTH, "COSE signature does not verify");
    e.data[e.len - 1] ^= 1;
    assert_int_equal(cl_attest_roots_cache_hits(&r), 3);
    pe.max_age_ms = 1000;
    assert_fails(cl_attest_verify(e.data, e.len, &r, &pe, NULL), CL_ERR_EXPIRED, "document is too old");
    pe.max_age_ms = 0;
    /* two chains fit; a third evicts the oldest */
    assert_ok(cl_attest_verify(n.data, n.len, &r, &pn, NULL));
    assert_ok(cl_attest_verify(n.data, n.len, &r, &pn, NULL));
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_int_equal(cl_attest_roots_cache_hits(&r), 6);
    cl_attest_roots_free(&r);

    aws_roots(&r);
    assert_ok(cl_attest_roots_enable_cache(&r, 1));
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_ok(cl_attest_verify(n.data, n.len, &r, &pn, NULL));
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_int_equal(cl_attest_roots_cache_hits(&r), 0);
    assert_ok(cl_attest_verify(e.data, e.len, &r, &pe, NULL));
    assert_int_equal(cl_attest_roots_cache_hits(&r), 1);
    cl_attest_roots_free(&r);
    cl_buf_free(&e);
    cl_buf_free(&n);
}

typedef struct shared_verify {
    const cl_buf *doc;
    cl_attest_roots *roots;
    int failures;
} shared_verify;

static void *verify_thread(void *arg)
{
    shared_verify *sv = arg;
    cl_attest_policy pol = {.verify_at = t_utc("2024-09-07T14:37:39Z")};
    for (int i = 0; i < 10; i++)
        if (cl_attest_verify(sv->doc->data, sv->doc->len, sv->roots, &pol, NULL) != CL_OK) sv->failures++;
    return NULL;
}

/* One roots object with its cache, shared by threads, as the KMS will share it. */
static void test_chain_cache_threads(void **state)
{
    (void)state;
    cl_buf n;
    cl_attest_roots r;
    load_doc(NITRITE, &n);
    aws_roots(&r);
    assert_ok(cl_attest_roots_enable_cache(&r, 4));
    pthread_t th[4];
    shared_verify sv[4];
    for (int i = 0; i < 4; i++) {
        sv[i] = (shared_verify){&n, &r, 0};
        assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &sv[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(sv[i].failures, 0);
    }
    assert_true(cl_attest_roots_cache_hits(&r) >= 36);
    cl_attest_roots_free(&r);
    cl_buf_free(&n);
}

/* --- the CBOR layer -------------------------------------------------------- */

static void test_cbor_bounds(void **state)
{
    (void)state;
    static const uint8_t huge_array[] = {0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01};
    assert_fails(cl_attest_cbor_check(huge_array, sizeof(huge_array), "x"), CL_ERR_FORMAT,
                 "x: CBOR array at offset 0 claims 4294967296 entries, only 1 bytes remain");
    static const uint8_t huge_map[] = {0xba, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01};
    assert_fails(cl_attest_cbor_check(huge_map, sizeof(huge_map), "x"), CL_ERR_FORMAT, "CBOR map at offset 0 claims");
    static const uint8_t huge_bstr[] = {0x5a, 0x7f, 0xff, 0xff, 0xff, 0x00};
    assert_fails(cl_attest_cbor_check(huge_bstr, sizeof(huge_bstr), "x"), CL_ERR_FORMAT, "claims 2147483647 bytes");
    uint8_t deep[64];
    memset(deep, 0x81, sizeof(deep));
    deep[63] = 0x00;
    assert_fails(cl_attest_cbor_check(deep, sizeof(deep), "x"), CL_ERR_LIMIT, "CBOR nested deeper than 8 levels");
    static const uint8_t reserved[] = {0x1c};
    assert_fails(cl_attest_cbor_check(reserved, 1, "x"), CL_ERR_FORMAT, "reserved CBOR encoding 0x1c");
    static const uint8_t stray_break[] = {0x82, 0x01, 0xff};
    assert_fails(cl_attest_cbor_check(stray_break, sizeof(stray_break), "x"), CL_ERR_FORMAT, "unexpected CBOR break");
    static const uint8_t bad_chunk[] = {0x5f, 0x61, 0x61, 0xff}; /* text chunk in a byte string */
    assert_fails(cl_attest_cbor_check(bad_chunk, sizeof(bad_chunk), "x"), CL_ERR_FORMAT, "bad chunk");
    static const uint8_t ok_indef[] = {0xbf, 0x61, 0x61, 0x9f, 0x01, 0x5f, 0x41, 0x00, 0xff, 0xff, 0xff};
    assert_ok(cl_attest_cbor_check(ok_indef, sizeof(ok_indef), "x"));
    static const uint8_t unclosed[] = {0xbf, 0x61, 0x61, 0x01};
    assert_fails(cl_attest_cbor_check(unclosed, sizeof(unclosed), "x"), CL_ERR_FORMAT, "CBOR truncated at offset 4");
    static const uint8_t tagged_empty[] = {0xd2, 0x80};
    assert_ok(cl_attest_cbor_check(tagged_empty, sizeof(tagged_empty), "x"));
    /* a document that is CBOR but not COSE */
    cl_attest_doc d;
    cl_attest_doc_init(&d);
    static const uint8_t map[] = {0xa0};
    assert_fails(cl_attest_doc_parse(map, 1, &d), CL_ERR_FORMAT,
                 "attestation document is a map, expected a COSE_Sign1");
    /* found by fuzzing: libcbor 0.8's cbor_is_null() aborts on floats */
    static const uint8_t flt[] = {0xfa, 0xf5, 0xfa, 0xf5, 0x0a};
    assert_fails(cl_attest_doc_parse(flt, sizeof(flt), &d), CL_ERR_FORMAT, "attestation document is a float");
    static const uint8_t flt_sig[] = {0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x41, 0x00, 0xf9, 0x3c, 0x00};
    assert_fails(cl_attest_doc_parse(flt_sig, sizeof(flt_sig), &d), CL_ERR_FORMAT,
                 "COSE signature is a float, expected a byte string");
    static const uint8_t arr3[] = {0x83, 0x40, 0xa0, 0x40};
    assert_fails(cl_attest_doc_parse(arr3, sizeof(arr3), &d), CL_ERR_FORMAT, "COSE_Sign1 has 3 elements, expected 4");
    cl_buf big;
    cl_buf_init(&big, 1 << 20);
    assert_ok(cl_buf_resize(&big, CL_ATTEST_MAX_DOC_LEN + 1));
    assert_fails(cl_attest_doc_parse(big.data, big.len, &d), CL_ERR_LIMIT, "at most 32768 accepted");
    cl_buf_free(&big);
    cl_attest_doc_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evervault_verifies),
        cmocka_unit_test(test_evervault_signature_is_high_s),
        cmocka_unit_test(test_nitrite_verifies),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_tag18),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_root),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_reencode_is_identical),
        cmocka_unit_test(test_tampered_fields),
        cmocka_unit_test(test_tampered_chain),
        cmocka_unit_test(test_chain_cache),
        cmocka_unit_test(test_chain_cache_threads),
        cmocka_unit_test(test_cbor_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
