/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/crypto.h"

#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#include "cloister/mem.h"

cl_status cl_random(void *out, size_t n)
{
    CL_ENSURE(n <= INT_MAX, CL_ERR_LIMIT, "random request of %zu bytes too large", n);
    if (RAND_bytes(out, (int)n) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "random generator failed");
    return CL_OK;
}

cl_status cl_random_secret(void *out, size_t n)
{
    CL_ENSURE(n <= INT_MAX, CL_ERR_LIMIT, "random request of %zu bytes too large", n);
    if (RAND_priv_bytes(out, (int)n) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "random generator failed");
    return CL_OK;
}

cl_status cl_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len, const uint8_t *info,
                         size_t info_len, uint8_t *out, size_t out_len)
{
    cl_status rc = CL_OK;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = NULL;
    if (kdf == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "HKDF is not available");
    kctx = EVP_KDF_CTX_new(kdf);
    if (kctx == NULL) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "HKDF context");
    /* OpenSSL takes non-const pointers in OSSL_PARAM; it does not write them. */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, CL_UNCONST("SHA256"), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, CL_UNCONST(ikm), ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, CL_UNCONST(salt), salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, CL_UNCONST(info), info_len),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "HKDF-SHA256 failed");
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/*
 * The algorithms of the hot paths, fetched once. EVP_sha256(), EVP_aes_256_gcm() and EVP_Q_mac
 * look the algorithm up in the provider store on every call ("implicit fetch"); OpenSSL's
 * crypto(7), "Performance", recommends fetching explicitly once and reusing the object. The
 * fetched objects are immutable and shared by every thread. HMAC starts from a template context
 * with its digest already set, duplicated per call (EVP_MAC_CTX_dup), so that no call looks the
 * digest up by name either. They live as long as the process.
 */
static EVP_MD *cl_fetched_sha256;
static EVP_CIPHER *cl_fetched_gcm;
static EVP_MAC_CTX *cl_hmac_sha256_template;
static pthread_once_t cl_fetch_once = PTHREAD_ONCE_INIT;

static void cl_fetch_init(void)
{
    cl_fetched_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    cl_fetched_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *t = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, CL_UNCONST("SHA2-256"), 0),
                           OSSL_PARAM_construct_end()};
    if (t != NULL && EVP_MAC_CTX_set_params(t, params) != 1) {
        EVP_MAC_CTX_free(t);
        t = NULL;
    }
    cl_hmac_sha256_template = t;
}

/* The fetched objects, or NULL if the provider has none (then the caller fails, naming it). */
static const EVP_MD *cl_sha256_md(void)
{
    (void)pthread_once(&cl_fetch_once, cl_fetch_init);
    return cl_fetched_sha256;
}

static const EVP_CIPHER *cl_gcm_cipher(void)
{
    (void)pthread_once(&cl_fetch_once, cl_fetch_init);
    return cl_fetched_gcm;
}

cl_status cl_sha256(const void *data, size_t n, uint8_t out[CL_SHA256_LEN])
{
    const EVP_MD *md = cl_sha256_md();
    CL_ENSURE(md != NULL, CL_ERR_CRYPTO, "SHA-256 is not available from OpenSSL's providers");
    if (EVP_Digest(data, n, out, NULL, md, NULL) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "SHA-256 failed");
    return CL_OK;
}

cl_status cl_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n, uint8_t out[CL_SHA256_LEN])
{
    (void)pthread_once(&cl_fetch_once, cl_fetch_init);
    CL_ENSURE(cl_hmac_sha256_template != NULL, CL_ERR_CRYPTO, "HMAC-SHA256 is not available from OpenSSL's providers");
    cl_status rc = CL_OK;
    size_t out_len = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(cl_hmac_sha256_template);
    if (ctx == NULL || EVP_MAC_init(ctx, key, key_len, NULL) != 1 || EVP_MAC_update(ctx, data, n) != 1 ||
        EVP_MAC_final(ctx, out, &out_len, CL_SHA256_LEN) != 1 || out_len != CL_SHA256_LEN)
        rc = CL_RAISE_SSL(CL_ERR_CRYPTO, "HMAC-SHA256 failed");
    EVP_MAC_CTX_free(ctx); /* cleanses the keyed state */
    return rc;
}

cl_status cl_gcm_init(cl_gcm *g, const uint8_t key[CL_AES256_KEY_LEN], bool encrypt)
{
    memset(g, 0, sizeof(*g));
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "cipher context");
    const EVP_CIPHER *gcm = cl_gcm_cipher();
    if (gcm == NULL || EVP_CipherInit_ex2(ctx, gcm, key, NULL, encrypt ? 1 : 0, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM key setup failed");
    }
    g->ctx = ctx;
    g->encrypt = encrypt;
    return CL_OK;
}

static CL_MUST_USE cl_status cl_gcm_start(cl_gcm *g, const uint8_t nonce[CL_GCM_NONCE_LEN], const uint8_t *aad,
                                          size_t aad_len)
{
    EVP_CIPHER_CTX *ctx = g->ctx;
    int outl = 0;
    CL_ENSURE(ctx != NULL, CL_ERR_INTERNAL, "GCM context used before init");
    CL_ENSURE(aad_len <= INT_MAX, CL_ERR_LIMIT, "associated data too large");
    if (EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, g->encrypt ? 1 : 0, NULL) != 1)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM nonce setup failed");
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM associated data failed");
    return CL_OK;
}

/* EVP_CipherUpdate takes an int length: feed large messages in slices. */
static CL_MUST_USE cl_status cl_gcm_update(cl_gcm *g, const uint8_t *in, size_t n, uint8_t *out)
{
    const size_t slice = (size_t)1 << 30;
    while (n > 0) {
        size_t take = n < slice ? n : slice;
        int outl = 0;
        if (EVP_CipherUpdate(g->ctx, out, &outl, in, (int)take) != 1 || (size_t)outl != take)
            CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM failed");
        in += take;
        out += take;
        n -= take;
    }
    return CL_OK;
}

cl_status cl_gcm_seal(cl_gcm *g, const uint8_t nonce[CL_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[CL_GCM_TAG_LEN])
{
    int outl = 0;
    CL_ENSURE(g->encrypt, CL_ERR_INTERNAL, "GCM context was set up for decryption");
    CL_GUARD(cl_gcm_start(g, nonce, aad, aad_len));
    CL_GUARD(cl_gcm_update(g, in, n, out));
    /* GCM's final step writes no bytes; a scratch target keeps `out + n`
     * (undefined when out is NULL for an empty chunk) out of the picture. */
    uint8_t none[16];
    if (EVP_CipherFinal_ex(g->ctx, none, &outl) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM final failed");
    if (EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, CL_GCM_TAG_LEN, tag) != 1)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM tag failed");
    return CL_OK;
}

cl_status cl_gcm_open(cl_gcm *g, const uint8_t nonce[CL_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                      const uint8_t *in, size_t n, const uint8_t tag[CL_GCM_TAG_LEN], uint8_t *out)
{
    int outl = 0;
    CL_ENSURE(!g->encrypt, CL_ERR_INTERNAL, "GCM context was set up for encryption");
    CL_GUARD(cl_gcm_start(g, nonce, aad, aad_len));
    CL_GUARD(cl_gcm_update(g, in, n, out));
    if (EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, CL_GCM_TAG_LEN, CL_UNCONST(tag)) != 1)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "AES-256-GCM set tag failed");
    uint8_t none[16]; /* GCM's final step writes no bytes (see cl_gcm_seal) */
    if (EVP_CipherFinal_ex(g->ctx, none, &outl) != 1) {
        ERR_clear_error();
        /* Unauthenticated plaintext must not survive a failed check. */
        cl_memzero(out, n);
        CL_FAIL(CL_ERR_AUTH, "authentication tag mismatch");
    }
    return CL_OK;
}

void cl_gcm_free(cl_gcm *g)
{
    EVP_CIPHER_CTX_free(g->ctx); /* cleanses the key schedule */
    g->ctx = NULL;
}

cl_status cl_uuid4(char out[CL_UUID_TEXT_LEN + 1])
{
    uint8_t r[CL_UUID_RANDOM_LEN];
    CL_GUARD(cl_random(r, sizeof(r)));
    cl_uuid4_format(r, out);
    return CL_OK;
}

void cl_uuid4_format(uint8_t r[CL_UUID_RANDOM_LEN], char out[CL_UUID_TEXT_LEN + 1])
{
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* variant 10 */
    static const size_t groups[5] = {4, 2, 2, 2, 6};
    size_t at = 0, o = 0;
    for (size_t g = 0; g < 5; g++) {
        if (g > 0) out[o++] = '-';
        (void)cl_hex_encode(r + at, groups[g], out + o, 2 * groups[g] + 1);
        o += 2 * groups[g];
        at += groups[g];
    }
    out[o] = '\0';
}

/* --- base64 ---------------------------------------------------------------- */

cl_status cl_base64_encode(const uint8_t *in, size_t n, bool url, cl_buf *out)
{
    CL_ENSURE(n <= (size_t)INT_MAX / 4 * 3 - 3, CL_ERR_LIMIT, "base64 input of %zu bytes too large", n);
    size_t enc_len = 4 * ((n + 2) / 3);
    size_t before = out->len;
    uint8_t *dst = NULL;
    CL_GUARD(cl_buf_add_space(out, enc_len, &dst));
    int w = EVP_EncodeBlock(dst, in, (int)n);
    if (w < 0 || (size_t)w != enc_len) {
        cl_buf_truncate(out, before);
        CL_FAIL(CL_ERR_CRYPTO, "base64 encoding failed");
    }
    if (url) {
        for (size_t i = 0; i < enc_len; i++) {
            if (dst[i] == '+')
                dst[i] = '-';
            else if (dst[i] == '/')
                dst[i] = '_';
        }
    }
    return CL_OK;
}

static bool cl_base64_alphabet(uint8_t c, bool url)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    return url ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

/* The 6-bit value of a standard-alphabet character (already validated). */
static unsigned cl_base64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return (unsigned)(c - 'A');
    if (c >= 'a' && c <= 'z') return (unsigned)(c - 'a' + 26);
    if (c >= '0' && c <= '9') return (unsigned)(c - '0' + 52);
    return c == '+' ? 62u : 63u;
}

cl_status cl_base64_decode(const char *in, size_t n, bool url, cl_buf *out)
{
    cl_status rc = CL_OK;
    const uint8_t *s = (const uint8_t *)in;
    CL_ENSURE(n % 4 == 0, CL_ERR_FORMAT, "base64 length %zu is not a multiple of 4", n);
    CL_ENSURE(n <= INT_MAX, CL_ERR_LIMIT, "base64 input too large");
    size_t pad = 0;
    if (n >= 1 && s[n - 1] == '=') pad++;
    if (n >= 2 && s[n - 2] == '=') pad++;
    for (size_t i = 0; i < n - pad; i++) {
        CL_ENSURE(cl_base64_alphabet(s[i], url), CL_ERR_FORMAT, "invalid base64%s character at position %zu",
                  url ? "url" : "", i);
    }
    if (n == 0) return CL_OK;
    /* Non-canonical encodings (stray bits in the last symbol) are refused so
     * each byte string has exactly one encoding. */
    if (pad > 0) {
        uint8_t last = s[n - pad - 1];
        if (url) last = last == '-' ? '+' : last == '_' ? '/' : last;
        unsigned mask = pad == 1 ? 0x3u : 0xFu;
        CL_ENSURE((cl_base64_value(last) & mask) == 0, CL_ERR_FORMAT, "non-canonical base64 padding bits");
    }
    /* EVP_DecodeBlock speaks the standard alphabet: translate a copy. */
    cl_buf tmp;
    cl_buf_init(&tmp, n);
    uint8_t *std = NULL;
    size_t before = out->len;
    CL_GUARD_GOTO(cl_buf_add_space(&tmp, n, &std));
    for (size_t i = 0; i < n; i++) std[i] = !url ? s[i] : s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    /* out needs room for the decoded bytes only, not for the zero bytes EVP_DecodeBlock
     * writes for the padding: a buffer whose cap is exactly the decoded length (a 4096-byte
     * KMS Plaintext) must take it. The last, padded quantum goes through a stack copy. */
    size_t whole = pad > 0 ? n - 4 : n;
    uint8_t *dst = NULL;
    CL_GUARD_GOTO(cl_buf_add_space(out, n / 4 * 3 - pad, &dst));
    int w = whole > 0 ? EVP_DecodeBlock(dst, std, (int)whole) : 0;
    bool ok = w >= 0 && (size_t)w == whole / 4 * 3;
    if (ok && pad > 0) {
        uint8_t last[3];
        ok = EVP_DecodeBlock(last, std + whole, 4) == 3;
        if (ok) memcpy(dst + whole / 4 * 3, last, 3 - pad);
        cl_memzero(last, sizeof(last));
    }
    if (!ok) {
        cl_buf_truncate(out, before);
        CL_FAIL_GOTO(CL_ERR_FORMAT, "invalid base64");
    }
out:
    cl_buf_free(&tmp);
    return rc;
}
