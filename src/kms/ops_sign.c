/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: asymmetric and HMAC keys: Sign, Verify, GetPublicKey, GenerateMac,
 * VerifyMac (ops.h). Members are those of botocore's kms/2014-11-01/service-2.json; errors
 * those of the AWS KMS API Reference for each operation. Uses request.c, key_access.c,
 * grants.c (grant tokens), keyspec.c and asym.c.
 */
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#include "asym.h"
#include "grants.h"
#include "key_access.h"
#include "keyspec.h"
#include "ops.h"
#include "request.h"

#define KMS_MESSAGE_MAX 4096  /* PlaintextType */
#define KMS_SIG_BLOB_MAX 6144 /* CiphertextType */

/* SigningAlgorithmSpec and MacAlgorithmSpec enums of the service model:
 * values outside them are ValidationException, values inside them that a
 * key cannot use are InvalidKeyUsageException. */
static const char *const kms_model_sig_algs[] = {"RSASSA_PSS_SHA_256",
                                                 "RSASSA_PSS_SHA_384",
                                                 "RSASSA_PSS_SHA_512",
                                                 "RSASSA_PKCS1_V1_5_SHA_256",
                                                 "RSASSA_PKCS1_V1_5_SHA_384",
                                                 "RSASSA_PKCS1_V1_5_SHA_512",
                                                 "ECDSA_SHA_256",
                                                 "ECDSA_SHA_384",
                                                 "ECDSA_SHA_512",
                                                 "SM2DSA",
                                                 "ML_DSA_SHAKE_256",
                                                 "ED25519_SHA_512",
                                                 "ED25519_PH_SHA_512",
                                                 NULL};
static const char *const kms_model_mac_algs[] = {"HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512", NULL};
static const char *const kms_model_message_types[] = {"RAW", "DIGEST", "EXTERNAL_MU", NULL};

/* --- shared checks ------------------------------------------------------------ */

/* The key states and usage Sign, Verify, GetPublicKey and the MAC operations need. */
static CL_MUST_USE cl_status kms_require_usage(kms_call *c, const kms_key_rec *k, const char *usage)
{
    if (k->state == KMS_KEY_DISABLED) KMS_FAIL_AS(c, "DisabledException", CL_ERR_STATE, "%s is disabled.", k->arn);
    if (k->state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k->arn);
    if (strcmp(k->key_usage, usage) != 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_STATE, "%s key usage is %s, not %s", k->arn, k->key_usage,
                    usage);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_dry_run(kms_call *c, bool dry_run)
{
    if (dry_run)
        KMS_FAIL_AS(c, "DryRunOperationException", CL_ERR_STATE,
                    "The request would have succeeded, but the DryRun option is set.");
    return CL_OK;
}

/* The private key of an asymmetric key's current version. */
static CL_MUST_USE cl_status kms_private_key(kms_call *c, const kms_key_rec *k, const kms_spec_info *s, EVP_PKEY **out)
{
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

/* --- Sign / Verify ------------------------------------------------------------- */

typedef struct kms_sig_req {
    const char *key;
    const char *alg_name;
    bool digest;
    bool dry_run;
} kms_sig_req;

static CL_MUST_USE cl_status kms_sig_request(kms_call *c, cl_buf *msg, kms_sig_req *r)
{
    const char *type;
    memset(r, 0, sizeof(*r));
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &r->key));
    CL_GUARD(kms_req_blob(c, "Message", true, KMS_MESSAGE_MAX, msg));
    CL_GUARD(kms_req_str(c, "MessageType", false, 1, 64, &type));
    CL_GUARD(kms_req_str(c, "SigningAlgorithm", true, 1, 64, &r->alg_name));
    CL_GUARD(kms_grant_tokens_check(c));
    CL_GUARD(kms_req_bool(c, "DryRun", &r->dry_run));
    if (type != NULL && !kms_str_in(kms_model_message_types, type))
        return kms_req_enum_fail(c, "MessageType", type, kms_model_message_types);
    if (!kms_str_in(kms_model_sig_algs, r->alg_name))
        return kms_req_enum_fail(c, "SigningAlgorithm", r->alg_name, kms_model_sig_algs);
    if (type != NULL && strcmp(type, "EXTERNAL_MU") == 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_UNSUPPORTED,
                    "MessageType EXTERNAL_MU is only valid for ML_DSA keys");
    r->digest = type != NULL && strcmp(type, "DIGEST") == 0;
    return CL_OK;
}

/* A DIGEST message must be exactly as long as the algorithm's digest. */
static CL_MUST_USE cl_status kms_check_digest_len(kms_call *c, const kms_sig_req *r, const kms_sig_alg *alg, size_t len)
{
    if (r->digest && len != alg->md_len)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "Digest is invalid length for algorithm %s: %zu bytes, expected %zu", alg->name, len, alg->md_len);
    return CL_OK;
}

/* Loads, authorizes and checks the key of a Sign or Verify request; then
 * its private key into *pkey. k is filled (and must be cleared) on success. */
static CL_MUST_USE cl_status kms_sig_key(kms_call *c, const kms_sig_req *r, size_t msg_len, const char *action,
                                         kms_key_rec *k, const kms_sig_alg **alg, EVP_PKEY **pkey)
{
    CL_GUARD(kms_key_load(c, r->key, KMS_KEY_ALIAS_OK, k));
    cl_status rc = CL_OK;
    const kms_spec_info *s = kms_spec_find(k->key_spec);
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, NULL));
    CL_GUARD_GOTO(kms_require_usage(c, k, "SIGN_VERIFY"));
    CL_ENSURE_GOTO(s != NULL, CL_ERR_INTERNAL, "%s has key spec %s, unknown to this build", k->arn, k->key_spec);
    *alg = kms_sig_alg_find(r->alg_name);
    if (*alg == NULL || !kms_spec_allows(s, r->alg_name))
        KMS_FAIL_AS_GOTO(c, "InvalidKeyUsageException", CL_ERR_KEY,
                         "Algorithm %s is incompatible with key spec %s of %s.", r->alg_name, k->key_spec, k->arn);
    CL_GUARD_GOTO(kms_check_digest_len(c, r, *alg, msg_len));
    CL_GUARD_GOTO(kms_dry_run(c, r->dry_run));
    CL_GUARD_GOTO(kms_private_key(c, k, s, pkey));
out:
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_op_sign(kms_call *c)
{
    cl_status rc = CL_OK;
    kms_sig_req r;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    const kms_sig_alg *alg = NULL;
    EVP_PKEY *pkey = NULL;
    cl_buf msg, sig;
    cl_buf_init_secret(&msg, KMS_MESSAGE_MAX);
    cl_buf_init(&sig, KMS_SIGNATURE_MAX);
    CL_GUARD_GOTO(kms_sig_request(c, &msg, &r));
    CL_GUARD_GOTO(kms_sig_key(c, &r, msg.len, "kms:Sign", &k, &alg, &pkey));
    CL_GUARD_GOTO(kms_asym_sign(pkey, alg, r.digest, msg.data, msg.len, &sig));
    CL_GUARD_GOTO(kms_resp_blob(c, "Signature", sig.data, sig.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "SigningAlgorithm", json_string(alg->name));
out:
    EVP_PKEY_free(pkey);
    kms_key_rec_clear(&k);
    cl_buf_free(&msg);
    cl_buf_free(&sig);
    return rc;
}

cl_status kms_op_verify(kms_call *c)
{
    cl_status rc = CL_OK;
    kms_sig_req r;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    const kms_sig_alg *alg = NULL;
    EVP_PKEY *pkey = NULL;
    bool valid = false;
    cl_buf msg, sig;
    cl_buf_init_secret(&msg, KMS_MESSAGE_MAX);
    cl_buf_init(&sig, KMS_SIG_BLOB_MAX);
    CL_GUARD_GOTO(kms_sig_request(c, &msg, &r));
    CL_GUARD_GOTO(kms_req_blob(c, "Signature", true, KMS_SIG_BLOB_MAX, &sig));
    CL_GUARD_GOTO(kms_sig_key(c, &r, msg.len, "kms:Verify", &k, &alg, &pkey));
    CL_GUARD_GOTO(kms_asym_verify(pkey, alg, r.digest, msg.data, msg.len, sig.data, sig.len, &valid));
    /* AWS answers an invalid signature with an error, never SignatureValid false. */
    if (!valid)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidSignatureException", CL_ERR_AUTH,
                         "The signature does not verify with %s under %s for this message", alg->name, k.arn);
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "SignatureValid", json_true());
    json_object_set_new(c->resp, "SigningAlgorithm", json_string(alg->name));
out:
    EVP_PKEY_free(pkey);
    kms_key_rec_clear(&k);
    cl_buf_free(&msg);
    cl_buf_free(&sig);
    return rc;
}

cl_status kms_op_get_public_key(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    EVP_PKEY *pkey = NULL;
    cl_buf pub;
    cl_buf_init(&pub, KMS_PUBLIC_MAX);
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    CL_GUARD_GOTO(kms_key_load(c, id, KMS_KEY_ALIAS_OK, &k));
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:GetPublicKey", NULL));
    const kms_spec_info *s = kms_spec_find(k.key_spec);
    if (s == NULL || (s->kind != KMS_KIND_RSA && s->kind != KMS_KIND_EC))
        KMS_FAIL_AS_GOTO(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                         "%s is a %s key: only asymmetric keys have a public key", k.arn, k.key_spec);
    CL_GUARD_GOTO(kms_require_usage(c, &k, s->usage));
    CL_GUARD_GOTO(kms_private_key(c, &k, s, &pkey));
    CL_GUARD_GOTO(kms_asym_public_der(pkey, &pub));
    CL_GUARD_GOTO(kms_resp_blob(c, "PublicKey", pub.data, pub.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "CustomerMasterKeySpec", json_string(k.key_spec));
    json_object_set_new(c->resp, "KeySpec", json_string(k.key_spec));
    json_object_set_new(c->resp, "KeyUsage", json_string(k.key_usage));
    json_object_set_new(c->resp, "SigningAlgorithms", kms_spec_algs_json(s));
out:
    EVP_PKEY_free(pkey);
    kms_key_rec_clear(&k);
    cl_buf_free(&pub);
    return rc;
}

/* --- GenerateMac / VerifyMac ------------------------------------------------- */

/* HMAC (RFC 2104) of msg under the key's current material. */
static CL_MUST_USE cl_status kms_mac(kms_call *c, const char *action, cl_buf *msg, kms_key_rec *k, const char **alg,
                                     uint8_t mac[CL_SHA256_LEN])
{
    const char *id;
    bool dry_run;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_blob(c, "Message", true, KMS_MESSAGE_MAX, msg));
    CL_GUARD(kms_req_str(c, "MacAlgorithm", true, 1, 64, alg));
    CL_GUARD(kms_grant_tokens_check(c));
    CL_GUARD(kms_req_bool(c, "DryRun", &dry_run));
    if (!kms_str_in(kms_model_mac_algs, *alg)) return kms_req_enum_fail(c, "MacAlgorithm", *alg, kms_model_mac_algs);
    CL_GUARD(kms_key_load(c, id, KMS_KEY_ALIAS_OK, k));
    cl_status rc = CL_OK;
    cl_buf material;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, NULL));
    CL_GUARD_GOTO(kms_require_usage(c, k, "GENERATE_VERIFY_MAC"));
    const kms_spec_info *s = kms_spec_find(k->key_spec);
    if (s == NULL || !kms_spec_allows(s, *alg))
        KMS_FAIL_AS_GOTO(c, "InvalidKeyUsageException", CL_ERR_KEY,
                         "Algorithm %s is incompatible with key spec %s of %s.", *alg, k->key_spec, k->arn);
    CL_GUARD_GOTO(kms_dry_run(c, dry_run));
    CL_GUARD_GOTO(kms_key_material(c, k, k->current_version, &material));
    CL_GUARD_GOTO(cl_hmac_sha256(material.data, material.len, msg->data, msg->len, mac));
out:
    cl_buf_free(&material);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_op_generate_mac(kms_call *c)
{
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    const char *alg = NULL;
    uint8_t mac[CL_SHA256_LEN];
    cl_buf msg;
    cl_buf_init_secret(&msg, KMS_MESSAGE_MAX);
    cl_status rc = kms_mac(c, "kms:GenerateMac", &msg, &k, &alg, mac);
    if (rc == CL_OK) {
        rc = kms_resp_blob(c, "Mac", mac, sizeof(mac));
        json_object_set_new(c->resp, "MacAlgorithm", json_string(alg));
        json_object_set_new(c->resp, "KeyId", json_string(k.arn));
        kms_key_rec_clear(&k);
    }
    cl_memzero(mac, sizeof(mac));
    cl_buf_free(&msg);
    return rc;
}

cl_status kms_op_verify_mac(kms_call *c)
{
    cl_status rc = CL_OK;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    const char *alg = NULL;
    uint8_t mac[CL_SHA256_LEN];
    cl_buf msg, want;
    cl_buf_init_secret(&msg, KMS_MESSAGE_MAX);
    cl_buf_init(&want, KMS_SIG_BLOB_MAX);
    /* Mac is checked before the key is used, as the model requires it. */
    CL_GUARD_GOTO(kms_req_blob(c, "Mac", true, KMS_SIG_BLOB_MAX, &want));
    CL_GUARD_GOTO(kms_mac(c, "kms:VerifyMac", &msg, &k, &alg, mac));
    if (want.len != sizeof(mac) || !cl_ct_equal(want.data, mac, sizeof(mac)))
        KMS_FAIL_AS_GOTO(c, "KMSInvalidMacException", CL_ERR_AUTH, "The MAC does not verify with %s under %s", alg,
                         k.arn);
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "MacValid", json_true());
    json_object_set_new(c->resp, "MacAlgorithm", json_string(alg));
out:
    cl_memzero(mac, sizeof(mac));
    kms_key_rec_clear(&k);
    cl_buf_free(&msg);
    cl_buf_free(&want);
    return rc;
}
