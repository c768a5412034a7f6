/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The clients of the cloister-infer worker (docs/worker.md), shared by the CLI, benchmarks
 * and tests.
 *
 * Envelope path: the input is sealed under the data owner's KMS key; the client sends
 * `request id || sealed input` over the host channel and gets back the result sealed under a
 * fresh data key of the same KMS key, with the encryption context
 *   {"cloister:request-id": hex(id), "cloister:input-sha384": hex(SHA-384(sealed input))}
 * which binds it to this request (the context is in the envelope's header AAD and in the KMS
 * data key's ciphertext). The client checks it, then unseals with its own KMS credentials.
 *
 * Channel path: RA-TLS (cloister/ratls.h) to the worker's channel port; the client verifies
 * the enclave (root, PCRs, its own nonce) in the handshake, then sends the plaintext input
 * in a request frame inside TLS 1.3 and reads the plaintext result.
 */
#ifndef CLOISTER_INFER_CLIENT_H
#define CLOISTER_INFER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/frame.h"
#include "cloister/kv.h"
#include "cloister/ratls.h"

#define CL_INFER_CTX_REQUEST_ID "cloister:request-id"
#define CL_INFER_CTX_INPUT_SHA384 "cloister:input-sha384"
/* What the worker answers a sealed input it has served already (docs/worker.md, "Replay"). */
#define CL_INFER_REPLAY_MESSAGE "this sealed input was already served (replayed request)"

/* The context binding a result to its request: request id and SHA-384 of the sealed input, in hex. */
CL_MUST_USE cl_status cl_infer_binding_make(const uint8_t id[CL_FRAME_REQUEST_ID_LEN], const uint8_t *sealed,
                                            size_t sealed_len, cl_kvlist *out);
/* A result's encryption context (untrusted: from its header) must be exactly `want`.
 * CL_ERR_AUTH saying which entry differs. */
CL_MUST_USE cl_status cl_infer_binding_check(const cl_kvlist *got, const cl_kvlist *want);

/* Connects a stream socket to a Unix socket path (the host end of a worker's vsock port). */
CL_MUST_USE cl_status cl_infer_connect(const char *socket_path, int *out);

typedef struct cl_infer_envelope_opts {
    bool keep_sealed;         /* out receives the sealed result, its binding checked on its header */
    const char *kms_endpoint; /* for unsealing; NULL: the AWS environment's (cl_kms_client_from_env) */
} cl_infer_envelope_opts;

/*
 * Envelope path: sends the sealed input with a fresh request id, reads the answer, checks the
 * result is sealed under the input's key with this request's binding, then (unless
 * keep_sealed) unseals it with KMS credentials from the environment into out (make it a
 * secret buffer). A worker's error frame is CL_ERR_REMOTE "the enclave refused the request:
 * <its line>".
 */
CL_MUST_USE cl_status cl_infer_client_envelope(const char *socket_path, const uint8_t *sealed, size_t sealed_len,
                                               const cl_infer_envelope_opts *opts, cl_buf *out);

/* Sends a stop frame on the host channel: the worker finishes in-flight requests and exits. */
CL_MUST_USE cl_status cl_infer_client_stop(const char *socket_path);

/* An open channel-path connection: several requests may go over it. */
typedef struct cl_infer_channel {
    int fd;
    bool tls;
    cl_ratls_conn conn;
} cl_infer_channel;

/* Connects and runs the RA-TLS handshake with `client`'s checks; doc (may be NULL) receives
 * the verified attestation document. */
CL_MUST_USE cl_status cl_infer_channel_open(cl_infer_channel *ch, const char *socket_path, cl_ratls_client *client,
                                            cl_attest_doc *doc);
/* The same over a stream the caller connected (inside an enclave: cl_vsock_connect to the worker's
 * channel port); the channel takes fd over and closes it, also on failure. */
CL_MUST_USE cl_status cl_infer_channel_open_fd(cl_infer_channel *ch, int fd, cl_ratls_client *client,
                                               cl_attest_doc *doc);
/* One request: the plaintext input in, the plaintext result appended to out (a secret buffer). */
CL_MUST_USE cl_status cl_infer_channel_request(cl_infer_channel *ch, const uint8_t *input, size_t n, cl_buf *out);
void cl_infer_channel_close(cl_infer_channel *ch);

/* Channel path, one request: open, request, close. */
CL_MUST_USE cl_status cl_infer_client_channel(const char *socket_path, cl_ratls_client *client, const uint8_t *input,
                                              size_t n, cl_buf *out);

#endif
