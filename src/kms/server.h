/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: configuration, server state and the per-request call. */
#ifndef CLOISTER_KMS_SERVER_H
#define CLOISTER_KMS_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/attestation.h"
#include "cloister/audit.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#include "keys.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"

#define KMS_MAX_BODY_DEFAULT ((size_t)256 << 10)
/* Connections open at once (all worker threads), and the time a whole request may take to
 * arrive, counted from the accept or from the previous answer (docs/kms.md, "Limits"). */
#define KMS_MAX_CONNECTIONS_DEFAULT 4096
#define KMS_MAX_CONNECTIONS_MAX 1000000
#define KMS_REQUEST_TIMEOUT_DEFAULT 20
#define KMS_REQUEST_TIMEOUT_MAX 3600
#define KMS_SIGNATURE_SKEW 900 /* seconds: AWS accepts X-Amz-Date within 15 minutes */

/* Who a request's credentials name (identity.h): an IAM user, an account's root, or a role
 * session of STS (AssumeRole). */
typedef enum kms_principal_kind {
    KMS_PRINCIPAL_USER = 0,
    KMS_PRINCIPAL_ROOT,
    KMS_PRINCIPAL_ASSUMED_ROLE,
} kms_principal_kind;

#define KMS_SESSION_NAME_MAX 64 /* roleSessionNameType: 2..64 */
#define KMS_ENTITY_MAX 160      /* "ACCOUNT/user/NAME", "ACCOUNT/role/NAME" (names up to 64, 128) */

typedef struct kms_principal {
    char access_key_id[129];
    char secret[129];
    char arn[KMS_ARN_MAX + 1];
    char account[KMS_ACCOUNT_LEN + 1];
    kms_principal_kind kind;
    /* The IAM entity whose policies apply ("ACCOUNT/user/NAME", "ACCOUNT/role/NAME" for a role
     * session); "" for an account's root, which IAM policies do not restrict. */
    char entity[KMS_ENTITY_MAX + 1];
    char role_arn[KMS_ARN_MAX + 1];              /* a role session's role; "" otherwise */
    char session_name[KMS_SESSION_NAME_MAX + 1]; /* a role session's RoleSessionName */
    int64_t expires;                             /* a role session's end (Unix seconds); 0 otherwise */
} kms_principal;

#define KMS_PATH_MAX 1024

#define KMS_ATTEST_ROOT_FILES_MAX 8

/* A DNS name is at most 253 characters (RFC 1035, 2.3.4); an IPv6 address with a zone fits. */
#define KMS_HOST_MAX 255

/* The training-job service (docs/sagemaker.md, "Configuration"): the config file's "training"
 * object, or --dev's --training FILE. Empty strings and zeros take the documented defaults. */
#define KMS_TRAIN_RUNNER_ARGS_MAX 16
#define KMS_TRAIN_MAX_JOBS_DEFAULT 2
#define KMS_TRAIN_MAX_MEMORY_DEFAULT_MIB 4096
#define KMS_TRAIN_STOP_GRACE_DEFAULT 30
typedef struct kms_training_config {
    char runner[KMS_TRAIN_RUNNER_ARGS_MAX][KMS_PATH_MAX]; /* the runner's argv prefix; none: the default */
    size_t n_runner;
    char images_dir[KMS_PATH_MAX]; /* where TrainingImage names an enclave image file; "": jobs refused */
    char pki_dir[KMS_PATH_MAX];    /* the runner's --pki; "": not passed */
    char state_dir[KMS_PATH_MAX];  /* the runner's --state-dir; "": not passed */
    char endpoint[KMS_PATH_MAX];   /* how the enclave reaches this server; "": its listen address */
    /* With an https:// endpoint: the PEM file of the CAs that certify it, a path inside the
     * trainer's image (so in its PCR0: the TLS session ends in the enclave); "": none. */
    char ca_file[KMS_PATH_MAX];
    int max_jobs;            /* jobs running at once; 0: KMS_TRAIN_MAX_JOBS_DEFAULT */
    uint64_t max_memory_mib; /* an enclave's memory at most; 0: KMS_TRAIN_MAX_MEMORY_DEFAULT_MIB */
    int stop_grace;          /* seconds between SIGTERM and SIGKILL; 0: KMS_TRAIN_STOP_GRACE_DEFAULT */
} kms_training_config;

typedef struct kms_config {
    char host[KMS_HOST_MAX + 1]; /* IPv4, IPv6 (without brackets) or a host name */
    int port;                    /* 0: the kernel picks one (printed at start) */
    int threads;
    char data_dir[KMS_PATH_MAX];
    /* The default region: of the data written before regions, and of the paths that name
     * one (the start line). Requests are answered in the region their SigV4 credential scope
     * names: any AWS region name, or only those of `regions` when it is not empty (docs/kms.md,
     * "Regions"). */
    char region[KMS_REGION_MAX + 1];
    char regions[KMS_REGIONS_MAX][KMS_REGION_MAX + 1];
    size_t n_regions;
    size_t max_body;
    int max_connections; /* 0: KMS_MAX_CONNECTIONS_DEFAULT */
    int request_timeout; /* seconds; 0: KMS_REQUEST_TIMEOUT_DEFAULT */
    kms_principal *principals;
    size_t n_principals;
    /* Paths left empty default to files in data_dir (root.key, keys.db, audit.log). */
    char root_key_file[KMS_PATH_MAX];
    char store_path[KMS_PATH_MAX];
    /* "store": {"type": "postgresql", "conninfo": ...}: a libpq connection string or URI,
     * which may hold a password (never logged). Empty: the SQLite store. */
    char store_conninfo[KMS_PATH_MAX];
    char audit_path[KMS_PATH_MAX];
    /* Root key derived from a passphrase (scrypt, parameters and salt in
     * data_dir/root.kdf) instead of read from a key file: at most one set. */
    char passphrase_file[KMS_PATH_MAX];
    char passphrase_env[128];
    unsigned scrypt_log2_n; /* cost of a new root.kdf; 0: KMS_SCRYPT_LOG2_N_DEFAULT */
    /* HTTPS when both are set (PEM files). */
    char tls_cert[KMS_PATH_MAX];
    char tls_key[KMS_PATH_MAX];
    /* Attested key release (Recipient): the roots documents must chain to (NULL or empty:
     * Recipient is refused) and the oldest document accepted. */
    cl_attest_roots *attest_roots;
    uint64_t attest_max_age_ms;
    /* From the config file's "attestation_roots": loaded into attest_roots by main. */
    char attest_root_files[KMS_ATTEST_ROOT_FILES_MAX][KMS_PATH_MAX];
    size_t n_attest_root_files;
    kms_metrics_access metrics;
    /* S3 (docs/s3.md): the base domain of virtual-host-style addressing (Host: BUCKET.s3_domain)
     * and the largest S3 request body (a PutObject or UploadPart). */
    char s3_domain[KMS_HOST_MAX + 1];
    size_t s3_max_body;
    kms_training_config training;
} kms_config;

/* Reads a config file (docs/kms.md, "Configuration file") into cfg, whose
 * principals it allocates (free with kms_config_free). CL_ERR_USAGE naming
 * the key for an unknown key or a bad value. */
CL_MUST_USE cl_status kms_config_load(const char *path, kms_config *cfg);
/* "HOST:PORT" into cfg's host and port: the config file's "listen" and --listen. HOST is an
 * IPv4 address, an IPv6 address in brackets ("[::1]:4599", as in URLs, RFC 3986 3.2.2) or a
 * host name; PORT 0..65535 (0 picks a free one). */
CL_MUST_USE cl_status kms_config_parse_listen(const char *s, kms_config *cfg);
/* Whether a request whose credential scope names `region` is answered (docs/kms.md, "Regions"). */
bool kms_config_region_allowed(const kms_config *cfg, const char *region);
/* "loopback", "any" or "off": the config file's "metrics" and --metrics. */
CL_MUST_USE cl_status kms_config_parse_metrics(const char *s, kms_config *cfg);
/* The same from text already in memory; base_dir resolves relative paths. */
CL_MUST_USE cl_status kms_config_parse(const char *text, size_t len, const char *base_dir, kms_config *cfg);
/* The "training" object (docs/sagemaker.md, "Configuration") of a config file, or of --dev's
 * --training FILE (kms_config_load_training; relative paths from FILE's directory). */
CL_MUST_USE cl_status kms_config_parse_training(json_t *o, const char *base_dir, kms_config *cfg);
CL_MUST_USE cl_status kms_config_load_training(const char *path, kms_config *cfg);
/* Wipes the principals' secrets and frees them (secure memory). */
void kms_config_free(kms_config *cfg);
/* Checks and fills one principal. */
CL_MUST_USE cl_status kms_principal_make(const char *access_key_id, const char *secret, const char *arn,
                                         kms_principal *p);
/* Principals outside the config file (--dev), never from the command line, whose every
 * argument /proc/PID/cmdline shows to all users (docs/kms.md, "Principals"):
 *  - kms_principal_add: one more principal (--dev's own);
 *  - kms_principals_parse: a JSON list in the config file's "principals" format;
 *  - kms_principals_load: the same from a file only its owner may read or write (--principals-file);
 *  - kms_principals_from_env: the same from an environment variable, wiped and unset once read
 *    (CL_OK and nothing added when it is not set).
 * Each appends to cfg's principals (secure memory, freed by kms_config_free); access key ids
 * stay unique. */
CL_MUST_USE cl_status kms_principal_add(kms_config *cfg, const char *access_key_id, const char *secret,
                                        const char *arn);
CL_MUST_USE cl_status kms_principals_parse(const char *text, size_t len, kms_config *cfg);
CL_MUST_USE cl_status kms_principals_load(const char *path, kms_config *cfg);
CL_MUST_USE cl_status kms_principals_from_env(const char *name, kms_config *cfg);
/* The root key passphrase named by cfg (file or environment variable) into
 * pass, a secret buffer. An environment variable is wiped and unset once read. */
CL_MUST_USE cl_status kms_passphrase_read(const kms_config *cfg, cl_buf *pass);

#define KMS_ATTEST_MAX_AGE_DEFAULT_MS ((uint64_t)5 * 60 * 1000)

struct kms_recipient;
struct kms_last_use;

typedef struct kms_server kms_server;

/* Shared state the operations use. */
typedef struct kms_ctx {
    const kms_config *cfg;
    kms_store *store;
    kms_root_key root;
    cl_audit *audit;
    kms_material_cache *cache;     /* NULL: no caching */
    struct kms_key_cache *records; /* key records (key_cache.h); NULL: none kept */
    struct kms_last_use *usage;    /* each key's last use (usage.h); NULL: none recorded */
    struct kms_training *training; /* the training jobs' supervisor (sagemaker.h); NULL: none */
} kms_ctx;

typedef struct kms_call {
    kms_ctx *kms;
    const kms_principal *principal;
    const char *operation;
    json_t *req;  /* the request body (an object) */
    json_t *resp; /* the response object the operation fills */
    /* The AWS exception to answer with when the operation fails; NULL maps
     * the status through the table in server.c. */
    const char *exception;
    char request_id[37];
    /* The region of the request's credential scope: the one of its keys, aliases and grants. */
    char region[KMS_REGION_MAX + 1];
    char key_arn[KMS_ARN_MAX + 1]; /* for the audit line */
    cl_kvlist audit_ctx;           /* encryption context (keys are logged) */
    int64_t now;
    /* How the request arrived (TLS, the peer's address, the time): the global condition keys
     * aws:SecureTransport, aws:SourceIp, aws:CurrentTime of the key policy. */
    kms_policy_env env;
    /* The verified Recipient of this request, when it has one: its document's PCRs are the
     * kms:RecipientAttestation:* condition keys. */
    const struct kms_recipient *recipient;
    /* Who the Recipient's document says asked (for the audit line, which outlives the
     * operation's kms_recipient): module id and PCR0 in hex; empty without a Recipient. */
    char audit_module_id[CL_ATTEST_MAX_MODULE_ID + 1];
    char audit_pcr0[2 * CL_ATTEST_PCR_LEN + 1];
} kms_call;

/* Raises an error answered with a specific AWS exception. */
#define KMS_FAIL_AS(call, exc, code, ...) \
    do { \
        (call)->exception = (exc); \
        CL_FAIL((code), __VA_ARGS__); \
    } while (0)
#define KMS_FAIL_AS_GOTO(call, exc, code, ...) \
    do { \
        (call)->exception = (exc); \
        CL_FAIL_GOTO((code), __VA_ARGS__); \
    } while (0)

typedef CL_MUST_USE cl_status (*kms_op_fn)(kms_call *c);
/* The operation named by X-Amz-Target's suffix, or NULL. */
kms_op_fn kms_op_find(const char *name);
/* The same, with its index in the operation table (0 .. kms_op_count() - 1) when found. */
kms_op_fn kms_op_lookup(const char *name, size_t *index);
size_t kms_op_count(void);
const char *kms_op_name(size_t index); /* NULL past the end */

/* The AWS exception name and HTTP status for a failed call. */
const char *kms_exception_for(const kms_call *c, cl_status rc, int *http_status);

/* Routes jansson's and libevent's allocations through cl_free_wiped / cl_realloc_wiped, so
 * that the request and response bodies they hold (plaintext, data keys) are wiped when freed.
 * Call first thing in main(), before any other jansson or libevent call. */
void kms_wipe_library_heaps(void);

/* Locks the data directory (a second server on it is refused, naming the first one's pid),
 * opens the store and the audit log, and starts the worker threads. */
CL_MUST_USE cl_status kms_server_start(const kms_config *cfg, kms_server **out);
/* Runs until SIGINT/SIGTERM, then stops the workers. */
CL_MUST_USE cl_status kms_server_run(kms_server *s);
void kms_server_free(kms_server *s);

#endif
