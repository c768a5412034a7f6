/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed envelope v1; the format is specified in docs/formats/envelope.md.
 *
 * The chunk construction follows the "STREAM" online AEAD of Hoang, Reyhanitabar,
 * Rogaway and Vizar ("Online Authenticated-Encryption and its Nonce-Reuse
 * Misuse-Resistance", CRYPTO 2015) as Tink's AES-GCM-HKDF streaming AEAD uses it:
 * a per-file key and nonce prefix from HKDF over a random salt, and a nonce of
 * prefix || chunk index || last-chunk flag, so chunks cannot be reordered,
 * dropped, appended or moved between files without failing authentication.
 */
#include "cloister/envelope.h"

#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#define CL_ENVELOPE_KDF_INFO "cloister/envelope/v1/chunk-key"
#define CL_ENVELOPE_PREFIX_LEN 7
#define CL_ENVELOPE_DERIVED_LEN (CL_AES256_KEY_LEN + CL_ENVELOPE_PREFIX_LEN)

static const uint8_t cl_envelope_magic[CL_ENVELOPE_MAGIC_LEN] = {0x89, 'C', 'L', 'S', 'E', 'A', 'L', '\n'};

static bool cl_envelope_provider_name_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || n > CL_PROVIDER_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

cl_status cl_envelope_header_length(const uint8_t *p, size_t n, uint32_t *header_len)
{
    cl_reader r = cl_reader_make(p, n);
    const uint8_t *magic;
    uint8_t version, alg;
    CL_ENSURE(n >= CL_ENVELOPE_FIXED_LEN, CL_ERR_FORMAT, "not a sealed file: only %zu bytes", n);
    CL_GUARD(cl_reader_bytes(&r, CL_ENVELOPE_MAGIC_LEN, &magic));
    CL_ENSURE(memcmp(magic, cl_envelope_magic, CL_ENVELOPE_MAGIC_LEN) == 0, CL_ERR_FORMAT,
              "not a sealed file (no cloister envelope magic)");
    CL_GUARD(cl_reader_u8(&r, &version));
    CL_GUARD(cl_reader_u8(&r, &alg));
    CL_ENSURE(version == CL_ENVELOPE_VERSION, CL_ERR_UNSUPPORTED,
              "sealed with envelope format version %u; this build reads version %d", version, CL_ENVELOPE_VERSION);
    CL_ENSURE(alg == CL_ENVELOPE_ALG_AES256GCM_HKDF, CL_ERR_UNSUPPORTED, "unknown envelope algorithm %u", alg);
    CL_GUARD(cl_reader_u32be(&r, header_len));
    CL_ENSURE(*header_len > CL_ENVELOPE_FIXED_LEN && *header_len <= CL_ENVELOPE_HEADER_MAX, CL_ERR_FORMAT,
              "envelope header length %u is out of range", *header_len);
    return CL_OK;
}

void cl_envelope_header_free(cl_envelope_header *h) { cl_kvlist_free(&h->context); }

static CL_MUST_USE cl_status cl_envelope_header_parse_fields(cl_reader *r, cl_envelope_header *h)
{
    uint8_t plen;
    uint16_t klen, wlen, count;
    CL_GUARD(cl_reader_skip(r, CL_ENVELOPE_FIXED_LEN));
    CL_GUARD(cl_reader_u32be(r, &h->chunk_size));
    CL_ENSURE(h->chunk_size >= CL_ENVELOPE_CHUNK_MIN && h->chunk_size <= CL_ENVELOPE_CHUNK_MAX, CL_ERR_FORMAT,
              "chunk size %u is out of range", h->chunk_size);
    CL_GUARD(cl_reader_u8(r, &plen));
    CL_GUARD(cl_reader_bytes(r, plen, &h->provider));
    h->provider_len = plen;
    CL_ENSURE(cl_envelope_provider_name_ok(h->provider, plen), CL_ERR_FORMAT, "invalid key provider name");
    CL_GUARD(cl_reader_u16be(r, &klen));
    CL_ENSURE(klen >= 1 && klen <= CL_KEY_ID_MAX, CL_ERR_FORMAT, "key id length %u is out of range", klen);
    CL_GUARD(cl_reader_bytes(r, klen, &h->key_id));
    h->key_id_len = klen;
    CL_ENSURE(memchr(h->key_id, 0, klen) == NULL, CL_ERR_FORMAT, "key id contains a NUL byte");
    CL_GUARD(cl_reader_u16be(r, &wlen));
    CL_ENSURE(wlen >= 1 && wlen <= CL_WRAPPED_KEY_MAX, CL_ERR_FORMAT, "wrapped key length %u is out of range", wlen);
    CL_GUARD(cl_reader_bytes(r, wlen, &h->wrapped_key));
    h->wrapped_key_len = wlen;
    CL_GUARD(cl_reader_u16be(r, &count));
    CL_ENSURE(count <= CL_KV_MAX_COUNT, CL_ERR_FORMAT, "%u context entries; at most %d allowed", count,
              CL_KV_MAX_COUNT);
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint16_t i = 0; i < count; i++) {
        uint16_t kl, vl;
        const uint8_t *k, *v;
        CL_GUARD(cl_reader_u16be(r, &kl));
        CL_GUARD(cl_reader_bytes(r, kl, &k));
        CL_GUARD(cl_reader_u16be(r, &vl));
        CL_GUARD(cl_reader_bytes(r, vl, &v));
        /* Strictly increasing keys: one canonical encoding per context. */
        if (prev != NULL) {
            size_t m = prev_len < kl ? prev_len : kl;
            int c = memcmp(prev, k, m);
            CL_ENSURE(c < 0 || (c == 0 && prev_len < kl), CL_ERR_FORMAT,
                      "context keys are not in strictly increasing order");
        }
        CL_GUARD(cl_kvlist_add(&h->context, (const char *)k, kl, (const char *)v, vl));
        prev = k;
        prev_len = kl;
    }
    CL_GUARD(cl_reader_bytes(r, CL_ENVELOPE_SALT_LEN, &h->salt));
    return cl_reader_expect_end(r);
}

cl_status cl_envelope_header_parse(const uint8_t *p, size_t n, cl_envelope_header *h)
{
    memset(h, 0, sizeof(*h));
    cl_kvlist_init(&h->context);
    CL_GUARD(cl_envelope_header_length(p, n, &h->header_len));
    CL_ENSURE(n == h->header_len, CL_ERR_FORMAT, "envelope header says %u bytes, have %zu", h->header_len, n);
    h->version = p[8];
    h->algorithm = p[9];
    cl_reader r = cl_reader_make(p, n);
    cl_status rc = cl_envelope_header_parse_fields(&r, h);
    if (rc != CL_OK) {
        cl_envelope_header_free(h);
        return cl_error_wrap("malformed envelope header");
    }
    return CL_OK;
}

/* Derives the per-file chunk key and nonce prefix into `derived` (secret). */
static CL_MUST_USE cl_status cl_envelope_derive(const cl_buf *data_key, const uint8_t *salt, cl_buf *derived)
{
    static const char info[] = CL_ENVELOPE_KDF_INFO;
    CL_ENSURE(data_key->len == CL_DATA_KEY_LEN, CL_ERR_FORMAT, "data key is %zu bytes, expected %d", data_key->len,
              CL_DATA_KEY_LEN);
    CL_GUARD(cl_buf_resize(derived, CL_ENVELOPE_DERIVED_LEN));
    return cl_hkdf_sha256(data_key->data, data_key->len, salt, CL_ENVELOPE_SALT_LEN, (const uint8_t *)info,
                          sizeof(info) - 1, derived->data, CL_ENVELOPE_DERIVED_LEN);
}

static void cl_envelope_nonce(const uint8_t *prefix, uint32_t index, bool last, uint8_t nonce[CL_GCM_NONCE_LEN])
{
    memcpy(nonce, prefix, CL_ENVELOPE_PREFIX_LEN);
    nonce[7] = (uint8_t)(index >> 24);
    nonce[8] = (uint8_t)(index >> 16);
    nonce[9] = (uint8_t)(index >> 8);
    nonce[10] = (uint8_t)index;
    nonce[11] = last ? 1 : 0;
}

static CL_MUST_USE cl_status cl_envelope_build_header(const char *provider, const cl_buf *key_id, const cl_buf *wrapped,
                                                      const cl_kvlist *ctx, uint32_t chunk_size, const uint8_t *salt,
                                                      cl_buf *hdr)
{
    size_t plen = strlen(provider);
    CL_ENSURE(cl_envelope_provider_name_ok((const uint8_t *)provider, plen), CL_ERR_INTERNAL,
              "invalid key provider name \"%s\"", provider);
    CL_ENSURE(key_id->len >= 1 && key_id->len <= CL_KEY_ID_MAX, CL_ERR_LIMIT, "key id of %zu bytes", key_id->len);
    CL_ENSURE(wrapped->len >= 1 && wrapped->len <= CL_WRAPPED_KEY_MAX, CL_ERR_LIMIT, "wrapped key of %zu bytes",
              wrapped->len);
    CL_GUARD(cl_buf_append(hdr, cl_envelope_magic, CL_ENVELOPE_MAGIC_LEN));
    CL_GUARD(cl_buf_append_u8(hdr, CL_ENVELOPE_VERSION));
    CL_GUARD(cl_buf_append_u8(hdr, CL_ENVELOPE_ALG_AES256GCM_HKDF));
    CL_GUARD(cl_buf_append_u32be(hdr, 0)); /* header length, patched below */
    CL_GUARD(cl_buf_append_u32be(hdr, chunk_size));
    CL_GUARD(cl_buf_append_u8(hdr, (uint8_t)plen));
    CL_GUARD(cl_buf_append(hdr, provider, plen));
    CL_GUARD(cl_buf_append_u16be(hdr, (uint16_t)key_id->len));
    CL_GUARD(cl_buf_append(hdr, key_id->data, key_id->len));
    CL_GUARD(cl_buf_append_u16be(hdr, (uint16_t)wrapped->len));
    CL_GUARD(cl_buf_append(hdr, wrapped->data, wrapped->len));
    CL_GUARD(cl_kvlist_encode(ctx, hdr));
    CL_GUARD(cl_buf_append(hdr, salt, CL_ENVELOPE_SALT_LEN));
    CL_ENSURE(hdr->len <= CL_ENVELOPE_HEADER_MAX, CL_ERR_LIMIT, "envelope header of %zu bytes is over the %d limit",
              hdr->len, CL_ENVELOPE_HEADER_MAX);
    return cl_buf_put_u32be_at(hdr, 10, (uint32_t)hdr->len); /* the header's own length, now known */
}

cl_status cl_envelope_seal(cl_key_provider *kp, const cl_envelope_opts *opts, cl_stream *in, cl_stream *out)
{
    cl_status rc = CL_OK;
    cl_envelope_opts none = {0};
    cl_buf data_key, derived, wrapped, key_id, hdr;
    cl_gcm gcm = {0};
    uint8_t *chunk = NULL;
    uint8_t salt[CL_ENVELOPE_SALT_LEN];
    uint8_t aad[CL_SHA256_LEN];

    if (opts == NULL) opts = &none;
    cl_buf_init_secret(&data_key, CL_DATA_KEY_LEN);
    cl_buf_init_secret(&derived, CL_ENVELOPE_DERIVED_LEN);
    cl_buf_init(&wrapped, CL_WRAPPED_KEY_MAX);
    cl_buf_init(&key_id, CL_KEY_ID_MAX);
    cl_buf_init(&hdr, CL_ENVELOPE_HEADER_MAX);

    uint32_t cs = opts->chunk_size ? opts->chunk_size : CL_ENVELOPE_CHUNK_DEFAULT;
    CL_ENSURE_GOTO(cs >= CL_ENVELOPE_CHUNK_MIN && cs <= CL_ENVELOPE_CHUNK_MAX, CL_ERR_USAGE,
                   "chunk size %u is outside %u..%u", cs, CL_ENVELOPE_CHUNK_MIN, CL_ENVELOPE_CHUNK_MAX);
    CL_GUARD_CTX_GOTO(kp->generate(kp, opts->context, &data_key, &wrapped, &key_id), "creating a data key");
    if (opts->fixed_salt != NULL) {
        memcpy(salt, opts->fixed_salt, sizeof(salt));
    } else {
        CL_GUARD_GOTO(cl_random(salt, sizeof(salt)));
    }
    CL_GUARD_GOTO(cl_envelope_build_header(kp->name, &key_id, &wrapped, opts->context, cs, salt, &hdr));
    CL_GUARD_GOTO(cl_sha256(hdr.data, hdr.len, aad));
    CL_GUARD_GOTO(cl_envelope_derive(&data_key, salt, &derived));
    CL_GUARD_GOTO(cl_gcm_init(&gcm, derived.data, true));
    CL_GUARD_GOTO(out->write(out, hdr.data, hdr.len));

    /* One byte of look-ahead tells whether a full chunk is the last one. */
    chunk = malloc((size_t)cs + 1 + CL_GCM_TAG_LEN);
    CL_ENSURE_GOTO(chunk != NULL, CL_ERR_NOMEM, "cannot allocate a %u-byte chunk buffer", cs);
    size_t pending = 0;
    uint64_t done = 0;
    for (uint32_t index = 0;; index++) {
        size_t got = 0;
        uint8_t nonce[CL_GCM_NONCE_LEN];
        CL_GUARD_GOTO(cl_stream_read_full(in, chunk + pending, cs + 1 - pending, &got));
        size_t avail = pending + got;
        bool last = avail <= cs;
        size_t n = last ? avail : cs;
        /* 2^32 chunks would repeat a nonce: stop before that can happen. */
        CL_ENSURE_GOTO(last || index != UINT32_MAX, CL_ERR_LIMIT, "input too large: more than 2^32 chunks");
        uint8_t lookahead = last ? 0 : chunk[cs];
        cl_envelope_nonce(derived.data + CL_AES256_KEY_LEN, index, last, nonce);
        CL_GUARD_GOTO(cl_gcm_seal(&gcm, nonce, aad, sizeof(aad), chunk, n, chunk, chunk + n));
        CL_GUARD_GOTO(out->write(out, chunk, n + CL_GCM_TAG_LEN));
        done += n;
        if (opts->progress != NULL) opts->progress(opts->progress_arg, done);
        if (last) break;
        chunk[0] = lookahead;
        pending = 1;
    }
out:
    if (chunk != NULL) {
        cl_memzero(chunk, (size_t)cs + 1 + CL_GCM_TAG_LEN);
        free(chunk);
    }
    cl_gcm_free(&gcm);
    cl_buf_free(&data_key);
    cl_buf_free(&derived);
    cl_buf_free(&wrapped);
    cl_buf_free(&key_id);
    cl_buf_free(&hdr);
    return rc;
}

static CL_MUST_USE cl_status cl_envelope_read_header(cl_stream *in, cl_buf *hdr)
{
    uint8_t fixed[CL_ENVELOPE_FIXED_LEN];
    size_t got = 0;
    uint32_t header_len = 0;
    CL_GUARD(cl_stream_read_full(in, fixed, sizeof(fixed), &got));
    CL_ENSURE(got > 0, CL_ERR_FORMAT, "%s is empty: not a sealed file", in->name);
    if (got < sizeof(fixed) && got >= CL_ENVELOPE_MAGIC_LEN &&
        memcmp(fixed, cl_envelope_magic, CL_ENVELOPE_MAGIC_LEN) == 0)
        CL_FAIL(CL_ERR_FORMAT, "%s is truncated: the envelope header is cut short", in->name);
    CL_GUARD_CTX(cl_envelope_header_length(fixed, got, &header_len), "%s", in->name);
    CL_GUARD(cl_buf_append(hdr, fixed, sizeof(fixed)));
    CL_GUARD(cl_buf_resize(hdr, header_len));
    CL_GUARD(cl_stream_read_full(in, hdr->data + sizeof(fixed), header_len - sizeof(fixed), &got));
    CL_ENSURE(got == header_len - sizeof(fixed), CL_ERR_FORMAT, "%s is truncated: the envelope header is cut short",
              in->name);
    return CL_OK;
}

static CL_MUST_USE cl_status cl_envelope_check_context(const cl_kvlist *want, const cl_kvlist *have)
{
    if (want == NULL || cl_kvlist_equal(want, have)) return CL_OK;
    for (size_t i = 0; i < want->count; i++) {
        const char *v = cl_kvlist_get(have, want->items[i].key);
        CL_ENSURE(v != NULL, CL_ERR_AUTH, "wrong encryption context: the file has no key \"%s\"", want->items[i].key);
        CL_ENSURE(strcmp(v, want->items[i].value) == 0, CL_ERR_AUTH,
                  "wrong encryption context: \"%s\" is \"%s\" in the file, not \"%s\"", want->items[i].key, v,
                  want->items[i].value);
    }
    for (size_t i = 0; i < have->count; i++) {
        CL_ENSURE(cl_kvlist_get(want, have->items[i].key) != NULL, CL_ERR_AUTH,
                  "wrong encryption context: the file also requires \"%s\"", have->items[i].key);
    }
    CL_FAIL(CL_ERR_INTERNAL, "context comparison is inconsistent");
}

cl_status cl_envelope_unseal(cl_key_provider *kp, const cl_envelope_opts *opts, cl_stream *in, cl_stream *out,
                             cl_kvlist *file_context)
{
    cl_status rc = CL_OK;
    cl_envelope_opts none = {0};
    cl_envelope_header h;
    bool have_header = false;
    cl_buf hdr, data_key, derived;
    cl_gcm gcm = {0};
    uint8_t *chunk = NULL;
    size_t chunk_alloc = 0;
    uint8_t aad[CL_SHA256_LEN];
    char key_id[CL_KEY_ID_MAX + 1];

    if (opts == NULL) opts = &none;
    cl_buf_init(&hdr, CL_ENVELOPE_HEADER_MAX);
    cl_buf_init_secret(&data_key, CL_DATA_KEY_LEN);
    cl_buf_init_secret(&derived, CL_ENVELOPE_DERIVED_LEN);

    CL_GUARD_GOTO(cl_envelope_read_header(in, &hdr));
    CL_GUARD_CTX_GOTO(cl_envelope_header_parse(hdr.data, hdr.len, &h), "%s", in->name);
    have_header = true;
    memcpy(key_id, h.key_id, h.key_id_len);
    key_id[h.key_id_len] = '\0';
    CL_ENSURE_GOTO(h.provider_len == strlen(kp->name) && memcmp(h.provider, kp->name, h.provider_len) == 0, CL_ERR_KEY,
                   "wrong key: %s was sealed with the %.*s key provider (key %s), not %s", in->name,
                   (int)h.provider_len, (const char *)h.provider, key_id, kp->name);
    CL_GUARD_CTX_GOTO(cl_envelope_check_context(opts->context, &h.context), "%s", in->name);
    CL_GUARD_CTX_GOTO(kp->unwrap(kp, key_id, h.wrapped_key, h.wrapped_key_len, &h.context, &data_key), "%s", in->name);
    CL_GUARD_GOTO(cl_sha256(hdr.data, hdr.len, aad));
    CL_GUARD_GOTO(cl_envelope_derive(&data_key, h.salt, &derived));
    CL_GUARD_GOTO(cl_gcm_init(&gcm, derived.data, false));

    size_t cs = h.chunk_size;
    size_t unit = cs + CL_GCM_TAG_LEN;
    chunk_alloc = unit + 1;
    chunk = malloc(chunk_alloc);
    CL_ENSURE_GOTO(chunk != NULL, CL_ERR_NOMEM, "cannot allocate a %zu-byte chunk buffer", chunk_alloc);
    size_t pending = 0;
    uint64_t done = hdr.len;
    for (uint32_t index = 0;; index++) {
        size_t got = 0;
        uint8_t nonce[CL_GCM_NONCE_LEN];
        CL_GUARD_GOTO(cl_stream_read_full(in, chunk + pending, unit + 1 - pending, &got));
        size_t avail = pending + got;
        bool last = avail <= unit;
        size_t n = last ? avail : unit;
        CL_ENSURE_GOTO(n >= CL_GCM_TAG_LEN, CL_ERR_AUTH, "%s is truncated: chunk %u is missing or cut short", in->name,
                       index);
        CL_ENSURE_GOTO(last || index != UINT32_MAX, CL_ERR_FORMAT, "%s has more than 2^32 chunks", in->name);
        uint8_t lookahead = last ? 0 : chunk[unit];
        size_t pt_len = n - CL_GCM_TAG_LEN;
        cl_envelope_nonce(derived.data + CL_AES256_KEY_LEN, index, last, nonce);
        rc = cl_gcm_open(&gcm, nonce, aad, sizeof(aad), chunk, pt_len, chunk + pt_len, chunk);
        if (rc == CL_ERR_AUTH)
            CL_FAIL_GOTO(CL_ERR_AUTH,
                         "%s: chunk %u failed authentication: the file was tampered with, truncated or reordered",
                         in->name, index);
        CL_GUARD_GOTO(rc);
        CL_GUARD_GOTO(out->write(out, chunk, pt_len));
        done += n;
        if (opts->progress != NULL) opts->progress(opts->progress_arg, done);
        if (last) break;
        chunk[0] = lookahead;
        pending = 1;
    }
    if (file_context != NULL) {
        for (size_t i = 0; i < h.context.count; i++) {
            const cl_kv *kv = &h.context.items[i];
            CL_GUARD_GOTO(cl_kvlist_add(file_context, kv->key, strlen(kv->key), kv->value, strlen(kv->value)));
        }
    }
out:
    if (chunk != NULL) {
        cl_memzero(chunk, chunk_alloc);
        free(chunk);
    }
    if (have_header) cl_envelope_header_free(&h);
    cl_gcm_free(&gcm);
    cl_buf_free(&hdr);
    cl_buf_free(&data_key);
    cl_buf_free(&derived);
    return rc;
}

cl_status cl_envelope_seal_mem(cl_key_provider *kp, const cl_kvlist *ctx, const uint8_t *in, size_t n, cl_buf *out)
{
    cl_envelope_opts opts = {.context = ctx};
    cl_stream src = cl_stream_mem(in, n);
    cl_stream dst = cl_stream_buf(out);
    return cl_envelope_seal(kp, &opts, &src, &dst);
}

cl_status cl_envelope_unseal_mem(cl_key_provider *kp, const cl_kvlist *ctx, const uint8_t *in, size_t n, cl_buf *out)
{
    cl_envelope_opts opts = {.context = ctx};
    cl_stream src = cl_stream_mem(in, n);
    cl_stream dst = cl_stream_buf(out);
    cl_status rc = cl_envelope_unseal(kp, &opts, &src, &dst, NULL);
    if (rc != CL_OK) cl_buf_reset(out);
    return rc;
}
