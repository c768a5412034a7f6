/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RA-TLS (docs/formats/ratls.md): TLS 1.3 (RFC 8446) whose self-signed server
 * certificate (RFC 5280) carries a Nitro attestation document binding the
 * certificate's key, fetched per connection for the nonce the client sent in its
 * ClientHello.
 */
#include "cloister/ratls.h"

#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"

#include "tls_socket_internal.h"

/* TLS ExtensionType supported_versions (RFC 8446 section 4.2.1). */
#define TLS_EXT_SUPPORTED_VERSIONS 43
#define CERT_SECONDS 3600

/* The state of one handshake, reached from OpenSSL's callbacks through SSL app data. */
typedef struct ratls_hs {
    cl_ratls_server *server;
    cl_ratls_client *client;
    uint8_t ext[1 + CL_RATLS_NONCE_MAX]; /* the ClientHello extension: opaque nonce<16..64> */
    uint8_t nonce[CL_RATLS_NONCE_MAX];
    size_t nonce_len;
    bool have_nonce;
    cl_attest_doc *doc;
    /* the first failure raised inside a callback, re-raised after the handshake */
    cl_status rc;
    const char *file;
    int line;
    char msg[sizeof(((cl_error *)0)->msg)];
} ratls_hs;

static void hs_capture(ratls_hs *hs)
{
    if (hs->rc != CL_OK) return;
    const cl_error *e = cl_error_last();
    hs->rc = e->code != CL_OK ? e->code : CL_ERR_INTERNAL;
    hs->file = e->file;
    hs->line = e->line;
    (void)snprintf(hs->msg, sizeof(hs->msg), "%s", e->msg);
}

static int64_t wall_clock(void) { return (int64_t)time(NULL); }

/* --- binding and evidence ------------------------------------------------------ */

cl_status cl_ratls_binding_make(const uint8_t *spki, size_t spki_len, uint8_t out[CL_RATLS_BINDING_LEN])
{
    CL_ENSURE(spki != NULL && spki_len > 0, CL_ERR_USAGE, "no public key to bind");
    static const uint8_t tag[CL_RATLS_BINDING_TAG_LEN] = CL_RATLS_BINDING_TAG;
    memcpy(out, tag, sizeof(tag));
    unsigned int len = 0;
    if (EVP_Digest(spki, spki_len, out + CL_RATLS_BINDING_TAG_LEN, &len, EVP_sha384(), NULL) != 1 || len != 48)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "SHA-384 of the SubjectPublicKeyInfo");
    return CL_OK;
}

static CL_MUST_USE cl_status der_append_len(cl_buf *b, size_t n)
{
    if (n < 0x80) return cl_buf_append_u8(b, (uint8_t)n);
    if (n <= 0xff) {
        CL_GUARD(cl_buf_append_u8(b, 0x81));
        return cl_buf_append_u8(b, (uint8_t)n);
    }
    CL_ENSURE(n <= 0xffff, CL_ERR_LIMIT, "DER length %zu is over 65535", n);
    CL_GUARD(cl_buf_append_u8(b, 0x82));
    return cl_buf_append_u16be(b, (uint16_t)n);
}

cl_status cl_ratls_evidence_encode(const uint8_t *doc, size_t doc_len, cl_buf *out)
{
    CL_ENSURE(doc != NULL && doc_len > 0, CL_ERR_USAGE, "no attestation document to encode");
    CL_ENSURE(doc_len <= CL_ATTEST_MAX_DOC_LEN, CL_ERR_LIMIT, "attestation document of %zu bytes is over %zu", doc_len,
              CL_ATTEST_MAX_DOC_LEN);
    size_t len_len = doc_len < 0x80 ? 1 : doc_len <= 0xff ? 2 : 3;
    size_t inner = 3 + 1 + len_len + doc_len; /* INTEGER 1, OCTET STRING */
    CL_GUARD(cl_buf_append_u8(out, 0x30));
    CL_GUARD(der_append_len(out, inner));
    static const uint8_t version[] = {0x02, 0x01, CL_RATLS_EVIDENCE_VERSION};
    CL_GUARD(cl_buf_append(out, version, sizeof(version)));
    CL_GUARD(cl_buf_append_u8(out, 0x04));
    CL_GUARD(der_append_len(out, doc_len));
    return cl_buf_append(out, doc, doc_len);
}

/* A DER definite length in its minimal form (X.690 section 10.1), at most two octets. */
static CL_MUST_USE cl_status der_read_len(cl_reader *r, const char *what, size_t *out)
{
    uint8_t b = 0, b2 = 0;
    size_t at = cl_reader_offset(r);
    *out = 0;
    CL_GUARD_CTX(cl_reader_u8(r, &b), "RA-TLS evidence: length of %s", what);
    if (b < 0x80) {
        *out = b;
        return CL_OK;
    }
    CL_ENSURE(b != 0x80, CL_ERR_FORMAT, "RA-TLS evidence: %s has an indefinite length (at offset %zu; DER forbids it)",
              what, at);
    CL_ENSURE(b <= 0x82, CL_ERR_LIMIT, "RA-TLS evidence: %s length takes %u octets (at offset %zu; at most 2)", what,
              b & 0x7fu, at);
    size_t n = 0;
    for (unsigned i = 0; i < (b & 0x7fu); i++) {
        CL_GUARD_CTX(cl_reader_u8(r, &b2), "RA-TLS evidence: length of %s", what);
        n = (n << 8) | b2;
    }
    CL_ENSURE(n >= ((b == 0x81) ? 0x80u : 0x100u), CL_ERR_FORMAT,
              "RA-TLS evidence: %s length %zu is not in its shortest form (at offset %zu; DER requires it)", what, n,
              at);
    *out = n;
    return CL_OK;
}

static CL_MUST_USE cl_status der_expect_tag(cl_reader *r, uint8_t tag, const char *what)
{
    uint8_t t;
    size_t at = cl_reader_offset(r);
    CL_GUARD_CTX(cl_reader_u8(r, &t), "RA-TLS evidence: %s", what);
    CL_ENSURE(t == tag, CL_ERR_FORMAT, "RA-TLS evidence: expected %s (tag 0x%02x) at offset %zu, found tag 0x%02x",
              what, tag, at, t);
    return CL_OK;
}

cl_status cl_ratls_evidence_parse(const uint8_t *p, size_t n, const uint8_t **doc, size_t *doc_len)
{
    *doc = NULL;
    *doc_len = 0;
    CL_ENSURE(p != NULL && n > 0, CL_ERR_FORMAT, "RA-TLS evidence is empty");
    CL_ENSURE(n <= CL_ATTEST_MAX_DOC_LEN + 16, CL_ERR_LIMIT, "RA-TLS evidence of %zu bytes is over %zu", n,
              CL_ATTEST_MAX_DOC_LEN + 16);
    cl_reader r = cl_reader_make(p, n);
    size_t len = 0;
    uint8_t v = 0;
    const uint8_t *d = NULL;
    CL_GUARD(der_expect_tag(&r, 0x30, "SEQUENCE"));
    CL_GUARD(der_read_len(&r, "the SEQUENCE", &len));
    CL_ENSURE(len == cl_reader_remaining(&r), CL_ERR_FORMAT,
              "RA-TLS evidence: the SEQUENCE holds %zu bytes but %zu follow its header", len, cl_reader_remaining(&r));
    CL_GUARD(der_expect_tag(&r, 0x02, "version INTEGER"));
    CL_GUARD(der_read_len(&r, "the version", &len));
    CL_ENSURE(len == 1, CL_ERR_FORMAT, "RA-TLS evidence: the version INTEGER has %zu octets, expected 1", len);
    CL_GUARD_CTX(cl_reader_u8(&r, &v), "RA-TLS evidence: version");
    CL_ENSURE(v == CL_RATLS_EVIDENCE_VERSION, CL_ERR_UNSUPPORTED,
              "RA-TLS evidence version %u; this build reads version %u", v, CL_RATLS_EVIDENCE_VERSION);
    CL_GUARD(der_expect_tag(&r, 0x04, "document OCTET STRING"));
    CL_GUARD(der_read_len(&r, "the document", &len));
    CL_ENSURE(len > 0, CL_ERR_FORMAT, "RA-TLS evidence: the attestation document is empty");
    CL_ENSURE(len == cl_reader_remaining(&r), CL_ERR_FORMAT,
              "RA-TLS evidence: the document OCTET STRING holds %zu bytes but %zu remain", len,
              cl_reader_remaining(&r));
    CL_GUARD_CTX(cl_reader_bytes(&r, len, &d), "RA-TLS evidence: document");
    CL_GUARD(cl_reader_expect_end(&r));
    *doc = d;
    *doc_len = len;
    return CL_OK;
}

/* --- the client's check ------------------------------------------------------------ */

static CL_MUST_USE cl_status ratls_oid(ASN1_OBJECT **out)
{
    *out = OBJ_txt2obj(CL_RATLS_OID, 1);
    if (*out == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "OID %s", CL_RATLS_OID);
    return CL_OK;
}

static CL_MUST_USE cl_status spki_der(X509 *x, cl_buf *out)
{
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (len <= 0) CL_FAIL_SSL(CL_ERR_FORMAT, "the certificate's SubjectPublicKeyInfo does not encode");
    cl_status rc = cl_buf_append(out, der, (size_t)len);
    OPENSSL_free(der);
    return rc;
}

cl_status cl_ratls_cert_check(const uint8_t *der, size_t der_len, const cl_ratls_client_config *cfg, int64_t verify_at,
                              const uint8_t *nonce, size_t nonce_len, cl_attest_doc *out)
{
    cl_status rc = CL_OK;
    X509 *x = NULL;
    ASN1_OBJECT *oid = NULL;
    cl_buf spki;
    cl_attest_doc local;
    cl_attest_doc *doc = out != NULL ? out : &local;
    cl_buf_init(&spki, 4096);
    cl_attest_doc_init(&local);
    CL_ENSURE_GOTO(cfg != NULL && cfg->roots != NULL, CL_ERR_USAGE, "no attestation roots configured");
    CL_ENSURE_GOTO(cfg->pcr_count > 0 && cfg->pcrs != NULL, CL_ERR_USAGE,
                   "no expected PCRs configured (the client would accept any enclave)");
    CL_ENSURE_GOTO(nonce != NULL && nonce_len >= CL_RATLS_NONCE_MIN && nonce_len <= CL_RATLS_NONCE_MAX, CL_ERR_USAGE,
                   "the nonce must be %d to %d bytes", CL_RATLS_NONCE_MIN, CL_RATLS_NONCE_MAX);
    CL_ENSURE_GOTO(der != NULL && der_len > 0 && der_len <= CL_RATLS_MAX_CERT_LEN, CL_ERR_LIMIT,
                   "server certificate of %zu bytes (at most %zu)", der_len, CL_RATLS_MAX_CERT_LEN);
    const unsigned char *q = der;
    x = d2i_X509(NULL, &q, (long)der_len);
    if (x == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "the server certificate is not DER X.509");
    CL_ENSURE_GOTO(q == der + der_len, CL_ERR_FORMAT, "the server certificate has %zu bytes after its end",
                   (size_t)(der + der_len - q));
    CL_GUARD_GOTO(ratls_oid(&oid));
    int at = X509_get_ext_by_OBJ(x, oid, -1);
    CL_ENSURE_GOTO(at >= 0, CL_ERR_AUTH,
                   "the server certificate carries no attestation document (no extension %s): not an RA-TLS enclave",
                   CL_RATLS_OID);
    CL_ENSURE_GOTO(X509_get_ext_by_OBJ(x, oid, at) < 0, CL_ERR_FORMAT,
                   "the server certificate carries the RA-TLS extension twice");
    ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(X509_get_ext(x, at));
    const uint8_t *doc_bytes;
    size_t doc_len;
    CL_GUARD_GOTO(
        cl_ratls_evidence_parse(ASN1_STRING_get0_data(val), (size_t)ASN1_STRING_length(val), &doc_bytes, &doc_len));

    cl_ratls_client_config c = *cfg;
    cl_attest_policy pol = {.verify_at = verify_at,
                            .pcrs = c.pcrs,
                            .pcr_count = c.pcr_count,
                            .nonce = nonce,
                            .nonce_len = nonce_len,
                            .max_age_ms = c.max_age_ms != 0 ? c.max_age_ms : CL_RATLS_DEFAULT_MAX_AGE_MS};
    CL_GUARD_CTX_GOTO(cl_attest_verify(doc_bytes, doc_len, cfg->roots, &pol, doc), "the enclave's attestation");

    /* The document must name this certificate's key: otherwise a genuine document
     * could be pasted into a certificate whose key the enclave never held. */
    uint8_t want[CL_RATLS_BINDING_LEN];
    CL_GUARD_GOTO(spki_der(x, &spki));
    CL_GUARD_GOTO(cl_ratls_binding_make(spki.data, spki.len, want));
    if (!doc->has_user_data || doc->user_data.len != CL_RATLS_BINDING_LEN ||
        !cl_ct_equal(doc->user_data.data, want, CL_RATLS_BINDING_LEN)) {
        char got[2 * CL_RATLS_BINDING_LEN + 4], exp[2 * CL_RATLS_BINDING_LEN + 4];
        (void)cl_hex_encode(doc->has_user_data ? doc->user_data.data : NULL,
                            doc->has_user_data ? doc->user_data.len : 0, got, sizeof(got));
        (void)cl_hex_encode(want, sizeof(want), exp, sizeof(exp));
        CL_FAIL_GOTO(CL_ERR_AUTH,
                     "the attestation document does not bind the certificate's key: user_data is %s (%zu bytes), "
                     "expected %s (\"%s\" || SHA-384 of the certificate's SubjectPublicKeyInfo)",
                     got[0] != '\0' ? got : "absent", doc->has_user_data ? doc->user_data.len : 0, exp,
                     CL_RATLS_BINDING_TAG);
    }
out:
    if (rc != CL_OK || out == NULL) cl_attest_doc_free(doc);
    cl_buf_free(&spki);
    ASN1_OBJECT_free(oid);
    X509_free(x);
    return rc;
}

/* --- connections ------------------------------------------------------------------- */

cl_status cl_ratls_conn_write(cl_ratls_conn *c, const void *p, size_t n)
{
    CL_ENSURE(c != NULL && c->ssl != NULL, CL_ERR_STATE, "RA-TLS connection is not established");
    size_t done = 0;
    while (done < n) {
        size_t w = 0;
        ERR_clear_error();
        if (SSL_write_ex(c->ssl, (const uint8_t *)p + done, n - done, &w) != 1)
            CL_FAIL_SSL(CL_ERR_IO, "RA-TLS write of %zu bytes failed after %zu", n, done);
        done += w;
    }
    return CL_OK;
}

cl_status cl_ratls_conn_read(cl_ratls_conn *c, void *p, size_t n, size_t *got)
{
    *got = 0;
    CL_ENSURE(c != NULL && c->ssl != NULL, CL_ERR_STATE, "RA-TLS connection is not established");
    ERR_clear_error();
    int r = SSL_read_ex(c->ssl, p, n, got);
    if (r == 1) return CL_OK;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return CL_OK;
    unsigned long err = ERR_peek_error();
    if ((e == SSL_ERROR_SYSCALL && err == 0) ||
        (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        ERR_clear_error();
        CL_FAIL(CL_ERR_IO, "RA-TLS peer closed the connection without close_notify (the data may be truncated)");
    }
    CL_FAIL_SSL(CL_ERR_IO, "RA-TLS read failed");
}

void cl_ratls_conn_close(cl_ratls_conn *c)
{
    if (c == NULL || c->ssl == NULL) return;
    (void)SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->fd = -1;
    ERR_clear_error();
}

/* Settings both sides share: TLS 1.3 only; no tickets, no session cache, no early
 * data, so every connection is a full handshake with a fresh (EC)DHE exchange and
 * its own traffic keys (RFC 8446 sections 2 and 7.1). */
static CL_MUST_USE cl_status ctx_common(SSL_CTX *ctx)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "restricting TLS to version 1.3");
    (void)SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    (void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_num_tickets(ctx, 0) != 1 || SSL_CTX_set_max_early_data(ctx, 0) != 1 ||
        SSL_CTX_set_recv_max_early_data(ctx, 0) != 1)
        CL_FAIL_SSL(CL_ERR_CRYPTO, "turning off session tickets and early data");
    return CL_OK;
}

/* After a failed handshake: the callback's own error if one was raised, else what
 * OpenSSL says. */
static CL_MUST_USE cl_status handshake_fail(SSL *ssl, int r, ratls_hs *hs, const char *role)
{
    if (hs->rc != CL_OK) {
        ERR_clear_error();
        return cl_error_set(hs->rc, hs->file, hs->line, "%s", hs->msg);
    }
    int e = SSL_get_error(ssl, r);
    unsigned long err = ERR_peek_error();
    if ((e == SSL_ERROR_SYSCALL && err == 0) ||
        (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        ERR_clear_error();
        CL_FAIL(CL_ERR_IO, "RA-TLS %s handshake: the peer closed the connection", role);
    }
    if (ERR_GET_LIB(err) == ERR_LIB_SSL && (ERR_GET_REASON(err) == SSL_R_UNSUPPORTED_PROTOCOL ||
                                            ERR_GET_REASON(err) == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
                                            ERR_GET_REASON(err) == SSL_R_WRONG_VERSION_NUMBER))
        CL_FAIL_SSL(CL_ERR_UNSUPPORTED, "RA-TLS %s handshake: the peer does not speak TLS 1.3, which RA-TLS requires",
                    role);
    if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE &&
        hs->server != NULL)
        CL_FAIL_SSL(CL_ERR_DENIED,
                    "RA-TLS server handshake: the client refused this server's certificate (its attestation did not "
                    "satisfy the client's policy; the client says why)");
    CL_FAIL_SSL(CL_ERR_AUTH, "RA-TLS %s handshake failed", role);
}

/* --- server ------------------------------------------------------------------------ */

static pthread_mutex_t nsm_lock = PTHREAD_MUTEX_INITIALIZER;

cl_status cl_ratls_attest_nsm(void *arg, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                              size_t nonce_len, cl_buf *doc)
{
    CL_ENSURE(arg != NULL, CL_ERR_USAGE, "no attestation device descriptor");
    /* One request and its answer at a time on the device, whichever thread asks. */
    (void)pthread_mutex_lock(&nsm_lock);
    cl_status rc =
        cl_nsm_get_attestation_doc(*(const int *)arg, user_data, user_data_len, nonce, nonce_len, NULL, 0, doc);
    (void)pthread_mutex_unlock(&nsm_lock);
    return rc;
}

/* Reads the nonce extension; a TLS 1.3 ClientHello without it is refused with
 * missing_extension, one offering no TLS 1.3 is left to version negotiation. */
static int server_hello_cb(SSL *ssl, int *al, void *arg)
{
    ratls_hs *hs = SSL_get_app_data(ssl);
    if (hs == NULL) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    const unsigned char *p = NULL;
    size_t n = 0;
    if (SSL_client_hello_get0_ext(ssl, CL_RATLS_TLS_EXT, &p, &n) != 1) {
        bool offers13 = false;
        if (SSL_client_hello_get0_ext(ssl, TLS_EXT_SUPPORTED_VERSIONS, &p, &n) == 1) {
            cl_reader r = cl_reader_make(p, n);
            uint8_t len;
            uint16_t v;
            if (cl_reader_u8(&r, &len) == CL_OK)
                while (cl_reader_u16be(&r, &v) == CL_OK)
                    if (v == TLS1_3_VERSION) offers13 = true;
        }
        if (!offers13) return SSL_CLIENT_HELLO_SUCCESS;
        (void)CL_RAISE(CL_ERR_DENIED,
                       "RA-TLS server: the client sent no nonce (TLS extension 0x%04x); it is not an RA-TLS client",
                       CL_RATLS_TLS_EXT);
        hs_capture(hs);
        *al = SSL_AD_MISSING_EXTENSION;
        return SSL_CLIENT_HELLO_ERROR;
    }
    cl_reader r = cl_reader_make(p, n);
    uint8_t len = 0;
    const uint8_t *nonce = NULL;
    if (cl_reader_u8(&r, &len) != CL_OK || len < CL_RATLS_NONCE_MIN || len > CL_RATLS_NONCE_MAX ||
        cl_reader_bytes(&r, len, &nonce) != CL_OK || cl_reader_expect_end(&r) != CL_OK) {
        (void)CL_RAISE(CL_ERR_FORMAT,
                       "RA-TLS server: the client's nonce extension (%zu bytes) is not a nonce of %d to %d bytes "
                       "with a one-byte length",
                       n, CL_RATLS_NONCE_MIN, CL_RATLS_NONCE_MAX);
        hs_capture(hs);
        *al = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    memcpy(hs->nonce, nonce, len);
    hs->nonce_len = len;
    hs->have_nonce = true;
    return SSL_CLIENT_HELLO_SUCCESS;
}

static CL_MUST_USE cl_status cert_issue(cl_ratls_server *s, const uint8_t *evidence, size_t evidence_len, X509 **out)
{
    cl_status rc = CL_OK;
    X509 *x = X509_new();
    ASN1_OBJECT *oid = NULL;
    ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    BIGNUM *serial = BN_new();
    CL_ENSURE_GOTO(x != NULL && val != NULL && serial != NULL, CL_ERR_NOMEM, "RA-TLS certificate: out of memory");
    time_t now = (time_t)(s->now != NULL ? s->now() : wall_clock());
    X509_NAME *name = X509_get_subject_name(x);
    /* A random positive serial of 127 bits (RFC 5280 section 4.1.2.2: at most 20 octets). */
    if (X509_set_version(x, X509_VERSION_3) != 1 || BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"cloister-ratls", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 0, CERT_SECONDS, &now) == NULL || X509_set_pubkey(x, s->pkey) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS certificate fields");
    if (X509_add1_ext_i2d(x, NID_basic_constraints, &(BASIC_CONSTRAINTS){.ca = 0}, 1, X509V3_ADD_DEFAULT) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS certificate basicConstraints");
    CL_GUARD_GOTO(ratls_oid(&oid));
    /* Not critical: the certificate is self-signed and trusted only through the
     * document, so a verifier that does not know the extension trusts nothing anyway. */
    if (ASN1_OCTET_STRING_set(val, evidence, (int)evidence_len) != 1 ||
        (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, val)) == NULL || X509_add_ext(x, ext, -1) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS certificate: the attestation extension");
    if (X509_sign(x, s->pkey, EVP_sha256()) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "signing the RA-TLS certificate");
    *out = x;
    x = NULL;
out:
    BN_free(serial);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(val);
    ASN1_OBJECT_free(oid);
    X509_free(x);
    return rc;
}

/* The connection's document and certificate, once the client's nonce is known. */
static CL_MUST_USE cl_status server_attest(cl_ratls_server *s, SSL *ssl, const ratls_hs *hs)
{
    cl_status rc = CL_OK;
    cl_buf doc, evidence;
    X509 *x = NULL;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    cl_buf_init(&evidence, CL_ATTEST_MAX_DOC_LEN + 16);
    CL_ENSURE_GOTO(hs->have_nonce, CL_ERR_DENIED, "RA-TLS server: the client sent no nonce (TLS extension 0x%04x)",
                   CL_RATLS_TLS_EXT);
    CL_GUARD_CTX_GOTO(s->attest(s->attest_arg, s->binding, sizeof(s->binding), hs->nonce, hs->nonce_len, &doc),
                      "RA-TLS server: getting an attestation document");
    CL_GUARD_GOTO(cl_ratls_evidence_encode(doc.data, doc.len, &evidence));
    CL_GUARD_GOTO(cert_issue(s, evidence.data, evidence.len, &x));
    if (SSL_use_certificate(ssl, x) != 1 || SSL_use_PrivateKey(ssl, s->pkey) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS server: installing the connection's certificate");
out:
    X509_free(x);
    cl_buf_free(&evidence);
    cl_buf_free(&doc);
    return rc;
}

static int server_ext_parse(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char *in,
                            size_t inlen, X509 *x, size_t chainidx, int *al, void *parse_arg)
{
    return 1; /* already read by server_hello_cb */
}

static int server_cert_cb(SSL *ssl, void *arg)
{
    ratls_hs *hs = SSL_get_app_data(ssl);
    if (hs == NULL) return 0;
    if (server_attest(hs->server, ssl, hs) != CL_OK) {
        hs_capture(hs);
        return 0;
    }
    return 1;
}

cl_status cl_ratls_server_init(cl_ratls_server *s, cl_ratls_attest_fn attest, void *attest_arg)
{
    cl_status rc = CL_OK;
    cl_buf spki;
    cl_buf_init(&spki, 4096);
    memset(s, 0, sizeof(*s));
    CL_ENSURE(attest != NULL, CL_ERR_USAGE, "RA-TLS server: no attestation source");
    s->attest = attest;
    s->attest_arg = attest_arg;
    /* The key lives in OpenSSL's secure heap when the program set one up
     * (CRYPTO_secure_malloc_init); EVP_PKEY_free clears it either way. */
    s->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (s->pkey == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS server: generating the P-256 key");
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(s->pkey, &der);
    if (len <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS server: encoding the public key");
    rc = cl_buf_append(&spki, der, (size_t)len);
    OPENSSL_free(der);
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(cl_ratls_binding_make(spki.data, spki.len, s->binding));
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS server: SSL_CTX_new");
    s->ctx = ctx;
    CL_GUARD_GOTO(ctx_common(ctx));
    /* Registered so that OpenSSL keeps the extension for server_hello_cb (it drops
     * extensions it does not know); read there, where a missing one can be refused. */
    if (SSL_CTX_add_custom_ext(ctx, CL_RATLS_TLS_EXT, SSL_EXT_CLIENT_HELLO, NULL, NULL, NULL, server_ext_parse, NULL) !=
        1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS server: registering the nonce extension");
    SSL_CTX_set_client_hello_cb(ctx, server_hello_cb, NULL);
    SSL_CTX_set_cert_cb(ctx, server_cert_cb, NULL);
out:
    cl_buf_free(&spki);
    if (rc != CL_OK) cl_ratls_server_free(s);
    return rc;
}

void cl_ratls_server_free(cl_ratls_server *s)
{
    if (s == NULL) return;
    SSL_CTX_free(s->ctx);
    EVP_PKEY_free(s->pkey);
    cl_memzero(s, sizeof(*s));
}

cl_status cl_ratls_server_accept(cl_ratls_server *s, int fd, cl_ratls_conn *out)
{
    cl_status rc = CL_OK;
    ratls_hs *hs = calloc(1, sizeof(*hs));
    SSL *ssl = NULL;
    out->ssl = NULL;
    out->fd = -1;
    CL_ENSURE_GOTO(hs != NULL, CL_ERR_NOMEM, "RA-TLS server: out of memory");
    CL_ENSURE_GOTO(s != NULL && s->ctx != NULL, CL_ERR_STATE, "RA-TLS server is not initialised");
    hs->server = s;
    ssl = SSL_new(s->ctx);
    if (ssl == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS server: SSL_new");
    CL_GUARD_GOTO(cl_tls_attach_socket(ssl, fd, "RA-TLS"));
    SSL_set_app_data(ssl, hs);
    ERR_clear_error();
    int r = SSL_accept(ssl);
    if (r != 1) {
        rc = handshake_fail(ssl, r, hs, "server");
        goto out;
    }
    CL_ENSURE_GOTO(SSL_version(ssl) == TLS1_3_VERSION, CL_ERR_INTERNAL, "RA-TLS server negotiated %s",
                   SSL_get_version(ssl));
    SSL_set_app_data(ssl, NULL);
    out->ssl = ssl;
    out->fd = fd;
    ssl = NULL;
out:
    SSL_free(ssl);
    if (hs != NULL) cl_memzero(hs, sizeof(*hs));
    free(hs);
    return rc;
}

/* --- client ------------------------------------------------------------------------ */

static int client_ext_add(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char **out,
                          size_t *outlen, X509 *x, size_t chainidx, int *al, void *add_arg)
{
    ratls_hs *hs = SSL_get_app_data(ssl);
    if (hs == NULL || !hs->have_nonce) {
        *al = SSL_AD_INTERNAL_ERROR;
        return -1;
    }
    hs->ext[0] = (uint8_t)hs->nonce_len;
    memcpy(hs->ext + 1, hs->nonce, hs->nonce_len);
    *out = hs->ext;
    *outlen = 1 + hs->nonce_len;
    return 1;
}

/* Replaces OpenSSL's chain verification: the certificate is self-signed and is
 * trusted only through the document it carries. */
static int client_verify_cb(X509_STORE_CTX *xctx, void *arg)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    ratls_hs *hs = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get0_cert(xctx);
    if (hs == NULL || hs->client == NULL || cert == NULL) {
        X509_STORE_CTX_set_error(xctx, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    unsigned char *der = NULL;
    int len = i2d_X509(cert, &der);
    cl_status rc;
    if (len <= 0) {
        rc = CL_RAISE_SSL(CL_ERR_FORMAT, "the server certificate does not encode");
    } else {
        const cl_ratls_client_config *cfg = &hs->client->cfg;
        int64_t at = cfg->now != NULL ? cfg->now() : wall_clock();
        rc = cl_ratls_cert_check(der, (size_t)len, cfg, at, hs->nonce, hs->nonce_len, hs->doc);
    }
    OPENSSL_free(der);
    if (rc != CL_OK) {
        hs_capture(hs);
        X509_STORE_CTX_set_error(xctx, X509_V_ERR_CERT_REJECTED); /* sent as bad_certificate */
        return 0;
    }
    return 1;
}

cl_status cl_ratls_client_init(cl_ratls_client *c, const cl_ratls_client_config *cfg)
{
    cl_status rc = CL_OK;
    memset(c, 0, sizeof(*c));
    CL_ENSURE(cfg != NULL && cfg->roots != NULL && cfg->roots->count > 0, CL_ERR_USAGE,
              "RA-TLS client: no attestation roots configured");
    CL_ENSURE(cfg->pcrs != NULL && cfg->pcr_count > 0, CL_ERR_USAGE,
              "RA-TLS client: no expected PCRs (give at least PCR0, or the client would accept any enclave)");
    CL_ENSURE(cfg->pcr_count <= CL_ATTEST_MAX_PCRS, CL_ERR_USAGE, "RA-TLS client: %zu expected PCRs (at most %d)",
              cfg->pcr_count, CL_ATTEST_MAX_PCRS);
    for (size_t i = 0; i < cfg->pcr_count; i++)
        CL_ENSURE(cfg->pcrs[i].index < CL_ATTEST_MAX_PCRS, CL_ERR_USAGE,
                  "expected PCR index %u is out of range 0 to 31", cfg->pcrs[i].index);
    memcpy(c->pcrs, cfg->pcrs, cfg->pcr_count * sizeof(cfg->pcrs[0]));
    c->cfg = *cfg;
    c->cfg.pcrs = c->pcrs;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS client: SSL_CTX_new");
    c->ctx = ctx;
    CL_GUARD_GOTO(ctx_common(ctx));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, client_verify_cb, NULL);
    if (SSL_CTX_add_custom_ext(ctx, CL_RATLS_TLS_EXT, SSL_EXT_CLIENT_HELLO, client_ext_add, NULL, NULL, NULL, NULL) !=
        1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS client: registering the nonce extension");
out:
    if (rc != CL_OK) cl_ratls_client_free(c);
    return rc;
}

void cl_ratls_client_free(cl_ratls_client *c)
{
    if (c == NULL) return;
    SSL_CTX_free(c->ctx);
    memset(c, 0, sizeof(*c));
}

cl_status cl_ratls_client_connect(cl_ratls_client *c, int fd, cl_ratls_conn *out, cl_attest_doc *doc)
{
    cl_status rc = CL_OK;
    ratls_hs *hs = calloc(1, sizeof(*hs));
    SSL *ssl = NULL;
    out->ssl = NULL;
    out->fd = -1;
    CL_ENSURE_GOTO(hs != NULL, CL_ERR_NOMEM, "RA-TLS client: out of memory");
    CL_ENSURE_GOTO(c != NULL && c->ctx != NULL, CL_ERR_STATE, "RA-TLS client is not initialised");
    hs->client = c;
    hs->doc = doc;
    hs->nonce_len = CL_RATLS_NONCE_LEN;
    CL_GUARD_GOTO(cl_random(hs->nonce, hs->nonce_len));
    hs->have_nonce = true;
    ssl = SSL_new(c->ctx);
    if (ssl == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "RA-TLS client: SSL_new");
    CL_GUARD_GOTO(cl_tls_attach_socket(ssl, fd, "RA-TLS"));
    SSL_set_app_data(ssl, hs);
    ERR_clear_error();
    int r = SSL_connect(ssl);
    if (r != 1) {
        rc = handshake_fail(ssl, r, hs, "client");
        goto out;
    }
    /* The verification callback ran (SSL_VERIFY_PEER), and passed. */
    CL_ENSURE_GOTO(SSL_version(ssl) == TLS1_3_VERSION && SSL_get_verify_result(ssl) == X509_V_OK, CL_ERR_INTERNAL,
                   "RA-TLS client: handshake completed without a verified TLS 1.3 server");
    SSL_set_app_data(ssl, NULL);
    out->ssl = ssl;
    out->fd = fd;
    ssl = NULL;
out:
    if (rc != CL_OK && doc != NULL) cl_attest_doc_free(doc);
    SSL_free(ssl);
    free(hs);
    return rc;
}
