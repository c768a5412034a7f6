/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/envelope.h"

#include "test_util.h"

/* --- a key provider with fixed keys, as the vectors specify ------------------ */

typedef struct fixed_provider {
    cl_key_provider kp;
    cl_buf data_key;
    cl_buf wrapped;
    char key_id[64];
} fixed_provider;

static CL_MUST_USE cl_status fixed_generate(cl_key_provider *kp, const cl_kvlist *ctx, cl_buf *data_key,
                                            cl_buf *wrapped, cl_buf *key_id)
{
    fixed_provider *fp = (fixed_provider *)kp;
    (void)ctx;
    CL_GUARD(cl_buf_append(data_key, fp->data_key.data, fp->data_key.len));
    CL_GUARD(cl_buf_append(wrapped, fp->wrapped.data, fp->wrapped.len));
    return cl_buf_append_str(key_id, fp->key_id);
}

static CL_MUST_USE cl_status fixed_unwrap(cl_key_provider *kp, const char *key_id, const uint8_t *wrapped,
                                          size_t wrapped_len, const cl_kvlist *ctx, cl_buf *data_key)
{
    fixed_provider *fp = (fixed_provider *)kp;
    (void)ctx;
    CL_ENSURE(strcmp(key_id, fp->key_id) == 0, CL_ERR_KEY, "wrong key: sealed with %s", key_id);
    CL_ENSURE(wrapped_len == fp->wrapped.len && memcmp(wrapped, fp->wrapped.data, wrapped_len) == 0, CL_ERR_AUTH,
              "cannot unwrap");
    return cl_buf_append(data_key, fp->data_key.data, fp->data_key.len);
}

static void fixed_init(fixed_provider *fp, const char *name, const char *key_id, const char *data_key_hex,
                       const char *wrapped_hex)
{
    memset(fp, 0, sizeof(*fp));
    fp->kp.name = name;
    fp->kp.generate = fixed_generate;
    fp->kp.unwrap = fixed_unwrap;
    (void)snprintf(fp->key_id, sizeof(fp->key_id), "%s", key_id);
    t_hex(&fp->data_key, data_key_hex);
    t_hex(&fp->wrapped, wrapped_hex);
}

static void fixed_free(fixed_provider *fp)
{
    cl_buf_free(&fp->data_key);
    cl_buf_free(&fp->wrapped);
}

static json_t *load_vectors(void)
{
    json_error_t err;
    json_t *root = json_load_file(t_source_path("tests/vectors/envelope_v1.json"), 0, &err);
    if (root == NULL) fail_msg("cannot load vectors: %s (line %d)", err.text, err.line);
    return root;
}

static void context_from_json(json_t *obj, cl_kvlist *ctx)
{
    const char *k;
    json_t *v;
    cl_kvlist_init(ctx);
    json_object_foreach(obj, k, v)
        assert_ok(cl_kvlist_add(ctx, k, strlen(k), json_string_value(v), strlen(json_string_value(v))));
}

/* --- committed vectors ------------------------------------------------------- */

static void test_vectors_reproduce_byte_for_byte(void **state)
{
    (void)state;
    json_t *root = load_vectors();
    json_t *cases = json_object_get(root, "envelope_v1");
    size_t i;
    json_t *c;
    assert_true(json_array_size(cases) >= 5);
    json_array_foreach(cases, i, c)
    {
        fixed_provider fp;
        fixed_init(&fp, json_string_value(json_object_get(c, "provider")),
                   json_string_value(json_object_get(c, "key_id")), json_string_value(json_object_get(c, "data_key")),
                   json_string_value(json_object_get(c, "wrapped_key")));
        cl_kvlist ctx;
        context_from_json(json_object_get(c, "context"), &ctx);
        cl_buf salt, pt, want, got, back;
        t_hex(&salt, json_string_value(json_object_get(c, "salt")));
        t_hex(&pt, json_string_value(json_object_get(c, "plaintext")));
        t_hex(&want, json_string_value(json_object_get(c, "sealed")));
        cl_buf_init(&got, 1 << 20);
        cl_buf_init(&back, 1 << 20);
        cl_envelope_opts o = {.chunk_size = (uint32_t)json_integer_value(json_object_get(c, "chunk_size")),
                              .context = &ctx,
                              .fixed_salt = salt.data};
        cl_stream in = cl_stream_mem(pt.data, pt.len);
        cl_stream out = cl_stream_buf(&got);
        assert_ok(cl_envelope_seal(&fp.kp, &o, &in, &out));
        if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
            fail_msg("vector %s: sealed bytes differ", json_string_value(json_object_get(c, "name")));
        assert_ok(cl_envelope_unseal_mem(&fp.kp, &ctx, want.data, want.len, &back));
        assert_int_equal(back.len, pt.len);
        if (pt.len > 0) assert_memory_equal(back.data, pt.data, pt.len);
        cl_kvlist_free(&ctx);
        cl_buf_free(&salt);
        cl_buf_free(&pt);
        cl_buf_free(&want);
        cl_buf_free(&got);
        cl_buf_free(&back);
        fixed_free(&fp);
    }
    json_decref(root);
}

static void test_local_wrap_vectors(void **state)
{
    (void)state;
    json_t *root = load_vectors();
    json_t *cases = json_object_get(root, "local_wrap_v1");
    size_t i;
    json_t *c;
    assert_true(json_array_size(cases) >= 2);
    json_array_foreach(cases, i, c)
    {
        cl_buf kek, wrapped, dk, back;
        t_hex(&kek, json_string_value(json_object_get(c, "kek")));
        t_hex(&wrapped, json_string_value(json_object_get(c, "wrapped_key")));
        t_hex(&dk, json_string_value(json_object_get(c, "data_key")));
        cl_buf_init_secret(&back, 32);
        cl_kvlist ctx;
        context_from_json(json_object_get(c, "context"), &ctx);
        cl_key_provider *kp = NULL;
        assert_ok(cl_local_provider_from_key(kek.data, &kp));
        assert_string_equal(cl_local_provider_key_id(kp), json_string_value(json_object_get(c, "key_id")));
        assert_ok(
            kp->unwrap(kp, json_string_value(json_object_get(c, "key_id")), wrapped.data, wrapped.len, &ctx, &back));
        assert_memory_equal(back.data, dk.data, 32);
        cl_key_provider_destroy(kp);
        cl_kvlist_free(&ctx);
        cl_buf_free(&kek);
        cl_buf_free(&wrapped);
        cl_buf_free(&dk);
        cl_buf_free(&back);
    }
    json_decref(root);
}

/* --- round trips and tampering, with the real local provider ------------------ */

typedef struct fixture {
    cl_key_provider *kp;
    cl_kvlist ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    uint8_t kek[32];
    for (int i = 0; i < 32; i++) kek[i] = (uint8_t)(i * 7);
    if (cl_local_provider_from_key(kek, &f->kp) != CL_OK) return -1;
    cl_kvlist_init(&f->ctx);
    if (cl_kvlist_add_arg(&f->ctx, "patient=1234") != CL_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cl_key_provider_destroy(f->kp);
    cl_kvlist_free(&f->ctx);
    free(f);
    return 0;
}

#define CS 4096u

static void pattern(cl_buf *b, size_t n, uint8_t seed)
{
    cl_buf_init(b, 1 << 24);
    assert_ok(cl_buf_resize(b, n));
    for (size_t i = 0; i < n; i++) b->data[i] = (uint8_t)(i * 31 + seed);
}

static void seal_with(fixture *f, const cl_buf *pt, cl_buf *sealed)
{
    cl_envelope_opts o = {.chunk_size = CS, .context = &f->ctx};
    cl_stream in = cl_stream_mem(pt->data, pt->len);
    cl_buf_init(sealed, 1 << 24);
    cl_stream out = cl_stream_buf(sealed);
    assert_ok(cl_envelope_seal(f->kp, &o, &in, &out));
}

/* Unseals and requires failure with an empty output. */
static CL_MUST_USE cl_status unseal_must_fail(fixture *f, const uint8_t *p, size_t n)
{
    cl_buf out;
    cl_buf_init(&out, 1 << 24);
    cl_status rc = cl_envelope_unseal_mem(f->kp, &f->ctx, p, n, &out);
    assert_int_not_equal(rc, CL_OK);
    assert_int_equal(out.len, 0);
    cl_buf_free(&out);
    return rc;
}

static size_t header_len_of(const cl_buf *sealed)
{
    uint32_t hl = 0;
    assert_ok(cl_envelope_header_length(sealed->data, sealed->len, &hl));
    return hl;
}

static void test_round_trip_sizes(void **state)
{
    fixture *f = *state;
    const size_t sizes[] = {0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 17};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cl_buf pt, sealed, back;
        pattern(&pt, sizes[i], (uint8_t)i);
        seal_with(f, &pt, &sealed);
        size_t chunks = sizes[i] == 0 ? 1 : (sizes[i] + CS - 1) / CS;
        assert_int_equal(sealed.len, header_len_of(&sealed) + sizes[i] + chunks * 16);
        cl_buf_init(&back, 1 << 24);
        assert_ok(cl_envelope_unseal_mem(f->kp, &f->ctx, sealed.data, sealed.len, &back));
        assert_int_equal(back.len, pt.len);
        if (pt.len) assert_memory_equal(back.data, pt.data, pt.len);
        /* Unsealing without naming a context accepts the file's and reports it. */
        cl_buf_reset(&back);
        cl_kvlist got;
        cl_kvlist_init(&got);
        cl_stream in = cl_stream_mem(sealed.data, sealed.len);
        cl_stream out = cl_stream_buf(&back);
        assert_ok(cl_envelope_unseal(f->kp, NULL, &in, &out, &got));
        assert_true(cl_kvlist_equal(&got, &f->ctx));
        cl_kvlist_free(&got);
        cl_buf_free(&pt);
        cl_buf_free(&sealed);
        cl_buf_free(&back);
    }
}

static void test_every_header_byte_is_authenticated(void **state)
{
    fixture *f = *state;
    cl_buf pt, sealed;
    pattern(&pt, 100, 1);
    seal_with(f, &pt, &sealed);
    size_t hl = header_len_of(&sealed);
    for (size_t i = 0; i < hl; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            sealed.data[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(unseal_must_fail(f, sealed.data, sealed.len), CL_OK);
            sealed.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    cl_buf_free(&pt);
    cl_buf_free(&sealed);
}

static void test_every_body_byte_is_authenticated(void **state)
{
    fixture *f = *state;
    cl_buf pt, sealed;
    pattern(&pt, 2 * CS + 10, 2);
    seal_with(f, &pt, &sealed);
    size_t hl = header_len_of(&sealed);
    /* Every byte of the body is a ciphertext or tag byte; flip a sample across all chunks. */
    for (size_t i = hl; i < sealed.len; i += 97) {
        sealed.data[i] ^= 0x40;
        assert_fails(cl_envelope_unseal_mem(f->kp, &f->ctx, sealed.data, sealed.len, &pt), CL_ERR_AUTH,
                     "failed authentication");
        sealed.data[i] ^= 0x40;
    }
    sealed.data[sealed.len - 1] ^= 1; /* the very last tag byte */
    assert_int_equal(unseal_must_fail(f, sealed.data, sealed.len), CL_ERR_AUTH);
    cl_buf_free(&pt);
    cl_buf_free(&sealed);
}

static void test_truncation_anywhere_is_detected(void **state)
{
    fixture *f = *state;
    cl_buf pt, sealed;
    pattern(&pt, 3 * CS, 3);
    seal_with(f, &pt, &sealed);
    size_t hl = header_len_of(&sealed);
    size_t unit = CS + 16;
    /* At chunk boundaries: the dangerous case, each prefix is a valid-looking file. */
    for (size_t k = 0; k < 3; k++) {
        cl_status rc = unseal_must_fail(f, sealed.data, hl + k * unit);
        assert_int_equal(rc, CL_ERR_AUTH);
    }
    /* Inside chunks and inside the header. */
    for (size_t n = 0; n < sealed.len; n += 331) assert_int_not_equal(unseal_must_fail(f, sealed.data, n), CL_OK);
    assert_fails(cl_envelope_unseal_mem(f->kp, &f->ctx, sealed.data, hl, &pt), CL_ERR_AUTH, "chunk 0 is missing");
    assert_fails(cl_envelope_unseal_mem(f->kp, &f->ctx, sealed.data, 10, &pt), CL_ERR_FORMAT, "truncated");
    assert_fails(cl_envelope_unseal_mem(f->kp, &f->ctx, sealed.data, hl - 1, &pt), CL_ERR_FORMAT, "cut short");
    cl_buf_free(&pt);
    cl_buf_free(&sealed);
}

static void test_reorder_duplicate_append_swap(void **state)
{
    fixture *f = *state;
    cl_buf pt, a, b, tmp;
    pattern(&pt, 3 * CS, 4);
    seal_with(f, &pt, &a);
    seal_with(f, &pt, &b); /* same key, same plaintext, same context: a second file */
    size_t hl = header_len_of(&a);
    size_t unit = CS + 16;
    cl_buf_init(&tmp, 1 << 24);

    /* Fresh salt and data key each time: the two files share no ciphertext. */
    assert_memory_not_equal(a.data + hl, b.data + hl, 64);

    /* Swap chunks 0 and 1. */
    assert_ok(cl_buf_append(&tmp, a.data, a.len));
    memcpy(tmp.data + hl, a.data + hl + unit, unit);
    memcpy(tmp.data + hl + unit, a.data + hl, unit);
    assert_int_equal(unseal_must_fail(f, tmp.data, tmp.len), CL_ERR_AUTH);

    /* Chunk 1 taken from the other file. */
    memcpy(tmp.data, a.data, a.len);
    memcpy(tmp.data + hl + unit, b.data + hl + unit, unit);
    assert_int_equal(unseal_must_fail(f, tmp.data, tmp.len), CL_ERR_AUTH);

    /* Duplicate chunk 0 in place of chunk 1. */
    memcpy(tmp.data, a.data, a.len);
    memcpy(tmp.data + hl + unit, a.data + hl, unit);
    assert_int_equal(unseal_must_fail(f, tmp.data, tmp.len), CL_ERR_AUTH);

    /* Append a copy of the last chunk, and append junk. */
    memcpy(tmp.data, a.data, a.len);
    assert_ok(cl_buf_append(&tmp, a.data + a.len - unit, unit));
    assert_int_equal(unseal_must_fail(f, tmp.data, tmp.len), CL_ERR_AUTH);
    cl_buf_truncate(&tmp, a.len);
    assert_ok(cl_buf_append(&tmp, "x", 1));
    assert_int_equal(unseal_must_fail(f, tmp.data, tmp.len), CL_ERR_AUTH);

    /* The other file's header on this file's body. */
    cl_buf_reset(&tmp);
    assert_ok(cl_buf_append(&tmp, b.data, hl));
    assert_ok(cl_buf_append(&tmp, a.data + hl, a.len - hl));
    assert_int_equal(unseal_must_fail(f, tmp.data, tmp.len), CL_ERR_AUTH);

    cl_buf_free(&pt);
    cl_buf_free(&a);
    cl_buf_free(&b);
    cl_buf_free(&tmp);
}

static void test_wrong_key_and_wrong_context(void **state)
{
    fixture *f = *state;
    cl_buf pt, sealed, out;
    pattern(&pt, 50, 5);
    seal_with(f, &pt, &sealed);
    cl_buf_init(&out, 1 << 20);

    uint8_t other_kek[32] = {1};
    cl_key_provider *other = NULL;
    assert_ok(cl_local_provider_from_key(other_kek, &other));
    assert_fails(cl_envelope_unseal_mem(other, &f->ctx, sealed.data, sealed.len, &out), CL_ERR_KEY, "wrong key");
    cl_key_provider_destroy(other);

    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(cl_kvlist_add_arg(&ctx, "patient=9999"));
    assert_fails(cl_envelope_unseal_mem(f->kp, &ctx, sealed.data, sealed.len, &out), CL_ERR_AUTH,
                 "wrong encryption context: \"patient\" is \"1234\" in the file, not \"9999\"");
    cl_kvlist_free(&ctx);
    cl_kvlist_init(&ctx);
    assert_ok(cl_kvlist_add_arg(&ctx, "doctor=1"));
    assert_fails(cl_envelope_unseal_mem(f->kp, &ctx, sealed.data, sealed.len, &out), CL_ERR_AUTH,
                 "the file has no key \"doctor\"");
    cl_kvlist_free(&ctx);
    cl_kvlist_init(&ctx);
    assert_fails(cl_envelope_unseal_mem(f->kp, &ctx, sealed.data, sealed.len, &out), CL_ERR_AUTH,
                 "the file also requires \"patient\"");
    cl_kvlist_free(&ctx);

    fixed_provider fp;
    fixed_init(&fp, "test", "k", "00", "00");
    assert_fails(cl_envelope_unseal_mem(&fp.kp, &f->ctx, sealed.data, sealed.len, &out), CL_ERR_KEY,
                 "sealed with the local key provider");
    fixed_free(&fp);
    assert_int_equal(out.len, 0);
    cl_buf_free(&pt);
    cl_buf_free(&sealed);
    cl_buf_free(&out);
}

static void test_not_a_sealed_file(void **state)
{
    fixture *f = *state;
    cl_buf out;
    cl_buf_init(&out, 1 << 20);
    assert_fails(cl_envelope_unseal_mem(f->kp, NULL, (const uint8_t *)"", 0, &out), CL_ERR_FORMAT, "empty");
    const char *text = "just some text that is long enough";
    assert_fails(cl_envelope_unseal_mem(f->kp, NULL, (const uint8_t *)text, strlen(text), &out), CL_ERR_FORMAT,
                 "not a sealed file");
    uint8_t v2[14] = {0x89, 'C', 'L', 'S', 'E', 'A', 'L', '\n', 2, 1, 0, 0, 0, 100};
    assert_fails(cl_envelope_unseal_mem(f->kp, NULL, v2, sizeof(v2), &out), CL_ERR_UNSUPPORTED, "version 2");
    cl_buf_free(&out);
}

/* Builds a header by hand to reach each validation rule of the parser. */
static void header_bytes(cl_buf *h, uint32_t cs, const char *provider, const char *key_id, size_t wrapped_len,
                         const char *const *kv, size_t kv_count, size_t salt_len, size_t trailing)
{
    cl_buf_init(h, 1 << 20);
    assert_ok(cl_buf_append(h,
                            "\x89"
                            "CLSEAL\n\x01\x01\0\0\0\0",
                            14));
    assert_ok(cl_buf_append_u32be(h, cs));
    assert_ok(cl_buf_append_u8(h, (uint8_t)strlen(provider)));
    assert_ok(cl_buf_append_str(h, provider));
    assert_ok(cl_buf_append_u16be(h, (uint16_t)strlen(key_id)));
    assert_ok(cl_buf_append_str(h, key_id));
    assert_ok(cl_buf_append_u16be(h, (uint16_t)wrapped_len));
    for (size_t i = 0; i < wrapped_len; i++) assert_ok(cl_buf_append_u8(h, 0xAA));
    assert_ok(cl_buf_append_u16be(h, (uint16_t)kv_count));
    for (size_t i = 0; i < 2 * kv_count; i++) {
        assert_ok(cl_buf_append_u16be(h, (uint16_t)strlen(kv[i])));
        assert_ok(cl_buf_append_str(h, kv[i]));
    }
    for (size_t i = 0; i < salt_len + trailing; i++) assert_ok(cl_buf_append_u8(h, 0x55));
    uint32_t n = (uint32_t)h->len;
    h->data[10] = (uint8_t)(n >> 24);
    h->data[11] = (uint8_t)(n >> 16);
    h->data[12] = (uint8_t)(n >> 8);
    h->data[13] = (uint8_t)n;
}

static void test_header_parser_rules(void **state)
{
    (void)state;
    static const char *const ok_kv[] = {"a", "1", "b", "2"};
    static const char *const unsorted[] = {"b", "1", "a", "2"};
    static const char *const dup[] = {"a", "1", "a", "2"};
    static const char *const prefix_order[] = {"ab", "1", "a", "2"};
    static const char *const empty_key[] = {"", "1"};
    struct {
        uint32_t cs;
        const char *provider, *key_id;
        size_t wrapped;
        const char *const *kv;
        size_t kv_count, salt, trailing;
        cl_status want;
        const char *needle;
    } cases[] = {
        {4096, "local", "k", 60, ok_kv, 2, 32, 0, CL_OK, ""},
        {4095, "local", "k", 60, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "chunk size 4095"},
        {(64u << 20) + 1, "local", "k", 60, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "chunk size"},
        {4096, "Local", "k", 60, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "provider name"},
        {4096, "", "k", 60, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "provider name"},
        {4096, "local", "", 60, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "key id length 0"},
        {4096, "local", "k", 0, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "wrapped key length 0"},
        {4096, "local", "k", 4097, ok_kv, 2, 32, 0, CL_ERR_FORMAT, "wrapped key length 4097"},
        {4096, "local", "k", 60, unsorted, 2, 32, 0, CL_ERR_FORMAT, "increasing order"},
        {4096, "local", "k", 60, dup, 2, 32, 0, CL_ERR_FORMAT, "increasing order"},
        {4096, "local", "k", 60, prefix_order, 2, 32, 0, CL_ERR_FORMAT, "increasing order"},
        {4096, "local", "k", 60, empty_key, 1, 32, 0, CL_ERR_USAGE, "empty key"},
        {4096, "local", "k", 60, ok_kv, 2, 31, 0, CL_ERR_FORMAT, "truncated"},
        {4096, "local", "k", 60, ok_kv, 2, 32, 1, CL_ERR_FORMAT, "trailing"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cl_buf h;
        cl_envelope_header eh;
        header_bytes(&h, cases[i].cs, cases[i].provider, cases[i].key_id, cases[i].wrapped, cases[i].kv,
                     cases[i].kv_count, cases[i].salt, cases[i].trailing);
        cl_status rc = cl_envelope_header_parse(h.data, h.len, &eh);
        if (rc != cases[i].want)
            fail_msg("case %zu: want %s got %s (%s)", i, cl_status_name(cases[i].want), cl_status_name(rc),
                     cl_error_message());
        if (rc == CL_OK) {
            assert_int_equal(eh.chunk_size, cases[i].cs);
            assert_int_equal(eh.context.count, 2);
            cl_envelope_header_free(&eh);
        } else if (strstr(cl_error_message(), cases[i].needle) == NULL) {
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, cl_error_message(), cases[i].needle);
        }
        /* The parser also refuses the header given one byte short or long. */
        assert_int_not_equal(cl_envelope_header_parse(h.data, h.len - 1, &eh), CL_OK);
        cl_buf_free(&h);
    }
    uint8_t fixed[14] = {0x89, 'C', 'L', 'S', 'E', 'A', 'L', '\n', 1, 1, 0, 1, 0, 1};
    uint32_t hl;
    assert_fails(cl_envelope_header_length(fixed, sizeof(fixed), &hl), CL_ERR_FORMAT, "out of range");
    fixed[9] = 2;
    assert_fails(cl_envelope_header_length(fixed, sizeof(fixed), &hl), CL_ERR_UNSUPPORTED, "algorithm 2");
}

static void test_chunk_size_bounds_on_seal(void **state)
{
    fixture *f = *state;
    cl_buf out;
    cl_buf_init(&out, 1 << 20);
    cl_envelope_opts o = {.chunk_size = 100};
    cl_stream in = cl_stream_mem((const uint8_t *)"x", 1);
    cl_stream dst = cl_stream_buf(&out);
    assert_fails(cl_envelope_seal(f->kp, &o, &in, &dst), CL_ERR_USAGE, "chunk size 100");
    assert_int_equal(out.len, 0);
    cl_buf_free(&out);
}

static void test_output_limit_fails_cleanly(void **state)
{
    fixture *f = *state;
    cl_buf pt, out;
    pattern(&pt, 10000, 6);
    cl_buf_init(&out, 5000); /* too small for the sealed form */
    assert_fails(cl_envelope_seal_mem(f->kp, &f->ctx, pt.data, pt.len, &out), CL_ERR_LIMIT, "limit");
    cl_buf_free(&pt);
    cl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_reproduce_byte_for_byte),
        cmocka_unit_test(test_local_wrap_vectors),
        cmocka_unit_test_setup_teardown(test_round_trip_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_header_byte_is_authenticated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_body_byte_is_authenticated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_anywhere_is_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reorder_duplicate_append_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_and_wrong_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_sealed_file, setup, teardown),
        cmocka_unit_test(test_header_parser_rules),
        cmocka_unit_test_setup_teardown(test_chunk_size_bounds_on_seal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_fails_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
