/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: key agreement: DeriveSharedSecret (ops.h), as the AWS KMS API Reference gives
 * it: ECDH of a KEY_AGREEMENT key's private key and a peer's public key (a DER
 * SubjectPublicKeyInfo on the same curve), answering the raw shared secret, or with a
 * Recipient only CiphertextForRecipient. Members are those of the service model
 * (DeriveSharedSecretRequest, botocore's kms/2014-11-01/service-2.json since 1.34.116). Uses
 * request.c, key_access.c, key_use.c, grants.c, attested_release.c and asym.c.
 */
#include <string.h>

#include "asym.h"
#include "attested_release.h"
#include "grants.h"
#include "key_access.h"
#include "key_use.h"
#include "ops.h"
#include "request.h"

/* KeyAgreementAlgorithmSpec enum of the service model. */
static const char *const kms_model_agreement_algs[] = {"ECDH", NULL};

cl_status kms_op_derive_shared_secret(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id, *alg;
    bool dry_run = false;
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    const kms_spec_info *s = NULL;
    EVP_PKEY *pkey = NULL;
    cl_buf peer, secret;
    cl_buf_init(&peer, KMS_PUBLIC_MAX);
    cl_buf_init_secret(&secret, KMS_SHARED_SECRET_MAX + 1);
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_req_str(c, "KeyAgreementAlgorithm", true, 1, 64, &alg));
    CL_GUARD_GOTO(kms_req_blob(c, "PublicKey", true, KMS_PUBLIC_MAX, &peer));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    CL_GUARD_GOTO(kms_req_bool(c, "DryRun", &dry_run));
    if (!kms_str_in(kms_model_agreement_algs, alg))
        CL_GUARD_GOTO(kms_req_enum_fail(c, "KeyAgreementAlgorithm", alg, kms_model_agreement_algs));
    /* Before the key policy, so that its kms:RecipientAttestation:* condition keys apply. */
    CL_GUARD_GOTO(kms_recipient_read(c, &rcpt));
    CL_GUARD_GOTO(kms_key_load(c, id, KMS_KEY_ALIAS_OK, &k));
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:DeriveSharedSecret", NULL));
    CL_GUARD_GOTO(kms_key_require_usage(c, &k, "KEY_AGREEMENT"));
    CL_GUARD_GOTO(kms_key_spec(c, &k, &s));
    CL_GUARD_GOTO(kms_key_check_alg(c, &k, KMS_USAGE_KEY_AGREEMENT, alg));
    CL_GUARD_GOTO(kms_dry_run(c, dry_run));
    CL_GUARD_GOTO(kms_key_private(c, &k, s, &pkey));
    rc = kms_asym_derive(pkey, peer.data, peer.len, &secret);
    /* "The public key must be a DER-encoded X.509 public key, also known as SubjectPublicKeyInfo
     * (SPKI)"; "both key pairs must be on the same elliptic curve" (DeriveSharedSecret). AWS
     * answers a bad one ValidationException. */
    if (rc == CL_ERR_FORMAT || rc == CL_ERR_KEY)
        KMS_FAIL_AS_GOTO(c, "ValidationException", rc, "PublicKey: %s; give the DER SubjectPublicKeyInfo of a %s key",
                         cl_error_message(), s->name);
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(kms_answer_secret(c, &rcpt, "SharedSecret", secret.data, secret.len));
    /* KeyId as AWS answers it: the key id (localstack's tests recorded against AWS,
     * test_derive_shared_secret), not the ARN the other operations answer. */
    json_object_set_new(c->resp, "KeyId", json_string(k.key_id));
    json_object_set_new(c->resp, "KeyAgreementAlgorithm", json_string(alg));
    /* Every key here is made by this server (CreateKey's Origin AWS_KMS). */
    json_object_set_new(c->resp, "KeyOrigin", json_string("AWS_KMS"));
out:
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    EVP_PKEY_free(pkey);
    kms_key_rec_clear(&k);
    cl_buf_free(&peer);
    cl_buf_free(&secret);
    return rc;
}
