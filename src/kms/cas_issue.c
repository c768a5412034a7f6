/* SPDX-License-Identifier: Apache-2.0 */
/* Attested issuance: see cas_issue.h and docs/cas.md, "Issuance". */
#include "cas_issue.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/csr.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/recipient.h"

#include "cas_store.h"
#include "cas_x509.h"

/* A leaf starts a minute early: a guest whose clock is a little behind still accepts it. */
#define KMS_CAS_LEAF_BACKDATE 60
#define KMS_CAS_SECRETS_MAX ((size_t)256 << 10)

/* Records the refusal and raises its reason (the caller's message) as the failure. */
#define KMS_CAS_REFUSE(res, name, status, ...) \
    do { \
        (res)->code = (name); \
        (res)->http = (status); \
        CL_FAIL_GOTO(CL_ERR_DENIED, __VA_ARGS__); \
    } while (0)

/* Whether the document's root (cabundle[0]) is one of the configured ones: told apart from the
 * other verification failures, so that a document from another platform gets its own reason. */
static bool kms_cas_root_pinned(const cl_attest_roots *roots, const cl_attest_doc *doc)
{
    if (roots == NULL || doc->cabundle_len == 0) return false;
    const unsigned char *q = doc->cabundle[0].data;
    X509 *x = d2i_X509(NULL, &q, (long)doc->cabundle[0].len);
    bool pinned = false;
    for (size_t i = 0; x != NULL && i < roots->count && !pinned; i++) pinned = X509_cmp(roots->certs[i], x) == 0;
    X509_free(x);
    return pinned;
}

static bool kms_cas_all_zero(const uint8_t pcr[CL_ATTEST_PCR_LEN])
{
    uint8_t acc = 0;
    for (size_t i = 0; i < CL_ATTEST_PCR_LEN; i++) acc |= pcr[i];
    return acc == 0;
}

/* {"secrets": {"NAME": "<base64>", ...}} for the service, sealed to the document's public_key. */
static CL_MUST_USE cl_status kms_cas_seal_secrets(const kms_cas_record *rec, const kms_cas_service *svc,
                                                  const cl_attest_doc *doc, cl_buf *cms)
{
    cl_status rc = CL_OK;
    json_t *all = json_object(), *j = NULL;
    char *text = NULL;
    cl_buf raw, b64;
    cl_buf_init_secret(&raw, KMS_CAS_VALUE_MAX);
    cl_buf_init_secret(&b64, 2 * KMS_CAS_VALUE_MAX + 4);
    CL_ENSURE_GOTO(all != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < svc->n_secrets; i++) {
        cl_buf_reset(&raw);
        cl_buf_reset(&b64);
        CL_GUARD_GOTO(kms_cas_record_secret(rec, svc->secrets[i], &raw));
        CL_GUARD_GOTO(cl_base64_encode(raw.data, raw.len, false, &b64));
        CL_ENSURE_GOTO(json_object_set_new(all, svc->secrets[i]->name, json_string(cl_buf_cstr(&b64))) == 0,
                       CL_ERR_NOMEM, "out of memory");
    }
    j = json_pack("{s:O}", "secrets", all);
    text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    CL_ENSURE_GOTO(text != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n = strlen(text);
    CL_ENSURE_GOTO(n <= KMS_CAS_SECRETS_MAX, CL_ERR_LIMIT, "the service's secrets come to %zu bytes, over %zu", n,
                   KMS_CAS_SECRETS_MAX);
    CL_GUARD_GOTO(cl_recipient_seal(doc->public_key.data, doc->public_key.len, (const uint8_t *)text, n, cms));
out:
    if (text != NULL) {
        cl_memzero(text, strlen(text));
        cl_free_wiped(text);
    }
    json_decref(j);
    json_decref(all);
    cl_buf_free(&raw);
    cl_buf_free(&b64);
    return rc;
}

cl_status kms_cas_issue(kms_ctx *kms, const char *session, const char *service, const uint8_t *csr_bytes,
                        size_t csr_len, int64_t now_ms, kms_cas_issue_result *res)
{
    cl_status rc = CL_OK;
    cl_csr csr;
    cl_csr_init(&csr);
    cl_attest_doc doc;
    cl_attest_doc_init(&doc);
    kms_cas_record rec;
    kms_cas_record_init(&rec);
    cl_buf ca_key, ca_cert, leaf, chain, cms, b64;
    cl_buf_init_secret(&ca_key, (size_t)64 << 10);
    cl_buf_init(&ca_cert, (size_t)64 << 10);
    cl_buf_init(&leaf, (size_t)64 << 10);
    cl_buf_init(&chain, (size_t)128 << 10);
    cl_buf_init(&cms, CL_RECIPIENT_MAX_CMS + KMS_CAS_SECRETS_MAX);
    cl_buf_init(&b64, 2 * (CL_RECIPIENT_MAX_CMS + KMS_CAS_SECRETS_MAX));
    const kms_config *cfg = kms->cfg;
    const int64_t now = now_ms / 1000;
    char id[KMS_CAS_NONCE_ID_LEN + 1];
    int64_t nonce_expires = 0;
    memset(res, 0, sizeof(*res));
    res->http = 500;

    rc = cl_csr_parse(csr_bytes, csr_len, &csr);
    if (rc != CL_OK) KMS_CAS_REFUSE(res, "InvalidCsr", 400, "%s", cl_error_message());
    if (!csr.has_evidence)
        KMS_CAS_REFUSE(res, "NoEvidence", 400,
                       "the certificate request carries no attestation document: put one in its attestation "
                       "attribute (%s, draft-ietf-lamps-csr-attestation) as a statement of type %s",
                       CL_CSR_ATTESTATION_ATTR_OID, CL_CSR_NITRO_DOC_OID);
    rc = kms_cas_record_load(kms->store, &kms->root, session, &rec);
    if (rc == CL_ERR_NOT_FOUND) KMS_CAS_REFUSE(res, "SessionNotFound", 404, "there is no session %s", session);
    CL_GUARD_GOTO(rc);
    const kms_cas_service *svc = kms_cas_session_service(rec.session, service);
    if (svc == NULL) KMS_CAS_REFUSE(res, "ServiceNotFound", 404, "session %s has no service %s", session, service);

    /* The document: its root, then everything cl_attest_verify checks (formats/attestation.md). */
    if (cfg->attest_roots == NULL || cfg->attest_roots->count == 0)
        KMS_CAS_REFUSE(res, "UntrustedRoot", 403,
                       "this cloister-kms trusts no attestation root (start it with --attestation-root PEM, or "
                       "attestation_roots in its config file), so it issues to no enclave");
    rc = cl_attest_doc_parse(csr.evidence.data, csr.evidence.len, &doc);
    if (rc != CL_OK) KMS_CAS_REFUSE(res, "InvalidAttestation", 403, "the attestation document: %s", cl_error_message());
    if (!kms_cas_root_pinned(cfg->attest_roots, &doc))
        KMS_CAS_REFUSE(res, "UntrustedRoot", 403,
                       "the attestation document chains to a root this service does not trust (wrong root: not one of "
                       "its attestation roots)");
    cl_attest_doc_free(&doc);
    cl_attest_doc_init(&doc);
    cl_attest_policy pol = {.verify_at = now, .max_age_ms = cfg->attest_max_age_ms};
    rc = cl_attest_verify(csr.evidence.data, csr.evidence.len, cfg->attest_roots, &pol, &doc);
    if (rc == CL_ERR_EXPIRED)
        KMS_CAS_REFUSE(res, "StaleDocument", 403, "the attestation document: %s", cl_error_message());
    if (rc != CL_OK) KMS_CAS_REFUSE(res, "InvalidAttestation", 403, "the attestation document: %s", cl_error_message());
    (void)snprintf(res->module_id, sizeof(res->module_id), "%s", doc.module_id);
    if (doc.pcr_mask & 1u) (void)cl_hex_encode(doc.pcrs[0], CL_ATTEST_PCR_LEN, res->pcr0, sizeof(res->pcr0));

    /* The request's key is the one the enclave attested: user_data = SHA-256(SPKI). Otherwise a
     * genuine document could vouch for a key the host made. */
    uint8_t want[CL_SHA256_LEN];
    CL_GUARD_GOTO(cl_sha256(csr.spki.data, csr.spki.len, want));
    if (!doc.has_user_data || doc.user_data.len != CL_SHA256_LEN ||
        !cl_ct_equal(doc.user_data.data, want, CL_SHA256_LEN))
        KMS_CAS_REFUSE(res, "KeyNotBound", 403,
                       "the attestation document does not bind the request's key: its user_data must be the SHA-256 "
                       "of the request's DER SubjectPublicKeyInfo (%zu bytes of user_data given)",
                       doc.has_user_data ? doc.user_data.len : 0);

    /* Freshness: a nonce this service handed out (GET /v1/nonce), not expired. Its single use is
     * taken last, once everything else passed. */
    rc = kms_cas_nonce_check(&kms->root, doc.has_nonce ? doc.nonce.data : NULL, doc.has_nonce ? doc.nonce.len : 0,
                             now_ms, id, &nonce_expires);
    if (rc == CL_ERR_EXPIRED) KMS_CAS_REFUSE(res, "NonceExpired", 403, "%s", cl_error_message());
    if (rc != CL_OK) KMS_CAS_REFUSE(res, "NonceInvalid", 403, "%s", cl_error_message());

    bool debug = (doc.pcr_mask & 1u) != 0 && kms_cas_all_zero(doc.pcrs[0]);
    if (debug && !svc->allow_debug)
        KMS_CAS_REFUSE(res, "DebugModeRefused", 403,
                       "the attestation document is from a debug-mode enclave (PCR0 is all zero: its memory and "
                       "console are open to the host); service %s of session %s does not allow debug mode",
                       service, session);
    if (!debug) {
        bool listed = false;
        for (size_t i = 0; (doc.pcr_mask & 1u) != 0 && i < svc->n_images && !listed; i++)
            listed = memcmp(svc->image_sha384[i], doc.pcrs[0], CL_ATTEST_PCR_LEN) == 0;
        if (!listed)
            KMS_CAS_REFUSE(res, "MeasurementNotInSession", 403,
                           "measurement not in the session: PCR0 %s is not one of the %zu image_sha384 of service %s "
                           "in session %s",
                           res->pcr0[0] ? res->pcr0 : "(absent)", svc->n_images, service, session);
    }
    const kms_cas_secret *cert = svc->certificate;
    if (cert != NULL && csr.key_type != cert->key_type)
        KMS_CAS_REFUSE(res, "KeyTypeMismatch", 403,
                       "the request's key is %s; certificate %s of session %s is for %s keys", csr.key_desc, cert->name,
                       session, cl_key_type_name(cert->key_type));
    if (svc->n_secrets > 0) {
        if (!doc.has_public_key || doc.public_key.len == 0)
            KMS_CAS_REFUSE(res, "NoRecipientKey", 403,
                           "service %s has secrets, and the attestation document carries no public_key to encrypt "
                           "them to",
                           service);
        rc = cl_recipient_check_public_key(doc.public_key.data, doc.public_key.len);
        if (rc != CL_OK)
            KMS_CAS_REFUSE(res, "NoRecipientKey", 403, "the attestation document's public_key: %s", cl_error_message());
    }
    rc = kms->store->ops->cas_use_nonce(kms->store, id, nonce_expires, now);
    if (rc == CL_ERR_EXISTS)
        KMS_CAS_REFUSE(
            res, "NonceReused", 403,
            "the document's nonce was used already (a replayed request): get a fresh nonce and attest again");
    CL_GUARD_GOTO(rc);

    json_t *a = json_pack("{s:s, s:s}", "session", session, "service", service);
    CL_ENSURE_GOTO(a != NULL, CL_ERR_NOMEM, "out of memory");
    res->answer = a;
    if (cert != NULL) {
        char serial[KMS_CAS_SERIAL_HEX + 1];
        int64_t not_after = 0, not_before = now - KMS_CAS_LEAF_BACKDATE;
        kms_cas_leaf_params lp = {.common_name = cert->common_name,
                                  .dns = cert->dns,
                                  .n_dns = cert->n_dns,
                                  .not_before = not_before,
                                  .not_after = now + cert->validity};
        CL_GUARD_GOTO(kms_cas_record_ca(&rec, cert->issuer, &ca_key, &ca_cert));
        CL_GUARD_GOTO(kms_cas_leaf_sign(&ca_key, &ca_cert, csr.pkey, &lp, &leaf, serial, &not_after));
        CL_GUARD_GOTO(cl_buf_append(&chain, leaf.data, leaf.len));
        CL_GUARD_GOTO(cl_buf_append(&chain, ca_cert.data, ca_cert.len));
        CL_ENSURE_GOTO(json_object_set_new(a, "certificate", json_string(cl_buf_cstr(&leaf))) == 0 &&
                           json_object_set_new(a, "certificate_chain", json_string(cl_buf_cstr(&chain))) == 0 &&
                           json_object_set_new(a, "ca_certificate", json_string(cl_buf_cstr(&ca_cert))) == 0 &&
                           json_object_set_new(a, "serial", json_string(serial)) == 0 &&
                           json_object_set_new(a, "not_before", json_integer(not_before)) == 0 &&
                           json_object_set_new(a, "not_after", json_integer(not_after)) == 0,
                       CL_ERR_NOMEM, "out of memory");
        CL_LOG_INFO("cas: issued certificate %s (CN=%s) of session %s to service %s, PCR0 %.16s..., until %lld", serial,
                    cert->common_name, session, service, res->pcr0, (long long)not_after);
    }
    if (svc->n_secrets > 0) {
        CL_GUARD_GOTO(kms_cas_seal_secrets(&rec, svc, &doc, &cms));
        CL_GUARD_GOTO(cl_base64_encode(cms.data, cms.len, false, &b64));
        CL_ENSURE_GOTO(json_object_set_new(a, "secrets", json_string(cl_buf_cstr(&b64))) == 0, CL_ERR_NOMEM,
                       "out of memory");
    }
    res->http = 200;
out:
    if (rc != CL_OK) {
        json_decref(res->answer);
        res->answer = NULL;
        if (res->code == NULL) res->code = "InternalError";
    }
    cl_csr_free(&csr);
    cl_attest_doc_free(&doc);
    kms_cas_record_free(&rec);
    cl_buf_free(&ca_key);
    cl_buf_free(&ca_cert);
    cl_buf_free(&leaf);
    cl_buf_free(&chain);
    cl_buf_free(&cms);
    cl_buf_free(&b64);
    return rc;
}
