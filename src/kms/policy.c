/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kms_policy {
    json_t *doc; /* validated by kms_policy_parse; read-only afterwards */
};

typedef enum kms_op_kind {
    KMS_OP_STRING_EQ,
    KMS_OP_STRING_EQ_IC,
    KMS_OP_STRING_LIKE,
    KMS_OP_NUM_EQ,
    KMS_OP_NUM_LT,
    KMS_OP_NUM_LE,
    KMS_OP_NUM_GT,
    KMS_OP_NUM_GE,
    KMS_OP_BOOL,
    KMS_OP_NULL,
} kms_op_kind;

typedef struct kms_op_def {
    const char *name;
    kms_op_kind kind;
    bool negated;
} kms_op_def;

/* IAM JSON policy elements reference: Condition operators. */
static const kms_op_def kms_ops[] = {
    {"StringEquals", KMS_OP_STRING_EQ, false},
    {"StringNotEquals", KMS_OP_STRING_EQ, true},
    {"StringEqualsIgnoreCase", KMS_OP_STRING_EQ_IC, false},
    {"StringNotEqualsIgnoreCase", KMS_OP_STRING_EQ_IC, true},
    {"StringLike", KMS_OP_STRING_LIKE, false},
    {"StringNotLike", KMS_OP_STRING_LIKE, true},
    {"NumericEquals", KMS_OP_NUM_EQ, false},
    {"NumericNotEquals", KMS_OP_NUM_EQ, true},
    {"NumericLessThan", KMS_OP_NUM_LT, false},
    {"NumericLessThanEquals", KMS_OP_NUM_LE, false},
    {"NumericGreaterThan", KMS_OP_NUM_GT, false},
    {"NumericGreaterThanEquals", KMS_OP_NUM_GE, false},
    {"Bool", KMS_OP_BOOL, false},
    {"Null", KMS_OP_NULL, false},
};

typedef enum kms_set_kind { KMS_SET_NONE, KMS_SET_ANY, KMS_SET_ALL } kms_set_kind;

typedef struct kms_op {
    const kms_op_def *def;
    kms_set_kind set;
    bool if_exists;
} kms_op;

static bool kms_parse_op(const char *name, kms_op *out)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(name, "ForAnyValue:", 12) == 0) {
        out->set = KMS_SET_ANY;
        name += 12;
    } else if (strncmp(name, "ForAllValues:", 13) == 0) {
        out->set = KMS_SET_ALL;
        name += 13;
    }
    size_t len = strlen(name);
    if (len > 8 && strcmp(name + len - 8, "IfExists") == 0) {
        out->if_exists = true;
        len -= 8;
    }
    for (size_t i = 0; i < sizeof(kms_ops) / sizeof(kms_ops[0]); i++) {
        if (strlen(kms_ops[i].name) == len && strncmp(kms_ops[i].name, name, len) == 0) {
            out->def = &kms_ops[i];
            /* Null has no IfExists form (a missing key is what it tests). */
            return !(out->if_exists && kms_ops[i].kind == KMS_OP_NULL);
        }
    }
    return false;
}

/* IAM wildcard match: '*' any run, '?' one character. Iterative with one
 * backtrack point, so time is O(len(p) * len(s)) at worst, never exponential. */
static bool kms_glob(const char *p, const char *s, bool icase)
{
    const char *star = NULL, *mark = NULL;
    while (*s != '\0') {
        if (*p == '*') {
            star = p++;
            mark = s;
        } else if (*p == '?' || (icase ? tolower((unsigned char)*p) == tolower((unsigned char)*s) : *p == *s)) {
            if (*p == '\0') break;
            p++;
            s++;
        } else if (star != NULL) {
            p = star + 1;
            s = ++mark;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return *p == '\0' && *s == '\0';
}

static bool kms_number(const char *s, double *out)
{
    if (s == NULL || *s == '\0') return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == NULL || *end != '\0' || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* Policy values are strings, or booleans/numbers written without quotes. */
static const char *kms_value_text(json_t *v, char *tmp, size_t cap)
{
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_true(v)) return "true";
    if (json_is_false(v)) return "false";
    if (json_is_integer(v)) {
        (void)snprintf(tmp, cap, "%lld", (long long)json_integer_value(v));
        return tmp;
    }
    if (json_is_real(v)) {
        (void)snprintf(tmp, cap, "%.17g", json_real_value(v));
        return tmp;
    }
    return NULL;
}

/* Does one request value match one policy value under the (positive) operator? */
static bool kms_match_one(kms_op_kind kind, const char *pol, const char *req)
{
    double a, b;
    switch (kind) {
    case KMS_OP_STRING_EQ: return strcmp(pol, req) == 0;
    case KMS_OP_STRING_EQ_IC: return strcasecmp(pol, req) == 0;
    case KMS_OP_STRING_LIKE: return kms_glob(pol, req, false);
    case KMS_OP_BOOL: return strcasecmp(pol, req) == 0;
    case KMS_OP_NUM_EQ:
    case KMS_OP_NUM_LT:
    case KMS_OP_NUM_LE:
    case KMS_OP_NUM_GT:
    case KMS_OP_NUM_GE:
        if (!kms_number(req, &a) || !kms_number(pol, &b)) return false;
        return kind == KMS_OP_NUM_EQ   ? a == b
               : kind == KMS_OP_NUM_LT ? a < b
               : kind == KMS_OP_NUM_LE ? a <= b
               : kind == KMS_OP_NUM_GT ? a > b
                                       : a >= b;
    case KMS_OP_NULL: return false;
    }
    return false;
}

/* A request value against the policy's value list: OR over the list, then the
 * operator's negation (StringNotEquals: equal to none of them). */
static bool kms_match_value(const kms_op *op, json_t *pvals, const char *req)
{
    bool any = false;
    char tmp[64];
    if (json_is_array(pvals)) {
        size_t i;
        json_t *v;
        json_array_foreach(pvals, i, v)
        {
            const char *pt = kms_value_text(v, tmp, sizeof(tmp));
            if (pt != NULL && kms_match_one(op->def->kind, pt, req)) any = true;
        }
    } else {
        const char *pt = kms_value_text(pvals, tmp, sizeof(tmp));
        any = pt != NULL && kms_match_one(op->def->kind, pt, req);
    }
    return op->def->negated ? !any : any;
}

static void kms_lookup(const kms_policy_request *r, const char *key, kms_cond_values *out)
{
    memset(out, 0, sizeof(*out));
    /* Condition key names are case-insensitive; encryption-context keys'
     * suffixes are matched as written (AWS lower-cases them; we compare
     * case-insensitively, which is what that amounts to). */
    if (strncasecmp(key, "kms:EncryptionContext:", 22) == 0) {
        const char *k = key + 22;
        for (size_t i = 0; r->encryption_context && i < r->encryption_context->count; i++) {
            if (strcasecmp(r->encryption_context->items[i].key, k) == 0) {
                out->present = true;
                out->v[out->n++] = r->encryption_context->items[i].value;
                break;
            }
        }
    } else if (strcasecmp(key, "kms:EncryptionContextKeys") == 0) {
        for (size_t i = 0; r->encryption_context && i < r->encryption_context->count && i < KMS_COND_MAX_VALUES; i++)
            out->v[out->n++] = r->encryption_context->items[i].key;
        out->present = out->n > 0;
    } else if (strcasecmp(key, "kms:CallerAccount") == 0 || strcasecmp(key, "aws:PrincipalAccount") == 0) {
        out->present = r->principal_account != NULL;
        if (out->present) out->v[out->n++] = r->principal_account;
    } else if (strcasecmp(key, "aws:PrincipalArn") == 0) {
        out->present = r->principal_arn != NULL;
        if (out->present) out->v[out->n++] = r->principal_arn;
    } else if (strcasecmp(key, "kms:GrantOperations") == 0) {
        for (size_t i = 0; r->grant_operations && r->grant_operations[i] && i < KMS_COND_MAX_VALUES; i++)
            out->v[out->n++] = r->grant_operations[i];
        out->present = out->n > 0;
    } else if (strcasecmp(key, "kms:GranteePrincipal") == 0) {
        out->present = r->grantee_principal != NULL;
        if (out->present) out->v[out->n++] = r->grantee_principal;
    } else if (r->lookup != NULL) {
        (void)r->lookup(r->lookup_arg, key, out);
    }
}

static bool kms_condition_holds(const kms_op *op, json_t *pvals, const kms_cond_values *req)
{
    if (op->def->kind == KMS_OP_NULL) {
        /* "Null": "true" means the key must be absent. */
        char tmp[8];
        const char *pt = kms_value_text(json_is_array(pvals) ? json_array_get(pvals, 0) : pvals, tmp, sizeof(tmp));
        bool want_absent = pt != NULL && strcasecmp(pt, "true") == 0;
        return want_absent == !req->present;
    }
    if (!req->present || req->n == 0) {
        if (op->set == KMS_SET_ALL) return true; /* vacuously */
        if (op->set == KMS_SET_ANY) return false;
        return op->if_exists || op->def->negated;
    }
    if (op->set == KMS_SET_NONE) {
        /* Single-valued: any request value matching counts, before negation. */
        kms_op pos = *op;
        kms_op_def d = *op->def;
        d.negated = false;
        pos.def = &d;
        bool any = false;
        for (size_t i = 0; i < req->n; i++) any = any || kms_match_value(&pos, pvals, req->v[i]);
        return op->def->negated ? !any : any;
    }
    bool any = false, all = true;
    for (size_t i = 0; i < req->n; i++) {
        bool m = kms_match_value(op, pvals, req->v[i]);
        any = any || m;
        all = all && m;
    }
    return op->set == KMS_SET_ANY ? any : all;
}

/* Names the operator and key that did not hold. For an attestation key it also quotes the
 * value the caller's document presented (a measurement is not a secret, and it is the
 * caller's own): "the measurement that failed" is what an operator needs to see which image
 * asked. The policy's expected value is never quoted. */
static void kms_why_condition(char *why, size_t why_cap, const char *opname, const char *key,
                              const kms_cond_values *req)
{
    if (strncasecmp(key, "kms:RecipientAttestation:", 25) == 0)
        (void)snprintf(why, why_cap, "%s %s; the attestation document has %s", opname, key,
                       req->present && req->n > 0 ? req->v[0] : "none");
    else
        (void)snprintf(why, why_cap, "%s %s", opname, key);
}

/* On failure, why (when not NULL) names the operator and key that did not hold. */
static bool kms_conditions_hold(json_t *cond, const kms_policy_request *r, char *why, size_t why_cap)
{
    if (cond == NULL) return true;
    const char *opname;
    json_t *block;
    json_object_foreach(cond, opname, block)
    {
        kms_op op;
        if (!kms_parse_op(opname, &op)) return false; /* parse rejected it already */
        const char *key;
        json_t *pvals;
        json_object_foreach(block, key, pvals)
        {
            kms_cond_values req;
            kms_lookup(r, key, &req);
            if (!kms_condition_holds(&op, pvals, &req)) {
                if (why != NULL) kms_why_condition(why, why_cap, opname, key, &req);
                return false;
            }
        }
    }
    return true;
}

static bool kms_any_glob(json_t *v, const char *s, bool icase)
{
    if (json_is_string(v)) return kms_glob(json_string_value(v), s, icase);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (json_is_string(e) && kms_glob(json_string_value(e), s, icase)) return true;
    }
    return false;
}

static bool kms_principal_entry(const char *p, const kms_policy_request *r)
{
    if (strcmp(p, "*") == 0) return true;
    if (r->principal_arn != NULL && strcmp(p, r->principal_arn) == 0) return true;
    if (r->principal_account == NULL) return false;
    /* The account root ("arn:aws:iam::ACCOUNT:root" or the bare account id)
     * stands for every principal of that account. */
    if (strcmp(p, r->principal_account) == 0) return true;
    char root[64];
    (void)snprintf(root, sizeof(root), "arn:aws:iam::%s:root", r->principal_account);
    return strcmp(p, root) == 0;
}

static bool kms_principal_matches(json_t *pr, const kms_policy_request *r)
{
    if (json_is_string(pr)) return strcmp(json_string_value(pr), "*") == 0;
    json_t *aws = json_object_get(pr, "AWS");
    if (aws == NULL) return false;
    if (json_is_string(aws)) return kms_principal_entry(json_string_value(aws), r);
    size_t i;
    json_t *e;
    json_array_foreach(aws, i, e)
    {
        if (json_is_string(e) && kms_principal_entry(json_string_value(e), r)) return true;
    }
    return false;
}

static bool kms_statement_applies(json_t *st, const kms_policy_request *r, char *why, size_t why_cap)
{
    if (!kms_principal_matches(json_object_get(st, "Principal"), r)) return false;
    json_t *a = json_object_get(st, "Action"), *na = json_object_get(st, "NotAction");
    /* Action names are case-insensitive in IAM. */
    if (a != NULL && !kms_any_glob(a, r->action, true)) return false;
    if (na != NULL && kms_any_glob(na, r->action, true)) return false;
    json_t *res = json_object_get(st, "Resource"), *nres = json_object_get(st, "NotResource");
    if (res != NULL && !kms_any_glob(res, r->resource, false)) return false;
    if (nres != NULL && kms_any_glob(nres, r->resource, false)) return false;
    return kms_conditions_hold(json_object_get(st, "Condition"), r, why, why_cap);
}

kms_decision kms_policy_evaluate_why(const kms_policy *p, const kms_policy_request *r, char *why, size_t why_cap)
{
    json_t *sts = json_object_get(p->doc, "Statement");
    bool allow = false;
    char failed[KMS_POLICY_WHY_MAX] = "";
    size_t n = json_is_array(sts) ? json_array_size(sts) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *st = json_is_array(sts) ? json_array_get(sts, i) : sts;
        bool deny = strcmp(json_string_value(json_object_get(st, "Effect")), "Deny") == 0;
        char here[KMS_POLICY_WHY_MAX] = "";
        if (!kms_statement_applies(st, r, here, sizeof(here))) {
            /* The first Allow statement for this principal, action and resource whose condition failed. */
            if (!deny && failed[0] == '\0' && here[0] != '\0') (void)snprintf(failed, sizeof(failed), "%s", here);
            continue;
        }
        if (deny) {
            const char *sid = json_string_value(json_object_get(st, "Sid"));
            if (why != NULL) (void)snprintf(why, why_cap, "statement %s denies it", sid != NULL ? sid : "(no Sid)");
            return KMS_DECISION_EXPLICIT_DENY;
        }
        allow = true;
    }
    if (why != NULL) (void)snprintf(why, why_cap, "%s", allow ? "" : failed);
    return allow ? KMS_DECISION_ALLOW : KMS_DECISION_IMPLICIT_DENY;
}

kms_decision kms_policy_evaluate(const kms_policy *p, const kms_policy_request *r)
{
    return kms_policy_evaluate_why(p, r, NULL, 0);
}

static bool kms_string_or_list(json_t *v)
{
    if (json_is_string(v)) return true;
    if (!json_is_array(v) || json_array_size(v) == 0) return false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e)) return false;
    }
    return true;
}

static cl_status kms_check_statement(json_t *st, size_t idx)
{
    CL_ENSURE(json_is_object(st), CL_ERR_FORMAT, "statement %zu is not an object", idx);
    const char *k;
    json_t *v;
    json_object_foreach(st, k, v)
    {
        static const char *known[] = {"Sid",       "Effect",   "Principal",   "Action",
                                      "NotAction", "Resource", "NotResource", "Condition"};
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok = ok || strcmp(k, known[i]) == 0;
        CL_ENSURE(ok, CL_ERR_FORMAT, "statement %zu has an unsupported element %s", idx, k);
    }
    json_t *eff = json_object_get(st, "Effect");
    CL_ENSURE(json_is_string(eff) &&
                  (strcmp(json_string_value(eff), "Allow") == 0 || strcmp(json_string_value(eff), "Deny") == 0),
              CL_ERR_FORMAT, "statement %zu: Effect must be Allow or Deny", idx);
    json_t *pr = json_object_get(st, "Principal");
    CL_ENSURE(pr != NULL, CL_ERR_FORMAT, "statement %zu has no Principal (a key policy needs one)", idx);
    if (json_is_string(pr)) {
        CL_ENSURE(strcmp(json_string_value(pr), "*") == 0, CL_ERR_FORMAT, "statement %zu: Principal string must be *",
                  idx);
    } else {
        CL_ENSURE(json_is_object(pr) && json_object_size(pr) > 0, CL_ERR_FORMAT, "statement %zu: bad Principal", idx);
        json_object_foreach(pr, k, v)
        {
            CL_ENSURE(strcmp(k, "AWS") == 0 || strcmp(k, "Service") == 0, CL_ERR_FORMAT,
                      "statement %zu: unsupported principal type %s", idx, k);
            CL_ENSURE(kms_string_or_list(v), CL_ERR_FORMAT, "statement %zu: bad %s principal", idx, k);
        }
    }
    json_t *a = json_object_get(st, "Action"), *na = json_object_get(st, "NotAction");
    CL_ENSURE((a != NULL) != (na != NULL), CL_ERR_FORMAT, "statement %zu needs exactly one of Action, NotAction", idx);
    CL_ENSURE(kms_string_or_list(a != NULL ? a : na), CL_ERR_FORMAT, "statement %zu: bad Action", idx);
    json_t *r = json_object_get(st, "Resource"), *nr = json_object_get(st, "NotResource");
    CL_ENSURE((r != NULL) != (nr != NULL), CL_ERR_FORMAT, "statement %zu needs exactly one of Resource, NotResource",
              idx);
    CL_ENSURE(kms_string_or_list(r != NULL ? r : nr), CL_ERR_FORMAT, "statement %zu: bad Resource", idx);
    json_t *cond = json_object_get(st, "Condition");
    if (cond != NULL) {
        CL_ENSURE(json_is_object(cond), CL_ERR_FORMAT, "statement %zu: Condition must be an object", idx);
        json_t *block;
        json_object_foreach(cond, k, block)
        {
            kms_op op;
            CL_ENSURE(kms_parse_op(k, &op), CL_ERR_FORMAT, "statement %zu: unknown condition operator %s", idx, k);
            CL_ENSURE(json_is_object(block) && json_object_size(block) > 0, CL_ERR_FORMAT,
                      "statement %zu: condition %s must map keys to values", idx, k);
            const char *ck;
            json_t *cv;
            json_object_foreach(block, ck, cv)
            {
                char tmp[64];
                bool ok = kms_value_text(cv, tmp, sizeof(tmp)) != NULL;
                if (json_is_array(cv)) {
                    ok = json_array_size(cv) > 0;
                    size_t i;
                    json_t *e;
                    json_array_foreach(cv, i, e) ok = ok && kms_value_text(e, tmp, sizeof(tmp)) != NULL;
                }
                CL_ENSURE(ok, CL_ERR_FORMAT, "statement %zu: bad value for condition key %s", idx, ck);
            }
        }
    }
    return CL_OK;
}

cl_status kms_policy_parse(const char *text, size_t len, kms_policy **out)
{
    CL_ENSURE(len > 0 && len <= KMS_POLICY_MAX, CL_ERR_FORMAT, "policy must be 1 to %d bytes", KMS_POLICY_MAX);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE(doc != NULL, CL_ERR_FORMAT, "policy is not JSON: %s", jerr.text);
    cl_status rc = CL_OK;
    CL_ENSURE_GOTO(json_is_object(doc), CL_ERR_FORMAT, "policy must be a JSON object");
    json_t *ver = json_object_get(doc, "Version");
    CL_ENSURE_GOTO(ver == NULL || (json_is_string(ver) && (strcmp(json_string_value(ver), "2012-10-17") == 0 ||
                                                           strcmp(json_string_value(ver), "2008-10-17") == 0)),
                   CL_ERR_FORMAT, "policy Version must be 2012-10-17 or 2008-10-17");
    json_t *sts = json_object_get(doc, "Statement");
    CL_ENSURE_GOTO(json_is_object(sts) || (json_is_array(sts) && json_array_size(sts) > 0), CL_ERR_FORMAT,
                   "policy has no Statement");
    if (json_is_object(sts)) {
        CL_GUARD_GOTO(kms_check_statement(sts, 0));
    } else {
        for (size_t i = 0; i < json_array_size(sts); i++) CL_GUARD_GOTO(kms_check_statement(json_array_get(sts, i), i));
    }
    kms_policy *p = calloc(1, sizeof(*p));
    CL_ENSURE_GOTO(p != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    p->doc = doc;
    doc = NULL;
    *out = p;
out:
    json_decref(doc);
    return rc;
}

void kms_policy_free(kms_policy *p)
{
    if (p == NULL) return;
    json_decref(p->doc);
    free(p);
}

/*
 * Per-thread cache of parsed policies: Decrypt and friends authorize every
 * call against the key policy, and parsing it (jansson) was a tenth of the
 * server's CPU. The key is the full text, compared byte for byte, so an
 * updated policy simply misses. Per thread: no locks, and a borrowed entry
 * cannot be evicted by another thread. Freed when the thread exits.
 */
#define KMS_POLICY_CACHE_N 8

typedef struct kms_policy_cache {
    struct {
        char *text;
        size_t len;
        kms_policy *p;
    } e[KMS_POLICY_CACHE_N];
    size_t next; /* round-robin victim */
} kms_policy_cache;

static pthread_key_t kms_policy_cache_key;
static pthread_once_t kms_policy_cache_once = PTHREAD_ONCE_INIT;
static bool kms_policy_cache_ok;

static void kms_policy_cache_free(void *arg)
{
    kms_policy_cache *pc = arg;
    if (pc == NULL) return;
    for (size_t i = 0; i < KMS_POLICY_CACHE_N; i++) {
        free(pc->e[i].text);
        kms_policy_free(pc->e[i].p);
    }
    free(pc);
}

static void kms_policy_cache_init(void)
{
    kms_policy_cache_ok = pthread_key_create(&kms_policy_cache_key, kms_policy_cache_free) == 0;
}

cl_status kms_policy_parse_cached(const char *text, size_t len, const kms_policy **out)
{
    (void)pthread_once(&kms_policy_cache_once, kms_policy_cache_init);
    kms_policy_cache *pc = kms_policy_cache_ok ? pthread_getspecific(kms_policy_cache_key) : NULL;
    if (pc == NULL && kms_policy_cache_ok) {
        pc = calloc(1, sizeof(*pc));
        if (pc != NULL && pthread_setspecific(kms_policy_cache_key, pc) != 0) {
            free(pc);
            pc = NULL;
        }
    }
    if (pc != NULL) {
        for (size_t i = 0; i < KMS_POLICY_CACHE_N; i++) {
            if (pc->e[i].p != NULL && pc->e[i].len == len && memcmp(pc->e[i].text, text, len) == 0) {
                *out = pc->e[i].p;
                return CL_OK;
            }
        }
    }
    CL_ENSURE(pc != NULL, CL_ERR_NOMEM, "out of memory for the policy cache");
    kms_policy *p = NULL;
    CL_GUARD(kms_policy_parse(text, len, &p));
    char *copy = malloc(len);
    if (copy == NULL) {
        kms_policy_free(p);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for a cached policy");
    }
    memcpy(copy, text, len);
    size_t v = pc->next;
    pc->next = (pc->next + 1) % KMS_POLICY_CACHE_N;
    free(pc->e[v].text);
    kms_policy_free(pc->e[v].p);
    pc->e[v].text = copy;
    pc->e[v].len = len;
    pc->e[v].p = p;
    *out = p;
    return CL_OK;
}

cl_status kms_policy_default(const char *account, char **out)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {\n"
                     "    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n"
                     "    \"Principal\" : {\n      \"AWS\" : \"arn:aws:iam::%s:root\"\n    },\n"
                     "    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  } ]\n}",
                     account);
    CL_ENSURE(n > 0 && (size_t)n < sizeof(buf), CL_ERR_INTERNAL, "default policy too long");
    *out = strdup(buf);
    CL_ENSURE(*out != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    return CL_OK;
}
