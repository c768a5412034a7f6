/* SPDX-License-Identifier: Apache-2.0 */
/* The SigV4 Authorization header and X-Amz-Date parsers on arbitrary bytes
 * (what cloister-kms reads from every request before anything else). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cloister/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_sigv4_auth a;
    if (cl_sigv4_parse_authorization((const char *)data, size, &a) == CL_OK) {
        /* Whatever parses is bounded and NUL-terminated. */
        if (strlen(a.signature) != CL_SIGV4_SIG_HEX_LEN || strlen(a.date) != 8) __builtin_trap();
        if (strlen(a.access_key_id) > CL_SIGV4_MAX_FIELD) __builtin_trap();
    }
    int64_t t;
    (void)cl_sigv4_parse_amz_date((const char *)data, size, &t);
    return 0;
}
