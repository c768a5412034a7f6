/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key providers: where a sealed envelope's data key comes from and how it is
 * wrapped. `local` wraps under a 256-bit key file; `kms` (cloister-kms or AWS
 * KMS) calls GenerateDataKey / Decrypt. The envelope code sees only this.
 */
#ifndef CLOISTER_KEYPROVIDER_H
#define CLOISTER_KEYPROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#define CL_DATA_KEY_LEN 32
#define CL_PROVIDER_NAME_MAX 32
#define CL_KEY_ID_MAX 2048
#define CL_WRAPPED_KEY_MAX 4096

typedef struct cl_key_provider cl_key_provider;
struct cl_key_provider {
    const char *name; /* written into the envelope header: [a-z0-9-], at most 32 bytes */
    /* Makes a fresh data key bound to `ctx`: the plaintext key into data_key (a
     * secret buffer), its wrapped form into wrapped, and the identifier of the
     * wrapping key into key_id. */
    CL_MUST_USE cl_status (*generate)(cl_key_provider *kp, const cl_kvlist *ctx, cl_buf *data_key, cl_buf *wrapped,
                                      cl_buf *key_id);
    /* Recovers a data key. key_id comes from an untrusted header: a provider
     * that cannot serve it fails with CL_ERR_KEY and says which key it holds. */
    CL_MUST_USE cl_status (*unwrap)(cl_key_provider *kp, const char *key_id, const uint8_t *wrapped, size_t wrapped_len,
                                    const cl_kvlist *ctx, cl_buf *data_key);
    void (*destroy)(cl_key_provider *kp);
    void *state;
};

void cl_key_provider_destroy(cl_key_provider *kp);

/* --- local provider ---------------------------------------------------------- */

/* Creates a new key file (mode 0600; fails if it exists) holding a fresh
 * 256-bit key. Writes the key id into key_id when not NULL. */
CL_MUST_USE cl_status cl_local_key_create(const char *path, cl_buf *key_id);
/* Opens a key file. Refuses a file that group or others can read. */
CL_MUST_USE cl_status cl_local_provider_open(const char *path, cl_key_provider **out);
/* Same, from the 32 key bytes (tests, vectors). */
CL_MUST_USE cl_status cl_local_provider_from_key(const uint8_t key[CL_DATA_KEY_LEN], cl_key_provider **out);
/* The key id of a local key: "local:" and 16 hex digits of a hash of the key. */
const char *cl_local_provider_key_id(const cl_key_provider *kp);

#endif
