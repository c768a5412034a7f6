/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's records and nonces. See cas_store.h and docs/cas.md, "Storage". */
#include "cas_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "cas_x509.h"

#define KMS_CAS_RECORD_VERSION 1
#define KMS_CAS_RECORD_MAX ((size_t)4 << 20)
#define KMS_CAS_RECORD_AAD "cloister-kms/cas-session/v1"
#define KMS_CAS_RECORD_INFO "cloister-kms cas-session key v1"
#define KMS_CAS_NONCE_INFO "cloister-kms cas-nonce key v1"
#define KMS_CAS_NONCE_VERSION 1
#define KMS_CAS_NONCE_MAC_LEN 16
#define KMS_CAS_NONCE_SKEW_MS 60000
/* A CA is valid from a few minutes before it is made, for clocks a little behind ours. */
#define KMS_CAS_CA_BACKDATE 300

/* A key of its own for each use of the root key (HKDF-SHA256, RFC 5869 section 3.2: distinct
 * `info` for distinct keys): the records' AEAD key and the nonces' MAC key. */
static CL_MUST_USE cl_status kms_cas_subkey(const kms_root_key *rk, const char *info, uint8_t out[CL_AES256_KEY_LEN])
{
    /* No salt: RFC 5869 section 2.2 then uses HashLen zero bytes, given here (OpenSSL wants one). */
    static const uint8_t salt[CL_SHA256_LEN] = {0};
    return cl_hkdf_sha256(rk->key, CL_AES256_KEY_LEN, salt, sizeof(salt), (const uint8_t *)info, strlen(info), out,
                          CL_AES256_KEY_LEN);
}

static CL_MUST_USE cl_status kms_cas_record_aad(const char *name, cl_buf *aad)
{
    CL_GUARD(cl_buf_append(aad, KMS_CAS_RECORD_AAD, sizeof(KMS_CAS_RECORD_AAD))); /* with its NUL */
    return cl_buf_append_str(aad, name);
}

/* record = version (1) || nonce (12) || ciphertext || tag (16) */
static CL_MUST_USE cl_status kms_cas_record_seal(const kms_root_key *rk, const char *name, const cl_buf *pt,
                                                 cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad, ct;
    cl_buf_init(&aad, 512);
    cl_buf_init(&ct, KMS_CAS_RECORD_MAX);
    uint8_t key[CL_AES256_KEY_LEN], nonce[CL_GCM_NONCE_LEN], tag[CL_GCM_TAG_LEN];
    uint8_t *space = NULL;
    CL_GUARD_GOTO(kms_cas_record_aad(name, &aad));
    CL_GUARD_GOTO(kms_cas_subkey(rk, KMS_CAS_RECORD_INFO, key));
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_gcm_init(&g, key, true));
    CL_GUARD_GOTO(cl_buf_add_space(&ct, pt->len, &space));
    CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad.data, aad.len, pt->data, pt->len, space, tag));
    CL_GUARD_GOTO(cl_buf_append_u8(out, KMS_CAS_RECORD_VERSION));
    CL_GUARD_GOTO(cl_buf_append(out, nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_append(out, ct.data, ct.len));
    CL_GUARD_GOTO(cl_buf_append(out, tag, sizeof(tag)));
out:
    cl_memzero(key, sizeof(key));
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    cl_buf_free(&ct);
    return rc;
}

static CL_MUST_USE cl_status kms_cas_record_open(const kms_root_key *rk, const char *name, const cl_buf *rec,
                                                 cl_buf *pt)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 512);
    uint8_t key[CL_AES256_KEY_LEN];
    uint8_t version = 0;
    const uint8_t *nonce = NULL, *ct = NULL, *tag = NULL;
    uint8_t *space = NULL;
    cl_reader r = cl_reader_make(rec->data, rec->len);
    CL_GUARD_CTX_GOTO(cl_reader_u8(&r, &version), "session %s: its stored record", name);
    CL_ENSURE_GOTO(version == KMS_CAS_RECORD_VERSION, CL_ERR_UNSUPPORTED,
                   "session %s: stored record version %u; this build reads version %d", name, version,
                   KMS_CAS_RECORD_VERSION);
    CL_ENSURE_GOTO(cl_reader_remaining(&r) >= CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN, CL_ERR_FORMAT,
                   "session %s: its stored record is truncated", name);
    size_t ct_len = cl_reader_remaining(&r) - CL_GCM_NONCE_LEN - CL_GCM_TAG_LEN;
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_NONCE_LEN, &nonce));
    CL_GUARD_GOTO(cl_reader_bytes(&r, ct_len, &ct));
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_TAG_LEN, &tag));
    CL_GUARD_GOTO(kms_cas_record_aad(name, &aad));
    CL_GUARD_GOTO(kms_cas_subkey(rk, KMS_CAS_RECORD_INFO, key));
    CL_GUARD_GOTO(cl_gcm_init(&g, key, false));
    CL_GUARD_GOTO(cl_buf_add_space(pt, ct_len, &space));
    rc = cl_gcm_open(&g, nonce, aad.data, aad.len, ct, ct_len, tag, space);
    if (rc != CL_OK)
        CL_FAIL_GOTO(CL_ERR_AUTH,
                     "session %s: its stored record does not open under the root key (altered, or moved from "
                     "another session's row)",
                     name);
out:
    if (rc != CL_OK) cl_buf_reset(pt);
    cl_memzero(key, sizeof(key));
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

void kms_cas_record_init(kms_cas_record *r)
{
    memset(r, 0, sizeof(*r));
    cl_buf_init_secret(&r->doc, KMS_CAS_DOC_MAX);
}

void kms_cas_record_free(kms_cas_record *r)
{
    cl_buf_free(&r->doc);
    json_decref(r->generated); /* CA keys: the server's jansson frees through cl_free_wiped */
    r->generated = NULL;
    kms_cas_session_free(r->session);
    r->session = NULL;
}

/* The plaintext record: {"doc", "hash", "created", "updated", "generated"} as JSON. */
cl_status kms_cas_record_load(kms_store *st, const kms_root_key *rk, const char *name, kms_cas_record *out)
{
    cl_status rc = CL_OK;
    cl_buf rec, pt;
    cl_buf_init(&rec, KMS_CAS_RECORD_MAX);
    cl_buf_init_secret(&pt, KMS_CAS_RECORD_MAX);
    json_t *j = NULL;
    CL_GUARD_GOTO(st->ops->cas_get(st, name, &out->version, &rec));
    CL_GUARD_GOTO(kms_cas_record_open(rk, name, &rec, &pt));
    json_error_t jerr;
    j = json_loadb((const char *)pt.data, pt.len, JSON_REJECT_DUPLICATES, &jerr);
    const char *doc = json_string_value(json_object_get(j, "doc"));
    const char *hash = json_string_value(json_object_get(j, "hash"));
    json_t *gen = json_object_get(j, "generated");
    CL_ENSURE_GOTO(doc != NULL && hash != NULL && strlen(hash) == KMS_CAS_HASH_HEX && json_is_object(gen),
                   CL_ERR_FORMAT, "session %s: its stored record is not one this build wrote", name);
    CL_GUARD_GOTO(cl_buf_append(&out->doc, doc, json_string_length(json_object_get(j, "doc"))));
    (void)snprintf(out->hash, sizeof(out->hash), "%s", hash);
    out->created = json_integer_value(json_object_get(j, "created"));
    out->updated = json_integer_value(json_object_get(j, "updated"));
    out->generated = json_incref(gen);
    CL_GUARD_CTX_GOTO(kms_cas_session_parse((const char *)out->doc.data, out->doc.len, &out->session),
                      "session %s: its stored document no longer parses", name);
out:
    json_decref(j);
    cl_buf_free(&rec);
    cl_buf_free(&pt);
    return rc;
}

/* --- generated secrets ---------------------------------------------------------------- */

/* A secret's generated entry, kept from `old` when its definition is the same, else made. */
static CL_MUST_USE cl_status kms_cas_generate(const kms_cas_secret *s, json_t *old, int64_t now, json_t *gen,
                                              size_t *made)
{
    json_t *prev = old != NULL ? json_object_get(old, s->name) : NULL;
    const char *fp = json_string_value(json_object_get(prev, "fp"));
    if (fp != NULL && strcmp(fp, s->fingerprint) == 0) {
        json_object_set(gen, s->name, prev);
        return CL_OK;
    }
    cl_status rc = CL_OK;
    cl_buf a, b;
    cl_buf_init_secret(&a, (size_t)64 << 10);
    cl_buf_init(&b, (size_t)64 << 10);
    json_t *e = NULL;
    if (s->kind == KMS_CAS_X509_CA) {
        CL_GUARD_GOTO(kms_cas_ca_make(s->common_name, now - KMS_CAS_CA_BACKDATE, now + s->validity, &a, &b));
        e = json_pack("{s:s, s:s, s:s}", "fp", s->fingerprint, "key", cl_buf_cstr(&a), "cert", cl_buf_cstr(&b));
    } else {
        uint8_t *space = NULL;
        cl_buf_free(&a);
        cl_buf_init_secret(&a, KMS_CAS_RANDOM_MAX);
        CL_GUARD_GOTO(cl_buf_add_space(&a, s->size, &space));
        CL_GUARD_GOTO(cl_random_secret(space, s->size));
        cl_buf_free(&b);
        cl_buf_init_secret(&b, (size_t)2 * KMS_CAS_RANDOM_MAX);
        CL_GUARD_GOTO(cl_base64_encode(a.data, a.len, false, &b));
        e = json_pack("{s:s, s:s}", "fp", s->fingerprint, "b64", cl_buf_cstr(&b));
    }
    CL_ENSURE_GOTO(e != NULL && json_object_set_new(gen, s->name, e) == 0, CL_ERR_NOMEM, "out of memory");
    (*made)++;
out:
    cl_buf_free(&a);
    cl_buf_free(&b);
    return rc;
}

cl_status kms_cas_record_ca(const kms_cas_record *r, const char *name, cl_buf *key_pem, cl_buf *cert_pem)
{
    json_t *e = json_object_get(r->generated, name);
    json_t *key = json_object_get(e, "key"), *cert = json_object_get(e, "cert");
    CL_ENSURE(json_is_string(key) && json_is_string(cert), CL_ERR_NOT_FOUND, "session %s has no stored CA %s",
              r->session != NULL ? r->session->name : "?", name);
    if (key_pem != NULL) CL_GUARD(cl_buf_append(key_pem, json_string_value(key), json_string_length(key)));
    if (cert_pem != NULL) CL_GUARD(cl_buf_append(cert_pem, json_string_value(cert), json_string_length(cert)));
    return CL_OK;
}

cl_status kms_cas_record_secret(const kms_cas_record *r, const kms_cas_secret *s, cl_buf *out)
{
    if (s->kind == KMS_CAS_VALUE) return cl_buf_append(out, s->value, s->value_len);
    json_t *b64 = json_object_get(json_object_get(r->generated, s->name), "b64");
    CL_ENSURE(s->kind == KMS_CAS_RANDOM && json_is_string(b64), CL_ERR_NOT_FOUND, "session %s has no stored secret %s",
              r->session != NULL ? r->session->name : "?", s->name);
    return cl_base64_decode(json_string_value(b64), json_string_length(b64), false, out);
}

/* --- put ---------------------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_cas_doc_hash(const char *text, size_t len, char out[KMS_CAS_HASH_HEX + 1])
{
    uint8_t d[CL_SHA256_LEN];
    CL_GUARD(cl_sha256(text, len, d));
    (void)cl_hex_encode(d, sizeof(d), out, KMS_CAS_HASH_HEX + 1);
    return CL_OK;
}

cl_status kms_cas_record_put(kms_store *st, const kms_root_key *rk, const char *name, const char *text, size_t len,
                             const char *caller, int64_t now, kms_cas_put_result *res)
{
    cl_status rc = CL_OK;
    kms_cas_session *s = NULL;
    kms_cas_record cur;
    kms_cas_record_init(&cur);
    json_t *gen = json_object(), *j = NULL;
    char *dump = NULL;
    cl_buf pt, rec;
    cl_buf_init_secret(&pt, KMS_CAS_RECORD_MAX);
    cl_buf_init(&rec, KMS_CAS_RECORD_MAX + 64);
    memset(res, 0, sizeof(*res));
    CL_ENSURE_GOTO(gen != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_cas_session_parse(text, len, &s));
    CL_ENSURE_GOTO(strcmp(s->name, name) == 0, CL_ERR_FORMAT,
                   "session: \"name\" is %s but the request puts session %s; they must be the same", s->name, name);
    CL_GUARD_GOTO(kms_cas_doc_hash(text, len, res->hash));
    /* Nobody may lock themselves out: the author stays able to update (as KMS's PutKeyPolicy
     * refuses a policy that would lock its caller out). */
    CL_ENSURE_GOTO(kms_cas_may_update(s, caller), CL_ERR_DENIED,
                   "session %s: %s is not in the new document's access.update; a session its own author could not "
                   "update again is refused",
                   name, caller);
    rc = kms_cas_record_load(st, rk, name, &cur);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        CL_ENSURE_GOTO(!s->has_predecessor, CL_ERR_STATE,
                       "session %s does not exist, so the document (hash %s) may not name a predecessor (%s); leave "
                       "\"predecessor\" out to create it",
                       name, res->hash, s->predecessor);
        res->created = true;
    } else {
        CL_GUARD_GOTO(rc);
        CL_ENSURE_GOTO(kms_cas_may_update(cur.session, caller), CL_ERR_DENIED,
                       "%s may not update session %s (not in its access.update)", caller, name);
        CL_ENSURE_GOTO(s->has_predecessor, CL_ERR_STATE,
                       "session %s exists with hash %s; the update (hash %s) must name it: \"predecessor\": \"%s\"",
                       name, cur.hash, res->hash, cur.hash);
        CL_ENSURE_GOTO(strcmp(s->predecessor, cur.hash) == 0, CL_ERR_STATE,
                       "session %s: the update (hash %s) names predecessor %s, but the current session's hash is %s "
                       "(someone else updated it: read it again, and name its hash)",
                       name, res->hash, s->predecessor, cur.hash);
        (void)snprintf(res->predecessor, sizeof(res->predecessor), "%s", cur.hash);
    }
    for (size_t i = 0; i < s->n_secrets; i++) {
        if (s->secrets[i].kind != KMS_CAS_X509_CA && s->secrets[i].kind != KMS_CAS_RANDOM) continue;
        CL_GUARD_GOTO(kms_cas_generate(&s->secrets[i], cur.generated, now, gen, &res->generated));
    }
    j = json_pack("{s:s%, s:s, s:I, s:I, s:O}", "doc", text, len, "hash", res->hash, "created",
                  (json_int_t)(res->created ? now : cur.created), "updated", (json_int_t)now, "generated", gen);
    CL_ENSURE_GOTO(j != NULL, CL_ERR_FORMAT, "session: the document is not valid UTF-8 text");
    dump = json_dumps(j, JSON_COMPACT);
    CL_ENSURE_GOTO(dump != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cl_buf_append_str(&pt, dump));
    CL_GUARD_GOTO(kms_cas_record_seal(rk, name, &pt, &rec));
    CL_GUARD_GOTO(st->ops->cas_put(st, name, res->created ? 0 : cur.version, rec.data, rec.len, now));
out:
    if (dump != NULL) cl_free_wiped(dump);
    json_decref(j);
    json_decref(gen);
    kms_cas_session_free(s);
    kms_cas_record_free(&cur);
    cl_buf_free(&pt);
    cl_buf_free(&rec);
    return rc;
}

/* --- nonces ------------------------------------------------------------------------------- */

/* nonce = version (1) || issued, ms (8, big-endian) || random (16) || MAC (16): HMAC-SHA256 under
 * the nonce key of the first 25 bytes, cut to 16 bytes (RFC 2104 section 5 allows truncation). */
cl_status kms_cas_nonce_make(const kms_root_key *rk, int64_t now_ms, uint8_t out[KMS_CAS_NONCE_LEN])
{
    cl_status rc = CL_OK;
    uint8_t key[CL_AES256_KEY_LEN], mac[CL_SHA256_LEN];
    cl_buf n;
    cl_buf_init(&n, KMS_CAS_NONCE_LEN);
    uint8_t *rnd = NULL;
    CL_GUARD_GOTO(cl_buf_append_u8(&n, KMS_CAS_NONCE_VERSION));
    CL_GUARD_GOTO(cl_buf_append_u64be(&n, (uint64_t)now_ms));
    CL_GUARD_GOTO(cl_buf_add_space(&n, 16, &rnd));
    CL_GUARD_GOTO(cl_random(rnd, 16));
    CL_GUARD_GOTO(kms_cas_subkey(rk, KMS_CAS_NONCE_INFO, key));
    CL_GUARD_GOTO(cl_hmac_sha256(key, sizeof(key), n.data, n.len, mac));
    CL_GUARD_GOTO(cl_buf_append(&n, mac, KMS_CAS_NONCE_MAC_LEN));
    CL_ENSURE_GOTO(n.len == KMS_CAS_NONCE_LEN, CL_ERR_INTERNAL, "a nonce of %zu bytes", n.len);
    memcpy(out, n.data, KMS_CAS_NONCE_LEN);
out:
    cl_memzero(key, sizeof(key));
    cl_buf_free(&n);
    return rc;
}

cl_status kms_cas_nonce_check(const kms_root_key *rk, const uint8_t *nonce, size_t len, int64_t now_ms,
                              char id[KMS_CAS_NONCE_ID_LEN + 1], int64_t *expires_s)
{
    CL_ENSURE(nonce != NULL && len == KMS_CAS_NONCE_LEN, CL_ERR_AUTH,
              "the document's nonce (%zu bytes) is not one this service issued (GET /v1/nonce gives one of %d bytes)",
              nonce != NULL ? len : 0, KMS_CAS_NONCE_LEN);
    uint8_t key[CL_AES256_KEY_LEN], mac[CL_SHA256_LEN];
    uint8_t version = 0;
    uint64_t issued = 0;
    const uint8_t *rnd = NULL, *tag = NULL, *signed_part = NULL;
    cl_reader r = cl_reader_make(nonce, len), start = r;
    CL_GUARD(cl_reader_u8(&r, &version));
    CL_GUARD(cl_reader_u64be(&r, &issued));
    CL_GUARD(cl_reader_bytes(&r, 16, &rnd));
    size_t signed_len = 0;
    CL_GUARD(cl_reader_since(&start, &r, &signed_part, &signed_len));
    CL_GUARD(cl_reader_bytes(&r, KMS_CAS_NONCE_MAC_LEN, &tag));
    cl_status rc = kms_cas_subkey(rk, KMS_CAS_NONCE_INFO, key);
    if (rc == CL_OK) rc = cl_hmac_sha256(key, sizeof(key), signed_part, signed_len, mac);
    cl_memzero(key, sizeof(key));
    CL_GUARD(rc);
    CL_ENSURE(version == KMS_CAS_NONCE_VERSION && cl_ct_equal(mac, tag, KMS_CAS_NONCE_MAC_LEN), CL_ERR_AUTH,
              "the document's nonce is not one this service issued (get one from GET /v1/nonce)");
    int64_t at = (int64_t)issued;
    CL_ENSURE(at <= now_ms + KMS_CAS_NONCE_SKEW_MS, CL_ERR_AUTH, "the document's nonce is dated in the future");
    CL_ENSURE(now_ms - at <= KMS_CAS_NONCE_LIFETIME_MS, CL_ERR_EXPIRED,
              "the document's nonce expired: issued %lld s ago, valid for %d s (get a fresh one and attest again)",
              (long long)((now_ms - at) / 1000), KMS_CAS_NONCE_LIFETIME_MS / 1000);
    (void)cl_hex_encode(rnd, 16, id, KMS_CAS_NONCE_ID_LEN + 1);
    /* Kept a little past its end, so that a clock step cannot make it valid and forgotten at once. */
    *expires_s = (at + KMS_CAS_NONCE_LIFETIME_MS + KMS_CAS_NONCE_SKEW_MS) / 1000 + 1;
    return CL_OK;
}
