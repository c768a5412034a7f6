/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The enclave image parser on arbitrary bytes: the launcher reads images it did not
 * build. Parsing must never read past the input; an accepted image has sorted, valid,
 * in-bounds entries and exactly one program. Seeds: small valid images (corpus/enclave_image).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/enclave.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_image img;
    cl_image_init(&img);
    if (cl_image_parse(data, size, &img) == CL_OK) {
        size_t exes = 0;
        for (size_t i = 0; i < img.count; i++) {
            const cl_image_entry *e = &img.entries[i];
            if (e->data < img.raw.data || e->data + e->size > img.raw.data + img.body_len) abort();
            if (e->path[0] != '/' || (i > 0 && strcmp(img.entries[i - 1].path, e->path) >= 0)) abort();
            exes += e->kind == CL_IMAGE_EXE;
        }
        if (exes != 1 || img.body_len > size) abort();
    }
    cl_image_free(&img);
    return 0;
}
