/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Creating Nitro-format attestation documents (the sim backend's platform role)
 * and the local attestation PKI: a P-384 root and the platform certificates it
 * issues, with the extensions Nitro's certificates carry
 * (aws-nitro-enclaves-nsm-api docs/attestation_process.md, 3.2.3.2-3.2.3.3).
 * COSE_Sign1 per RFC 8152 sections 4.2 and 4.4, ES384 per section 8.1.
 */
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "cloister/attestation.h"
#include "cloister/crypto.h"

#include "attestation_internal.h"

/* --- keys ---------------------------------------------------------------- */

static CL_MUST_USE cl_status key_check_p384(EVP_PKEY *pk, const char *what)
{
    char group[64] = "";
    size_t glen = 0;
    CL_ENSURE(EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
                  EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) == 1 && strcmp(group, "secp384r1") == 0,
              CL_ERR_KEY, "%s is not an EC P-384 key (ES384 needs one)", what);
    return CL_OK;
}

cl_status cl_attest_key_generate(cl_attest_key *k)
{
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (k->pkey == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "generating a P-384 key");
    return CL_OK;
}

cl_status cl_attest_key_load_pem(cl_attest_key *k, const uint8_t *pem, size_t n)
{
    k->pkey = NULL;
    CL_ENSURE(n > 0 && n < (1u << 16), CL_ERR_FORMAT, "private key PEM of %zu bytes", n);
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    if (bio == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "BIO_new_mem_buf");
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (pk == NULL) CL_FAIL_SSL(CL_ERR_FORMAT, "not a PEM private key");
    cl_status rc = key_check_p384(pk, "the private key");
    if (rc != CL_OK) {
        EVP_PKEY_free(pk);
        return rc;
    }
    k->pkey = pk;
    return CL_OK;
}

cl_status cl_attest_key_to_pem(const cl_attest_key *k, cl_buf *out)
{
    cl_status rc = CL_OK;
    BIO *bio = BIO_new(BIO_s_secmem());
    char *p = NULL;
    if (bio == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "BIO_new");
    if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "writing the private key as PEM");
    long len = BIO_get_mem_data(bio, &p);
    CL_ENSURE_GOTO(len > 0, CL_ERR_CRYPTO, "empty PEM output");
    CL_GUARD_GOTO(cl_buf_append(out, p, (size_t)len));
out:
    BIO_free(bio);
    return rc;
}

void cl_attest_key_free(cl_attest_key *k)
{
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
}

/* --- certificates -------------------------------------------------------- */

static CL_MUST_USE cl_status add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "certificate extension %s", value);
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (ok != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "adding extension %s", value);
    return CL_OK;
}

cl_status cl_attest_cert_issue(const cl_attest_key *subject, const cl_attest_cert_params *params,
                               const cl_attest_key *issuer, const uint8_t *issuer_der, size_t issuer_len, cl_buf *out)
{
    cl_status rc = CL_OK;
    X509 *x = NULL, *iss = NULL;
    BIGNUM *serial = NULL;
    uint8_t *der = NULL;
    uint8_t rnd[16];
    char bc[64];
    const char *cn = params->common_name;
    CL_ENSURE(cn != NULL && cn[0] != '\0' && strlen(cn) <= 64, CL_ERR_USAGE,
              "certificate common name must be 1 to 64 characters");
    CL_ENSURE(params->not_after > params->not_before, CL_ERR_USAGE, "certificate validity ends before it starts");
    CL_GUARD(key_check_p384(subject->pkey, "the subject key"));
    const cl_attest_key *signer = issuer_der != NULL ? issuer : subject;
    CL_ENSURE(signer != NULL && signer->pkey != NULL, CL_ERR_USAGE, "an issuer certificate needs the issuer's key");
    CL_GUARD(key_check_p384(signer->pkey, "the issuer key"));
    if (issuer_der != NULL) {
        const uint8_t *q = issuer_der;
        iss = d2i_X509(NULL, &q, (long)issuer_len);
        if (iss == NULL || q != issuer_der + issuer_len)
            CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "issuer is not a DER certificate");
        if (X509_check_private_key(iss, signer->pkey) != 1)
            CL_FAIL_SSL_GOTO(CL_ERR_KEY, "the issuer key does not match the issuer certificate");
    }
    x = X509_new();
    if (x == NULL) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "X509_new");
    CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
    rnd[0] &= 0x7f; /* positive serial */
    rnd[0] |= 0x01; /* and non-zero */
    serial = BN_bin2bn(rnd, sizeof(rnd), NULL);
    X509_NAME *name = X509_get_subject_name(x);
    if (serial == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)params->not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)params->not_after) == NULL ||
        X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC, (const unsigned char *)"US", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Cloister", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, (const unsigned char *)"sim", -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, iss != NULL ? X509_get_subject_name(iss) : name) != 1 ||
        X509_set_pubkey(x, subject->pkey) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "building the certificate");
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, iss != NULL ? iss : x, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    if (params->ca) {
        if (params->path_len >= 0)
            (void)snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", params->path_len);
        else
            (void)snprintf(bc, sizeof(bc), "critical,CA:TRUE");
        CL_GUARD_GOTO(add_ext(x, &ctx, NID_basic_constraints, bc));
        CL_GUARD_GOTO(add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"));
    } else {
        CL_GUARD_GOTO(add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
        CL_GUARD_GOTO(add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature"));
    }
    CL_GUARD_GOTO(add_ext(x, &ctx, NID_subject_key_identifier, "hash"));
    if (iss != NULL) CL_GUARD_GOTO(add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));
    if (X509_sign(x, signer->pkey, EVP_sha384()) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "signing the certificate");
    int len = i2d_X509(x, &der);
    if (len <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding the certificate");
    CL_GUARD_GOTO(cl_buf_append(out, der, (size_t)len));
out:
    OPENSSL_free(der);
    BN_free(serial);
    X509_free(x);
    X509_free(iss);
    return rc;
}

cl_status cl_attest_cert_to_pem(const uint8_t *der, size_t n, cl_buf *out)
{
    cl_status rc = CL_OK;
    const uint8_t *q = der;
    char *p = NULL;
    BIO *bio = NULL;
    X509 *x = d2i_X509(NULL, &q, (long)n);
    if (x == NULL || q != der + n) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "not a DER certificate");
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509(bio, x) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "writing PEM");
    long len = BIO_get_mem_data(bio, &p);
    CL_ENSURE_GOTO(len > 0, CL_ERR_CRYPTO, "empty PEM output");
    CL_GUARD_GOTO(cl_buf_append(out, p, (size_t)len));
out:
    BIO_free(bio);
    X509_free(x);
    return rc;
}

/* --- documents ----------------------------------------------------------- */

static CL_MUST_USE cl_status put_text(cl_buf *b, const char *s)
{
    size_t n = strlen(s);
    CL_GUARD(cl_attest_cbor_head(b, 3, n));
    return cl_buf_append(b, s, n);
}

static CL_MUST_USE cl_status put_bytes(cl_buf *b, const uint8_t *p, size_t n)
{
    CL_GUARD(cl_attest_cbor_head(b, 2, n));
    return n > 0 ? cl_buf_append(b, p, n) : CL_OK;
}

static CL_MUST_USE cl_status put_optional(cl_buf *b, const char *name, const cl_attest_blob *v, size_t min)
{
    CL_GUARD(put_text(b, name));
    if (v == NULL) return cl_attest_cbor_head(b, 7, 0); /* null, as Nitro encodes an absent field */
    CL_ENSURE(v->len >= min && v->len <= CL_ATTEST_MAX_FIELD_LEN, CL_ERR_LIMIT, "%s is %zu bytes, expected %zu to %d",
              name, v->len, min, CL_ATTEST_MAX_FIELD_LEN);
    return put_bytes(b, v->data, v->len);
}

cl_status cl_attest_payload_encode(const cl_attest_create_params *p, cl_buf *b)
{
    size_t mid = p->module_id != NULL ? strlen(p->module_id) : 0;
    CL_ENSURE(mid >= 1 && mid <= CL_ATTEST_MAX_MODULE_ID, CL_ERR_USAGE, "module_id must be 1 to %d characters",
              CL_ATTEST_MAX_MODULE_ID);
    CL_ENSURE(p->timestamp_ms > 0, CL_ERR_USAGE, "timestamp must be after 1970");
    CL_ENSURE(p->pcr_count >= 1 && p->pcr_count <= CL_ATTEST_MAX_PCRS && p->pcrs != NULL, CL_ERR_USAGE,
              "a document carries 1 to %d PCRs, not %zu", CL_ATTEST_MAX_PCRS, p->pcr_count);
    CL_ENSURE(p->certificate.len >= 1 && p->certificate.len <= CL_ATTEST_MAX_CERT_LEN, CL_ERR_LIMIT,
              "certificate is %zu bytes, expected 1 to %d", p->certificate.len, CL_ATTEST_MAX_CERT_LEN);
    CL_ENSURE(p->cabundle_len >= 1 && p->cabundle_len <= CL_ATTEST_MAX_CABUNDLE, CL_ERR_USAGE,
              "cabundle holds 1 to %d certificates, not %zu", CL_ATTEST_MAX_CABUNDLE, p->cabundle_len);
    /* Keys in the order Nitro writes them. */
    CL_GUARD(cl_attest_cbor_head(b, 5, 9));
    CL_GUARD(put_text(b, "module_id"));
    CL_GUARD(put_text(b, p->module_id));
    CL_GUARD(put_text(b, "digest"));
    CL_GUARD(put_text(b, "SHA384"));
    CL_GUARD(put_text(b, "timestamp"));
    CL_GUARD(cl_attest_cbor_head(b, 0, p->timestamp_ms));
    CL_GUARD(put_text(b, "pcrs"));
    CL_GUARD(cl_attest_cbor_head(b, 5, p->pcr_count));
    for (size_t i = 0; i < p->pcr_count; i++) {
        CL_GUARD(cl_attest_cbor_head(b, 0, i));
        CL_GUARD(put_bytes(b, p->pcrs[i], CL_ATTEST_PCR_LEN));
    }
    CL_GUARD(put_text(b, "certificate"));
    CL_GUARD(put_bytes(b, p->certificate.data, p->certificate.len));
    CL_GUARD(put_text(b, "cabundle"));
    CL_GUARD(cl_attest_cbor_head(b, 4, p->cabundle_len));
    for (size_t i = 0; i < p->cabundle_len; i++) {
        CL_ENSURE(p->cabundle[i].len >= 1 && p->cabundle[i].len <= CL_ATTEST_MAX_CERT_LEN, CL_ERR_LIMIT,
                  "cabundle[%zu] is %zu bytes, expected 1 to %d", i, p->cabundle[i].len, CL_ATTEST_MAX_CERT_LEN);
        CL_GUARD(put_bytes(b, p->cabundle[i].data, p->cabundle[i].len));
    }
    CL_GUARD(put_optional(b, "public_key", p->public_key, 1));
    CL_GUARD(put_optional(b, "user_data", p->user_data, 0));
    CL_GUARD(put_optional(b, "nonce", p->nonce, 0));
    CL_ENSURE(b->len <= CL_ATTEST_MAX_PAYLOAD_LEN, CL_ERR_LIMIT, "payload is %zu bytes, at most %d", b->len,
              CL_ATTEST_MAX_PAYLOAD_LEN);
    return CL_OK;
}

/* ECDSA P-384 over SHA-384 (EVP_DigestSign), returned as r||s (RFC 8152 section 8.1). */
static CL_MUST_USE cl_status sign_es384(EVP_PKEY *key, const cl_buf *tbs, uint8_t out[CL_ATTEST_SIG_LEN])
{
    cl_status rc = CL_OK;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[160];
    size_t der_len = sizeof(der);
    ECDSA_SIG *sig = NULL;
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key) != 1 ||
        EVP_DigestSign(md, der, &der_len, tbs->data, tbs->len) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "ES384 signing");
    const uint8_t *q = der;
    sig = d2i_ECDSA_SIG(NULL, &q, (long)der_len);
    if (sig == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "decoding the ECDSA signature");
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, CL_ATTEST_SIG_LEN / 2) != CL_ATTEST_SIG_LEN / 2 ||
        BN_bn2binpad(s, out + CL_ATTEST_SIG_LEN / 2, CL_ATTEST_SIG_LEN / 2) != CL_ATTEST_SIG_LEN / 2)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding the signature as r||s");
out:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

cl_status cl_attest_cose_encode(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len,
                                const uint8_t sig[CL_ATTEST_SIG_LEN], bool tagged, cl_buf *out)
{
    /* COSE_Sign1 [protected, {}, payload, signature] (RFC 8152 section 4.2); tag 18 when asked */
    if (tagged) CL_GUARD(cl_attest_cbor_head(out, 6, 18));
    CL_GUARD(cl_attest_cbor_head(out, 4, 4));
    CL_GUARD(put_bytes(out, prot, prot_len));
    CL_GUARD(cl_attest_cbor_head(out, 5, 0));
    CL_GUARD(put_bytes(out, payload, payload_len));
    return put_bytes(out, sig, CL_ATTEST_SIG_LEN);
}

cl_status cl_attest_cose_sign(const cl_attest_key *key, const uint8_t *payload, size_t payload_len, bool tagged,
                              cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_buf prot, tbs;
    uint8_t sig[CL_ATTEST_SIG_LEN];
    cl_buf_init(&prot, 16);
    cl_buf_init(&tbs, CL_ATTEST_MAX_PAYLOAD_LEN + 256);
    CL_ENSURE_GOTO(key != NULL && key->pkey != NULL, CL_ERR_USAGE, "no signing key");
    CL_GUARD_GOTO(key_check_p384(key->pkey, "the signing key"));
    /* protected header {1: -35}: alg ES384 */
    CL_GUARD_GOTO(cl_attest_cbor_head(&prot, 5, 1));
    CL_GUARD_GOTO(cl_attest_cbor_head(&prot, 0, 1));
    CL_GUARD_GOTO(cl_attest_cbor_head(&prot, 1, 34));
    CL_GUARD_GOTO(cl_attest_sig_structure(prot.data, prot.len, payload, payload_len, &tbs));
    CL_GUARD_GOTO(sign_es384(key->pkey, &tbs, sig));
    CL_GUARD_GOTO(cl_attest_cose_encode(prot.data, prot.len, payload, payload_len, sig, tagged, out));
out:
    cl_buf_free(&prot);
    cl_buf_free(&tbs);
    return rc;
}

cl_status cl_attest_doc_create(const cl_attest_create_params *params, const cl_attest_key *key, cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_buf payload;
    X509 *cert = NULL;
    cl_buf_init(&payload, CL_ATTEST_MAX_PAYLOAD_LEN);
    CL_ENSURE_GOTO(key != NULL && key->pkey != NULL, CL_ERR_USAGE, "no signing key");
    const uint8_t *q = params->certificate.data;
    cert = d2i_X509(NULL, &q, (long)params->certificate.len);
    if (cert == NULL || q != params->certificate.data + params->certificate.len)
        CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the signing certificate is not a DER certificate");
    if (X509_check_private_key(cert, key->pkey) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_KEY, "the signing key does not match the signing certificate");
    CL_GUARD_GOTO(cl_attest_payload_encode(params, &payload));
    /* untagged, as Nitro sends it */
    CL_GUARD_GOTO(cl_attest_cose_sign(key, payload.data, payload.len, false, out));
out:
    X509_free(cert);
    cl_buf_free(&payload);
    return rc;
}
