/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-train, the training job inside its enclave (docs/training-jobs.md): what its files
 * share. job_doc.c reads the job document the runner sends; job_input.c lists, fetches and
 * opens the inputs (Fernet tokens, sealed envelopes) and tells their formats apart; job_output.c
 * seals the model and writes the outputs; main.c is the flow and the reports to the host.
 */
#ifndef CLOISTER_TRAIN_JOB_H
#define CLOISTER_TRAIN_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kms_client.h"
#include "cloister/recipient.h"
#include "cloister/s3_client.h"

/* The vsock port the job listens on for the runner (docs/training-jobs.md, "The guest"). */
#define JOB_VSOCK_PORT 5100
/* Bounds (docs/training-jobs.md, "Bounds"). */
#define JOB_DOC_MAX ((size_t)64 << 10)
#define JOB_MAX_CHANNELS 4
#define JOB_MAX_HYPERPARAMETERS 100 /* SageMaker's limit on HyperParameters */
#define JOB_MAX_OBJECTS 1000        /* data objects in all the channels */
#define JOB_MAX_OBJECT ((size_t)256 << 20)
#define JOB_MAX_DATA_KEYS 16 /* distinct CiphertextBlobs released in one job */
#define JOB_MEMORY_SHARE 8   /* the inputs may take 1/8 of the enclave's memory */
#define JOB_MODEL_MAX ((size_t)64 << 20)
#define JOB_METRICS_MAX ((size_t)64 << 10)
#define JOB_EVENT_MAX ((size_t)4 << 10)

typedef struct job_channel {
    const char *name;
    char bucket[CL_S3_MAX_BUCKET + 1];
    char prefix[CL_S3_MAX_KEY + 1];
    const char *content_type; /* NULL: by content */
} job_channel;

typedef struct job_doc {
    json_t *root; /* owns every string below; holds the session's secret: json_doc_free wipes it */
    const char *name;
    const char *region;
    const char *hp_names[JOB_MAX_HYPERPARAMETERS];
    const char *hp_values[JOB_MAX_HYPERPARAMETERS];
    size_t n_hp;
    const char *encrypted_data_key; /* the hyperparameter, base64; NULL: <key>.key objects */
    job_channel channels[JOB_MAX_CHANNELS];
    size_t n_channels;
    char out_bucket[CL_S3_MAX_BUCKET + 1];
    char out_prefix[CL_S3_MAX_KEY + 1]; /* S3OutputPath's key part, with a trailing '/' if not empty */
    const char *kms_key_id;
    const char *access_key_id, *secret_access_key, *session_token;
    const char *kms_endpoint, *s3_endpoint, *ca_file;
    uint32_t kms_vsock_port, s3_vsock_port;
    uint64_t memory_mib; /* the enclave's memory, as the runner started it */
} job_doc;

/* Parses and checks the document (untrusted JSON from the host); nothing of it is logged. */
CL_MUST_USE cl_status job_doc_parse(const uint8_t *p, size_t n, job_doc *out);
void job_doc_free(job_doc *d);
/* s3://BUCKET[/KEY]: CL_ERR_FORMAT naming `what` otherwise. */
CL_MUST_USE cl_status job_s3_uri_parse(const char *uri, const char *what, char bucket[CL_S3_MAX_BUCKET + 1],
                                       char key[CL_S3_MAX_KEY + 1]);

/* What the job holds while it runs. */
typedef struct job {
    job_doc doc;
    int nsm;
    cl_recipient rcpt;
    cl_kms_client *kms;
    cl_s3_client *s3;
    int host_fd; /* the runner's connection: reports go there */
    /* milliseconds spent, for the result's Timings */
    int64_t recipient_key_ms, key_release_ms, transfer_ms, training_ms;
} job;

/* A monotonic clock in milliseconds. */
int64_t job_now_ms(void);

/* Reports one event (a JSON object; consumed) to the runner. Best effort: a runner that is
 * gone cannot be told anything. */
void job_report(job *j, json_t *event);
void job_report_status(job *j, const char *secondary, const char *message);
void job_report_log(job *j, const char *message);

/* The table's format, told by content (docs/training-jobs.md, "Inputs"). */
typedef enum job_format { JOB_FORMAT_CSV = 0, JOB_FORMAT_NPY = 1 } job_format;

/* Reads every data object of the channels, opens what is encrypted, and leaves the plaintext
 * table in `table` (a secret buffer): CSV objects joined (one header), or the one .npy. */
CL_MUST_USE cl_status job_inputs_load(job *j, cl_buf *table, job_format *format, char *what, size_t what_len);

/* Seals the ONNX model under OutputDataConfig.KmsKeyId (GenerateDataKey with Recipient) and
 * writes model.sealed and metrics.json under S3OutputPath/JOB/output/; on a failure nothing is
 * left there. model_uri gets s3://.../model.sealed. */
CL_MUST_USE cl_status job_outputs_write(job *j, const cl_buf *onnx, const cl_buf *metrics, cl_buf *model_uri);

/* A fresh attestation document for j's recipient key, and a provider of sealed envelopes that
 * has KMS release its keys to it (key_id NULL: unwrap only). */
CL_MUST_USE cl_status job_recipient_provider(job *j, const char *key_id, cl_key_provider **out);

#endif
