/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fernet, per https://github.com/fernet/spec/blob/master/Spec.md:
 *
 *   Version (0x80) ‖ Timestamp (u64 BE) ‖ IV (16) ‖ Ciphertext ‖ HMAC (32)
 *
 * HMAC-SHA256 under the signing key (first half of the key) covers everything
 * before it; AES-128-CBC under the encryption key (second half), PKCS#7.
 * Verification happens before decryption, in constant time.
 */
#include "cloister/fernet.h"

#include <limits.h>
#include <openssl/evp.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#define CL_FERNET_VERSION 0x80
#define CL_FERNET_IV_LEN 16
#define CL_FERNET_HMAC_LEN 32
#define CL_FERNET_BLOCK 16
#define CL_FERNET_OVERHEAD (1 + 8 + CL_FERNET_IV_LEN + CL_FERNET_HMAC_LEN)
#define CL_FERNET_MAX_MSG ((size_t)1 << 30)

cl_status cl_fernet_key_decode(const char *text, size_t n, cl_buf *key)
{
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ' || text[n - 1] == '\t')) n--;
    cl_status rc = cl_base64_decode(text, n, true, key);
    if (rc != CL_OK || key->len != CL_FERNET_KEY_LEN) {
        cl_buf_reset(key);
        CL_FAIL(CL_ERR_FORMAT, "a Fernet key must be 32 url-safe base64-encoded bytes (44 characters)");
    }
    return CL_OK;
}

cl_status cl_fernet_key_generate(cl_buf *text)
{
    uint8_t *raw = cl_secure_alloc(CL_FERNET_KEY_LEN);
    CL_ENSURE(raw != NULL, CL_ERR_NOMEM, "out of locked memory");
    cl_status rc = cl_random_secret(raw, CL_FERNET_KEY_LEN);
    if (rc == CL_OK) rc = cl_base64_encode(raw, CL_FERNET_KEY_LEN, true, text);
    cl_secure_free(raw);
    return rc;
}

static CL_MUST_USE cl_status cl_fernet_cbc(const uint8_t *key16, const uint8_t *iv, bool encrypt, const uint8_t *in,
                                           size_t n, uint8_t *out, size_t *out_len)
{
    cl_status rc = CL_OK;
    int l1 = 0, l2 = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "cipher context");
    if (EVP_CipherInit_ex2(ctx, EVP_aes_128_cbc(), key16, iv, encrypt ? 1 : 0, NULL) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "AES-128-CBC setup failed");
    if (EVP_CipherUpdate(ctx, out, &l1, in, (int)n) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "AES-128-CBC failed");
    if (EVP_CipherFinal_ex(ctx, out + l1, &l2) != 1) {
        /* Only reachable on decryption, after the HMAC verified: the key's
         * owner made a bad token. Say so without detail. */
        CL_FAIL_SSL_GOTO(CL_ERR_AUTH, "invalid Fernet token: bad padding");
    }
    *out_len = (size_t)l1 + (size_t)l2;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

cl_status cl_fernet_encrypt(const uint8_t key[CL_FERNET_KEY_LEN], const uint8_t *msg, size_t n, uint64_t now,
                            const uint8_t *iv, cl_buf *token)
{
    cl_status rc = CL_OK;
    cl_buf raw;
    cl_buf_init(&raw, CL_FERNET_MAX_MSG + CL_FERNET_OVERHEAD + CL_FERNET_BLOCK);
    uint8_t hmac[CL_FERNET_HMAC_LEN];
    uint8_t iv_buf[CL_FERNET_IV_LEN];
    size_t ct_len = 0;

    CL_ENSURE(n <= CL_FERNET_MAX_MSG, CL_ERR_LIMIT, "message of %zu bytes is over the %zu-byte Fernet limit", n,
              CL_FERNET_MAX_MSG);
    if (iv != NULL) {
        memcpy(iv_buf, iv, sizeof(iv_buf));
    } else {
        CL_GUARD(cl_random(iv_buf, sizeof(iv_buf)));
    }
    size_t padded = (n / CL_FERNET_BLOCK + 1) * CL_FERNET_BLOCK;
    CL_GUARD_GOTO(cl_buf_append_u8(&raw, CL_FERNET_VERSION));
    CL_GUARD_GOTO(cl_buf_append_u64be(&raw, now));
    CL_GUARD_GOTO(cl_buf_append(&raw, iv_buf, sizeof(iv_buf)));
    size_t ct_at = raw.len;
    CL_GUARD_GOTO(cl_buf_resize(&raw, ct_at + padded + CL_FERNET_BLOCK));
    CL_GUARD_GOTO(cl_fernet_cbc(key + 16, iv_buf, true, msg, n, raw.data + ct_at, &ct_len));
    CL_ENSURE_GOTO(ct_len == padded, CL_ERR_INTERNAL, "unexpected CBC output length");
    cl_buf_truncate(&raw, ct_at + ct_len);
    CL_GUARD_GOTO(cl_hmac_sha256(key, 16, raw.data, raw.len, hmac));
    CL_GUARD_GOTO(cl_buf_append(&raw, hmac, sizeof(hmac)));
    CL_GUARD_GOTO(cl_base64_encode(raw.data, raw.len, true, token));
out:
    cl_buf_free(&raw);
    return rc;
}

/* A decoded token's fields (https://github.com/fernet/spec/blob/master/Spec.md, "Token
 * Format"), borrowed from its raw bytes. */
typedef struct cl_fernet_fields {
    uint64_t timestamp;
    const uint8_t *iv;
    const uint8_t *ciphertext;
    size_t ciphertext_len;
} cl_fernet_fields;

/* Decodes and authenticates a token; raw receives its bytes, f borrows from them. */
static CL_MUST_USE cl_status cl_fernet_verify(const uint8_t key[CL_FERNET_KEY_LEN], const char *token, size_t n,
                                              cl_buf *raw, cl_fernet_fields *f)
{
    uint8_t hmac[CL_FERNET_HMAC_LEN];
    CL_ENSURE(n <= (CL_FERNET_MAX_MSG + CL_FERNET_OVERHEAD + CL_FERNET_BLOCK) / 3 * 4 + 4, CL_ERR_LIMIT,
              "Fernet token of %zu bytes is too large", n);
    if (cl_base64_decode(token, n, true, raw) != CL_OK)
        CL_FAIL(CL_ERR_FORMAT, "not a Fernet token: invalid url-safe base64");
    CL_ENSURE(raw->len >= CL_FERNET_OVERHEAD + CL_FERNET_BLOCK, CL_ERR_FORMAT,
              "not a Fernet token: %zu bytes is too short", raw->len);
    /* Version ‖ Timestamp ‖ IV ‖ Ciphertext ‖ HMAC, the HMAC over all before it. */
    cl_reader r = cl_reader_make(raw->data, raw->len);
    cl_reader start = r;
    uint8_t version = 0;
    CL_GUARD(cl_reader_u8(&r, &version));
    CL_ENSURE(version == CL_FERNET_VERSION, CL_ERR_FORMAT, "not a Fernet token: version byte 0x%02x", version);
    CL_GUARD(cl_reader_u64be(&r, &f->timestamp));
    CL_GUARD(cl_reader_bytes(&r, CL_FERNET_IV_LEN, &f->iv));
    f->ciphertext_len = cl_reader_remaining(&r) - CL_FERNET_HMAC_LEN;
    CL_ENSURE(f->ciphertext_len % CL_FERNET_BLOCK == 0, CL_ERR_FORMAT,
              "not a Fernet token: ciphertext is not a whole number of blocks");
    CL_GUARD(cl_reader_bytes(&r, f->ciphertext_len, &f->ciphertext));
    const uint8_t *signed_part = NULL, *tag = NULL;
    size_t signed_len = 0;
    CL_GUARD(cl_reader_since(&start, &r, &signed_part, &signed_len));
    CL_GUARD(cl_reader_bytes(&r, CL_FERNET_HMAC_LEN, &tag));
    CL_GUARD(cl_reader_expect_end(&r));
    CL_GUARD(cl_hmac_sha256(key, 16, signed_part, signed_len, hmac));
    CL_ENSURE(cl_ct_equal(hmac, tag, CL_FERNET_HMAC_LEN), CL_ERR_AUTH,
              "Fernet token failed authentication: wrong key or tampered token");
    return CL_OK;
}

cl_status cl_fernet_timestamp(const uint8_t key[CL_FERNET_KEY_LEN], const char *token, size_t n, uint64_t *timestamp)
{
    cl_buf raw;
    cl_buf_init(&raw, SIZE_MAX / 2);
    cl_fernet_fields f;
    cl_status rc = cl_fernet_verify(key, token, n, &raw, &f);
    if (rc == CL_OK) *timestamp = f.timestamp;
    cl_buf_free(&raw);
    return rc;
}

cl_status cl_fernet_decrypt(const uint8_t key[CL_FERNET_KEY_LEN], const char *token, size_t n, uint64_t now,
                            int64_t ttl, cl_buf *plaintext)
{
    cl_status rc = CL_OK;
    cl_buf raw;
    cl_buf_init(&raw, SIZE_MAX / 2);
    size_t pt_len = 0;
    cl_fernet_fields f;

    CL_GUARD_GOTO(cl_fernet_verify(key, token, n, &raw, &f));
    uint64_t ts = f.timestamp;
    /* Same rules as Python cryptography: expired when ts + ttl < now; from the
     * future when now + 60 s < ts. */
    if (ttl >= 0)
        CL_ENSURE_GOTO(ts > UINT64_MAX - (uint64_t)ttl || ts + (uint64_t)ttl >= now, CL_ERR_EXPIRED,
                       "Fernet token expired: made at %llu, %llu s before now, TTL %lld s", (unsigned long long)ts,
                       (unsigned long long)(now - ts), (long long)ttl);
    CL_ENSURE_GOTO(now > UINT64_MAX - CL_FERNET_MAX_CLOCK_SKEW || now + CL_FERNET_MAX_CLOCK_SKEW >= ts, CL_ERR_EXPIRED,
                   "Fernet token is from the future (timestamp %llu, now %llu): check clocks", (unsigned long long)ts,
                   (unsigned long long)now);
    size_t before = plaintext->len;
    uint8_t *dst = NULL;
    CL_GUARD_GOTO(cl_buf_add_space(plaintext, f.ciphertext_len + CL_FERNET_BLOCK, &dst));
    rc = cl_fernet_cbc(key + 16, f.iv, false, f.ciphertext, f.ciphertext_len, dst, &pt_len);
    cl_buf_truncate(plaintext, rc == CL_OK ? before + pt_len : before);
out:
    cl_buf_free(&raw);
    return rc;
}
