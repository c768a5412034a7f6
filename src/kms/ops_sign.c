/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: asymmetric and HMAC keys: Sign, Verify, GetPublicKey, GenerateMac,
 * VerifyMac (ops.h). Members are those of botocore's kms/2014-11-01/service-2.json; errors
 * those of the AWS KMS API Reference for each operation. Uses request.c, key_access.c,
 * key_use.c, grants.c (grant tokens), keyspec.c and asym.c.
 */
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#include "asym.h"
#include "grants.h"
#include "key_access.h"
#include "key_use.h"
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

/* A DIGEST message must be exactly as long as the algorithm's digest ("When the value of
 * MessageType is DIGEST, the length of the Message value must match the length of hashed
 * messages for the specified signing algorithm", Sign's MessageType); AWS's message. */
static CL_MUST_USE cl_status kms_check_digest_len(kms_call *c, const kms_sig_req *r, const kms_sig_alg *alg, size_t len)
{
    if (r->digest && len != alg->md_len)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "Digest is invalid length for algorithm %s.", alg->name);
    return CL_OK;
}

/* Loads, authorizes and checks the key of a Sign or Verify request; then
 * its private key into *pkey. k is filled (and must be cleared) on success. */
static CL_MUST_USE cl_status kms_sig_key(kms_call *c, const kms_sig_req *r, size_t msg_len, const char *action,
                                         kms_key_rec *k, const kms_sig_alg **alg, EVP_PKEY **pkey)
{
    CL_GUARD(kms_key_load(c, r->key, KMS_KEY_ALIAS_OK, k));
    cl_status rc = CL_OK;
    const kms_spec_info *s = NULL;
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, NULL));
    CL_GUARD_GOTO(kms_key_require_usage(c, k, "SIGN_VERIFY"));
    CL_GUARD_GOTO(kms_key_spec(c, k, &s));
    CL_GUARD_GOTO(kms_key_check_alg(c, k, KMS_USAGE_SIGN_VERIFY, r->alg_name));
    *alg = kms_sig_alg_find(r->alg_name);
    CL_ENSURE_GOTO(*alg != NULL, CL_ERR_INTERNAL, "%s of %s has no implementation", r->alg_name, k->key_spec);
    CL_GUARD_GOTO(kms_check_digest_len(c, r, *alg, msg_len));
    CL_GUARD_GOTO(kms_dry_run(c, r->dry_run));
    CL_GUARD_GOTO(kms_key_private(c, k, s, pkey));
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
    if (!kms_key_is_asymmetric(&k))
        KMS_FAIL_AS_GOTO(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                         "%s is a %s key: only asymmetric keys have a public key", k.arn, k.key_spec);
    /* Any usage: the key's state only. */
    CL_GUARD_GOTO(kms_key_require_usage(c, &k, k.key_usage));
    const kms_spec_info *s = NULL;
    CL_GUARD_GOTO(kms_key_spec(c, &k, &s));
    kms_usage u = kms_usage_find(k.key_usage);
    /* GetPublicKeyResponse lists the algorithms of the key's usage: EncryptionAlgorithms,
     * SigningAlgorithms or KeyAgreementAlgorithms. */
    json_t *algs = kms_spec_algs_json(s, u);
    CL_ENSURE_GOTO(algs != NULL, CL_ERR_INTERNAL, "%s has key usage %s, which key spec %s cannot have", k.arn,
                   k.key_usage, k.key_spec);
    json_object_set_new(c->resp, kms_usage_algs_member(u), algs);
    CL_GUARD_GOTO(kms_key_private(c, &k, s, &pkey));
    CL_GUARD_GOTO(kms_asym_public_der(pkey, &pub));
    CL_GUARD_GOTO(kms_resp_blob(c, "PublicKey", pub.data, pub.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "CustomerMasterKeySpec", json_string(k.key_spec));
    json_object_set_new(c->resp, "KeySpec", json_string(k.key_spec));
    json_object_set_new(c->resp, "KeyUsage", json_string(k.key_usage));
out:
    EVP_PKEY_free(pkey);
    kms_key_rec_clear(&k);
    cl_buf_free(&pub);
    return rc;
}

/* --- GenerateMac / VerifyMac ------------------------------------------------- */

/* HMAC (RFC 2104) of msg under the key's current key, with the digest of its spec (HMAC_224:
 * SHA-224, ...); the MAC is as long as the digest. */
static CL_MUST_USE cl_status kms_mac(kms_call *c, const char *action, cl_buf *msg, kms_key_rec *k, const char **alg,
                                     uint8_t mac[KMS_MAC_MAX], size_t *mac_len)
{
    const char *id;
    bool dry_run;
    *mac_len = 0;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_blob(c, "Message", true, KMS_MESSAGE_MAX, msg));
    CL_GUARD(kms_req_str(c, "MacAlgorithm", true, 1, 64, alg));
    CL_GUARD(kms_grant_tokens_check(c));
    CL_GUARD(kms_req_bool(c, "DryRun", &dry_run));
    if (!kms_str_in(kms_model_mac_algs, *alg)) return kms_req_enum_fail(c, "MacAlgorithm", *alg, kms_model_mac_algs);
    CL_GUARD(kms_key_load(c, id, KMS_KEY_ALIAS_OK, k));
    cl_status rc = CL_OK;
    const kms_spec_info *s = NULL;
    cl_buf key;
    cl_buf_init_secret(&key, KMS_PRIVATE_MAX);
    CL_GUARD_GOTO(kms_key_authorize(c, k, action, NULL));
    CL_GUARD_GOTO(kms_key_require_usage(c, k, "GENERATE_VERIFY_MAC"));
    CL_GUARD_GOTO(kms_key_spec(c, k, &s));
    CL_GUARD_GOTO(kms_key_check_alg(c, k, KMS_USAGE_GENERATE_VERIFY_MAC, *alg));
    CL_GUARD_GOTO(kms_dry_run(c, dry_run));
    CL_GUARD_GOTO(kms_key_mac_secret(c, k, s, &key));
    CL_GUARD_GOTO(kms_hmac(s->mac_md, key.data, key.len, msg->data, msg->len, mac, mac_len));
    CL_ENSURE_GOTO(*mac_len == s->mac_len, CL_ERR_INTERNAL, "%s MAC of %zu bytes", *alg, *mac_len);
out:
    cl_buf_free(&key);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_op_generate_mac(kms_call *c)
{
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    const char *alg = NULL;
    uint8_t mac[KMS_MAC_MAX];
    size_t mac_len = 0;
    cl_buf msg;
    cl_buf_init_secret(&msg, KMS_MESSAGE_MAX);
    cl_status rc = kms_mac(c, "kms:GenerateMac", &msg, &k, &alg, mac, &mac_len);
    if (rc == CL_OK) {
        rc = kms_resp_blob(c, "Mac", mac, mac_len);
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
    uint8_t mac[KMS_MAC_MAX];
    size_t mac_len = 0;
    cl_buf msg, want;
    cl_buf_init_secret(&msg, KMS_MESSAGE_MAX);
    cl_buf_init(&want, KMS_SIG_BLOB_MAX);
    /* Mac is checked before the key is used, as the model requires it. */
    CL_GUARD_GOTO(kms_req_blob(c, "Mac", true, KMS_SIG_BLOB_MAX, &want));
    CL_GUARD_GOTO(kms_mac(c, "kms:VerifyMac", &msg, &k, &alg, mac, &mac_len));
    if (want.len != mac_len || !cl_ct_equal(want.data, mac, mac_len))
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
