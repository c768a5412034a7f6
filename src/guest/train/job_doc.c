/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job document (docs/training-jobs.md, "The job document"): what the runner sends the job
 * over vsock. It comes from the host, so it is untrusted input like any other: every member is
 * checked here, and its secrets (the role session's secret key and token) are wiped with it.
 */
#include <string.h>

#include "cloister/mem.h"

#include "job.h"

static CL_MUST_USE cl_status doc_string(json_t *obj, const char *where, const char *name, bool required,
                                        const char **out)
{
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if ((v == NULL || json_is_null(v)) && !required) return CL_OK;
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "the job document has no %s%s", where, name);
    CL_ENSURE(json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= 4096 &&
                  strlen(json_string_value(v)) == json_string_length(v),
              CL_ERR_FORMAT, "the job document's %s%s must be a non-empty string (at most 4096 bytes, no NUL)", where,
              name);
    *out = json_string_value(v);
    return CL_OK;
}

static CL_MUST_USE cl_status doc_port(json_t *ports, const char *name, uint32_t *out)
{
    json_t *v = json_object_get(ports, name);
    CL_ENSURE(v != NULL && json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 0xFFFFFFFFLL,
              CL_ERR_FORMAT, "the job document's VsockPorts.%s must be a vsock port (1 to 4294967295)", name);
    *out = (uint32_t)json_integer_value(v);
    return CL_OK;
}

cl_status job_s3_uri_parse(const char *uri, const char *what, char bucket[CL_S3_MAX_BUCKET + 1],
                           char key[CL_S3_MAX_KEY + 1])
{
    cl_reader r = cl_reader_make(uri, strlen(uri));
    cl_reader b;
    bool slash = false;
    CL_ENSURE(cl_reader_starts_with_str(&r, "s3://"), CL_ERR_FORMAT, "%s '%.256s' is not an s3://BUCKET/KEY URI", what,
              uri);
    CL_GUARD(cl_reader_skip(&r, 5));
    cl_reader_until(&r, '/', &b, &slash); /* no '/': the whole bucket */
    if (slash) CL_GUARD(cl_reader_skip(&r, 1));
    const uint8_t *bp = NULL, *kp = NULL;
    size_t bn = 0, kn = 0;
    cl_reader_rest(&b, &bp, &bn);
    cl_reader_rest(&r, &kp, &kn);
    CL_ENSURE(bn >= 3 && bn <= CL_S3_MAX_BUCKET, CL_ERR_FORMAT, "%s '%.256s': a bucket name has 3 to 63 characters",
              what, uri);
    CL_ENSURE(kn <= CL_S3_MAX_KEY, CL_ERR_FORMAT, "%s '%.256s': its key is over S3's 1024 bytes", what, uri);
    memcpy(bucket, bp, bn);
    bucket[bn] = '\0';
    if (kn > 0) memcpy(key, kp, kn);
    key[kn] = '\0';
    for (size_t i = 0; i < bn; i++) {
        char c = bucket[i];
        CL_ENSURE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.', CL_ERR_FORMAT,
                  "%s '%.256s': a bucket name is lower-case letters, digits, '-' and '.'", what, uri);
    }
    return CL_OK;
}

/* SageMaker's TrainingJobName pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (CreateTrainingJob, API
 * Reference): it becomes a path in S3, so nothing else gets in. */
static bool doc_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

static CL_MUST_USE cl_status doc_channels(json_t *root, job_doc *d)
{
    json_t *in = json_object_get(root, "InputDataConfig");
    CL_ENSURE(json_is_array(in) && json_array_size(in) >= 1 && json_array_size(in) <= JOB_MAX_CHANNELS, CL_ERR_FORMAT,
              "the job document's InputDataConfig must be a list of 1 to %d channels", JOB_MAX_CHANNELS);
    size_t i;
    json_t *ch;
    json_array_foreach(in, i, ch)
    {
        job_channel *c = &d->channels[i];
        const char *uri = NULL;
        CL_ENSURE(json_is_object(ch), CL_ERR_FORMAT, "InputDataConfig[%zu] must be an object", i);
        CL_GUARD(doc_string(ch, "InputDataConfig[].", "ChannelName", true, &c->name));
        /* The flat form the runner's contract gives, or SageMaker's DataSource.S3DataSource. */
        json_t *src = json_object_get(json_object_get(ch, "DataSource"), "S3DataSource");
        CL_GUARD(doc_string(src != NULL ? src : ch, "InputDataConfig[].", "S3Uri", true, &uri));
        CL_GUARD(doc_string(ch, "InputDataConfig[].", "ContentType", false, &c->content_type));
        CL_GUARD(job_s3_uri_parse(uri, "InputDataConfig[].S3Uri", c->bucket, c->prefix));
        for (size_t k = 0; k < i; k++)
            CL_ENSURE(strcmp(d->channels[k].name, c->name) != 0, CL_ERR_FORMAT,
                      "InputDataConfig names the channel '%.64s' twice", c->name);
    }
    d->n_channels = json_array_size(in);
    return CL_OK;
}

static CL_MUST_USE cl_status doc_hyperparameters(json_t *root, job_doc *d)
{
    json_t *hp = json_object_get(root, "HyperParameters");
    if (hp == NULL || json_is_null(hp)) return CL_OK;
    CL_ENSURE(json_is_object(hp) && json_object_size(hp) <= JOB_MAX_HYPERPARAMETERS, CL_ERR_FORMAT,
              "the job document's HyperParameters must be an object of at most %d strings", JOB_MAX_HYPERPARAMETERS);
    const char *k;
    json_t *v;
    json_object_foreach(hp, k, v)
    {
        CL_ENSURE(json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v), CL_ERR_FORMAT,
                  "hyperparameter '%.64s' must be a string (SageMaker's HyperParameters are strings)", k);
        if (strcmp(k, "encrypted_data_key") == 0) {
            d->encrypted_data_key = json_string_value(v);
            continue;
        }
        d->hp_names[d->n_hp] = k;
        d->hp_values[d->n_hp] = json_string_value(v);
        d->n_hp++;
    }
    return CL_OK;
}

cl_status job_doc_parse(const uint8_t *p, size_t n, job_doc *d)
{
    json_error_t jerr;
    const char *out_path = NULL;
    char out_key[CL_S3_MAX_KEY + 1];
    memset(d, 0, sizeof(*d));
    CL_ENSURE(n <= JOB_DOC_MAX, CL_ERR_LIMIT, "the job document is over %zu bytes", JOB_DOC_MAX);
    d->root = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);
    /* jerr.text may quote the document, which holds the secret: not repeated. */
    CL_ENSURE(d->root != NULL && json_is_object(d->root), CL_ERR_FORMAT,
              "the job document is not a JSON object (line %d, column %d)", jerr.line, jerr.column);
    json_t *r = d->root;
    CL_GUARD(doc_string(r, "", "TrainingJobName", true, &d->name));
    CL_ENSURE(doc_name_ok(d->name), CL_ERR_FORMAT,
              "TrainingJobName must be 1 to 63 letters, digits and inner hyphens (SageMaker's pattern)");
    CL_GUARD(doc_string(r, "", "Region", false, &d->region));
    if (d->region == NULL) d->region = "us-east-1";
    CL_GUARD(doc_hyperparameters(r, d));
    CL_GUARD(doc_channels(r, d));
    json_t *o = json_object_get(r, "OutputDataConfig");
    CL_ENSURE(json_is_object(o), CL_ERR_FORMAT, "the job document has no OutputDataConfig object");
    CL_GUARD(doc_string(o, "OutputDataConfig.", "S3OutputPath", true, &out_path));
    CL_GUARD(doc_string(o, "OutputDataConfig.", "KmsKeyId", true, &d->kms_key_id));
    CL_GUARD(job_s3_uri_parse(out_path, "OutputDataConfig.S3OutputPath", d->out_bucket, out_key));
    size_t kl = strlen(out_key);
    CL_ENSURE(kl + 100 < CL_S3_MAX_KEY, CL_ERR_FORMAT, "OutputDataConfig.S3OutputPath's key is too long");
    (void)snprintf(d->out_prefix, sizeof(d->out_prefix), "%s%s", out_key, kl > 0 && out_key[kl - 1] != '/' ? "/" : "");
    json_t *cr = json_object_get(r, "Credentials");
    CL_ENSURE(json_is_object(cr), CL_ERR_FORMAT, "the job document has no Credentials object (the role's session)");
    CL_GUARD(doc_string(cr, "Credentials.", "AccessKeyId", true, &d->access_key_id));
    CL_GUARD(doc_string(cr, "Credentials.", "SecretAccessKey", true, &d->secret_access_key));
    CL_GUARD(doc_string(cr, "Credentials.", "SessionToken", false, &d->session_token));
    json_t *ep = json_object_get(r, "Endpoints");
    CL_ENSURE(json_is_object(ep), CL_ERR_FORMAT, "the job document has no Endpoints object");
    CL_GUARD(doc_string(ep, "Endpoints.", "kms", true, &d->kms_endpoint));
    CL_GUARD(doc_string(ep, "Endpoints.", "s3", true, &d->s3_endpoint));
    json_t *vp = json_object_get(r, "VsockPorts");
    CL_ENSURE(json_is_object(vp), CL_ERR_FORMAT, "the job document has no VsockPorts (the runner adds them)");
    CL_GUARD(doc_port(vp, "kms", &d->kms_vsock_port));
    CL_GUARD(doc_port(vp, "s3", &d->s3_vsock_port));
    CL_GUARD(doc_string(r, "", "CaFile", false, &d->ca_file));
    json_t *mem = json_object_get(r, "MemoryMiB");
    CL_ENSURE(json_is_integer(mem) && json_integer_value(mem) >= 16 && json_integer_value(mem) <= (1LL << 20),
              CL_ERR_FORMAT, "the job document's MemoryMiB must be the enclave's memory, 16 to 1048576 (MiB)");
    d->memory_mib = (uint64_t)json_integer_value(mem);
    return CL_OK;
}

/* jansson's strings are the library's (const): the secret's bytes are wiped in place before
 * they go back to the heap. */
static void doc_wipe(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_string(v)) cl_memzero(CL_UNCONST(json_string_value(v)), json_string_length(v));
}

void job_doc_free(job_doc *d)
{
    if (d->root != NULL) {
        json_t *cr = json_object_get(d->root, "Credentials");
        doc_wipe(cr, "SecretAccessKey");
        doc_wipe(cr, "SessionToken");
        doc_wipe(cr, "AccessKeyId");
        doc_wipe(json_object_get(d->root, "HyperParameters"), "encrypted_data_key");
        json_decref(d->root);
    }
    memset(d, 0, sizeof(*d));
}
