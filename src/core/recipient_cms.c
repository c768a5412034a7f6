/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CMS envelope of AWS KMS's CiphertextForRecipient (RFC 5652 section 6, EnvelopedData)
 * and the enclave's ephemeral key. See cloister/recipient.h.
 */
#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/nsm.h"
#include "cloister/recipient.h"

#define CL_RECIPIENT_SECURE_HEAP ((size_t)256 << 10)
#define CL_RECIPIENT_MAX_SPKI 1024

static pthread_once_t cl_secure_heap_once = PTHREAD_ONCE_INIT;

/* OpenSSL keeps RSA private components in its secure heap once it exists (BN_secure_new). */
static void cl_secure_heap_init(void)
{
    if (CRYPTO_secure_malloc_initialized()) return;
    int r = CRYPTO_secure_malloc_init(CL_RECIPIENT_SECURE_HEAP, 32);
    if (r == 0) CL_LOG_WARN("OpenSSL secure heap unavailable; recipient keys use the ordinary heap");
    if (r == 2) CL_LOG_INFO("OpenSSL secure heap is not locked in RAM (mlock refused)");
}

void cl_recipient_init(cl_recipient *r)
{
    r->pkey = NULL;
    cl_buf_init(&r->spki, CL_RECIPIENT_MAX_SPKI);
}

void cl_recipient_free(cl_recipient *r)
{
    EVP_PKEY_free(r->pkey); /* clears the private components */
    r->pkey = NULL;
    cl_buf_free(&r->spki);
}

static CL_MUST_USE cl_status cl_recipient_set_spki(cl_recipient *r)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(r->pkey, &der);
    if (n <= 0) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot encode the recipient public key");
    cl_buf_reset(&r->spki);
    cl_status rc = cl_buf_append(&r->spki, der, (size_t)n);
    OPENSSL_free(der);
    return rc;
}

cl_status cl_recipient_generate(cl_recipient *r)
{
    pthread_once(&cl_secure_heap_once, cl_secure_heap_init);
    EVP_PKEY_free(r->pkey);
    r->pkey = EVP_RSA_gen(CL_RECIPIENT_RSA_BITS);
    if (r->pkey == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot generate an RSA-%d recipient key", CL_RECIPIENT_RSA_BITS);
    return cl_recipient_set_spki(r);
}

static CL_MUST_USE cl_status cl_rsa_check(EVP_PKEY *k, const char *what)
{
    CL_ENSURE(EVP_PKEY_is_a(k, "RSA"), CL_ERR_UNSUPPORTED, "%s is not an RSA key (%s); RSAES_OAEP_SHA_256 needs RSA",
              what, EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "unknown type");
    int bits = EVP_PKEY_get_bits(k);
    CL_ENSURE(bits >= 2048 && bits <= 4096, CL_ERR_UNSUPPORTED, "%s is RSA-%d; 2048 to 4096 bits are accepted", what,
              bits);
    return CL_OK;
}

cl_status cl_recipient_load_pem(cl_recipient *r, const uint8_t *pem, size_t n)
{
    pthread_once(&cl_secure_heap_once, cl_secure_heap_init);
    CL_ENSURE(n > 0 && n <= 16384, CL_ERR_LIMIT, "recipient key PEM of %zu bytes is out of range", n);
    BIO *b = BIO_new_mem_buf(pem, (int)n);
    CL_ENSURE(b != NULL, CL_ERR_NOMEM, "out of memory");
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (k == NULL) CL_FAIL_SSL(CL_ERR_FORMAT, "recipient key is not a PEM private key");
    cl_status rc = cl_rsa_check(k, "the recipient key");
    if (rc != CL_OK) {
        EVP_PKEY_free(k);
        return rc;
    }
    EVP_PKEY_free(r->pkey);
    r->pkey = k;
    return cl_recipient_set_spki(r);
}

cl_status cl_recipient_private_pem(const cl_recipient *r, cl_buf *out)
{
    CL_ENSURE(r->pkey != NULL, CL_ERR_STATE, "no recipient key");
    BIO *b = BIO_new(BIO_s_secmem());
    CL_ENSURE(b != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = CL_OK;
    char *p = NULL;
    if (PEM_write_bio_PrivateKey(b, r->pkey, NULL, NULL, 0, NULL, NULL) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot encode the recipient key");
    long n = BIO_get_mem_data(b, &p);
    CL_GUARD_GOTO(cl_buf_append(out, p, (size_t)n));
out:
    BIO_free(b); /* secure-memory BIO: wiped on free */
    return rc;
}

cl_status cl_recipient_attest(const cl_recipient *r, int nsm_fd, const uint8_t *nonce, size_t nonce_len, cl_buf *doc)
{
    CL_ENSURE(r->pkey != NULL && r->spki.len > 0, CL_ERR_STATE, "no recipient key: call cl_recipient_generate first");
    CL_GUARD_CTX(cl_nsm_get_attestation_doc(nsm_fd, NULL, 0, nonce, nonce_len, r->spki.data, r->spki.len, doc),
                 "getting an attestation document for the recipient key");
    return CL_OK;
}

static pthread_once_t cl_carrier_once = PTHREAD_ONCE_INIT;
static EVP_PKEY *cl_carrier_key;

static void cl_carrier_key_init(void) { cl_carrier_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); }

/*
 * A certificate object that only carries the key and its subjectKeyIdentifier (RFC 5280
 * section 4.2.1.2, method 1: SHA-1 of the subjectPublicKey BIT STRING), because OpenSSL's
 * CMS names key-transport recipients through an X509. It never leaves this file. OpenSSL
 * reads extensions only from a certificate with a signature algorithm, so it is signed with
 * a throwaway Ed25519 key made once per process (the cheapest signature there is); the
 * signature means nothing and nothing checks it.
 */
static CL_MUST_USE cl_status cl_recipient_keyid_cert(EVP_PKEY *pub, X509 **out)
{
    pthread_once(&cl_carrier_once, cl_carrier_key_init);
    CL_ENSURE(cl_carrier_key != NULL, CL_ERR_CRYPTO, "cannot make the Ed25519 carrier key");
    cl_status rc = CL_OK;
    X509 *x = X509_new();
    X509_EXTENSION *ext = NULL;
    CL_ENSURE(x != NULL, CL_ERR_NOMEM, "out of memory");
    if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_pubkey(x, pub) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot hold the recipient key");
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, NULL, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot compute the recipient key identifier");
    if (X509_sign(x, cl_carrier_key, NULL) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot finish the recipient carrier");
    CL_ENSURE_GOTO(X509_get0_subject_key_id(x) != NULL, CL_ERR_CRYPTO, "recipient key identifier missing");
    *out = x;
    x = NULL;
out:
    X509_EXTENSION_free(ext);
    X509_free(x);
    return rc;
}

/*
 * Carriers of the keys recently sealed to, by SHA-256 of their SubjectPublicKeyInfo. An
 * enclave makes one key and sends it with each of its KMS calls; decoding the key and making
 * its carrier costs more than the RSA encryption itself (OpenSSL 3's decoders), so the KMS
 * keeps the last few. Entries are immutable once made and shared by reference.
 */
#define CL_CARRIER_CACHE 64

static pthread_mutex_t cl_carrier_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint8_t id[CL_SHA256_LEN];
    X509 *x;
} cl_carriers[CL_CARRIER_CACHE];
static size_t cl_carrier_next;

/* A carrier (new reference) for the RSA key `spki`, from the cache or made and cached. */
static CL_MUST_USE cl_status cl_recipient_carrier_for(const uint8_t *spki, size_t spki_len, X509 **out)
{
    CL_ENSURE(spki_len > 0 && spki_len <= CL_RECIPIENT_MAX_SPKI, CL_ERR_LIMIT,
              "recipient public key of %zu bytes is out of range", spki_len);
    uint8_t id[CL_SHA256_LEN];
    CL_GUARD(cl_sha256(spki, spki_len, id));
    X509 *x = NULL;
    (void)pthread_mutex_lock(&cl_carrier_lock);
    for (size_t i = 0; i < CL_CARRIER_CACHE && x == NULL; i++)
        if (cl_carriers[i].x != NULL && memcmp(cl_carriers[i].id, id, sizeof(id)) == 0 &&
            X509_up_ref(cl_carriers[i].x) == 1)
            x = cl_carriers[i].x;
    (void)pthread_mutex_unlock(&cl_carrier_lock);
    if (x != NULL) {
        *out = x;
        return CL_OK;
    }
    cl_status rc = CL_OK;
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (pub == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "recipient public key is not a DER SubjectPublicKeyInfo");
    CL_ENSURE_GOTO(p == spki + spki_len, CL_ERR_FORMAT, "recipient public key has bytes after its end");
    CL_GUARD_GOTO(cl_rsa_check(pub, "the recipient public key"));
    CL_GUARD_GOTO(cl_recipient_keyid_cert(pub, &x));
    /* Cached extensions are computed now, before other threads share it. */
    CL_ENSURE_GOTO(X509_get0_subject_key_id(x) != NULL, CL_ERR_CRYPTO, "recipient key identifier missing");
    (void)pthread_mutex_lock(&cl_carrier_lock);
    if (X509_up_ref(x) == 1) {
        X509_free(cl_carriers[cl_carrier_next].x);
        memcpy(cl_carriers[cl_carrier_next].id, id, sizeof(id));
        cl_carriers[cl_carrier_next].x = x;
        cl_carrier_next = (cl_carrier_next + 1) % CL_CARRIER_CACHE;
    }
    (void)pthread_mutex_unlock(&cl_carrier_lock);
    *out = x;
out:
    EVP_PKEY_free(pub);
    return rc;
}

cl_status cl_recipient_check_public_key(const uint8_t *spki, size_t spki_len)
{
    X509 *x = NULL;
    CL_GUARD(cl_recipient_carrier_for(spki, spki_len, &x));
    X509_free(x);
    return CL_OK;
}

cl_status cl_recipient_seal(const uint8_t *spki, size_t spki_len, const uint8_t *pt, size_t n, cl_buf *out)
{
    CL_ENSURE(n <= CL_RECIPIENT_MAX_PLAINTEXT, CL_ERR_LIMIT, "%zu bytes is too much to seal for a recipient", n);
    cl_status rc = CL_OK;
    X509 *x = NULL;
    CMS_ContentInfo *cms = NULL;
    BIO *in = NULL;
    unsigned char *der = NULL;
    CL_GUARD_GOTO(cl_recipient_carrier_for(spki, spki_len, &x));
    cms = CMS_EnvelopedData_create(EVP_aes_256_cbc()); /* RFC 3565: AES-256-CBC content */
    if (cms == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot create an EnvelopedData");
    /* CMS_USE_KEYID: rid = subjectKeyIdentifier (ktri version 2, RFC 5652 section 6.2.1);
     * CMS_KEY_PARAM: we set the OAEP parameters ourselves (RFC 4055 section 4.1). */
    CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, x, CMS_USE_KEYID | CMS_KEY_PARAM);
    if (ri == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot add the recipient");
    EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
    if (pctx == NULL || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set RSAES-OAEP SHA-256");
    /* Content carried inside (encryptedContent present), as CMS_encrypt does by default. */
    CL_ENSURE_GOTO(CMS_set_detached(cms, 0) == 1, CL_ERR_CRYPTO, "cannot attach the content");
    in = BIO_new_mem_buf(pt, (int)n);
    CL_ENSURE_GOTO(in != NULL, CL_ERR_NOMEM, "out of memory");
    if (CMS_final(cms, in, NULL, CMS_BINARY) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot encrypt for the recipient");
    int len = i2d_CMS_ContentInfo(cms, &der);
    if (len <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot encode the EnvelopedData");
    CL_GUARD_GOTO(cl_buf_append(out, der, (size_t)len));
out:
    OPENSSL_free(der);
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    X509_free(x);
    return rc;
}

/* --- opening ------------------------------------------------------------------ */

/* One DER header (tag byte, definite length) through the bounded reader. */
static CL_MUST_USE cl_status cl_der_header(cl_reader *r, uint8_t *tag, size_t *len)
{
    uint8_t l0;
    CL_GUARD(cl_reader_u8(r, tag));
    CL_ENSURE((*tag & 0x1f) != 0x1f, CL_ERR_FORMAT, "CMS: high tag number at offset %zu", cl_reader_offset(r));
    CL_GUARD(cl_reader_u8(r, &l0));
    if (l0 < 0x80) {
        *len = l0;
    } else {
        unsigned nb = l0 & 0x7f;
        CL_ENSURE(nb >= 1 && nb <= 3, CL_ERR_FORMAT, "CMS: bad length at offset %zu", cl_reader_offset(r));
        size_t v = 0;
        for (unsigned i = 0; i < nb; i++) {
            uint8_t b;
            CL_GUARD(cl_reader_u8(r, &b));
            v = (v << 8) | b;
        }
        *len = v;
    }
    CL_ENSURE(*len <= cl_reader_remaining(r), CL_ERR_FORMAT, "CMS: length %zu at offset %zu runs past the end", *len,
              cl_reader_offset(r));
    return CL_OK;
}

static CL_MUST_USE cl_status cl_der_expect(cl_reader *r, uint8_t want, size_t *len, const char *what)
{
    uint8_t tag;
    CL_GUARD(cl_der_header(r, &tag, len));
    CL_ENSURE(tag == want, CL_ERR_FORMAT, "CMS: expected %s (tag 0x%02x), found tag 0x%02x", what, want, tag);
    return CL_OK;
}

/*
 * The content-encryption algorithm, which OpenSSL's CMS API has no getter for. Walked over
 * OpenSSL's own DER re-encoding of the parsed structure (so BER input is normalised first):
 * ContentInfo { OID, [0] EnvelopedData { version, [0] originatorInfo?, SET recipientInfos,
 * EncryptedContentInfo { OID, AlgorithmIdentifier, ... } } } (RFC 5652 sections 3, 6.1).
 */
static CL_MUST_USE cl_status cl_recipient_check_content_alg(CMS_ContentInfo *cms)
{
    cl_status rc = CL_OK;
    unsigned char *der = NULL;
    X509_ALGOR *alg = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);
    if (n <= 0) CL_FAIL_SSL(CL_ERR_FORMAT, "CMS: cannot re-encode");
    cl_reader r = cl_reader_make(der, (size_t)n);
    size_t len;
    CL_GUARD_GOTO(cl_der_expect(&r, 0x30, &len, "ContentInfo"));
    CL_GUARD_GOTO(cl_der_expect(&r, 0x06, &len, "contentType"));
    CL_GUARD_GOTO(cl_reader_skip(&r, len));
    CL_GUARD_GOTO(cl_der_expect(&r, 0xa0, &len, "[0] content"));
    CL_GUARD_GOTO(cl_der_expect(&r, 0x30, &len, "EnvelopedData"));
    CL_GUARD_GOTO(cl_der_expect(&r, 0x02, &len, "version"));
    CL_GUARD_GOTO(cl_reader_skip(&r, len));
    uint8_t tag;
    CL_GUARD_GOTO(cl_der_header(&r, &tag, &len));
    if (tag == 0xa0) { /* originatorInfo */
        CL_GUARD_GOTO(cl_reader_skip(&r, len));
        CL_GUARD_GOTO(cl_der_header(&r, &tag, &len));
    }
    CL_ENSURE_GOTO(tag == 0x31, CL_ERR_FORMAT, "CMS: expected recipientInfos, found tag 0x%02x", tag);
    CL_GUARD_GOTO(cl_reader_skip(&r, len));
    CL_GUARD_GOTO(cl_der_expect(&r, 0x30, &len, "EncryptedContentInfo"));
    CL_GUARD_GOTO(cl_der_expect(&r, 0x06, &len, "contentType"));
    CL_GUARD_GOTO(cl_reader_skip(&r, len));
    cl_reader alg_start = r;
    CL_GUARD_GOTO(cl_der_expect(&r, 0x30, &len, "contentEncryptionAlgorithm"));
    CL_GUARD_GOTO(cl_reader_skip(&r, len));
    const uint8_t *alg_der = NULL;
    size_t alg_len = 0;
    CL_GUARD_GOTO(cl_reader_since(&alg_start, &r, &alg_der, &alg_len));
    const unsigned char *p = alg_der;
    alg = d2i_X509_ALGOR(NULL, &p, (long)alg_len);
    CL_ENSURE_GOTO(alg != NULL, CL_ERR_FORMAT, "CMS: bad contentEncryptionAlgorithm");
    const ASN1_OBJECT *oid;
    int ptype;
    const void *pval;
    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    int nid = OBJ_obj2nid(oid);
    CL_ENSURE_GOTO(nid == NID_aes_256_cbc, CL_ERR_UNSUPPORTED,
                   "CMS content is encrypted with %s; AWS KMS uses AES-256-CBC",
                   nid != NID_undef ? OBJ_nid2sn(nid) : "an unknown algorithm");
    CL_ENSURE_GOTO(ptype == V_ASN1_OCTET_STRING && ASN1_STRING_length(pval) == 16, CL_ERR_FORMAT,
                   "CMS: AES-256-CBC needs a 16-byte IV");
out:
    X509_ALGOR_free(alg);
    OPENSSL_free(der);
    return rc;
}

static int cl_algor_nid(const X509_ALGOR *a)
{
    const ASN1_OBJECT *o;
    X509_ALGOR_get0(&o, NULL, NULL, a);
    return OBJ_obj2nid(o);
}

/* RSAES-OAEP-params (RFC 8017 appendix A.2.1; RFC 4055 section 4.1): SHA-256, MGF1 with
 * SHA-256, and the default empty label. The defaults (SHA-1) are refused. */
static CL_MUST_USE cl_status cl_recipient_check_oaep(const X509_ALGOR *alg)
{
    cl_status rc = CL_OK;
    RSA_OAEP_PARAMS *oaep = NULL;
    X509_ALGOR *mgf_hash = NULL;
    int nid = cl_algor_nid(alg);
    CL_ENSURE(nid == NID_rsaesOaep, CL_ERR_UNSUPPORTED,
              "CMS key transport is %s; RSAES_OAEP_SHA_256 (id-RSAES-OAEP) is required",
              nid != NID_undef ? OBJ_nid2sn(nid) : "an unknown algorithm");
    const void *pval;
    int ptype;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    CL_ENSURE(ptype == V_ASN1_SEQUENCE, CL_ERR_UNSUPPORTED,
              "RSAES-OAEP with default parameters is SHA-1; SHA-256 is "
              "required");
    const ASN1_STRING *seq = pval;
    const unsigned char *p = ASN1_STRING_get0_data(seq);
    oaep = d2i_RSA_OAEP_PARAMS(NULL, &p, ASN1_STRING_length(seq));
    CL_ENSURE_GOTO(oaep != NULL, CL_ERR_FORMAT, "CMS: bad RSAES-OAEP parameters");
    CL_ENSURE_GOTO(oaep->hashFunc != NULL && cl_algor_nid(oaep->hashFunc) == NID_sha256, CL_ERR_UNSUPPORTED,
                   "RSAES-OAEP hash is not SHA-256");
    CL_ENSURE_GOTO(oaep->maskGenFunc != NULL && cl_algor_nid(oaep->maskGenFunc) == NID_mgf1, CL_ERR_UNSUPPORTED,
                   "RSAES-OAEP mask generation is not MGF1 with SHA-256");
    X509_ALGOR_get0(NULL, &ptype, &pval, oaep->maskGenFunc);
    CL_ENSURE_GOTO(ptype == V_ASN1_SEQUENCE, CL_ERR_UNSUPPORTED, "RSAES-OAEP MGF1 hash is not SHA-256");
    p = ASN1_STRING_get0_data(pval);
    mgf_hash = d2i_X509_ALGOR(NULL, &p, ASN1_STRING_length(pval));
    CL_ENSURE_GOTO(mgf_hash != NULL && cl_algor_nid(mgf_hash) == NID_sha256, CL_ERR_UNSUPPORTED,
                   "RSAES-OAEP MGF1 hash is not SHA-256");
    if (oaep->pSourceFunc != NULL) {
        X509_ALGOR_get0(NULL, &ptype, &pval, oaep->pSourceFunc);
        CL_ENSURE_GOTO(cl_algor_nid(oaep->pSourceFunc) == NID_pSpecified && ptype == V_ASN1_OCTET_STRING &&
                           ASN1_STRING_length(pval) == 0,
                       CL_ERR_UNSUPPORTED, "RSAES-OAEP with a label is not what KMS sends");
    }
out:
    X509_ALGOR_free(mgf_hash);
    RSA_OAEP_PARAMS_free(oaep);
    return rc;
}

cl_status cl_recipient_open(const cl_recipient *r, const uint8_t *der, size_t n, cl_buf *plaintext)
{
    CL_ENSURE(r->pkey != NULL, CL_ERR_STATE, "no recipient key");
    CL_ENSURE(n > 0 && n <= CL_RECIPIENT_MAX_CMS, CL_ERR_LIMIT, "CiphertextForRecipient of %zu bytes is out of range",
              n);
    cl_status rc = CL_OK;
    X509 *me = NULL;
    BIO *out = NULL;
    CMS_RecipientInfo *ri = NULL;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)n);
    if (cms == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "CiphertextForRecipient is not a CMS ContentInfo");
    CL_ENSURE_GOTO(p == der + n, CL_ERR_FORMAT, "CiphertextForRecipient has %zu bytes after the CMS structure",
                   (size_t)(der + n - p));
    int type = OBJ_obj2nid(CMS_get0_type(cms));
    CL_ENSURE_GOTO(type == NID_pkcs7_enveloped, CL_ERR_FORMAT, "CiphertextForRecipient is CMS %s, not EnvelopedData",
                   type != NID_undef ? OBJ_nid2sn(type) : "of an unknown type");
    STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
    CL_ENSURE_GOTO(ris != NULL && sk_CMS_RecipientInfo_num(ris) == 1, CL_ERR_FORMAT,
                   "CiphertextForRecipient has %d recipients; KMS sends exactly one",
                   ris != NULL ? sk_CMS_RecipientInfo_num(ris) : 0);
    ri = sk_CMS_RecipientInfo_value(ris, 0);
    CL_ENSURE_GOTO(CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS, CL_ERR_UNSUPPORTED,
                   "CiphertextForRecipient's recipient is not KeyTransRecipientInfo");
    ASN1_OCTET_STRING *keyid = NULL;
    X509_NAME *issuer = NULL;
    ASN1_INTEGER *serial = NULL;
    CL_ENSURE_GOTO(CMS_RecipientInfo_ktri_get0_signer_id(ri, &keyid, &issuer, &serial) == 1 && keyid != NULL,
                   CL_ERR_FORMAT, "CiphertextForRecipient's recipient is not named by subjectKeyIdentifier");
    CL_GUARD_GOTO(cl_recipient_keyid_cert(r->pkey, &me));
    CL_ENSURE_GOTO(CMS_RecipientInfo_ktri_cert_cmp(ri, me) == 0, CL_ERR_KEY,
                   "CiphertextForRecipient is for another key (its subjectKeyIdentifier is not this enclave's)");
    X509_ALGOR *kalg = NULL;
    CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &kalg);
    CL_ENSURE_GOTO(kalg != NULL, CL_ERR_FORMAT, "CMS: no key transport algorithm");
    CL_GUARD_GOTO(cl_recipient_check_oaep(kalg));
    CL_GUARD_GOTO(cl_recipient_check_content_alg(cms));
    /* Lend the key for this one recipient (set0 takes a reference, which set0(NULL) drops). */
    CL_ENSURE_GOTO(EVP_PKEY_up_ref(r->pkey) == 1, CL_ERR_CRYPTO, "cannot reference the recipient key");
    CMS_RecipientInfo_set0_pkey(ri, r->pkey);
    int ok = CMS_RecipientInfo_decrypt(cms, ri);
    CMS_RecipientInfo_set0_pkey(ri, NULL);
    if (ok != 1) CL_FAIL_SSL_GOTO(CL_ERR_AUTH, "CiphertextForRecipient does not decrypt with this enclave's key");
    out = BIO_new(BIO_s_secmem());
    CL_ENSURE_GOTO(out != NULL, CL_ERR_NOMEM, "out of memory");
    if (CMS_decrypt(cms, NULL, NULL, NULL, out, CMS_BINARY) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_AUTH, "CiphertextForRecipient content does not decrypt (tampered?)");
    char *pt = NULL;
    long ptn = BIO_get_mem_data(out, &pt);
    CL_ENSURE_GOTO(ptn >= 0 && (size_t)ptn <= CL_RECIPIENT_MAX_PLAINTEXT, CL_ERR_LIMIT,
                   "CiphertextForRecipient holds %ld bytes; at most %zu are expected", ptn, CL_RECIPIENT_MAX_PLAINTEXT);
    size_t before = plaintext->len;
    rc = cl_buf_append(plaintext, pt, (size_t)ptn);
    if (rc != CL_OK) cl_buf_truncate(plaintext, before);
out:
    BIO_free(out); /* secure-memory BIO: wiped */
    CMS_ContentInfo_free(cms);
    X509_free(me);
    return rc;
}
