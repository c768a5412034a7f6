/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: what grants allow (grants.h). Uses the store; used by key_access.c and
 * ops_grants.c. */
#include "grants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GrantOperation enum of the service model. */
static const char *const kms_grant_ops[KMS_GRANT_OPS_N] = {
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
};

const char *kms_grant_op_find(const char *op)
{
    for (size_t j = 0; op != NULL && j < KMS_GRANT_OPS_N; j++)
        if (strcmp(op, kms_grant_ops[j]) == 0) return kms_grant_ops[j];
    return NULL;
}

bool kms_grant_ops_contain(const char *list, const char *op)
{
    size_t n = strlen(op);
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, op, n) == 0) return true;
        if (end == NULL) break;
        p = end + 1;
    }
    return false;
}

/* The Constraints of a stored grant: NULL for none, or for text that does not parse (which
 * kms_constraints_hold then refuses: a grant we cannot read allows nothing). */
static json_t *kms_constraints_load(const char *text, bool *bad)
{
    *bad = false;
    if (text == NULL || text[0] == '\0') return NULL;
    json_t *j = json_loads(text, 0, NULL);
    *bad = !json_is_object(j);
    if (*bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Whether every pair of map is in ctx, value for value (case-sensitive, as AWS matches
 * grant constraints' values; keys as the context spells them). */
static bool kms_pairs_in(json_t *map, const cl_kvlist *ctx)
{
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v)
    {
        const char *got = ctx != NULL ? cl_kvlist_get(ctx, key) : NULL;
        if (got == NULL || !json_is_string(v) || strcmp(got, json_string_value(v)) != 0) return false;
    }
    return true;
}

/* GrantConstraints: EncryptionContextEquals must equal the request's context exactly;
 * every pair of EncryptionContextSubset must be in it. */
static bool kms_constraints_hold(json_t *cons, const cl_kvlist *ctx)
{
    if (cons == NULL) return true;
    json_t *eq = json_object_get(cons, "EncryptionContextEquals");
    json_t *sub = json_object_get(cons, "EncryptionContextSubset");
    size_t have = ctx != NULL ? ctx->count : 0;
    if (eq != NULL && json_object_size(eq) != have) return false;
    return (eq == NULL || kms_pairs_in(eq, ctx)) && (sub == NULL || kms_pairs_in(sub, ctx));
}

/*
 * Whether a new grant's constraints (child) allow only requests that the parent grant's
 * allow ("the grant constraints in the grants they create must be at least as strict as
 * those in the parent grant": a child may add pairs to a parent's EncryptionContextSubset,
 * or turn it into an EncryptionContextEquals with those pairs, never the reverse).
 *   - An EncryptionContextEquals child allows at most one context, its own pairs: the
 *     parent must allow that context.
 *   - Otherwise the child allows every context containing its EncryptionContextSubset
 *     pairs (all contexts, without one): the parent must have no EncryptionContextEquals,
 *     and each pair of its EncryptionContextSubset must be in the child's.
 * Only keys are named in why: the parent's values are not the caller's to learn here.
 */
static bool kms_constraints_within(json_t *child, json_t *parent, char *why, size_t why_cap)
{
    json_t *pe = parent != NULL ? json_object_get(parent, "EncryptionContextEquals") : NULL;
    json_t *ps = parent != NULL ? json_object_get(parent, "EncryptionContextSubset") : NULL;
    if (pe == NULL && ps == NULL) return true;
    json_t *ce = child != NULL ? json_object_get(child, "EncryptionContextEquals") : NULL;
    json_t *cs = child != NULL ? json_object_get(child, "EncryptionContextSubset") : NULL;
    if (ce != NULL) {
        cl_kvlist only;
        cl_kvlist_init(&only);
        bool ok = true;
        const char *key;
        json_t *v;
        json_object_foreach(ce, key, v)
        {
            if (ok && (!json_is_string(v) ||
                       cl_kvlist_add(&only, key, strlen(key), json_string_value(v), json_string_length(v)) != CL_OK))
                ok = false;
        }
        ok = ok && kms_constraints_hold(parent, &only);
        cl_kvlist_free(&only);
        cl_error_clear();
        if (!ok)
            (void)snprintf(why, why_cap,
                           "the new grant's EncryptionContextEquals is not an encryption context that grant allows");
        return ok;
    }
    if (pe != NULL) {
        (void)snprintf(why, why_cap,
                       "that grant has an EncryptionContextEquals constraint: the new grant needs one with the same "
                       "pairs");
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(ps, key, v)
    {
        json_t *mine = cs != NULL ? json_object_get(cs, key) : NULL;
        if (mine == NULL || !json_is_string(mine) || !json_is_string(v) ||
            strcmp(json_string_value(mine), json_string_value(v)) != 0) {
            (void)snprintf(why, why_cap,
                           "that grant's EncryptionContextSubset requires the key '%s', which the new grant's "
                           "constraints do not require with the same value",
                           key);
            return false;
        }
    }
    return true;
}

/* Calls visit on each grant to the caller on k, in pages, until it returns true. */
typedef bool (*kms_grant_visit)(const kms_grant_rec *g, void *arg);

static CL_MUST_USE cl_status kms_grants_of_caller(kms_call *c, const kms_key_rec *k, kms_grant_visit visit, void *arg)
{
    /* A grant to a role applies to the role's sessions ("Grants in AWS KMS": the grantee
     * principal may be an IAM role; its sessions use the grant). */
    const char *grantees[2] = {c->principal->arn, c->principal->role_arn[0] != '\0' ? c->principal->role_arn : NULL};
    enum { page = 32 };
    kms_grant_rec *gs = calloc(page, sizeof(*gs));
    CL_ENSURE(gs != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = CL_OK;
    bool done = false;
    for (size_t gi = 0; gi < 2 && grantees[gi] != NULL && !done && rc == CL_OK; gi++) {
        kms_grant_filter f = {.key_id = k->key_id, .grantee = grantees[gi]};
        char after[KMS_GRANT_ID_LEN + 1] = "";
        bool more = true;
        while (more && !done && rc == CL_OK) {
            size_t n = 0;
            rc = c->kms->store->ops->list_grants(c->kms->store, &f, after, page, gs, &n, &more);
            for (size_t i = 0; rc == CL_OK && i < n && !done; i++) done = visit(&gs[i], arg);
            if (n > 0) (void)snprintf(after, sizeof(after), "%s", gs[n - 1].grant_id);
            for (size_t i = 0; i < n; i++) kms_grant_rec_clear(&gs[i]);
        }
    }
    free(gs);
    return rc;
}

typedef struct kms_use_query {
    const char *op;
    const cl_kvlist *ctx;
    bool granted;
} kms_use_query;

static bool kms_grant_visit_use(const kms_grant_rec *g, void *arg)
{
    kms_use_query *q = arg;
    if (!kms_grant_ops_contain(g->operations, q->op)) return false;
    /* DescribeKey and RetireGrant take no encryption context and ignore constraints
     * (GrantConstraints, API Reference). Every other operation keeps them, so a grant with
     * constraints allows no operation without a context. */
    if (strcmp(q->op, "DescribeKey") == 0 || strcmp(q->op, "RetireGrant") == 0) {
        q->granted = true;
        return true;
    }
    bool bad;
    json_t *cons = kms_constraints_load(g->constraints, &bad);
    q->granted = !bad && kms_constraints_hold(cons, q->ctx);
    json_decref(cons);
    return q->granted;
}

cl_status kms_grant_allows(kms_call *c, const kms_key_rec *k, const char *op, const cl_kvlist *ctx, bool *granted)
{
    kms_use_query q = {.op = op, .ctx = ctx};
    cl_status rc = kms_grants_of_caller(c, k, kms_grant_visit_use, &q);
    *granted = rc == CL_OK && q.granted;
    return rc;
}

typedef struct kms_create_query {
    const char *const *ops;
    json_t *constraints; /* the new grant's, NULL for none */
    bool granted;
    char *why;
    size_t why_cap;
} kms_create_query;

static bool kms_grant_visit_create(const kms_grant_rec *g, void *arg)
{
    kms_create_query *q = arg;
    if (!kms_grant_ops_contain(g->operations, "CreateGrant")) return false;
    bool first = q->why[0] == '\0';
    char missing[KMS_GRANT_OPS_MAX + 1] = "";
    size_t used = 0;
    for (size_t i = 0; q->ops[i] != NULL; i++) {
        if (kms_grant_ops_contain(g->operations, q->ops[i])) continue;
        int n = snprintf(missing + used, sizeof(missing) - used, "%s%s", used ? ", " : "", q->ops[i]);
        if (n > 0 && (size_t)n < sizeof(missing) - used) used += (size_t)n;
    }
    if (missing[0] != '\0') {
        if (first)
            (void)snprintf(q->why, q->why_cap, "the grant that allows it allows only %s, not %s", g->operations,
                           missing);
        return false;
    }
    bool bad;
    json_t *parent = kms_constraints_load(g->constraints, &bad);
    char why[KMS_GRANT_WHY_MAX] = "";
    bool within = !bad && kms_constraints_within(q->constraints, parent, why, sizeof(why));
    json_decref(parent);
    if (!within) {
        if (first) (void)snprintf(q->why, q->why_cap, "%s", why[0] ? why : "the grant that allows it is unreadable");
        return false;
    }
    q->granted = true;
    return true;
}

cl_status kms_grant_allows_create(kms_call *c, const kms_key_rec *k, const char *const *ops, const char *constraints,
                                  bool *granted, char *why, size_t why_cap)
{
    *granted = false;
    why[0] = '\0';
    bool bad;
    json_t *child = kms_constraints_load(constraints, &bad);
    CL_ENSURE(!bad, CL_ERR_INTERNAL, "the new grant's constraints do not parse");
    kms_create_query q = {.ops = ops, .constraints = child, .why = why, .why_cap = why_cap};
    cl_status rc = kms_grants_of_caller(c, k, kms_grant_visit_create, &q);
    json_decref(child);
    *granted = rc == CL_OK && q.granted;
    return rc;
}

/* A grant token this server issued: the grant id, 64 lower-case hex digits. */
static bool kms_token_well_formed(const char *t, size_t len)
{
    if (len != KMS_GRANT_ID_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'))) return false;
    return true;
}

static CL_MUST_USE cl_status kms_token_lookup(kms_call *c, const char *which, const char *token, size_t len,
                                              kms_grant_rec *g)
{
    memset(g, 0, sizeof(*g));
    if (!kms_token_well_formed(token, len))
        KMS_FAIL_AS(c, "InvalidGrantTokenException", CL_ERR_USAGE,
                    "%s is not a grant token of this server (the GrantToken a CreateGrant answered: 64 hex digits); "
                    "remove it",
                    which);
    cl_status rc = c->kms->store->ops->get_grant(c->kms->store, token, g);
    /* A grant token is good in its grant's region only, as the grant is. */
    if (rc == CL_OK && strcmp(g->region, c->region) != 0) {
        kms_grant_rec_clear(g);
        rc = CL_ERR_NOT_FOUND;
    }
    if (rc == CL_ERR_NOT_FOUND)
        KMS_FAIL_AS(c, "InvalidGrantTokenException", CL_ERR_USAGE,
                    "%s names no grant of region %s: it was retired or revoked, or is another region's; remove it "
                    "(a grant works here as soon as CreateGrant answers, without its token)",
                    which, c->region);
    return rc;
}

cl_status kms_grant_token_find(kms_call *c, const char *token, kms_grant_rec *g)
{
    return kms_token_lookup(c, "The grant token", token, strlen(token), g);
}

cl_status kms_grant_tokens_check(kms_call *c)
{
    json_t *t = json_object_get(c->req, "GrantTokens");
    if (t == NULL || json_is_null(t)) return CL_OK;
    if (!json_is_array(t)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "GrantTokens must be a list");
    if (json_array_size(t) > KMS_GRANT_TOKENS_MAX)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must "
                    "have length less than or equal to %d",
                    KMS_GRANT_TOKENS_MAX);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        if (!json_is_string(v))
            KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "GrantTokens must be a list of strings");
        char which[64];
        (void)snprintf(which, sizeof(which), "Grant token %zu of GrantTokens", i + 1);
        kms_grant_rec g;
        cl_status rc = kms_token_lookup(c, which, json_string_value(v), json_string_length(v), &g);
        kms_grant_rec_clear(&g);
        CL_GUARD(rc);
    }
    return CL_OK;
}
