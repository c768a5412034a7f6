/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: attested key release. See attested_release.h. */
#include "attested_release.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/recipient.h"

#define KMS_ATTESTATION_DOC_MAX 262144 /* AttestationDocumentType max in the service model */

void kms_recipient_init(kms_recipient *r)
{
    memset(r, 0, sizeof(*r));
    cl_attest_doc_init(&r->doc);
}

void kms_recipient_free(kms_recipient *r)
{
    cl_attest_doc_free(&r->doc);
    r->present = false;
}

static CL_MUST_USE cl_status kms_recipient_invalid(kms_call *c, const char *why)
{
    KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "Invalid attestation document in Recipient: %s", why);
}

cl_status kms_recipient_read(kms_call *c, kms_recipient *r)
{
    json_t *rv = json_object_get(c->req, "Recipient");
    if (rv == NULL || json_is_null(rv)) return CL_OK;
    if (!json_is_object(rv)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "Recipient must be a structure");
    const char *k;
    json_t *v;
    json_object_foreach(rv, k, v)
    {
        if (strcmp(k, "AttestationDocument") != 0 && strcmp(k, "KeyEncryptionAlgorithm") != 0)
            KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "Recipient has an unknown member %s", k);
    }
    json_t *alg = json_object_get(rv, "KeyEncryptionAlgorithm");
    if (alg != NULL && !json_is_null(alg)) {
        if (!json_is_string(alg))
            KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT,
                        "Recipient.KeyEncryptionAlgorithm must be a string");
        if (strcmp(json_string_value(alg), CL_RECIPIENT_KEY_ENCRYPTION_ALGORITHM) != 0)
            KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                        "1 validation error detected: Value '%.64s' at 'recipient.keyEncryptionAlgorithm' failed to "
                        "satisfy constraint: Member must satisfy enum value set: [RSAES_OAEP_SHA_256]",
                        json_string_value(alg));
    }
    json_t *docv = json_object_get(rv, "AttestationDocument");
    if (docv == NULL || json_is_null(docv))
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value null at 'recipient.attestationDocument' failed to satisfy "
                    "constraint: Member must not be null");
    if (!json_is_string(docv))
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "Recipient.AttestationDocument must be base64");
    const kms_config *cfg = c->kms->cfg;
    if (cfg->attest_roots == NULL || cfg->attest_roots->count == 0)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "Invalid attestation document in Recipient: this cloister-kms trusts no attestation root "
                    "(start it with --attestation-root PEM, or attestation_roots in its config file)");
    cl_status rc = CL_OK;
    cl_buf raw;
    cl_buf_init(&raw, KMS_ATTESTATION_DOC_MAX);
    size_t b64_len = json_string_length(docv);
    if (b64_len == 0 || b64_len > KMS_ATTESTATION_DOC_MAX / 3 * 4 + 4 ||
        cl_base64_decode(json_string_value(docv), b64_len, false, &raw) != CL_OK)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                         "1 validation error detected: Value at 'recipient.attestationDocument' failed to satisfy "
                         "constraint: Member must be base64 of 1 to %d bytes",
                         KMS_ATTESTATION_DOC_MAX);
    cl_attest_policy pol = {.verify_at = c->now, .max_age_ms = cfg->attest_max_age_ms};
    rc = cl_attest_verify(raw.data, raw.len, cfg->attest_roots, &pol, &r->doc);
    if (rc != CL_OK) {
        char why[sizeof(((cl_error *)0)->msg)];
        (void)snprintf(why, sizeof(why), "%s", cl_error_message());
        rc = kms_recipient_invalid(c, why);
        goto out;
    }
    if (!r->doc.has_public_key || r->doc.public_key.len == 0) {
        rc = kms_recipient_invalid(c, "it carries no public_key to encrypt the response to");
        goto out;
    }
    /* The key must be one RSAES_OAEP_SHA_256 can use: checked now, before any key is touched. */
    rc = cl_recipient_check_public_key(r->doc.public_key.data, r->doc.public_key.len);
    if (rc != CL_OK) {
        char why[sizeof(((cl_error *)0)->msg)];
        (void)snprintf(why, sizeof(why), "its public_key is unusable: %s", cl_error_message());
        rc = kms_recipient_invalid(c, why);
        goto out;
    }
    for (unsigned i = 0; i < CL_ATTEST_MAX_PCRS; i++) {
        if ((r->doc.pcr_mask & (1u << i)) == 0) continue;
        (void)cl_hex_encode(r->doc.pcrs[i], CL_ATTEST_PCR_LEN, r->pcr_hex[i], sizeof(r->pcr_hex[i]));
    }
    r->present = true;
    c->recipient = r;
    (void)snprintf(c->audit_module_id, sizeof(c->audit_module_id), "%s", r->doc.module_id);
    (void)snprintf(c->audit_pcr0, sizeof(c->audit_pcr0), "%s", r->pcr_hex[0]);
    CL_LOG_INFO("request %s: Recipient attested by %s, PCR0 %.16s...", c->request_id, r->doc.module_id, r->pcr_hex[0]);
out:
    cl_buf_free(&raw);
    return rc;
}

bool kms_recipient_lookup(void *arg, const char *key, kms_cond_values *out)
{
    const kms_recipient *r = arg;
    static const char prefix[] = "kms:RecipientAttestation:";
    if (strncasecmp(key, prefix, sizeof(prefix) - 1) != 0) return false;
    if (r == NULL || !r->present) return true; /* known key, absent from this request */
    const char *name = key + sizeof(prefix) - 1;
    unsigned idx = 0;
    if (!kms_policy_attestation_key(name, &idx)) return false;
    if ((r->doc.pcr_mask & (1u << idx)) == 0) return true;
    out->present = true;
    out->v[out->n++] = r->pcr_hex[idx];
    return true;
}

cl_status kms_recipient_seal(kms_call *c, const kms_recipient *r, const uint8_t *pt, size_t n, cl_buf *out)
{
    cl_status rc = cl_recipient_seal(r->doc.public_key.data, r->doc.public_key.len, pt, n, out);
    if (rc != CL_OK) c->exception = "KMSInternalException";
    return rc;
}
