/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/mem.h"

#define KMS_MATERIAL_AAD "cloister-kms/key-material/v1"
#define KMS_BLOB_AAD "cloister-kms/ciphertext/v1"

static CL_MUST_USE cl_status kms_write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot write %s", path);
        p += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

cl_status kms_root_key_load(const char *path, kms_root_key *out)
{
    cl_status rc = CL_OK;
    out->key = cl_secure_alloc(CL_AES256_KEY_LEN);
    CL_ENSURE(out->key != NULL, CL_ERR_NOMEM, "out of memory for the root key");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        /* First start: O_EXCL so two servers starting at once cannot both
         * create (and one overwrite) the key. */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create root key %s", path);
        CL_GUARD_GOTO(cl_random_secret(out->key, CL_AES256_KEY_LEN));
        CL_GUARD_GOTO(kms_write_all(fd, out->key, CL_AES256_KEY_LEN, path));
        if (fsync(fd) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot sync root key %s", path);
        goto out;
    }
    if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot open root key %s", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat %s", path);
    CL_ENSURE_GOTO((sb.st_mode & 077) == 0, CL_ERR_DENIED, "root key %s is readable by group or others (chmod 600 it)",
                   path);
    CL_ENSURE_GOTO(sb.st_size == CL_AES256_KEY_LEN, CL_ERR_FORMAT, "root key %s is %lld bytes, expected %d", path,
                   (long long)sb.st_size, CL_AES256_KEY_LEN);
    size_t got = 0;
    while (got < CL_AES256_KEY_LEN) {
        ssize_t r = read(fd, out->key + got, CL_AES256_KEY_LEN - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read root key %s", path);
        got += (size_t)r;
    }
out:
    if (fd >= 0) close(fd);
    if (rc != CL_OK) kms_root_key_free(out);
    return rc;
}

void kms_root_key_free(kms_root_key *rk)
{
    cl_secure_free(rk->key);
    rk->key = NULL;
}

/* --- passphrase-derived root key ----------------------------------------------- */

#define KMS_KDF_FILE_MAX 4096
#define KMS_KDF_CHECK_LABEL "cloister-kms root key check v1"

cl_status kms_scrypt(const uint8_t *pass, size_t pass_len, const uint8_t *salt, size_t salt_len, uint64_t n, uint32_t r,
                     uint32_t p, uint8_t *out, size_t out_len)
{
    cl_status rc = CL_OK;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    /* 128 * r * N for the main array, with room for p and the rest. */
    uint64_t maxmem = (uint64_t)128 * r * n + ((uint64_t)64 << 20);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, CL_UNCONST(pass), pass_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, CL_UNCONST(salt), salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    if (kctx == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "OpenSSL has no SCRYPT KDF");
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "scrypt (N=%llu, r=%u, p=%u) failed", (unsigned long long)n, r, p);
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

static CL_MUST_USE cl_status kms_kdf_b64(json_t *o, const char *member, size_t min, size_t max, uint8_t *out,
                                         size_t *out_len)
{
    json_t *v = json_object_get(o, member);
    CL_ENSURE(json_is_string(v), CL_ERR_FORMAT, "root.kdf: '%s' must be a base64 string", member);
    cl_buf b;
    cl_buf_init(&b, max + 4); /* room for the decoder's padding arithmetic; the length is checked below */
    cl_status rc = cl_base64_decode(json_string_value(v), json_string_length(v), false, &b);
    if (rc == CL_OK && (b.len < min || b.len > max)) rc = CL_ERR_FORMAT;
    if (rc == CL_OK) {
        memcpy(out, b.data, b.len);
        *out_len = b.len;
    }
    cl_buf_free(&b);
    CL_ENSURE(rc == CL_OK, CL_ERR_FORMAT, "root.kdf: '%s' must be %zu..%zu bytes of base64", member, min, max);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_kdf_int(json_t *o, const char *member, json_int_t min, json_int_t max, json_int_t *out)
{
    json_t *v = json_object_get(o, member);
    CL_ENSURE(json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max, CL_ERR_FORMAT,
              "root.kdf: '%s' must be an integer %lld..%lld", member, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return CL_OK;
}

cl_status kms_kdf_parse(const char *text, size_t len, kms_kdf_params *out)
{
    memset(out, 0, sizeof(*out));
    CL_ENSURE(len <= KMS_KDF_FILE_MAX, CL_ERR_LIMIT, "root.kdf is %zu bytes, over %d", len, KMS_KDF_FILE_MAX);
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    cl_status rc = CL_OK;
    if (o == NULL) CL_FAIL(CL_ERR_FORMAT, "root.kdf is not JSON (line %d: %s)", jerr.line, jerr.text);
    CL_ENSURE_GOTO(json_is_object(o), CL_ERR_FORMAT, "root.kdf is not a JSON object");
    static const char *const known[] = {"kdf", "n", "r", "p", "salt", "check"};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok = ok || strcmp(key, known[i]) == 0;
        CL_ENSURE_GOTO(ok, CL_ERR_FORMAT, "root.kdf: unknown member '%s'", key);
    }
    json_t *kdf = json_object_get(o, "kdf");
    CL_ENSURE_GOTO(json_is_string(kdf) && strcmp(json_string_value(kdf), "scrypt") == 0, CL_ERR_UNSUPPORTED,
                   "root.kdf: 'kdf' must be \"scrypt\"");
    json_int_t n, r, p;
    CL_GUARD_GOTO(kms_kdf_int(o, "n", (json_int_t)1 << 14, (json_int_t)1 << 20, &n));
    CL_ENSURE_GOTO((n & (n - 1)) == 0, CL_ERR_FORMAT, "root.kdf: 'n' must be a power of two");
    CL_GUARD_GOTO(kms_kdf_int(o, "r", 1, 32, &r));
    CL_GUARD_GOTO(kms_kdf_int(o, "p", 1, 16, &p));
    size_t check_len = 0;
    CL_GUARD_GOTO(kms_kdf_b64(o, "salt", 16, sizeof(out->salt), out->salt, &out->salt_len));
    CL_GUARD_GOTO(kms_kdf_b64(o, "check", sizeof(out->check), sizeof(out->check), out->check, &check_len));
    out->n = (uint64_t)n;
    out->r = (uint32_t)r;
    out->p = (uint32_t)p;
out:
    json_decref(o);
    return rc;
}

static CL_MUST_USE cl_status kms_kdf_create(const char *path, const kms_kdf_params *k)
{
    cl_status rc = CL_OK;
    cl_buf salt, check;
    cl_buf_init(&salt, 256);
    cl_buf_init(&check, 256);
    char *text = NULL;
    int fd = -1;
    CL_GUARD_GOTO(cl_base64_encode(k->salt, k->salt_len, false, &salt));
    CL_GUARD_GOTO(cl_base64_encode(k->check, sizeof(k->check), false, &check));
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "kdf", "scrypt", "n", (json_int_t)k->n, "r", (json_int_t)k->r, "p",
                  (json_int_t)k->p, "salt", (const char *)salt.data, "check", (const char *)check.data);
    text = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    CL_ENSURE_GOTO(text != NULL, CL_ERR_NOMEM, "out of memory");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", path);
    CL_GUARD_GOTO(kms_write_all(fd, (const uint8_t *)text, strlen(text), path));
    CL_GUARD_GOTO(kms_write_all(fd, (const uint8_t *)"\n", 1, path));
    if (fsync(fd) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot sync %s", path);
out:
    if (fd >= 0) close(fd);
    if (rc != CL_OK && fd >= 0) unlink(path);
    free(text);
    cl_buf_free(&salt);
    cl_buf_free(&check);
    return rc;
}

cl_status kms_root_key_derive(const uint8_t *pass, size_t pass_len, const char *kdf_path, unsigned log2_n,
                              kms_root_key *out)
{
    CL_ENSURE(pass_len >= KMS_PASSPHRASE_MIN && pass_len <= KMS_PASSPHRASE_MAX, CL_ERR_USAGE,
              "the root key passphrase must be %d..%d bytes", KMS_PASSPHRASE_MIN, KMS_PASSPHRASE_MAX);
    if (log2_n == 0) log2_n = KMS_SCRYPT_LOG2_N_DEFAULT;
    CL_ENSURE(log2_n >= 14 && log2_n <= 20, CL_ERR_USAGE, "scrypt cost 2^%u is outside 2^14..2^20", log2_n);
    cl_status rc = CL_OK;
    kms_kdf_params k;
    memset(&k, 0, sizeof(k));
    uint8_t check[CL_SHA256_LEN];
    bool fresh = false;
    cl_buf text;
    cl_buf_init(&text, KMS_KDF_FILE_MAX);
    out->key = cl_secure_alloc(CL_AES256_KEY_LEN);
    CL_ENSURE(out->key != NULL, CL_ERR_NOMEM, "out of memory for the root key");
    struct stat sb;
    if (lstat(kdf_path, &sb) != 0 && errno == ENOENT) {
        fresh = true;
        k.n = (uint64_t)1 << log2_n;
        k.r = 8;
        k.p = 1;
        k.salt_len = 32;
        CL_GUARD_GOTO(cl_random(k.salt, k.salt_len));
    } else {
        CL_GUARD_CTX_GOTO(cl_buf_read_file(&text, kdf_path), "reading the root key parameters");
        CL_GUARD_CTX_GOTO(kms_kdf_parse((const char *)text.data, text.len, &k), "%s", kdf_path);
    }
    CL_GUARD_GOTO(kms_scrypt(pass, pass_len, k.salt, k.salt_len, k.n, k.r, k.p, out->key, CL_AES256_KEY_LEN));
    CL_GUARD_GOTO(
        cl_hmac_sha256(out->key, CL_AES256_KEY_LEN, KMS_KDF_CHECK_LABEL, sizeof(KMS_KDF_CHECK_LABEL) - 1, check));
    if (fresh) {
        memcpy(k.check, check, sizeof(check));
        CL_GUARD_GOTO(kms_kdf_create(kdf_path, &k));
    } else {
        CL_ENSURE_GOTO(cl_ct_equal(check, k.check, sizeof(check)), CL_ERR_AUTH,
                       "the root key passphrase is not the one %s was created with", kdf_path);
    }
out:
    cl_memzero(check, sizeof(check));
    cl_buf_free(&text);
    if (rc != CL_OK) kms_root_key_free(out);
    return rc;
}

static CL_MUST_USE cl_status kms_material_aad(const char *arn, uint32_t version, cl_buf *aad)
{
    CL_GUARD(cl_buf_append(aad, KMS_MATERIAL_AAD, sizeof(KMS_MATERIAL_AAD)));
    CL_GUARD(cl_buf_append(aad, arn, strlen(arn) + 1));
    return cl_buf_append_u32be(aad, version);
}

cl_status kms_material_wrap(const kms_root_key *rk, const char *arn, uint32_t version,
                            const uint8_t material[KMS_MATERIAL_LEN], cl_buf *wrapped)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    uint8_t nonce[CL_GCM_NONCE_LEN], tag[CL_GCM_TAG_LEN], ct[KMS_MATERIAL_LEN];
    CL_GUARD_GOTO(kms_material_aad(arn, version, &aad));
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_gcm_init(&g, rk->key, true));
    CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad.data, aad.len, material, KMS_MATERIAL_LEN, ct, tag));
    CL_GUARD_GOTO(cl_buf_append(wrapped, nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_append(wrapped, ct, sizeof(ct)));
    CL_GUARD_GOTO(cl_buf_append(wrapped, tag, sizeof(tag)));
out:
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

cl_status kms_material_unwrap(const kms_root_key *rk, const char *arn, uint32_t version, const uint8_t *wrapped,
                              size_t wrapped_len, cl_buf *material)
{
    CL_ENSURE(wrapped_len == KMS_WRAPPED_LEN, CL_ERR_FORMAT, "stored key material of %s is %zu bytes, expected %d", arn,
              wrapped_len, KMS_WRAPPED_LEN);
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    CL_GUARD_GOTO(kms_material_aad(arn, version, &aad));
    CL_GUARD_GOTO(cl_buf_resize(material, KMS_MATERIAL_LEN));
    CL_GUARD_GOTO(cl_gcm_init(&g, rk->key, false));
    rc = cl_gcm_open(&g, wrapped, aad.data, aad.len, wrapped + CL_GCM_NONCE_LEN, KMS_MATERIAL_LEN,
                     wrapped + CL_GCM_NONCE_LEN + KMS_MATERIAL_LEN, material->data);
    if (rc == CL_ERR_AUTH)
        CL_FAIL_GOTO(CL_ERR_AUTH, "stored key material of %s version %u does not verify under the root key", arn,
                     version);
out:
    if (rc != CL_OK) cl_buf_reset(material);
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

cl_status kms_blob_parse(const uint8_t *blob, size_t len, kms_blob *out)
{
    memset(out, 0, sizeof(*out));
    CL_ENSURE(len <= KMS_BLOB_MAX, CL_ERR_FORMAT, "ciphertext blob longer than %d bytes", KMS_BLOB_MAX);
    cl_reader r = cl_reader_make(blob, len);
    uint8_t ver, id_len;
    const uint8_t *id;
    CL_GUARD(cl_reader_u8(&r, &ver));
    CL_ENSURE(ver == KMS_BLOB_VERSION || ver == KMS_BLOB_VERSION_V1, CL_ERR_FORMAT,
              "ciphertext blob version %u is not %d (or %d)", ver, KMS_BLOB_VERSION, KMS_BLOB_VERSION_V1);
    out->format = ver;
    CL_GUARD(cl_reader_u8(&r, &id_len));
    CL_ENSURE(id_len == KMS_KEY_ID_LEN, CL_ERR_FORMAT, "ciphertext blob key id length %u", id_len);
    CL_GUARD(cl_reader_bytes(&r, id_len, &id));
    for (size_t i = 0; i < id_len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
        CL_ENSURE(dash ? id[i] == '-' : hex, CL_ERR_FORMAT, "ciphertext blob key id is not a key id");
    }
    memcpy(out->key_id, id, id_len);
    out->key_id[id_len] = '\0';
    if (ver == KMS_BLOB_VERSION) {
        uint8_t region_len;
        const uint8_t *region;
        CL_GUARD(cl_reader_u8(&r, &region_len));
        CL_ENSURE(region_len >= 1 && region_len <= KMS_REGION_MAX, CL_ERR_FORMAT,
                  "ciphertext blob region length %u is not 1..%d", region_len, KMS_REGION_MAX);
        CL_GUARD(cl_reader_bytes(&r, region_len, &region));
        memcpy(out->region, region, region_len);
        out->region[region_len] = '\0';
        CL_ENSURE(kms_region_name_ok(out->region), CL_ERR_FORMAT, "ciphertext blob region is not a region name");
    }
    CL_GUARD(cl_reader_u32be(&r, &out->version));
    CL_ENSURE(out->version >= 1, CL_ERR_FORMAT, "ciphertext blob key version 0");
    CL_GUARD(cl_reader_bytes(&r, CL_GCM_NONCE_LEN, &out->nonce));
    out->header = blob;
    out->header_len = cl_reader_offset(&r);
    CL_ENSURE(cl_reader_remaining(&r) >= CL_GCM_TAG_LEN, CL_ERR_FORMAT, "ciphertext blob truncated");
    out->ct_len = cl_reader_remaining(&r) - CL_GCM_TAG_LEN;
    CL_GUARD(cl_reader_bytes(&r, out->ct_len, &out->ct));
    CL_GUARD(cl_reader_bytes(&r, CL_GCM_TAG_LEN, &out->tag));
    return cl_reader_expect_end(&r);
}

/* AAD = label NUL || blob header || u16 count || (u16 len, key, u16 len, value)... in key byte order. */
static CL_MUST_USE cl_status kms_blob_aad(const uint8_t *header, size_t header_len, const cl_kvlist *ctx, cl_buf *aad)
{
    CL_GUARD(cl_buf_append(aad, KMS_BLOB_AAD, sizeof(KMS_BLOB_AAD)));
    CL_GUARD(cl_buf_append(aad, header, header_len));
    return cl_kvlist_encode(ctx, aad);
}

cl_status kms_blob_seal(const uint8_t material[KMS_MATERIAL_LEN], const char *key_id, const char *region,
                        uint32_t version, const cl_kvlist *ctx, const uint8_t *pt, size_t pt_len, cl_buf *blob)
{
    CL_ENSURE(strlen(key_id) == KMS_KEY_ID_LEN, CL_ERR_INTERNAL, "bad key id");
    CL_ENSURE(kms_region_name_ok(region), CL_ERR_INTERNAL, "bad region for a ciphertext blob");
    CL_ENSURE(pt_len <= KMS_PLAINTEXT_MAX, CL_ERR_LIMIT, "plaintext longer than %d bytes", KMS_PLAINTEXT_MAX);
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 1 << 20);
    uint8_t nonce[CL_GCM_NONCE_LEN], tag[CL_GCM_TAG_LEN];
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_append_u8(blob, KMS_BLOB_VERSION));
    CL_GUARD_GOTO(cl_buf_append_u8(blob, KMS_KEY_ID_LEN));
    CL_GUARD_GOTO(cl_buf_append(blob, key_id, KMS_KEY_ID_LEN));
    CL_GUARD_GOTO(cl_buf_append_u8(blob, (uint8_t)strlen(region)));
    CL_GUARD_GOTO(cl_buf_append(blob, region, strlen(region)));
    CL_GUARD_GOTO(cl_buf_append_u32be(blob, version));
    CL_GUARD_GOTO(cl_buf_append(blob, nonce, sizeof(nonce)));
    size_t hlen = blob->len;
    CL_GUARD_GOTO(kms_blob_aad(blob->data, hlen, ctx, &aad));
    CL_GUARD_GOTO(cl_buf_resize(blob, hlen + pt_len + CL_GCM_TAG_LEN));
    CL_GUARD_GOTO(cl_gcm_init(&g, material, true));
    CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad.data, aad.len, pt, pt_len, blob->data + hlen, tag));
    memcpy(blob->data + hlen + pt_len, tag, sizeof(tag));
out:
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

cl_status kms_blob_open(const uint8_t material[KMS_MATERIAL_LEN], const kms_blob *b, const cl_kvlist *ctx,
                        cl_buf *plaintext)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 1 << 20);
    CL_GUARD_GOTO(kms_blob_aad(b->header, b->header_len, ctx, &aad));
    /* One allocation of the final size (secret buffers never realloc), and
     * data never NULL, even for an empty plaintext (cl_gcm_open computes out + n). */
    CL_GUARD_GOTO(cl_buf_reserve(plaintext, b->ct_len + 1));
    CL_GUARD_GOTO(cl_buf_resize(plaintext, b->ct_len));
    CL_GUARD_GOTO(cl_gcm_init(&g, material, false));
    rc = cl_gcm_open(&g, b->nonce, aad.data, aad.len, b->ct, b->ct_len, b->tag, plaintext->data);
    if (rc == CL_ERR_AUTH)
        CL_FAIL_GOTO(CL_ERR_AUTH, "ciphertext does not verify: wrong encryption context or altered ciphertext");
out:
    if (rc != CL_OK) cl_buf_reset(plaintext);
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

typedef struct kms_cache_slot {
    char key_id[KMS_KEY_ID_LEN + 1];
    uint32_t version;
    bool used;
} kms_cache_slot;

struct kms_material_cache {
    pthread_rwlock_t lock;
    size_t slots;
    kms_cache_slot *index; /* ordinary memory: ids and versions are not secret */
    uint8_t *material;     /* secure memory: slots * KMS_MATERIAL_LEN */
};

cl_status kms_cache_new(size_t slots, kms_material_cache **out)
{
    kms_material_cache *mc = calloc(1, sizeof(*mc));
    CL_ENSURE(mc != NULL, CL_ERR_NOMEM, "out of memory for the key cache");
    mc->slots = slots;
    mc->index = calloc(slots, sizeof(*mc->index));
    mc->material = cl_secure_alloc(slots * KMS_MATERIAL_LEN);
    if (mc->index == NULL || mc->material == NULL) {
        free(mc->index);
        cl_secure_free(mc->material);
        free(mc);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for the key cache");
    }
    pthread_rwlock_init(&mc->lock, NULL);
    *out = mc;
    return CL_OK;
}

void kms_cache_free(kms_material_cache *mc)
{
    if (mc == NULL) return;
    pthread_rwlock_destroy(&mc->lock);
    free(mc->index);
    cl_secure_free(mc->material); /* wipes */
    free(mc);
}

/* Direct-mapped on a hash of (key id, version): a collision replaces. */
static size_t kms_cache_slot_of(const kms_material_cache *mc, const char *key_id, uint32_t version)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = key_id; *p != '\0'; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    h = (h ^ version) * 1099511628211ULL;
    return (size_t)(h % mc->slots);
}

bool kms_cache_get(kms_material_cache *mc, const char *key_id, uint32_t version, uint8_t *out)
{
    size_t i = kms_cache_slot_of(mc, key_id, version);
    bool hit = false;
    pthread_rwlock_rdlock(&mc->lock);
    if (mc->index[i].used && mc->index[i].version == version && strcmp(mc->index[i].key_id, key_id) == 0) {
        memcpy(out, mc->material + i * KMS_MATERIAL_LEN, KMS_MATERIAL_LEN);
        hit = true;
    }
    pthread_rwlock_unlock(&mc->lock);
    return hit;
}

void kms_cache_put(kms_material_cache *mc, const char *key_id, uint32_t version, const uint8_t *material)
{
    if (strlen(key_id) != KMS_KEY_ID_LEN) return;
    size_t i = kms_cache_slot_of(mc, key_id, version);
    pthread_rwlock_wrlock(&mc->lock);
    memcpy(mc->index[i].key_id, key_id, KMS_KEY_ID_LEN + 1);
    mc->index[i].version = version;
    mc->index[i].used = true;
    memcpy(mc->material + i * KMS_MATERIAL_LEN, material, KMS_MATERIAL_LEN);
    pthread_rwlock_unlock(&mc->lock);
}

void kms_cache_evict_key(kms_material_cache *mc, const char *key_id)
{
    pthread_rwlock_wrlock(&mc->lock);
    for (size_t i = 0; i < mc->slots; i++) {
        if (mc->index[i].used && strcmp(mc->index[i].key_id, key_id) == 0) {
            mc->index[i].used = false;
            cl_memzero(mc->material + i * KMS_MATERIAL_LEN, KMS_MATERIAL_LEN);
        }
    }
    pthread_rwlock_unlock(&mc->lock);
}
