/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local key provider. A key file is one line of text:
 *     CLOISTER-LOCAL-KEY-V1 <64 lower-case hex digits>\n
 * A wrapped data key is nonce(12) || AES-256-GCM(kek, nonce, aad, data_key)(32) || tag(16),
 * with aad = "cloister/local-wrap/v1" 0x00 key_id 0x00 then the context as
 * u16 count, (u16 len, key, u16 len, value)... in key order — the same
 * canonical encoding as the envelope header. The nonce is random: a key file
 * is good for 2^32 wraps (NIST SP 800-38D section 8.3) before rotating.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/keyprovider.h"
#include "cloister/mem.h"

#define CL_LOCAL_MAGIC "CLOISTER-LOCAL-KEY-V1 "
#define CL_LOCAL_WRAP_AAD "cloister/local-wrap/v1"
#define CL_LOCAL_WRAPPED_LEN (CL_GCM_NONCE_LEN + CL_DATA_KEY_LEN + CL_GCM_TAG_LEN)

typedef struct cl_local_state {
    uint8_t *kek; /* secure memory, CL_DATA_KEY_LEN */
    char key_id[32];
} cl_local_state;

void cl_key_provider_destroy(cl_key_provider *kp)
{
    if (kp != NULL && kp->destroy != NULL) kp->destroy(kp);
}

static CL_MUST_USE cl_status cl_local_key_id(const uint8_t kek[CL_DATA_KEY_LEN], char out[32])
{
    static const char label[] = "cloister local key id v1";
    uint8_t msg[sizeof(label) + CL_DATA_KEY_LEN];
    uint8_t digest[CL_SHA256_LEN];
    memcpy(msg, label, sizeof(label));
    memcpy(msg + sizeof(label), kek, CL_DATA_KEY_LEN);
    cl_status rc = cl_sha256(msg, sizeof(msg), digest);
    cl_memzero(msg, sizeof(msg));
    CL_GUARD(rc);
    char hex[2 * 8 + 1];
    (void)snprintf(out, 32, "local:%s", cl_hex_encode(digest, 8, hex, sizeof(hex)));
    return CL_OK;
}

static CL_MUST_USE cl_status cl_local_wrap_aad(const char *key_id, const cl_kvlist *ctx, cl_buf *aad)
{
    CL_GUARD(cl_buf_append(aad, CL_LOCAL_WRAP_AAD, sizeof(CL_LOCAL_WRAP_AAD)));
    CL_GUARD(cl_buf_append(aad, key_id, strlen(key_id) + 1));
    return cl_kvlist_encode(ctx, aad);
}

static CL_MUST_USE cl_status cl_local_generate(cl_key_provider *kp, const cl_kvlist *ctx, cl_buf *data_key,
                                               cl_buf *wrapped, cl_buf *key_id)
{
    cl_local_state *st = kp->state;
    cl_status rc = CL_OK;
    cl_gcm gcm = {0};
    cl_buf aad;
    cl_buf_init(&aad, 1 << 20);
    uint8_t nonce[CL_GCM_NONCE_LEN];
    uint8_t tag[CL_GCM_TAG_LEN];
    uint8_t ct[CL_DATA_KEY_LEN];

    CL_GUARD_GOTO(cl_buf_resize(data_key, CL_DATA_KEY_LEN));
    CL_GUARD_GOTO(cl_random_secret(data_key->data, CL_DATA_KEY_LEN));
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_local_wrap_aad(st->key_id, ctx, &aad));
    CL_GUARD_GOTO(cl_gcm_init(&gcm, st->kek, true));
    CL_GUARD_GOTO(cl_gcm_seal(&gcm, nonce, aad.data, aad.len, data_key->data, CL_DATA_KEY_LEN, ct, tag));
    CL_GUARD_GOTO(cl_buf_append(wrapped, nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_append(wrapped, ct, sizeof(ct)));
    CL_GUARD_GOTO(cl_buf_append(wrapped, tag, sizeof(tag)));
    CL_GUARD_GOTO(cl_buf_append_str(key_id, st->key_id));
out:
    if (rc != CL_OK) cl_buf_reset(data_key);
    cl_gcm_free(&gcm);
    cl_buf_free(&aad);
    return rc;
}

static CL_MUST_USE cl_status cl_local_unwrap(cl_key_provider *kp, const char *key_id, const uint8_t *wrapped,
                                             size_t wrapped_len, const cl_kvlist *ctx, cl_buf *data_key)
{
    cl_local_state *st = kp->state;
    cl_status rc = CL_OK;
    cl_gcm gcm = {0};
    cl_buf aad;
    cl_buf_init(&aad, 1 << 20);

    CL_ENSURE(strcmp(key_id, st->key_id) == 0, CL_ERR_KEY,
              "wrong key: the file was sealed with key %s, but the key given is %s", key_id, st->key_id);
    CL_ENSURE(wrapped_len == CL_LOCAL_WRAPPED_LEN, CL_ERR_FORMAT,
              "wrapped data key is %zu bytes, a local key wraps to %d", wrapped_len, CL_LOCAL_WRAPPED_LEN);
    CL_GUARD_GOTO(cl_local_wrap_aad(st->key_id, ctx, &aad));
    CL_GUARD_GOTO(cl_buf_resize(data_key, CL_DATA_KEY_LEN));
    CL_GUARD_GOTO(cl_gcm_init(&gcm, st->kek, false));
    rc = cl_gcm_open(&gcm, wrapped, aad.data, aad.len, wrapped + CL_GCM_NONCE_LEN, CL_DATA_KEY_LEN,
                     wrapped + CL_GCM_NONCE_LEN + CL_DATA_KEY_LEN, data_key->data);
    if (rc == CL_ERR_AUTH)
        CL_FAIL_GOTO(CL_ERR_AUTH, "cannot unwrap the data key with %s: the header was altered", st->key_id);
    CL_GUARD_GOTO(rc);
out:
    if (rc != CL_OK) cl_buf_reset(data_key);
    cl_gcm_free(&gcm);
    cl_buf_free(&aad);
    return rc;
}

static void cl_local_destroy(cl_key_provider *kp)
{
    cl_local_state *st = kp->state;
    if (st != NULL) cl_secure_free(st->kek);
    free(st);
    free(kp);
}

cl_status cl_local_provider_from_key(const uint8_t key[CL_DATA_KEY_LEN], cl_key_provider **out)
{
    cl_key_provider *kp = calloc(1, sizeof(*kp));
    cl_local_state *st = calloc(1, sizeof(*st));
    uint8_t *kek = cl_secure_alloc(CL_DATA_KEY_LEN);
    if (kp == NULL || st == NULL || kek == NULL) {
        free(kp);
        free(st);
        cl_secure_free(kek);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for a key provider");
    }
    memcpy(kek, key, CL_DATA_KEY_LEN);
    st->kek = kek;
    kp->name = "local";
    kp->generate = cl_local_generate;
    kp->unwrap = cl_local_unwrap;
    kp->destroy = cl_local_destroy;
    kp->state = st;
    cl_status rc = cl_local_key_id(kek, st->key_id);
    if (rc != CL_OK) {
        cl_local_destroy(kp);
        return rc;
    }
    *out = kp;
    return CL_OK;
}

const char *cl_local_provider_key_id(const cl_key_provider *kp)
{
    const cl_local_state *st = kp->state;
    return st->key_id;
}

cl_status cl_local_provider_open(const char *path, cl_key_provider **out)
{
    cl_status rc = CL_OK;
    cl_buf text, key;
    cl_buf_init_secret(&text, 256);
    cl_buf_init_secret(&key, CL_DATA_KEY_LEN);
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open key file %s", path);
    if (fstat(fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat key file %s", path);
    CL_ENSURE_GOTO(S_ISREG(sb.st_mode), CL_ERR_USAGE, "key file %s is not a regular file", path);
    CL_ENSURE_GOTO((sb.st_mode & 077) == 0, CL_ERR_DENIED,
                   "key file %s is readable by group or others (mode %04o); run chmod 600 %s", path,
                   (unsigned)(sb.st_mode & 07777), path);
    close(fd);
    fd = -1;
    rc = cl_buf_read_file(&text, path);
    if (rc == CL_ERR_LIMIT) CL_FAIL_GOTO(CL_ERR_FORMAT, "%s is not a cloister local key file (too large)", path);
    CL_GUARD_GOTO(rc);
    cl_buf_rstrip(&text, "\n");
    cl_reader r = cl_reader_make(text.data, text.len);
    const uint8_t *hex = NULL;
    if (cl_reader_expect(&r, CL_LOCAL_MAGIC, strlen(CL_LOCAL_MAGIC), "the magic") != CL_OK ||
        cl_reader_bytes(&r, (size_t)2 * CL_DATA_KEY_LEN, &hex) != CL_OK || cl_reader_expect_end(&r) != CL_OK)
        CL_FAIL_GOTO(CL_ERR_FORMAT, "%s is not a cloister local key file (expected \"%s<64 hex digits>\")", path,
                     CL_LOCAL_MAGIC);
    rc = cl_hex_decode((const char *)hex, (size_t)2 * CL_DATA_KEY_LEN, &key);
    if (rc != CL_OK) CL_FAIL_GOTO(CL_ERR_FORMAT, "%s: the key is not 64 hex digits", path);
    CL_GUARD_GOTO(cl_local_provider_from_key(key.data, out));
out:
    if (fd >= 0) close(fd);
    cl_buf_free(&text);
    cl_buf_free(&key);
    return rc;
}

cl_status cl_local_key_create(const char *path, cl_buf *key_id)
{
    cl_status rc = CL_OK;
    cl_buf text, key;
    cl_buf_init_secret(&text, 256);
    cl_buf_init_secret(&key, CL_DATA_KEY_LEN);
    char id[32];
    int fd = -1;

    CL_GUARD_GOTO(cl_buf_resize(&key, CL_DATA_KEY_LEN));
    CL_GUARD_GOTO(cl_random_secret(key.data, CL_DATA_KEY_LEN));
    CL_GUARD_GOTO(cl_local_key_id(key.data, id));
    CL_GUARD_GOTO(cl_buf_append_str(&text, CL_LOCAL_MAGIC));
    CL_GUARD_GOTO(cl_buf_append_hex(&text, key.data, CL_DATA_KEY_LEN));
    CL_GUARD_GOTO(cl_buf_append_str(&text, "\n"));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        CL_FAIL_GOTO(CL_ERR_EXISTS, "%s already exists; a key file is never overwritten", path);
    if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create key file %s", path);
    size_t off = 0;
    while (off < text.len) {
        ssize_t w = write(fd, text.data + off, text.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot write key file %s", path);
        off += (size_t)w;
    }
    /* A key that is not on disk when we say it is would lose data later. */
    if (fsync(fd) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot sync key file %s", path);
    if (key_id != NULL) CL_GUARD_GOTO(cl_buf_append_str(key_id, id));
out:
    if (fd >= 0) {
        close(fd);
        if (rc != CL_OK) unlink(path);
    }
    cl_buf_free(&text);
    cl_buf_free(&key);
    return rc;
}
