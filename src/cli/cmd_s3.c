/* SPDX-License-Identifier: Apache-2.0 */
/* cloister s3 ...: objects in any S3 (cloister-kms, AWS, MinIO, s3rver, moto) through libcloister's
 * S3 client (cloister/s3_client.h), the one guest programs use; credentials, region and endpoint
 * resolve as for cloister kms (cloister/aws_config.h, service "s3"). */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloister/aws_config.h"
#include "cloister/fs.h"
#include "cloister/s3_client.h"

#include "cli.h"

static const char s3_usage[] =
    "Usage: cloister s3 COMMAND ARGS [options]\n"
    "\n"
    "Objects in an S3 service (cloister-kms, AWS S3, or any other S3), path-style addressing.\n"
    "\n"
    "Commands:\n"
    "  mb s3://BUCKET               create a bucket\n"
    "  rb s3://BUCKET               delete an empty bucket\n"
    "  put FILE s3://BUCKET/KEY     upload FILE, streamed; in parts (multipart upload) from --part-size on\n"
    "  get s3://BUCKET/KEY FILE     download into FILE (written whole or not at all; '-': stdout)\n"
    "  head s3://BUCKET/KEY         print the object's size, ETag, type and date\n"
    "  ls s3://BUCKET[/PREFIX]      list the keys (all pages): size, ETag, key\n"
    "  rm s3://BUCKET/KEY           delete an object\n"
    "\n"
    "Options:\n"
    "  --endpoint-url URL      the S3 endpoint (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's)\n"
    "  --region R              the signing region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's)\n"
    "  --profile NAME          the AWS profile whose credentials sign (else AWS_PROFILE, or AWS_ACCESS_KEY_ID,\n"
    "                          AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)\n"
    "  --ca-bundle FILE        PEM CAs for an https endpoint (else AWS_CA_BUNDLE, the profile's ca_bundle)\n"
    "  --part-size MIB         multipart part size, 5 to 5120 MiB (default 8); files this large or larger\n"
    "                          go up in parts\n"
    "  --unsigned-payload      https only: send UNSIGNED-PAYLOAD instead of the body's SHA-256 (one read of\n"
    "                          the file instead of two; TLS protects the body)\n"
    "  --range FIRST-LAST      get: only these bytes (RFC 9110 ranges, LAST may be empty)\n"
    "  --force                 get: replace FILE if it exists\n"
    "  --max-keys N            ls: at most N keys a page, 1 to 1000 (default: S3's, 1000)\n"
    "  -h, --help              this text\n"
    "\n"
    "Errors carry S3's code and message (NoSuchKey, NoSuchBucket, AccessDenied, ...).\n"
    "Exit status: 0 success, 1 the request failed or was refused, 2 usage error.\n";

typedef struct s3_args {
    cl_aws_settings aws;
    uint64_t part_mib;
    bool unsigned_payload;
    bool force;
    const char *range;
    uint64_t max_keys;
} s3_args;

/* s3://BUCKET[/KEY]: the bucket into bucket (at most 63 characters), the key borrowed (NULL: none). */
static CL_MUST_USE cl_status s3_url(const char *url, char bucket[CL_S3_MAX_BUCKET + 1], const char **key)
{
    CL_ENSURE(strncmp(url, "s3://", 5) == 0, CL_ERR_USAGE, "'%s' is not an s3://BUCKET/KEY URL", url);
    const char *b = url + 5;
    const char *slash = strchr(b, '/');
    size_t n = slash != NULL ? (size_t)(slash - b) : strlen(b);
    CL_ENSURE(n >= 1 && n <= CL_S3_MAX_BUCKET, CL_ERR_USAGE, "'%s' has no bucket name of 1 to %d characters", url,
              CL_S3_MAX_BUCKET);
    memcpy(bucket, b, n);
    bucket[n] = '\0';
    *key = slash != NULL && slash[1] != '\0' ? slash + 1 : NULL;
    return CL_OK;
}

static CL_MUST_USE cl_status s3_open(const s3_args *a, cl_s3_client **out)
{
    cl_aws_config cfg;
    cl_aws_config_init(&cfg);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(cl_aws_config_resolve(&a->aws, "s3", &cfg));
    CL_ENSURE_GOTO(cfg.endpoint_url != NULL, CL_ERR_USAGE,
                   "no S3 endpoint: give --endpoint-url URL or set AWS_ENDPOINT_URL_S3 (path-style addressing "
                   "needs the server's own URL)");
    cl_s3_config sc = {.endpoint = cfg.endpoint_url,
                       .region = cfg.region,
                       .access_key_id = cfg.access_key_id,
                       .secret_access_key = cl_buf_cstr(&cfg.secret_access_key),
                       .session_token = cfg.session_token.len > 0 ? cl_buf_cstr(&cfg.session_token) : NULL,
                       .ca_file = cfg.ca_bundle,
                       .unsigned_payload = a->unsigned_payload,
                       .part_size = a->part_mib << 20};
    rc = cl_s3_client_new(&sc, out);
out:
    cl_aws_config_free(&cfg);
    return rc;
}

static CL_MUST_USE cl_status s3_range(const char *s, cl_s3_range *r)
{
    const char *dash = strchr(s, '-');
    CL_ENSURE(dash != NULL && dash != s, CL_ERR_USAGE, "--range is FIRST-LAST or FIRST-, not '%s'", s);
    char first[32];
    size_t n = (size_t)(dash - s);
    CL_ENSURE(n < sizeof(first), CL_ERR_USAGE, "--range is FIRST-LAST or FIRST-, not '%s'", s);
    memcpy(first, s, n);
    first[n] = '\0';
    CL_GUARD(cl_parse_uint(first, 0, UINT64_MAX - 1, "--range's first byte", &r->first));
    r->last = UINT64_MAX;
    if (dash[1] != '\0') CL_GUARD(cl_parse_uint(dash + 1, 0, UINT64_MAX - 1, "--range's last byte", &r->last));
    return CL_OK;
}

static CL_MUST_USE cl_status s3_get(cl_s3_client *c, const s3_args *a, const char *bucket, const char *key,
                                    const char *path)
{
    cl_s3_range range;
    if (a->range != NULL) CL_GUARD(s3_range(a->range, &range));
    const cl_s3_range *rp = a->range != NULL ? &range : NULL;
    cl_s3_object_info info;
    if (strcmp(path, "-") == 0) return cl_s3_get_object_fd(c, bucket, key, rp, STDOUT_FILENO, &info);
    cl_outfile o;
    CL_GUARD(cl_outfile_open(&o, path, a->force, 0644));
    cl_status rc = cl_s3_get_object_fd(c, bucket, key, rp, o.fd, &info);
    if (rc == CL_OK) rc = cl_outfile_commit(&o);
    cl_outfile_abort(&o);
    return rc;
}

static CL_MUST_USE cl_status s3_ls(cl_s3_client *c, const s3_args *a, const char *bucket, const char *prefix)
{
    char *token = NULL;
    cl_status rc = CL_OK;
    for (;;) {
        cl_s3_list_params p = {.prefix = prefix, .continuation_token = token, .max_keys = (unsigned)a->max_keys};
        cl_s3_list_page page;
        rc = cl_s3_list_objects_v2(c, bucket, &p, &page);
        free(token);
        token = NULL;
        if (rc != CL_OK) break;
        for (size_t i = 0; i < page.n_entries; i++)
            printf("%12" PRIu64 "  %s  %s\n", page.entries[i].size, page.entries[i].etag, page.entries[i].key);
        if (page.truncated) {
            token = page.next_token;
            page.next_token = NULL;
        }
        cl_s3_list_page_free(&page);
        if (token == NULL) break;
    }
    return rc;
}

static CL_MUST_USE cl_status s3_run(const s3_args *a, const char *verb, int n, char **args)
{
    cl_status rc = CL_OK;
    cl_s3_client *c = NULL;
    char bucket[CL_S3_MAX_BUCKET + 1];
    const char *key = NULL;
    int fd = -1;
    const char *url = strcmp(verb, "put") == 0 ? args[1] : args[0];
    CL_GUARD_GOTO(s3_url(url, bucket, &key));
    bool wants_key = strcmp(verb, "mb") != 0 && strcmp(verb, "rb") != 0 && strcmp(verb, "ls") != 0;
    CL_ENSURE_GOTO(!wants_key || key != NULL, CL_ERR_USAGE, "cloister s3 %s needs s3://BUCKET/KEY, not %s", verb, url);
    CL_ENSURE_GOTO(wants_key || strcmp(verb, "ls") == 0 || key == NULL, CL_ERR_USAGE,
                   "cloister s3 %s takes s3://BUCKET without a key", verb);
    CL_GUARD_GOTO(s3_open(a, &c));
    cl_s3_object_info info;
    if (strcmp(verb, "mb") == 0) {
        CL_GUARD_GOTO(cl_s3_create_bucket(c, bucket));
    } else if (strcmp(verb, "rb") == 0) {
        CL_GUARD_GOTO(cl_s3_delete_bucket(c, bucket));
    } else if (strcmp(verb, "put") == 0) {
        fd = open(args[0], O_RDONLY | O_CLOEXEC);
        if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot open %s", args[0]);
        CL_GUARD_GOTO(cl_s3_put_object_fd(c, bucket, key, fd, NULL, &info));
    } else if (strcmp(verb, "get") == 0) {
        CL_GUARD_GOTO(s3_get(c, a, bucket, key, args[1]));
    } else if (strcmp(verb, "head") == 0) {
        CL_GUARD_GOTO(cl_s3_head_object(c, bucket, key, &info));
        printf("size %" PRIu64 "\netag %s\ncontent-type %s\nlast-modified %s\n", info.size, info.etag,
               info.content_type, info.last_modified);
    } else if (strcmp(verb, "ls") == 0) {
        CL_GUARD_GOTO(s3_ls(c, a, bucket, key));
    } else {
        CL_GUARD_GOTO(cl_s3_delete_object(c, bucket, key));
    }
out:
    if (fd >= 0) (void)close(fd);
    cl_s3_client_free(c);
    return rc;
}

int cmd_s3(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, 'E'},
                                         {"region", required_argument, NULL, 'R'},
                                         {"profile", required_argument, NULL, 'P'},
                                         {"ca-bundle", required_argument, NULL, 'C'},
                                         {"part-size", required_argument, NULL, 'S'},
                                         {"unsigned-payload", no_argument, NULL, 'U'},
                                         {"range", required_argument, NULL, 'G'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"max-keys", required_argument, NULL, 'M'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    s3_args a = {.part_mib = 8};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'E': a.aws.endpoint_url = optarg; break;
        case 'R': a.aws.region = optarg; break;
        case 'P': a.aws.profile = optarg; break;
        case 'C': a.aws.ca_bundle = optarg; break;
        case 'S':
            if (cli_uint_option("s3", "--part-size", optarg, 5, 5120, &a.part_mib) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            break;
        case 'U': a.unsigned_payload = true; break;
        case 'G': a.range = optarg; break;
        case 'F': a.force = true; break;
        case 'M':
            if (cli_uint_option("s3", "--max-keys", optarg, 1, CL_S3_MAX_LIST_KEYS, &a.max_keys) != CLI_EXIT_OK)
                return CLI_EXIT_USAGE;
            break;
        case 'h': fputs(s3_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("s3", "unknown option (see cloister s3 --help)");
        }
    }
    int n = argc - optind;
    if (n < 1) return cli_usage_error("s3", "a command is needed: mb, rb, put, get, head, ls or rm");
    const char *verb = argv[optind];
    static const struct {
        const char *name;
        int args;
    } verbs[] = {{"mb", 1}, {"rb", 1}, {"put", 2}, {"get", 2}, {"head", 1}, {"ls", 1}, {"rm", 1}};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verb, verbs[i].name) != 0) continue;
        if (n - 1 != verbs[i].args)
            return cli_usage_error("s3", "cloister s3 %s takes %d argument%s (see cloister s3 --help)", verb,
                                   verbs[i].args, verbs[i].args == 1 ? "" : "s");
        cl_status rc = s3_run(&a, verb, n - 1, argv + optind + 1);
        return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
    }
    return cli_usage_error("s3", "unknown command '%s': mb, rb, put, get, head, ls or rm", verb);
}
