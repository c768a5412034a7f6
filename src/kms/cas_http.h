/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate service's HTTP API (docs/cas.md, "API"), under /v1/ on cloister-kms's own
 * listener (the KMS API is POST / with X-Amz-Target, so a path decides):
 *   GET  /v1/values/session=NAME   public: the values the session exports       (no audit line)
 *   GET  /v1/nonce                 public: a fresh single-use attestation nonce (no audit line)
 *   POST /v1/certificate           attested issuance (cas_issue.h)              (audited)
 *   GET  /v1/sessions/NAME         SigV4: the session document and its hash    (audited)
 *   PUT  /v1/sessions/NAME         SigV4: create or update a session            (audited, started first)
 * server.c authenticates the signed routes (the KMS's principals and SigV4 verifier), writes the
 * audit lines and sends the answer after the audit log's fdatasync, as for every KMS answer;
 * this file does the rest. Errors are {"code": NAME, "message": TEXT}.
 */
#ifndef CLOISTER_KMS_CAS_HTTP_H
#define CLOISTER_KMS_CAS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/attestation.h"

#include "cas_session.h"
#include "server.h"

typedef enum kms_cas_access {
    KMS_CAS_PUBLIC = 0,  /* anyone; no audit line */
    KMS_CAS_ATTESTED,    /* anyone, proving itself with attestation; audited */
    KMS_CAS_SIGNED,      /* a SigV4-signed principal; audited */
    KMS_CAS_SIGNED_WRITE /* the same, changing the store: a "started" line first */
} kms_cas_access;

typedef struct kms_cas_http {
    /* The request. */
    kms_ctx *kms;
    const char *method; /* "GET", "POST", "PUT", ... */
    const char *path;   /* as sent */
    const uint8_t *body;
    size_t body_len;
    const kms_principal *principal; /* the signed routes': authenticated by server.c */
    int64_t now_ms;
    /* The answer. */
    int status;
    char *answer;        /* JSON text, malloc'd (free with cl_free_wiped: it may hold secrets) */
    const char *outcome; /* "ok" or the error's code, for the audit line */
    char resource[KMS_CAS_NAME_MAX + KMS_CAS_ITEM_NAME_MAX + 32]; /* cas:session/NAME[/service/S] */
    char module_id[CL_ATTEST_MAX_MODULE_ID + 1];                  /* an attested caller's */
    char pcr0[2 * CL_ATTEST_PCR_LEN + 1];
} kms_cas_http;

/* Whether path is the certificate service's (it starts with "/v1/"). */
bool kms_cas_path(const char *path);
/* The route of a request: its operation name ("cas:PutSession"; NULL for no route: the handler
 * answers 404 or 405) and who may call it. */
const char *kms_cas_route(const char *method, const char *path, kms_cas_access *access);
/* Serves h's request into h's answer; never fails (a failure is an error answer). */
void kms_cas_handle(kms_cas_http *h);
/* {"code": code, "message": message}, malloc'd (NULL when out of memory). */
char *kms_cas_error_body(const char *code, const char *message);

#endif
