/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: identities in the store, access keys and STS session tokens (identity.h). */
#include "identity.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#define KMS_SEAL_VERSION 1

/* What a cached entry was read from: a store and a root key (a test may open several). */
typedef struct store_tag {
    const void *store;
    const void *root;
} store_tag;

static bool kms_tag_is(const store_tag *a, const store_tag *b) { return a->store == b->store && a->root == b->root; }

static CL_MUST_USE cl_status kms_identity_load(kms_ctx *ctx, const char *access_key_id, kms_principal *out);
#define KMS_TOKEN_MAX 4096 /* a sealed session: a few hundred bytes */

/* A key of its own for each use of the root key (HKDF-SHA256, RFC 5869, the use as info), so
 * that an access key's sealed secret cannot pass for a session token, nor either for key
 * material. */
static CL_MUST_USE cl_status kms_identity_key(kms_ctx *ctx, const char *use, uint8_t key[CL_AES256_KEY_LEN])
{
    CL_ENSURE(ctx->root.key != NULL, CL_ERR_STATE, "the root key is not loaded");
    static const uint8_t salt[] = "cloister-kms identities";
    return cl_hkdf_sha256(ctx->root.key, CL_AES256_KEY_LEN, salt, sizeof(salt) - 1, (const uint8_t *)use, strlen(use),
                          key, CL_AES256_KEY_LEN);
}

/* version || nonce || AES-256-GCM(plain) || tag, base64, appended to out. */
static CL_MUST_USE cl_status kms_seal(kms_ctx *ctx, const char *use, const char *aad, const uint8_t *plain, size_t n,
                                      cl_buf *out)
{
    cl_status rc = CL_OK;
    uint8_t *key = cl_secure_alloc(CL_AES256_KEY_LEN);
    cl_gcm g = {0};
    cl_buf sealed;
    cl_buf_init(&sealed, n + 64);
    uint8_t *p = NULL;
    CL_ENSURE_GOTO(key != NULL, CL_ERR_NOMEM, "out of locked memory");
    CL_GUARD_GOTO(kms_identity_key(ctx, use, key));
    CL_GUARD_GOTO(cl_gcm_init(&g, key, true));
    CL_GUARD_GOTO(cl_buf_append_u8(&sealed, KMS_SEAL_VERSION));
    CL_GUARD_GOTO(cl_buf_add_space(&sealed, CL_GCM_NONCE_LEN + n + CL_GCM_TAG_LEN, &p));
    CL_GUARD_GOTO(cl_random(p, CL_GCM_NONCE_LEN));
    CL_GUARD_GOTO(cl_gcm_seal(&g, p, (const uint8_t *)aad, strlen(aad), plain, n, p + CL_GCM_NONCE_LEN,
                              p + CL_GCM_NONCE_LEN + n));
    CL_GUARD_GOTO(cl_base64_encode(sealed.data, sealed.len, false, out));
out:
    cl_gcm_free(&g);
    if (key != NULL) cl_secure_free(key);
    cl_buf_free(&sealed);
    return rc;
}

/* The reverse of kms_seal into plain (a secret buffer). CL_ERR_AUTH when it does not open. */
static CL_MUST_USE cl_status kms_open(kms_ctx *ctx, const char *use, const char *aad, const char *text, size_t len,
                                      cl_buf *plain)
{
    cl_status rc = CL_OK;
    uint8_t *key = cl_secure_alloc(CL_AES256_KEY_LEN);
    cl_gcm g = {0};
    cl_buf raw;
    cl_buf_init(&raw, KMS_TOKEN_MAX);
    uint8_t version;
    const uint8_t *nonce, *ct, *tag;
    CL_ENSURE_GOTO(key != NULL, CL_ERR_NOMEM, "out of locked memory");
    CL_ENSURE_GOTO(len <= KMS_TOKEN_MAX * 4 / 3 + 4, CL_ERR_AUTH, "too long");
    rc = cl_base64_decode(text, len, false, &raw);
    if (rc != CL_OK) CL_FAIL_GOTO(CL_ERR_AUTH, "not base64");
    cl_reader r = cl_reader_make(raw.data, raw.len);
    CL_ENSURE_GOTO(raw.len >= 1 + CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN, CL_ERR_AUTH, "too short");
    CL_GUARD_GOTO(cl_reader_u8(&r, &version));
    CL_ENSURE_GOTO(version == KMS_SEAL_VERSION, CL_ERR_AUTH, "version %u", version);
    size_t n = raw.len - 1 - CL_GCM_NONCE_LEN - CL_GCM_TAG_LEN;
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_NONCE_LEN, &nonce));
    CL_GUARD_GOTO(cl_reader_bytes(&r, n, &ct));
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_TAG_LEN, &tag));
    CL_GUARD_GOTO(kms_identity_key(ctx, use, key));
    CL_GUARD_GOTO(cl_gcm_init(&g, key, false));
    CL_GUARD_GOTO(cl_buf_resize(plain, n));
    CL_GUARD_GOTO(cl_gcm_open(&g, nonce, (const uint8_t *)aad, strlen(aad), ct, n, tag, plain->data));
out:
    cl_gcm_free(&g);
    if (key != NULL) cl_secure_free(key);
    cl_buf_free(&raw);
    if (rc != CL_OK) cl_buf_reset(plain);
    return rc;
}

#define KMS_USE_SECRET "cloister iam access key secret v1"
#define KMS_USE_TOKEN "cloister sts session token v1"

cl_status kms_identity_seal_secret(kms_ctx *ctx, const char *access_key_id, const char *secret, cl_buf *out)
{
    return kms_seal(ctx, KMS_USE_SECRET, access_key_id, (const uint8_t *)secret, strlen(secret), out);
}

cl_status kms_identity_new_key(const char *prefix, char id[21], char secret[41])
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"; /* 32: no modulo bias */
    uint8_t r[16];
    cl_buf b;
    cl_buf_init_secret(&b, 64);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(cl_random(r, sizeof(r)));
    (void)snprintf(id, 21, "%.4s", prefix);
    for (size_t i = 0; i < 16; i++) id[4 + i] = alnum[r[i] & 31];
    id[20] = '\0';
    uint8_t s[30];
    CL_GUARD_GOTO(cl_random_secret(s, sizeof(s)));
    rc = cl_base64_encode(s, sizeof(s), false, &b);
    cl_memzero(s, sizeof(s));
    CL_GUARD_GOTO(rc);
    CL_ENSURE_GOTO(b.len == 40, CL_ERR_INTERNAL, "a secret of %zu characters", b.len);
    memcpy(secret, b.data, 40);
    secret[40] = '\0';
out:
    cl_buf_free(&b);
    return rc;
}

bool kms_identity_entity(const char *arn, char *out, size_t cap)
{
    /* arn:aws:iam::ACCOUNT:user/PATH/NAME or :role/PATH/NAME */
    if (strncmp(arn, "arn:aws:iam::", 13) != 0) return false;
    const char *acct = arn + 13, *colon = strchr(acct, ':');
    if (colon == NULL || colon - acct != KMS_ACCOUNT_LEN) return false;
    const char *res = colon + 1, *type;
    if (strncmp(res, "user/", 5) == 0)
        type = "user";
    else if (strncmp(res, "role/", 5) == 0)
        type = "role";
    else
        return false;
    const char *name = strrchr(res, '/') + 1;
    if (name[0] == '\0') return false;
    int n = snprintf(out, cap, "%.*s/%s/%s", KMS_ACCOUNT_LEN, acct, type, name);
    return n > 0 && (size_t)n < cap;
}

/* --- seeding ------------------------------------------------------------------------- */

typedef struct kms_seeded {
    char (*ids)[130];
    size_t n, cap;
} kms_seeded;

static CL_MUST_USE cl_status kms_seeded_row(void *arg, const char *name, const char *doc)
{
    kms_seeded *s = arg;
    json_t *j = json_loads(doc, 0, NULL);
    bool seeded = json_is_true(json_object_get(j, "seeded"));
    json_decref(j);
    if (!seeded || strlen(name) >= sizeof(s->ids[0])) return CL_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void *p = realloc(s->ids, cap * sizeof(s->ids[0]));
        CL_ENSURE(p != NULL, CL_ERR_NOMEM, "out of memory");
        s->ids = p;
        s->cap = cap;
    }
    (void)snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", name);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_seed_one(kms_ctx *ctx, const kms_principal *p, int64_t now)
{
    cl_status rc = CL_OK;
    kms_store *st = ctx->store;
    char entity[KMS_ENTITY_MAX + 1] = "", name[KMS_ENTITY_MAX + 1];
    bool is_entity = kms_identity_entity(p->arn, entity, sizeof(entity));
    cl_buf sealed, attach;
    cl_buf_init(&sealed, 1024);
    cl_buf_init(&attach, 1024);
    char *doc = NULL;
    if (is_entity && strstr(entity, "/user/") != NULL) {
        const char *uname = strrchr(entity, '/') + 1;
        (void)snprintf(name, sizeof(name), "%s/%s", p->account, uname);
        json_t *u = json_pack("{s:s, s:s, s:I}", "arn", p->arn, "path", "/", "created", (json_int_t)now);
        doc = u != NULL ? json_dumps(u, JSON_COMPACT) : NULL;
        json_decref(u);
        CL_ENSURE_GOTO(doc != NULL, CL_ERR_NOMEM, "out of memory");
        rc = st->ops->iam_put(st, KMS_IAM_USER, name, doc, KMS_IAM_CREATE, now);
        if (rc == CL_ERR_EXISTS) {
            cl_error_clear();
            rc = CL_OK;
        }
        CL_GUARD_GOTO(rc);
        free(doc);
        doc = NULL;
    }
    CL_GUARD_GOTO(kms_identity_seal_secret(ctx, p->access_key_id, p->secret, &sealed));
    json_t *k = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "arn", p->arn, "account", p->account, "entity", entity,
                          "secret", cl_buf_cstr(&sealed), "status", "Active", "seeded", 1, "created", (json_int_t)now);
    doc = k != NULL ? json_dumps(k, JSON_COMPACT) : NULL;
    json_decref(k);
    CL_ENSURE_GOTO(doc != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(st->ops->iam_put(st, KMS_IAM_AKEY, p->access_key_id, doc, KMS_IAM_UPSERT, now));
    if (is_entity) {
        /* An administrator of its account (docs/iam.md, "Principals of the configuration"). */
        CL_GUARD_GOTO(cl_buf_printf(&attach, "%s|%s", entity, KMS_ADMIN_POLICY_ARN));
        CL_GUARD_GOTO(st->ops->iam_put(st, KMS_IAM_ATTACH, cl_buf_cstr(&attach),
                                       "{\"arn\":\"" KMS_ADMIN_POLICY_ARN "\"}", KMS_IAM_UPSERT, now));
    }
out:
    free(doc);
    cl_buf_free(&sealed);
    cl_buf_free(&attach);
    return rc;
}

cl_status kms_identity_seed(kms_ctx *ctx, int64_t now)
{
    cl_status rc = CL_OK;
    kms_seeded old = {0};
    bool more = true;
    char after[130] = "";
    while (more) {
        size_t before = old.n;
        CL_GUARD_GOTO(ctx->store->ops->iam_list(ctx->store, KMS_IAM_AKEY, "", after, 256, kms_seeded_row, &old, &more));
        if (old.n > before)
            (void)snprintf(after, sizeof(after), "%s", old.ids[old.n - 1]);
        else if (more)
            break; /* a page of only unseeded keys: listing on would need their names */
    }
    for (size_t i = 0; i < old.n; i++) {
        bool kept = false;
        for (size_t j = 0; j < ctx->cfg->n_principals && !kept; j++)
            kept = strcmp(ctx->cfg->principals[j].access_key_id, old.ids[i]) == 0;
        if (kept) continue;
        CL_GUARD_GOTO(ctx->store->ops->iam_delete(ctx->store, KMS_IAM_AKEY, old.ids[i]));
        CL_LOG_WARN("access key %s was a principal of the configuration and is no longer: deleted", old.ids[i]);
    }
    for (size_t j = 0; j < ctx->cfg->n_principals; j++)
        CL_GUARD_CTX_GOTO(kms_seed_one(ctx, &ctx->cfg->principals[j], now), "seeding principal %s",
                          ctx->cfg->principals[j].arn);
out:
    free(old.ids);
    return rc;
}

/* --- finding a caller ------------------------------------------------------------------ */

static CL_MUST_USE cl_status kms_invalid_token(void)
{
    CL_FAIL(CL_ERR_DENIED, "The security token included in the request is invalid.");
}

static const char *kms_jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static CL_MUST_USE cl_status kms_find_session(kms_ctx *ctx, const char *access_key_id, const char *token, int64_t now,
                                              kms_principal *out)
{
    cl_status rc = CL_OK;
    cl_buf plain;
    cl_buf_init_secret(&plain, KMS_TOKEN_MAX);
    json_t *j = NULL;
    if (kms_open(ctx, KMS_USE_TOKEN, "sts", token, strlen(token), &plain) != CL_OK) {
        cl_error_clear();
        CL_GUARD_GOTO(kms_invalid_token());
    }
    j = json_loadb((const char *)plain.data, plain.len, 0, NULL);
    CL_ENSURE_GOTO(json_is_object(j), CL_ERR_INTERNAL, "a sealed session token does not hold a session");
    if (strcmp(kms_jstr(j, "k"), access_key_id) != 0) CL_GUARD_GOTO(kms_invalid_token());
    json_int_t exp = json_integer_value(json_object_get(j, "e"));
    /* "The security token included in the request is expired" (STS's ExpiredToken). */
    CL_ENSURE_GOTO(now < exp, CL_ERR_EXPIRED, "The security token included in the request is expired");
    const char *role_arn = kms_jstr(j, "r"), *session = kms_jstr(j, "n"), *secret = kms_jstr(j, "s");
    const char *acct = kms_jstr(j, "a");
    const char *role_name = strrchr(role_arn, '/');
    CL_ENSURE_GOTO(role_name != NULL && strlen(acct) == KMS_ACCOUNT_LEN && strlen(secret) < sizeof(out->secret),
                   CL_ERR_INTERNAL, "a sealed session token holds a malformed session");
    memset(out, 0, sizeof(*out));
    out->kind = KMS_PRINCIPAL_ASSUMED_ROLE;
    (void)snprintf(out->access_key_id, sizeof(out->access_key_id), "%s", access_key_id);
    (void)snprintf(out->secret, sizeof(out->secret), "%s", secret);
    (void)snprintf(out->account, sizeof(out->account), "%s", acct);
    (void)snprintf(out->role_arn, sizeof(out->role_arn), "%s", role_arn);
    (void)snprintf(out->session_name, sizeof(out->session_name), "%s", session);
    (void)snprintf(out->arn, sizeof(out->arn), "arn:aws:sts::%s:assumed-role/%s/%s", acct, role_name + 1, session);
    if (!kms_identity_entity(role_arn, out->entity, sizeof(out->entity))) out->entity[0] = '\0';
    out->expires = exp;
out:
    json_decref(j); /* jansson frees through cl_free_wiped (kms_wipe_library_heaps) */
    cl_buf_free(&plain);
    return rc;
}

/*
 * Per worker thread, what the store said lately, kept while the store's generation says
 * nothing in it changed (store.h: every write advances it; a store that cannot tell, 0, keeps
 * nothing): the principals of access keys (with their secrets: locked memory, wiped when
 * replaced and when the thread ends) and the identity policies of entities. A KMS request then
 * costs no store read and no unsealing to learn who is calling and what its policies say.
 */
#define KMS_ID_CACHE_N 8
/* The principals, with their secrets: locked memory (cl_secure_alloc). */
typedef struct kms_id_cache {
    struct {
        uint64_t gen; /* 0: empty */
        store_tag tag;
        kms_principal p;
    } keys[KMS_ID_CACHE_N];
    unsigned next_key;
} kms_id_cache;

/* The policies (no secret): the heap, where a leak checker sees the JSON they point to (it does
 * not look inside cl_secure_alloc's mappings). */
typedef struct kms_policy_cache {
    struct {
        uint64_t gen; /* 0: empty */
        store_tag tag;
        char entity[KMS_ENTITY_MAX + 1];
        json_t *texts; /* [[source, text], ...] */
    } policies[KMS_ID_CACHE_N];
    unsigned next_policy;
} kms_policy_cache;

static pthread_key_t kms_id_cache_key, kms_policy_cache_key;
static pthread_once_t kms_id_cache_once = PTHREAD_ONCE_INIT;
static bool kms_id_cache_ok;

static void kms_id_cache_free(void *arg) { cl_secure_free(arg); /* wipes the secrets */ }

static void kms_policy_cache_free(void *arg)
{
    kms_policy_cache *c = arg;
    if (c == NULL) return;
    for (size_t i = 0; i < KMS_ID_CACHE_N; i++) json_decref(c->policies[i].texts);
    free(c);
}

static void kms_id_cache_init(void)
{
    kms_id_cache_ok = pthread_key_create(&kms_id_cache_key, kms_id_cache_free) == 0 &&
                      pthread_key_create(&kms_policy_cache_key, kms_policy_cache_free) == 0;
}

/* This thread's cache of key (secure) or policy (heap) entries, NULL when there is none to be
 * had (then nothing is kept). */
static void *kms_thread_cache(pthread_key_t *key, size_t size, bool secure)
{
    (void)pthread_once(&kms_id_cache_once, kms_id_cache_init);
    if (!kms_id_cache_ok) return NULL;
    void *c = pthread_getspecific(*key);
    if (c != NULL) return c;
    c = secure ? cl_secure_alloc(size) : malloc(size);
    if (c == NULL) return NULL;
    memset(c, 0, size);
    if (pthread_setspecific(*key, c) != 0) {
        if (secure)
            cl_secure_free(c);
        else
            free(c);
        return NULL;
    }
    return c;
}

static kms_id_cache *kms_id_cache_get(void) { return kms_thread_cache(&kms_id_cache_key, sizeof(kms_id_cache), true); }

static kms_policy_cache *kms_policy_cache_get(void)
{
    return kms_thread_cache(&kms_policy_cache_key, sizeof(kms_policy_cache), false);
}

cl_status kms_identity_find(kms_ctx *ctx, const char *access_key_id, const char *session_token, int64_t now,
                            kms_principal *out)
{
    if (session_token != NULL) return kms_find_session(ctx, access_key_id, session_token, now, out);
    if (strncmp(access_key_id, "ASIA", 4) == 0) return kms_invalid_token(); /* temporary: needs its token */
    uint64_t gen = ctx->store->ops->generation(ctx->store);
    kms_id_cache *cache = gen != 0 ? kms_id_cache_get() : NULL;
    store_tag tag = {ctx->store, ctx->root.key};
    for (size_t i = 0; cache != NULL && i < KMS_ID_CACHE_N; i++) {
        if (cache->keys[i].gen == gen && kms_tag_is(&cache->keys[i].tag, &tag) &&
            strcmp(cache->keys[i].p.access_key_id, access_key_id) == 0) {
            *out = cache->keys[i].p;
            return CL_OK;
        }
    }
    cl_status rc = kms_identity_load(ctx, access_key_id, out);
    if (rc == CL_OK && cache != NULL) {
        unsigned v = cache->next_key++ % KMS_ID_CACHE_N;
        cache->keys[v].p = *out;
        cache->keys[v].tag = tag;
        cache->keys[v].gen = gen;
    }
    return rc;
}

/* An access key's principal from the store. */
static CL_MUST_USE cl_status kms_identity_load(kms_ctx *ctx, const char *access_key_id, kms_principal *out)
{
    cl_status rc = CL_OK;
    cl_buf doc, secret;
    cl_buf_init(&doc, 64 << 10);
    cl_buf_init_secret(&secret, 256);
    json_t *j = NULL;
    rc = ctx->store->ops->iam_get(ctx->store, KMS_IAM_AKEY, access_key_id, &doc);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        rc = kms_invalid_token();
    }
    CL_GUARD_GOTO(rc);
    j = json_loadb((const char *)doc.data, doc.len, 0, NULL);
    CL_ENSURE_GOTO(json_is_object(j), CL_ERR_FORMAT, "access key %s: its stored record is not JSON", access_key_id);
    if (strcmp(kms_jstr(j, "status"), "Active") != 0) CL_GUARD_GOTO(kms_invalid_token());
    const char *sealed = kms_jstr(j, "secret");
    rc = kms_open(ctx, KMS_USE_SECRET, access_key_id, sealed, strlen(sealed), &secret);
    if (rc != CL_OK)
        CL_FAIL_GOTO(CL_ERR_AUTH, "access key %s: its stored secret does not open under this root key", access_key_id);
    const char *arn = kms_jstr(j, "arn"), *acct = kms_jstr(j, "account");
    CL_ENSURE_GOTO(secret.len < sizeof(out->secret) && strlen(acct) == KMS_ACCOUNT_LEN &&
                       strlen(arn) < sizeof(out->arn),
                   CL_ERR_FORMAT, "access key %s: its stored record is malformed", access_key_id);
    memset(out, 0, sizeof(*out));
    (void)snprintf(out->access_key_id, sizeof(out->access_key_id), "%s", access_key_id);
    memcpy(out->secret, secret.data, secret.len);
    (void)snprintf(out->arn, sizeof(out->arn), "%s", arn);
    (void)snprintf(out->account, sizeof(out->account), "%s", acct);
    (void)snprintf(out->entity, sizeof(out->entity), "%s", kms_jstr(j, "entity"));
    out->kind = out->entity[0] == '\0' ? KMS_PRINCIPAL_ROOT : KMS_PRINCIPAL_USER;
out:
    json_decref(j);
    cl_buf_free(&doc);
    cl_buf_free(&secret);
    return rc;
}

cl_status kms_session_token_seal(kms_ctx *ctx, const kms_principal *s, cl_buf *token)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "k", s->access_key_id, "s", s->secret, "a", s->account, "r",
                          s->role_arn, "n", s->session_name, "e", (json_int_t)s->expires);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory for a session token");
    cl_status rc = kms_seal(ctx, KMS_USE_TOKEN, "sts", (const uint8_t *)text, strlen(text), token);
    cl_free_wiped(text); /* holds the session's secret */
    return rc;
}

/* --- policies ------------------------------------------------------------------------ */

/*
 * The AWS managed policies the walk-throughs name, as this server means them (docs/iam.md,
 * "AWS managed policies"): the KMS, S3, IAM and CloudWatch Logs actions AWS's version allows are
 * kept (AmazonSageMakerFullAccess: sagemaker:*, iam:PassRole to sagemaker.amazonaws.com only, the
 * SageMaker log groups' reads); none of them allows a KMS key's cryptographic use, which AWS's do
 * not either.
 */
static const struct {
    const char *arn;
    const char *text;
} kms_managed[] = {
    {KMS_ADMIN_POLICY_ARN, "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\","
                           "\"Resource\":\"*\"}]}"},
    {"arn:aws:iam::aws:policy/AmazonS3FullAccess",
     "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"s3:*\",\"s3-object-lambda:*\"],"
     "\"Resource\":\"*\"}]}"},
    {"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
     "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"s3:Get*\",\"s3:List*\","
     "\"s3:Describe*\",\"s3-object-lambda:Get*\",\"s3-object-lambda:List*\"],\"Resource\":\"*\"}]}"},
    {"arn:aws:iam::aws:policy/AmazonSageMakerFullAccess",
     "{\"Version\":\"2012-10-17\",\"Statement\":["
     "{\"Effect\":\"Allow\",\"Action\":[\"sagemaker:*\",\"kms:DescribeKey\",\"kms:ListAliases\",\"iam:GetRole\","
     "\"iam:ListRoles\",\"s3:ListAllMyBuckets\",\"s3:GetBucketLocation\"],\"Resource\":\"*\"},"
     "{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\",\"s3:PutObject\",\"s3:DeleteObject\",\"s3:"
     "AbortMultipartUpload\"],"
     "\"Resource\":[\"arn:aws:s3:::*SageMaker*\",\"arn:aws:s3:::*Sagemaker*\",\"arn:aws:s3:::*sagemaker*\"]},"
     "{\"Effect\":\"Allow\",\"Action\":[\"s3:CreateBucket\",\"s3:GetBucketLocation\",\"s3:ListBucket\"],"
     "\"Resource\":[\"arn:aws:s3:::*SageMaker*\",\"arn:aws:s3:::*Sagemaker*\",\"arn:aws:s3:::*sagemaker*\"]},"
     "{\"Effect\":\"Allow\",\"Action\":[\"logs:DescribeLogStreams\",\"logs:GetLogEvents\"],"
     "\"Resource\":\"arn:aws:logs:*:*:log-group:/aws/sagemaker/*\"},"
     "{\"Effect\":\"Allow\",\"Action\":\"iam:PassRole\",\"Resource\":\"arn:aws:iam::*:role/*\","
     "\"Condition\":{\"StringEquals\":{\"iam:PassedToService\":\"sagemaker.amazonaws.com\"}}}]}"},
};

const char *kms_managed_policy(const char *arn)
{
    for (size_t i = 0; i < sizeof(kms_managed) / sizeof(kms_managed[0]); i++)
        if (strcmp(kms_managed[i].arn, arn) == 0) return kms_managed[i].text;
    return NULL;
}

#define KMS_POLICIES_MAX 64 /* attached (AWS: at most 20) and inline of one entity */

typedef struct kms_policy_rows {
    json_t *inline_docs; /* texts */
    json_t *attached;    /* policy ARNs */
} kms_policy_rows;

static CL_MUST_USE cl_status kms_inline_row(void *arg, const char *name, const char *doc)
{
    (void)name;
    kms_policy_rows *r = arg;
    json_t *j = json_loads(doc, 0, NULL);
    json_t *text = json_object_get(j, "document");
    cl_status rc = CL_OK;
    if (json_is_string(text) && json_array_size(r->inline_docs) < KMS_POLICIES_MAX)
        rc = json_array_append(r->inline_docs, text) == 0 ? CL_OK : CL_RAISE(CL_ERR_NOMEM, "out of memory");
    json_decref(j);
    return rc;
}

static CL_MUST_USE cl_status kms_attach_row(void *arg, const char *name, const char *doc)
{
    (void)doc;
    kms_policy_rows *r = arg;
    const char *bar = strchr(name, '|');
    if (bar == NULL || json_array_size(r->attached) >= KMS_POLICIES_MAX) return CL_OK;
    return json_array_append_new(r->attached, json_string(bar + 1)) == 0 ? CL_OK
                                                                         : CL_RAISE(CL_ERR_NOMEM, "out of memory");
}

/* A customer managed policy's ARN arn:aws:iam::ACCOUNT:policy/PATH/NAME as its store name ACCOUNT/NAME. */
static bool kms_policy_store_name(const char *arn, char *out, size_t cap)
{
    if (strncmp(arn, "arn:aws:iam::", 13) != 0) return false;
    const char *acct = arn + 13, *colon = strchr(acct, ':');
    if (colon == NULL || colon - acct != KMS_ACCOUNT_LEN || strncmp(colon + 1, "policy/", 7) != 0) return false;
    int n = snprintf(out, cap, "%.*s/%s", KMS_ACCOUNT_LEN, acct, strrchr(colon + 1, '/') + 1);
    return n > 0 && (size_t)n < cap;
}

static CL_MUST_USE cl_status kms_collect_text(void *arg, const char *source, const char *text)
{
    json_t *pair = json_pack("[s, s]", source, text);
    CL_ENSURE(pair != NULL && json_array_append_new(arg, pair) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

static CL_MUST_USE cl_status kms_identity_policies_read(kms_ctx *ctx, const kms_principal *p, kms_policy_text_fn fn,
                                                        void *arg);

cl_status kms_identity_policies(kms_ctx *ctx, const kms_principal *p, kms_policy_text_fn fn, void *arg)
{
    if (p->entity[0] == '\0') return CL_OK;
    uint64_t gen = ctx->store->ops->generation(ctx->store);
    kms_policy_cache *cache = gen != 0 ? kms_policy_cache_get() : NULL;
    if (cache == NULL) return kms_identity_policies_read(ctx, p, fn, arg);
    store_tag tag = {ctx->store, ctx->root.key};
    json_t *texts = NULL;
    for (size_t i = 0; i < KMS_ID_CACHE_N && texts == NULL; i++)
        if (cache->policies[i].gen == gen && kms_tag_is(&cache->policies[i].tag, &tag) &&
            strcmp(cache->policies[i].entity, p->entity) == 0)
            texts = cache->policies[i].texts;
    if (texts == NULL) {
        texts = json_array();
        CL_ENSURE(texts != NULL, CL_ERR_NOMEM, "out of memory");
        cl_status rc = kms_identity_policies_read(ctx, p, kms_collect_text, texts);
        if (rc != CL_OK) {
            json_decref(texts);
            return rc;
        }
        unsigned v = cache->next_policy++ % KMS_ID_CACHE_N;
        json_decref(cache->policies[v].texts);
        cache->policies[v].texts = texts;
        cache->policies[v].gen = gen;
        cache->policies[v].tag = tag;
        (void)snprintf(cache->policies[v].entity, sizeof(cache->policies[v].entity), "%s", p->entity);
    }
    /* fn may not reach the store or this cache, so the entry stays put while it runs. */
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *pair = json_array_get(texts, i);
        CL_GUARD(fn(arg, json_string_value(json_array_get(pair, 0)), json_string_value(json_array_get(pair, 1))));
    }
    return CL_OK;
}

static CL_MUST_USE cl_status kms_identity_policies_read(kms_ctx *ctx, const kms_principal *p, kms_policy_text_fn fn,
                                                        void *arg)
{
    cl_status rc = CL_OK;
    kms_policy_rows rows = {.inline_docs = json_array(), .attached = json_array()};
    char prefix[KMS_ENTITY_MAX + 2];
    bool more;
    cl_buf doc;
    cl_buf_init(&doc, 1 << 20);
    json_t *j = NULL;
    CL_ENSURE_GOTO(rows.inline_docs != NULL && rows.attached != NULL, CL_ERR_NOMEM, "out of memory");
    (void)snprintf(prefix, sizeof(prefix), "%s|", p->entity);
    CL_GUARD_GOTO(ctx->store->ops->iam_list(ctx->store, KMS_IAM_ATTACH, prefix, "", KMS_POLICIES_MAX, kms_attach_row,
                                            &rows, &more));
    CL_GUARD_GOTO(ctx->store->ops->iam_list(ctx->store, KMS_IAM_INLINE, prefix, "", KMS_POLICIES_MAX, kms_inline_row,
                                            &rows, &more));
    for (size_t i = 0; i < json_array_size(rows.attached); i++) {
        const char *arn = json_string_value(json_array_get(rows.attached, i));
        const char *managed = kms_managed_policy(arn);
        if (managed != NULL) {
            CL_GUARD_GOTO(fn(arg, arn, managed));
            continue;
        }
        char name[KMS_ENTITY_MAX + 1];
        if (!kms_policy_store_name(arn, name, sizeof(name))) continue;
        cl_buf_reset(&doc);
        cl_status g = ctx->store->ops->iam_get(ctx->store, KMS_IAM_POLICY, name, &doc);
        if (g == CL_ERR_NOT_FOUND) {
            cl_error_clear();
            continue; /* deleted meanwhile */
        }
        CL_GUARD_GOTO(g);
        json_decref(j);
        j = json_loadb((const char *)doc.data, doc.len, 0, NULL);
        const char *text = json_string_value(json_object_get(j, "document"));
        if (text != NULL) CL_GUARD_GOTO(fn(arg, arn, text));
    }
    for (size_t i = 0; i < json_array_size(rows.inline_docs); i++)
        CL_GUARD_GOTO(fn(arg, "inline", json_string_value(json_array_get(rows.inline_docs, i))));
out:
    json_decref(j);
    json_decref(rows.inline_docs);
    json_decref(rows.attached);
    cl_buf_free(&doc);
    return rc;
}
