/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's state (cas_store.c): nonces (made without storage, refused when not
 * ours, expired or from the future, used once), and session records in the SQLite store (only
 * ciphertext in the file, bound to their session's name, updates only from the current hash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"

#include "cas_store.h"
#include "test_util.h"

#define T_NOW_MS ((int64_t)1790000000000)

static kms_root_key t_root(const char *name)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/%s", t_tmpdir(), name);
    kms_root_key rk = {0};
    assert_ok(kms_root_key_load(path, &rk));
    return rk;
}

static void test_nonce(void **state)
{
    (void)state;
    kms_root_key rk = t_root("nonce.key"), other = t_root("other.key");
    uint8_t n[KMS_CAS_NONCE_LEN];
    char id[KMS_CAS_NONCE_ID_LEN + 1];
    int64_t exp = 0;
    assert_ok(kms_cas_nonce_make(&rk, T_NOW_MS, n));
    assert_ok(kms_cas_nonce_check(&rk, n, sizeof(n), T_NOW_MS + 1000, id, &exp));
    assert_int_equal(strlen(id), 32);
    assert_true(exp > (T_NOW_MS + KMS_CAS_NONCE_LIFETIME_MS) / 1000);
    /* Good to the end of its lifetime, not a millisecond after. */
    assert_ok(kms_cas_nonce_check(&rk, n, sizeof(n), T_NOW_MS + KMS_CAS_NONCE_LIFETIME_MS, id, &exp));
    assert_fails(kms_cas_nonce_check(&rk, n, sizeof(n), T_NOW_MS + KMS_CAS_NONCE_LIFETIME_MS + 1, id, &exp),
                 CL_ERR_EXPIRED, "the document's nonce expired: issued 120 s ago, valid for 120 s");
    assert_fails(kms_cas_nonce_check(&rk, n, sizeof(n), T_NOW_MS - 120000, id, &exp), CL_ERR_AUTH,
                 "dated in the future");
    assert_fails(kms_cas_nonce_check(&other, n, sizeof(n), T_NOW_MS, id, &exp), CL_ERR_AUTH,
                 "not one this service issued");
    n[20] ^= 1;
    assert_fails(kms_cas_nonce_check(&rk, n, sizeof(n), T_NOW_MS, id, &exp), CL_ERR_AUTH,
                 "not one this service issued");
    assert_fails(kms_cas_nonce_check(&rk, n, 16, T_NOW_MS, id, &exp), CL_ERR_AUTH, "(16 bytes) is not one");
    assert_fails(kms_cas_nonce_check(&rk, NULL, 0, T_NOW_MS, id, &exp), CL_ERR_AUTH, "(0 bytes) is not one");
    kms_root_key_free(&rk);
    kms_root_key_free(&other);
}

static const char t_doc[] =
    "{\"name\": \"hospital\", \"access\": {\"update\": [\"arn:aws:iam::111122223333:user/dev\"]},"
    "\"secrets\": {\"ca\": {\"kind\": \"x509-ca\", \"common_name\": \"Hospital CA\"}, \"k\": {\"kind\": \"random\"},"
    "\"v\": {\"kind\": \"value\", \"value\": \"the-session-value-text\"}}}";
#define T_DEV "arn:aws:iam::111122223333:user/dev"

static void test_records(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/cas.db", t_tmpdir());
    kms_store *st = NULL;
    kms_root_key rk = t_root("records.key");
    assert_ok(kms_store_open_sqlite(path, "us-east-1", &st));
    kms_cas_put_result res;
    assert_ok(kms_cas_record_put(st, &rk, "hospital", t_doc, sizeof(t_doc) - 1, T_DEV, 1000, &res));
    assert_true(res.created);
    assert_int_equal(res.generated, 2);
    uint8_t d[CL_SHA256_LEN];
    char hex[65];
    assert_ok(cl_sha256(t_doc, sizeof(t_doc) - 1, d));
    assert_string_equal(res.hash, cl_hex_encode(d, sizeof(d), hex, sizeof(hex)));

    kms_cas_record rec;
    kms_cas_record_init(&rec);
    assert_ok(kms_cas_record_load(st, &rk, "hospital", &rec));
    assert_string_equal(rec.hash, res.hash);
    assert_int_equal(rec.doc.len, sizeof(t_doc) - 1);
    cl_buf key, cert, k;
    cl_buf_init_secret(&key, 65536);
    cl_buf_init(&cert, 65536);
    cl_buf_init_secret(&k, 1024);
    assert_ok(kms_cas_record_ca(&rec, "ca", &key, &cert));
    assert_non_null(strstr(cl_buf_cstr(&key), "BEGIN PRIVATE KEY"));
    assert_non_null(strstr(cl_buf_cstr(&cert), "BEGIN CERTIFICATE"));
    assert_ok(kms_cas_record_secret(&rec, kms_cas_session_secret(rec.session, "k"), &k));
    assert_int_equal(k.len, 32);
    kms_cas_record_free(&rec);

    /* The database holds no secret and no document in the clear. */
    cl_buf file;
    cl_buf_init(&file, (size_t)64 << 20);
    assert_ok(cl_buf_read_file(&file, path));
    assert_null(memmem(file.data, file.len, "the-session-value-text", 22));
    assert_null(memmem(file.data, file.len, "Hospital CA", 11));
    assert_null(memmem(file.data, file.len, k.data, k.len));
    cl_buf_free(&file);

    /* Updates: the predecessor's hash, and only that. */
    assert_fails(kms_cas_record_put(st, &rk, "hospital", t_doc, sizeof(t_doc) - 1, T_DEV, 1001, &res), CL_ERR_STATE,
                 "must name it");
    char upd[sizeof(t_doc) + 100];
    (void)snprintf(upd, sizeof(upd), "{\"predecessor\": \"%s\", %s", hex, t_doc + 1);
    assert_ok(kms_cas_record_put(st, &rk, "hospital", upd, strlen(upd), T_DEV, 1002, &res));
    assert_false(res.created);
    assert_int_equal(res.generated, 0); /* the same CA and key */
    assert_string_equal(res.predecessor, hex);
    kms_cas_record_init(&rec);
    cl_buf k2;
    cl_buf_init_secret(&k2, 1024);
    assert_ok(kms_cas_record_load(st, &rk, "hospital", &rec));
    assert_ok(kms_cas_record_secret(&rec, kms_cas_session_secret(rec.session, "k"), &k2));
    assert_memory_equal(k.data, k2.data, 32);
    kms_cas_record_free(&rec);
    assert_fails(kms_cas_record_put(st, &rk, "hospital", upd, strlen(upd), T_DEV, 1003, &res), CL_ERR_STATE,
                 "but the current session's hash is");

    /* A record moved to another session's row does not open. */
    cl_buf raw;
    cl_buf_init(&raw, (size_t)4 << 20);
    int64_t version = 0;
    assert_ok(st->ops->cas_get(st, "hospital", &version, &raw));
    assert_ok(st->ops->cas_put(st, "clinic", 0, raw.data, raw.len, 1004));
    kms_cas_record_init(&rec);
    assert_fails(kms_cas_record_load(st, &rk, "clinic", &rec), CL_ERR_AUTH, "does not open under the root key");
    kms_cas_record_free(&rec);
    assert_fails(kms_cas_record_load(st, &rk, "nobody", &rec), CL_ERR_NOT_FOUND, "no session nobody");
    assert_fails(st->ops->cas_put(st, "hospital", version - 1, raw.data, raw.len, 1005), CL_ERR_STATE,
                 "changed by another request");

    /* Nonces are used once. */
    assert_ok(st->ops->cas_use_nonce(st, "0011", 2000, 1000));
    assert_fails(st->ops->cas_use_nonce(st, "0011", 2000, 1500), CL_ERR_EXISTS, "used already");
    assert_ok(st->ops->cas_use_nonce(st, "0011", 4000, 2001)); /* forgotten once expired */

    cl_buf_free(&raw);
    cl_buf_free(&key);
    cl_buf_free(&cert);
    cl_buf_free(&k);
    cl_buf_free(&k2);
    kms_store_close(st);
    kms_root_key_free(&rk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
