/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: SageMaker's training-job operations (sagemaker.h). Shapes, bounds and error
 * names are botocore's sagemaker/2017-07-24 service-2.json; what each field does here, and which
 * are refused or ignored, is docs/sagemaker.md.
 */
#include "sagemaker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cloister/buf.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "authorize.h"
#include "iam.h"
#include "identity.h"
#include "sagemaker_job.h"
#include "sagemaker_run.h"

#define KMS_SM_SERVICE "sagemaker.amazonaws.com"
/* CreateTrainingJob's StoppingCondition.MaxRuntimeInSeconds: SageMaker's default one day, its
 * maximum 28 days (SageMaker Developer Guide, "StoppingCondition"). */
#define KMS_SM_MAX_RUNTIME_DEFAULT 86400
#define KMS_SM_MAX_RUNTIME_MAX (28LL * 86400)
/* STS AssumeRole: sessions of 900 s to 12 h. */
#define KMS_SM_SESSION_MIN 900
#define KMS_SM_SESSION_MAX 43200
#define KMS_SM_LIST_MAX 100000 /* jobs of an account ListTrainingJobs reads, at most */

#define SM_FAIL(c, exc, ...) \
    do { \
        (c)->exception = (exc); \
        CL_FAIL(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)
#define SM_FAIL_GOTO(c, exc, ...) \
    do { \
        (c)->exception = (exc); \
        CL_FAIL_GOTO(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)
#define SM_VALIDATION "ValidationException"

/*
 * The memory of the ml.* instance types of the model's TrainingInstanceType enum: the EC2
 * instance type's memory (Amazon EC2 Instance Types, "Specifications"; SageMaker's ml.X is EC2's
 * X), in MiB. The enclave of a job gets this much, at most training.max_memory_mib.
 */
static const struct {
    const char *type;
    uint64_t mib;
} kms_sm_instances[] = {
    {"ml.m4.xlarge", 16384},      {"ml.m4.2xlarge", 32768},     {"ml.m4.4xlarge", 65536},
    {"ml.m4.10xlarge", 163840},   {"ml.m4.16xlarge", 262144},   {"ml.m5.large", 8192},
    {"ml.m5.xlarge", 16384},      {"ml.m5.2xlarge", 32768},     {"ml.m5.4xlarge", 65536},
    {"ml.m5.12xlarge", 196608},   {"ml.m5.24xlarge", 393216},   {"ml.c4.xlarge", 7680},
    {"ml.c4.2xlarge", 15360},     {"ml.c4.4xlarge", 30720},     {"ml.c4.8xlarge", 61440},
    {"ml.c5.xlarge", 8192},       {"ml.c5.2xlarge", 16384},     {"ml.c5.4xlarge", 32768},
    {"ml.c5.9xlarge", 73728},     {"ml.c5.18xlarge", 147456},   {"ml.c5n.xlarge", 10752},
    {"ml.c5n.2xlarge", 21504},    {"ml.c5n.4xlarge", 43008},    {"ml.c5n.9xlarge", 98304},
    {"ml.c5n.18xlarge", 196608},  {"ml.g4dn.xlarge", 16384},    {"ml.g4dn.2xlarge", 32768},
    {"ml.g4dn.4xlarge", 65536},   {"ml.g4dn.8xlarge", 131072},  {"ml.g4dn.12xlarge", 196608},
    {"ml.g4dn.16xlarge", 262144}, {"ml.g5.xlarge", 16384},      {"ml.g5.2xlarge", 32768},
    {"ml.g5.4xlarge", 65536},     {"ml.g5.8xlarge", 131072},    {"ml.g5.12xlarge", 196608},
    {"ml.g5.16xlarge", 262144},   {"ml.g5.24xlarge", 393216},   {"ml.g5.48xlarge", 786432},
    {"ml.p2.xlarge", 62464},      {"ml.p2.8xlarge", 499712},    {"ml.p2.16xlarge", 749568},
    {"ml.p3.2xlarge", 62464},     {"ml.p3.8xlarge", 249856},    {"ml.p3.16xlarge", 499712},
    {"ml.p3dn.24xlarge", 786432}, {"ml.p4d.24xlarge", 1179648}, {"ml.trn1.2xlarge", 32768},
    {"ml.trn1.32xlarge", 524288},
};

/* --- validation -------------------------------------------------------------------------- */

/* A request member's refusal or silence: members of the model this server does not use. */
typedef struct kms_sm_member {
    const char *name;
    const char *refused; /* NULL: accepted (used or ignored); else why it is refused */
} kms_sm_member;

/* Refuses members of o not in known, or known and refused, naming the member (where.NAME). */
static CL_MUST_USE cl_status kms_sm_members(kms_json_call *c, const json_t *o, const char *where,
                                            const kms_sm_member *known, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(CL_UNCONST(o), key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(known[i].name, key) != 0) i++;
        if (i == n)
            SM_FAIL(c, SM_VALIDATION, "%s%s is not a member of SageMaker's CreateTrainingJob request", where, key);
        if (known[i].refused != NULL && !json_is_null(v) && !(json_is_false(v)))
            SM_FAIL(c, SM_VALIDATION, "%s%s is not supported by this server: %s", where, key, known[i].refused);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status kms_sm_object(kms_json_call *c, const json_t *o, const char *name, bool required,
                                           json_t **out)
{
    *out = json_object_get(o, name);
    if (*out == NULL && required)
        SM_FAIL(c, SM_VALIDATION,
                "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
                name);
    if (*out != NULL && !json_is_object(*out))
        SM_FAIL(c, SM_VALIDATION, "%s must be a structure (a JSON object)", name);
    return CL_OK;
}

/* A string member of o, length min..max; NULL when absent and not required. */
static CL_MUST_USE cl_status kms_sm_string(kms_json_call *c, const json_t *o, const char *name, size_t min, size_t max,
                                           bool required, const char **out)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (v == NULL && !required) return CL_OK;
    if (v == NULL)
        SM_FAIL(c, SM_VALIDATION,
                "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
                name);
    if (!json_is_string(v)) SM_FAIL(c, SM_VALIDATION, "%s must be a string", name);
    size_t len = json_string_length(v);
    if (len < min || len > max || strlen(json_string_value(v)) != len)
        SM_FAIL(c, SM_VALIDATION,
                "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
                "between %zu and %zu",
                name, min, max);
    *out = json_string_value(v);
    return CL_OK;
}

/* TrainingJobName: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}, 1..63 (the model's pattern). */
static bool kms_sm_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > KMS_JOB_NAME_MAX || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
    }
    return true;
}

static CL_MUST_USE cl_status kms_sm_job_name(kms_json_call *c, const char **out)
{
    CL_GUARD(kms_sm_string(c, c->req, "TrainingJobName", 1, KMS_JOB_NAME_MAX, true, out));
    if (!kms_sm_name_ok(*out))
        SM_FAIL(c, SM_VALIDATION,
                "1 validation error detected: Value '%s' at 'trainingJobName' failed to satisfy constraint: Member "
                "must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
                *out);
    return CL_OK;
}

/* s3://BUCKET/KEY-OR-PREFIX (the model allows https:// too: refused here, the enclave reads S3
 * by bucket and key through this server's S3). */
static CL_MUST_USE cl_status kms_sm_s3_uri(kms_json_call *c, const char *what, const char *uri)
{
    if (strncmp(uri, "s3://", 5) != 0 || uri[5] == '\0' || uri[5] == '/')
        SM_FAIL(c, SM_VALIDATION, "%s '%.1024s' must be an S3 URI: s3://BUCKET/PREFIX", what, uri);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_sm_algorithm(kms_json_call *c, const json_t *a, const kms_training_config *cfg,
                                              char *image, size_t cap)
{
    static const kms_sm_member members[] = {
        {"TrainingImage", NULL},
        {"TrainingInputMode", NULL},
        {"MetricDefinitions", NULL},                /* ignored: the runner reports its metrics itself */
        {"EnableSageMakerMetricsTimeSeries", NULL}, /* ignored */
        {"AlgorithmName", "name the enclave image in TrainingImage"},
        {"ContainerEntrypoint", "the enclave image runs its own program"},
        {"ContainerArguments", "the enclave image runs its own program"},
        {"TrainingImageConfig", "images are files of the training images directory"},
    };
    CL_GUARD(kms_sm_members(c, a, "AlgorithmSpecification.", members, sizeof(members) / sizeof(members[0])));
    const char *mode, *img;
    CL_GUARD(kms_sm_string(c, a, "TrainingInputMode", 1, 16, true, &mode));
    if (strcmp(mode, "File") != 0)
        SM_FAIL(c, SM_VALIDATION,
                "AlgorithmSpecification.TrainingInputMode %s is not supported by this server: give File (the enclave "
                "reads its inputs whole)",
                mode);
    CL_GUARD(kms_sm_string(c, a, "TrainingImage", 0, 255, false, &img));
    if (img == NULL || img[0] == '\0')
        SM_FAIL(c, SM_VALIDATION,
                "AlgorithmSpecification.TrainingImage is required here: the file name of a Cloister enclave image in "
                "the training images directory%s%s",
                cfg->images_dir[0] ? " " : "", cfg->images_dir);
    if (cfg->images_dir[0] == '\0')
        SM_FAIL(c, SM_VALIDATION,
                "AlgorithmSpecification.TrainingImage %s: this server has no training images directory "
                "(training.images_dir of cloister-kms's configuration): training jobs cannot run here",
                img);
    if (strchr(img, '/') != NULL || strstr(img, "..") != NULL || img[0] == '.')
        SM_FAIL(c, SM_VALIDATION,
                "AlgorithmSpecification.TrainingImage '%s' must be the file name of an enclave image in %s (no '/', "
                "no '..', not starting with '.')",
                img, cfg->images_dir);
    int n = snprintf(image, cap, "%s/%s", cfg->images_dir, img);
    struct stat st;
    if (n <= 0 || (size_t)n >= cap || stat(image, &st) != 0 || !S_ISREG(st.st_mode))
        SM_FAIL(c, SM_VALIDATION,
                "AlgorithmSpecification.TrainingImage '%s': there is no such enclave image file in %s (the training "
                "images directory)",
                img, cfg->images_dir);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_sm_channel(kms_json_call *c, const json_t *ch, size_t i)
{
    static const kms_sm_member members[] = {
        {"ChannelName", NULL},
        {"DataSource", NULL},
        {"ContentType", NULL},
        {"CompressionType", NULL},
        {"RecordWrapperType", NULL},
        {"InputMode", NULL},
        {"ShuffleConfig", "the trainer reads a channel's objects whole and splits them itself"},
    };
    static const kms_sm_member ds_members[] = {
        {"S3DataSource", NULL},
        {"FileSystemDataSource", "the enclave reads its inputs from S3 only"},
    };
    static const kms_sm_member s3_members[] = {
        {"S3DataType", NULL},
        {"S3Uri", NULL},
        {"S3DataDistributionType", NULL}, /* one instance: FullyReplicated and ShardedByS3Key are the same */
        {"AttributeNames", "augmented manifests are not read here"},
        {"InstanceGroupNames", "a job runs on one instance here"},
    };
    char where[64];
    (void)snprintf(where, sizeof(where), "InputDataConfig[%zu].", i);
    if (!json_is_object(ch)) SM_FAIL(c, SM_VALIDATION, "%s must be a structure", where);
    CL_GUARD(kms_sm_members(c, ch, where, members, sizeof(members) / sizeof(members[0])));
    const char *name, *v;
    CL_GUARD(kms_sm_string(c, ch, "ChannelName", 1, 64, true, &name));
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(name))
        SM_FAIL(c, SM_VALIDATION, "%sChannelName '%s' must satisfy the pattern [A-Za-z0-9\\.\\-_]+", where, name);
    CL_GUARD(kms_sm_string(c, ch, "ContentType", 0, 256, false, &v));
    CL_GUARD(kms_sm_string(c, ch, "CompressionType", 1, 16, false, &v));
    if (v != NULL && strcmp(v, "None") != 0)
        SM_FAIL(c, SM_VALIDATION, "%sCompressionType %s is not supported by this server: give None", where, v);
    CL_GUARD(kms_sm_string(c, ch, "RecordWrapperType", 1, 16, false, &v));
    if (v != NULL && strcmp(v, "None") != 0)
        SM_FAIL(c, SM_VALIDATION, "%sRecordWrapperType %s is not supported by this server: give None", where, v);
    CL_GUARD(kms_sm_string(c, ch, "InputMode", 1, 16, false, &v));
    if (v != NULL && strcmp(v, "File") != 0)
        SM_FAIL(c, SM_VALIDATION, "%sInputMode %s is not supported by this server: give File", where, v);
    json_t *ds, *s3;
    CL_GUARD(kms_sm_object(c, ch, "DataSource", true, &ds));
    (void)snprintf(where, sizeof(where), "InputDataConfig[%zu].DataSource.", i);
    CL_GUARD(kms_sm_members(c, ds, where, ds_members, 2));
    CL_GUARD(kms_sm_object(c, ds, "S3DataSource", true, &s3));
    (void)snprintf(where, sizeof(where), "InputDataConfig[%zu].DataSource.S3DataSource.", i);
    CL_GUARD(kms_sm_members(c, s3, where, s3_members, sizeof(s3_members) / sizeof(s3_members[0])));
    CL_GUARD(kms_sm_string(c, s3, "S3DataType", 1, 32, true, &v));
    if (strcmp(v, "S3Prefix") != 0)
        SM_FAIL(c, SM_VALIDATION,
                "%sS3DataType %s is not supported by this server: give S3Prefix (every object under the URI, or the "
                "one object it names)",
                where, v);
    CL_GUARD(kms_sm_string(c, s3, "S3DataDistributionType", 1, 32, false, &v));
    if (v != NULL && strcmp(v, "FullyReplicated") != 0 && strcmp(v, "ShardedByS3Key") != 0)
        SM_FAIL(c, SM_VALIDATION, "%sS3DataDistributionType must be FullyReplicated or ShardedByS3Key", where);
    CL_GUARD(kms_sm_string(c, s3, "S3Uri", 1, 1024, true, &v));
    return kms_sm_s3_uri(c, "InputDataConfig's S3Uri", v);
}

static CL_MUST_USE cl_status kms_sm_hyperparameters(kms_json_call *c, const json_t *h)
{
    if (h == NULL) return CL_OK;
    if (!json_is_object(h)) SM_FAIL(c, SM_VALIDATION, "HyperParameters must be a map of strings to strings");
    if (json_object_size(h) > 100)
        SM_FAIL(c, SM_VALIDATION,
                "1 validation error detected: Value at 'hyperParameters' failed to satisfy constraint: Member must "
                "have length less than or equal to 100");
    const char *k;
    json_t *v;
    json_object_foreach(CL_UNCONST(h), k, v)
    {
        if (strlen(k) > 256)
            SM_FAIL(c, SM_VALIDATION, "HyperParameters: a key of %zu characters; at most 256", strlen(k));
        if (!json_is_string(v) || json_string_length(v) > 2500 || strlen(json_string_value(v)) != json_string_length(v))
            SM_FAIL(c, SM_VALIDATION, "HyperParameters '%.256s': the value must be a string of at most 2500 characters",
                    k);
    }
    return CL_OK;
}

typedef struct kms_sm_job {
    const char *name, *role_arn;
    char image[KMS_PATH_MAX * 2];
    uint64_t memory_mib;
    int64_t max_runtime;
} kms_sm_job;

/* Checks the whole CreateTrainingJob request before anything happens. */
static CL_MUST_USE cl_status kms_sm_create_check(kms_json_call *c, const kms_training_config *cfg, kms_sm_job *o)
{
    static const kms_sm_member members[] = {
        {"TrainingJobName", NULL},
        {"HyperParameters", NULL},
        {"AlgorithmSpecification", NULL},
        {"RoleArn", NULL},
        {"InputDataConfig", NULL},
        {"OutputDataConfig", NULL},
        {"ResourceConfig", NULL},
        {"StoppingCondition", NULL},
        {"Tags", NULL},                                  /* ignored: tags are not kept */
        {"EnableNetworkIsolation", NULL},                /* ignored: an enclave reaches only its endpoints */
        {"EnableInterContainerTrafficEncryption", NULL}, /* ignored: one instance, no traffic between */
        {"ExperimentConfig", NULL},                      /* ignored: no SageMaker Experiments here */
        {"VpcConfig", "the enclave reaches this server's endpoints through its host, not a VPC"},
        {"EnableManagedSpotTraining", "there are no spot instances here"},
        {"CheckpointConfig", "a job is not resumed from checkpoints here"},
        {"DebugHookConfig", "no SageMaker Debugger here"},
        {"DebugRuleConfigurations", "no SageMaker Debugger here"},
        {"TensorBoardOutputConfig", "no TensorBoard output here"},
        {"ProfilerConfig", "no SageMaker Profiler here"},
        {"ProfilerRuleConfigurations", "no SageMaker Profiler here"},
        {"Environment", "the enclave image's program takes HyperParameters, not environment variables"},
        {"RetryStrategy", "a failed job is not retried here"},
        {"RemoteDebugConfig", "no remote debugging of an enclave"},
        {"InfraCheckConfig", "no infrastructure checks here"},
        {"SessionChainingConfig", "no session chaining here"},
    };
    static const kms_sm_member out_members[] = {
        {"S3OutputPath", NULL},
        {"KmsKeyId", NULL},
        {"CompressionType", NULL}, /* ignored: the sealed model is written as it is */
    };
    static const kms_sm_member res_members[] = {
        {"InstanceType", NULL},
        {"InstanceCount", NULL},
        {"VolumeSizeInGB", NULL}, /* ignored: the enclave has no volume */
        {"VolumeKmsKeyId", NULL}, /* ignored: no volume */
        {"InstanceGroups", "a job runs in one enclave here"},
        {"KeepAlivePeriodInSeconds", "there are no warm pools here"},
    };
    static const kms_sm_member stop_members[] = {
        {"MaxRuntimeInSeconds", NULL},
        {"MaxWaitTimeInSeconds", "there are no spot instances to wait for here"},
        {"MaxPendingTimeInSeconds", "a job starts at once or is refused here"},
    };
    CL_GUARD(kms_sm_members(c, c->req, "", members, sizeof(members) / sizeof(members[0])));
    CL_GUARD(kms_sm_job_name(c, &o->name));
    json_t *alg, *out, *res, *stop;
    CL_GUARD(kms_sm_object(c, c->req, "AlgorithmSpecification", true, &alg));
    CL_GUARD(kms_sm_algorithm(c, alg, cfg, o->image, sizeof(o->image)));
    CL_GUARD(kms_sm_string(c, c->req, "RoleArn", 20, 2048, true, &o->role_arn));
    char prefix[64];
    (void)snprintf(prefix, sizeof(prefix), "arn:aws:iam::%s:role/", c->principal->account);
    if (strncmp(o->role_arn, prefix, strlen(prefix)) != 0)
        SM_FAIL(c, SM_VALIDATION, "RoleArn %s must be a role of the caller's account %s (arn:aws:iam::%s:role/NAME)",
                o->role_arn, c->principal->account, c->principal->account);
    CL_GUARD(kms_sm_hyperparameters(c, json_object_get(c->req, "HyperParameters")));
    json_t *in = json_object_get(c->req, "InputDataConfig");
    if (in != NULL) {
        if (!json_is_array(in) || json_array_size(in) < 1 || json_array_size(in) > 20)
            SM_FAIL(c, SM_VALIDATION, "InputDataConfig must be a list of 1 to 20 channels");
        for (size_t i = 0; i < json_array_size(in); i++) {
            CL_GUARD(kms_sm_channel(c, json_array_get(in, i), i));
            for (size_t j = 0; j < i; j++)
                if (strcmp(json_string_value(json_object_get(json_array_get(in, i), "ChannelName")),
                           json_string_value(json_object_get(json_array_get(in, j), "ChannelName"))) == 0)
                    SM_FAIL(c, SM_VALIDATION, "InputDataConfig: the channel name %s is given twice",
                            json_string_value(json_object_get(json_array_get(in, i), "ChannelName")));
        }
    }
    CL_GUARD(kms_sm_object(c, c->req, "OutputDataConfig", true, &out));
    CL_GUARD(kms_sm_members(c, out, "OutputDataConfig.", out_members, sizeof(out_members) / sizeof(out_members[0])));
    const char *s;
    CL_GUARD(kms_sm_string(c, out, "S3OutputPath", 1, 1024, true, &s));
    CL_GUARD(kms_sm_s3_uri(c, "OutputDataConfig.S3OutputPath", s));
    CL_GUARD(kms_sm_string(c, out, "KmsKeyId", 0, 2048, false, &s));
    if (s == NULL || s[0] == '\0')
        SM_FAIL(c, SM_VALIDATION,
                "OutputDataConfig.KmsKeyId is required here: the model is sealed under this KMS key (its ARN, id or "
                "alias) before it leaves the enclave, and nothing is written in plaintext");
    CL_GUARD(kms_sm_object(c, c->req, "ResourceConfig", true, &res));
    CL_GUARD(kms_sm_members(c, res, "ResourceConfig.", res_members, sizeof(res_members) / sizeof(res_members[0])));
    json_t *count = json_object_get(res, "InstanceCount");
    if (count != NULL && (!json_is_integer(count) || json_integer_value(count) != 1))
        SM_FAIL(c, SM_VALIDATION,
                "ResourceConfig.InstanceCount must be 1 here: a job runs in one enclave (distributed training is not "
                "supported)");
    const char *type;
    CL_GUARD(kms_sm_string(c, res, "InstanceType", 1, 64, false, &type));
    if (type == NULL)
        SM_FAIL(c, SM_VALIDATION,
                "ResourceConfig.InstanceType is required here: it sets the enclave's memory (docs/sagemaker.md)");
    size_t i = 0;
    while (i < sizeof(kms_sm_instances) / sizeof(kms_sm_instances[0]) && strcmp(kms_sm_instances[i].type, type) != 0)
        i++;
    if (i == sizeof(kms_sm_instances) / sizeof(kms_sm_instances[0]))
        SM_FAIL(c, SM_VALIDATION,
                "1 validation error detected: Value '%.64s' at 'resourceConfig.instanceType' failed to satisfy "
                "constraint: Member must satisfy enum value set: ml.m5.large, ml.m5.xlarge, ... (the ml.* types of "
                "docs/sagemaker.md)",
                type);
    o->memory_mib = kms_sm_instances[i].mib < cfg->max_memory_mib ? kms_sm_instances[i].mib : cfg->max_memory_mib;
    CL_GUARD(kms_sm_object(c, c->req, "StoppingCondition", true, &stop));
    CL_GUARD(
        kms_sm_members(c, stop, "StoppingCondition.", stop_members, sizeof(stop_members) / sizeof(stop_members[0])));
    json_t *mr = json_object_get(stop, "MaxRuntimeInSeconds");
    o->max_runtime = KMS_SM_MAX_RUNTIME_DEFAULT;
    if (mr != NULL) {
        if (!json_is_integer(mr) || json_integer_value(mr) < 1 || json_integer_value(mr) > KMS_SM_MAX_RUNTIME_MAX)
            SM_FAIL(c, SM_VALIDATION, "StoppingCondition.MaxRuntimeInSeconds must be 1 to %lld (28 days)",
                    KMS_SM_MAX_RUNTIME_MAX);
        o->max_runtime = json_integer_value(mr);
    }
    return CL_OK;
}

/* --- authorization ------------------------------------------------------------------------- */

static void kms_sm_job_arn(const kms_json_call *c, const char *name, char out[KMS_ARN_MAX + 1])
{
    (void)snprintf(out, KMS_ARN_MAX + 1, "arn:aws:sagemaker:%s:%s:training-job/%s", c->region, c->principal->account,
                   name);
}

static CL_MUST_USE cl_status kms_sm_authorize(kms_json_call *c, const char *action, const char *resource)
{
    kms_decision d;
    CL_GUARD(kms_authorize(c->kms, c->principal, action, resource, NULL, c->env, &d));
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    SM_FAIL(c, "AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s because %s",
            c->principal->arn, action, resource,
            d == KMS_DECISION_EXPLICIT_DENY ? "of an explicit deny in an identity-based policy"
                                            : "no identity-based policy allows the action");
}

/* iam:PassRole on the role, with iam:PassedToService sagemaker.amazonaws.com (IAM User Guide,
 * "Granting a user permissions to pass a role to an AWS service"). */
static CL_MUST_USE cl_status kms_sm_pass_role(kms_json_call *c, const char *role_arn)
{
    kms_policy_request r = {
        .action = "iam:PassRole", .resource = role_arn, .env = c->env, .passed_to_service = KMS_SM_SERVICE};
    kms_decision d;
    CL_GUARD(kms_identity_decide(c->kms, c->principal, &r, &d, NULL, 0));
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    SM_FAIL(c, "AccessDeniedException",
            "User: %s is not authorized to perform: iam:PassRole on resource: %s because %s", c->principal->arn,
            role_arn,
            d == KMS_DECISION_EXPLICIT_DENY ? "of an explicit deny in an identity-based policy"
                                            : "no identity-based policy allows the action");
}

/* --- operations ---------------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_sm_set(json_t *o, const char *key, json_t *v)
{
    CL_ENSURE(v != NULL && json_object_set_new(o, key, v) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

/* The stored document of a new job: its Describe answer as it starts. */
static CL_MUST_USE cl_status kms_sm_new_doc(kms_json_call *c, const kms_sm_job *o, const char *arn, double now,
                                            json_t **out)
{
    static const char *const echoed[] = {
        "AlgorithmSpecification", "RoleArn",         "InputDataConfig",        "OutputDataConfig",
        "ResourceConfig",         "HyperParameters", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption"};
    json_t *d = json_object();
    CL_ENSURE(d != NULL, CL_ERR_NOMEM, "out of memory");
    *out = d;
    for (size_t i = 0; i < sizeof(echoed) / sizeof(echoed[0]); i++) {
        json_t *v = json_object_get(c->req, echoed[i]);
        if (v != NULL) CL_GUARD(kms_sm_set(d, echoed[i], json_deep_copy(v)));
    }
    CL_GUARD(kms_sm_set(d, "TrainingJobName", json_string(o->name)));
    CL_GUARD(kms_sm_set(d, "TrainingJobArn", json_string(arn)));
    CL_GUARD(kms_sm_set(d, "TrainingJobStatus", json_string("InProgress")));
    CL_GUARD(kms_sm_set(d, "StoppingCondition", json_pack("{s:I}", "MaxRuntimeInSeconds", (json_int_t)o->max_runtime)));
    CL_GUARD(kms_sm_set(d, "CreationTime", json_real(now)));
    CL_GUARD(kms_sm_set(d, "cl:LogEvents", json_integer(0)));
    CL_GUARD(kms_sm_set(d, "cl:MemoryMiB", json_integer((json_int_t)o->memory_mib)));
    return kms_job_transition(d, "Starting", "Starting the training enclave", now);
}

typedef struct kms_sm_fail_arg {
    const char *reason;
} kms_sm_fail_arg;

static CL_MUST_USE cl_status kms_sm_fail_edit(void *arg, json_t *doc)
{
    kms_sm_fail_arg *a = arg;
    return kms_job_finish(doc, "Failed", "Failed", a->reason, kms_job_now());
}

static CL_MUST_USE cl_status kms_sm_create(kms_json_call *c)
{
    cl_status rc = CL_OK;
    kms_training *t = c->kms->training;
    kms_sm_job o;
    memset(&o, 0, sizeof(o));
    kms_principal session;
    memset(&session, 0, sizeof(session));
    cl_buf token;
    cl_buf_init_secret(&token, 8192);
    json_t *doc = NULL;
    bool reserved = false;
    char arn[KMS_ARN_MAX + 1];
    CL_ENSURE_GOTO(t != NULL, CL_ERR_INTERNAL, "the training supervisor is not running");
    CL_GUARD_GOTO(kms_sm_create_check(c, kms_training_settings(t), &o));
    kms_sm_job_arn(c, o.name, arn);
    (void)snprintf(c->resource, sizeof(c->resource), "%s", arn);
    CL_GUARD_GOTO(kms_sm_authorize(c, "sagemaker:CreateTrainingJob", arn));
    CL_GUARD_GOTO(kms_sm_pass_role(c, o.role_arn));
    rc = kms_training_reserve(t);
    if (rc == CL_ERR_LIMIT) c->exception = "ResourceLimitExceeded";
    CL_GUARD_GOTO(rc);
    reserved = true;
    /* The session covers the job's whole run and the supervisor's grace period, within STS' 12 h;
     * a job that runs longer finds its credentials expired (docs/sagemaker.md, "The role"). */
    int64_t duration = o.max_runtime + kms_training_settings(t)->stop_grace + 300;
    if (duration < KMS_SM_SESSION_MIN) duration = KMS_SM_SESSION_MIN;
    if (duration > KMS_SM_SESSION_MAX) duration = KMS_SM_SESSION_MAX;
    /* The session is named after the job (RoleSessionName: 2..64 characters; a job name has 1..63). */
    char session_name[KMS_SESSION_NAME_MAX + 1];
    (void)snprintf(session_name, sizeof(session_name), "%s%s", o.name, strlen(o.name) < 2 ? "-job" : "");
    rc = kms_sts_assume_role_as_service(c->kms, KMS_SM_SERVICE, o.role_arn, session_name, duration, c->now, c->env,
                                        &session);
    if (rc == CL_ERR_DENIED) c->exception = SM_VALIDATION;
    CL_GUARD_GOTO(rc);
    /* The service's AssumeRole has its own line, as CloudTrail records SageMaker's (principal the
     * service, resource the role), made durable with the request's own line. */
    if (c->kms->audit != NULL) {
        cl_audit_event ev = {.time = c->now,
                             .request_id = c->request_id,
                             .principal = KMS_SM_SERVICE,
                             .operation = "sts:AssumeRole",
                             .outcome = "ok",
                             .resource = o.role_arn};
        uint64_t end = 0;
        CL_GUARD_GOTO(cl_audit_write(c->kms->audit, &ev, &end));
    }
    CL_GUARD_GOTO(kms_session_token_seal(c->kms, &session, &token));
    double now = kms_job_now();
    CL_GUARD_GOTO(kms_sm_new_doc(c, &o, arn, now, &doc));
    rc = kms_job_save(c->kms->store, c->principal->account, o.name, doc, KMS_IAM_CREATE);
    if (rc == CL_ERR_EXISTS) {
        cl_error_clear();
        SM_FAIL_GOTO(c, "ResourceInUse",
                     "Training job names must be unique within an AWS account and region, and a training job with "
                     "this name already exists (%s)",
                     arn);
    }
    CL_GUARD_GOTO(rc);
    kms_job_spec spec = {.account = c->principal->account,
                         .name = o.name,
                         .region = c->region,
                         .image_path = o.image,
                         .memory_mib = o.memory_mib,
                         .max_runtime = o.max_runtime,
                         .request = c->req,
                         .session = &session,
                         .session_token = cl_buf_cstr(&token)};
    reserved = false; /* launch takes the slot, or gives it back */
    if (kms_training_launch(t, &spec) != CL_OK) {
        /* The job exists and fails, as a SageMaker job whose instance could not start. */
        kms_sm_fail_arg a = {.reason = cl_error_message()};
        char reason[KMS_JOB_FAILURE_REASON_MAX];
        (void)snprintf(reason, sizeof(reason), "%s", a.reason);
        a.reason = reason;
        cl_error_clear();
        CL_LOG_ERROR("training job %s of %s: %s", o.name, c->principal->account, reason);
        CL_GUARD_GOTO(kms_job_update(c->kms->store, c->principal->account, o.name, kms_sm_fail_edit, &a));
    }
    CL_GUARD_GOTO(kms_sm_set(c->resp, "TrainingJobArn", json_string(arn)));
out:
    if (reserved) kms_training_unreserve(t);
    json_decref(doc);
    cl_memzero(&session, sizeof(session));
    cl_buf_free(&token);
    return rc;
}

/* The job named by the request, authorized for action, into *doc. */
static CL_MUST_USE cl_status kms_sm_find(kms_json_call *c, const char *action, const char **name, json_t **doc)
{
    char arn[KMS_ARN_MAX + 1];
    CL_GUARD(kms_sm_job_name(c, name));
    kms_sm_job_arn(c, *name, arn);
    (void)snprintf(c->resource, sizeof(c->resource), "%s", arn);
    CL_GUARD(kms_sm_authorize(c, action, arn));
    cl_status rc = kms_job_load(c->kms->store, c->principal->account, *name, doc);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        SM_FAIL(c, "ResourceNotFound", "Requested resource not found.");
    }
    return rc;
}

static CL_MUST_USE cl_status kms_sm_describe(kms_json_call *c)
{
    const char *name;
    json_t *doc = NULL;
    CL_GUARD(kms_sm_find(c, "sagemaker:DescribeTrainingJob", &name, &doc));
    json_t *pub = kms_job_public(doc);
    json_decref(doc);
    CL_ENSURE(pub != NULL, CL_ERR_NOMEM, "out of memory");
    json_decref(c->resp);
    c->resp = pub;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_sm_stop_edit(void *arg, json_t *doc)
{
    kms_json_call *c = arg;
    const char *st = json_string_value(json_object_get(doc, "TrainingJobStatus"));
    if (st == NULL || strcmp(st, "InProgress") != 0)
        SM_FAIL(c, SM_VALIDATION, "The request was rejected because the training job is in status %s.",
                st != NULL ? st : "unknown");
    CL_GUARD(kms_sm_set(doc, "TrainingJobStatus", json_string("Stopping")));
    return kms_job_transition(doc, "Stopping", "Stopping the training job", kms_job_now());
}

static CL_MUST_USE cl_status kms_sm_stopped_edit(void *arg, json_t *doc)
{
    (void)arg;
    return kms_job_finish(doc, "Stopped", "Stopped", NULL, kms_job_now());
}

static CL_MUST_USE cl_status kms_sm_stop(kms_json_call *c)
{
    const char *name;
    json_t *doc = NULL;
    CL_GUARD(kms_sm_find(c, "sagemaker:StopTrainingJob", &name, &doc));
    json_decref(doc);
    CL_GUARD(kms_job_update(c->kms->store, c->principal->account, name, kms_sm_stop_edit, c));
    if (c->kms->training == NULL || kms_training_stop_job(c->kms->training, c->principal->account, name) != CL_OK) {
        /* No runner of this server runs it (it ended meanwhile): it is stopped. */
        cl_error_clear();
        CL_GUARD(kms_job_update(c->kms->store, c->principal->account, name, kms_sm_stopped_edit, NULL));
    }
    return CL_OK;
}

/* --- ListTrainingJobs ------------------------------------------------------------------------ */

typedef struct kms_sm_list {
    kms_json_call *c;
    json_t *jobs; /* summaries */
    char last[KMS_ACCOUNT_LEN + KMS_JOB_NAME_MAX + 2];
    const char *name_contains, *status;
    double created_after, created_before, modified_after, modified_before; /* 0: no bound */
} kms_sm_list;

static CL_MUST_USE cl_status kms_sm_list_row(void *arg, const char *key, const char *text)
{
    kms_sm_list *l = arg;
    (void)snprintf(l->last, sizeof(l->last), "%s", key);
    json_t *d = json_loads(text, 0, NULL);
    CL_ENSURE(json_is_object(d), CL_ERR_FORMAT, "the stored training job %s is not JSON; the store is damaged", key);
    const char *name = json_string_value(json_object_get(d, "TrainingJobName"));
    const char *st = json_string_value(json_object_get(d, "TrainingJobStatus"));
    double created = json_number_value(json_object_get(d, "CreationTime"));
    double modified = json_number_value(json_object_get(d, "LastModifiedTime"));
    bool keep = name != NULL && st != NULL && (l->name_contains == NULL || strcasestr(name, l->name_contains)) &&
                (l->status == NULL || strcmp(st, l->status) == 0) &&
                (l->created_after == 0 || created > l->created_after) &&
                (l->created_before == 0 || created < l->created_before) &&
                (l->modified_after == 0 || modified > l->modified_after) &&
                (l->modified_before == 0 || modified < l->modified_before);
    cl_status rc = CL_OK;
    if (keep) {
        static const char *const fields[] = {"TrainingJobName", "TrainingJobArn",   "CreationTime",
                                             "TrainingEndTime", "LastModifiedTime", "TrainingJobStatus",
                                             "SecondaryStatus"};
        json_t *sum = json_object();
        for (size_t i = 0; sum != NULL && i < sizeof(fields) / sizeof(fields[0]); i++) {
            json_t *v = json_object_get(d, fields[i]);
            if (v != NULL) (void)json_object_set(sum, fields[i], v);
        }
        if (sum == NULL || json_array_append_new(l->jobs, sum) != 0) rc = CL_RAISE(CL_ERR_NOMEM, "out of memory");
    }
    json_decref(d);
    return rc;
}

typedef struct kms_sm_order {
    const char *by;
    bool desc;
} kms_sm_order;

static int kms_sm_compare(const void *a, const void *b, void *arg)
{
    const kms_sm_order *o = arg;
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int r;
    if (strcmp(o->by, "Name") == 0 || strcmp(o->by, "Status") == 0) {
        const char *f = strcmp(o->by, "Name") == 0 ? "TrainingJobName" : "TrainingJobStatus";
        r = strcmp(json_string_value(json_object_get(x, f)), json_string_value(json_object_get(y, f)));
    } else {
        double tx = json_number_value(json_object_get(x, "CreationTime"));
        double ty = json_number_value(json_object_get(y, "CreationTime"));
        r = tx < ty ? -1 : tx > ty ? 1 : 0;
    }
    if (r == 0)
        r = strcmp(json_string_value(json_object_get(x, "TrainingJobName")),
                   json_string_value(json_object_get(y, "TrainingJobName")));
    return o->desc ? -r : r;
}

static CL_MUST_USE cl_status kms_sm_time(kms_json_call *c, const char *name, double *out)
{
    json_t *v = json_object_get(c->req, name);
    *out = 0;
    if (v == NULL) return CL_OK;
    if (!json_is_number(v)) SM_FAIL(c, SM_VALIDATION, "%s must be a timestamp (seconds since the epoch)", name);
    *out = json_number_value(v);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_sm_one_of(kms_json_call *c, const char *name, const char *const *set, const char *what,
                                           const char **out)
{
    CL_GUARD(kms_sm_string(c, c->req, name, 1, 64, false, out));
    for (size_t i = 0; *out != NULL && set[i] != NULL; i++)
        if (strcmp(*out, set[i]) == 0) return CL_OK;
    if (*out == NULL) return CL_OK;
    SM_FAIL(c, SM_VALIDATION,
            "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum "
            "value set: [%s]",
            *out, name, what);
}

static CL_MUST_USE cl_status kms_sm_list_jobs(kms_json_call *c)
{
    static const char *const statuses[] = {"InProgress", "Completed", "Failed", "Stopping", "Stopped", NULL};
    static const char *const sort_by[] = {"Name", "CreationTime", "Status", NULL};
    static const char *const orders[] = {"Ascending", "Descending", NULL};
    static const kms_sm_member members[] = {
        {"NextToken", NULL},
        {"MaxResults", NULL},
        {"CreationTimeAfter", NULL},
        {"CreationTimeBefore", NULL},
        {"LastModifiedTimeAfter", NULL},
        {"LastModifiedTimeBefore", NULL},
        {"NameContains", NULL},
        {"StatusEquals", NULL},
        {"SortBy", NULL},
        {"SortOrder", NULL},
        {"WarmPoolStatusEquals", "there are no warm pools here"},
        {"TrainingPlanArnEquals", "there are no training plans here"},
    };
    cl_status rc = CL_OK;
    kms_sm_list l = {.c = c, .jobs = json_array()};
    CL_ENSURE(l.jobs != NULL, CL_ERR_NOMEM, "out of memory");
    (void)snprintf(c->resource, sizeof(c->resource), "*");
    CL_GUARD_GOTO(kms_sm_members(c, c->req, "", members, sizeof(members) / sizeof(members[0])));
    CL_GUARD_GOTO(kms_sm_authorize(c, "sagemaker:ListTrainingJobs", "*"));
    CL_GUARD_GOTO(kms_sm_string(c, c->req, "NameContains", 0, 63, false, &l.name_contains));
    CL_GUARD_GOTO(
        kms_sm_one_of(c, "StatusEquals", statuses, "InProgress, Completed, Failed, Stopping, Stopped", &l.status));
    const char *by, *order, *token;
    CL_GUARD_GOTO(kms_sm_one_of(c, "SortBy", sort_by, "Name, CreationTime, Status", &by));
    CL_GUARD_GOTO(kms_sm_one_of(c, "SortOrder", orders, "Ascending, Descending", &order));
    CL_GUARD_GOTO(kms_sm_time(c, "CreationTimeAfter", &l.created_after));
    CL_GUARD_GOTO(kms_sm_time(c, "CreationTimeBefore", &l.created_before));
    CL_GUARD_GOTO(kms_sm_time(c, "LastModifiedTimeAfter", &l.modified_after));
    CL_GUARD_GOTO(kms_sm_time(c, "LastModifiedTimeBefore", &l.modified_before));
    json_t *mr = json_object_get(c->req, "MaxResults");
    json_int_t max = 10; /* SageMaker's default page */
    if (mr != NULL) {
        if (!json_is_integer(mr) || json_integer_value(mr) < 1 || json_integer_value(mr) > 100)
            SM_FAIL_GOTO(c, SM_VALIDATION, "MaxResults must be 1 to 100");
        max = json_integer_value(mr);
    }
    /* NextToken: the position in the sorted list, as this server gave it. */
    CL_GUARD_GOTO(kms_sm_string(c, c->req, "NextToken", 1, 32, false, &token));
    uint64_t from = 0;
    if (token != NULL && cl_parse_uint(token, 0, KMS_SM_LIST_MAX, "NextToken", &from) != CL_OK) {
        cl_error_clear();
        SM_FAIL_GOTO(c, SM_VALIDATION, "NextToken '%s' is not one this server gave", token);
    }
    bool more = true;
    while (more) {
        char after[sizeof(l.last)];
        (void)snprintf(after, sizeof(after), "%s", l.last[0] ? l.last : "");
        CL_GUARD_GOTO(
            c->kms->store->ops->job_list(c->kms->store, c->principal->account, after, 500, kms_sm_list_row, &l, &more));
        CL_ENSURE_GOTO(json_array_size(l.jobs) <= KMS_SM_LIST_MAX, CL_ERR_LIMIT,
                       "the account has more than %d training jobs: narrow the listing (NameContains, StatusEquals, "
                       "CreationTimeAfter)",
                       KMS_SM_LIST_MAX);
    }
    size_t n = json_array_size(l.jobs);
    json_t **v = n ? calloc(n, sizeof(json_t *)) : NULL;
    CL_ENSURE_GOTO(n == 0 || v != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) v[i] = json_array_get(l.jobs, i);
    /* SortBy CreationTime and SortOrder Descending unless the request says otherwise (SageMaker's
     * defaults); ties by name. */
    kms_sm_order ord = {.by = by != NULL ? by : "CreationTime",
                        .desc = order == NULL || strcmp(order, "Descending") == 0};
    if (n > 1) qsort_r(v, n, sizeof(json_t *), kms_sm_compare, &ord);
    json_t *page = json_array();
    for (size_t i = (size_t)from; page != NULL && i < n && i < (size_t)from + (size_t)max; i++)
        (void)json_array_append(page, v[i]);
    free(v);
    CL_GUARD_GOTO(kms_sm_set(c->resp, "TrainingJobSummaries", page));
    if ((size_t)from + (size_t)max < n) {
        char next[24];
        (void)snprintf(next, sizeof(next), "%zu", (size_t)from + (size_t)max);
        CL_GUARD_GOTO(kms_sm_set(c->resp, "NextToken", json_string(next)));
    }
out:
    json_decref(l.jobs);
    return rc;
}

/* --- dispatch ---------------------------------------------------------------------------------- */

bool kms_sagemaker_changes_state(const char *operation)
{
    return strcmp(operation, "CreateTrainingJob") == 0 || strcmp(operation, "StopTrainingJob") == 0;
}

cl_status kms_sagemaker_handle(kms_json_call *c)
{
    const char *op = c->operation;
    if (strcmp(op, "CreateTrainingJob") == 0) return kms_sm_create(c);
    if (strcmp(op, "DescribeTrainingJob") == 0) return kms_sm_describe(c);
    if (strcmp(op, "ListTrainingJobs") == 0) return kms_sm_list_jobs(c);
    if (strcmp(op, "StopTrainingJob") == 0) return kms_sm_stop(c);
    SM_FAIL(c, "UnknownOperationException",
            "SageMaker's %s is not supported by this server: it answers CreateTrainingJob, DescribeTrainingJob, "
            "ListTrainingJobs and StopTrainingJob (docs/sagemaker.md)",
            op);
}
