/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-train: a training job inside its enclave (docs/training-jobs.md). It listens on vsock
 * port JOB_VSOCK_PORT for the runner (`cloister train-job run`), which sends the job document
 * in one request frame; then it makes a fresh recipient key, reads and opens its inputs (KMS
 * releases the data keys to its attestation document only: the key policy's
 * kms:RecipientAttestation:PCR0 condition), trains, seals the model under the job's KMS key and
 * writes the outputs to S3. It reports to the runner in result frames, one JSON event each
 * (status, log, metric, and one result last). Plaintext data, the model and the keys stay in
 * secret buffers and are wiped on every path; the reports carry counts and aggregate metrics
 * only.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloister/frame.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/train.h"

#include "job.h"

#define JOB_KMS_ATTEMPTS 3

int64_t job_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void job_report(job *j, json_t *event)
{
    if (event == NULL) return;
    char *s = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    if (s == NULL) return;
    size_t n = strlen(s);
    if (j->host_fd >= 0 && n <= JOB_EVENT_MAX && cl_frame_write(j->host_fd, CL_FRAME_RESULT, (uint8_t *)s, n) != CL_OK)
        CL_LOG_WARN("the runner is gone: %s", cl_error_message());
    free(s);
}

void job_report_status(job *j, const char *secondary, const char *message)
{
    job_report(j,
               json_pack("{s:s, s:s, s:s}", "event", "status", "SecondaryStatus", secondary, "StatusMessage", message));
}

void job_report_log(job *j, const char *message)
{
    job_report(j, json_pack("{s:s, s:s%}", "event", "log", "message", message, strnlen(message, 1024)));
}

static void job_progress(void *arg, const char *line) { job_report_log(arg, line); }

/* A table's parse errors may quote a cell ("unknown label 'x'"): what is quoted is left out, so
 * that a failure reason carries no value of the data. */
static CL_MUST_USE cl_status job_redacted(cl_status rc)
{
    if (rc == CL_OK) return rc;
    const char *m = cl_error_message();
    char out[1024];
    size_t o = 0;
    bool in = false;
    for (size_t i = 0; m[i] != '\0' && o + 4 < sizeof(out); i++) {
        if (m[i] == '\'') {
            if (!in) {
                memcpy(out + o, "'...", 4);
                o += 4;
            } else {
                out[o++] = '\'';
            }
            in = !in;
        } else if (!in) {
            out[o++] = m[i];
        }
    }
    out[o] = '\0';
    return CL_RAISE(rc, "%s", out);
}

static CL_MUST_USE cl_status job_clients(job *j)
{
    const job_doc *d = &j->doc;
    cl_kms_client_config kc = {.endpoint = d->kms_endpoint,
                               .region = d->region,
                               .access_key_id = d->access_key_id,
                               .secret_access_key = d->secret_access_key,
                               .session_token = d->session_token,
                               .max_attempts = JOB_KMS_ATTEMPTS,
                               .vsock_port = d->kms_vsock_port,
                               .ca_file = d->ca_file};
    CL_GUARD_CTX(cl_kms_client_new(&kc, &j->kms), "the KMS client");
    cl_s3_config sc = {.endpoint = d->s3_endpoint,
                       .region = d->region,
                       .access_key_id = d->access_key_id,
                       .secret_access_key = d->secret_access_key,
                       .session_token = d->session_token,
                       .ca_file = d->ca_file,
                       .vsock_port = d->s3_vsock_port};
    CL_GUARD_CTX(cl_s3_client_new(&sc, &j->s3), "the S3 client");
    return CL_OK;
}

/* The final metrics of the metrics document (docs/training.md, "metrics.json"): its
 * "final_metrics", already in the shape of SageMaker's FinalMetricDataList. */
static CL_MUST_USE cl_status job_final_metrics(job *j, const cl_buf *metrics, json_t *list)
{
    json_error_t jerr;
    json_t *m = json_loadb((const char *)metrics->data, metrics->len, 0, &jerr);
    json_t *fm = json_object_get(m, "final_metrics");
    size_t i;
    json_t *one;
    if (!json_is_array(fm)) {
        json_decref(m);
        CL_FAIL(CL_ERR_INTERNAL, "the trainer's metrics document has no final_metrics list");
    }
    json_array_foreach(fm, i, one)
    {
        const char *name = json_string_value(json_object_get(one, "MetricName"));
        json_t *v = json_object_get(one, "Value");
        if (name == NULL || !json_is_number(v)) continue;
        (void)json_array_append_new(list, json_pack("{s:s, s:f}", "MetricName", name, "Value", json_number_value(v)));
        job_report(j,
                   json_pack("{s:s, s:s, s:f}", "event", "metric", "MetricName", name, "Value", json_number_value(v)));
    }
    json_decref(m);
    return CL_OK;
}

static CL_MUST_USE cl_status job_run(job *j, cl_buf *raw, json_t *result)
{
    cl_status rc = CL_OK;
    cl_buf table, onnx, metrics, model_uri;
    cl_buf_init_secret(&table, JOB_MAX_OBJECT);
    cl_buf_init_secret(&onnx, JOB_MODEL_MAX);
    cl_buf_init(&metrics, JOB_METRICS_MAX);
    cl_buf_init(&model_uri, CL_S3_MAX_KEY + 80);
    cl_train_dataset data = {0};
    cl_train_params params;
    job_format format = JOB_FORMAT_CSV;
    char what[CL_S3_MAX_KEY + 80] = "";
    char line[256];
    rc = job_doc_parse(raw->data, raw->len, &j->doc);
    cl_buf_free(raw); /* the document's bytes: wiped; the parsed copy is wiped by job_doc_free */
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(cl_train_params_from_strings(j->doc.hp_names, j->doc.hp_values, j->doc.n_hp, &params));
    job_report_status(j, "Downloading", "Downloading the input data");
    CL_GUARD_CTX_GOTO(cl_nsm_open(&j->nsm), "opening the attestation device");
    int64_t tk = job_now_ms();
    CL_GUARD_CTX_GOTO(cl_recipient_generate(&j->rcpt), "making the recipient key");
    j->recipient_key_ms = job_now_ms() - tk;
    CL_GUARD_GOTO(job_clients(j));
    CL_GUARD_GOTO(job_inputs_load(j, &table, &format, what, sizeof(what)));
    rc = format == JOB_FORMAT_NPY ? cl_train_npy_parse(table.data, table.len, what, &data)
                                  : cl_train_csv_parse(table.data, table.len, what, &data);
    cl_buf_free(&table);
    CL_GUARD_GOTO(job_redacted(rc));
    (void)snprintf(line, sizeof(line), "data: %zu rows (%zu positive, %zu negative), %zu features", data.n_rows,
                   data.n_positive, data.n_rows - data.n_positive, data.n_features);
    job_report_log(j, line);
    job_report_status(j, "Training", "Training the model");
    int64_t t0 = job_now_ms();
    rc = cl_train_fit(&data, &params, job_progress, j, &onnx, &metrics);
    j->training_ms = job_now_ms() - t0;
    CL_GUARD_GOTO(job_redacted(rc));
    cl_train_dataset_free(&data);
    job_report_status(j, "Uploading", "Uploading the sealed model and the metrics");
    CL_GUARD_GOTO(job_outputs_write(j, &onnx, &metrics, &model_uri));
    json_t *list = json_array();
    (void)json_object_set_new(result, "FinalMetricDataList", list);
    CL_GUARD_GOTO(job_final_metrics(j, &metrics, list));
    (void)json_object_set_new(result, "ModelArtifacts",
                              json_pack("{s:s}", "S3ModelArtifacts", cl_buf_cstr(&model_uri)));
out:
    cl_train_dataset_free(&data);
    cl_buf_free(&table);
    cl_buf_free(&onnx); /* the model: the owner's IP, wiped */
    cl_buf_free(&metrics);
    cl_buf_free(&model_uri);
    return rc;
}

int main(int argc, char **argv)
{
    cl_log_init("cloister-train");
    (void)signal(SIGPIPE, SIG_IGN);
    /* --help and --version for its operator (and help2man's manual page); in the enclave it takes
     * no arguments. */
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("Usage: cloister-train   (inside a Cloister enclave image; see docs/training-jobs.md)\n"
               "\n"
               "The training job. It listens on vsock port %d for `cloister train-job run`, which sends\n"
               "the job document; it attests with a fresh recipient key, reads its inputs from S3 (Fernet\n"
               "tokens and sealed envelopes whose keys KMS releases to its attestation document), trains,\n"
               "seals the model under OutputDataConfig.KmsKeyId and writes model.sealed and metrics.json\n"
               "to S3OutputPath/TrainingJobName/output/, reporting events to the runner as it goes.\n"
               "Build its image with: cloister enclave build --exe cloister-train -o train.img\n",
               JOB_VSOCK_PORT);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("cloister-train %s\n", CLOISTER_VERSION);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr,
                "cloister-train: takes no arguments: it runs in an enclave and gets its job over vsock "
                "port %d (docs/training-jobs.md)\n",
                JOB_VSOCK_PORT);
        return 2;
    }
    job j;
    memset(&j, 0, sizeof(j));
    j.nsm = -1;
    j.host_fd = -1;
    cl_recipient_init(&j.rcpt);
    int lfd = -1;
    uint8_t type = 0;
    cl_buf raw;
    cl_buf_init_secret(&raw, JOB_DOC_MAX); /* the role session's secret */
    cl_status rc = cl_vsock_listen(cl_vsock_ctl(), JOB_VSOCK_PORT, &lfd);
    if (rc == CL_OK) rc = cl_vsock_accept(lfd, &j.host_fd);
    if (lfd >= 0) (void)close(lfd);
    if (rc != CL_OK) {
        CL_LOG_ERROR("cannot start: no runner on vsock port %d: %s", JOB_VSOCK_PORT, cl_error_message());
        cl_buf_free(&raw);
        return 1;
    }
    rc = cl_frame_read(j.host_fd, JOB_DOC_MAX, &type, &raw);
    if (rc == CL_OK && type != CL_FRAME_REQUEST)
        rc = CL_RAISE(CL_ERR_FORMAT, "the runner sent frame type %u, not the job document", type);
    json_t *result = json_pack("{s:s}", "event", "result");
    int64_t t0 = job_now_ms();
    if (rc == CL_OK) rc = job_run(&j, &raw, result);
    if (rc == CL_OK) {
        (void)json_object_set_new(result, "TrainingJobStatus", json_string("Completed"));
        (void)json_object_set_new(result, "SecondaryStatus", json_string("Completed"));
    } else {
        (void)json_object_set_new(result, "TrainingJobStatus", json_string("Failed"));
        (void)json_object_set_new(result, "SecondaryStatus", json_string("Failed"));
        (void)json_object_set_new(result, "FailureReason", json_string(cl_error_message()));
        (void)json_object_del(result, "FinalMetricDataList");
        (void)json_object_del(result, "ModelArtifacts");
    }
    (void)json_object_set_new(result, "Timings",
                              json_pack("{s:I, s:I, s:I, s:I, s:I}", "recipient_key_ms", (json_int_t)j.recipient_key_ms,
                                        "key_release_ms", (json_int_t)j.key_release_ms, "transfer_ms",
                                        (json_int_t)j.transfer_ms, "training_ms", (json_int_t)j.training_ms, "job_ms",
                                        (json_int_t)(job_now_ms() - t0)));
    job_report(&j, result);
    cl_buf_free(&raw);
    cl_kms_client_free(j.kms);
    cl_s3_client_free(j.s3);
    cl_recipient_free(&j.rcpt);
    job_doc_free(&j.doc);
    if (j.nsm >= 0) (void)close(j.nsm);
    if (j.host_fd >= 0) (void)close(j.host_fd);
    return rc == CL_OK ? 0 : 1;
}
