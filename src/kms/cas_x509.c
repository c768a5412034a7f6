/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's CA and leaf certificates. See cas_x509.h. */
#include "cas_x509.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloister/crypto.h"

/* One extension from OpenSSL's configuration syntax ("critical,CA:TRUE"). */
static CL_MUST_USE cl_status kms_cas_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (e == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "certificate extension %s = %s", OBJ_nid2sn(nid), value);
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (ok != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "adding certificate extension %s", OBJ_nid2sn(nid));
    return CL_OK;
}

/* A positive, non-zero random serial of 16 bytes (RFC 5280 section 4.1.2.2), and its hex. */
static CL_MUST_USE cl_status kms_cas_serial(X509 *x, char hex[KMS_CAS_SERIAL_HEX + 1])
{
    uint8_t rnd[KMS_CAS_SERIAL_HEX / 2];
    CL_GUARD(cl_random(rnd, sizeof(rnd)));
    rnd[0] = (uint8_t)((rnd[0] & 0x7f) | 0x01);
    BIGNUM *bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    bool ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    if (!ok) CL_FAIL_SSL(CL_ERR_CRYPTO, "setting a serial number");
    if (hex != NULL) (void)cl_hex_encode(rnd, sizeof(rnd), hex, KMS_CAS_SERIAL_HEX + 1);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cas_x509_pem(const X509 *x, cl_buf *out)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    cl_status rc = CL_OK;
    if (b == NULL || PEM_write_bio_X509(b, CL_UNCONST(x)) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "writing a certificate");
    long n = BIO_get_mem_data(b, &p);
    CL_ENSURE_GOTO(n > 0 && p != NULL, CL_ERR_CRYPTO, "writing a certificate gave nothing");
    CL_GUARD_GOTO(cl_buf_append(out, p, (size_t)n));
out:
    BIO_free(b);
    return rc;
}

cl_status kms_cas_ca_make(const char *common_name, int64_t not_before, int64_t not_after, cl_buf *key_pem,
                          cl_buf *cert_pem)
{
    cl_status rc = CL_OK;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    X509 *x = X509_new();
    BIO *b = BIO_new(BIO_s_secmem());
    char *p = NULL;
    if (k == NULL || x == NULL || b == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "making a CA key");
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, k) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "building the CA certificate of '%s'", common_name);
    CL_GUARD_GOTO(kms_cas_serial(x, NULL));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_subject_key_identifier, "hash"));
    if (X509_sign(x, k, EVP_sha384()) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "signing the CA certificate");
    if (PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding the CA key");
    long n = BIO_get_mem_data(b, &p);
    CL_ENSURE_GOTO(n > 0 && p != NULL, CL_ERR_CRYPTO, "encoding the CA key gave nothing");
    CL_GUARD_GOTO(cl_buf_append(key_pem, p, (size_t)n));
    CL_GUARD_GOTO(kms_cas_x509_pem(x, cert_pem));
out:
    BIO_free(b); /* secure memory: wiped */
    X509_free(x);
    EVP_PKEY_free(k); /* OpenSSL clears the private scalar */
    return rc;
}

/* The CA's key and certificate from their PEM forms, checked to belong together. */
static CL_MUST_USE cl_status kms_cas_ca_load(const cl_buf *key_pem, const cl_buf *cert_pem, EVP_PKEY **key, X509 **cert)
{
    BIO *kb = BIO_new_mem_buf(key_pem->data, (int)key_pem->len);
    BIO *cb = BIO_new_mem_buf(cert_pem->data, (int)cert_pem->len);
    cl_status rc = CL_OK;
    *key = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    *cert = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    if (*key == NULL || *cert == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the session's stored CA does not load");
    if (X509_check_private_key(*cert, *key) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_KEY, "the session's stored CA key does not match its certificate");
out:
    BIO_free(kb);
    BIO_free(cb);
    if (rc != CL_OK) {
        EVP_PKEY_free(*key);
        X509_free(*cert);
        *key = NULL;
        *cert = NULL;
    }
    return rc;
}

cl_status kms_cas_leaf_sign(const cl_buf *ca_key_pem, const cl_buf *ca_cert_pem, const void *subject_pkey,
                            const kms_cas_leaf_params *p, cl_buf *leaf_pem, char serial[KMS_CAS_SERIAL_HEX + 1],
                            int64_t *not_after)
{
    cl_status rc = CL_OK;
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL, *x = X509_new();
    cl_buf san;
    cl_buf_init(&san, 8192);
    CL_ENSURE_GOTO(x != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_cas_ca_load(ca_key_pem, ca_cert_pem, &ca_key, &ca));
    /* The leaf ends no later than its CA: a chain with a longer-lived leaf does not verify past
     * the CA's end anyway, and the guest would renew for nothing. */
    int64_t end = p->not_after;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(ca), &tm) == 1) {
        int64_t ca_end = (int64_t)timegm(&tm);
        if (ca_end < end) end = ca_end;
    }
    CL_ENSURE_GOTO(end > p->not_before, CL_ERR_STATE,
                   "the session's CA has expired; give it a new definition (e.g. another common_name or valid_days) so "
                   "that a new CA is made");
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)p->not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)end) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)p->common_name, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 || X509_set_pubkey(x, CL_UNCONST(subject_pkey)) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "building the certificate for '%s'", p->common_name);
    CL_GUARD_GOTO(kms_cas_serial(x, serial));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    /* RSA keys may transport a TLS 1.2 RSA key exchange; EC keys sign only (RFC 5480 section 3). */
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_key_usage,
                              EVP_PKEY_is_a(subject_pkey, "RSA") ? "critical,digitalSignature,keyEncipherment"
                                                                 : "critical,digitalSignature"));
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth"));
    for (size_t i = 0; i < p->n_dns; i++) CL_GUARD_GOTO(cl_buf_printf(&san, "%sDNS:%s", i ? "," : "", p->dns[i]));
    if (p->n_dns > 0) CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_subject_alt_name, cl_buf_cstr(&san)));
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_subject_key_identifier, "hash"));
    CL_GUARD_GOTO(kms_cas_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"));
    if (X509_sign(x, ca_key, EVP_sha384()) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "signing the certificate");
    CL_GUARD_GOTO(kms_cas_x509_pem(x, leaf_pem));
    *not_after = end;
out:
    cl_buf_free(&san);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    X509_free(x);
    return rc;
}
