/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KMS audit log: one JSON line per request, hash-chained.
 *
 * Each line is B with `,"hash":"<64 hex>"}` in place of B's closing brace,
 * where B is the event as compact JSON with sorted keys, including
 * "prev" (the previous line's hash; 64 zeros for the first line), and
 * hash = hex(SHA-256(B)). Removing, reordering or editing a line breaks the
 * chain at that point; cl_audit_verify says where. (Cutting lines off the
 * end is only detected against a hash kept elsewhere: the last hash is
 * printed by audit-verify for that purpose.)
 *
 * Events carry names, ARNs, encryption-context *keys* and outcomes only:
 * never a plaintext, a context value, or a key byte.
 */
#ifndef CLOISTER_AUDIT_H
#define CLOISTER_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/error.h"
#include "cloister/kv.h"

#define CL_AUDIT_HASH_HEX 64

typedef struct cl_audit cl_audit;

typedef struct cl_audit_event {
    int64_t time; /* seconds since the epoch */
    const char *request_id;
    const char *principal;
    const char *operation;
    const char *key_arn; /* NULL when the request names no key */
    const cl_kvlist *context;
    const char *outcome; /* "ok" or the exception name */
    /* The attested caller when the request carried a Recipient (else NULL): the document's
     * module id and PCR0 in hex, as CloudTrail's additionalEventData.recipient records it. */
    const char *attested_module_id;
    const char *attested_pcr0;
    /* What a request that names no KMS key acted on (NULL: absent from the line), e.g. the
     * certificate service's "cas:session/NAME" or "cas:session/NAME/service/SERVICE". */
    const char *resource;
} cl_audit_event;

/* Opens (creating, mode 0600) and continues the chain from the last line. The file is
 * locked (flock) while open: a second writer gets CL_ERR_STATE naming the file. */
CL_MUST_USE cl_status cl_audit_open(const char *path, cl_audit **out);
/* Appends one line and returns when it is on disk (write, then fdatasync). Thread-safe.
 * On failure nothing of the line stays in the file: a line over 1 MiB is CL_ERR_LIMIT before
 * anything is written; a short write (disk full, RLIMIT_FSIZE) is cut off again, CL_ERR_IO.
 * A failure that cannot be undone (the cut, or an fdatasync) makes every later call fail:
 * the chain's state on disk is then unknown. */
CL_MUST_USE cl_status cl_audit_append(cl_audit *a, const cl_audit_event *ev);
/* cl_audit_append in two steps, so that a server can answer a batch of requests after one
 * fdatasync: write (in the file, not yet durable; *end is the file's length after the line),
 * then sync up to `end`. One sync covers every line written before it began. */
CL_MUST_USE cl_status cl_audit_write(cl_audit *a, const cl_audit_event *ev, uint64_t *end);
CL_MUST_USE cl_status cl_audit_sync(cl_audit *a, uint64_t end);
void cl_audit_close(cl_audit *a);

/* Checks every line's hash and link. On success *lines is the count and
 * last_hash (65 bytes) the final hash. CL_ERR_AUTH names the first bad line. */
CL_MUST_USE cl_status cl_audit_verify(const char *path, size_t *lines, char last_hash[CL_AUDIT_HASH_HEX + 1]);

#endif
