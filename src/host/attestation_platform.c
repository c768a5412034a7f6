/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sim backend's attestation platform: the local PKI on disk (root CA ->
 * platform CA, as `cloister enclave init-root` writes it) and, per enclave, a
 * short-lived signing certificate issued by the platform CA, like Nitro's
 * root -> ... -> instance CA -> enclave certificate chain
 * (aws-nitro-enclaves-nsm-api docs/attestation_process.md, 3.2.3).
 */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/fs.h"
#include "cloister/platform.h"

#define PKI_PATH_MAX 4096
#define RENEW_MARGIN_SECONDS 300

static CL_MUST_USE cl_status pki_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PKI_PATH_MAX, "%s/%s", dir, name);
    CL_ENSURE(n > 0 && n < PKI_PATH_MAX, CL_ERR_USAGE, "path too long: %s/%s", dir, name);
    return CL_OK;
}

static CL_MUST_USE cl_status pki_write(const char *dir, const char *name, const cl_buf *b, mode_t mode, bool force)
{
    char path[PKI_PATH_MAX];
    cl_status rc = CL_OK;
    cl_outfile of = {.fd = -1};
    CL_GUARD(pki_path(path, dir, name));
    CL_GUARD(cl_outfile_open(&of, path, force, mode));
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(of.fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "writing %s", path);
        off += (size_t)w;
    }
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    return rc;
}

cl_status cl_attest_pki_create(const char *dir, int64_t now, int root_days, int platform_days, bool force)
{
    cl_status rc = CL_OK;
    cl_attest_key root_key = {NULL}, ca_key = {NULL};
    cl_buf root_der, ca_der, pem, key_pem;
    char probe[PKI_PATH_MAX];
    CL_ENSURE(root_days >= 1 && platform_days >= 1 && platform_days <= root_days, CL_ERR_USAGE,
              "validity: the root needs at least a day and the platform CA cannot outlive it");
    /* Refuse before generating anything if a file is in the way. */
    static const char *const names[] = {"root.key", "platform.key", "root.pem", "platform.pem"};
    for (size_t i = 0; i < 4 && !force; i++) {
        struct stat sb;
        CL_GUARD(pki_path(probe, dir, names[i]));
        CL_ENSURE(lstat(probe, &sb) != 0, CL_ERR_EXISTS, "%s already exists; use --force to replace it", probe);
    }
    cl_buf_init(&root_der, 4096);
    cl_buf_init(&ca_der, 4096);
    cl_buf_init(&pem, 8192);
    cl_buf_init_secret(&key_pem, 8192);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "creating %s", dir);
    /* Back-dated by an hour so that hosts with slightly slow clocks accept them. */
    cl_attest_cert_params rp = {"cloister-sim-root", now - 3600, now + (int64_t)root_days * 86400, true, -1};
    cl_attest_cert_params pp = {"cloister-sim-platform", now - 3600, now + (int64_t)platform_days * 86400, true, 0};
    CL_GUARD_GOTO(cl_attest_key_generate(&root_key));
    CL_GUARD_GOTO(cl_attest_key_generate(&ca_key));
    CL_GUARD_GOTO(cl_attest_cert_issue(&root_key, &rp, NULL, NULL, 0, &root_der));
    CL_GUARD_GOTO(cl_attest_cert_issue(&ca_key, &pp, &root_key, root_der.data, root_der.len, &ca_der));
    CL_GUARD_GOTO(cl_attest_key_to_pem(&root_key, &key_pem));
    CL_GUARD_GOTO(pki_write(dir, "root.key", &key_pem, 0600, force));
    cl_buf_reset(&key_pem);
    CL_GUARD_GOTO(cl_attest_key_to_pem(&ca_key, &key_pem));
    CL_GUARD_GOTO(pki_write(dir, "platform.key", &key_pem, 0600, force));
    CL_GUARD_GOTO(cl_attest_cert_to_pem(root_der.data, root_der.len, &pem));
    CL_GUARD_GOTO(pki_write(dir, "root.pem", &pem, 0644, force));
    cl_buf_reset(&pem);
    CL_GUARD_GOTO(cl_attest_cert_to_pem(ca_der.data, ca_der.len, &pem));
    CL_GUARD_GOTO(pki_write(dir, "platform.pem", &pem, 0644, force));
out:
    cl_attest_key_free(&root_key);
    cl_attest_key_free(&ca_key);
    cl_buf_free(&root_der);
    cl_buf_free(&ca_der);
    cl_buf_free(&pem);
    cl_buf_free(&key_pem);
    return rc;
}

void cl_attest_platform_init(cl_attest_platform *p)
{
    memset(p, 0, sizeof(*p));
    cl_buf_init(&p->root, CL_ATTEST_MAX_CERT_LEN);
    cl_buf_init(&p->ca, CL_ATTEST_MAX_CERT_LEN);
    cl_buf_init(&p->leaf, CL_ATTEST_MAX_CERT_LEN);
}

void cl_attest_platform_free(cl_attest_platform *p)
{
    cl_attest_key_free(&p->ca_key);
    cl_attest_key_free(&p->leaf_key);
    cl_buf_free(&p->root);
    cl_buf_free(&p->ca);
    cl_buf_free(&p->leaf);
    cl_attest_platform_init(p);
}

/* The first certificate of a PEM file, as DER (and decoded, when x is not NULL). */
static CL_MUST_USE cl_status load_cert(const char *path, cl_buf *der, X509 **x)
{
    cl_status rc = CL_OK;
    cl_buf text;
    BIO *bio = NULL;
    X509 *cert = NULL;
    uint8_t *d = NULL;
    cl_buf_init(&text, 1u << 20);
    CL_GUARD_GOTO(cl_buf_read_file(&text, path));
    bio = BIO_new_mem_buf(text.data, (int)text.len);
    if (bio == NULL) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "BIO_new_mem_buf");
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "%s holds no PEM certificate", path);
    int len = i2d_X509(cert, &d);
    if (len <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding %s", path);
    CL_ENSURE_GOTO((size_t)len <= CL_ATTEST_MAX_CERT_LEN, CL_ERR_LIMIT,
                   "%s is a %d-byte certificate; attestation documents carry at most %d", path, len,
                   CL_ATTEST_MAX_CERT_LEN);
    cl_buf_reset(der);
    CL_GUARD_GOTO(cl_buf_append(der, d, (size_t)len));
    if (x != NULL) {
        *x = cert;
        cert = NULL;
    }
out:
    OPENSSL_free(d);
    X509_free(cert);
    BIO_free(bio);
    cl_buf_free(&text);
    return rc;
}

cl_status cl_attest_platform_load(cl_attest_platform *p, const char *dir)
{
    cl_status rc = CL_OK;
    char path[PKI_PATH_MAX];
    X509 *root = NULL, *ca = NULL;
    EVP_PKEY *root_pub = NULL;
    cl_buf key;
    cl_buf_init_secret(&key, 8192);
    cl_attest_platform_free(p);
    CL_GUARD_GOTO(pki_path(path, dir, "root.pem"));
    CL_GUARD_GOTO(load_cert(path, &p->root, &root));
    CL_GUARD_GOTO(pki_path(path, dir, "platform.pem"));
    CL_GUARD_GOTO(load_cert(path, &p->ca, &ca));
    CL_GUARD_GOTO(pki_path(path, dir, "platform.key"));
    CL_GUARD_GOTO(cl_buf_read_file(&key, path));
    CL_GUARD_CTX_GOTO(cl_attest_key_load_pem(&p->ca_key, key.data, key.len), "%s", path);
    root_pub = X509_get_pubkey(root);
    if (root_pub == NULL || X509_verify(ca, root_pub) != 1) {
        ERR_clear_error();
        CL_FAIL_GOTO(CL_ERR_KEY, "%s/platform.pem is not issued by %s/root.pem", dir, dir);
    }
    if (X509_check_private_key(ca, p->ca_key.pkey) != 1) {
        ERR_clear_error();
        CL_FAIL_GOTO(CL_ERR_KEY, "%s/platform.key is not the key of %s/platform.pem", dir, dir);
    }
out:
    EVP_PKEY_free(root_pub);
    X509_free(root);
    X509_free(ca);
    cl_buf_free(&key);
    if (rc != CL_OK) {
        cl_attest_platform_free(p);
        rc = cl_error_wrap("attestation platform %s (made by: cloister enclave init-root -o %s)", dir, dir);
    }
    return rc;
}

cl_status cl_attest_platform_start_enclave(cl_attest_platform *p, const char *name, int64_t now)
{
    CL_ENSURE(p->ca_key.pkey != NULL, CL_ERR_STATE, "the attestation platform is not loaded");
    CL_ENSURE(name != NULL && name[0] != '\0' && strlen(name) < sizeof(p->enclave), CL_ERR_USAGE,
              "enclave name must be 1 to %zu characters", sizeof(p->enclave) - 1);
    cl_attest_key key = {NULL};
    cl_buf der;
    cl_buf_init(&der, CL_ATTEST_MAX_CERT_LEN);
    cl_attest_cert_params lp = {name, now - 60, now + CL_ATTEST_LEAF_SECONDS, false, -1};
    cl_status rc = cl_attest_key_generate(&key);
    if (rc == CL_OK) rc = cl_attest_cert_issue(&key, &lp, &p->ca_key, p->ca.data, p->ca.len, &der);
    if (rc != CL_OK) {
        cl_attest_key_free(&key);
        cl_buf_free(&der);
        return rc;
    }
    cl_attest_key_free(&p->leaf_key);
    cl_buf_free(&p->leaf);
    p->leaf_key = key;
    p->leaf = der;
    p->leaf_not_before = lp.not_before;
    p->leaf_not_after = lp.not_after;
    if (p->enclave != name) (void)snprintf(p->enclave, sizeof(p->enclave), "%s", name);
    return CL_OK;
}

cl_status cl_attest_platform_sign(cl_attest_platform *p, const cl_attest_create_params *params, cl_buf *out)
{
    CL_ENSURE(p->leaf.len > 0, CL_ERR_STATE, "no enclave started on this attestation platform");
    int64_t t = (int64_t)(params->timestamp_ms / 1000u);
    if (t < p->leaf_not_before || t + RENEW_MARGIN_SECONDS >= p->leaf_not_after)
        CL_GUARD_CTX(cl_attest_platform_start_enclave(p, p->enclave, t), "renewing the enclave signing certificate");
    cl_attest_create_params q = *params;
    cl_attest_blob cab[2] = {{p->root.data, p->root.len}, {p->ca.data, p->ca.len}};
    q.certificate = (cl_attest_blob){p->leaf.data, p->leaf.len};
    q.cabundle = cab;
    q.cabundle_len = 2;
    return cl_attest_doc_create(&q, &p->leaf_key, out);
}
