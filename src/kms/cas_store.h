/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate service's state in the key store (docs/cas.md, "Storage"):
 *  - a session's record: the document exactly as its admin sent it, its SHA-256 (the hash an
 *    update names as its predecessor), and the secrets the service generated for it (each CA's
 *    private key and certificate, random keys), all in one AES-256-GCM record under a key derived
 *    from the root key (HKDF-SHA256, RFC 5869), the session's name bound as associated data so
 *    that rows cannot be swapped; the store sees ciphertext and a version number;
 *  - attestation nonces: made without storage (a MAC under another key derived from the root key,
 *    so every instance sharing the root key checks them), and marked used in the store until they
 *    expire, so that each is accepted once.
 */
#ifndef CLOISTER_KMS_CAS_STORE_H
#define CLOISTER_KMS_CAS_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#include "cas_session.h"
#include "keys.h"
#include "store.h"

/* A loaded session: its document (parsed), hash and generated secrets. */
typedef struct kms_cas_record {
    int64_t version; /* the store's, for the next write */
    cl_buf doc;      /* the document as sent (secret memory: a value secret is in it) */
    char hash[KMS_CAS_HASH_HEX + 1];
    int64_t created, updated;
    json_t *generated; /* {"NAME": {"fp": HEX, "key": PEM, "cert": PEM} | {"fp": HEX, "b64": ...}} */
    kms_cas_session *session;
} kms_cas_record;

void kms_cas_record_init(kms_cas_record *r);
void kms_cas_record_free(kms_cas_record *r);

/* Reads and opens a session's record (CL_ERR_NOT_FOUND when there is none; CL_ERR_AUTH when the
 * row does not open under the root key, i.e. was altered or moved). */
CL_MUST_USE cl_status kms_cas_record_load(kms_store *st, const kms_root_key *rk, const char *name, kms_cas_record *out);

/* What a put found and did, for the answer and the audit line. */
typedef struct kms_cas_put_result {
    bool created;
    char hash[KMS_CAS_HASH_HEX + 1];
    char predecessor[KMS_CAS_HASH_HEX + 1]; /* "" when created */
    size_t generated;                       /* secrets made by this put */
} kms_cas_put_result;

/*
 * Creates or updates session `name` from the document text (docs/cas.md, "Updating a session"):
 * the document must parse and name `name`; `caller` must be among its updaters (so that no put
 * locks its author out) and, for an update, among the current session's; an update must carry
 * "predecessor": the current hash, and a create must carry none. Secrets are generated for new or
 * changed definitions, kept otherwise. CL_ERR_FORMAT (bad document), CL_ERR_DENIED (caller),
 * CL_ERR_STATE (predecessor missing or stale: the message names both hashes; or another update
 * came first), each changing nothing.
 */
CL_MUST_USE cl_status kms_cas_record_put(kms_store *st, const kms_root_key *rk, const char *name, const char *text,
                                         size_t len, const char *caller, int64_t now, kms_cas_put_result *res);

/* The generated private key (PKCS#8 PEM, into a secret buffer) and certificate (PEM) of an x509-ca
 * secret; CL_ERR_NOT_FOUND when the record has none (a session stored by a damaged build). */
CL_MUST_USE cl_status kms_cas_record_ca(const kms_cas_record *r, const char *name, cl_buf *key_pem, cl_buf *cert_pem);
/* A secret's bytes for delivery: a random secret's, or a value's text; into a secret buffer. */
CL_MUST_USE cl_status kms_cas_record_secret(const kms_cas_record *r, const kms_cas_secret *s, cl_buf *out);

/* --- nonces ------------------------------------------------------------------------- */

#define KMS_CAS_NONCE_LEN 41             /* version, issued (ms), 16 random bytes, 16-byte MAC */
#define KMS_CAS_NONCE_LIFETIME_MS 120000 /* a nonce is good for two minutes */
#define KMS_CAS_NONCE_ID_LEN 32          /* hex of its random part: its mark in the store */

CL_MUST_USE cl_status kms_cas_nonce_make(const kms_root_key *rk, int64_t now_ms, uint8_t out[KMS_CAS_NONCE_LEN]);
/*
 * Checks a nonce from a document: one this service made (CL_ERR_AUTH otherwise), issued no more
 * than KMS_CAS_NONCE_LIFETIME_MS before now (CL_ERR_EXPIRED, the message says when it was issued)
 * and not after it (clock skew of 60 s allowed). Fills the mark the store keeps while it is valid.
 */
CL_MUST_USE cl_status kms_cas_nonce_check(const kms_root_key *rk, const uint8_t *nonce, size_t len, int64_t now_ms,
                                          char id[KMS_CAS_NONCE_ID_LEN + 1], int64_t *expires_s);

#endif
