/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-train's job document (src/guest/train/job_doc.c): what the host sends the job. */
#include <stddef.h>
#include <stdint.h>

#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    job_doc d;
    cl_status rc = job_doc_parse(data, size, &d);
    /* A parsed document names one to JOB_MAX_CHANNELS channels and an output bucket. */
    if (rc == CL_OK && (d.n_channels == 0 || d.n_channels > JOB_MAX_CHANNELS || d.out_bucket[0] == '\0'))
        __builtin_trap();
    job_doc_free(&d);
    return 0;
}
