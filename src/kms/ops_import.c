/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: imported key material (ops.h): GetParametersForImport, ImportKeyMaterial,
 * DeleteImportedKeyMaterial, as the AWS KMS API Reference gives them and as a user following
 * the Developer Guide's "Importing key material" calls them: CreateKey with Origin EXTERNAL
 * makes a key without material (PendingImport); GetParametersForImport hands out the public half
 * of a fresh RSA wrapping key pair and an import token, both valid 24 hours; the user wraps 256
 * bits of their own with it (RSAES-OAEP, RFC 8017 7.1; or RSA-OAEP of an ephemeral AES-256 key
 * and that key's AES key wrap with padding of the material, RFC 5649, AWS's RSA_AES_KEY_WRAP);
 * ImportKeyMaterial unwraps it, and the key encrypts and decrypts like a generated one. Once
 * material was imported, only the same material may be imported again ("you can reimport the same
 * key material ... but you cannot import different key material").
 *
 * Secrets here: the wrapping private key (stored wrapped under the root key with AES-256-GCM,
 * its AAD binding the key, the parameters and the token), the import token (a capability: the
 * store keeps its SHA-256 only, compared in constant time), the unwrapped material and the
 * ephemeral AES key. All live in secret buffers, wiped on every path, and none is logged or put
 * in a message. Uses request.c, key_access.c, keys.c and asym.c (the public key's DER).
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#include "asym.h"
#include "key_access.h"
#include "ops.h"
#include "request.h"

/* "Each public key and import token set is valid for 24 hours" (GetParametersForImport). */
#define KMS_IMPORT_PARAMS_SECONDS ((int64_t)24 * 3600)
/* ValidTo: "The maximum value is 365 days from the request date" (ImportKeyMaterial). */
#define KMS_IMPORT_VALID_TO_MAX ((int64_t)365 * KMS_DAY)
/* The import token: version || key id || 32 random bytes. Its SHA-256 is stored. */
#define KMS_IMPORT_TOKEN_VERSION 1
#define KMS_IMPORT_TOKEN_SECRET 32
#define KMS_IMPORT_TOKEN_LEN (1 + KMS_KEY_ID_LEN + KMS_IMPORT_TOKEN_SECRET)
#define KMS_WRAPPING_KEY_AAD "cloister-kms/import-wrapping-key/v1"
#define KMS_MATERIAL_ID_LABEL "cloister-kms/key-material-id/v1"
#define KMS_WRAPPING_DER_MAX 4096 /* an RSA-4096 private key is about 2.4 KB of DER */
#define KMS_AES_WRAP_KEY_LEN 32   /* RSA_AES_KEY_WRAP: "a 256-bit AES symmetric key" */

/* AlgorithmSpec and WrappingKeySpec of the service model. */
static const char *const kms_wrapping_algs[] = {"RSAES_PKCS1_V1_5",
                                                "RSAES_OAEP_SHA_1",
                                                "RSAES_OAEP_SHA_256",
                                                "RSA_AES_KEY_WRAP_SHA_1",
                                                "RSA_AES_KEY_WRAP_SHA_256",
                                                "SM2PKE",
                                                NULL};
static const char *const kms_wrapping_specs[] = {"RSA_2048", "RSA_3072", "RSA_4096", "SM2", NULL};
static const char *const kms_expiration_models[] = {"KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE", NULL};
static const char *const kms_import_types[] = {"NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL", NULL};

/* The RSA modulus of a WrappingKeySpec this server makes, 0 for one it does not. */
static int kms_wrapping_bits(const char *spec)
{
    if (strcmp(spec, "RSA_2048") == 0) return 2048;
    if (strcmp(spec, "RSA_3072") == 0) return 3072;
    if (strcmp(spec, "RSA_4096") == 0) return 4096;
    return 0;
}

/* --- the import parameters -------------------------------------------------------------- */

/* AAD of the wrapped wrapping key: label, key ARN, algorithm, spec, validity and token hash, so a
 * row cannot be moved to another key, given other parameters, or outlive its token. */
static CL_MUST_USE cl_status kms_wrapping_aad(const char *arn, const kms_import_rec *p, cl_buf *aad)
{
    CL_GUARD(cl_buf_append(aad, KMS_WRAPPING_KEY_AAD, sizeof(KMS_WRAPPING_KEY_AAD)));
    CL_GUARD(cl_buf_append(aad, arn, strlen(arn) + 1));
    CL_GUARD(cl_buf_append(aad, p->wrapping_alg, strlen(p->wrapping_alg) + 1));
    CL_GUARD(cl_buf_append(aad, p->wrapping_spec, strlen(p->wrapping_spec) + 1));
    CL_GUARD(cl_buf_append_u32be(aad, (uint32_t)((uint64_t)p->params_valid_to >> 32)));
    CL_GUARD(cl_buf_append_u32be(aad, (uint32_t)p->params_valid_to));
    return cl_buf_append(aad, p->token_hash, sizeof(p->token_hash));
}

/* The wrapping private key (DER) under the root key: nonce || ciphertext || tag. */
static CL_MUST_USE cl_status kms_wrapping_wrap(kms_call *c, const char *arn, const kms_import_rec *p, const cl_buf *der,
                                               cl_buf *wrapped)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    uint8_t nonce[CL_GCM_NONCE_LEN], tag[CL_GCM_TAG_LEN];
    CL_GUARD_GOTO(kms_wrapping_aad(arn, p, &aad));
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_append(wrapped, nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_resize(wrapped, sizeof(nonce) + der->len));
    CL_GUARD_GOTO(cl_gcm_init(&g, c->kms->root.key, true));
    CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad.data, aad.len, der->data, der->len, wrapped->data + sizeof(nonce), tag));
    CL_GUARD_GOTO(cl_buf_append(wrapped, tag, sizeof(tag)));
out:
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

/* The wrapping private key of p, unwrapped (der: a secret buffer) and parsed. */
static CL_MUST_USE cl_status kms_wrapping_unwrap(kms_call *c, const char *arn, const kms_import_rec *p,
                                                 const cl_buf *wrapped, EVP_PKEY **out)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad, der;
    cl_buf_init(&aad, 4096);
    cl_buf_init_secret(&der, KMS_WRAPPING_DER_MAX);
    const uint8_t *nonce, *ct, *tag;
    *out = NULL;
    cl_reader r = cl_reader_make(wrapped->data, wrapped->len);
    CL_ENSURE_GOTO(wrapped->len > CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN &&
                       wrapped->len - CL_GCM_NONCE_LEN - CL_GCM_TAG_LEN <= KMS_WRAPPING_DER_MAX,
                   CL_ERR_FORMAT, "the stored wrapping key of %s is %zu bytes", arn, wrapped->len);
    size_t ct_len = wrapped->len - CL_GCM_NONCE_LEN - CL_GCM_TAG_LEN;
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_NONCE_LEN, &nonce));
    CL_GUARD_GOTO(cl_reader_bytes(&r, ct_len, &ct));
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_TAG_LEN, &tag));
    CL_GUARD_GOTO(kms_wrapping_aad(arn, p, &aad));
    CL_GUARD_GOTO(cl_buf_reserve(&der, ct_len + 1));
    CL_GUARD_GOTO(cl_buf_resize(&der, ct_len));
    CL_GUARD_GOTO(cl_gcm_init(&g, c->kms->root.key, false));
    if (cl_gcm_open(&g, nonce, aad.data, aad.len, ct, ct_len, tag, der.data) != CL_OK)
        CL_FAIL_GOTO(CL_ERR_AUTH, "the stored wrapping key of %s does not verify under the root key", arn);
    const unsigned char *dp = der.data;
    *out = d2i_PrivateKey_ex(EVP_PKEY_RSA, NULL, &dp, (long)der.len, NULL, NULL);
    if (*out == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the stored wrapping key of %s does not parse", arn);
out:
    cl_gcm_free(&g);
    cl_buf_free(&der);
    cl_buf_free(&aad);
    return rc;
}

/* A fresh RSA key pair of `bits`: the private key as DER into der (a secret buffer), the
 * SubjectPublicKeyInfo (what PublicKey returns, as AWS's: "DER-encoded X.509 public key ...
 * (SubjectPublicKeyInfo)") into pub. */
static CL_MUST_USE cl_status kms_wrapping_generate(int bits, cl_buf *der, cl_buf *pub)
{
    cl_status rc = CL_OK;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (pkey == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot generate an RSA-%d wrapping key", bits);
    int n = i2d_PrivateKey(pkey, NULL);
    CL_ENSURE_GOTO(n > 0 && n <= KMS_WRAPPING_DER_MAX, CL_ERR_CRYPTO, "cannot encode the RSA-%d wrapping key", bits);
    /* i2d writes straight into the secret buffer: no plain copy in between. */
    CL_GUARD_GOTO(cl_buf_reserve(der, (size_t)n + 1));
    CL_GUARD_GOTO(cl_buf_resize(der, (size_t)n));
    unsigned char *p = der->data;
    if (i2d_PrivateKey(pkey, &p) != n) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot encode the RSA-%d wrapping key", bits);
    CL_GUARD_GOTO(kms_asym_public_der(pkey, pub));
out:
    EVP_PKEY_free(pkey); /* OpenSSL clears an RSA key's private numbers when it frees them */
    return rc;
}

/* --- unwrapping ---------------------------------------------------------------------------- */

/* RSAES-OAEP decryption (RFC 8017 7.1.2) with digest md for both OAEP and MGF1, as AWS's
 * RSAES_OAEP_SHA_1 / _SHA_256 and the Developer Guide's `openssl pkeyutl -pkeyopt
 * rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256`. out: secret. */
static CL_MUST_USE cl_status kms_oaep_decrypt(EVP_PKEY *pkey, const char *md_name, const uint8_t *in, size_t in_len,
                                              cl_buf *out)
{
    cl_status rc = CL_OK;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    EVP_MD *md = EVP_MD_fetch(NULL, md_name, NULL);
    size_t n = 0;
    if (ctx == NULL || md == NULL || EVP_PKEY_decrypt_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 || EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up RSAES-OAEP with %s", md_name);
    CL_ENSURE_GOTO((int)in_len == EVP_PKEY_get_size(pkey), CL_ERR_AUTH,
                   "its RSA part is %zu bytes, not the %d of the wrapping key", in_len, EVP_PKEY_get_size(pkey));
    if (EVP_PKEY_decrypt(ctx, NULL, &n, in, in_len) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot size an RSAES-OAEP decryption");
    CL_GUARD_GOTO(cl_buf_reserve(out, n + 1));
    CL_GUARD_GOTO(cl_buf_resize(out, n));
    if (EVP_PKEY_decrypt(ctx, out->data, &n, in, in_len) != 1) {
        ERR_clear_error();
        CL_FAIL_GOTO(CL_ERR_AUTH, "RSAES-OAEP with %s does not decrypt it", md_name);
    }
    CL_GUARD_GOTO(cl_buf_resize(out, n));
out:
    if (rc != CL_OK) cl_buf_reset(out);
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* AES key wrap with padding (RFC 5649, its default IV A65959A6) under a 256-bit key. out: secret. */
static CL_MUST_USE cl_status kms_aes_unwrap_pad(const cl_buf *kek, const uint8_t *in, size_t in_len, cl_buf *out)
{
    cl_status rc = CL_OK;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    CL_ENSURE_GOTO(ctx != NULL, CL_ERR_NOMEM, "out of memory for AES key wrap");
    CL_ENSURE_GOTO(in_len >= 16 && in_len % 8 == 0 && in_len <= KMS_PLAINTEXT_MAX, CL_ERR_AUTH,
                   "its AES key wrap part is %zu bytes, not a multiple of 8 from 16", in_len);
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, kek->data, NULL) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot set up AES key wrap with padding");
    CL_GUARD_GOTO(cl_buf_reserve(out, in_len + 1));
    CL_GUARD_GOTO(cl_buf_resize(out, in_len));
    if (EVP_DecryptUpdate(ctx, out->data, &n, in, (int)in_len) != 1 || n < 0 ||
        EVP_DecryptFinal_ex(ctx, out->data + n, &fin) != 1) {
        ERR_clear_error();
        CL_FAIL_GOTO(CL_ERR_AUTH, "AES key wrap with padding (RFC 5649) does not unwrap it");
    }
    CL_GUARD_GOTO(cl_buf_resize(out, (size_t)n + (size_t)fin));
out:
    if (rc != CL_OK) cl_buf_reset(out);
    EVP_CIPHER_CTX_free(ctx); /* clears the key schedule */
    return rc;
}

/* EncryptedKeyMaterial unwrapped with the algorithm of its parameters into material (secret).
 * CL_ERR_AUTH: it does not unwrap (InvalidCiphertextException). */
static CL_MUST_USE cl_status kms_unwrap_material(EVP_PKEY *pkey, const char *alg, const cl_buf *enc, cl_buf *material)
{
    bool sha1 = strcmp(alg, "RSAES_OAEP_SHA_1") == 0 || strcmp(alg, "RSA_AES_KEY_WRAP_SHA_1") == 0;
    const char *md = sha1 ? "SHA1" : "SHA256";
    if (strncmp(alg, "RSAES_OAEP_", 11) == 0) return kms_oaep_decrypt(pkey, md, enc->data, enc->len, material);
    /* RSA_AES_KEY_WRAP_*: the ephemeral AES key under RSAES-OAEP (as long as the modulus), then
     * the material under that key with AES-KWP: "cat aes-key-wrapped.bin key-material-wrapped.bin"
     * (Developer Guide, "Encrypt key material", RSA_AES_KEY_WRAP_SHA_256). */
    cl_status rc = CL_OK;
    cl_buf kek;
    cl_buf_init_secret(&kek, EVP_PKEY_get_size(pkey) > 0 ? (size_t)EVP_PKEY_get_size(pkey) + 1 : 1);
    cl_reader r = cl_reader_make(enc->data, enc->len);
    const uint8_t *rsa_part, *kwp_part;
    size_t kwp_len = 0;
    size_t rsa_len = (size_t)EVP_PKEY_get_size(pkey);
    CL_ENSURE_GOTO(enc->len > rsa_len, CL_ERR_AUTH, "it is %zu bytes: no AES key wrap after its %zu-byte RSA part",
                   enc->len, rsa_len);
    CL_GUARD_GOTO(cl_reader_bytes(&r, rsa_len, &rsa_part));
    cl_reader_rest(&r, &kwp_part, &kwp_len);
    CL_GUARD_GOTO(kms_oaep_decrypt(pkey, md, rsa_part, rsa_len, &kek));
    CL_ENSURE_GOTO(kek.len == KMS_AES_WRAP_KEY_LEN, CL_ERR_AUTH, "its AES key is %zu bytes, not %d", kek.len,
                   KMS_AES_WRAP_KEY_LEN);
    CL_GUARD_GOTO(kms_aes_unwrap_pad(&kek, kwp_part, kwp_len, material));
out:
    cl_buf_free(&kek);
    return rc;
}

/* KeyMaterialId: "a unique identifier to the key material based on the KMS key ID and the
 * imported key material" (ImportKeyMaterial). HMAC-SHA256 keyed with the material, so the id
 * reveals nothing of it; lower-case hex (BackingKeyIdType). */
static CL_MUST_USE cl_status kms_material_id(const cl_buf *material, const char *key_id,
                                             char out[KMS_MATERIAL_ID_LEN + 1])
{
    uint8_t mac[CL_SHA256_LEN];
    cl_buf msg;
    cl_buf_init(&msg, 256);
    cl_status rc = cl_buf_append(&msg, KMS_MATERIAL_ID_LABEL, sizeof(KMS_MATERIAL_ID_LABEL));
    if (rc == CL_OK) rc = cl_buf_append(&msg, key_id, strlen(key_id));
    if (rc == CL_OK) rc = cl_hmac_sha256(material->data, material->len, msg.data, msg.len, mac);
    if (rc == CL_OK)
        for (size_t i = 0; i < sizeof(mac); i++) (void)snprintf(out + 2 * i, 3, "%02x", mac[i]);
    cl_memzero(mac, sizeof(mac));
    cl_buf_free(&msg);
    return rc;
}

/* --- the operations ----------------------------------------------------------------------- */

/* The key of an import operation: by key id or key ARN (aliases are not accepted: KeyId of
 * these requests), authorized for action, of Origin EXTERNAL, not pending deletion (unless
 * pending_deletion_ok). */
static CL_MUST_USE cl_status kms_import_key(kms_call *c, const char *action, bool pending_deletion_ok, kms_key_rec *k)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_key_load(c, id, 0, k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, NULL));
    if (!k->external)
        KMS_FAIL_AS_GOTO(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                         "%s has Origin AWS_KMS: key material can be imported only into a key created with Origin "
                         "EXTERNAL (CreateKey)",
                         k->arn);
    if (!pending_deletion_ok && k->state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k->arn);
out:
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

/* A KeyMaterialId member (BackingKeyIdType: 64 characters of ^[a-f0-9]+$), NULL when absent. */
static CL_MUST_USE cl_status kms_req_material_id(kms_call *c, const char **out)
{
    CL_GUARD(kms_req_str(c, "KeyMaterialId", false, KMS_MATERIAL_ID_LEN, KMS_MATERIAL_ID_LEN, out));
    if (*out != NULL && strspn(*out, "0123456789abcdef") != KMS_MATERIAL_ID_LEN)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value '%s' at 'keyMaterialId' failed to satisfy constraint: Member "
                    "must satisfy regular expression pattern: ^[a-f0-9]+$",
                    *out);
    return CL_OK;
}

/* An enum member: ValidationException when it is not one of set. */
static CL_MUST_USE cl_status kms_req_enum(kms_call *c, const char *member, bool required, const char *const *set,
                                          const char **out)
{
    CL_GUARD(kms_req_str(c, member, required, 1, 64, out));
    if (*out != NULL && !kms_str_in(set, *out)) return kms_req_enum_fail(c, member, *out, set);
    return CL_OK;
}

cl_status kms_op_get_parameters_for_import(kms_call *c)
{
    const char *alg, *spec;
    CL_GUARD(kms_req_enum(c, "WrappingAlgorithm", true, kms_wrapping_algs, &alg));
    CL_GUARD(kms_req_enum(c, "WrappingKeySpec", true, kms_wrapping_specs, &spec));
    if (strcmp(alg, "RSAES_PKCS1_V1_5") == 0)
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                    "WrappingAlgorithm RSAES_PKCS1_V1_5 is not supported (AWS KMS dropped it on October 10, 2023): "
                    "use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256");
    if (strcmp(alg, "SM2PKE") == 0 || strcmp(spec, "SM2") == 0)
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                    "%s %s is not supported: SM2 is offered in AWS's China Regions only; use an RSA wrapping key",
                    strcmp(spec, "SM2") == 0 ? "WrappingKeySpec" : "WrappingAlgorithm",
                    strcmp(spec, "SM2") == 0 ? spec : alg);
    kms_key_rec k;
    CL_GUARD(kms_import_key(c, "kms:GetParametersForImport", false, &k));
    cl_status rc = CL_OK;
    kms_import_rec p;
    memset(&p, 0, sizeof(p));
    cl_buf der, pub, token, wrapped;
    cl_buf_init_secret(&der, KMS_WRAPPING_DER_MAX + 1);
    cl_buf_init_secret(&token, KMS_IMPORT_TOKEN_LEN + 1);
    cl_buf_init(&pub, KMS_PUBLIC_MAX);
    cl_buf_init(&wrapped, KMS_WRAPPING_DER_MAX + 64);
    CL_GUARD_GOTO(kms_wrapping_generate(kms_wrapping_bits(spec), &der, &pub));
    CL_GUARD_GOTO(cl_buf_reserve(&token, KMS_IMPORT_TOKEN_LEN + 1));
    CL_GUARD_GOTO(cl_buf_append_u8(&token, KMS_IMPORT_TOKEN_VERSION));
    CL_GUARD_GOTO(cl_buf_append(&token, k.key_id, KMS_KEY_ID_LEN));
    CL_GUARD_GOTO(cl_buf_resize(&token, KMS_IMPORT_TOKEN_LEN));
    CL_GUARD_GOTO(cl_random_secret(token.data + 1 + KMS_KEY_ID_LEN, KMS_IMPORT_TOKEN_SECRET));
    CL_GUARD_GOTO(cl_sha256(token.data, token.len, p.token_hash));
    (void)snprintf(p.wrapping_alg, sizeof(p.wrapping_alg), "%s", alg);
    (void)snprintf(p.wrapping_spec, sizeof(p.wrapping_spec), "%s", spec);
    p.params_valid_to = c->now + KMS_IMPORT_PARAMS_SECONDS;
    CL_GUARD_GOTO(kms_wrapping_wrap(c, k.arn, &p, &der, &wrapped));
    /* The newest parameters replace any earlier ones: an earlier token is then invalid. */
    CL_GUARD_GOTO(c->kms->store->ops->set_import_params(c->kms->store, k.key_id, &p, wrapped.data, wrapped.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    CL_GUARD_GOTO(kms_resp_blob(c, "ImportToken", token.data, token.len));
    CL_GUARD_GOTO(kms_resp_blob(c, "PublicKey", pub.data, pub.len));
    json_object_set_new(c->resp, "ParametersValidTo", json_integer(p.params_valid_to));
out:
    cl_buf_free(&der);
    cl_buf_free(&token);
    cl_buf_free(&pub);
    cl_buf_free(&wrapped);
    kms_key_rec_clear(&k);
    return rc;
}

/* ValidTo, a timestamp (epoch seconds, a JSON number in awsJson1_1): *present says whether given. */
static CL_MUST_USE cl_status kms_req_timestamp(kms_call *c, const char *member, bool *present, int64_t *out)
{
    json_t *v = json_object_get(c->req, member);
    *present = v != NULL && !json_is_null(v);
    *out = 0;
    if (!*present) return CL_OK;
    if (!json_is_number(v))
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a timestamp (epoch seconds)", member);
    double d = json_number_value(v);
    if (!(d >= 0 && d < 9007199254740992.0))
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "%s %.0f is not a time this server can represent", member,
                    d);
    *out = (int64_t)d;
    return CL_OK;
}

/* The import token of the request, checked against the key's latest parameters p: it names
 * this key, it is the one issued (constant-time comparison of its SHA-256), and it is in date. */
static CL_MUST_USE cl_status kms_check_token(kms_call *c, const kms_key_rec *k, const kms_import_rec *p,
                                             const cl_buf *token)
{
    cl_reader r = cl_reader_make(token->data, token->len);
    uint8_t version = 0;
    const uint8_t *id = NULL;
    bool parsed = token->len == KMS_IMPORT_TOKEN_LEN && cl_reader_u8(&r, &version) == CL_OK &&
                  version == KMS_IMPORT_TOKEN_VERSION && cl_reader_bytes(&r, KMS_KEY_ID_LEN, &id) == CL_OK;
    if (!parsed)
        KMS_FAIL_AS(c, "InvalidImportTokenException", CL_ERR_AUTH,
                    "The import token is not one this server issued: send the ImportToken of a GetParametersForImport "
                    "response for %s",
                    k->arn);
    if (memcmp(id, k->key_id, KMS_KEY_ID_LEN) != 0)
        KMS_FAIL_AS(c, "InvalidImportTokenException", CL_ERR_AUTH,
                    "The import token is associated with a different KMS key, not %s: call GetParametersForImport "
                    "for this key",
                    k->arn);
    uint8_t hash[CL_SHA256_LEN];
    CL_GUARD(cl_sha256(token->data, token->len, hash));
    if (p->params_valid_to == 0 || !cl_ct_equal(hash, p->token_hash, sizeof(hash)))
        KMS_FAIL_AS(c, "InvalidImportTokenException", CL_ERR_AUTH,
                    "The import token is not the one of the latest GetParametersForImport response for %s (a newer "
                    "call replaces earlier tokens): use the ImportToken and PublicKey of that response",
                    k->arn);
    if (c->now >= p->params_valid_to)
        KMS_FAIL_AS(c, "ExpiredImportTokenException", CL_ERR_STATE,
                    "The import token of %s expired at %lld (24 hours after GetParametersForImport): call "
                    "GetParametersForImport again and wrap the key material with the new public key",
                    k->arn, (long long)p->params_valid_to);
    return CL_OK;
}

/* The expiration members: ValidTo is required with KEY_MATERIAL_EXPIRES (the default) and
 * refused without it; "a future date and time", at most 365 days ahead. *valid_to 0: never. */
static CL_MUST_USE cl_status kms_import_expiry(kms_call *c, int64_t *valid_to)
{
    const char *model;
    bool have;
    CL_GUARD(kms_req_enum(c, "ExpirationModel", false, kms_expiration_models, &model));
    CL_GUARD(kms_req_timestamp(c, "ValidTo", &have, valid_to));
    bool expires = model == NULL || strcmp(model, "KEY_MATERIAL_EXPIRES") == 0;
    if (expires && !have)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default); give it, or set "
                    "ExpirationModel to KEY_MATERIAL_DOES_NOT_EXPIRE");
    if (!expires && have)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE; omit it");
    if (expires && *valid_to <= c->now)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "ValidTo %lld is not in the future (now: %lld)",
                    (long long)*valid_to, (long long)c->now);
    if (expires && *valid_to > c->now + KMS_IMPORT_VALID_TO_MAX)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "ValidTo %lld is more than 365 days after the request (at most %lld)", (long long)*valid_to,
                    (long long)(c->now + KMS_IMPORT_VALID_TO_MAX));
    if (!expires) *valid_to = 0;
    return CL_OK;
}

/* The members about which material this is (ImportType, KeyMaterialId, KeyMaterialDescription)
 * against what the key had. Only one material per key here: after the first import, only that
 * material again. */
static CL_MUST_USE cl_status kms_import_which(kms_call *c, const kms_key_rec *k, const kms_import_rec *p,
                                              const char *type, const char *given, const char *id)
{
    bool first = p->material_id[0] == '\0';
    bool same = !first && cl_ct_equal(p->material_id, id, KMS_MATERIAL_ID_LEN);
    if (type != NULL && strcmp(type, "NEW_KEY_MATERIAL") == 0) {
        if (given != NULL)
            KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                        "KeyMaterialId cannot be specified with ImportType NEW_KEY_MATERIAL");
        if (same)
            KMS_FAIL_AS(c, "IncorrectKeyMaterialException", CL_ERR_USAGE,
                        "ImportType is NEW_KEY_MATERIAL, but this key material is already associated with %s", k->arn);
        if (!first)
            KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                        "%s already has key material: this server keeps one imported material per key (no "
                        "NEW_KEY_MATERIAL for on-demand rotation); reimport the same material, or create a new key",
                        k->arn);
    }
    if (type != NULL && strcmp(type, "EXISTING_KEY_MATERIAL") == 0 && first)
        KMS_FAIL_AS(c, "IncorrectKeyMaterialException", CL_ERR_USAGE,
                    "ImportType is EXISTING_KEY_MATERIAL, but no key material was ever imported into %s: omit "
                    "ImportType or use NEW_KEY_MATERIAL",
                    k->arn);
    if (given != NULL && (first || !cl_ct_equal(p->material_id, given, KMS_MATERIAL_ID_LEN)))
        KMS_FAIL_AS(c, "IncorrectKeyMaterialException", CL_ERR_USAGE, "KeyMaterialId %s is not the key material of %s",
                    given, k->arn);
    if (!first && !same)
        KMS_FAIL_AS(c, "IncorrectKeyMaterialException", CL_ERR_USAGE,
                    "The key material is not the same key material that was previously imported into %s: a key "
                    "takes only the material first imported into it",
                    k->arn);
    return CL_OK;
}

cl_status kms_op_import_key_material(kms_call *c)
{
    int64_t valid_to = 0;
    const char *type = NULL, *given = NULL, *desc = NULL;
    cl_status rc = CL_OK;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    kms_import_rec p;
    memset(&p, 0, sizeof(p));
    EVP_PKEY *pkey = NULL;
    char id[KMS_MATERIAL_ID_LEN + 1] = "";
    cl_buf token, enc, wrapping, material, wrapped;
    cl_buf_init_secret(&token, KMS_BLOB_MAX);
    cl_buf_init(&enc, KMS_BLOB_MAX);
    cl_buf_init(&wrapping, KMS_WRAPPING_DER_MAX + 64);
    cl_buf_init_secret(&material, KMS_BLOB_MAX);
    cl_buf_init(&wrapped, 4096);
    CL_GUARD_GOTO(kms_req_blob(c, "ImportToken", true, KMS_BLOB_MAX, &token));
    CL_GUARD_GOTO(kms_req_blob(c, "EncryptedKeyMaterial", true, KMS_BLOB_MAX, &enc));
    CL_GUARD_GOTO(kms_import_expiry(c, &valid_to));
    /* KeyMaterialDescription is checked and not kept: this server lists no key materials
     * (ListKeyRotations' IncludeKeyMaterial), where AWS shows it. */
    CL_GUARD_GOTO(kms_req_enum(c, "ImportType", false, kms_import_types, &type));
    CL_GUARD_GOTO(kms_req_material_id(c, &given));
    CL_GUARD_GOTO(kms_req_str(c, "KeyMaterialDescription", false, 0, 256, &desc));
    CL_GUARD_GOTO(kms_import_key(c, "kms:ImportKeyMaterial", false, &k));
    CL_GUARD_GOTO(c->kms->store->ops->get_import(c->kms->store, k.key_id, &p, &wrapping));
    CL_GUARD_GOTO(kms_check_token(c, &k, &p, &token));
    CL_GUARD_GOTO(kms_wrapping_unwrap(c, k.arn, &p, &wrapping, &pkey));
    rc = kms_unwrap_material(pkey, p.wrapping_alg, &enc, &material);
    if (rc == CL_ERR_AUTH)
        KMS_FAIL_AS_GOTO(c, "InvalidCiphertextException", CL_ERR_AUTH,
                         "KMS could not decrypt the encrypted (wrapped) key material (%s): wrap it with the PublicKey "
                         "of the same GetParametersForImport response, using its WrappingAlgorithm %s",
                         cl_error_message(), p.wrapping_alg);
    CL_GUARD_GOTO(rc);
    /* "The key material must be a 256-bit symmetric key" (Developer Guide, "Requirements for
     * imported key material", SYMMETRIC_DEFAULT). */
    if (material.len != KMS_MATERIAL_LEN)
        KMS_FAIL_AS_GOTO(c, "IncorrectKeyMaterialException", CL_ERR_USAGE,
                         "The key material is %zu bytes: a SYMMETRIC_DEFAULT key takes 256 bits (32 bytes) of key "
                         "material",
                         material.len);
    CL_GUARD_GOTO(kms_material_id(&material, k.key_id, id));
    CL_GUARD_GOTO(kms_import_which(c, &k, &p, type, given, id));
    CL_GUARD_GOTO(kms_material_wrap(&c->kms->root, k.arn, 1, material.data, &wrapped));
    /* "When this operation is successful, the key state of the KMS key changes from PendingImport
     * to Enabled"; a reimport into a Disabled key (to change ValidTo) leaves it Disabled. */
    CL_GUARD_GOTO(c->kms->store->ops->import_material(c->kms->store, k.key_id, wrapped.data, wrapped.len, id, valid_to,
                                                      c->now, k.state == KMS_KEY_PENDING_IMPORT));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "KeyMaterialId", json_string(id));
out:
    EVP_PKEY_free(pkey);
    cl_buf_free(&token);
    cl_buf_free(&enc);
    cl_buf_free(&wrapping);
    cl_buf_free(&material);
    cl_buf_free(&wrapped);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_delete_imported_key_material(kms_call *c)
{
    const char *given;
    CL_GUARD(kms_req_material_id(c, &given));
    kms_key_rec k;
    /* "When the specified KMS key is in the PendingDeletion state, this operation does not change
     * the KMS key's state. Otherwise, it changes the KMS key's state to PendingImport." */
    CL_GUARD(kms_import_key(c, "kms:DeleteImportedKeyMaterial", true, &k));
    cl_status rc = CL_OK;
    kms_import_rec p;
    bool deleted = false;
    CL_GUARD_GOTO(c->kms->store->ops->get_import(c->kms->store, k.key_id, &p, NULL));
    if (given != NULL && (p.material_id[0] == '\0' || strcmp(given, p.material_id) != 0))
        KMS_FAIL_AS_GOTO(c, "NotFoundException", CL_ERR_NOT_FOUND, "Key material %s is not a key material of %s", given,
                         k.arn);
    CL_GUARD_GOTO(c->kms->store->ops->delete_material(c->kms->store, k.key_id, 0, &deleted));
    /* This process's copy goes too; another instance's is never used again, since every request
     * reads the key's state from the store first (PendingImport now). */
    if (c->kms->cache != NULL) kms_cache_evict_key(c->kms->cache, k.key_id);
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "KeyMaterialId", json_string(p.material_id));
out:
    kms_key_rec_clear(&k);
    return rc;
}
