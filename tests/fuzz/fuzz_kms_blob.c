/* SPDX-License-Identifier: Apache-2.0 */
/* The KMS ciphertext-blob parser (formats 1 and 2) and GCM open on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t material[KMS_MATERIAL_LEN] = {7};
    kms_blob b;
    if (kms_blob_parse(data, size, &b) != CL_OK) return 0;
    if (b.header_len + b.ct_len + CL_GCM_TAG_LEN != size) __builtin_trap();
    /* Format 2 names a region (a name as the config's), format 1 none. */
    if ((b.format == KMS_BLOB_VERSION) != kms_region_name_ok(b.region)) __builtin_trap();
    cl_buf pt;
    cl_buf_init_secret(&pt, KMS_BLOB_MAX);
    if (kms_blob_open(material, &b, NULL, &pt) != CL_OK && pt.len != 0) __builtin_trap();
    cl_buf_free(&pt);
    return 0;
}
