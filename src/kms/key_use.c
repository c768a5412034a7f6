/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: a loaded key's material put to use (key_use.h). */
#include "key_use.h"

#include <string.h>

#include "cloister/recipient.h"

#include "asym.h"
#include "key_access.h"
#include "request.h"

/* EncryptionAlgorithmSpec enum of the service model. */
static const char *const kms_model_enc_algs[] = {"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                                                 "SM2PKE", NULL};

cl_status kms_key_spec(kms_call *c, const kms_key_rec *k, const kms_spec_info **s)
{
    *s = kms_spec_find(k->key_spec);
    if (*s == NULL)
        KMS_FAIL_AS(c, "KMSInternalException", CL_ERR_INTERNAL, "%s has key spec %s, unknown to this build", k->arn,
                    k->key_spec);
    return CL_OK;
}

bool kms_key_is_asymmetric(const kms_key_rec *k)
{
    const kms_spec_info *s = kms_spec_find(k->key_spec);
    return s != NULL && (s->kind == KMS_KIND_RSA || s->kind == KMS_KIND_EC);
}

cl_status kms_key_check_alg(kms_call *c, const kms_key_rec *k, kms_usage u, const char *alg)
{
    const kms_spec_info *s = kms_spec_find(k->key_spec);
    if (s == NULL || !kms_spec_allows(s, u, alg))
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_KEY, "Algorithm %s is incompatible with key spec %s.", alg,
                    k->key_spec);
    return CL_OK;
}

cl_status kms_dry_run(kms_call *c, bool dry_run)
{
    if (dry_run)
        KMS_FAIL_AS(c, "DryRunOperationException", CL_ERR_STATE,
                    "The request would have succeeded, but the DryRun option is set.");
    return CL_OK;
}

cl_status kms_key_private(kms_call *c, const kms_key_rec *k, const kms_spec_info *s, EVP_PKEY **out)
{
    *out = NULL;
    cl_status rc = CL_OK;
    cl_buf wrapped, der;
    cl_buf_init(&wrapped, KMS_PRIVATE_WRAPPED_MAX);
    cl_buf_init_secret(&der, KMS_PRIVATE_MAX);
    CL_GUARD_GOTO(c->kms->store->ops->get_material(c->kms->store, k->key_id, k->current_version, &wrapped));
    CL_GUARD_GOTO(kms_private_unwrap(&c->kms->root, k->arn, k->current_version, wrapped.data, wrapped.len, &der));
    CL_GUARD_GOTO(kms_asym_load(s, der.data, der.len, out));
out:
    if (rc != CL_OK) c->exception = "KMSInternalException";
    cl_buf_free(&wrapped);
    cl_buf_free(&der);
    return rc;
}

/* HMAC_256's 32 bytes are symmetric material (keys.h, cached); the other HMAC specs' keys are
 * stored as private keys are (asym.h), their length their own. */
cl_status kms_key_mac_secret(kms_call *c, const kms_key_rec *k, const kms_spec_info *s, cl_buf *key)
{
    CL_ENSURE(s->kind == KMS_KIND_HMAC, CL_ERR_INTERNAL, "%s is not an HMAC key", k->arn);
    if (s->mac_len == KMS_MATERIAL_LEN) return kms_key_material(c, k, k->current_version, key);
    cl_status rc = CL_OK;
    cl_buf wrapped;
    cl_buf_init(&wrapped, KMS_PRIVATE_WRAPPED_MAX);
    CL_GUARD_GOTO(c->kms->store->ops->get_material(c->kms->store, k->key_id, k->current_version, &wrapped));
    CL_GUARD_GOTO(kms_private_unwrap(&c->kms->root, k->arn, k->current_version, wrapped.data, wrapped.len, key));
    CL_ENSURE_GOTO(key->len == s->mac_len, CL_ERR_FORMAT, "stored key of %s is %zu bytes, not %zu", k->arn, key->len,
                   s->mac_len);
out:
    if (rc != CL_OK) {
        c->exception = "KMSInternalException";
        cl_buf_reset(key);
    }
    cl_buf_free(&wrapped);
    return rc;
}

cl_status kms_req_encryption_alg(kms_call *c, const char *member, const char **alg)
{
    CL_GUARD(kms_req_str(c, member, false, 1, 64, alg));
    if (*alg == NULL) {
        *alg = "SYMMETRIC_DEFAULT";
        return CL_OK;
    }
    if (!kms_str_in(kms_model_enc_algs, *alg)) return kms_req_enum_fail(c, member, *alg, kms_model_enc_algs);
    if (strcmp(*alg, "SM2PKE") == 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_UNSUPPORTED,
                    "%s SM2PKE is for SM2 keys, which AWS offers in its China Regions only and this server does not "
                    "implement; use RSAES_OAEP_SHA_256 with an RSA key",
                    member);
    return CL_OK;
}

bool kms_encryption_alg_is_rsa(const char *alg) { return kms_enc_alg_find(alg) != NULL; }

/* "An encryption context is supported only on operations with symmetric encryption KMS keys"
 * (EncryptionContext, API Reference): an RSA ciphertext has no room for one, so a context given
 * would bind nothing. Refused, rather than ignored, so that no caller believes it does. */
static CL_MUST_USE cl_status kms_rsa_no_context(kms_call *c, const kms_key_rec *k, const cl_kvlist *ctx)
{
    if (ctx != NULL && ctx->count > 0)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "%s is an asymmetric %s key: an encryption context is supported with symmetric encryption KMS "
                    "keys only; leave it out",
                    k->arn, k->key_spec);
    return CL_OK;
}

cl_status kms_rsa_encrypt(kms_call *c, const kms_key_rec *k, const char *alg, const cl_kvlist *ctx, const uint8_t *pt,
                          size_t len, cl_buf *ct)
{
    const kms_spec_info *s;
    CL_GUARD(kms_key_require_usage(c, k, "ENCRYPT_DECRYPT"));
    CL_GUARD(kms_key_spec(c, k, &s));
    CL_GUARD(kms_key_check_alg(c, k, KMS_USAGE_ENCRYPT_DECRYPT, alg));
    CL_GUARD(kms_rsa_no_context(c, k, ctx));
    const kms_enc_alg *ea = kms_enc_alg_find(alg);
    CL_ENSURE(ea != NULL && s->kind == KMS_KIND_RSA, CL_ERR_INTERNAL, "%s is not RSAES", alg);
    /* The bound and the message of AWS (Encrypt's table in the API Reference). */
    size_t max = kms_oaep_max(s->rsa_bits, ea);
    if (len > max)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_LIMIT,
                    "Algorithm %s and key spec %s cannot encrypt data larger than %zu bytes.", alg, s->name, max);
    EVP_PKEY *pkey = NULL;
    CL_GUARD(kms_key_private(c, k, s, &pkey));
    cl_status rc = kms_asym_encrypt(pkey, ea, pt, len, ct);
    EVP_PKEY_free(pkey);
    return rc;
}

cl_status kms_rsa_decrypt(kms_call *c, const cl_buf *ct, const char *id, const char *key_member, const char *alg,
                          const char *action, const cl_kvlist *ctx, kms_key_rec *k, cl_buf *pt)
{
    /* "When the KMS key is asymmetric, you must specify the KMS key and the encryption
     * algorithm that was used to encrypt the ciphertext" (Decrypt, API Reference). */
    if (id == NULL)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "%s is required with %s: the ciphertext of an asymmetric KMS key does not name its key", key_member,
                    alg);
    CL_GUARD(kms_key_load(c, id, KMS_KEY_ALIAS_OK, k));
    cl_status rc = CL_OK;
    const kms_spec_info *s;
    EVP_PKEY *pkey = NULL;
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, ctx));
    CL_GUARD_GOTO(kms_key_require_usage(c, k, "ENCRYPT_DECRYPT"));
    CL_GUARD_GOTO(kms_key_check_alg(c, k, KMS_USAGE_ENCRYPT_DECRYPT, alg));
    CL_GUARD_GOTO(kms_rsa_no_context(c, k, ctx));
    CL_GUARD_GOTO(kms_key_spec(c, k, &s));
    CL_GUARD_GOTO(kms_key_private(c, k, s, &pkey));
    rc = kms_asym_decrypt(pkey, kms_enc_alg_find(alg), ct->data, ct->len, pt);
    if (rc == CL_ERR_AUTH)
        KMS_FAIL_AS_GOTO(c, "InvalidCiphertextException", CL_ERR_AUTH,
                         "The ciphertext does not decrypt with %s under %s (an RSAES ciphertext is as long as the "
                         "modulus, %d bytes here, and decrypts only with the algorithm and key that made it)",
                         alg, k->arn, EVP_PKEY_get_size(pkey));
out:
    EVP_PKEY_free(pkey);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_answer_secret(kms_call *c, const kms_recipient *rcpt, const char *member, const uint8_t *p, size_t n)
{
    if (!rcpt->present) return kms_resp_blob(c, member, p, n);
    cl_buf cms;
    cl_buf_init(&cms, CL_RECIPIENT_MAX_CMS);
    cl_status rc = kms_recipient_seal(c, rcpt, p, n, &cms);
    if (rc == CL_OK) rc = kms_resp_blob(c, "CiphertextForRecipient", cms.data, cms.len);
    cl_buf_free(&cms);
    return rc;
}
