/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job's outputs (docs/training-jobs.md, "Outputs"): the ONNX model sealed as a Cloister
 * envelope under OutputDataConfig.KmsKeyId, its data key from GenerateDataKey with Recipient
 * (so the plaintext data key exists only here), with no encryption context: exactly the file
 * `cloister seal --key KEY model.onnx` makes and cloister-infer's "model" opens. Then
 * metrics.json (aggregate figures only). Both go under S3OutputPath/TrainingJobName/output/,
 * the model first; if the metrics cannot be written the model is deleted again, so that a
 * failed job leaves no output.
 */
#include <string.h>

#include "cloister/envelope.h"
#include "cloister/log.h"

#include "job.h"

cl_status job_outputs_write(job *j, const cl_buf *onnx, const cl_buf *metrics, cl_buf *model_uri)
{
    cl_status rc = CL_OK;
    cl_key_provider *kp = NULL;
    cl_buf sealed;
    cl_buf_init(&sealed, JOB_MODEL_MAX + ((size_t)1 << 20));
    char model_key[CL_S3_MAX_KEY + 1], metrics_key[CL_S3_MAX_KEY + 1];
    const char *bucket = j->doc.out_bucket;
    bool model_written = false;
    (void)snprintf(model_key, sizeof(model_key), "%s%s/output/model.sealed", j->doc.out_prefix, j->doc.name);
    (void)snprintf(metrics_key, sizeof(metrics_key), "%s%s/output/metrics.json", j->doc.out_prefix, j->doc.name);
    int64_t t0 = job_now_ms();
    rc = job_recipient_provider(j, j->doc.kms_key_id, &kp);
    if (rc == CL_OK) rc = cl_envelope_seal_mem(kp, NULL, onnx->data, onnx->len, &sealed);
    j->key_release_ms += job_now_ms() - t0;
    CL_GUARD_CTX_GOTO(rc, "sealing the model under %s", j->doc.kms_key_id);
    t0 = job_now_ms();
    CL_GUARD_CTX_GOTO(
        cl_s3_put_object(j->s3, bucket, model_key, sealed.data, sealed.len, "application/octet-stream", NULL),
        "writing s3://%s/%s", bucket, model_key);
    model_written = true;
    CL_GUARD_CTX_GOTO(
        cl_s3_put_object(j->s3, bucket, metrics_key, metrics->data, metrics->len, "application/json", NULL),
        "writing s3://%s/%s", bucket, metrics_key);
    j->transfer_ms += job_now_ms() - t0;
    CL_GUARD_GOTO(cl_buf_printf(model_uri, "s3://%s/%s", bucket, model_key));
out:
    if (rc != CL_OK && model_written) {
        /* Keep the failure's message: the delete's own failure is only logged. */
        cl_error saved = *cl_error_last();
        if (cl_s3_delete_object(j->s3, bucket, model_key) != CL_OK)
            CL_LOG_WARN("the job failed and s3://%s/%s could not be deleted: %s", bucket, model_key,
                        cl_error_message());
        rc = CL_RAISE(saved.code, "%s", saved.msg);
    }
    cl_key_provider_destroy(kp);
    cl_buf_free(&sealed);
    return rc;
}
