/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: symmetric cryptography: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
 * GenerateDataKeyWithoutPlaintext, GenerateRandom (ops.h). Ciphertexts are the blobs of
 * keys.h (docs/formats/kms-ciphertext.md); a Recipient (attested_release.h) receives the
 * plaintext as CiphertextForRecipient instead. Encrypt, Decrypt and ReEncrypt take RSA keys
 * too (key_use.h): their ciphertexts are RSAES-OAEP's raw output. Uses request.c,
 * key_access.c, key_use.c, keys.c and attested_release.c.
 */
#include <stdio.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/recipient.h"

#include "attested_release.h"
#include "grants.h"
#include "key_access.h"
#include "key_use.h"
#include "ops.h"
#include "request.h"

#define KMS_RANDOM_MAX 1024 /* NumberOfBytesType */

/* Encrypts under a key's current version into blob. */
static CL_MUST_USE cl_status kms_encrypt_with(kms_call *c, const kms_key_rec *k, const cl_kvlist *ctx,
                                              const uint8_t *pt, size_t pt_len, cl_buf *blob)
{
    cl_buf material;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    cl_status rc = kms_key_material(c, k, k->current_version, &material);
    if (rc == CL_OK) rc = kms_blob_seal(material.data, k->key_id, k->region, k->current_version, ctx, pt, pt_len, blob);
    cl_buf_free(&material);
    return rc;
}

/* Decrypts a blob: finds its key (checking KeyId when given), authorizes
 * `action`, checks state, opens. k is filled for the caller. */
static CL_MUST_USE cl_status kms_decrypt_blob(kms_call *c, const cl_buf *blob, const char *expect_key,
                                              const char *action, const cl_kvlist *ctx, kms_key_rec *k, cl_buf *pt)
{
    kms_blob b;
    if (kms_blob_parse(blob->data, blob->len, &b) != CL_OK)
        KMS_FAIL_AS(c, "InvalidCiphertextException", CL_ERR_AUTH, "The ciphertext is not a valid ciphertext blob");
    /* The blob names the key (in the request's region); it may be another account's. */
    CL_GUARD(kms_key_load_blob(c, &b, k));
    cl_status rc = CL_OK;
    cl_buf material;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    if (expect_key != NULL) {
        kms_key_rec want;
        char saved[KMS_ARN_MAX + 1];
        (void)snprintf(saved, sizeof(saved), "%s", c->key_arn);
        CL_GUARD_GOTO(kms_key_load(c, expect_key, KMS_KEY_ALIAS_OK, &want));
        bool same = strcmp(want.key_id, k->key_id) == 0;
        kms_key_rec_clear(&want);
        (void)snprintf(c->key_arn, sizeof(c->key_arn), "%s", saved);
        if (!same)
            KMS_FAIL_AS_GOTO(c, "IncorrectKeyException", CL_ERR_KEY,
                             "The key ID in the request does not identify a KMS key that can perform this operation.");
    }
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, ctx));
    CL_GUARD_GOTO(kms_key_require_enabled(c, k));
    CL_GUARD_GOTO(kms_key_material(c, k, b.version, &material));
    rc = kms_blob_open(material.data, &b, ctx, pt);
    if (rc != CL_OK) c->exception = "InvalidCiphertextException";
out:
    cl_buf_free(&material);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

/* Encrypts under a key (Encrypt, ReEncrypt's destination) with the EncryptionAlgorithm asked:
 * RSAES under an RSA key, SYMMETRIC_DEFAULT under a symmetric one. */
static CL_MUST_USE cl_status kms_encrypt_any(kms_call *c, const kms_key_rec *k, const char *alg, const cl_kvlist *ctx,
                                             const uint8_t *pt, size_t pt_len, cl_buf *blob)
{
    if (kms_key_is_asymmetric(k)) return kms_rsa_encrypt(c, k, alg, ctx, pt, pt_len, blob);
    CL_GUARD(kms_key_require_enabled(c, k));
    CL_GUARD(kms_key_check_alg(c, k, KMS_USAGE_ENCRYPT_DECRYPT, alg));
    return kms_encrypt_with(c, k, ctx, pt, pt_len, blob);
}

/* Decrypts (Decrypt, ReEncrypt's source): an RSAES algorithm names an RSA key's ciphertext,
 * which key_member must name; anything else is a ciphertext blob of keys.h. */
static CL_MUST_USE cl_status kms_decrypt_any(kms_call *c, const cl_buf *blob, const char *expect_key,
                                             const char *key_member, const char *alg, const char *action,
                                             const cl_kvlist *ctx, kms_key_rec *k, cl_buf *pt)
{
    if (kms_encryption_alg_is_rsa(alg))
        return kms_rsa_decrypt(c, blob, expect_key, key_member, alg, action, ctx, k, pt);
    return kms_decrypt_blob(c, blob, expect_key, action, ctx, k, pt);
}

cl_status kms_op_encrypt(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id, *alg;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf pt, blob;
    cl_buf_init_secret(&pt, KMS_PLAINTEXT_MAX);
    cl_buf_init(&blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_req_blob(c, "Plaintext", true, KMS_PLAINTEXT_MAX, &pt));
    CL_GUARD_GOTO(kms_req_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_req_encryption_alg(c, "EncryptionAlgorithm", &alg));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    CL_GUARD_GOTO(kms_key_load(c, id, KMS_KEY_ALIAS_OK, &k));
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:Encrypt", &c->audit_ctx));
    CL_GUARD_GOTO(kms_encrypt_any(c, &k, alg, &c->audit_ctx, pt.data, pt.len, &blob));
    CL_GUARD_GOTO(kms_resp_blob(c, "CiphertextBlob", blob.data, blob.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "EncryptionAlgorithm", json_string(alg));
out:
    kms_key_rec_clear(&k);
    cl_buf_free(&pt);
    cl_buf_free(&blob);
    return rc;
}

/* With a Recipient, the plaintext goes out only as CiphertextForRecipient and the Plaintext
 * member is left out ("If the response includes the CiphertextForRecipient field, the
 * Plaintext field is null or empty", DecryptResponse in the service model). */
static CL_MUST_USE cl_status kms_answer_plaintext(kms_call *c, const kms_recipient *rcpt, const uint8_t *pt, size_t n)
{
    return kms_answer_secret(c, rcpt, "Plaintext", pt, n);
}

cl_status kms_op_decrypt(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id, *alg;
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf blob, pt;
    cl_buf_init(&blob, KMS_BLOB_MAX);
    cl_buf_init_secret(&pt, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_req_blob(c, "CiphertextBlob", true, KMS_BLOB_MAX, &blob));
    CL_GUARD_GOTO(kms_req_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", false, 1, 2048, &id));
    CL_GUARD_GOTO(kms_req_encryption_alg(c, "EncryptionAlgorithm", &alg));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    CL_GUARD_GOTO(kms_recipient_read(c, &rcpt));
    CL_GUARD_GOTO(kms_decrypt_any(c, &blob, id, "KeyId", alg, "kms:Decrypt", &c->audit_ctx, &k, &pt));
    CL_GUARD_GOTO(kms_answer_plaintext(c, &rcpt, pt.data, pt.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "EncryptionAlgorithm", json_string(alg));
out:
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    kms_key_rec_clear(&k);
    cl_buf_free(&blob);
    cl_buf_free(&pt);
    return rc;
}

cl_status kms_op_re_encrypt(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *src_id, *dst_id, *src_alg, *dst_alg;
    kms_key_rec src, dst;
    memset(&src, 0, sizeof(src));
    memset(&dst, 0, sizeof(dst));
    cl_kvlist dctx;
    cl_kvlist_init(&dctx);
    cl_buf blob, pt, out_blob;
    cl_buf_init(&blob, KMS_BLOB_MAX);
    cl_buf_init_secret(&pt, KMS_BLOB_MAX);
    cl_buf_init(&out_blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_req_blob(c, "CiphertextBlob", true, KMS_BLOB_MAX, &blob));
    CL_GUARD_GOTO(kms_req_context(c, "SourceEncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_req_str(c, "SourceKeyId", false, 1, 2048, &src_id));
    CL_GUARD_GOTO(kms_req_str(c, "DestinationKeyId", true, 1, 2048, &dst_id));
    CL_GUARD_GOTO(kms_req_context(c, "DestinationEncryptionContext", &dctx));
    CL_GUARD_GOTO(kms_req_encryption_alg(c, "SourceEncryptionAlgorithm", &src_alg));
    CL_GUARD_GOTO(kms_req_encryption_alg(c, "DestinationEncryptionAlgorithm", &dst_alg));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    CL_GUARD_GOTO(
        kms_decrypt_any(c, &blob, src_id, "SourceKeyId", src_alg, "kms:ReEncryptFrom", &c->audit_ctx, &src, &pt));
    CL_GUARD_GOTO(kms_key_load(c, dst_id, KMS_KEY_ALIAS_OK, &dst));
    CL_GUARD_GOTO(kms_key_authorize(c, &dst, "kms:ReEncryptTo", &dctx));
    CL_GUARD_GOTO(kms_encrypt_any(c, &dst, dst_alg, &dctx, pt.data, pt.len, &out_blob));
    CL_GUARD_GOTO(kms_resp_blob(c, "CiphertextBlob", out_blob.data, out_blob.len));
    json_object_set_new(c->resp, "SourceKeyId", json_string(src.arn));
    json_object_set_new(c->resp, "KeyId", json_string(dst.arn));
    json_object_set_new(c->resp, "SourceEncryptionAlgorithm", json_string(src_alg));
    json_object_set_new(c->resp, "DestinationEncryptionAlgorithm", json_string(dst_alg));
out:
    kms_key_rec_clear(&src);
    kms_key_rec_clear(&dst);
    cl_kvlist_free(&dctx);
    cl_buf_free(&blob);
    cl_buf_free(&pt);
    cl_buf_free(&out_blob);
    return rc;
}

static CL_MUST_USE cl_status kms_generate_data_key(kms_call *c, bool with_plaintext)
{
    cl_status rc = CL_OK;
    const char *id, *spec;
    long long nbytes = 0;
    bool have_n;
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf dk, blob;
    cl_buf_init_secret(&dk, KMS_RANDOM_MAX);
    cl_buf_init(&blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_req_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_req_str(c, "KeySpec", false, 1, 32, &spec));
    CL_GUARD_GOTO(kms_req_int(c, "NumberOfBytes", &have_n, 1, KMS_RANDOM_MAX, &nbytes));
    if (!with_plaintext && json_object_get(c->req, "Recipient") != NULL)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                         "GenerateDataKeyWithoutPlaintext has no Recipient parameter");
    /* Exactly one of KeySpec and NumberOfBytes (API reference, GenerateDataKey). */
    if ((spec != NULL) == have_n)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE, "Please specify either number of bytes or key spec.");
    if (spec != NULL) {
        if (strcmp(spec, "AES_256") == 0) {
            nbytes = 32;
        } else if (strcmp(spec, "AES_128") == 0) {
            nbytes = 16;
        } else {
            KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                             "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: "
                             "Member must satisfy enum value set: [AES_256, AES_128]",
                             spec);
        }
    }
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    if (with_plaintext) CL_GUARD_GOTO(kms_recipient_read(c, &rcpt));
    CL_GUARD_GOTO(kms_key_load(c, id, KMS_KEY_ALIAS_OK, &k));
    CL_GUARD_GOTO(kms_key_authorize(
        c, &k, with_plaintext ? "kms:GenerateDataKey" : "kms:GenerateDataKeyWithoutPlaintext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_key_require_enabled(c, &k));
    CL_GUARD_GOTO(cl_buf_resize(&dk, (size_t)nbytes));
    CL_GUARD_GOTO(cl_random_secret(dk.data, dk.len));
    CL_GUARD_GOTO(kms_encrypt_with(c, &k, &c->audit_ctx, dk.data, dk.len, &blob));
    CL_GUARD_GOTO(kms_resp_blob(c, "CiphertextBlob", blob.data, blob.len));
    if (with_plaintext) CL_GUARD_GOTO(kms_answer_plaintext(c, &rcpt, dk.data, dk.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
out:
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    kms_key_rec_clear(&k);
    cl_buf_free(&dk);
    cl_buf_free(&blob);
    return rc;
}

cl_status kms_op_generate_data_key(kms_call *c) { return kms_generate_data_key(c, true); }
cl_status kms_op_generate_data_key_wo(kms_call *c) { return kms_generate_data_key(c, false); }

cl_status kms_op_generate_random(kms_call *c)
{
    long long n = 0;
    bool have;
    CL_GUARD(kms_req_int(c, "NumberOfBytes", &have, 1, KMS_RANDOM_MAX, &n));
    if (!have) return kms_req_null(c, "NumberOfBytes");
    /* No key, so no key policy: a valid document is all GenerateRandom asks of a Recipient. */
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    cl_buf r;
    cl_buf_init_secret(&r, KMS_RANDOM_MAX);
    cl_status rc = kms_recipient_read(c, &rcpt);
    if (rc == CL_OK) rc = cl_buf_resize(&r, (size_t)n);
    if (rc == CL_OK) rc = cl_random_secret(r.data, r.len);
    if (rc == CL_OK) rc = kms_answer_plaintext(c, &rcpt, r.data, r.len);
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    cl_buf_free(&r);
    return rc;
}
