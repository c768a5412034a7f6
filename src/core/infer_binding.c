/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The binding of a worker's result to its request (cloister/infer_client.h, docs/worker.md):
 * made by the client and by the worker, so in a file of its own, that the worker links
 * without the client's code (which opens KMS clients from a user's AWS configuration).
 */
#include <openssl/evp.h>
#include <string.h>

#include "cloister/infer_client.h"

#define INFER_SHA384_LEN 48

cl_status cl_infer_binding_make(const uint8_t id[CL_FRAME_REQUEST_ID_LEN], const uint8_t *sealed, size_t sealed_len,
                                cl_kvlist *out)
{
    cl_status rc = CL_OK;
    uint8_t digest[INFER_SHA384_LEN];
    unsigned int dlen = 0;
    cl_buf hex;
    cl_buf_init(&hex, 256);
    if (EVP_Digest(sealed, sealed_len, digest, &dlen, EVP_sha384(), NULL) != 1 || dlen != sizeof(digest))
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "SHA-384 of the sealed input");
    CL_GUARD_GOTO(cl_buf_append_hex(&hex, id, CL_FRAME_REQUEST_ID_LEN));
    CL_GUARD_GOTO(
        cl_kvlist_add(out, CL_INFER_CTX_REQUEST_ID, strlen(CL_INFER_CTX_REQUEST_ID), cl_buf_cstr(&hex), hex.len));
    cl_buf_truncate(&hex, 0);
    CL_GUARD_GOTO(cl_buf_append_hex(&hex, digest, sizeof(digest)));
    CL_GUARD_GOTO(
        cl_kvlist_add(out, CL_INFER_CTX_INPUT_SHA384, strlen(CL_INFER_CTX_INPUT_SHA384), cl_buf_cstr(&hex), hex.len));
out:
    cl_buf_free(&hex);
    return rc;
}

cl_status cl_infer_binding_check(const cl_kvlist *got, const cl_kvlist *want)
{
    static const char *const keys[] = {CL_INFER_CTX_REQUEST_ID, CL_INFER_CTX_INPUT_SHA384};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *g = cl_kvlist_get(got, keys[i]);
        const char *w = cl_kvlist_get(want, keys[i]);
        CL_ENSURE(w != NULL, CL_ERR_USAGE, "the expected binding has no %s", keys[i]);
        CL_ENSURE(g != NULL, CL_ERR_AUTH, "the result is not bound to a request: its encryption context has no %s",
                  keys[i]);
        CL_ENSURE(strcmp(g, w) == 0, CL_ERR_AUTH,
                  "the result is bound to another request: its %s is %.128s, this request's is %.128s", keys[i], g, w);
    }
    CL_ENSURE(got->count == want->count, CL_ERR_AUTH,
              "the result's encryption context has %zu entries; the binding has %zu", got->count, want->count);
    return CL_OK;
}
