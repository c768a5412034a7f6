/* SPDX-License-Identifier: Apache-2.0 */
#include "asym.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#define KMS_PRIVATE_AAD "cloister-kms/private-key/v1"

static const kms_sig_alg kms_sig_algs[] = {
    {"RSASSA_PSS_SHA_256", KMS_SIG_RSA_PSS, "SHA256", 32},
    {"RSASSA_PSS_SHA_384", KMS_SIG_RSA_PSS, "SHA384", 48},
    {"RSASSA_PSS_SHA_512", KMS_SIG_RSA_PSS, "SHA512", 64},
    {"RSASSA_PKCS1_V1_5_SHA_256", KMS_SIG_RSA_PKCS1, "SHA256", 32},
    {"RSASSA_PKCS1_V1_5_SHA_384", KMS_SIG_RSA_PKCS1, "SHA384", 48},
    {"RSASSA_PKCS1_V1_5_SHA_512", KMS_SIG_RSA_PKCS1, "SHA512", 64},
    {"ECDSA_SHA_256", KMS_SIG_ECDSA, "SHA256", 32},
    {"ECDSA_SHA_384", KMS_SIG_ECDSA, "SHA384", 48},
    {"ECDSA_SHA_512", KMS_SIG_ECDSA, "SHA512", 64},
};

static const kms_enc_alg kms_enc_algs[] = {
    {"RSAES_OAEP_SHA_1", "SHA1", 20},
    {"RSAES_OAEP_SHA_256", "SHA256", 32},
};

const kms_sig_alg *kms_sig_alg_find(const char *name)
{
    for (size_t i = 0; i < sizeof(kms_sig_algs) / sizeof(kms_sig_algs[0]); i++)
        if (strcmp(kms_sig_algs[i].name, name) == 0) return &kms_sig_algs[i];
    return NULL;
}

const kms_enc_alg *kms_enc_alg_find(const char *name)
{
    for (size_t i = 0; i < sizeof(kms_enc_algs) / sizeof(kms_enc_algs[0]); i++)
        if (strcmp(kms_enc_algs[i].name, name) == 0) return &kms_enc_algs[i];
    return NULL;
}

size_t kms_oaep_max(unsigned rsa_bits, const kms_enc_alg *alg)
{
    size_t k = rsa_bits / 8;
    return k > 2 * alg->md_len + 2 ? k - 2 * alg->md_len - 2 : 0;
}

cl_status kms_asym_keygen(const kms_spec_info *s, EVP_PKEY **out)
{
    *out = NULL;
    if (s->kind == KMS_KIND_RSA)
        *out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)s->rsa_bits);
    else if (s->kind == KMS_KIND_EC)
        *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", s->curve);
    else
        CL_FAIL(CL_ERR_INTERNAL, "%s is not an asymmetric key spec", s->name);
    if (*out == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot generate a %s key", s->name);
    return CL_OK;
}

cl_status kms_asym_generate(const kms_spec_info *s, cl_buf *der)
{
    EVP_PKEY *pkey = NULL;
    CL_GUARD(kms_asym_keygen(s, &pkey));
    cl_status rc = CL_OK;
    int n = i2d_PrivateKey(pkey, NULL);
    CL_ENSURE_GOTO(n > 0 && n <= KMS_PRIVATE_MAX, CL_ERR_CRYPTO, "cannot encode the %s private key", s->name);
    /* i2d writes straight into the secret buffer: no plain copy in between. */
    CL_GUARD_GOTO(cl_buf_reserve(der, (size_t)n + 1));
    CL_GUARD_GOTO(cl_buf_resize(der, (size_t)n));
    unsigned char *p = der->data;
    if (i2d_PrivateKey(pkey, &p) != n) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot encode the %s private key", s->name);
out:
    if (rc != CL_OK) cl_buf_reset(der);
    EVP_PKEY_free(pkey);
    return rc;
}

cl_status kms_asym_load(const kms_spec_info *s, const uint8_t *der, size_t len, EVP_PKEY **out)
{
    *out = NULL;
    CL_ENSURE(s->kind == KMS_KIND_RSA || s->kind == KMS_KIND_EC, CL_ERR_INTERNAL, "%s has no private key", s->name);
    CL_ENSURE(len > 0 && len <= KMS_PRIVATE_MAX, CL_ERR_FORMAT, "private key of %zu bytes", len);
    const unsigned char *p = der;
    EVP_PKEY *pkey =
        d2i_PrivateKey_ex(s->kind == KMS_KIND_RSA ? EVP_PKEY_RSA : EVP_PKEY_EC, NULL, &p, (long)len, NULL, NULL);
    if (pkey == NULL) CL_FAIL_SSL(CL_ERR_FORMAT, "stored %s private key does not parse", s->name);
    cl_status rc = CL_OK;
    CL_ENSURE_GOTO(p == der + len, CL_ERR_FORMAT, "stored %s private key has trailing bytes", s->name);
    if (s->kind == KMS_KIND_RSA) {
        CL_ENSURE_GOTO(EVP_PKEY_get_bits(pkey) == (int)s->rsa_bits, CL_ERR_FORMAT,
                       "stored private key is RSA-%d, not %s", EVP_PKEY_get_bits(pkey), s->name);
    } else {
        char group[64] = "";
        size_t glen = 0;
        CL_ENSURE_GOTO(EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1 && strcmp(group, s->curve) == 0,
                       CL_ERR_FORMAT, "stored private key is on curve %s, not %s", group, s->name);
    }
    *out = pkey;
out:
    if (rc != CL_OK) EVP_PKEY_free(pkey);
    return rc;
}

cl_status kms_asym_public_der(EVP_PKEY *pkey, cl_buf *out)
{
    int n = i2d_PUBKEY(pkey, NULL);
    CL_ENSURE(n > 0 && n <= KMS_PUBLIC_MAX, CL_ERR_CRYPTO, "cannot encode the public key");
    CL_GUARD(cl_buf_resize(out, (size_t)n));
    unsigned char *p = out->data;
    if (i2d_PUBKEY(pkey, &p) != n) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot encode the public key");
    return CL_OK;
}

cl_status kms_asym_pkcs8(EVP_PKEY *pkey, cl_buf *der)
{
    /* PKCS8_PRIV_KEY_INFO_free cleanses the private key it holds (OpenSSL's p8_pkey.c). */
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    if (p8 == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot encode the private key as PKCS #8");
    cl_status rc = CL_OK;
    int n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
    CL_ENSURE_GOTO(n > 0 && n <= KMS_PRIVATE_MAX, CL_ERR_CRYPTO, "cannot encode the private key as PKCS #8");
    /* Straight into the secret buffer, reserved at its final size. */
    CL_GUARD_GOTO(cl_buf_reserve(der, (size_t)n));
    CL_GUARD_GOTO(cl_buf_resize(der, (size_t)n));
    unsigned char *p = der->data;
    if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != n)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot encode the private key as PKCS #8");
out:
    if (rc != CL_OK) cl_buf_reset(der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return rc;
}

/* The digest signed: the caller's (checked for length) or one computed here. */
static CL_MUST_USE cl_status kms_sig_digest(const kms_sig_alg *alg, bool digest, const uint8_t *msg, size_t len,
                                            uint8_t out[EVP_MAX_MD_SIZE])
{
    if (digest) {
        CL_ENSURE(len == alg->md_len, CL_ERR_USAGE, "Digest is invalid length for algorithm %s: %zu bytes, not %zu",
                  alg->name, len, alg->md_len);
        memcpy(out, msg, len);
        return CL_OK;
    }
    unsigned int n = 0;
    EVP_MD *md = EVP_MD_fetch(NULL, alg->md, NULL);
    cl_status rc = CL_OK;
    if (md == NULL || EVP_Digest(msg, len, out, &n, md, NULL) != 1 || n != alg->md_len)
        rc = CL_RAISE_SSL(CL_ERR_CRYPTO, "%s digest failed", alg->md);
    EVP_MD_free(md);
    return rc;
}

/* A sign or verify context with alg's padding and digest (RFC 8017 8.1 / 8.2;
 * FIPS 186-4 ECDSA). */
static CL_MUST_USE cl_status kms_sig_ctx(EVP_PKEY *pkey, const kms_sig_alg *alg, bool sign, EVP_PKEY_CTX **out)
{
    *out = NULL;
    bool rsa = EVP_PKEY_is_a(pkey, "RSA");
    CL_ENSURE(rsa == (alg->scheme != KMS_SIG_ECDSA), CL_ERR_KEY, "%s does not apply to this key", alg->name);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    EVP_MD *md = EVP_MD_fetch(NULL, alg->md, NULL);
    cl_status rc = CL_OK;
    if (ctx == NULL || md == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up %s", alg->name);
    if ((sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, md) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up %s", alg->name);
    if (alg->scheme == KMS_SIG_RSA_PKCS1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up %s", alg->name);
    if (alg->scheme == KMS_SIG_RSA_PSS &&
        (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up %s", alg->name);
    *out = ctx;
    ctx = NULL;
out:
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

cl_status kms_asym_sign(EVP_PKEY *pkey, const kms_sig_alg *alg, bool digest, const uint8_t *msg, size_t len,
                        cl_buf *sig)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    CL_GUARD(kms_sig_digest(alg, digest, msg, len, d));
    EVP_PKEY_CTX *ctx = NULL;
    cl_status rc = CL_OK;
    size_t n = 0;
    CL_GUARD_GOTO(kms_sig_ctx(pkey, alg, true, &ctx));
    if (EVP_PKEY_sign(ctx, NULL, &n, d, alg->md_len) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "%s failed", alg->name);
    CL_ENSURE_GOTO(n > 0 && n <= KMS_SIGNATURE_MAX, CL_ERR_CRYPTO, "%s signature of %zu bytes", alg->name, n);
    CL_GUARD_GOTO(cl_buf_resize(sig, n));
    if (EVP_PKEY_sign(ctx, sig->data, &n, d, alg->md_len) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "%s failed", alg->name);
    cl_buf_truncate(sig, n); /* ECDSA DER is often shorter than the bound */
out:
    cl_memzero(d, sizeof(d));
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

cl_status kms_asym_verify(EVP_PKEY *pkey, const kms_sig_alg *alg, bool digest, const uint8_t *msg, size_t len,
                          const uint8_t *sig, size_t sig_len, bool *valid)
{
    *valid = false;
    uint8_t d[EVP_MAX_MD_SIZE];
    CL_GUARD(kms_sig_digest(alg, digest, msg, len, d));
    EVP_PKEY_CTX *ctx = NULL;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sig_ctx(pkey, alg, false, &ctx));
    /* 1 is valid; 0 or a negative value (a malformed signature, say) is not. */
    *valid = EVP_PKEY_verify(ctx, sig, sig_len, d, alg->md_len) == 1;
    ERR_clear_error();
out:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* An RSAES-OAEP context of alg: the same digest for OAEP and MGF1, no label (RFC 8017 7.1). */
static CL_MUST_USE cl_status kms_oaep_ctx(EVP_PKEY *pkey, const kms_enc_alg *alg, bool encrypt, EVP_PKEY_CTX **out)
{
    *out = NULL;
    CL_ENSURE(EVP_PKEY_is_a(pkey, "RSA"), CL_ERR_KEY, "%s needs an RSA key", alg->name);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    EVP_MD *md = EVP_MD_fetch(NULL, alg->md, NULL);
    cl_status rc = CL_OK;
    if (ctx == NULL || md == NULL || (encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 || EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up %s", alg->name);
    *out = ctx;
    ctx = NULL;
out:
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

cl_status kms_asym_encrypt(EVP_PKEY *pkey, const kms_enc_alg *alg, const uint8_t *pt, size_t len, cl_buf *ct)
{
    CL_ENSURE(EVP_PKEY_is_a(pkey, "RSA"), CL_ERR_KEY, "%s needs an RSA key", alg->name);
    int bits = EVP_PKEY_get_bits(pkey);
    CL_ENSURE(bits > 0 && bits <= 8 * KMS_RSA_MAX_BYTES, CL_ERR_KEY, "%s needs an RSA key of at most %d bits",
              alg->name, 8 * KMS_RSA_MAX_BYTES);
    size_t max = kms_oaep_max((unsigned)bits, alg);
    CL_ENSURE(len <= max, CL_ERR_LIMIT, "%s under RSA-%d encrypts at most %zu bytes, not %zu", alg->name, bits, max,
              len);
    EVP_PKEY_CTX *ctx = NULL;
    cl_status rc = CL_OK;
    size_t n = 0;
    CL_GUARD_GOTO(kms_oaep_ctx(pkey, alg, true, &ctx));
    if (EVP_PKEY_encrypt(ctx, NULL, &n, pt, len) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "%s failed", alg->name);
    CL_ENSURE_GOTO(n > 0 && n <= KMS_RSA_MAX_BYTES, CL_ERR_CRYPTO, "%s ciphertext of %zu bytes", alg->name, n);
    CL_GUARD_GOTO(cl_buf_resize(ct, n));
    if (EVP_PKEY_encrypt(ctx, ct->data, &n, pt, len) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "%s failed", alg->name);
    cl_buf_truncate(ct, n);
out:
    if (rc != CL_OK) cl_buf_reset(ct);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

cl_status kms_asym_decrypt(EVP_PKEY *pkey, const kms_enc_alg *alg, const uint8_t *ct, size_t len, cl_buf *pt)
{
    EVP_PKEY_CTX *ctx = NULL;
    cl_status rc = CL_OK;
    size_t n = KMS_RSA_MAX_BYTES;
    CL_GUARD_GOTO(kms_oaep_ctx(pkey, alg, false, &ctx));
    /* The whole bound at once: secret buffers are not grown. */
    CL_GUARD_GOTO(cl_buf_reserve(pt, KMS_RSA_MAX_BYTES));
    CL_GUARD_GOTO(cl_buf_resize(pt, KMS_RSA_MAX_BYTES));
    /* A ciphertext as long as the modulus, else OpenSSL refuses it; OAEP's decoding failures
     * are one error whatever failed (RFC 8017 7.1.2 note), and so is our answer. */
    if ((size_t)EVP_PKEY_get_size(pkey) != len || EVP_PKEY_decrypt(ctx, pt->data, &n, ct, len) != 1) {
        ERR_clear_error();
        CL_FAIL_GOTO(CL_ERR_AUTH, "the ciphertext does not decrypt with %s under this key", alg->name);
    }
    cl_buf_truncate(pt, n);
out:
    if (rc != CL_OK) cl_buf_reset(pt);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* The named curve of an EC key into group ("" when it has none: explicit parameters). */
static void kms_ec_group(EVP_PKEY *pkey, char *group, size_t cap)
{
    size_t glen = 0;
    if (EVP_PKEY_get_group_name(pkey, group, cap, &glen) != 1) group[0] = '\0';
    ERR_clear_error();
}

cl_status kms_asym_derive(EVP_PKEY *pkey, const uint8_t *peer, size_t peer_len, cl_buf *secret)
{
    CL_ENSURE(EVP_PKEY_is_a(pkey, "EC"), CL_ERR_INTERNAL, "ECDH needs an EC private key");
    CL_ENSURE(peer_len > 0 && peer_len <= KMS_PUBLIC_MAX, CL_ERR_FORMAT, "a public key of %zu bytes", peer_len);
    const unsigned char *p = peer;
    EVP_PKEY *pub = d2i_PUBKEY_ex(NULL, &p, (long)peer_len, NULL, NULL);
    if (pub == NULL) {
        ERR_clear_error();
        CL_FAIL(CL_ERR_FORMAT, "the public key is not a DER SubjectPublicKeyInfo of a valid public key (RFC 5280)");
    }
    cl_status rc = CL_OK;
    EVP_PKEY_CTX *ctx = NULL;
    char mine[64] = "", theirs[64] = "";
    kms_ec_group(pkey, mine, sizeof(mine));
    CL_ENSURE_GOTO(p == peer + peer_len, CL_ERR_FORMAT, "the public key has bytes after its SubjectPublicKeyInfo");
    CL_ENSURE_GOTO(EVP_PKEY_is_a(pub, "EC"), CL_ERR_KEY, "the public key is a %s key, not an elliptic curve key",
                   EVP_PKEY_get0_type_name(pub) ? EVP_PKEY_get0_type_name(pub) : "non-EC");
    kms_ec_group(pub, theirs, sizeof(theirs));
    CL_ENSURE_GOTO(theirs[0] != '\0' && strcmp(mine, theirs) == 0, CL_ERR_KEY,
                   "the public key is on curve %s, not on this key's curve %s", theirs[0] ? theirs : "(explicit)",
                   mine);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    size_t n = 0;
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_CTX_set_ecdh_cofactor_mode(ctx, 1) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up ECDH");
    /* validate_peer: the full public key check (SP 800-56A 5.6.2.3.3) before it is used. */
    if (EVP_PKEY_derive_set_peer_ex(ctx, pub, 1) != 1) {
        ERR_clear_error();
        CL_FAIL_GOTO(CL_ERR_FORMAT, "the public key is not a valid point of curve %s", mine);
    }
    if (EVP_PKEY_derive(ctx, NULL, &n) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "ECDH failed");
    CL_ENSURE_GOTO(n > 0 && n <= KMS_SHARED_SECRET_MAX, CL_ERR_CRYPTO, "ECDH secret of %zu bytes", n);
    CL_GUARD_GOTO(cl_buf_reserve(secret, n));
    CL_GUARD_GOTO(cl_buf_resize(secret, n));
    if (EVP_PKEY_derive(ctx, secret->data, &n) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "ECDH failed");
    cl_buf_truncate(secret, n);
out:
    if (rc != CL_OK) cl_buf_reset(secret);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    return rc;
}

cl_status kms_hmac(const char *md, const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len,
                   uint8_t mac[KMS_MAC_MAX], size_t *mac_len)
{
    *mac_len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, key, key_len, msg, len, mac, KMS_MAC_MAX, mac_len) == NULL)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "HMAC with %s failed", md);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_private_aad(const char *arn, uint32_t version, cl_buf *aad)
{
    CL_GUARD(cl_buf_append(aad, KMS_PRIVATE_AAD, sizeof(KMS_PRIVATE_AAD)));
    CL_GUARD(cl_buf_append(aad, arn, strlen(arn) + 1));
    return cl_buf_append_u32be(aad, version);
}

cl_status kms_private_wrap(const kms_root_key *rk, const char *arn, uint32_t version, const uint8_t *der, size_t len,
                           cl_buf *wrapped)
{
    CL_ENSURE(len > 0 && len <= KMS_PRIVATE_MAX, CL_ERR_INTERNAL, "private key of %zu bytes", len);
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    uint8_t nonce[CL_GCM_NONCE_LEN], tag[CL_GCM_TAG_LEN];
    CL_GUARD_GOTO(kms_private_aad(arn, version, &aad));
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_resize(wrapped, CL_GCM_NONCE_LEN + len + CL_GCM_TAG_LEN));
    memcpy(wrapped->data, nonce, sizeof(nonce));
    CL_GUARD_GOTO(cl_gcm_init(&g, rk->key, true));
    CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad.data, aad.len, der, len, wrapped->data + CL_GCM_NONCE_LEN, tag));
    memcpy(wrapped->data + CL_GCM_NONCE_LEN + len, tag, sizeof(tag));
out:
    if (rc != CL_OK) cl_buf_reset(wrapped);
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

cl_status kms_private_unwrap(const kms_root_key *rk, const char *arn, uint32_t version, const uint8_t *wrapped,
                             size_t wrapped_len, cl_buf *der)
{
    cl_reader r = cl_reader_make(wrapped, wrapped_len);
    const uint8_t *nonce, *ct, *tag;
    CL_ENSURE(wrapped_len > CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN && wrapped_len <= KMS_PRIVATE_WRAPPED_MAX, CL_ERR_FORMAT,
              "stored private key of %s is %zu bytes, outside %d..%d", arn, wrapped_len,
              CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN + 1, KMS_PRIVATE_WRAPPED_MAX);
    size_t ct_len = wrapped_len - CL_GCM_NONCE_LEN - CL_GCM_TAG_LEN;
    CL_GUARD(cl_reader_bytes(&r, CL_GCM_NONCE_LEN, &nonce));
    CL_GUARD(cl_reader_bytes(&r, ct_len, &ct));
    CL_GUARD(cl_reader_bytes(&r, CL_GCM_TAG_LEN, &tag));
    CL_GUARD(cl_reader_expect_end(&r));
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    CL_GUARD_GOTO(kms_private_aad(arn, version, &aad));
    /* The final size at once: secret buffers are not grown. */
    CL_GUARD_GOTO(cl_buf_reserve(der, ct_len + 1));
    CL_GUARD_GOTO(cl_buf_resize(der, ct_len));
    CL_GUARD_GOTO(cl_gcm_init(&g, rk->key, false));
    rc = cl_gcm_open(&g, nonce, aad.data, aad.len, ct, ct_len, tag, der->data);
    if (rc == CL_ERR_AUTH)
        CL_FAIL_GOTO(CL_ERR_AUTH, "stored private key of %s version %u does not verify under the root key", arn,
                     version);
out:
    if (rc != CL_OK) cl_buf_reset(der);
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}
