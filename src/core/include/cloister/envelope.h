/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed envelope format v1 (docs/formats/envelope.md): a header naming the key
 * provider, key id, wrapped data key and encryption context, then AES-256-GCM
 * chunks. Streams in constant memory: two chunk buffers, whatever the size.
 */
#ifndef CLOISTER_ENVELOPE_H
#define CLOISTER_ENVELOPE_H

#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/keyprovider.h"
#include "cloister/kv.h"
#include "cloister/stream.h"

#define CL_ENVELOPE_MAGIC \
    "\x89" \
    "CLSEAL\n"
#define CL_ENVELOPE_MAGIC_LEN 8
#define CL_ENVELOPE_VERSION 1
#define CL_ENVELOPE_ALG_AES256GCM_HKDF 1
#define CL_ENVELOPE_SALT_LEN 32
#define CL_ENVELOPE_FIXED_LEN 14 /* magic, version, algorithm, header length */
#define CL_ENVELOPE_HEADER_MAX 65536
#define CL_ENVELOPE_CHUNK_MIN 4096u
#define CL_ENVELOPE_CHUNK_MAX (64u << 20)
#define CL_ENVELOPE_CHUNK_DEFAULT (1u << 20)

/* A parsed header. Pointers borrow from the bytes that were parsed. */
typedef struct cl_envelope_header {
    uint8_t version;
    uint8_t algorithm;
    uint32_t header_len;
    uint32_t chunk_size;
    const uint8_t *provider;
    size_t provider_len;
    const uint8_t *key_id;
    size_t key_id_len;
    const uint8_t *wrapped_key;
    size_t wrapped_key_len;
    cl_kvlist context; /* owned: free with cl_envelope_header_free */
    const uint8_t *salt;
} cl_envelope_header;

/* Parses and validates a complete header (exactly header_len bytes). */
CL_MUST_USE cl_status cl_envelope_header_parse(const uint8_t *p, size_t n, cl_envelope_header *h);
void cl_envelope_header_free(cl_envelope_header *h);
/* From the first CL_ENVELOPE_FIXED_LEN bytes: checks magic and version and
 * says how long the whole header is. */
CL_MUST_USE cl_status cl_envelope_header_length(const uint8_t *p, size_t n, uint32_t *header_len);

typedef struct cl_envelope_opts {
    uint32_t chunk_size;      /* 0: CL_ENVELOPE_CHUNK_DEFAULT */
    const cl_kvlist *context; /* seal: bound to the data; unseal: must equal the file's (NULL: no check) */
    void (*progress)(void *arg, uint64_t input_bytes); /* called after each chunk with the input consumed */
    void *progress_arg;
    const uint8_t *fixed_salt; /* test vectors only: NULL draws a random salt */
} cl_envelope_opts;

CL_MUST_USE cl_status cl_envelope_seal(cl_key_provider *kp, const cl_envelope_opts *opts, cl_stream *in,
                                       cl_stream *out);
/* Writes plaintext as chunks verify; on failure the caller must discard what
 * was written (the CLI writes to a temporary file it deletes). If file_context
 * is not NULL it receives the file's encryption context. */
CL_MUST_USE cl_status cl_envelope_unseal(cl_key_provider *kp, const cl_envelope_opts *opts, cl_stream *in,
                                         cl_stream *out, cl_kvlist *file_context);

/* One-shot forms for records and requests held in memory. */
CL_MUST_USE cl_status cl_envelope_seal_mem(cl_key_provider *kp, const cl_kvlist *ctx, const uint8_t *in, size_t n,
                                           cl_buf *out);
CL_MUST_USE cl_status cl_envelope_unseal_mem(cl_key_provider *kp, const cl_kvlist *ctx, const uint8_t *in, size_t n,
                                             cl_buf *out);

#endif
