/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-api, the confidential patient-records API (docs/api.md): the pieces of the program
 * that tests drive without an enclave, under the sanitizers.
 *
 *  - HTTP/1.1 requests read from a stream (Node's http-parser, bounded: headers, body by route,
 *    keep-alive and pipelining), answers written to it (http.c);
 *  - the bodies: application/x-www-form-urlencoded, multipart/form-data (RFC 7578), JSON (form.c);
 *  - records: the field table, validation, the record's JSON, AES-256-GCM under the data key with
 *    the id, the field-name set and the format version as associated data (record.c,
 *    docs/formats/api-record.md);
 *  - the stores behind one interface: SQLite (store_sqlite.c), Redis (store_redis.c);
 *  - the routes of the contract, bearer tokens with scopes, CORS, static files (routes.c).
 * What reaches outside the enclave (the certificate, the KMS, the classifier and MRI enclaves)
 * is the program's (main.c), through the hooks of cl_api_ctx.
 */
#ifndef CLOISTER_API_H
#define CLOISTER_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/error.h"
#include "cloister/frame.h"
#include "cloister/ratls.h"

#define CL_API_ID_MAX 64
#define CL_API_FIELD_MAX 1024                                   /* bytes of one field's value */
#define CL_API_RECORD_BODY_MAX ((size_t)64 << 10)               /* POST /patient/<id> */
#define CL_API_DELINEATE_MAX ((size_t)4 << 20)                  /* the PNG of POST /delineate */
#define CL_API_DELINEATE_BODY_MAX (CL_API_DELINEATE_MAX + 8192) /* with the multipart framing */
#define CL_API_HEADER_MAX ((size_t)16 << 10)                    /* request line and headers */
#define CL_API_URL_MAX 2048
#define CL_API_LIST_MAX ((size_t)1000)
#define CL_API_LIST_DEFAULT 100
#define CL_API_N_MEASUREMENTS 30
#define CL_API_MAX_TOKENS 64
#define CL_API_RECORD_MAX ((size_t)96 << 10) /* a record's JSON: 43 fields of at most 1024 bytes, escaped */

/* cl_reader_until, then past the stop byte when it was found: the pieces of a list. */
static inline void cl_api_split(cl_reader *r, uint8_t stop, cl_reader *out, bool *found)
{
    cl_reader_until(r, stop, out, found);
    if (*found && cl_reader_skip(r, 1) != CL_OK) *found = false; /* cannot fail: the byte is there */
}

/* --- HTTP ---------------------------------------------------------------------------------- */

typedef enum cl_api_method {
    CL_API_OTHER = 0,
    CL_API_GET,
    CL_API_HEAD,
    CL_API_POST,
    CL_API_DELETE,
    CL_API_OPTIONS,
} cl_api_method;

typedef struct cl_api_request {
    cl_api_method method;
    char method_name[16];
    cl_buf url;           /* the request target as sent */
    cl_buf authorization; /* the headers the routes read; empty when absent */
    cl_buf content_type;
    cl_buf accept;
    cl_buf origin;
    cl_buf expect; /* "100-continue": the client waits for an interim answer before the body */
    cl_buf body;   /* a secret buffer: it holds patient fields */
    bool keep_alive;
    /* Set by the reader when the request cannot be served: the answer to send, then close. */
    int refuse_status;
    char refuse_reason[160];
} cl_api_request;

typedef struct cl_api_response {
    int status;
    const char *content_type;
    cl_buf body;    /* a secret buffer */
    cl_buf headers; /* extra header lines, each ending in \r\n */
    bool close;     /* Connection: close after it */
} cl_api_response;

/* One connection's reader: what was read past the current request stays for the next one. */
typedef struct cl_api_conn {
    cl_frame_io io;
    cl_buf in; /* bytes read, not yet parsed */
    void *parser;
} cl_api_conn;

CL_MUST_USE cl_status cl_api_conn_init(cl_api_conn *c, cl_frame_io io);
void cl_api_conn_free(cl_api_conn *c);
void cl_api_request_init(cl_api_request *r);
void cl_api_request_free(cl_api_request *r);
void cl_api_response_init(cl_api_response *r);
void cl_api_response_free(cl_api_response *r);
void cl_api_response_reset(cl_api_response *r);

/*
 * Reads the next request. CL_OK with *got false: the client closed the connection between
 * requests. A request that breaks HTTP or a bound is CL_OK with refuse_status set (400, 413,
 * 431, 501, 505) and the connection must be closed after the answer; a transport failure or a
 * timeout (CL_ERR_EXPIRED) is an error and the connection is dropped.
 */
CL_MUST_USE cl_status cl_api_read_request(cl_api_conn *c, cl_api_request *req, bool *got);
/* Writes the answer (status line, headers, body; no body for HEAD). */
CL_MUST_USE cl_status cl_api_write_response(cl_api_conn *c, const cl_api_request *req, const cl_api_response *resp);
/* Parses a whole request held in memory (the fuzz target's entry point). */
CL_MUST_USE cl_status cl_api_parse_request_bytes(const uint8_t *p, size_t n, cl_api_request *req, bool *got);

/* --- bodies ---------------------------------------------------------------------------------- */

/* One name=value pair of a form; both decoded, borrowed from the form's storage. */
typedef struct cl_api_pair {
    const char *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
} cl_api_pair;

#define CL_API_FORM_MAX_PAIRS ((size_t)64)

typedef struct cl_api_form {
    cl_api_pair pairs[CL_API_FORM_MAX_PAIRS];
    size_t n;
    cl_buf storage; /* the decoded bytes (a secret buffer) */
} cl_api_form;

void cl_api_form_init(cl_api_form *f);
void cl_api_form_free(cl_api_form *f);
/* application/x-www-form-urlencoded (WHATWG URL "application/x-www-form-urlencoded parsing": '&'
 * separated, '+' is a space, %XX escapes). A bad escape is CL_ERR_FORMAT naming its offset. */
CL_MUST_USE cl_status cl_api_form_parse_urlencoded(const uint8_t *p, size_t n, cl_api_form *out);
/* The boundary parameter of a multipart/form-data Content-Type (RFC 7578 section 4.1,
 * RFC 2046 section 5.1.1: 1 to 70 characters), copied into out. */
CL_MUST_USE cl_status cl_api_multipart_boundary(const char *content_type, size_t n, char *out, size_t size);
/* multipart/form-data: each part's name (Content-Disposition: form-data; name="...") and its
 * content, borrowed from p (no copy). */
CL_MUST_USE cl_status cl_api_form_parse_multipart(const uint8_t *p, size_t n, const char *boundary, cl_api_form *out);

/* --- records --------------------------------------------------------------------------------- */

/* The fields, sorted by name (the record's JSON keys and the associated data use this order). */
typedef enum cl_api_field_kind { CL_API_FIELD_TEXT, CL_API_FIELD_MEASUREMENT } cl_api_field_kind;
typedef struct cl_api_field_def {
    const char *name;
    cl_api_field_kind kind;
    int wdbc_column; /* measurements: the column in wdbc.csv's order (the model's input order) */
} cl_api_field_def;
size_t cl_api_field_count(void);
const cl_api_field_def *cl_api_field(size_t i);
/* Index of a field name, or -1. */
int cl_api_field_find(const char *name, size_t n);

#define CL_API_MAX_FIELDS 64

/* A record being written: which fields it has and their values. */
typedef struct cl_api_record {
    uint64_t present; /* bit i: field i */
    cl_buf text[CL_API_MAX_FIELDS];
    double number[CL_API_MAX_FIELDS];
} cl_api_record;

void cl_api_record_init(cl_api_record *r);
void cl_api_record_free(cl_api_record *r);
/* A valid id: [A-Za-z0-9_.-]{1,64}. */
bool cl_api_id_valid(const char *id, size_t n);
/* Sets one field from a form or JSON value: unknown field, a value over 1024 bytes, a
 * measurement that is not a decimal number, a field given twice: CL_ERR_FORMAT naming it. */
CL_MUST_USE cl_status cl_api_record_set(cl_api_record *r, const char *name, size_t name_len, const uint8_t *value,
                                        size_t value_len);
CL_MUST_USE cl_status cl_api_record_set_number(cl_api_record *r, const char *name, size_t name_len, double v);
/* The record from a request body by its Content-Type (form or JSON), measurements all or none. */
CL_MUST_USE cl_status cl_api_record_from_body(cl_api_record *r, const char *content_type, size_t ct_len,
                                              const uint8_t *body, size_t n);
bool cl_api_record_has_measurements(const cl_api_record *r);
/* The 30 measurements in the model's input order, as the classifier reads them: JSON. */
CL_MUST_USE cl_status cl_api_record_model_input(const cl_api_record *r, cl_buf *out);
/* The record's JSON: its fields, "id" and "score" (a number, or null when has_score is false),
 * keys sorted. */
CL_MUST_USE cl_status cl_api_record_json(const cl_api_record *r, const char *id, bool has_score, double score,
                                         cl_buf *out);
/* Shortest decimal text that reads back as v (what Python's repr prints). */
void cl_api_format_double(double v, char *out, size_t size);

/* The stored form (docs/formats/api-record.md): "CLAR" | version 1 | field bitmap u64be |
 * nonce(12) | AES-256-GCM(record JSON) | tag(16); associated data binds the id, the field-name
 * set and the version. */
#define CL_API_BLOB_MAGIC "CLAR"
#define CL_API_BLOB_VERSION 1
#define CL_API_BLOB_HEADER (4 + 1 + 8 + CL_GCM_NONCE_LEN)
CL_MUST_USE cl_status cl_api_record_seal(const uint8_t key[CL_AES256_KEY_LEN], const char *id, uint64_t present,
                                         const uint8_t *json, size_t n, cl_buf *out);
/* The record's JSON into out (a secret buffer). CL_ERR_AUTH: not sealed under this key for this
 * id (another key, another id, a changed field set, tampered). */
CL_MUST_USE cl_status cl_api_record_open(const uint8_t key[CL_AES256_KEY_LEN], const char *id, const uint8_t *blob,
                                         size_t n, cl_buf *out);

/* --- stores ---------------------------------------------------------------------------------- */

typedef struct cl_api_store cl_api_store;
typedef struct cl_api_store_ops {
    /* CL_ERR_NOT_FOUND when absent. */
    CL_MUST_USE cl_status (*get)(cl_api_store *s, const char *id, cl_buf *out);
    /* Durable when it returns CL_OK; *existed says whether it replaced a record. */
    CL_MUST_USE cl_status (*put)(cl_api_store *s, const char *id, const uint8_t *blob, size_t n, bool *existed);
    CL_MUST_USE cl_status (*del)(cl_api_store *s, const char *id, bool *existed);
    /* Ids after `after` (NULL: from the start), sorted bytewise, at most limit + 1 of them,
     * each appended to out NUL-terminated; *count how many. */
    CL_MUST_USE cl_status (*list)(cl_api_store *s, const char *after, size_t limit, cl_buf *out, size_t *count);
    /* The store's metadata (the data key's KMS ciphertext): get, and put only if absent
     * (CL_ERR_EXISTS when another instance put one first). */
    CL_MUST_USE cl_status (*meta_get)(cl_api_store *s, const char *name, cl_buf *out);
    CL_MUST_USE cl_status (*meta_put_new)(cl_api_store *s, const char *name, const uint8_t *v, size_t n);
    void (*free)(cl_api_store *s);
} cl_api_store_ops;

struct cl_api_store {
    const cl_api_store_ops *ops;
    const char *kind; /* "sqlite", "redis" */
};

/* SQLite in dir/records.db: WAL, synchronous=FULL (a committed write is on disk). */
CL_MUST_USE cl_status cl_api_store_sqlite_open(const char *dir, cl_api_store **out);
/* Redis over a connected socket that `connect` opens (the enclave's vsock proxy, or TCP in
 * tests); it is called again to reconnect. The server must run with appendonly yes and
 * appendfsync always (checked at open when CONFIG answers). */
typedef CL_MUST_USE cl_status (*cl_api_connect_fn)(void *arg, int *fd);
CL_MUST_USE cl_status cl_api_store_redis_open(cl_api_connect_fn connect, void *arg, const char *prefix,
                                              cl_api_store **out);
void cl_api_store_free(cl_api_store *s);

/* --- the routes ------------------------------------------------------------------------------ */

#define CL_API_SCOPE_READ 1U
#define CL_API_SCOPE_WRITE 2U

typedef struct cl_api_token {
    uint8_t sha256[CL_SHA256_LEN];
    unsigned scopes;
    char name[64];
} cl_api_token;

typedef struct cl_api_ctx cl_api_ctx;
typedef struct cl_api_hooks {
    /* The classifier's probability of malignancy for the model input (cl_api_record_model_input).
     * CL_ERR_REMOTE / CL_ERR_IO / CL_ERR_DENIED: the upstream failed; the message says why. */
    CL_MUST_USE cl_status (*score)(cl_api_ctx *ctx, const uint8_t *input, size_t n, double *out);
    /* The MRI model's summary for a PNG: its JSON (with "mask_png_base64"), appended to out. */
    CL_MUST_USE cl_status (*delineate)(cl_api_ctx *ctx, const uint8_t *png, size_t n, cl_buf *out);
    void *arg;
} cl_api_hooks;

struct cl_api_ctx {
    cl_api_store *store;
    uint8_t key[CL_AES256_KEY_LEN]; /* the data key: in locked memory (the program allocates ctx there) */
    cl_api_token tokens[CL_API_MAX_TOKENS];
    size_t n_tokens;
    char cors_origin[256]; /* Access-Control-Allow-Origin; empty: none */
    char static_dir[256];  /* the web page's files; empty: none */
    cl_api_hooks hooks;
};

/* Answers one request (authentication, routing, the store, the upstreams). */
void cl_api_handle(cl_api_ctx *ctx, const cl_api_request *req, cl_api_response *resp);
/* Writes an error answer {"error": code, "reason": reason}. */
void cl_api_error(cl_api_response *resp, int status, const char *code, const char *fmt, ...) CL_PRINTF(4, 5);

/* --- serving ---------------------------------------------------------------------------------- */

#define CL_API_MAX_THREADS 256
#define CL_API_QUEUE_MAX 64

/* One accepted connection as the open hook made it: its bytes go through io. */
typedef struct cl_api_stream {
    int fd;
    cl_ratls_conn tls; /* the program's TLS connection (cl_cas_tls_accept) */
    cl_frame_io io;
} cl_api_stream;

typedef struct cl_api_server {
    cl_api_ctx *ctx;
    long read_timeout; /* seconds a client may stay silent */
    /* The handshake on s->fd, setting s->io; NULL: plain bytes (tests). */
    CL_MUST_USE cl_status (*open)(void *arg, cl_api_stream *s);
    void (*close)(cl_api_stream *s);
    void *hook_arg;
    /* inside */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int queue[CL_API_QUEUE_MAX];
    size_t q_head, q_len;
    atomic_bool stopping;
    atomic_long served;
    pthread_t threads[CL_API_MAX_THREADS];
    long started;
} cl_api_server;

/* Starts `threads` serving threads (stack: their stack size, 0 for the default). */
CL_MUST_USE cl_status cl_api_server_start(cl_api_server *srv, long threads, size_t stack);
/* Hands an accepted connection to the pool; false (and the socket closed) when all threads are
 * busy and CL_API_QUEUE_MAX connections wait already. */
bool cl_api_server_enqueue(cl_api_server *srv, int fd);
/* No new connections; lets each thread finish its connection (bounded by read_timeout), joins them. */
void cl_api_server_stop(cl_api_server *srv);

/* A token line of the configuration: {"sha256": HEX, "scopes": ["read", "write"], "name": ...}. */
CL_MUST_USE cl_status cl_api_scopes_parse(const char *s, unsigned *out);

#endif
