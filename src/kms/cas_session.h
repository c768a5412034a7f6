/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate and configuration service (docs/cas.md): sessions, their JSON schema and its
 * validation. A session names the services allowed to run (each with the measurements that may
 * run as it), the secrets (an X.509 CA, leaf certificates, random keys, explicit values), which
 * of them are exported publicly, and the principals who may read or update it. Parsing is pure
 * (no store, no clock): it is what tests/fuzz/fuzz_cas_session.c drives.
 */
#ifndef CLOISTER_KMS_CAS_SESSION_H
#define CLOISTER_KMS_CAS_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/attestation.h"
#include "cloister/crypto.h"
#include "cloister/csr.h"
#include "cloister/error.h"

#define KMS_CAS_DOC_MAX ((size_t)64 << 10)
#define KMS_CAS_NAME_MAX 128     /* a session's name */
#define KMS_CAS_ITEM_NAME_MAX 64 /* a service's or a secret's name */
#define KMS_CAS_MAX_SERVICES 16
#define KMS_CAS_MAX_SECRETS 64
#define KMS_CAS_MAX_MEASUREMENTS 64 /* per service */
#define KMS_CAS_MAX_SERVICE_SECRETS 32
#define KMS_CAS_MAX_PRINCIPALS 32 /* per list */
#define KMS_CAS_MAX_DNS 16
#define KMS_CAS_DNS_MAX 253 /* RFC 1035 section 2.3.4 */
#define KMS_CAS_VALUE_MAX ((size_t)16 << 10)
#define KMS_CAS_RANDOM_MAX 1024
#define KMS_CAS_HASH_HEX 64 /* SHA-256 in hex */

typedef enum kms_cas_kind {
    KMS_CAS_X509_CA = 1, /* "x509-ca": a CA the service makes and keeps (its key never leaves) */
    KMS_CAS_X509,        /* "x509": a leaf certificate issued to an attested service's CSR */
    KMS_CAS_RANDOM,      /* "random": bytes the service draws once */
    KMS_CAS_VALUE,       /* "value": text the session gives */
} kms_cas_kind;

typedef struct kms_cas_secret {
    const char *name;
    kms_cas_kind kind;
    bool export_public;
    /* x509-ca and x509 */
    const char *common_name;
    int64_t validity; /* seconds: valid_days (x509-ca) or valid_hours (x509) */
    /* x509 */
    const char *issuer; /* an x509-ca secret */
    const char *dns[KMS_CAS_MAX_DNS];
    size_t n_dns;
    cl_key_type key_type;
    /* random */
    size_t size;
    /* value */
    const char *value;
    size_t value_len;
    /* SHA-256 of the secret's definition (its JSON, keys sorted): a generated secret is kept
     * across session updates while this stays the same. */
    char fingerprint[KMS_CAS_HASH_HEX + 1];
} kms_cas_secret;

typedef struct kms_cas_service {
    const char *name;
    uint8_t image_sha384[KMS_CAS_MAX_MEASUREMENTS][CL_ATTEST_PCR_LEN]; /* PCR0 values */
    size_t n_images;
    bool allow_debug;
    const kms_cas_secret *certificate; /* an x509 secret, or NULL */
    const kms_cas_secret *secrets[KMS_CAS_MAX_SERVICE_SECRETS];
    size_t n_secrets;
} kms_cas_service;

typedef struct kms_cas_session {
    json_t *root; /* owns every string below */
    const char *name;
    bool has_predecessor;
    char predecessor[KMS_CAS_HASH_HEX + 1];
    const char *readers[KMS_CAS_MAX_PRINCIPALS];
    size_t n_readers;
    const char *updaters[KMS_CAS_MAX_PRINCIPALS];
    size_t n_updaters;
    kms_cas_service services[KMS_CAS_MAX_SERVICES];
    size_t n_services;
    kms_cas_secret secrets[KMS_CAS_MAX_SECRETS];
    size_t n_secrets;
} kms_cas_session;

/* A session name (the URL's and the document's): 1..128 of [A-Za-z0-9._-], not starting with '.'. */
bool kms_cas_name_ok(const char *s);
/* A service or secret name: 1..64 of [A-Za-z0-9_-]. */
bool kms_cas_item_name_ok(const char *s);

/*
 * Parses and checks a session document (docs/cas.md, "Sessions"). `out` is allocated (free with
 * kms_cas_session_free). Anything the schema does not allow is CL_ERR_FORMAT (or CL_ERR_LIMIT)
 * with a message "session: <where>: <what>", naming the member; nothing is partly accepted.
 */
CL_MUST_USE cl_status kms_cas_session_parse(const char *text, size_t len, kms_cas_session **out);
void kms_cas_session_free(kms_cas_session *s);

const kms_cas_service *kms_cas_session_service(const kms_cas_session *s, const char *name);
const kms_cas_secret *kms_cas_session_secret(const kms_cas_session *s, const char *name);
/* Whether arn may read (readers and updaters) or update (updaters) the session. */
bool kms_cas_may_read(const kms_cas_session *s, const char *arn);
bool kms_cas_may_update(const kms_cas_session *s, const char *arn);

const char *kms_cas_kind_name(kms_cas_kind k);

#endif
