/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#10 requests with attestation evidence (draft-ietf-lamps-csr-attestation). See csr.h. */
#include "cloister/csr.h"

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

static const struct {
    cl_key_type t;
    const char *name;
} cl_key_types[] = {
    {CL_KEY_EC_P256, "EC_P256"},
    {CL_KEY_EC_P384, "EC_P384"},
    {CL_KEY_RSA_2048, "RSA_2048"},
    {CL_KEY_RSA_3072, "RSA_3072"},
};

const char *cl_key_type_name(cl_key_type t)
{
    for (size_t i = 0; i < sizeof(cl_key_types) / sizeof(cl_key_types[0]); i++)
        if (cl_key_types[i].t == t) return cl_key_types[i].name;
    return "none";
}

bool cl_key_type_parse(const char *s, cl_key_type *out)
{
    for (size_t i = 0; s != NULL && i < sizeof(cl_key_types) / sizeof(cl_key_types[0]); i++) {
        if (strcmp(s, cl_key_types[i].name) == 0) {
            *out = cl_key_types[i].t;
            return true;
        }
    }
    return false;
}

cl_status cl_key_generate(cl_key_type t, void **pkey)
{
    EVP_PKEY *k = NULL;
    switch (t) {
    case CL_KEY_EC_P256: k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
    case CL_KEY_EC_P384: k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"); break;
    case CL_KEY_RSA_2048: k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); break;
    case CL_KEY_RSA_3072: k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072); break;
    default: CL_FAIL(CL_ERR_USAGE, "no key type given");
    }
    if (k == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "generating a %s key", cl_key_type_name(t));
    *pkey = k;
    return CL_OK;
}

void cl_key_free(void *pkey) { EVP_PKEY_free(pkey); }

cl_status cl_key_spki(const void *pkey, cl_buf *out)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0) CL_FAIL_SSL(CL_ERR_CRYPTO, "encoding a public key");
    cl_status rc = cl_buf_append(out, der, (size_t)len);
    OPENSSL_free(der);
    return rc;
}

cl_status cl_key_private_pem(const void *pkey, cl_buf *out)
{
    BIO *b = BIO_new(BIO_s_secmem());
    if (b == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "out of memory");
    cl_status rc = CL_OK;
    char *p = NULL;
    if (PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding a private key");
    long n = BIO_get_mem_data(b, &p);
    CL_ENSURE_GOTO(n > 0 && p != NULL, CL_ERR_CRYPTO, "encoding a private key gave nothing");
    CL_GUARD_GOTO(cl_buf_append(out, p, (size_t)n));
out:
    BIO_free(b); /* secure-memory BIO: wiped */
    return rc;
}

/* --- the attribute ---------------------------------------------------------------- */

/* One ASN1_TYPE holding the DER of a SEQUENCE (for SEQUENCE OF, whose items ASN1_SEQUENCE_ANY
 * keeps as whole encodings). */
static CL_MUST_USE cl_status csr_seq_item(const ASN1_SEQUENCE_ANY *seq, ASN1_TYPE **out)
{
    unsigned char *der = NULL;
    int len = i2d_ASN1_SEQUENCE_ANY(seq, &der);
    if (len <= 0) CL_FAIL_SSL(CL_ERR_CRYPTO, "encoding a SEQUENCE");
    ASN1_STRING *s = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    ASN1_TYPE *t = ASN1_TYPE_new();
    cl_status rc = CL_OK;
    if (s == NULL || t == NULL || ASN1_STRING_set(s, der, len) != 1) {
        ASN1_STRING_free(s);
        ASN1_TYPE_free(t);
        rc = CL_RAISE_SSL(CL_ERR_NOMEM, "out of memory");
    } else {
        ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
        *out = t;
    }
    OPENSSL_free(der);
    return rc;
}

/* AttestationBundle { attestations { AttestationStatement { nitro OID, OCTET STRING doc } } }, DER. */
static CL_MUST_USE cl_status csr_bundle_encode(const uint8_t *doc, size_t doc_len, unsigned char **der, int *len)
{
    cl_status rc = CL_OK;
    ASN1_SEQUENCE_ANY *stmt = sk_ASN1_TYPE_new_null(), *list = sk_ASN1_TYPE_new_null(),
                      *bundle = sk_ASN1_TYPE_new_null();
    ASN1_TYPE *type = ASN1_TYPE_new(), *value = ASN1_TYPE_new(), *item = NULL;
    ASN1_OBJECT *oid = OBJ_txt2obj(CL_CSR_NITRO_DOC_OID, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    CL_ENSURE_GOTO(stmt && list && bundle && type && value && oid && os, CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(doc_len > 0 && doc_len <= INT32_MAX && ASN1_OCTET_STRING_set(os, doc, (int)doc_len) == 1,
                   CL_ERR_USAGE, "an attestation document of %zu bytes cannot go into a request", doc_len);
    ASN1_TYPE_set(type, V_ASN1_OBJECT, oid);
    oid = NULL;
    ASN1_TYPE_set(value, V_ASN1_OCTET_STRING, os);
    os = NULL;
    CL_ENSURE_GOTO(sk_ASN1_TYPE_push(stmt, type) > 0, CL_ERR_NOMEM, "out of memory");
    type = NULL;
    CL_ENSURE_GOTO(sk_ASN1_TYPE_push(stmt, value) > 0, CL_ERR_NOMEM, "out of memory");
    value = NULL;
    CL_GUARD_GOTO(csr_seq_item(stmt, &item));
    CL_ENSURE_GOTO(sk_ASN1_TYPE_push(list, item) > 0, CL_ERR_NOMEM, "out of memory");
    item = NULL;
    CL_GUARD_GOTO(csr_seq_item(list, &item));
    CL_ENSURE_GOTO(sk_ASN1_TYPE_push(bundle, item) > 0, CL_ERR_NOMEM, "out of memory");
    item = NULL;
    *der = NULL;
    *len = i2d_ASN1_SEQUENCE_ANY(bundle, der);
    if (*len <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding the attestation bundle");
out:
    sk_ASN1_TYPE_pop_free(stmt, ASN1_TYPE_free);
    sk_ASN1_TYPE_pop_free(list, ASN1_TYPE_free);
    sk_ASN1_TYPE_pop_free(bundle, ASN1_TYPE_free);
    ASN1_TYPE_free(type);
    ASN1_TYPE_free(value);
    ASN1_TYPE_free(item);
    ASN1_OBJECT_free(oid);
    ASN1_OCTET_STRING_free(os);
    return rc;
}

cl_status cl_csr_make(const void *pkey, const char *common_name, const uint8_t *doc, size_t doc_len, cl_buf *out)
{
    cl_status rc = CL_OK;
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    ASN1_OBJECT *attr = OBJ_txt2obj(CL_CSR_ATTESTATION_ATTR_OID, 1);
    unsigned char *bundle = NULL;
    int bundle_len = 0;
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    CL_ENSURE_GOTO(req && name && attr && b, CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(doc != NULL && doc_len > 0, CL_ERR_USAGE, "a request needs an attestation document");
    if (common_name != NULL && common_name[0] != '\0') {
        CL_ENSURE_GOTO(strlen(common_name) <= CL_CSR_MAX_CN, CL_ERR_USAGE, "common name '%s' is over %d characters",
                       common_name, CL_CSR_MAX_CN);
        if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) != 1)
            CL_FAIL_SSL_GOTO(CL_ERR_USAGE, "common name '%s'", common_name);
    }
    /* RFC 2986 section 4.1: version 0 (v1). */
    if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_subject_name(req, name) != 1 ||
        X509_REQ_set_pubkey(req, CL_UNCONST(pkey)) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "building the request");
    CL_GUARD_GOTO(csr_bundle_encode(doc, doc_len, &bundle, &bundle_len));
    /* A SEQUENCE value is its whole encoding (ASN1_TYPE keeps V_ASN1_SEQUENCE as DER). */
    if (X509_REQ_add1_attr_by_OBJ(req, attr, V_ASN1_SEQUENCE, bundle, bundle_len) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "adding the attestation attribute");
    const EVP_MD *md = EVP_PKEY_is_a(pkey, "EC") && EVP_PKEY_get_bits(pkey) > 256 ? EVP_sha384() : EVP_sha256();
    if (X509_REQ_sign(req, CL_UNCONST(pkey), md) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "signing the request");
    if (PEM_write_bio_X509_REQ(b, req) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding the request");
    long n = BIO_get_mem_data(b, &pem);
    CL_ENSURE_GOTO(n > 0 && pem != NULL, CL_ERR_CRYPTO, "encoding the request gave nothing");
    CL_GUARD_GOTO(cl_buf_append(out, pem, (size_t)n));
out:
    X509_REQ_free(req);
    X509_NAME_free(name);
    ASN1_OBJECT_free(attr);
    OPENSSL_free(bundle);
    BIO_free(b);
    return rc;
}

/* --- reading ------------------------------------------------------------------------ */

void cl_csr_init(cl_csr *c)
{
    memset(c, 0, sizeof(*c));
    cl_buf_init(&c->spki, 16384);
    cl_buf_init(&c->evidence, CL_CSR_MAX);
}

void cl_csr_free(cl_csr *c)
{
    cl_buf_free(&c->spki);
    cl_buf_free(&c->evidence);
    EVP_PKEY_free(c->pkey);
    c->pkey = NULL;
    c->has_evidence = false;
}

/* A whole DER SEQUENCE (exactly n bytes) as its items. */
static CL_MUST_USE cl_status csr_seq_parse(const unsigned char *p, long n, const char *what, ASN1_SEQUENCE_ANY **out)
{
    const unsigned char *q = p;
    *out = d2i_ASN1_SEQUENCE_ANY(NULL, &q, n);
    if (*out == NULL) {
        ERR_clear_error();
        CL_FAIL(CL_ERR_FORMAT, "the request's attestation attribute: %s is not a DER SEQUENCE", what);
    }
    if (q != p + n) {
        sk_ASN1_TYPE_pop_free(*out, ASN1_TYPE_free);
        *out = NULL;
        CL_FAIL(CL_ERR_FORMAT, "the request's attestation attribute: %ld bytes follow %s", (long)(p + n - q), what);
    }
    return CL_OK;
}

/* The bytes of an ASN1_TYPE that is a SEQUENCE (its whole DER), or a failure naming what. */
static CL_MUST_USE cl_status csr_seq_of(const ASN1_TYPE *t, const char *what, ASN1_SEQUENCE_ANY **out)
{
    CL_ENSURE(t != NULL && ASN1_TYPE_get(t) == V_ASN1_SEQUENCE, CL_ERR_FORMAT,
              "the request's attestation attribute: %s is not a SEQUENCE", what);
    return csr_seq_parse(ASN1_STRING_get0_data(t->value.sequence), ASN1_STRING_length(t->value.sequence), what, out);
}

/* The Nitro document of an AttestationBundle, appended to out (exactly one; others are ignored). */
static CL_MUST_USE cl_status csr_bundle_parse(const ASN1_TYPE *value, cl_buf *out, bool *found)
{
    cl_status rc = CL_OK;
    ASN1_SEQUENCE_ANY *bundle = NULL, *list = NULL, *stmt = NULL;
    ASN1_OBJECT *nitro = OBJ_txt2obj(CL_CSR_NITRO_DOC_OID, 1);
    CL_ENSURE_GOTO(nitro != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(csr_seq_of(value, "the AttestationBundle", &bundle));
    int nb = sk_ASN1_TYPE_num(bundle);
    CL_ENSURE_GOTO(nb == 1 || nb == 2, CL_ERR_FORMAT,
                   "the request's attestation attribute: an AttestationBundle has 1 or 2 members, not %d", nb);
    /* certs, when present, is a SEQUENCE OF certificates that the document does not need. */
    CL_ENSURE_GOTO(nb == 1 || ASN1_TYPE_get(sk_ASN1_TYPE_value(bundle, 1)) == V_ASN1_SEQUENCE, CL_ERR_FORMAT,
                   "the request's attestation attribute: the bundle's certs is not a SEQUENCE");
    CL_GUARD_GOTO(csr_seq_of(sk_ASN1_TYPE_value(bundle, 0), "attestations", &list));
    int ns = sk_ASN1_TYPE_num(list);
    CL_ENSURE_GOTO(ns >= 1 && ns <= 16, CL_ERR_FORMAT,
                   "the request's attestation attribute: %d attestation statements (1 to 16 are read)", ns);
    for (int i = 0; i < ns; i++) {
        sk_ASN1_TYPE_pop_free(stmt, ASN1_TYPE_free);
        stmt = NULL;
        CL_GUARD_GOTO(csr_seq_of(sk_ASN1_TYPE_value(list, i), "an AttestationStatement", &stmt));
        CL_ENSURE_GOTO(sk_ASN1_TYPE_num(stmt) == 2 && ASN1_TYPE_get(sk_ASN1_TYPE_value(stmt, 0)) == V_ASN1_OBJECT,
                       CL_ERR_FORMAT,
                       "the request's attestation attribute: statement %d is not SEQUENCE { type OBJECT IDENTIFIER, "
                       "stmt }",
                       i + 1);
        if (OBJ_cmp(sk_ASN1_TYPE_value(stmt, 0)->value.object, nitro) != 0) continue;
        const ASN1_TYPE *v = sk_ASN1_TYPE_value(stmt, 1);
        CL_ENSURE_GOTO(ASN1_TYPE_get(v) == V_ASN1_OCTET_STRING && ASN1_STRING_length(v->value.octet_string) > 0,
                       CL_ERR_FORMAT,
                       "the request's attestation attribute: the Nitro statement's stmt is not a non-empty OCTET "
                       "STRING");
        CL_ENSURE_GOTO(!*found, CL_ERR_FORMAT,
                       "the request's attestation attribute carries two Nitro attestation documents; send one");
        CL_GUARD_GOTO(cl_buf_append(out, ASN1_STRING_get0_data(v->value.octet_string),
                                    (size_t)ASN1_STRING_length(v->value.octet_string)));
        *found = true;
    }
out:
    sk_ASN1_TYPE_pop_free(bundle, ASN1_TYPE_free);
    sk_ASN1_TYPE_pop_free(list, ASN1_TYPE_free);
    sk_ASN1_TYPE_pop_free(stmt, ASN1_TYPE_free);
    ASN1_OBJECT_free(nitro);
    return rc;
}

/* "EC P-256", "RSA 2048 bits", or the algorithm's name, and the type when it is one we issue for. */
static void csr_key_kind(EVP_PKEY *k, cl_csr *out)
{
    char group[32] = "";
    size_t glen = 0;
    int bits = EVP_PKEY_get_bits(k);
    if (EVP_PKEY_is_a(k, "EC") &&
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) == 1) {
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) out->key_type = CL_KEY_EC_P256;
        if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) out->key_type = CL_KEY_EC_P384;
        (void)snprintf(out->key_desc, sizeof(out->key_desc), "EC %s", group);
    } else if (EVP_PKEY_is_a(k, "RSA")) {
        if (bits == 2048) out->key_type = CL_KEY_RSA_2048;
        if (bits == 3072) out->key_type = CL_KEY_RSA_3072;
        (void)snprintf(out->key_desc, sizeof(out->key_desc), "RSA %d bits", bits);
    } else {
        const char *nm = EVP_PKEY_get0_type_name(k);
        (void)snprintf(out->key_desc, sizeof(out->key_desc), "%s", nm != NULL ? nm : "an unknown kind");
    }
    ERR_clear_error();
}

cl_status cl_csr_parse(const uint8_t *p, size_t n, cl_csr *out)
{
    cl_status rc = CL_OK;
    X509_REQ *req = NULL;
    BIO *b = NULL;
    ASN1_OBJECT *attr_oid = OBJ_txt2obj(CL_CSR_ATTESTATION_ATTR_OID, 1);
    CL_ENSURE_GOTO(attr_oid != NULL, CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(p != NULL && n > 0, CL_ERR_FORMAT, "the certificate request is empty");
    CL_ENSURE_GOTO(n <= CL_CSR_MAX, CL_ERR_LIMIT, "the certificate request is %zu bytes, over %zu", n, CL_CSR_MAX);
    cl_reader r = cl_reader_make(p, n);
    (void)cl_reader_skip_any(&r, " \t\r\n");
    if (cl_reader_starts_with_str(&r, "-----BEGIN")) {
        b = BIO_new_mem_buf(p, (int)n);
        CL_ENSURE_GOTO(b != NULL, CL_ERR_NOMEM, "out of memory");
        req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
        if (req == NULL)
            CL_FAIL_SSL_GOTO(CL_ERR_FORMAT,
                             "the certificate request is not PEM \"CERTIFICATE REQUEST\" (PKCS#10, RFC 2986)");
    } else {
        const unsigned char *q = p;
        req = d2i_X509_REQ(NULL, &q, (long)n);
        if (req == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the certificate request is neither PEM nor DER PKCS#10");
        CL_ENSURE_GOTO(q == p + n, CL_ERR_FORMAT, "%zu bytes follow the DER certificate request", (size_t)(p + n - q));
    }
    CL_ENSURE_GOTO(X509_REQ_get_version(req) == 0, CL_ERR_FORMAT,
                   "the certificate request has version %ld; PKCS#10 defines version 0 (v1) only",
                   X509_REQ_get_version(req));
    out->pkey = X509_REQ_get_pubkey(req);
    if (out->pkey == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the certificate request's public key cannot be read");
    /* Proof of possession: the request is signed by the key it names (RFC 2986 section 3). */
    if (X509_REQ_verify(req, out->pkey) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_AUTH, "the certificate request's signature does not verify with its own public key");
    CL_GUARD_GOTO(cl_key_spki(out->pkey, &out->spki));
    csr_key_kind(out->pkey, out);
    int at = X509_REQ_get_attr_by_OBJ(req, attr_oid, -1);
    if (at >= 0) {
        CL_ENSURE_GOTO(X509_REQ_get_attr_by_OBJ(req, attr_oid, at) < 0, CL_ERR_FORMAT,
                       "the certificate request has two attestation attributes (%s); it may have one",
                       CL_CSR_ATTESTATION_ATTR_OID);
        X509_ATTRIBUTE *a = X509_REQ_get_attr(req, at);
        CL_ENSURE_GOTO(X509_ATTRIBUTE_count(a) == 1, CL_ERR_FORMAT,
                       "the request's attestation attribute has %d values; it may have one (COUNTS MAX 1)",
                       X509_ATTRIBUTE_count(a));
        CL_GUARD_GOTO(csr_bundle_parse(X509_ATTRIBUTE_get0_type(a, 0), &out->evidence, &out->has_evidence));
    }
out:
    if (rc != CL_OK) {
        EVP_PKEY_free(out->pkey);
        out->pkey = NULL;
        out->has_evidence = false;
        cl_buf_reset(&out->evidence);
        cl_buf_reset(&out->spki);
    }
    ERR_clear_error();
    X509_REQ_free(req);
    BIO_free(b);
    ASN1_OBJECT_free(attr_oid);
    return rc;
}
