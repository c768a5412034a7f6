/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-api: the patient-records API inside its enclave (docs/api.md).
 * At start it reads its configuration from the image (measured into PCR0: the token hashes, the
 * KMS, the store, the upstreams' PCR0s), opens the store, has the hospital's KMS release the
 * records' data key to its attestation document (GenerateDataKey with Recipient the first time,
 * the CiphertextBlob kept in the store; Decrypt with Recipient after), gets its TLS certificate
 * for host `api` from the certificate service (renewed in the background), and serves HTTPS on
 * its vsock port: one thread accepts, a pool of max_connections threads serves the connections
 * (keep-alive; each connection a thread, each silence bounded by read_timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cloister/api.h"
#include "cloister/attestation.h"
#include "cloister/cas.h"
#include "cloister/infer_client.h"
#include "cloister/kms_client.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/ratls.h"
#include "cloister/recipient.h"

#define API_CONFIG_DEFAULT "/files/api.json"
#define API_CONFIG_MAX ((size_t)256 << 10)
#define API_STACK ((size_t)1 << 20)
#define API_DATA_KEY_META "data_key"
#define API_KMS_CONTEXT_KEY "cloister:purpose"
#define API_KMS_CONTEXT_VALUE "cloister-api records"

/* Channels kept open to one upstream (api_upstream_call): at most `channels`, each lent to one
 * serving thread at a time. */
#define API_CHANNELS_MAX 64
#define API_CHANNELS_DEFAULT 4 /* the worker's own default max_connections (docs/worker.md) */

typedef struct api_channel {
    cl_infer_channel ch;
    bool open; /* a handshake done, not yet failed */
    bool lent; /* in use by a serving thread */
} api_channel;

typedef struct api_upstream {
    bool on;
    uint32_t vsock_port;
    cl_attest_roots roots;
    cl_ratls_client client;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t channels; /* the most kept, and in use at once */
    api_channel pool[API_CHANNELS_MAX];
} api_upstream;

typedef struct api {
    json_t *root;
    long listen_port, max_connections, read_timeout;
    int nsm;
    pthread_mutex_t nsm_mu;
    cl_cas_identity *cas;
    cl_api_ctx *ctx; /* in locked memory: it holds the data key */
    api_upstream classifier, mri;
    uint32_t redis_port;
    cl_api_server srv; /* the pool (serve.c) */
} api;

static int api_wake[2] = {-1, -1};

static void api_on_signal(int sig)
{
    (void)sig;
    char c = 1;
    if (write(api_wake[1], &c, 1) < 0) {
    }
}

/* --- configuration --------------------------------------------------------------------------- */

static CL_MUST_USE cl_status cfg_string(json_t *o, const char *name, bool required, const char **out)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (v == NULL && !required) return CL_OK;
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "configuration: \"%s\" is missing", name);
    CL_ENSURE(json_is_string(v), CL_ERR_FORMAT, "configuration: \"%s\" must be a string", name);
    *out = json_string_value(v);
    return CL_OK;
}

static CL_MUST_USE cl_status cfg_uint(json_t *o, const char *name, bool required, long lo, long hi, long *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL && !required) return CL_OK;
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "configuration: \"%s\" is missing", name);
    CL_ENSURE(json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi, CL_ERR_FORMAT,
              "configuration: \"%s\" must be an integer from %ld to %ld", name, lo, hi);
    *out = (long)json_integer_value(v);
    return CL_OK;
}

static CL_MUST_USE cl_status cfg_known(json_t *o, const char *what, const char *const *known, size_t n)
{
    const char *k;
    json_t *v;
    CL_ENSURE(json_is_object(o), CL_ERR_FORMAT, "configuration: %s must be an object", what);
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++) ok = strcmp(k, known[i]) == 0;
        CL_ENSURE(ok, CL_ERR_FORMAT, "configuration: %s has an unknown member \"%.64s\"", what, k);
    }
    return CL_OK;
}

/* "tokens": [{"sha256": HEX, "scopes": "read,write", "name": "..."}] (cloister api token create). */
static CL_MUST_USE cl_status cfg_tokens(api *a)
{
    static const char *const known[] = {"sha256", "scopes", "name"};
    json_t *arr = json_object_get(a->root, "tokens");
    CL_ENSURE(json_is_array(arr) && json_array_size(arr) >= 1 && json_array_size(arr) <= CL_API_MAX_TOKENS,
              CL_ERR_FORMAT, "configuration: \"tokens\" must list 1 to %d tokens (cloister api token create)",
              CL_API_MAX_TOKENS);
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t)
    {
        cl_api_token *tok = &a->ctx->tokens[i];
        const char *hex, *scopes, *name;
        cl_buf raw;
        cl_buf_init(&raw, CL_SHA256_LEN);
        CL_GUARD_CTX(cfg_known(t, "a token", known, 3), "tokens[%zu]", i);
        CL_GUARD_CTX(cfg_string(t, "sha256", true, &hex), "tokens[%zu]", i);
        CL_GUARD_CTX(cfg_string(t, "scopes", true, &scopes), "tokens[%zu]", i);
        CL_GUARD_CTX(cfg_string(t, "name", false, &name), "tokens[%zu]", i);
        cl_status rc = cl_hex_decode(hex, strlen(hex), &raw);
        bool ok = rc == CL_OK && raw.len == CL_SHA256_LEN;
        if (ok) memcpy(tok->sha256, raw.data, CL_SHA256_LEN);
        cl_buf_free(&raw);
        CL_ENSURE(ok, CL_ERR_FORMAT, "configuration: tokens[%zu].sha256 must be 64 hex digits", i);
        CL_GUARD_CTX(cl_api_scopes_parse(scopes, &tok->scopes), "configuration: tokens[%zu]", i);
        (void)snprintf(tok->name, sizeof(tok->name), "%s", name != NULL ? name : "");
        a->ctx->n_tokens++;
    }
    return CL_OK;
}

/* "classifier" / "mri": {"vsock_port": N, "root": PEM in the image, "pcr0": HEX}. */
static CL_MUST_USE cl_status cfg_upstream(json_t *root, const char *name, api_upstream *u)
{
    static const char *const known[] = {"vsock_port", "root", "pcr0", "channels"};
    json_t *o = json_object_get(root, name);
    if (o == NULL) return CL_OK;
    CL_GUARD(cfg_known(o, name, known, 4));
    long port = 0, channels = API_CHANNELS_DEFAULT;
    CL_GUARD_CTX(cfg_uint(o, "channels", false, 1, API_CHANNELS_MAX, &channels), "%s", name);
    u->channels = (size_t)channels;
    const char *rootf, *pcr0;
    cl_buf raw;
    cl_buf_init(&raw, CL_ATTEST_PCR_LEN);
    CL_GUARD_CTX(cfg_uint(o, "vsock_port", true, 1, 0xFFFFFFFFL, &port), "%s", name);
    CL_GUARD_CTX(cfg_string(o, "root", true, &rootf), "%s", name);
    CL_GUARD_CTX(cfg_string(o, "pcr0", true, &pcr0), "%s", name);
    cl_attest_pcr pcr = {.index = 0};
    cl_status rc = cl_hex_decode(pcr0, strlen(pcr0), &raw);
    bool ok = rc == CL_OK && raw.len == CL_ATTEST_PCR_LEN;
    if (ok) memcpy(pcr.value, raw.data, CL_ATTEST_PCR_LEN);
    cl_buf_free(&raw);
    CL_ENSURE(ok, CL_ERR_FORMAT, "configuration: %s.pcr0 must be 96 hex digits (the image's PCR0)", name);
    cl_attest_roots_init(&u->roots);
    CL_GUARD_CTX(cl_attest_roots_add_file(&u->roots, rootf), "%s's attestation root", name);
    CL_GUARD(cl_attest_roots_enable_cache(&u->roots, 16));
    cl_ratls_client_config rc_cfg = {.roots = &u->roots, .pcrs = &pcr, .pcr_count = 1};
    CL_GUARD(cl_ratls_client_init(&u->client, &rc_cfg));
    u->vsock_port = (uint32_t)port;
    (void)pthread_mutex_init(&u->mu, NULL);
    (void)pthread_cond_init(&u->cv, NULL);
    u->on = true;
    return CL_OK;
}

/* --- the data key -------------------------------------------------------------------------- */

static CL_MUST_USE cl_status api_attest(api *a, const cl_recipient *r, cl_buf *doc)
{
    (void)pthread_mutex_lock(&a->nsm_mu);
    cl_status rc = cl_recipient_attest(r, a->nsm, NULL, 0, doc);
    (void)pthread_mutex_unlock(&a->nsm_mu);
    return rc;
}

/*
 * The records' data key: released by the hospital's KMS to this enclave's attestation document
 * only (its key policy names the API's PCR0). First start: GenerateDataKey with Recipient, its
 * CiphertextBlob put in the store (only if no other instance put one first); later starts:
 * Decrypt with Recipient. The plaintext key never crosses the host.
 */
static CL_MUST_USE cl_status api_data_key(api *a, json_t *kms)
{
    static const char *const known[] = {"endpoint", "vsock_port",    "ca_file",          "region",
                                        "key_id",   "access_key_id", "secret_access_key"};
    cl_status rc = CL_OK;
    cl_kms_client *client = NULL;
    cl_recipient rcpt;
    cl_recipient_init(&rcpt);
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    cl_buf doc, blob, key, arn;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    cl_buf_init(&blob, 8192);
    cl_buf_init_secret(&key, CL_AES256_KEY_LEN);
    cl_buf_init(&arn, 2048);
    const char *endpoint, *ca_file, *region, *key_id, *ak, *sk;
    long port = 0;
    bool made = false; /* a new key (GenerateDataKey), else the stored one (Decrypt) */
    CL_GUARD_GOTO(cfg_known(kms, "\"kms\"", known, sizeof(known) / sizeof(known[0])));
    CL_GUARD_CTX_GOTO(cfg_string(kms, "endpoint", true, &endpoint), "kms");
    CL_GUARD_CTX_GOTO(cfg_uint(kms, "vsock_port", true, 1, 0xFFFFFFFFL, &port), "kms");
    CL_GUARD_CTX_GOTO(cfg_string(kms, "ca_file", false, &ca_file), "kms");
    CL_GUARD_CTX_GOTO(cfg_string(kms, "region", false, &region), "kms");
    CL_GUARD_CTX_GOTO(cfg_string(kms, "key_id", true, &key_id), "kms");
    CL_GUARD_CTX_GOTO(cfg_string(kms, "access_key_id", true, &ak), "kms");
    CL_GUARD_CTX_GOTO(cfg_string(kms, "secret_access_key", true, &sk), "kms");
    if (strncmp(endpoint, "http:", 5) == 0)
        CL_LOG_WARN("the KMS endpoint is plain http://: the host can substitute the KMS's answers (the data key); "
                    "use https:// with kms.ca_file outside tests");
    cl_kms_client_config kc = {.endpoint = endpoint,
                               .region = region != NULL ? region : "us-east-1",
                               .access_key_id = ak,
                               .secret_access_key = sk,
                               .max_attempts = 4,
                               .vsock_port = (uint32_t)port,
                               .ca_file = ca_file};
    CL_GUARD_CTX_GOTO(cl_kms_client_new(&kc, &client), "the hospital's KMS");
    CL_GUARD_GOTO(cl_kvlist_add(&ctx, API_KMS_CONTEXT_KEY, strlen(API_KMS_CONTEXT_KEY), API_KMS_CONTEXT_VALUE,
                                strlen(API_KMS_CONTEXT_VALUE)));
    CL_GUARD_CTX_GOTO(cl_recipient_generate(&rcpt), "making the recipient key");
    CL_GUARD_CTX_GOTO(api_attest(a, &rcpt, &doc), "getting an attestation document");
    rc = a->ctx->store->ops->meta_get(a->ctx->store, API_DATA_KEY_META, &blob);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        /* A store with records but no data key is not a first start: its metadata was lost or
         * removed (by the host, say). A new key would read none of the records and seal new ones
         * beside them; stop instead. */
        cl_buf ids;
        cl_buf_init(&ids, (size_t)4 * (CL_API_ID_MAX + 1));
        size_t count = 0;
        rc = a->ctx->store->ops->list(a->ctx->store, NULL, 1, &ids, &count);
        cl_buf_free(&ids);
        CL_GUARD_CTX_GOTO(rc, "looking for records in the store");
        CL_ENSURE_GOTO(count == 0, CL_ERR_STATE,
                       "the %s store has records but not the data key's ciphertext (\"%s\"): refusing to make a new "
                       "key that could read none of them; restore the store's metadata",
                       a->ctx->store->kind, API_DATA_KEY_META);
        CL_GUARD_CTX_GOTO(
            cl_kms_generate_data_key_for_recipient(client, &rcpt, doc.data, doc.len, key_id, &ctx, &key, &blob, &arn),
            "the records' data key (GenerateDataKey under %s)", key_id);
        rc = a->ctx->store->ops->meta_put_new(a->ctx->store, API_DATA_KEY_META, blob.data, blob.len);
        if (rc == CL_ERR_EXISTS) { /* another instance made it first: use that one */
            cl_error_clear();
            cl_buf_truncate(&blob, 0);
            cl_buf_truncate(&key, 0);
            CL_GUARD_GOTO(a->ctx->store->ops->meta_get(a->ctx->store, API_DATA_KEY_META, &blob));
        } else {
            CL_GUARD_CTX_GOTO(rc, "keeping the data key's ciphertext in the store");
            CL_LOG_INFO("made the records' data key under %s; its KMS ciphertext is in the %s store", cl_buf_cstr(&arn),
                        a->ctx->store->kind);
            made = true;
        }
    } else {
        CL_GUARD_CTX_GOTO(rc, "reading the data key's ciphertext from the store");
    }
    if (!made) {
        CL_GUARD_CTX_GOTO(
            cl_kms_decrypt_for_recipient(client, &rcpt, doc.data, doc.len, key_id, blob.data, blob.len, &ctx, &key),
            "the records' data key (Decrypt under %s)", key_id);
    }
    CL_ENSURE_GOTO(key.len == CL_AES256_KEY_LEN, CL_ERR_REMOTE, "the KMS released a data key of %zu bytes, not 32",
                   key.len);
    memcpy(a->ctx->key, key.data, CL_AES256_KEY_LEN);
out:
    cl_kms_client_free(client);
    cl_recipient_free(&rcpt);
    cl_kvlist_free(&ctx);
    cl_buf_free(&doc);
    cl_buf_free(&blob);
    cl_buf_free(&key);
    cl_buf_free(&arn);
    return rc;
}

/* --- upstreams: the classifier and the MRI model over RA-TLS -------------------------------- */

/*
 * The channels to an upstream stay open between requests: opening one is an RA-TLS handshake (an
 * attestation document made by the upstream, a P-384 verification and the PCR0 check here), which
 * costs more than the inference it carries and, one per POST, held the API to about 130 writes/s.
 * At most `channels` are open, each lent to one serving thread per call: the upstream serves only
 * so many connections at once (a worker's max_connections), and a channel kept but idle would hold
 * one of them. A kept channel the upstream has closed meanwhile (its read_timeout) fails on use;
 * it is closed and the call made once more on a new one. Only idempotent calls go through here (a
 * score, a mask), so the retry cannot do anything twice.
 */
static api_channel *api_channel_borrow(api_upstream *u)
{
    (void)pthread_mutex_lock(&u->mu);
    for (;;) {
        api_channel *idle = NULL, *free_slot = NULL;
        for (size_t i = 0; i < u->channels; i++) {
            api_channel *c = &u->pool[i];
            if (c->lent) continue;
            if (c->open && idle == NULL) idle = c;
            if (!c->open && free_slot == NULL) free_slot = c;
        }
        api_channel *c = idle != NULL ? idle : free_slot;
        if (c != NULL) {
            c->lent = true;
            (void)pthread_mutex_unlock(&u->mu);
            return c;
        }
        (void)pthread_cond_wait(&u->cv, &u->mu);
    }
}

static void api_channel_return(api_upstream *u, api_channel *c)
{
    (void)pthread_mutex_lock(&u->mu);
    c->lent = false;
    (void)pthread_cond_signal(&u->cv);
    (void)pthread_mutex_unlock(&u->mu);
}

/* Opens c (lent to this thread). The caller names the enclave in the error. */
static CL_MUST_USE cl_status api_channel_open(api_upstream *u, api_channel *c)
{
    int fd = -1;
    c->ch = (cl_infer_channel){.fd = -1};
    CL_GUARD_CTX(cl_vsock_connect(cl_vsock_ctl(), u->vsock_port, &fd), "vsock port %u", u->vsock_port);
    CL_GUARD(cl_infer_channel_open_fd(&c->ch, fd, &u->client, NULL));
    c->open = true;
    return CL_OK;
}

static void api_channel_drop(api_channel *c)
{
    cl_infer_channel_close(&c->ch);
    c->open = false;
}

static CL_MUST_USE cl_status api_upstream_call(api_upstream *u, const char *what, const uint8_t *in, size_t n,
                                               cl_buf *out)
{
    api_channel *c = api_channel_borrow(u);
    bool reused = c->open;
    cl_status rc = c->open ? CL_OK : api_channel_open(u, c);
    if (rc == CL_OK) rc = cl_infer_channel_request(&c->ch, in, n, out);
    if (rc != CL_OK && reused) {
        CL_LOG_DEBUG("the %s enclave's kept channel failed (%s): opening a new one", what, cl_error_message());
        cl_error_clear();
        api_channel_drop(c);
        cl_buf_truncate(out, 0);
        rc = api_channel_open(u, c);
        if (rc == CL_OK) rc = cl_infer_channel_request(&c->ch, in, n, out);
    }
    if (rc != CL_OK) {
        rc = cl_error_wrap("the %s enclave", what);
        api_channel_drop(c);
    }
    api_channel_return(u, c);
    return rc;
}

/* After the serving threads have stopped: nothing is lent. */
static void api_upstream_free(api_upstream *u)
{
    if (!u->on) return;
    for (size_t i = 0; i < u->channels; i++)
        if (u->pool[i].open) api_channel_drop(&u->pool[i]);
    (void)pthread_mutex_destroy(&u->mu);
    (void)pthread_cond_destroy(&u->cv);
    cl_ratls_client_free(&u->client);
    cl_attest_roots_free(&u->roots);
}

static CL_MUST_USE cl_status api_hook_score(cl_api_ctx *ctx, const uint8_t *input, size_t n, double *out)
{
    api *a = ctx->hooks.arg;
    cl_status rc = CL_OK;
    cl_buf res;
    cl_buf_init_secret(&res, (size_t)64 << 10);
    json_t *j = NULL;
    CL_GUARD_GOTO(api_upstream_call(&a->classifier, "classifier", input, n, &res));
    j = json_loadb((const char *)res.data, res.len, 0, NULL);
    json_t *p = json_object_get(json_object_get(j, "probabilities"), "malignant");
    CL_ENSURE_GOTO(json_is_number(p), CL_ERR_REMOTE,
                   "the classifier's answer has no probabilities.malignant (is it the breast-cancer classifier?)");
    *out = json_number_value(p);
out:
    json_decref(j);
    cl_buf_free(&res);
    return rc;
}

static CL_MUST_USE cl_status api_hook_delineate(cl_api_ctx *ctx, const uint8_t *png, size_t n, cl_buf *out)
{
    api *a = ctx->hooks.arg;
    return api_upstream_call(&a->mri, "MRI", png, n, out);
}

/* The Redis store's connection: through the launcher's proxy (or AF_VSOCK on Nitro). */
static CL_MUST_USE cl_status api_redis_connect(void *arg, int *fd)
{
    const api *a = arg;
    return cl_vsock_connect(cl_vsock_ctl(), a->redis_port, fd);
}

/* --- serving ------------------------------------------------------------------------------- */

/* The pool's handshake hook: TLS with whatever certificate the certificate service issued last. */
static CL_MUST_USE cl_status api_tls_open(void *arg, cl_api_stream *s)
{
    api *a = arg;
    CL_GUARD(cl_cas_tls_accept(a->cas, s->fd, &s->tls));
    s->io = cl_frame_io_tls(&s->tls);
    return CL_OK;
}

static void api_tls_close(cl_api_stream *s) { cl_ratls_conn_close(&s->tls); }

static int api_accept_loop(api *a, int listener)
{
    for (;;) {
        struct pollfd pf[2] = {{.fd = api_wake[0], .events = POLLIN}, {.fd = listener, .events = POLLIN}};
        int r = poll(pf, 2, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 || pf[0].revents != 0) break;
        int fd = -1;
        if (cl_vsock_accept(listener, &fd) != CL_OK) {
            CL_LOG_ERROR("accept: %s", cl_error_message());
            return 1;
        }
        (void)cl_api_server_enqueue(&a->srv, fd);
    }
    return 0;
}

static CL_MUST_USE cl_status api_start(api *a, const char *path)
{
    static const char *const known[] = {"listen_port", "max_connections", "read_timeout", "cas",        "kms", "store",
                                        "tokens",      "cors_origin",     "static_dir",   "classifier", "mri"};
    static const char *const cas_known[] = {"endpoint", "vsock_port", "ca_file",    "session",
                                            "service",  "key_type",   "renew_after"};
    static const char *const store_known[] = {"kind", "dir", "vsock_port", "prefix"};
    cl_status rc = CL_OK;
    cl_buf raw;
    cl_buf_init_secret(&raw, API_CONFIG_MAX);
    json_error_t jerr;
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, path), "reading the configuration");
    a->root = json_loadb((const char *)raw.data, raw.len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(a->root != NULL && json_is_object(a->root), CL_ERR_FORMAT,
                   "configuration %s is not a JSON object (line %d: %s)", path, jerr.line, jerr.text);
    CL_GUARD_GOTO(cfg_known(a->root, "the configuration", known, sizeof(known) / sizeof(known[0])));
    a->max_connections = 32;
    a->read_timeout = 30;
    CL_GUARD_GOTO(cfg_uint(a->root, "listen_port", true, 1, 0xFFFFFFFFL, &a->listen_port));
    CL_GUARD_GOTO(cfg_uint(a->root, "max_connections", false, 1, CL_API_MAX_THREADS, &a->max_connections));
    CL_GUARD_GOTO(cfg_uint(a->root, "read_timeout", false, 1, 3600, &a->read_timeout));
    const char *s = NULL;
    CL_GUARD_GOTO(cfg_string(a->root, "cors_origin", false, &s));
    (void)snprintf(a->ctx->cors_origin, sizeof(a->ctx->cors_origin), "%s", s != NULL ? s : "");
    CL_GUARD_GOTO(cfg_string(a->root, "static_dir", false, &s));
    (void)snprintf(a->ctx->static_dir, sizeof(a->ctx->static_dir), "%s", s != NULL ? s : "");
    CL_GUARD_GOTO(cfg_tokens(a));
    CL_GUARD_GOTO(cfg_upstream(a->root, "classifier", &a->classifier));
    CL_GUARD_GOTO(cfg_upstream(a->root, "mri", &a->mri));
    a->ctx->hooks = (cl_api_hooks){.score = a->classifier.on ? api_hook_score : NULL,
                                   .delineate = a->mri.on ? api_hook_delineate : NULL,
                                   .arg = a};
    /* The store. */
    json_t *st = json_object_get(a->root, "store");
    const char *kind = "sqlite", *dir = "/data", *prefix = "cloister-api:";
    long rport = 0;
    if (st != NULL) {
        CL_GUARD_GOTO(cfg_known(st, "\"store\"", store_known, 4));
        CL_GUARD_CTX_GOTO(cfg_string(st, "kind", false, &s), "store");
        if (s != NULL) kind = s;
        CL_GUARD_CTX_GOTO(cfg_string(st, "dir", false, &s), "store");
        if (s != NULL) dir = s;
        CL_GUARD_CTX_GOTO(cfg_string(st, "prefix", false, &s), "store");
        if (s != NULL) prefix = s;
        CL_GUARD_CTX_GOTO(cfg_uint(st, "vsock_port", strcmp(kind, "redis") == 0, 1, 0xFFFFFFFFL, &rport), "store");
    }
    if (strcmp(kind, "redis") == 0) {
        a->redis_port = (uint32_t)rport;
        CL_GUARD_CTX_GOTO(cl_api_store_redis_open(api_redis_connect, a, prefix, &a->ctx->store),
                          "the Redis store (vsock port %ld)", rport);
    } else {
        CL_ENSURE_GOTO(strcmp(kind, "sqlite") == 0, CL_ERR_FORMAT,
                       "configuration: store.kind \"%s\" is not sqlite or redis", kind);
        CL_GUARD_CTX_GOTO(cl_api_store_sqlite_open(dir, &a->ctx->store), "the store");
    }
    /* The data key, then the certificate. */
    CL_GUARD_CTX_GOTO(cl_nsm_open(&a->nsm), "opening the attestation device");
    json_t *kms = json_object_get(a->root, "kms");
    CL_ENSURE_GOTO(kms != NULL, CL_ERR_FORMAT, "configuration: \"kms\" (the hospital's KMS) is missing");
    CL_GUARD_GOTO(api_data_key(a, kms));
    json_t *cas = json_object_get(a->root, "cas");
    CL_ENSURE_GOTO(cas != NULL, CL_ERR_FORMAT, "configuration: \"cas\" (the certificate service) is missing");
    CL_GUARD_GOTO(cfg_known(cas, "\"cas\"", cas_known, sizeof(cas_known) / sizeof(cas_known[0])));
    cl_cas_config cc = {.nsm_fd = a->nsm, .key_type = CL_KEY_EC_P256};
    long port = 0, renew = 0;
    const char *kt = NULL;
    CL_GUARD_CTX_GOTO(cfg_string(cas, "endpoint", true, &cc.endpoint), "cas");
    CL_GUARD_CTX_GOTO(cfg_string(cas, "ca_file", false, &cc.ca_file), "cas");
    CL_GUARD_CTX_GOTO(cfg_string(cas, "session", true, &cc.session), "cas");
    CL_GUARD_CTX_GOTO(cfg_string(cas, "service", true, &cc.service), "cas");
    CL_GUARD_CTX_GOTO(cfg_string(cas, "key_type", false, &kt), "cas");
    CL_ENSURE_GOTO(kt == NULL || cl_key_type_parse(kt, &cc.key_type), CL_ERR_FORMAT,
                   "configuration: cas.key_type must be EC_P256, EC_P384, RSA_2048 or RSA_3072");
    CL_GUARD_CTX_GOTO(cfg_uint(cas, "vsock_port", true, 1, 0xFFFFFFFFL, &port), "cas");
    CL_GUARD_CTX_GOTO(cfg_uint(cas, "renew_after", false, 1, 86400L * 365, &renew), "cas");
    cc.vsock_port = (uint32_t)port;
    cc.renew_after = renew;
    CL_GUARD_CTX_GOTO(cl_cas_obtain(&cc, &a->cas), "the TLS certificate from the certificate service");
    CL_GUARD_GOTO(cl_cas_start_renewal(a->cas));
out:
    cl_buf_free(&raw);
    return rc;
}

int main(int argc, char **argv)
{
    /* The enclave's --memory is an address-space limit (RLIMIT_AS) when no cgroup bounds it, and
     * glibc gives each new thread an arena of its own, reserving 64 MiB of address space each (up
     * to 8 per core): 32 serving threads reserved more than the 512 MiB the deployment gives, and
     * under load mallocs and locked buffers failed ("out of memory") with most of it unused. */
    (void)mallopt(M_ARENA_MAX, 2);
    (void)signal(SIGPIPE, SIG_IGN);
    cl_log_set_level(CL_LOG_LEVEL_INFO);
    cl_log_init("cloister-api");
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        fputs("Usage: cloister-api [CONFIG]\n"
              "\n"
              "The patient-records API (docs/api.md). It runs inside an enclave, packed into its image with\n"
              "'cloister enclave build --exe cloister-api --file api.json ...', and is started by the launcher:\n"
              "it has the hospital's KMS release the records' data key to it, gets its TLS certificate for host\n"
              "api from the certificate service, and serves HTTPS on vsock port listen_port. CONFIG is its JSON\n"
              "configuration (default " API_CONFIG_DEFAULT
              "). CLOISTER_LOG=debug|warn|error sets the console's level.\n",
              stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("cloister-api %s\n", CLOISTER_VERSION);
        return 0;
    }
    /* jansson and our buffers hold patient fields: wiped when freed. */
    json_set_alloc_funcs(malloc, cl_free_wiped);
    const char *config_path = argc > 1 ? argv[1] : API_CONFIG_DEFAULT;
    static api a;
    long started = 0;
    int listener = -1, ec = 0;
    a.nsm = -1;
    (void)pthread_mutex_init(&a.nsm_mu, NULL);
    a.ctx = cl_secure_alloc(sizeof(cl_api_ctx));
    if (a.ctx == NULL || pipe2(api_wake, O_CLOEXEC) != 0) {
        CL_LOG_ERROR("cannot start: out of memory");
        return 1;
    }
    memset(a.ctx, 0, sizeof(*a.ctx));
    if (api_start(&a, config_path) != CL_OK) {
        CL_LOG_ERROR("cannot start: %s", cl_error_message());
        ec = 1;
        goto out;
    }
    if (cl_vsock_listen(cl_vsock_ctl(), (uint32_t)a.listen_port, &listener) != CL_OK) {
        CL_LOG_ERROR("cannot start: listening on vsock port %ld: %s", a.listen_port, cl_error_message());
        ec = 1;
        goto out;
    }
    struct sigaction sa = {.sa_handler = api_on_signal};
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    a.srv.ctx = a.ctx;
    a.srv.read_timeout = a.read_timeout;
    a.srv.open = api_tls_open;
    a.srv.close = api_tls_close;
    a.srv.hook_arg = &a;
    if (cl_api_server_start(&a.srv, a.max_connections, API_STACK) != CL_OK) {
        CL_LOG_ERROR("cannot start: %s", cl_error_message());
        ec = 1;
        goto out;
    }
    started = a.srv.started;
    CL_LOG_INFO("serving HTTPS for %s on vsock port %ld, %ld connections at a time; records in the %s store; %zu "
                "tokens; classifier %s, MRI model %s",
                "api", a.listen_port, started, a.ctx->store->kind, a.ctx->n_tokens, a.classifier.on ? "on" : "off",
                a.mri.on ? "on" : "off");
    ec = api_accept_loop(&a, listener);
    cl_api_server_stop(&a.srv);
    CL_LOG_INFO("stopped after %ld connections", atomic_load(&a.srv.served));
out:
    if (listener >= 0) (void)close(listener);
    cl_cas_identity_free(a.cas);
    api_upstream_free(&a.classifier);
    api_upstream_free(&a.mri);
    if (a.ctx != NULL) {
        cl_api_store_free(a.ctx->store);
        cl_secure_free(a.ctx); /* the data key: wiped */
    }
    if (a.nsm >= 0) (void)close(a.nsm);
    json_decref(a.root); /* the KMS secret key: jansson's free wipes it */
    return ec;
}
