/* SPDX-License-Identifier: Apache-2.0 */
/* The guest side of the certificate service: see cloister/cas.h and docs/cas.md. */
#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/cas.h"
#include "cloister/crypto.h"
#include "cloister/http.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/recipient.h"

#include "tls_socket_internal.h"

#define CAS_ANSWER_MAX ((size_t)1 << 20)
#define CAS_NAME_MAX 128
#define CAS_SECRET_MAX ((size_t)64 << 10)

/* One issued identity: what a connection uses, swapped whole on renewal. */
typedef struct cas_state {
    EVP_PKEY *pkey; /* the certificate's key, in OpenSSL's secure heap */
    SSL_CTX *ctx;   /* server context with the chain and key */
    cl_buf chain;   /* PEM, leaf then CA */
    char serial[48];
    int64_t issued, not_before, not_after;
    size_t n_secrets;
    char names[CL_CAS_MAX_SECRETS][CAS_NAME_MAX + 1];
    cl_buf values[CL_CAS_MAX_SECRETS]; /* secret buffers: locked, wiped when freed */
} cas_state;

struct cl_cas_identity {
    cl_cas_config cfg;
    char *endpoint, *ca_file, *session, *service; /* cfg's strings point here */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cas_state *cur; /* under mu */
    unsigned generation;
    bool thread_started, stop, soon;
    pthread_t thread;
};

static void cas_state_free(cas_state *s)
{
    if (s == NULL) return;
    EVP_PKEY_free(s->pkey);
    SSL_CTX_free(s->ctx); /* connections in flight hold their own reference */
    cl_buf_free(&s->chain);
    for (size_t i = 0; i < s->n_secrets; i++) cl_buf_free(&s->values[i]);
    cl_memzero(s, sizeof(*s));
    free(s);
}

static int64_t cas_now(void) { return (int64_t)time(NULL); }

static char *cas_dup(const char *s) { return s != NULL ? strdup(s) : NULL; }

/* --- talking to the service ----------------------------------------------------------- */

/* One exchange; a 200 answer's JSON in *answer. Anything else: the service's {"code", "message"}
 * as the failure (CL_ERR_DENIED for 403, CL_ERR_NOT_FOUND for 404, CL_ERR_REMOTE otherwise). */
static CL_MUST_USE cl_status cas_call(cl_cas_identity *id, const char *method, const char *path, const char *body,
                                      json_t **answer)
{
    cl_status rc = CL_OK;
    cl_http_client *http = NULL;
    cl_buf resp;
    cl_buf_init_secret(&resp, CAS_ANSWER_MAX);
    json_t *j = NULL;
    int status = 0;
    *answer = NULL;
    cl_http_config hc = {.ca_file = id->ca_file,
                         .vsock_port = id->cfg.vsock_port,
                         .timeout_ms = id->cfg.timeout_ms,
                         .max_body = CAS_ANSWER_MAX};
    static const cl_http_header json_hdr[] = {{"Content-Type", "application/json"}};
    CL_GUARD_CTX_GOTO(cl_http_client_new(id->endpoint, &hc, &http), "certificate service %s", id->endpoint);
    rc = cl_http_request(http, method, path, body != NULL ? json_hdr : NULL, body != NULL ? 1 : 0, body,
                         body != NULL ? strlen(body) : 0, &status, &resp);
    if (rc != CL_OK) {
        rc = cl_error_wrap("certificate service %s: %s %s", id->endpoint, method, path);
        goto out;
    }
    json_error_t jerr;
    j = json_loadb((const char *)resp.data, resp.len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(json_is_object(j), CL_ERR_FORMAT, "certificate service %s: %s %s answered %d with no JSON object",
                   id->endpoint, method, path, status);
    if (status != 200) {
        const char *code = json_string_value(json_object_get(j, "code"));
        const char *msg = json_string_value(json_object_get(j, "message"));
        cl_status kind = status == 403 ? CL_ERR_DENIED : status == 404 ? CL_ERR_NOT_FOUND : CL_ERR_REMOTE;
        CL_FAIL_GOTO(kind, "the certificate service refused %s %s: %s: %s", method, path, code ? code : "?",
                     msg ? msg : "(no message)");
    }
    *answer = j;
    j = NULL;
out:
    json_decref(j);
    cl_buf_free(&resp);
    cl_http_client_free(http);
    return rc;
}

/* A fresh nonce from GET /v1/nonce. */
static CL_MUST_USE cl_status cas_nonce(cl_cas_identity *id, cl_buf *nonce)
{
    json_t *a = NULL;
    CL_GUARD(cas_call(id, "GET", "/v1/nonce", NULL, &a));
    json_t *n = json_object_get(a, "nonce");
    cl_status rc = json_is_string(n) && json_string_length(n) <= (size_t)2 * CL_NSM_MAX_FIELD
                       ? cl_hex_decode(json_string_value(n), json_string_length(n), nonce)
                       : CL_RAISE(CL_ERR_FORMAT, "the certificate service's nonce is not hex");
    json_decref(a);
    return rc;
}

/* The chain of the answer as an SSL_CTX with key, checking that its leaf is for key. */
static CL_MUST_USE cl_status cas_server_ctx(EVP_PKEY *key, const cl_buf *chain, SSL_CTX **out, int64_t *not_before,
                                            int64_t *not_after)
{
    cl_status rc = CL_OK;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *b = BIO_new_mem_buf(chain->data, (int)chain->len);
    X509 *leaf = NULL, *extra = NULL;
    if (ctx == NULL || b == NULL) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "out of memory for a TLS context");
    leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (leaf == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the certificate service's answer holds no PEM certificate");
    /* A host relaying the exchange must not get us to serve a certificate for a key it holds. */
    if (X509_check_private_key(leaf, key) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_KEY, "the certificate service's certificate is not for this enclave's key");
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "setting up TLS with the issued certificate");
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "adding the CA to the chain");
        extra = NULL;
    }
    ERR_clear_error(); /* the end of the PEM */
    /* TLS 1.2 and 1.3 (RFC 8996), no renegotiation; plaintext wiped once read. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "requiring TLS 1.2");
    (void)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CLEANSE_PLAINTEXT);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1) *not_after = (int64_t)timegm(&tm);
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notBefore(leaf), &tm) == 1) *not_before = (int64_t)timegm(&tm);
    *out = ctx;
    ctx = NULL;
out:
    X509_free(leaf);
    X509_free(extra);
    BIO_free(b);
    SSL_CTX_free(ctx);
    return rc;
}

/* {"secrets": {"NAME": "<base64>"}} from the CMS the service sealed to rcpt, into st. */
static CL_MUST_USE cl_status cas_open_secrets(const cl_recipient *rcpt, const char *b64, size_t b64_len, cas_state *st)
{
    cl_status rc = CL_OK;
    cl_buf cms, pt;
    cl_buf_init(&cms, CAS_ANSWER_MAX);
    cl_buf_init_secret(&pt, CAS_ANSWER_MAX);
    json_t *j = NULL, *all = NULL, *v = NULL;
    const char *k = NULL;
    CL_GUARD_CTX_GOTO(cl_base64_decode(b64, b64_len, false, &cms), "the service's secrets");
    CL_GUARD_CTX_GOTO(cl_recipient_open(rcpt, cms.data, cms.len, &pt), "the service's secrets");
    json_error_t jerr;
    j = json_loadb((const char *)pt.data, pt.len, JSON_REJECT_DUPLICATES, &jerr);
    all = json_object_get(j, "secrets");
    CL_ENSURE_GOTO(json_is_object(all), CL_ERR_FORMAT, "the service's secrets are not {\"secrets\": {...}}");
    CL_ENSURE_GOTO(json_object_size(all) <= CL_CAS_MAX_SECRETS, CL_ERR_LIMIT, "the service sent %zu secrets, over %d",
                   json_object_size(all), CL_CAS_MAX_SECRETS);
    json_object_foreach(all, k, v)
    {
        CL_ENSURE_GOTO(json_is_string(v) && strlen(k) <= CAS_NAME_MAX, CL_ERR_FORMAT,
                       "the service's secret %.64s is not base64 text", k);
        (void)snprintf(st->names[st->n_secrets], sizeof(st->names[0]), "%s", k);
        cl_buf_init_secret(&st->values[st->n_secrets], CAS_SECRET_MAX);
        st->n_secrets++;
        CL_GUARD_CTX_GOTO(
            cl_base64_decode(json_string_value(v), json_string_length(v), false, &st->values[st->n_secrets - 1]),
            "the service's secret %s", k);
    }
out:
    /* jansson's copies of the secrets (base64), wiped before it frees them. */
    json_object_foreach(all, k, v)
    {
        if (json_is_string(v)) cl_memzero(CL_UNCONST(json_string_value(v)), json_string_length(v));
    }
    json_decref(j);
    cl_buf_free(&cms);
    cl_buf_free(&pt);
    return rc;
}

/* One issuance into a new state (the steps of cloister/cas.h). */
static CL_MUST_USE cl_status cas_issue(cl_cas_identity *id, cas_state **out)
{
    cl_status rc = CL_OK;
    cas_state *st = calloc(1, sizeof(*st));
    cl_recipient rcpt;
    cl_recipient_init(&rcpt);
    cl_buf nonce, spki, doc, csr;
    cl_buf_init(&nonce, CL_NSM_MAX_FIELD);
    cl_buf_init(&spki, 16384);
    cl_buf_init(&doc, CL_NSM_MAX_RESPONSE);
    cl_buf_init(&csr, CL_CSR_MAX);
    json_t *req = NULL, *ans = NULL;
    char *body = NULL;
    uint8_t digest[CL_SHA256_LEN];
    CL_ENSURE_GOTO(st != NULL, CL_ERR_NOMEM, "out of memory");
    cl_buf_init(&st->chain, (size_t)128 << 10);
    CL_GUARD_GOTO(cas_nonce(id, &nonce));
    /* The recipient key first: it sets up OpenSSL's secure heap, where the certificate key's
     * private part then lives too. */
    CL_GUARD_GOTO(cl_recipient_generate(&rcpt));
    void *key = NULL;
    CL_GUARD_GOTO(cl_key_generate(id->cfg.key_type != CL_KEY_NONE ? id->cfg.key_type : CL_KEY_EC_P256, &key));
    st->pkey = key;
    st->issued = cas_now();
    CL_GUARD_GOTO(cl_key_spki(st->pkey, &spki));
    CL_GUARD_GOTO(cl_sha256(spki.data, spki.len, digest));
    if (id->cfg.attest != NULL)
        rc = id->cfg.attest(id->cfg.attest_arg, digest, sizeof(digest), nonce.data, nonce.len, rcpt.spki.data,
                            rcpt.spki.len, &doc);
    else
        rc = cl_nsm_get_attestation_doc(id->cfg.nsm_fd, digest, sizeof(digest), nonce.data, nonce.len, rcpt.spki.data,
                                        rcpt.spki.len, &doc);
    CL_GUARD_CTX_GOTO(rc, "attestation device");
    CL_GUARD_GOTO(cl_csr_make(st->pkey, id->service, doc.data, doc.len, &csr));
    req = json_pack("{s:s, s:s, s:s}", "session", id->session, "service", id->service, "csr", cl_buf_cstr(&csr));
    body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cas_call(id, "POST", "/v1/certificate", body, &ans));
    json_t *chain = json_object_get(ans, "certificate_chain");
    if (json_is_string(chain)) {
        CL_GUARD_GOTO(cl_buf_append(&st->chain, json_string_value(chain), json_string_length(chain)));
        CL_GUARD_GOTO(cas_server_ctx(st->pkey, &st->chain, &st->ctx, &st->not_before, &st->not_after));
        (void)snprintf(
            st->serial, sizeof(st->serial), "%s",
            json_is_string(json_object_get(ans, "serial")) ? json_string_value(json_object_get(ans, "serial")) : "?");
    }
    json_t *sec = json_object_get(ans, "secrets");
    if (json_is_string(sec))
        CL_GUARD_GOTO(cas_open_secrets(&rcpt, json_string_value(sec), json_string_length(sec), st));
    CL_ENSURE_GOTO(st->ctx != NULL || st->n_secrets > 0, CL_ERR_FORMAT,
                   "the certificate service gave service %s of session %s neither a certificate nor secrets",
                   id->service, id->session);
    *out = st;
    st = NULL;
out:
    free(body);
    json_decref(req);
    json_decref(ans);
    cas_state_free(st);
    cl_recipient_free(&rcpt);
    cl_buf_free(&nonce);
    cl_buf_free(&spki);
    cl_buf_free(&doc);
    cl_buf_free(&csr);
    return rc;
}

/* --- the identity --------------------------------------------------------------------- */

cl_status cl_cas_renew(cl_cas_identity *id)
{
    cas_state *st = NULL;
    cl_status rc = cas_issue(id, &st);
    if (rc != CL_OK) return cl_error_wrap("session %s, service %s", id->session, id->service);
    char serial[sizeof(st->serial)];
    int64_t not_after = st->not_after;
    (void)snprintf(serial, sizeof(serial), "%s", st->serial);
    pthread_mutex_lock(&id->mu);
    cas_state *old = id->cur;
    id->cur = st; /* from here another renewal may replace (and free) st */
    unsigned generation = ++id->generation;
    pthread_mutex_unlock(&id->mu);
    cas_state_free(old);
    CL_LOG_INFO("cas: session %s, service %s: certificate %s valid until %lld (issuance %u)", id->session, id->service,
                serial, (long long)not_after, generation);
    return CL_OK;
}

cl_status cl_cas_obtain(const cl_cas_config *cfg, cl_cas_identity **out)
{
    *out = NULL;
    CL_ENSURE(cfg->endpoint != NULL && cfg->session != NULL && cfg->service != NULL, CL_ERR_USAGE,
              "the certificate service needs an endpoint, a session and a service");
    CL_ENSURE(strlen(cfg->session) <= CAS_NAME_MAX && strlen(cfg->service) <= 64, CL_ERR_USAGE,
              "session or service name too long");
    cl_cas_identity *id = calloc(1, sizeof(*id));
    CL_ENSURE(id != NULL, CL_ERR_NOMEM, "out of memory");
    id->cfg = *cfg;
    pthread_mutex_init(&id->mu, NULL);
    pthread_cond_init(&id->cv, NULL);
    id->endpoint = cas_dup(cfg->endpoint);
    id->ca_file = cas_dup(cfg->ca_file);
    id->session = cas_dup(cfg->session);
    id->service = cas_dup(cfg->service);
    if (id->endpoint == NULL || id->session == NULL || id->service == NULL || (cfg->ca_file && id->ca_file == NULL)) {
        cl_cas_identity_free(id);
        CL_FAIL(CL_ERR_NOMEM, "out of memory");
    }
    if (strncmp(id->endpoint, "http://", 7) == 0)
        CL_LOG_WARN("cas: the certificate service %s is plain HTTP: the host relaying it could give this enclave a "
                    "certificate and secrets of its own choosing (use https:// with a CA file in the image)",
                    id->endpoint);
    cl_status rc = cl_cas_renew(id);
    if (rc != CL_OK) {
        cl_cas_identity_free(id);
        return rc;
    }
    *out = id;
    return CL_OK;
}

/* When the current identity should be renewed. */
static int64_t cas_renew_time(const cl_cas_identity *id, const cas_state *st)
{
    if (id->cfg.renew_after > 0) return st->issued + id->cfg.renew_after;
    int64_t life = st->not_after - st->not_before;
    return st->not_before + (life > 0 ? life * 2 / 3 : 3600);
}

static void *cas_renewal_main(void *arg)
{
    cl_cas_identity *id = arg;
    int64_t retry = id->cfg.retry_after > 0 ? id->cfg.retry_after : CL_CAS_RETRY_DEFAULT;
    int64_t next = 0;
    pthread_mutex_lock(&id->mu);
    next = cas_renew_time(id, id->cur);
    while (!id->stop) {
        if (!id->soon && cas_now() < next) {
            struct timespec ts = {.tv_sec = (time_t)next, .tv_nsec = 0};
            (void)pthread_cond_timedwait(&id->cv, &id->mu, &ts);
            continue;
        }
        id->soon = false;
        pthread_mutex_unlock(&id->mu);
        cl_status rc = cl_cas_renew(id);
        char msg[sizeof(((cl_error *)0)->msg)];
        (void)snprintf(msg, sizeof(msg), "%s", rc == CL_OK ? "renewed" : cl_error_message());
        pthread_mutex_lock(&id->mu);
        if (rc == CL_OK) {
            next = cas_renew_time(id, id->cur);
        } else {
            /* The running enclave keeps what it has until it expires: a refusal (a measurement taken
             * out of the session) stops renewals, not the service it is giving now. */
            CL_LOG_WARN("cas: renewal refused or failed, keeping certificate %s until %lld; trying again in %lld s: %s",
                        id->cur->serial, (long long)id->cur->not_after, (long long)retry, msg);
            next = cas_now() + retry;
        }
        if (id->cfg.on_renewal != NULL) {
            pthread_mutex_unlock(&id->mu);
            id->cfg.on_renewal(id->cfg.on_renewal_arg, rc, msg);
            pthread_mutex_lock(&id->mu);
        }
        cl_error_clear();
    }
    pthread_mutex_unlock(&id->mu);
    return NULL;
}

cl_status cl_cas_start_renewal(cl_cas_identity *id)
{
    pthread_mutex_lock(&id->mu);
    bool started = id->thread_started;
    pthread_mutex_unlock(&id->mu);
    if (started) return CL_OK;
    CL_ENSURE(pthread_create(&id->thread, NULL, cas_renewal_main, id) == 0, CL_ERR_INTERNAL,
              "cannot start the certificate renewal thread");
    pthread_mutex_lock(&id->mu);
    id->thread_started = true;
    pthread_mutex_unlock(&id->mu);
    return CL_OK;
}

void cl_cas_renew_soon(cl_cas_identity *id)
{
    pthread_mutex_lock(&id->mu);
    id->soon = true;
    pthread_cond_broadcast(&id->cv);
    pthread_mutex_unlock(&id->mu);
}

void cl_cas_identity_free(cl_cas_identity *id)
{
    if (id == NULL) return;
    pthread_mutex_lock(&id->mu);
    id->stop = true;
    pthread_cond_broadcast(&id->cv);
    bool started = id->thread_started;
    pthread_mutex_unlock(&id->mu);
    if (started) pthread_join(id->thread, NULL);
    cas_state_free(id->cur);
    free(id->endpoint);
    free(id->ca_file);
    free(id->session);
    free(id->service);
    pthread_cond_destroy(&id->cv);
    pthread_mutex_destroy(&id->mu);
    free(id);
}

/* --- what the program uses ------------------------------------------------------------- */

cl_status cl_cas_chain_pem(cl_cas_identity *id, cl_buf *out)
{
    pthread_mutex_lock(&id->mu);
    cl_status rc = id->cur->chain.len > 0 ? cl_buf_append(out, id->cur->chain.data, id->cur->chain.len)
                                          : CL_RAISE(CL_ERR_NOT_FOUND, "service %s has no certificate", id->service);
    pthread_mutex_unlock(&id->mu);
    return rc;
}

int64_t cl_cas_not_after(cl_cas_identity *id)
{
    pthread_mutex_lock(&id->mu);
    int64_t t = id->cur->not_after;
    pthread_mutex_unlock(&id->mu);
    return t;
}

cl_status cl_cas_serial(cl_cas_identity *id, char *out, size_t size)
{
    pthread_mutex_lock(&id->mu);
    int n = snprintf(out, size, "%s", id->cur->serial);
    pthread_mutex_unlock(&id->mu);
    CL_ENSURE(n >= 0 && (size_t)n < size, CL_ERR_LIMIT, "a serial needs %d bytes", n + 1);
    return CL_OK;
}

unsigned cl_cas_generation(cl_cas_identity *id)
{
    pthread_mutex_lock(&id->mu);
    unsigned g = id->generation;
    pthread_mutex_unlock(&id->mu);
    return g;
}

cl_status cl_cas_secret(cl_cas_identity *id, const char *name, cl_buf *out)
{
    cl_status rc = CL_OK;
    bool found = false;
    pthread_mutex_lock(&id->mu);
    for (size_t i = 0; i < id->cur->n_secrets && !found; i++) {
        if (strcmp(id->cur->names[i], name) != 0) continue;
        found = true;
        rc = cl_buf_append(out, id->cur->values[i].data, id->cur->values[i].len);
    }
    pthread_mutex_unlock(&id->mu);
    if (!found)
        CL_FAIL(CL_ERR_NOT_FOUND, "service %s of session %s was given no secret %s", id->service, id->session, name);
    return rc;
}

cl_status cl_cas_secret_at(cl_cas_identity *id, size_t i, char *name, size_t name_size, cl_buf *out)
{
    cl_status rc = CL_OK;
    pthread_mutex_lock(&id->mu);
    if (i >= id->cur->n_secrets) {
        rc = CL_RAISE(CL_ERR_NOT_FOUND, "service %s has %zu secrets", id->service, id->cur->n_secrets);
    } else if (snprintf(name, name_size, "%s", id->cur->names[i]) >= (int)name_size) {
        rc = CL_RAISE(CL_ERR_LIMIT, "a secret's name is longer than %zu bytes", name_size - 1);
    } else {
        rc = cl_buf_append(out, id->cur->values[i].data, id->cur->values[i].len);
    }
    pthread_mutex_unlock(&id->mu);
    return rc;
}

cl_status cl_cas_key_pem(cl_cas_identity *id, cl_buf *out)
{
    pthread_mutex_lock(&id->mu);
    cl_status rc = cl_key_private_pem(id->cur->pkey, out);
    pthread_mutex_unlock(&id->mu);
    return rc;
}

cl_status cl_cas_tls_accept(cl_cas_identity *id, int fd, cl_ratls_conn *out)
{
    out->ssl = NULL;
    out->fd = -1;
    pthread_mutex_lock(&id->mu);
    SSL_CTX *ctx = id->cur->ctx;
    if (ctx != NULL) SSL_CTX_up_ref(ctx); /* a renewal may swap it meanwhile */
    pthread_mutex_unlock(&id->mu);
    CL_ENSURE(ctx != NULL, CL_ERR_STATE, "service %s has no certificate to serve TLS with", id->service);
    cl_status rc = CL_OK;
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "TLS: SSL_new");
    CL_GUARD_GOTO(cl_tls_attach_socket(ssl, fd, "TLS"));
    ERR_clear_error();
    int r = SSL_accept(ssl);
    if (r != 1) {
        int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
            CL_FAIL_GOTO(CL_ERR_IO, "TLS handshake: the client went away (%s)", errno ? strerror(errno) : "EOF");
        CL_FAIL_SSL_GOTO(CL_ERR_AUTH, "TLS handshake failed");
    }
    out->ssl = ssl;
    out->fd = fd;
    ssl = NULL;
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return rc;
}
