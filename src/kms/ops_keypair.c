/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: data key pairs: GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext
 * (ops.h), as the AWS KMS API Reference gives them: a fresh RSA or ECC key pair, its public
 * key as a DER SubjectPublicKeyInfo (RFC 5280), its private key as a DER PKCS #8
 * PrivateKeyInfo (RFC 5958) encrypted under a symmetric encryption KMS key with the request's
 * encryption context (a ciphertext blob of keys.h, which Decrypt opens like any other) and,
 * from GenerateDataKeyPair, in plaintext too, or with a Recipient only as
 * CiphertextForRecipient. Uses request.c, key_access.c, key_use.c, keys.c, grants.c,
 * attested_release.c and asym.c.
 */
#include <string.h>

#include "cloister/crypto.h"

#include "asym.h"
#include "attested_release.h"
#include "grants.h"
#include "key_access.h"
#include "key_use.h"
#include "keys.h"
#include "ops.h"
#include "request.h"

/* DataKeyPairSpec enum of the service model (ECC_NIST_EDWARDS25519 since botocore 1.38). */
static const char *const kms_model_pair_specs[] = {
    "RSA_2048",      "RSA_3072",        "RSA_4096", "ECC_NIST_P256",         "ECC_NIST_P384",
    "ECC_NIST_P521", "ECC_SECG_P256K1", "SM2",      "ECC_NIST_EDWARDS25519", NULL};

/* The KeyPairSpec member: a value of the enum (ValidationException otherwise) that this build
 * generates (UnsupportedOperationException, in the spec table's words, otherwise). Every
 * DataKeyPairSpec value is a KeySpec value too, with the same key pair. */
static CL_MUST_USE cl_status kms_pair_spec(kms_call *c, const kms_spec_info **s)
{
    const char *name;
    CL_GUARD(kms_req_str(c, "KeyPairSpec", true, 1, 64, &name));
    if (!kms_str_in(kms_model_pair_specs, name)) return kms_req_enum_fail(c, "KeyPairSpec", name, kms_model_pair_specs);
    const kms_spec_info *row = kms_spec_row(name);
    if (row == NULL || !row->built)
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED, "KeyPairSpec %s is not supported: %s", name,
                    row != NULL ? row->why_not : "not a key spec of this server");
    CL_ENSURE(row->kind == KMS_KIND_RSA || row->kind == KMS_KIND_EC, CL_ERR_INTERNAL, "%s is not a key pair", name);
    *s = row;
    return CL_OK;
}

/* The private key under the KMS key's current version: what Encrypt would make of it with
 * this context, so Decrypt (with the same context) returns the PKCS #8 bytes. */
static CL_MUST_USE cl_status kms_pair_seal(kms_call *c, const kms_key_rec *k, const cl_buf *pkcs8, cl_buf *blob)
{
    cl_buf material;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    cl_status rc = kms_key_material(c, k, k->current_version, &material);
    if (rc == CL_OK)
        rc = kms_blob_seal(material.data, k->key_id, k->region, k->current_version, &c->audit_ctx, pkcs8->data,
                           pkcs8->len, blob);
    cl_buf_free(&material);
    return rc;
}

static CL_MUST_USE cl_status kms_generate_data_key_pair(kms_call *c, bool with_plaintext)
{
    cl_status rc = CL_OK;
    const char *id;
    bool dry_run = false;
    const kms_spec_info *s = NULL;
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    EVP_PKEY *pair = NULL;
    cl_buf pkcs8, pub, blob;
    cl_buf_init_secret(&pkcs8, KMS_PRIVATE_MAX);
    cl_buf_init(&pub, KMS_PUBLIC_MAX);
    cl_buf_init(&blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_pair_spec(c, &s));
    CL_ENSURE_GOTO(s != NULL, CL_ERR_INTERNAL, "no KeyPairSpec was chosen");
    CL_GUARD_GOTO(kms_req_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    CL_GUARD_GOTO(kms_req_bool(c, "DryRun", &dry_run));
    /* GenerateDataKeyPairWithoutPlaintext has no Recipient member (service model). */
    if (!with_plaintext && json_object_get(c->req, "Recipient") != NULL)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                         "GenerateDataKeyPairWithoutPlaintext has no Recipient parameter; use GenerateDataKeyPair");
    if (with_plaintext) CL_GUARD_GOTO(kms_recipient_read(c, &rcpt));
    CL_GUARD_GOTO(kms_key_load(c, id, KMS_KEY_ALIAS_OK, &k));
    CL_GUARD_GOTO(kms_key_authorize(
        c, &k, with_plaintext ? "kms:GenerateDataKeyPair" : "kms:GenerateDataKeyPairWithoutPlaintext", &c->audit_ctx));
    /* "To generate a data key pair, you must specify a symmetric encryption KMS key to encrypt
     * the private key in a data key pair. You cannot use an asymmetric KMS key". */
    CL_GUARD_GOTO(kms_key_require_enabled(c, &k));
    CL_GUARD_GOTO(kms_dry_run(c, dry_run));
    CL_GUARD_GOTO(kms_asym_keygen(s, &pair));
    CL_GUARD_GOTO(kms_asym_pkcs8(pair, &pkcs8));
    CL_GUARD_GOTO(kms_asym_public_der(pair, &pub));
    CL_GUARD_GOTO(kms_pair_seal(c, &k, &pkcs8, &blob));
    CL_GUARD_GOTO(kms_resp_blob(c, "PrivateKeyCiphertextBlob", blob.data, blob.len));
    if (with_plaintext) CL_GUARD_GOTO(kms_answer_secret(c, &rcpt, "PrivateKeyPlaintext", pkcs8.data, pkcs8.len));
    CL_GUARD_GOTO(kms_resp_blob(c, "PublicKey", pub.data, pub.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "KeyPairSpec", json_string(s->name));
out:
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    EVP_PKEY_free(pair);
    kms_key_rec_clear(&k);
    cl_buf_free(&pkcs8);
    cl_buf_free(&pub);
    cl_buf_free(&blob);
    return rc;
}

cl_status kms_op_generate_data_key_pair(kms_call *c) { return kms_generate_data_key_pair(c, true); }
cl_status kms_op_generate_data_key_pair_wo(kms_call *c) { return kms_generate_data_key_pair(c, false); }
