/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of cloister-kms: libevent's evhttp parses HTTP (no parser of
 * our own); each worker thread runs its own event loop and evhttp instance
 * accepting on the one shared listening socket. Keep-alive is evhttp's.
 *
 * Wire protocol: the AWS JSON 1.1 protocol as KMS uses it (botocore
 * kms/2014-11-01/service-2.json metadata: protocol "json", jsonVersion 1.1,
 * targetPrefix "TrentService"): POST /, X-Amz-Target: TrentService.<Op>,
 * errors as {"__type": "<Name>Exception", "message": "..."}.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/sigv4.h"

#define KMS_MAX_HEADERS 64

typedef struct kms_worker {
    kms_server *srv;
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    bool started;
} kms_worker;

struct kms_server {
    kms_config cfg;
    kms_ctx ctx;
    SSL_CTX *tls; /* NULL: plain HTTP */
    int listen_fd;
    kms_worker *workers;
    int n_workers;
};

/* One table from status to AWS exception (used when an operation did not
 * name a more specific one). */
static const struct {
    const char *exception;
    cl_status code;
    int http;
} kms_error_table[] = {
    {"ValidationException", CL_ERR_USAGE, 400},         {"ValidationException", CL_ERR_FORMAT, 400},
    {"ValidationException", CL_ERR_LIMIT, 400},         {"InvalidCiphertextException", CL_ERR_AUTH, 400},
    {"IncorrectKeyException", CL_ERR_KEY, 400},         {"AlreadyExistsException", CL_ERR_EXISTS, 400},
    {"NotFoundException", CL_ERR_NOT_FOUND, 400},       {"KMSInvalidStateException", CL_ERR_STATE, 400},
    {"AccessDeniedException", CL_ERR_DENIED, 400},      {"UnsupportedOperationException", CL_ERR_UNSUPPORTED, 400},
    {"InvalidSignatureException", CL_ERR_EXPIRED, 400},
};

const char *kms_exception_for(const kms_call *c, cl_status rc, int *http_status)
{
    *http_status = 400;
    if (c != NULL && c->exception != NULL) return c->exception;
    for (size_t i = 0; i < sizeof(kms_error_table) / sizeof(kms_error_table[0]); i++) {
        if (kms_error_table[i].code == rc) {
            *http_status = kms_error_table[i].http;
            return kms_error_table[i].exception;
        }
    }
    *http_status = 500;
    return "KMSInternalException";
}

static void kms_request_id(char out[37])
{
    uint8_t r[16];
    if (cl_random(r, sizeof(r)) != CL_OK) memset(r, 0, sizeof(r));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    (void)snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
                   r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

static void kms_send(struct evhttp_request *req, int status, const char *request_id, const char *body)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", "application/x-amz-json-1.1");
    evhttp_add_header(out, "x-amzn-RequestId", request_id);
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(buf, body, strlen(body));
    evhttp_send_reply(req, status, status == 200 ? "OK" : status == 500 ? "Internal Server Error" : "Bad Request", buf);
    evbuffer_free(buf);
}

static void kms_send_error(struct evhttp_request *req, const char *request_id, int status, const char *exception,
                           const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "__type", exception, "message", message);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    kms_send(req, status, request_id, body ? body : "{\"__type\":\"KMSInternalException\"}");
    free(body);
    json_decref(j);
}

/* SigV4 verification (IAM User Guide, "Authenticating requests: AWS SigV4").
 * On failure writes the AWS exception name into *exc. */
static cl_status kms_authenticate(kms_server *s, struct evhttp_request *req, const uint8_t *body, size_t body_len,
                                  const kms_principal **who, const char **exc, int64_t now)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *authz = evhttp_find_header(in, "Authorization");
    *exc = "MissingAuthenticationTokenException";
    CL_ENSURE(authz != NULL, CL_ERR_DENIED, "Missing Authentication Token");
    cl_sigv4_auth a;
    *exc = "IncompleteSignatureException";
    CL_GUARD(cl_sigv4_parse_authorization(authz, strlen(authz), &a));
    const char *date = evhttp_find_header(in, "X-Amz-Date");
    CL_ENSURE(date != NULL, CL_ERR_DENIED,
              "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
    int64_t t;
    CL_GUARD(cl_sigv4_parse_amz_date(date, strlen(date), &t));
    CL_ENSURE(strncmp(a.date, date, 8) == 0, CL_ERR_DENIED, "Credential should be scoped to a valid date");
    /* The host header must be signed (SigV4: "host" is always required). */
    CL_ENSURE(strstr(a.signed_headers, "host") != NULL, CL_ERR_DENIED,
              "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    *exc = "UnrecognizedClientException";
    const kms_principal *p = NULL;
    for (size_t i = 0; i < s->cfg.n_principals; i++) {
        if (strcmp(s->cfg.principals[i].access_key_id, a.access_key_id) == 0) p = &s->cfg.principals[i];
    }
    CL_ENSURE(p != NULL, CL_ERR_DENIED, "The security token included in the request is invalid.");
    *exc = "InvalidSignatureException";
    CL_ENSURE(strcmp(a.region, s->cfg.region) == 0, CL_ERR_DENIED,
              "Credential should be scoped to a valid region, not '%s'.", a.region);
    CL_ENSURE(strcmp(a.service, "kms") == 0, CL_ERR_DENIED, "Credential should be scoped to correct service: 'kms'.");
    if (t < now - KMS_SIGNATURE_SKEW || t > now + KMS_SIGNATURE_SKEW) {
        char nowtxt[17];
        cl_sigv4_format_amz_date(now, nowtxt);
        CL_FAIL(CL_ERR_EXPIRED, "Signature expired: %s is now earlier than %s (%s - 15 min.)", date, nowtxt, nowtxt);
    }
    /* Recompute over the request as received. */
    cl_kv hdrs[KMS_MAX_HEADERS];
    size_t nh = 0;
    struct evkeyval *kv;
    for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        CL_ENSURE(nh < KMS_MAX_HEADERS, CL_ERR_DENIED, "too many headers");
        hdrs[nh].key = kv->key;
        hdrs[nh].value = kv->value;
        nh++;
    }
    uint8_t d[CL_SHA256_LEN];
    char ph[65];
    CL_GUARD(cl_sha256(body, body_len, d));
    for (size_t i = 0; i < 32; i++) (void)snprintf(ph + 2 * i, 3, "%02x", d[i]);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    cl_sigv4_request sr = {.method = "POST",
                           .path = uri ? evhttp_uri_get_path(uri) : "/",
                           .query = uri ? evhttp_uri_get_query(uri) : NULL,
                           .headers = hdrs,
                           .n_headers = nh,
                           .signed_headers = a.signed_headers,
                           .payload_sha256_hex = ph,
                           .amz_date = date,
                           .region = a.region,
                           .service = a.service};
    char sig[CL_SIGV4_SIG_HEX_LEN + 1];
    CL_GUARD(cl_sigv4_signature(p->secret, &sr, sig));
    CL_ENSURE(cl_ct_equal(sig, a.signature, CL_SIGV4_SIG_HEX_LEN), CL_ERR_DENIED,
              "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
              "Access Key and signing method. Consult the service documentation for details.");
    *who = p;
    *exc = NULL;
    return CL_OK;
}

static void kms_audit(kms_server *s, const kms_call *c, const char *principal, const char *op, const char *outcome)
{
    if (s->ctx.audit == NULL) return;
    cl_audit_event ev = {.time = c->now,
                         .request_id = c->request_id,
                         .principal = principal,
                         .operation = op,
                         .key_arn = c->key_arn[0] ? c->key_arn : NULL,
                         .context = &c->audit_ctx,
                         .outcome = outcome,
                         .attested_module_id = c->audit_module_id[0] ? c->audit_module_id : NULL,
                         .attested_pcr0 = c->audit_pcr0[0] ? c->audit_pcr0 : NULL};
    if (cl_audit_append(s->ctx.audit, &ev) != CL_OK) CL_LOG_ERROR("audit log: %s", cl_error_message());
}

/* What the key policy's global condition keys see of a request: every connection of a TLS
 * listener is TLS (aws:SecureTransport); aws:SourceIp is the TCP peer, which is a proxy's
 * address when one relays the request (the launcher's, for an enclave). */
static void kms_request_env(const kms_server *s, struct evhttp_request *req, int64_t now, kms_policy_env *env)
{
    env->secure_transport = s->tls != NULL;
    env->now = now;
    env->region = s->cfg.region;
    env->via_service = NULL; /* no Cloister service calls on a caller's behalf yet */
    env->source_ip[0] = '\0';
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    const struct sockaddr *sa = conn != NULL ? evhttp_connection_get_addr(conn) : NULL;
    const void *addr = NULL;
    if (sa != NULL && sa->sa_family == AF_INET) addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    if (sa != NULL && sa->sa_family == AF_INET6) addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (addr == NULL || inet_ntop(sa->sa_family, addr, env->source_ip, sizeof(env->source_ip)) == NULL)
        env->source_ip[0] = '\0'; /* unknown: aws:SourceIp is absent */
}

static void kms_handle(struct evhttp_request *req, void *arg)
{
    kms_server *s = arg;
    kms_call c;
    memset(&c, 0, sizeof(c));
    cl_kvlist_init(&c.audit_ctx);
    c.kms = &s->ctx;
    c.now = (int64_t)time(NULL);
    kms_request_env(s, req, c.now, &c.env);
    kms_request_id(c.request_id);
    char op[128] = "";
    const char *principal = "";
    const char *exc = NULL;
    char *out = NULL;
    int status = 400;
    cl_status rc = CL_OK;

    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    const uint8_t *body = blen ? evbuffer_pullup(ib, -1) : (const uint8_t *)"";
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        exc = "UnknownOperationException";
        CL_FAIL_GOTO(CL_ERR_USAGE, "KMS accepts POST only");
    }
    const char *target = evhttp_find_header(in, "X-Amz-Target");
    kms_op_fn fn = NULL;
    if (target != NULL && strncmp(target, "TrentService.", 13) == 0 && strlen(target + 13) < sizeof(op)) {
        (void)snprintf(op, sizeof(op), "%s", target + 13);
        fn = kms_op_find(op);
    }
    const kms_principal *who = NULL;
    rc = kms_authenticate(s, req, body, blen, &who, &exc, c.now);
    if (rc != CL_OK) goto out;
    principal = who->arn;
    c.principal = who;
    if (fn == NULL) {
        exc = "UnknownOperationException";
        CL_FAIL_GOTO(CL_ERR_USAGE, "Unknown operation %s", target ? target : "(no X-Amz-Target)");
    }
    c.operation = op;
    json_error_t jerr;
    c.req = json_loadb((const char *)body, blen, JSON_REJECT_DUPLICATES, &jerr);
    if (c.req == NULL || !json_is_object(c.req)) {
        exc = "SerializationException";
        CL_FAIL_GOTO(CL_ERR_FORMAT, "Start of structure or map found where not expected.");
    }
    c.resp = json_object();
    CL_ENSURE_GOTO(c.resp != NULL, CL_ERR_NOMEM, "out of memory");
    rc = fn(&c);
    if (rc != CL_OK) goto out;
    out = json_dumps(c.resp, JSON_COMPACT);
    CL_ENSURE_GOTO(out != NULL, CL_ERR_NOMEM, "cannot serialise the response");
    status = 200;
out:
    if (rc != CL_OK) {
        const char *name = exc != NULL ? exc : kms_exception_for(&c, rc, &status);
        if (exc != NULL && strcmp(exc, "MissingAuthenticationTokenException") == 0) status = 403;
        if (exc != NULL &&
            (strcmp(exc, "UnrecognizedClientException") == 0 || strcmp(exc, "InvalidSignatureException") == 0 ||
             strcmp(exc, "IncompleteSignatureException") == 0))
            status = 400;
        if (status >= 500) CL_LOG_ERROR("%s %s: %s", op, c.request_id, cl_error_message());
        char msg[sizeof(((cl_error *)0)->msg)];
        (void)snprintf(msg, sizeof(msg), "%s", cl_error_message());
        /* Audit first: no answer leaves without its line in the log. */
        kms_audit(s, &c, principal, op, name);
        kms_send_error(req, c.request_id, status, name, msg);
    } else {
        kms_audit(s, &c, principal, op, "ok");
        kms_send(req, 200, c.request_id, out);
    }
    /* Responses can hold plaintext (Decrypt, GenerateDataKey, GenerateRandom):
     * wipe the serialised body and the member's string before jansson frees them. */
    if (out != NULL) cl_memzero(out, strlen(out));
    const char *ptv = json_string_value(json_object_get(c.resp, "Plaintext"));
    if (ptv != NULL) cl_memzero((void *)ptv, strlen(ptv));
    free(out);
    json_decref(c.req);
    json_decref(c.resp);
    cl_kvlist_free(&c.audit_ctx);
    cl_error_clear();
}

static void *kms_worker_main(void *arg)
{
    kms_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static cl_status kms_listen(kms_server *s)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->cfg.port);
    CL_ENSURE(inet_pton(AF_INET, s->cfg.host, &sa.sin_addr) == 1, CL_ERR_USAGE,
              "listen address %s is not an IPv4 address", s->cfg.host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "socket");
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Inherited by every accepted connection (Linux). Over TLS an answer leaves as several
     * records, one write each; with Nagle's algorithm the last waits for the client's delayed
     * ACK: 40 ms per request. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
        cl_status rc = CL_RAISE_ERRNO(CL_ERR_IO, "cannot listen on %s:%d", s->cfg.host, s->cfg.port);
        close(fd);
        return rc;
    }
    socklen_t len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0) s->cfg.port = ntohs(sa.sin_port);
    s->listen_fd = fd;
    return CL_OK;
}

/* Encrypted PEM keys are refused rather than prompted for on a terminal. */
static int kms_tls_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1), OpenSSL's default
 * cipher suites, the certificate chain and key of the config file. */
static cl_status kms_tls_setup(kms_server *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot create a TLS context");
    cl_status rc = CL_OK;
    SSL_CTX_set_default_passwd_cb(ctx, kms_tls_no_password);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot require TLS 1.2");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cfg.tls_cert) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "cannot load the TLS certificate chain %s (tls.cert, PEM)", s->cfg.tls_cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "cannot load the TLS private key %s (tls.key, unencrypted PEM)",
                         s->cfg.tls_key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_KEY, "TLS key %s does not match certificate %s", s->cfg.tls_key, s->cfg.tls_cert);
    s->tls = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return rc;
}

/*
 * A worker's event base. EPOLL_USE_CHANGELIST folds the add/del of read and
 * write interest that evhttp does around every keep-alive request into at most
 * one epoll_ctl per fd per loop turn (strace under wrk: four epoll_ctl per
 * Decrypt without it). Its caveat, fds dup()ed under the base, does not apply:
 * evhttp owns its sockets. The base keeps its lock: kms_server_free calls
 * event_base_loopexit from another thread.
 */
static struct event_base *kms_worker_base(void)
{
    struct event_config *ec = event_config_new();
    if (ec == NULL) return NULL;
    (void)event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *b = event_base_new_with_config(ec);
    event_config_free(ec);
    return b != NULL ? b : event_base_new();
}

/* evhttp asks for each accepted connection's bufferevent: a TLS one. */
static struct bufferevent *kms_tls_bev(struct event_base *base, void *arg)
{
    kms_server *s = arg;
    SSL *ssl = SSL_new(s->tls);
    if (ssl == NULL) return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* Clients that close without close_notify (most HTTP clients) are not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* The root key: a key file, or a passphrase through scrypt. */
static cl_status kms_root_key_open(kms_server *s)
{
    const kms_config *cfg = &s->cfg;
    char path[KMS_PATH_MAX + 16];
    if (cfg->passphrase_file[0] == '\0' && cfg->passphrase_env[0] == '\0') {
        if (cfg->root_key_file[0] != '\0')
            (void)snprintf(path, sizeof(path), "%s", cfg->root_key_file);
        else
            (void)snprintf(path, sizeof(path), "%s/root.key", cfg->data_dir);
        return kms_root_key_load(path, &s->ctx.root);
    }
    cl_buf pass;
    cl_buf_init_secret(&pass, KMS_PASSPHRASE_MAX + 2);
    (void)snprintf(path, sizeof(path), "%s/root.kdf", cfg->data_dir);
    cl_status rc = kms_passphrase_read(cfg, &pass);
    if (rc == CL_OK) rc = kms_root_key_derive(pass.data, pass.len, path, cfg->scrypt_log2_n, &s->ctx.root);
    cl_buf_free(&pass);
    return rc;
}

cl_status kms_server_start(const kms_config *cfg, kms_server **out)
{
    cl_status rc = CL_OK;
    kms_server *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    s->cfg = *cfg;
    s->listen_fd = -1;
    s->ctx.cfg = &s->cfg;
    char path[KMS_PATH_MAX + 16];
    CL_GUARD_CTX_GOTO(kms_root_key_open(s), "loading the root key");
    if (cfg->tls_cert[0] != '\0') CL_GUARD_GOTO(kms_tls_setup(s));
    if (cfg->store_conninfo[0] != '\0') {
        /* One connection per worker: each runs one request at a time. */
        CL_GUARD_GOTO(
            kms_store_open_pg(cfg->store_conninfo, (size_t)(cfg->threads > 0 ? cfg->threads : 2), &s->ctx.store));
    } else {
        if (cfg->store_path[0] != '\0')
            (void)snprintf(path, sizeof(path), "%s", cfg->store_path);
        else
            (void)snprintf(path, sizeof(path), "%s/keys.db", cfg->data_dir);
        CL_GUARD_GOTO(kms_store_open_sqlite(path, &s->ctx.store));
    }
    CL_GUARD_GOTO(kms_cache_new(4096, &s->ctx.cache));
    if (cfg->audit_path[0] != '\0')
        (void)snprintf(path, sizeof(path), "%s", cfg->audit_path);
    else
        (void)snprintf(path, sizeof(path), "%s/audit.log", cfg->data_dir);
    CL_GUARD_GOTO(cl_audit_open(path, &s->ctx.audit));
    CL_GUARD_GOTO(kms_listen(s));
    CL_ENSURE_GOTO(evthread_use_pthreads() == 0, CL_ERR_INTERNAL, "libevent has no pthreads support");
    s->n_workers = cfg->threads > 0 ? cfg->threads : 2;
    s->workers = calloc((size_t)s->n_workers, sizeof(*s->workers));
    CL_ENSURE_GOTO(s->workers != NULL, CL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_workers; i++) {
        kms_worker *w = &s->workers[i];
        w->srv = s;
        w->base = kms_worker_base();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        CL_ENSURE_GOTO(w->http != NULL, CL_ERR_NOMEM, "cannot create an HTTP server");
        /* Bodies over the limit get 413 from evhttp before we see them. */
        evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->max_body);
        evhttp_set_max_headers_size(w->http, 16384);
        evhttp_set_timeout(w->http, 60);
        evhttp_set_allowed_methods(w->http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
        evhttp_set_gencb(w->http, kms_handle, s);
        if (s->tls != NULL) evhttp_set_bevcb(w->http, kms_tls_bev, s);
        CL_ENSURE_GOTO(evhttp_accept_socket(w->http, s->listen_fd) == 0, CL_ERR_IO, "cannot accept on the socket");
    }
    for (int i = 0; i < s->n_workers; i++) {
        CL_ENSURE_GOTO(pthread_create(&s->workers[i].thread, NULL, kms_worker_main, &s->workers[i]) == 0,
                       CL_ERR_INTERNAL, "cannot start a worker thread");
        s->workers[i].started = true;
    }
    *out = s;
out:
    if (rc != CL_OK) kms_server_free(s);
    return rc;
}

static void kms_on_signal(evutil_socket_t sig, short ev, void *arg)
{
    (void)sig;
    (void)ev;
    event_base_loopbreak(arg);
}

cl_status kms_server_run(kms_server *s)
{
    printf("cloister-kms listening on %s://%s:%d (region %s, %d worker threads)\n", s->tls ? "https" : "http",
           s->cfg.host, s->cfg.port, s->cfg.region, s->n_workers);
    fflush(stdout);
    struct event_base *base = event_base_new();
    CL_ENSURE(base != NULL, CL_ERR_NOMEM, "out of memory");
    struct event *si = evsignal_new(base, SIGINT, kms_on_signal, base);
    struct event *st = evsignal_new(base, SIGTERM, kms_on_signal, base);
    if (si) event_add(si, NULL);
    if (st) event_add(st, NULL);
    event_base_dispatch(base);
    CL_LOG_INFO("stopping");
    if (si) event_free(si);
    if (st) event_free(st);
    event_base_free(base);
    return CL_OK;
}

void kms_server_free(kms_server *s)
{
    if (s == NULL) return;
    for (int i = 0; s->workers != NULL && i < s->n_workers; i++) {
        if (s->workers[i].started) {
            /* loopexit, not loopbreak: it is an event, so it also stops a
             * loop that has not started dispatching yet (loopbreak's flag
             * is reset when the loop starts). */
            event_base_loopexit(s->workers[i].base, NULL);
            pthread_join(s->workers[i].thread, NULL);
        }
    }
    for (int i = 0; s->workers != NULL && i < s->n_workers; i++) {
        if (s->workers[i].http) evhttp_free(s->workers[i].http);
        if (s->workers[i].base) event_base_free(s->workers[i].base);
    }
    free(s->workers);
    if (s->listen_fd >= 0) close(s->listen_fd);
    cl_audit_close(s->ctx.audit);
    kms_store_close(s->ctx.store);
    kms_cache_free(s->ctx.cache);
    kms_root_key_free(&s->ctx.root);
    SSL_CTX_free(s->tls);
    cl_memzero(s->cfg.store_conninfo, sizeof(s->cfg.store_conninfo)); /* may hold a password */
    free(s);
}
