/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Enclave images: build (deterministically), parse (untrusted bytes), measure, sign.
 * The format is specified in docs/formats/enclave-image.md.
 *
 * Determinism: entries are sorted by path, modes are normalised (0555 programs and
 * libraries, 0444 data), and nothing from the host's file metadata (times, owners,
 * the host path of the exe) enters the image. Same bytes in, same image out; the
 * signature (ECDSA, randomised) is outside what PCR0 measures, as Nitro's EIF
 * signature section is outside PCR0.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cloister/enclave.h"
#include "cloister/mem.h"

extern char **environ;

static const uint8_t image_magic[8] = {'C', 'L', 'E', 'N', 'C', 'I', 'M', 'G'};
static const uint8_t trailer_magic[8] = {'C', 'L', 'E', 'N', 'C', 'S', 'I', 'G'};
#define IMAGE_VERSION 1U
#define MAX_CERT_LEN 8192U
#define MAX_SIG_LEN 256U

void cl_image_init(cl_image *img)
{
    memset(img, 0, sizeof(*img));
    cl_buf_init(&img->raw, CL_IMAGE_MAX_LEN);
}

void cl_image_free(cl_image *img)
{
    cl_buf_free(&img->raw);
    free(img->entries);
    memset(img, 0, sizeof(*img));
}

static uint16_t normal_mode(cl_image_kind k) { return k == CL_IMAGE_FILE ? 0444 : 0555; }

/* Absolute, no empty, "." or ".." components, no trailing slash, a portable alphabet. */
static bool path_ok(const char *p, size_t n)
{
    if (n < 2 || n > CL_IMAGE_MAX_PATH || p[0] != '/' || p[n - 1] == '/') return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '/' && c != '.' && c != '_' && c != '-' && c != '+') return false;
        if (c == '/') {
            size_t j = i + 1;
            while (j < n && p[j] != '/') j++;
            size_t clen = j - i - 1;
            if (clen == 0 || (clen == 1 && p[i + 1] == '.') || (clen == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
                return false;
        }
    }
    return true;
}

cl_status cl_image_pcr_extend_digest(uint8_t pcr[48], const uint8_t *data, size_t len)
{
    uint8_t d[48], both[96];
    unsigned int dl = 0;
    if (EVP_Digest(data, len, d, &dl, EVP_sha384(), NULL) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "SHA-384 failed");
    memcpy(both, pcr, 48);
    memcpy(both + 48, d, 48);
    if (EVP_Digest(both, sizeof(both), pcr, &dl, EVP_sha384(), NULL) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "SHA-384 failed");
    return CL_OK;
}

/* PCR from zero over a digest already computed: SHA-384(0^48 || digest). */
static CL_MUST_USE cl_status pcr_from_digest(EVP_MD_CTX *ctx, uint8_t pcr[48])
{
    uint8_t d[48], both[96];
    unsigned int dl = 0;
    if (EVP_DigestFinal_ex(ctx, d, &dl) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "SHA-384 failed");
    memset(both, 0, 48);
    memcpy(both + 48, d, 48);
    if (EVP_Digest(both, sizeof(both), pcr, &dl, EVP_sha384(), NULL) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "SHA-384 failed");
    return CL_OK;
}

static CL_MUST_USE cl_status verify_signature(cl_image *img, const uint8_t *sig, size_t sig_len)
{
    cl_status rc = CL_OK;
    const unsigned char *cp = img->cert;
    X509 *cert = d2i_X509(NULL, &cp, (long)img->cert_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY *pk = NULL;
    if (cert == NULL || cp != img->cert + img->cert_len)
        CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "enclave image: the signing certificate is not one DER certificate");
    pk = X509_get0_pubkey(cert);
    CL_ENSURE_GOTO(pk != NULL && EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 384, CL_ERR_UNSUPPORTED,
                   "enclave image: the signing certificate's key is not EC P-384");
    CL_ENSURE_GOTO(ctx != NULL, CL_ERR_NOMEM, "enclave image: out of memory");
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, pk) != 1 ||
        EVP_DigestVerify(ctx, sig, sig_len, img->raw.data, img->body_len) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_AUTH,
                         "enclave image: the signature does not verify with the image's certificate (the image "
                         "was modified after signing, or signed with another key)");
out:
    EVP_MD_CTX_free(ctx);
    X509_free(cert);
    return rc;
}

static CL_MUST_USE cl_status parse_raw(cl_image *img)
{
    cl_status rc = CL_OK;
    cl_reader r = cl_reader_make(img->raw.data, img->raw.len);
    const uint8_t *magic = NULL;
    uint32_t version = 0, count = 0;
    EVP_MD_CTX *c1 = EVP_MD_CTX_new(), *c2 = EVP_MD_CTX_new();
    CL_ENSURE_GOTO(c1 != NULL && c2 != NULL, CL_ERR_NOMEM, "enclave image: out of memory");
    CL_ENSURE_GOTO(EVP_DigestInit_ex(c1, EVP_sha384(), NULL) == 1 && EVP_DigestInit_ex(c2, EVP_sha384(), NULL) == 1,
                   CL_ERR_CRYPTO, "SHA-384 init failed");
    CL_GUARD_CTX_GOTO(cl_reader_bytes(&r, 8, &magic), "enclave image: header");
    CL_ENSURE_GOTO(memcmp(magic, image_magic, 8) == 0, CL_ERR_FORMAT,
                   "not a Cloister enclave image (bad magic); build one with 'cloister enclave build'");
    CL_GUARD_CTX_GOTO(cl_reader_u32be(&r, &version), "enclave image: header");
    CL_ENSURE_GOTO(version == IMAGE_VERSION, CL_ERR_UNSUPPORTED, "enclave image: version %u (this build reads 1)",
                   version);
    CL_GUARD_CTX_GOTO(cl_reader_u32be(&r, &count), "enclave image: header");
    CL_ENSURE_GOTO(count >= 1 && count <= CL_IMAGE_MAX_ENTRIES, CL_ERR_LIMIT,
                   "enclave image: %u entries (1 to %d allowed)", count, CL_IMAGE_MAX_ENTRIES);
    img->entries = calloc(count, sizeof(*img->entries));
    CL_ENSURE_GOTO(img->entries != NULL, CL_ERR_NOMEM, "enclave image: out of memory");
    size_t exes = 0;
    for (uint32_t i = 0; i < count; i++) {
        cl_image_entry *e = &img->entries[i];
        cl_reader entry_start = r;
        uint8_t kind = 0;
        uint16_t mode = 0, plen = 0;
        const uint8_t *path = NULL;
        CL_GUARD_CTX_GOTO(cl_reader_u8(&r, &kind), "enclave image: entry %u", i);
        CL_GUARD_CTX_GOTO(cl_reader_u16be(&r, &mode), "enclave image: entry %u", i);
        CL_GUARD_CTX_GOTO(cl_reader_u16be(&r, &plen), "enclave image: entry %u", i);
        CL_GUARD_CTX_GOTO(cl_reader_bytes(&r, plen, &path), "enclave image: entry %u path", i);
        CL_GUARD_CTX_GOTO(cl_reader_u64be(&r, &e->size), "enclave image: entry %u", i);
        CL_ENSURE_GOTO(kind >= CL_IMAGE_EXE && kind <= CL_IMAGE_FILE, CL_ERR_FORMAT,
                       "enclave image: entry %u has unknown kind %u", i, kind);
        e->kind = (cl_image_kind)kind;
        CL_ENSURE_GOTO(mode == normal_mode(e->kind), CL_ERR_FORMAT,
                       "enclave image: entry %u has mode %o, not the normalised %o", i, mode, normal_mode(e->kind));
        e->mode = mode;
        CL_ENSURE_GOTO(path_ok((const char *)path, plen), CL_ERR_FORMAT,
                       "enclave image: entry %u has an invalid path (absolute, no '.' or '..', [A-Za-z0-9._+-/])", i);
        memcpy(e->path, path, plen);
        e->path[plen] = '\0';
        CL_ENSURE_GOTO(i == 0 || strcmp(img->entries[i - 1].path, e->path) < 0, CL_ERR_FORMAT,
                       "enclave image: entry '%s' is out of order or repeated (entries are sorted by path)", e->path);
        CL_ENSURE_GOTO(e->size <= cl_reader_remaining(&r), CL_ERR_FORMAT,
                       "enclave image: entry '%s' claims %llu bytes, only %zu remain (truncated image?)", e->path,
                       (unsigned long long)e->size, cl_reader_remaining(&r));
        CL_GUARD_GOTO(cl_reader_bytes(&r, (size_t)e->size, &e->data));
        if (e->kind == CL_IMAGE_EXE) {
            exes++;
            img->exe = i;
        }
        EVP_MD_CTX *c = e->kind == CL_IMAGE_RUNTIME ? c1 : c2;
        const uint8_t *entry = NULL;
        size_t entry_len = 0;
        CL_GUARD_GOTO(cl_reader_since(&entry_start, &r, &entry, &entry_len));
        CL_ENSURE_GOTO(EVP_DigestUpdate(c, entry, entry_len) == 1, CL_ERR_CRYPTO, "SHA-384 failed");
    }
    img->count = count;
    CL_ENSURE_GOTO(exes == 1, CL_ERR_FORMAT, "enclave image: %zu program entries (exactly one needed)", exes);
    img->body_len = cl_reader_offset(&r);
    CL_GUARD_GOTO(pcr_from_digest(c1, img->pcr1));
    CL_GUARD_GOTO(pcr_from_digest(c2, img->pcr2));
    memset(img->pcr0, 0, 48);
    CL_GUARD_GOTO(cl_image_pcr_extend_digest(img->pcr0, img->raw.data, img->body_len));
    memset(img->pcr8, 0, 48);
    if (cl_reader_remaining(&r) > 0) {
        uint32_t cert_len = 0, sig_len = 0;
        const uint8_t *sig = NULL;
        CL_GUARD_CTX_GOTO(cl_reader_bytes(&r, 8, &magic), "enclave image: signature");
        CL_ENSURE_GOTO(memcmp(magic, trailer_magic, 8) == 0, CL_ERR_FORMAT,
                       "enclave image: unexpected bytes after the last entry");
        CL_GUARD_CTX_GOTO(cl_reader_u32be(&r, &cert_len), "enclave image: signature");
        CL_ENSURE_GOTO(cert_len > 0 && cert_len <= MAX_CERT_LEN, CL_ERR_LIMIT, "enclave image: certificate of %u bytes",
                       cert_len);
        CL_GUARD_CTX_GOTO(cl_reader_bytes(&r, cert_len, &img->cert), "enclave image: certificate");
        img->cert_len = cert_len;
        CL_GUARD_CTX_GOTO(cl_reader_u32be(&r, &sig_len), "enclave image: signature");
        CL_ENSURE_GOTO(sig_len > 0 && sig_len <= MAX_SIG_LEN, CL_ERR_LIMIT, "enclave image: signature of %u bytes",
                       sig_len);
        CL_GUARD_CTX_GOTO(cl_reader_bytes(&r, sig_len, &sig), "enclave image: signature");
        CL_GUARD_CTX_GOTO(cl_reader_expect_end(&r), "enclave image: after the signature");
        CL_GUARD_GOTO(verify_signature(img, sig, sig_len));
        img->signed_ = true;
        CL_GUARD_GOTO(cl_image_pcr_extend_digest(img->pcr8, img->cert, img->cert_len));
    }
out:
    EVP_MD_CTX_free(c1);
    EVP_MD_CTX_free(c2);
    return rc;
}

cl_status cl_image_parse(const uint8_t *p, size_t n, cl_image *out)
{
    cl_image_free(out);
    cl_image_init(out);
    CL_GUARD(cl_buf_append(&out->raw, p, n));
    cl_status rc = parse_raw(out);
    if (rc != CL_OK) {
        cl_image_free(out);
        cl_image_init(out);
    }
    return rc;
}

cl_status cl_image_load(const char *path, cl_image *out)
{
    cl_image_free(out);
    cl_image_init(out);
    CL_GUARD_CTX(cl_buf_read_file(&out->raw, path), "enclave image %s", path);
    cl_status rc = parse_raw(out);
    if (rc != CL_OK) {
        (void)cl_error_wrap("enclave image %s", path);
        cl_image_free(out);
        cl_image_init(out);
    }
    return rc;
}

static CL_MUST_USE cl_status append_hex_field(cl_buf *b, const char *name, const uint8_t v[48], bool last)
{
    CL_GUARD(cl_buf_printf(b, "    \"%s\": \"", name));
    CL_GUARD(cl_buf_append_hex(b, v, 48));
    return cl_buf_append_str(b, last ? "\"\n" : "\",\n");
}

/* The "Measurements" member, without the braces around it. */
static CL_MUST_USE cl_status append_measurements(const cl_image *img, cl_buf *out)
{
    CL_GUARD(cl_buf_append_str(out, "  \"Measurements\": {\n    \"HashAlgorithm\": \"Sha384 { ... }\",\n"));
    CL_GUARD(append_hex_field(out, "PCR0", img->pcr0, false));
    CL_GUARD(append_hex_field(out, "PCR1", img->pcr1, false));
    CL_GUARD(append_hex_field(out, "PCR2", img->pcr2, !img->signed_));
    if (img->signed_) CL_GUARD(append_hex_field(out, "PCR8", img->pcr8, true));
    return cl_buf_append_str(out, "  }");
}

cl_status cl_image_measurements_json(const cl_image *img, cl_buf *out)
{
    CL_GUARD(cl_buf_append_str(out, "{\n"));
    CL_GUARD(append_measurements(img, out));
    return cl_buf_append_str(out, "\n}\n");
}

cl_status cl_image_summary_json(const cl_image *img, cl_buf *out)
{
    CL_GUARD(cl_buf_append_str(out, "{\n"));
    CL_GUARD(append_measurements(img, out));
    CL_GUARD(cl_buf_append_str(out, ",\n  \"Runtime\": {\n    \"Libraries\": ["));
    uint64_t total = 0;
    size_t count = 0;
    for (size_t i = 0; i < img->count; i++) {
        const cl_image_entry *e = &img->entries[i];
        if (e->kind != CL_IMAGE_RUNTIME) continue;
        /* Paths were checked at parse time: [A-Za-z0-9._+-/] only, nothing to escape in JSON. */
        CL_GUARD(cl_buf_printf(out, "%s\n      {\"Path\": \"%s\", \"Bytes\": %llu}", count > 0 ? "," : "", e->path,
                               (unsigned long long)e->size));
        total += e->size;
        count++;
    }
    CL_GUARD(cl_buf_printf(out, "%s],\n    \"Count\": %zu,\n    \"Bytes\": %llu,\n    \"MiB\": %.2f\n  },\n",
                           count > 0 ? "\n    " : "", count, (unsigned long long)total, (double)total / 1048576.0));
    return cl_buf_printf(out, "  \"ImageBytes\": %zu,\n  \"ImageMiB\": %.2f\n}\n", img->raw.len,
                         (double)img->raw.len / 1048576.0);
}

/* --- building ------------------------------------------------------------- */

cl_status cl_image_list_libraries(const char *exe, cl_buf *out)
{
    cl_status rc = CL_OK;
    int pfd[2] = {-1, -1};
    pid_t pid = -1;
    cl_buf text;
    cl_buf_init(&text, (size_t)1 << 20);
    posix_spawn_file_actions_t fa;
    bool fa_ok = false;
    if (pipe2(pfd, O_CLOEXEC) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "ldd %s: pipe", exe);
    if (posix_spawn_file_actions_init(&fa) != 0) CL_FAIL_GOTO(CL_ERR_NOMEM, "ldd: out of memory");
    fa_ok = true;
    if (posix_spawn_file_actions_adddup2(&fa, pfd[1], 1) != 0 ||
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) != 0)
        CL_FAIL_GOTO(CL_ERR_NOMEM, "ldd: out of memory");
    /* ldd may run the program's loader on it: build images only of programs you trust to inspect. */
    char *argv[] = {CL_UNCONST("ldd"), CL_UNCONST(exe), NULL};
    int err = posix_spawnp(&pid, "ldd", &fa, NULL, argv, environ);
    if (err != 0) {
        errno = err;
        pid = -1;
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot run ldd to list the libraries of %s (is libc-bin installed?)", exe);
    }
    (void)close(pfd[1]);
    pfd[1] = -1;
    for (;;) {
        uint8_t chunk[4096];
        ssize_t r = read(pfd[0], chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "ldd %s: read", exe);
        if (r == 0) break;
        CL_GUARD_GOTO(cl_buf_append(&text, chunk, (size_t)r));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    /* ldd exits 1 for statically linked programs: no libraries to add. */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) goto out;
    const char *s = cl_buf_cstr(&text);
    while (*s != '\0') {
        const char *eol = strchr(s, '\n');
        size_t n = eol != NULL ? (size_t)(eol - s) : strlen(s);
        const char *arrow = memmem(s, n, "=> ", 3);
        const char *p = arrow != NULL ? arrow + 3 : s;
        while (p < s + n && (*p == ' ' || *p == '\t')) p++;
        const char *end = p;
        while (end < s + n && *end != ' ' && *end != '\t') end++;
        if (arrow != NULL && (size_t)(end - p) >= 3 && strncmp(p, "not", 3) == 0)
            CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "%s needs a library ldd cannot find: %.*s", exe, (int)n, s);
        if (end > p && *p == '/') { /* linux-vdso.so.1 and friends have no file */
            CL_GUARD_GOTO(cl_buf_append(out, p, (size_t)(end - p)));
            CL_GUARD_GOTO(cl_buf_append_u8(out, '\n'));
        }
        s += n + (eol != NULL ? 1 : 0);
    }
out:
    if (pid > 0) {
        int st2;
        (void)waitpid(pid, &st2, 0);
    }
    if (fa_ok) (void)posix_spawn_file_actions_destroy(&fa);
    if (pfd[0] >= 0) (void)close(pfd[0]);
    if (pfd[1] >= 0) (void)close(pfd[1]);
    cl_buf_free(&text);
    return rc;
}

typedef struct pending {
    cl_image_kind kind;
    char path[CL_IMAGE_MAX_PATH + 1];
    char src[4096];
} pending;

static int pending_cmp(const void *a, const void *b)
{
    return strcmp(((const pending *)a)->path, ((const pending *)b)->path);
}

static CL_MUST_USE cl_status add_pending(pending *list, size_t *n, size_t max, cl_image_kind kind, const char *src,
                                         const char *path)
{
    CL_ENSURE(*n < max, CL_ERR_LIMIT, "enclave image: more than %zu entries", max);
    CL_ENSURE(path_ok(path, strlen(path)), CL_ERR_USAGE,
              "enclave image: '%s' is not a valid path inside the enclave (absolute, no '.' or '..', "
              "characters [A-Za-z0-9._+-/])",
              path);
    CL_ENSURE(strlen(src) < sizeof(list[0].src), CL_ERR_LIMIT, "enclave image: source path too long");
    list[*n].kind = kind;
    (void)snprintf(list[*n].path, sizeof(list[*n].path), "%s", path);
    (void)snprintf(list[*n].src, sizeof(list[*n].src), "%s", src);
    (*n)++;
    return CL_OK;
}

static CL_MUST_USE cl_status sign_body(const cl_image_build_params *p, cl_buf *raw)
{
    cl_status rc = CL_OK;
    cl_buf pem, cert_der;
    cl_buf_init_secret(&pem, (size_t)1 << 16);
    cl_buf_init(&cert_der, MAX_CERT_LEN);
    cl_attest_key key = {0};
    X509 *cert = NULL;
    BIO *bio = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    uint8_t sig[MAX_SIG_LEN];
    size_t sig_len = sizeof(sig);
    CL_ENSURE_GOTO(ctx != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&pem, p->sign_key), "signing key %s", p->sign_key);
    CL_GUARD_CTX_GOTO(cl_attest_key_load_pem(&key, pem.data, pem.len), "signing key %s", p->sign_key);
    bio = BIO_new_file(p->sign_cert, "r");
    if (bio == NULL) CL_FAIL_SSL_GOTO(CL_ERR_IO, "cannot open the signing certificate %s", p->sign_cert);
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL) CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "%s is not a PEM certificate", p->sign_cert);
    if (X509_check_private_key(cert, (EVP_PKEY *)key.pkey) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_KEY, "the signing key %s does not match the certificate %s", p->sign_key, p->sign_cert);
    int dl = i2d_X509(cert, &der);
    CL_ENSURE_GOTO(dl > 0 && (size_t)dl <= MAX_CERT_LEN, CL_ERR_LIMIT, "signing certificate: DER of %d bytes", dl);
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, (EVP_PKEY *)key.pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, raw->data, raw->len) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "signing the enclave image failed");
    CL_GUARD_GOTO(cl_buf_append(raw, trailer_magic, 8));
    CL_GUARD_GOTO(cl_buf_append_u32be(raw, (uint32_t)dl));
    CL_GUARD_GOTO(cl_buf_append(raw, der, (size_t)dl));
    CL_GUARD_GOTO(cl_buf_append_u32be(raw, (uint32_t)sig_len));
    CL_GUARD_GOTO(cl_buf_append(raw, sig, sig_len));
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    X509_free(cert);
    BIO_free(bio);
    cl_attest_key_free(&key);
    cl_buf_free(&pem);
    cl_buf_free(&cert_der);
    return rc;
}

cl_status cl_image_build(const cl_image_build_params *p, cl_image *out)
{
    cl_status rc = CL_OK;
    const size_t max = CL_IMAGE_MAX_ENTRIES;
    pending *list = calloc(max, sizeof(*list));
    size_t n = 0;
    cl_buf libs, content, raw;
    cl_buf_init(&libs, (size_t)1 << 20);
    cl_buf_init(&content, CL_IMAGE_MAX_LEN);
    cl_buf_init(&raw, CL_IMAGE_MAX_LEN);
    CL_ENSURE_GOTO(list != NULL, CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(p->exe != NULL, CL_ERR_USAGE, "enclave image: no program (--exe)");
    CL_ENSURE_GOTO((p->sign_key == NULL) == (p->sign_cert == NULL), CL_ERR_USAGE,
                   "enclave image: --sign-key and --sign-cert go together");
    {
        const char *base = strrchr(p->exe, '/');
        base = base != NULL ? base + 1 : p->exe;
        char path[CL_IMAGE_MAX_PATH + 1];
        (void)snprintf(path, sizeof(path), "/app/%s", base);
        CL_GUARD_GOTO(add_pending(list, &n, max, CL_IMAGE_EXE, p->exe, path));
    }
    if (p->with_libraries) {
        CL_GUARD_GOTO(cl_image_list_libraries(p->exe, &libs));
        char *s = (char *)libs.data;
        while (s != NULL && *s != '\0') {
            char *eol = strchr(s, '\n');
            if (eol != NULL) *eol = '\0';
            CL_GUARD_GOTO(add_pending(list, &n, max, CL_IMAGE_RUNTIME, s, s));
            s = eol != NULL ? eol + 1 : NULL;
        }
    }
    for (size_t i = 0; i < p->file_count; i++)
        CL_GUARD_GOTO(add_pending(list, &n, max, p->files[i].kind, p->files[i].src, p->files[i].path));
    qsort(list, n, sizeof(*list), pending_cmp);
    for (size_t i = 1; i < n; i++)
        CL_ENSURE_GOTO(strcmp(list[i - 1].path, list[i].path) != 0, CL_ERR_USAGE,
                       "enclave image: two entries for %s (%s and %s)", list[i].path, list[i - 1].src, list[i].src);

    CL_GUARD_GOTO(cl_buf_append(&raw, image_magic, 8));
    CL_GUARD_GOTO(cl_buf_append_u32be(&raw, IMAGE_VERSION));
    CL_GUARD_GOTO(cl_buf_append_u32be(&raw, (uint32_t)n));
    for (size_t i = 0; i < n; i++) {
        cl_buf_reset(&content);
        CL_GUARD_CTX_GOTO(cl_buf_read_file(&content, list[i].src), "enclave image: %s", list[i].src);
        size_t plen = strlen(list[i].path);
        CL_GUARD_GOTO(cl_buf_append_u8(&raw, (uint8_t)list[i].kind));
        CL_GUARD_GOTO(cl_buf_append_u16be(&raw, normal_mode(list[i].kind)));
        CL_GUARD_GOTO(cl_buf_append_u16be(&raw, (uint16_t)plen));
        CL_GUARD_GOTO(cl_buf_append(&raw, list[i].path, plen));
        CL_GUARD_GOTO(cl_buf_append_u64be(&raw, content.len));
        CL_GUARD_GOTO(cl_buf_append(&raw, content.data, content.len));
    }
    if (p->sign_key != NULL) CL_GUARD_GOTO(sign_body(p, &raw));
    CL_GUARD_GOTO(cl_image_parse(raw.data, raw.len, out));
out:
    free(list);
    cl_buf_free(&libs);
    cl_buf_free(&content);
    cl_buf_free(&raw);
    return rc;
}
