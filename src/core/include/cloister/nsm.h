/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attestation device (standing for the Nitro Secure Module, /dev/nsm) and the
 * enclave side of the sim backend: what a program running inside a Cloister enclave
 * links to talk to its launcher.
 *
 * Wire format: the NSM's own. Each request and each response is one CBOR item, the
 * serde encoding of the Request / Response enums of aws/aws-nitro-enclaves-nsm-api
 * (src/api/mod.rs):
 *   requests   {"DescribePCR": {"index": u16}}
 *              {"ExtendPCR": {"index": u16, "data": bytes}}
 *              {"LockPCR": {"index": u16}}        {"LockPCRs": {"range": u16}}
 *              "DescribeNSM"                       "GetRandom"
 *              {"Attestation": {"user_data": bytes|null, "nonce": bytes|null,
 *                               "public_key": bytes|null}}
 *   responses  {"DescribePCR": {"lock": bool, "data": bytes}}
 *              {"ExtendPCR": {"data": bytes}}     "LockPCR"     "LockPCRs"
 *              {"DescribeNSM": {"version_major", "version_minor", "version_patch",
 *                               "module_id", "max_pcrs", "locked_pcrs": [u16...],
 *                               "digest": "SHA384"}}
 *              {"Attestation": {"document": bytes}}   {"GetRandom": {"random": bytes}}
 *              {"Error": "InvalidIndex" | ...}  (the ErrorCode enum's names)
 * On Nitro these travel through the NSM driver's ioctl; in the sim backend one
 * request or response is one message on a SOCK_SEQPACKET socket (fd CL_NSM_FD in the
 * enclave), so message boundaries are kept by the kernel, as the ioctl keeps them.
 * Sizes are bounded as the NSM bounds them: requests at most 4 KiB, responses 12 KiB
 * (NSM_REQUEST_MAX_SIZE / NSM_RESPONSE_MAX_SIZE), user_data, nonce and public_key at
 * most 1024 bytes each, GetRandom 256 bytes.
 */
#ifndef CLOISTER_NSM_H
#define CLOISTER_NSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_NSM_MAX_REQUEST 4096
#define CL_NSM_MAX_RESPONSE 12288
#define CL_NSM_MAX_PCRS 32
#define CL_NSM_PCR_LEN 48
#define CL_NSM_MAX_FIELD 1024 /* user_data, nonce, public_key, ExtendPCR data */
#define CL_NSM_RANDOM_LEN 256

/* File descriptors a sim enclave starts with (the launcher places them). */
#define CL_NSM_FD 3   /* the attestation device */
#define CL_VSOCK_FD 4 /* the vsock emulation's control socket */

typedef enum cl_nsm_op {
    CL_NSM_OP_NONE = 0,
    CL_NSM_OP_DESCRIBE_PCR,
    CL_NSM_OP_EXTEND_PCR,
    CL_NSM_OP_LOCK_PCR,
    CL_NSM_OP_LOCK_PCRS,
    CL_NSM_OP_DESCRIBE_NSM,
    CL_NSM_OP_ATTESTATION,
    CL_NSM_OP_GET_RANDOM,
    CL_NSM_OP_ERROR, /* responses only */
} cl_nsm_op;

/* nsm-api ErrorCode, in its order. */
typedef enum cl_nsm_error {
    CL_NSM_SUCCESS = 0,
    CL_NSM_INVALID_ARGUMENT,
    CL_NSM_INVALID_INDEX,
    CL_NSM_INVALID_RESPONSE,
    CL_NSM_READONLY_INDEX,
    CL_NSM_INVALID_OPERATION,
    CL_NSM_BUFFER_TOO_SMALL,
    CL_NSM_INPUT_TOO_LARGE,
    CL_NSM_INTERNAL_ERROR,
} cl_nsm_error;

const char *cl_nsm_error_name(cl_nsm_error e);

typedef struct cl_nsm_field {
    bool present;
    size_t len;
    uint8_t data[CL_NSM_MAX_FIELD];
} cl_nsm_field;

typedef struct cl_nsm_request {
    cl_nsm_op op;
    uint16_t index;                            /* DescribePCR, ExtendPCR, LockPCR; the range of LockPCRs */
    cl_nsm_field data;                         /* ExtendPCR */
    cl_nsm_field user_data, nonce, public_key; /* Attestation */
} cl_nsm_request;

typedef struct cl_nsm_response {
    cl_nsm_op op;
    cl_nsm_error error; /* op == CL_NSM_OP_ERROR */
    bool lock;          /* DescribePCR */
    cl_buf data;        /* PCR value, document, or random bytes */
    /* DescribeNSM */
    uint16_t version[3];
    char module_id[256];
    uint16_t max_pcrs;
    uint32_t locked_mask;
} cl_nsm_response;

void cl_nsm_response_init(cl_nsm_response *r);
void cl_nsm_response_free(cl_nsm_response *r);

/* Encodes a request (the enclave side). */
CL_MUST_USE cl_status cl_nsm_request_encode(const cl_nsm_request *req, cl_buf *out);
/*
 * Decodes a request (the device side: these bytes come from the enclave and are not
 * trusted). Anything but one of the shapes above, exactly, is CL_ERR_FORMAT; fields
 * over their bound are CL_ERR_LIMIT. Unknown keys inside a request are refused.
 */
CL_MUST_USE cl_status cl_nsm_request_parse(const uint8_t *p, size_t n, cl_nsm_request *req);

CL_MUST_USE cl_status cl_nsm_response_encode(const cl_nsm_response *resp, cl_buf *out);
CL_MUST_USE cl_status cl_nsm_response_parse(const uint8_t *p, size_t n, cl_nsm_response *resp);

/* --- the enclave side ------------------------------------------------------ */

/*
 * Opens the attestation device: in a Cloister sim enclave (the launcher sets
 * CLOISTER_ENCLAVE=sim) the socket it placed at CL_NSM_FD; elsewhere /dev/nsm, the
 * Nitro Secure Module driver, so that one program runs on both. CL_ERR_NOT_FOUND
 * when neither is there.
 */
CL_MUST_USE cl_status cl_nsm_open(int *fd);
/* The vsock control descriptor to pass to cl_vsock_*: CL_VSOCK_FD in a sim enclave,
 * -1 elsewhere (real AF_VSOCK, as inside a Nitro enclave). */
int cl_vsock_ctl(void);

/*
 * Sends one request to the device `fd` (from cl_nsm_open) and decodes
 * the answer. A response {"Error": ...} is returned as CL_ERR_REMOTE naming the code
 * (and resp->error holds it), any other mismatch as CL_ERR_FORMAT.
 */
CL_MUST_USE cl_status cl_nsm_call(int fd, const cl_nsm_request *req, cl_nsm_response *resp);

CL_MUST_USE cl_status cl_nsm_describe_pcr(int fd, unsigned index, uint8_t value[CL_NSM_PCR_LEN], bool *locked);
CL_MUST_USE cl_status cl_nsm_extend_pcr(int fd, unsigned index, const uint8_t *data, size_t len,
                                        uint8_t value[CL_NSM_PCR_LEN]);
CL_MUST_USE cl_status cl_nsm_lock_pcr(int fd, unsigned index);
CL_MUST_USE cl_status cl_nsm_lock_pcrs(int fd, unsigned range);
CL_MUST_USE cl_status cl_nsm_get_random(int fd, uint8_t *out, size_t len);
/* GetAttestationDoc: any of the three may be NULL (sent as null). */
CL_MUST_USE cl_status cl_nsm_get_attestation_doc(int fd, const uint8_t *user_data, size_t user_data_len,
                                                 const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key,
                                                 size_t public_key_len, cl_buf *doc);

/*
 * The vsock emulation (what AF_VSOCK is on Nitro). The enclave has no network; it
 * reaches the host only through its launcher:
 *   cl_vsock_connect(port)  a stream to the parent (CID 3) port `port`; the launcher
 *                           serves it only for ports it proxies (--proxy PORT=HOST:PORT),
 *                           as vsock-proxy does, and refuses the others.
 *   cl_vsock_listen(port)   host programs may then connect to the Unix socket
 *                           <state dir>/vsock-<port>.sock; cl_vsock_accept returns each.
 * Each connection is a fresh socketpair whose one end is handed over with SCM_RIGHTS, so
 * the enclave never holds a host socket. With ctl_fd -1 the same calls use AF_VSOCK
 * itself (connect to CID 3, the parent; listen on any CID), as on Nitro hardware.
 */
CL_MUST_USE cl_status cl_vsock_connect(int ctl_fd, uint32_t port, int *out_fd);
CL_MUST_USE cl_status cl_vsock_listen(int ctl_fd, uint32_t port, int *listener_fd);
CL_MUST_USE cl_status cl_vsock_accept(int listener_fd, int *out_fd);

/* Sends one message with `nfd` (0 or 1) file descriptors (SCM_RIGHTS). */
CL_MUST_USE cl_status cl_fd_send(int sock, const void *msg, size_t len, int fd);
/* Receives one message and at most one descriptor (-1 when none came). *len in: size, out: length. */
CL_MUST_USE cl_status cl_fd_recv(int sock, void *msg, size_t *len, int *fd);

#endif
