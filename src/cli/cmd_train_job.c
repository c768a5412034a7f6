/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister train-job: SageMaker's training jobs of a cloister-kms (docs/sagemaker.md) from the
 * command line: create (from a CreateTrainingJob request in JSON, as `aws sagemaker
 * create-training-job --cli-input-json` takes it, or from flags for the common fields),
 * describe, list, stop, and logs (the job's CloudWatch Logs stream, --follow until it ends).
 * The calls are libcloister's JSON 1.1 client (cloister/kms_client.h) for SageMaker and
 * CloudWatch Logs, configured as the aws CLI is (--endpoint-url, AWS_ENDPOINT_URL_SAGEMAKER, ...).
 * `train-job run`, the runner cloister-kms starts for a job, is cmd_train_job_run (cmd_train_run.c).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/buf.h"
#include "cloister/kms_client.h"

#include "cli.h"

#define TJ_MAX_RESPONSE ((size_t)4 << 20)
#define TJ_MAX_REQUEST_FILE ((size_t)1 << 20)
#define TJ_MAX_HYPERPARAMETERS 100
#define TJ_LIST_MAX_PAGES 1000
#define TJ_FOLLOW_POLL_MS 1000 /* --follow: how often a job still running is asked for more */

static const char tj_usage[] =
    "Usage: cloister train-job create (--cli-input-json FILE | --training-job-name NAME --image FILE\n"
    "                                  --role-arn ARN --input s3://B/P --output-path s3://B/P\n"
    "                                  --kms-key-id KEY [--instance-type T] [--max-runtime S]\n"
    "                                  [--hyperparameter K=V]...) [options]\n"
    "       cloister train-job describe --training-job-name NAME [options]\n"
    "       cloister train-job list [--name-contains S] [--status-equals STATUS] [options]\n"
    "       cloister train-job stop --training-job-name NAME [options]\n"
    "       cloister train-job logs --training-job-name NAME [--follow] [options]\n"
    "       cloister train-job run --image IMAGE [options] < JOB.json\n"
    "\n"
    "SageMaker's training jobs as cloister-kms runs them, in enclaves (docs/sagemaker.md).\n"
    "  create     CreateTrainingJob; the request from --cli-input-json (a file of the JSON `aws sagemaker\n"
    "             create-training-job --cli-input-json` takes; file:// is accepted), flags overriding its\n"
    "             fields, or from the flags alone (one input channel 'train', InstanceCount 1); prints the ARN\n"
    "  describe   DescribeTrainingJob, printed as JSON\n"
    "  list       ListTrainingJobs (every page), newest first, printed as JSON\n"
    "  stop       StopTrainingJob\n"
    "  logs       the job's log (CloudWatch Logs, /aws/sagemaker/TrainingJobs); --follow: until the job ends\n"
    "  run        the runner cloister-kms starts for a job: runs it in its enclave, the job document on\n"
    "             stdin, its events on stdout ('cloister train-job run --help'; docs/training-jobs.md)\n"
    "\n"
    "Options:\n"
    "  --endpoint-url URL     cloister-kms (else AWS_ENDPOINT_URL_SAGEMAKER / AWS_ENDPOINT_URL_CLOUDWATCH_LOGS,\n"
    "                         AWS_ENDPOINT_URL, the profile's endpoint_url)\n"
    "  --region REGION        else AWS_REGION, AWS_DEFAULT_REGION, the profile's region\n"
    "  --profile NAME         a profile of ~/.aws/credentials and ~/.aws/config\n"
    "  --ca-bundle FILE       PEM CAs for an https endpoint\n"
    "  --instance-type T      ResourceConfig.InstanceType: the enclave's memory (default ml.m5.large)\n"
    "  --max-runtime S        StoppingCondition.MaxRuntimeInSeconds (default SageMaker's 86400)\n";

typedef struct tj_args {
    cl_aws_settings aws;
    const char *input_json, *name, *image, *role, *input, *output, *kms_key, *instance_type, *max_runtime;
    const char *name_contains, *status;
    const char *hp[TJ_MAX_HYPERPARAMETERS];
    size_t n_hp;
    bool follow;
} tj_args;

static CL_MUST_USE cl_status tj_client(const tj_args *a, const cl_aws_json_service *svc, cl_kms_client **out)
{
    return cl_aws_json_client_from_aws(&a->aws, svc, out);
}

/* op with req (consumed) into *out. */
static CL_MUST_USE cl_status tj_call(cl_kms_client *c, const char *op, json_t *req, json_t **out)
{
    cl_status rc = CL_OK;
    char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    cl_buf resp;
    cl_buf_init(&resp, TJ_MAX_RESPONSE);
    *out = NULL;
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "out of memory for the %s request", op);
    CL_GUARD_GOTO(cl_kms_call(c, op, body, &resp));
    *out = json_loadb((const char *)resp.data, resp.len, 0, NULL);
    CL_ENSURE_GOTO(json_is_object(*out), CL_ERR_REMOTE, "the %s answer is not a JSON object", op);
out:
    free(body);
    cl_buf_free(&resp);
    return rc;
}

static CL_MUST_USE cl_status tj_print(const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory");
    puts(text);
    free(text);
    return CL_OK;
}

static CL_MUST_USE cl_status tj_set(json_t *o, const char *key, json_t *v)
{
    CL_ENSURE(v != NULL && json_object_set_new(o, key, v) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

/* The object member key of o, made when absent. */
static CL_MUST_USE cl_status tj_sub(json_t *o, const char *key, json_t **out)
{
    *out = json_object_get(o, key);
    if (*out == NULL) {
        CL_GUARD(tj_set(o, key, json_object()));
        *out = json_object_get(o, key);
    }
    CL_ENSURE(json_is_object(*out), CL_ERR_USAGE, "%s in the request must be a JSON object", key);
    return CL_OK;
}

/* The CreateTrainingJob request: --cli-input-json's, then the flags over it. */
static CL_MUST_USE cl_status tj_create_request(const tj_args *a, json_t **out)
{
    cl_status rc = CL_OK;
    json_t *req = NULL, *sub = NULL;
    cl_buf text;
    cl_buf_init(&text, TJ_MAX_REQUEST_FILE);
    if (a->input_json != NULL) {
        const char *path = strncmp(a->input_json, "file://", 7) == 0 ? a->input_json + 7 : a->input_json;
        CL_GUARD_CTX_GOTO(cl_buf_read_file(&text, path), "--cli-input-json %s", path);
        json_error_t jerr;
        req = json_loadb((const char *)text.data, text.len, JSON_REJECT_DUPLICATES, &jerr);
        CL_ENSURE_GOTO(json_is_object(req), CL_ERR_USAGE,
                       "--cli-input-json %s: not a JSON object (line %d column %d: %s)", path, jerr.line, jerr.column,
                       jerr.text);
    } else {
        req = json_object();
        CL_ENSURE_GOTO(req != NULL, CL_ERR_NOMEM, "out of memory");
    }
    if (a->name != NULL) CL_GUARD_GOTO(tj_set(req, "TrainingJobName", json_string(a->name)));
    if (a->role != NULL) CL_GUARD_GOTO(tj_set(req, "RoleArn", json_string(a->role)));
    if (a->image != NULL || a->input_json == NULL) {
        CL_GUARD_GOTO(tj_sub(req, "AlgorithmSpecification", &sub));
        if (a->image != NULL) CL_GUARD_GOTO(tj_set(sub, "TrainingImage", json_string(a->image)));
        if (json_object_get(sub, "TrainingInputMode") == NULL)
            CL_GUARD_GOTO(tj_set(sub, "TrainingInputMode", json_string("File")));
    }
    if (a->input != NULL)
        CL_GUARD_GOTO(tj_set(req, "InputDataConfig",
                             json_pack("[{s:s, s:{s:{s:s, s:s}}}]", "ChannelName", "train", "DataSource",
                                       "S3DataSource", "S3DataType", "S3Prefix", "S3Uri", a->input)));
    if (a->output != NULL || a->kms_key != NULL) {
        CL_GUARD_GOTO(tj_sub(req, "OutputDataConfig", &sub));
        if (a->output != NULL) CL_GUARD_GOTO(tj_set(sub, "S3OutputPath", json_string(a->output)));
        if (a->kms_key != NULL) CL_GUARD_GOTO(tj_set(sub, "KmsKeyId", json_string(a->kms_key)));
    }
    if (a->instance_type != NULL || a->input_json == NULL) {
        CL_GUARD_GOTO(tj_sub(req, "ResourceConfig", &sub));
        if (a->instance_type != NULL || json_object_get(sub, "InstanceType") == NULL)
            CL_GUARD_GOTO(
                tj_set(sub, "InstanceType", json_string(a->instance_type ? a->instance_type : "ml.m5.large")));
        if (json_object_get(sub, "InstanceCount") == NULL) CL_GUARD_GOTO(tj_set(sub, "InstanceCount", json_integer(1)));
        if (json_object_get(sub, "VolumeSizeInGB") == NULL)
            CL_GUARD_GOTO(tj_set(sub, "VolumeSizeInGB", json_integer(1)));
    }
    CL_GUARD_GOTO(tj_sub(req, "StoppingCondition", &sub));
    if (a->max_runtime != NULL) {
        uint64_t v = 0;
        CL_GUARD_GOTO(cl_parse_uint(a->max_runtime, 1, (uint64_t)28 * 86400, "--max-runtime", &v));
        CL_GUARD_GOTO(tj_set(sub, "MaxRuntimeInSeconds", json_integer((json_int_t)v)));
    }
    if (a->n_hp > 0) CL_GUARD_GOTO(tj_sub(req, "HyperParameters", &sub));
    for (size_t i = 0; i < a->n_hp; i++) {
        const char *eq = strchr(a->hp[i], '=');
        CL_ENSURE_GOTO(eq != NULL && eq != a->hp[i], CL_ERR_USAGE, "--hyperparameter %s: give NAME=VALUE", a->hp[i]);
        char key[257];
        CL_ENSURE_GOTO((size_t)(eq - a->hp[i]) < sizeof(key), CL_ERR_USAGE,
                       "--hyperparameter: a name of more than 256 characters");
        (void)snprintf(key, sizeof(key), "%.*s", (int)(eq - a->hp[i]), a->hp[i]);
        CL_GUARD_GOTO(tj_set(sub, key, json_string(eq + 1)));
    }
    CL_ENSURE_GOTO(json_object_get(req, "TrainingJobName") != NULL, CL_ERR_USAGE,
                   "no training job name: give --training-job-name or TrainingJobName in --cli-input-json");
    *out = req;
    req = NULL;
out:
    json_decref(req);
    cl_buf_free(&text);
    return rc;
}

static CL_MUST_USE cl_status tj_need_name(const tj_args *a, const char *verb)
{
    CL_ENSURE(a->name != NULL, CL_ERR_USAGE, "cloister train-job %s needs --training-job-name NAME", verb);
    return CL_OK;
}

static CL_MUST_USE cl_status tj_list(cl_kms_client *c, const tj_args *a)
{
    cl_status rc = CL_OK;
    json_t *all = json_array(), *resp = NULL;
    CL_ENSURE(all != NULL, CL_ERR_NOMEM, "out of memory");
    char token[8193] = "";
    for (int page = 0; page < TJ_LIST_MAX_PAGES; page++) {
        json_t *req = json_pack("{s:i}", "MaxResults", 100);
        if (req != NULL && a->name_contains != NULL)
            (void)json_object_set_new(req, "NameContains", json_string(a->name_contains));
        if (req != NULL && a->status != NULL) (void)json_object_set_new(req, "StatusEquals", json_string(a->status));
        if (req != NULL && token[0] != '\0') (void)json_object_set_new(req, "NextToken", json_string(token));
        CL_GUARD_GOTO(tj_call(c, "ListTrainingJobs", req, &resp));
        CL_ENSURE_GOTO(json_array_extend(all, json_object_get(resp, "TrainingJobSummaries")) == 0 ||
                           json_object_get(resp, "TrainingJobSummaries") == NULL,
                       CL_ERR_REMOTE, "ListTrainingJobs answered without TrainingJobSummaries");
        const char *next = json_string_value(json_object_get(resp, "NextToken"));
        (void)snprintf(token, sizeof(token), "%s", next != NULL ? next : "");
        json_decref(resp);
        resp = NULL;
        if (token[0] == '\0') break;
    }
    json_t *out = json_pack("{s:O}", "TrainingJobSummaries", all);
    CL_ENSURE_GOTO(out != NULL, CL_ERR_NOMEM, "out of memory");
    rc = tj_print(out);
    json_decref(out);
out:
    json_decref(resp);
    json_decref(all);
    return rc;
}

/* The job's log: every event from the head; --follow polls until the job has ended and its
 * last events are printed. */
static CL_MUST_USE cl_status tj_logs(cl_kms_client *sm, const tj_args *a)
{
    cl_status rc = CL_OK;
    cl_kms_client *logs = NULL;
    json_t *job = NULL, *resp = NULL;
    CL_GUARD_GOTO(tj_call(sm, "DescribeTrainingJob", json_pack("{s:s}", "TrainingJobName", a->name), &job));
    /* SageMaker's stream name: NAME/algo-1-<creation time's seconds>. */
    char stream[160];
    (void)snprintf(stream, sizeof(stream), "%s/algo-1-%lld", a->name,
                   (long long)json_number_value(json_object_get(job, "CreationTime")));
    CL_GUARD_GOTO(tj_client(a, &cl_aws_service_logs, &logs));
    char token[64] = "";
    bool ended = false;
    for (;;) {
        const char *st = json_string_value(json_object_get(job, "TrainingJobStatus"));
        ended = st == NULL || (strcmp(st, "InProgress") != 0 && strcmp(st, "Stopping") != 0);
        size_t got = 0;
        for (;;) { /* every page there is now */
            json_t *req = json_pack("{s:s, s:s, s:b}", "logGroupName", "/aws/sagemaker/TrainingJobs", "logStreamName",
                                    stream, "startFromHead", 1);
            if (req != NULL && token[0] != '\0') (void)json_object_set_new(req, "nextToken", json_string(token));
            CL_GUARD_GOTO(tj_call(logs, "GetLogEvents", req, &resp));
            json_t *events = json_object_get(resp, "events"), *e;
            size_t i;
            json_array_foreach(events, i, e) printf("%s\n", json_string_value(json_object_get(e, "message")) ?: "");
            fflush(stdout);
            const char *next = json_string_value(json_object_get(resp, "nextForwardToken"));
            bool same = next == NULL || strcmp(next, token) == 0;
            if (next != NULL) (void)snprintf(token, sizeof(token), "%s", next);
            got = json_array_size(events);
            json_decref(resp);
            resp = NULL;
            if (same || got == 0) break;
        }
        if (!a->follow || ended) break;
        struct timespec ts = {TJ_FOLLOW_POLL_MS / 1000, (TJ_FOLLOW_POLL_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        json_decref(job);
        job = NULL;
        CL_GUARD_GOTO(tj_call(sm, "DescribeTrainingJob", json_pack("{s:s}", "TrainingJobName", a->name), &job));
    }
    if (a->follow) {
        const char *st = json_string_value(json_object_get(job, "TrainingJobStatus"));
        const char *why = json_string_value(json_object_get(job, "FailureReason"));
        fprintf(stderr, "training job %s: %s%s%s\n", a->name, st ? st : "?", why ? ": " : "", why ? why : "");
    }
out:
    json_decref(job);
    json_decref(resp);
    cl_kms_client_free(logs);
    return rc;
}

static CL_MUST_USE cl_status tj_run(const tj_args *a, const char *verb)
{
    cl_status rc = CL_OK;
    cl_kms_client *c = NULL;
    json_t *req = NULL, *resp = NULL;
    if (strcmp(verb, "create") == 0) CL_GUARD_GOTO(tj_create_request(a, &req));
    if (strcmp(verb, "describe") == 0 || strcmp(verb, "stop") == 0 || strcmp(verb, "logs") == 0)
        CL_GUARD_GOTO(tj_need_name(a, verb));
    CL_GUARD_GOTO(tj_client(a, &cl_aws_service_sagemaker, &c));
    if (strcmp(verb, "create") == 0) {
        CL_GUARD_GOTO(tj_call(c, "CreateTrainingJob", req, &resp));
        req = NULL;
        CL_GUARD_GOTO(tj_print(resp));
    } else if (strcmp(verb, "describe") == 0) {
        CL_GUARD_GOTO(tj_call(c, "DescribeTrainingJob", json_pack("{s:s}", "TrainingJobName", a->name), &resp));
        CL_GUARD_GOTO(tj_print(resp));
    } else if (strcmp(verb, "stop") == 0) {
        CL_GUARD_GOTO(tj_call(c, "StopTrainingJob", json_pack("{s:s}", "TrainingJobName", a->name), &resp));
    } else if (strcmp(verb, "list") == 0) {
        CL_GUARD_GOTO(tj_list(c, a));
    } else {
        CL_GUARD_GOTO(tj_logs(c, a));
    }
out:
    json_decref(req);
    json_decref(resp);
    cl_kms_client_free(c);
    return rc;
}

int cmd_train_job(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, 'E'},
                                         {"region", required_argument, NULL, 'R'},
                                         {"profile", required_argument, NULL, 'P'},
                                         {"ca-bundle", required_argument, NULL, 'C'},
                                         {"cli-input-json", required_argument, NULL, 'j'},
                                         {"training-job-name", required_argument, NULL, 'n'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"role-arn", required_argument, NULL, 'r'},
                                         {"input", required_argument, NULL, 'I'},
                                         {"output-path", required_argument, NULL, 'o'},
                                         {"kms-key-id", required_argument, NULL, 'k'},
                                         {"instance-type", required_argument, NULL, 't'},
                                         {"max-runtime", required_argument, NULL, 'm'},
                                         {"hyperparameter", required_argument, NULL, 'H'},
                                         {"name-contains", required_argument, NULL, 'N'},
                                         {"status-equals", required_argument, NULL, 'S'},
                                         {"follow", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    /* `train-job run` (the runner cloister-kms starts; cmd_train_run.c) takes options of its own. */
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_train_job_run(argc - 1, argv + 1);
    tj_args a;
    memset(&a, 0, sizeof(a));
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'E': a.aws.endpoint_url = optarg; break;
        case 'R': a.aws.region = optarg; break;
        case 'P': a.aws.profile = optarg; break;
        case 'C': a.aws.ca_bundle = optarg; break;
        case 'j': a.input_json = optarg; break;
        case 'n': a.name = optarg; break;
        case 'i': a.image = optarg; break;
        case 'r': a.role = optarg; break;
        case 'I': a.input = optarg; break;
        case 'o': a.output = optarg; break;
        case 'k': a.kms_key = optarg; break;
        case 't': a.instance_type = optarg; break;
        case 'm': a.max_runtime = optarg; break;
        case 'H':
            if (a.n_hp == TJ_MAX_HYPERPARAMETERS)
                return cli_usage_error("train-job", "at most %d --hyperparameter", TJ_MAX_HYPERPARAMETERS);
            a.hp[a.n_hp++] = optarg;
            break;
        case 'N': a.name_contains = optarg; break;
        case 'S': a.status = optarg; break;
        case 'f': a.follow = true; break;
        case 'h': fputs(tj_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("train-job", "unknown option (see cloister train-job --help)");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("train-job", "one command is needed: create, describe, list, stop or logs");
    const char *verb = argv[optind];
    static const char *const verbs[] = {"create", "describe", "list", "stop", "logs"};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verb, verbs[i]) != 0) continue;
        cl_status rc = tj_run(&a, verb);
        return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
    }
    return cli_usage_error("train-job", "unknown command '%s': create, describe, list, stop or logs", verb);
}
