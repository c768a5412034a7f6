/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "cloister/attestation.h"

#include "wildcard.h"

_Static_assert(CL_KV_MAX_COUNT <= KMS_COND_MAX_VALUES, "every encryption-context key must fit kms_cond_values");

/* --- the compiled form ------------------------------------------------------------------ */

typedef enum kms_op_kind {
    KMS_OP_STRING_EQ,
    KMS_OP_STRING_EQ_IC,
    KMS_OP_STRING_LIKE,
    KMS_OP_NUMERIC,
    KMS_OP_DATE,
    KMS_OP_BOOL,
    KMS_OP_IP,
    KMS_OP_ARN,
    KMS_OP_NULL,
} kms_op_kind;

typedef enum kms_cmp { KMS_CMP_EQ, KMS_CMP_LT, KMS_CMP_LE, KMS_CMP_GT, KMS_CMP_GE } kms_cmp;

typedef struct kms_op_def {
    const char *name;
    kms_op_kind kind;
    kms_cmp cmp;
    bool negated;
} kms_op_def;

/* IAM User Guide, "IAM JSON policy elements: Condition operators". ArnEquals and ArnLike are
 * the same test there ("each of the six colon-delimited components of the ARN is checked
 * separately and each can include ... wildcards"). */
static const kms_op_def kms_ops[] = {
    {"StringEquals", KMS_OP_STRING_EQ, KMS_CMP_EQ, false},
    {"StringNotEquals", KMS_OP_STRING_EQ, KMS_CMP_EQ, true},
    {"StringEqualsIgnoreCase", KMS_OP_STRING_EQ_IC, KMS_CMP_EQ, false},
    {"StringNotEqualsIgnoreCase", KMS_OP_STRING_EQ_IC, KMS_CMP_EQ, true},
    {"StringLike", KMS_OP_STRING_LIKE, KMS_CMP_EQ, false},
    {"StringNotLike", KMS_OP_STRING_LIKE, KMS_CMP_EQ, true},
    {"NumericEquals", KMS_OP_NUMERIC, KMS_CMP_EQ, false},
    {"NumericNotEquals", KMS_OP_NUMERIC, KMS_CMP_EQ, true},
    {"NumericLessThan", KMS_OP_NUMERIC, KMS_CMP_LT, false},
    {"NumericLessThanEquals", KMS_OP_NUMERIC, KMS_CMP_LE, false},
    {"NumericGreaterThan", KMS_OP_NUMERIC, KMS_CMP_GT, false},
    {"NumericGreaterThanEquals", KMS_OP_NUMERIC, KMS_CMP_GE, false},
    {"DateEquals", KMS_OP_DATE, KMS_CMP_EQ, false},
    {"DateNotEquals", KMS_OP_DATE, KMS_CMP_EQ, true},
    {"DateLessThan", KMS_OP_DATE, KMS_CMP_LT, false},
    {"DateLessThanEquals", KMS_OP_DATE, KMS_CMP_LE, false},
    {"DateGreaterThan", KMS_OP_DATE, KMS_CMP_GT, false},
    {"DateGreaterThanEquals", KMS_OP_DATE, KMS_CMP_GE, false},
    {"Bool", KMS_OP_BOOL, KMS_CMP_EQ, false},
    {"IpAddress", KMS_OP_IP, KMS_CMP_EQ, false},
    {"NotIpAddress", KMS_OP_IP, KMS_CMP_EQ, true},
    {"ArnEquals", KMS_OP_ARN, KMS_CMP_EQ, false},
    {"ArnLike", KMS_OP_ARN, KMS_CMP_EQ, false},
    {"ArnNotEquals", KMS_OP_ARN, KMS_CMP_EQ, true},
    {"ArnNotLike", KMS_OP_ARN, KMS_CMP_EQ, true},
    {"Null", KMS_OP_NULL, KMS_CMP_EQ, false},
};

typedef enum kms_set_kind { KMS_SET_NONE, KMS_SET_ANY, KMS_SET_ALL } kms_set_kind;

typedef enum kms_key_kind {
    KMS_KEY_CONTEXT,      /* kms:EncryptionContext:<key> */
    KMS_KEY_CONTEXT_KEYS, /* kms:EncryptionContextKeys */
    KMS_KEY_CALLER_ACCOUNT,
    KMS_KEY_PRINCIPAL_ACCOUNT,
    KMS_KEY_PRINCIPAL_ARN,
    KMS_KEY_USERNAME,
    KMS_KEY_GRANT_OPERATIONS,
    KMS_KEY_GRANTEE_PRINCIPAL,
    KMS_KEY_GRANT_FOR_AWS_RESOURCE,
    KMS_KEY_VIA_SERVICE,
    KMS_KEY_VIA_AWS_SERVICE,
    KMS_KEY_PRINCIPAL_IS_SERVICE,
    KMS_KEY_SECURE_TRANSPORT,
    KMS_KEY_SOURCE_IP,
    KMS_KEY_CURRENT_TIME,
    KMS_KEY_EPOCH_TIME,
    KMS_KEY_REQUESTED_REGION,
    KMS_KEY_ATTESTATION,       /* kms:RecipientAttestation:<PCRn|ImageSha384>, from the lookup callback */
    KMS_KEY_EXTERNAL_ID,       /* sts:ExternalId (AssumeRole) */
    KMS_KEY_ROLE_SESSION_NAME, /* sts:RoleSessionName (AssumeRole) */
    KMS_KEY_PASSED_TO_SERVICE, /* iam:PassedToService (iam:PassRole) */
} kms_key_kind;

/*
 * Every condition key this evaluator answers. Condition key names are case-insensitive (IAM
 * User Guide, "IAM JSON policy elements: Condition": "Condition key names are not case
 * sensitive"). `env`: the value comes from kms_policy_env.
 */
static const struct {
    const char *name;
    kms_key_kind kind;
    bool prefix;
    bool env;
} kms_keys[] = {
    {"kms:EncryptionContext:", KMS_KEY_CONTEXT, true, false},
    {"kms:EncryptionContextKeys", KMS_KEY_CONTEXT_KEYS, false, false},
    {"kms:CallerAccount", KMS_KEY_CALLER_ACCOUNT, false, false},
    {"kms:GrantOperations", KMS_KEY_GRANT_OPERATIONS, false, false},
    {"kms:GranteePrincipal", KMS_KEY_GRANTEE_PRINCIPAL, false, false},
    {"kms:GrantIsForAWSResource", KMS_KEY_GRANT_FOR_AWS_RESOURCE, false, false},
    {"kms:ViaService", KMS_KEY_VIA_SERVICE, false, false},
    {"kms:RecipientAttestation:", KMS_KEY_ATTESTATION, true, false},
    {"sts:ExternalId", KMS_KEY_EXTERNAL_ID, false, false},
    {"sts:RoleSessionName", KMS_KEY_ROLE_SESSION_NAME, false, false},
    {"iam:PassedToService", KMS_KEY_PASSED_TO_SERVICE, false, false},
    {"aws:PrincipalAccount", KMS_KEY_PRINCIPAL_ACCOUNT, false, false},
    {"aws:PrincipalArn", KMS_KEY_PRINCIPAL_ARN, false, false},
    {"aws:username", KMS_KEY_USERNAME, false, false},
    {"aws:PrincipalIsAWSService", KMS_KEY_PRINCIPAL_IS_SERVICE, false, false},
    {"aws:ViaAWSService", KMS_KEY_VIA_AWS_SERVICE, false, false},
    {"aws:SecureTransport", KMS_KEY_SECURE_TRANSPORT, false, true},
    {"aws:SourceIp", KMS_KEY_SOURCE_IP, false, true},
    {"aws:CurrentTime", KMS_KEY_CURRENT_TIME, false, true},
    {"aws:EpochTime", KMS_KEY_EPOCH_TIME, false, true},
    {"aws:RequestedRegion", KMS_KEY_REQUESTED_REGION, false, true},
};

#define KMS_ARN_PARTS 6 /* arn:partition:service:region:account:resource */

/* One value of a condition, parsed for its operator. */
typedef struct kms_cval {
    const char *text; /* as written (a JSON number or boolean as its text) */
    size_t len;
    union {
        double num; /* KMS_OP_NUMERIC */
        int64_t ms; /* KMS_OP_DATE: milliseconds since the epoch */
        bool truth; /* KMS_OP_BOOL, KMS_OP_NULL */
        struct {
            int family;             /* AF_INET or AF_INET6 */
            unsigned prefix;        /* bits */
            uint8_t addr[16];       /* masked to prefix */
        } ip;                       /* KMS_OP_IP */
        const kms_wild *wild;       /* KMS_OP_STRING_LIKE */
        const kms_wild *const *arn; /* KMS_OP_ARN: one pattern per part */
    } u;
} kms_cval;

typedef struct kms_cond {
    const kms_op_def *def;
    kms_set_kind set;
    bool if_exists;
    const char *opname; /* as written, for refusals */
    const char *key;    /* as written: also what the lookup callback is asked */
    kms_key_kind kind;
    const char *suffix; /* the context key of kms:EncryptionContext:<key> */
    size_t nvals;
    kms_cval *vals;
    bool unjudged; /* lenient parse only: a key or value this build cannot judge */
} kms_cond;

typedef struct kms_stmt {
    bool deny;
    const char *sid;
    bool principal_any;
    size_t naws;
    const char **aws; /* Principal.AWS entries */
    size_t nsvc;
    const char **svc; /* Principal.Service entries: they match only an in-process service's request */
    bool not_action;
    size_t nact;
    const kms_wild **act; /* lower-cased: action names are case-insensitive */
    bool not_resource;
    size_t nres;
    const kms_wild **res;
    size_t ncond;
    kms_cond *cond;
} kms_stmt;

typedef struct kms_arena_block {
    struct kms_arena_block *next;
    size_t used;
    size_t cap;
    max_align_t data[];
} kms_arena_block;

struct kms_policy {
    kms_arena_block *blocks; /* everything below lives here, freed at once */
    size_t bytes;            /* the blocks' size: what the per-thread cache counts */
    size_t nst;
    kms_stmt *st;
    bool needs_env; /* a condition uses a key of kms_policy_env */
    bool lenient;   /* compiled by kms_policy_parse_cached (a stored policy) */
    kms_policy_kind kind;
};

#define KMS_ARENA_BLOCK 16384

/* Zeroed memory owned by the policy. */
static void *kms_alloc(kms_policy *p, size_t n)
{
    n = (n + 7) / 8 * 8; /* nothing here needs more than 8-byte alignment */
    kms_arena_block *b = p->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > KMS_ARENA_BLOCK ? n : KMS_ARENA_BLOCK;
        b = calloc(1, sizeof(*b) + cap);
        if (b == NULL) return NULL;
        b->cap = cap;
        p->bytes += sizeof(*b) + cap;
        b->next = p->blocks;
        p->blocks = b;
    }
    void *r = (unsigned char *)b->data + b->used;
    b->used += n;
    return r;
}

static char *kms_strdup_n(kms_policy *p, const char *s, size_t n, bool lower)
{
    char *d = kms_alloc(p, n + 1);
    if (d == NULL) return NULL;
    for (size_t i = 0; i < n; i++) d[i] = lower && s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    d[n] = '\0';
    return d;
}

static const kms_wild *kms_wild_new(kms_policy *p, const char *s, size_t n)
{
    kms_wild *w = kms_alloc(p, kms_wild_size(s, n));
    if (w != NULL) kms_wild_compile(s, n, w);
    return w;
}

/* --- value syntax -------------------------------------------------------------------------- */

/* Longest number or date text considered: no real one is longer, and strtod on an arbitrarily
 * long digit string is not a cost a request should be able to choose. */
#define KMS_SCALAR_MAX 64

static bool kms_number(const char *s, size_t n, double *out)
{
    if (n == 0 || n > KMS_SCALAR_MAX || memchr(s, '\0', n) != NULL) return false;
    char buf[KMS_SCALAR_MAX + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno != 0 || end != buf + n || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool kms_digits(const char *s, size_t n, size_t *i, size_t count, int *out)
{
    int v = 0;
    for (size_t k = 0; k < count; k++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9') return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

static bool kms_expect(const char *s, size_t n, size_t *i, char c)
{
    if (*i >= n || s[*i] != c) return false;
    (*i)++;
    return true;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
 * Date Algorithms", days_from_civil). */
static int64_t kms_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/*
 * A date as IAM's Date operators take it (IAM User Guide, "Date condition operators": "one of
 * the W3C implementations of the ISO 8601 date formats ... or epoch (UNIX) time"): the W3C
 * profile (YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.s+]] with Z or +hh:mm/-hh:mm; no zone
 * is UTC), or epoch seconds as digits with an optional fraction. A bare number is epoch time,
 * so a year alone ("2024") must be written 2024-01.
 */
static bool kms_date(const char *s, size_t n, int64_t *ms)
{
    if (n == 0 || n > KMS_SCALAR_MAX) return false;
    size_t i = 0;
    if (memchr(s, '-', n) == NULL && memchr(s, ':', n) == NULL) {
        double v;
        for (size_t k = 0; k < n; k++)
            if ((s[k] < '0' || s[k] > '9') && s[k] != '.') return false;
        if (!kms_number(s, n, &v) || v > 253402300799.0) return false; /* up to 9999-12-31 */
        *ms = (int64_t)(v * 1000.0);
        return true;
    }
    int y, mo, d = 1, h = 0, mi = 0, sec = 0, frac_ms = 0;
    if (!kms_digits(s, n, &i, 4, &y) || !kms_expect(s, n, &i, '-') || !kms_digits(s, n, &i, 2, &mo)) return false;
    if (i < n && !(kms_expect(s, n, &i, '-') && kms_digits(s, n, &i, 2, &d))) return false;
    int64_t offset_s = 0;
    if (i < n) {
        if (s[i] != 'T' && s[i] != 't') return false;
        i++;
        if (!kms_digits(s, n, &i, 2, &h) || !kms_expect(s, n, &i, ':') || !kms_digits(s, n, &i, 2, &mi)) return false;
        if (i < n && s[i] == ':') {
            i++;
            if (!kms_digits(s, n, &i, 2, &sec)) return false;
            if (i < n && s[i] == '.') {
                i++;
                size_t digits = 0;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
                    if (digits < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
                if (digits == 0) return false;
                for (; digits < 3; digits++) frac_ms *= 10;
            }
        }
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < n && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i] == '-' ? -1 : 1, oh, om;
            i++;
            if (!kms_digits(s, n, &i, 2, &oh) || !kms_expect(s, n, &i, ':') || !kms_digits(s, n, &i, 2, &om) ||
                oh > 23 || om > 59)
                return false;
            offset_s = (int64_t)sign * (oh * 3600 + om * 60);
        }
        if (i != n) return false;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 ||
        sec > 60)
        return false;
    int64_t t = kms_days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + (sec == 60 ? 59 : sec) -
                offset_s;
    *ms = t * 1000 + frac_ms;
    return true;
}

/* An address, or with allow_prefix a CIDR block ("203.0.113.0/24", "2001:db8::/32"). */
static bool kms_ip(const char *s, size_t n, bool allow_prefix, int *family, uint8_t addr[16], unsigned *prefix)
{
    char buf[KMS_SOURCE_IP_MAX + 8];
    if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n) != NULL) return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    int bits = -1;
    if (slash != NULL) {
        if (!allow_prefix) return false;
        *slash = '\0';
        size_t i = 0, plen = strlen(slash + 1);
        if (plen == 0 || plen > 3 || !kms_digits(slash + 1, plen, &i, plen, &bits)) return false;
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        if (bits < 0) bits = 32;
        if (bits > 32) return false;
    } else if (inet_pton(AF_INET6, buf, addr) == 1) {
        *family = AF_INET6;
        if (bits < 0) bits = 128;
        if (bits > 128) return false;
    } else {
        return false;
    }
    *prefix = (unsigned)bits;
    for (unsigned b = *prefix; b < 128; b++) addr[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
    return true;
}

/* The six components of an ARN: the first five end at the first five colons, the resource is
 * the rest (it may hold colons). False when there are fewer than five colons. */
static bool kms_arn_split(const char *s, size_t n, size_t lo[KMS_ARN_PARTS], size_t hi[KMS_ARN_PARTS])
{
    size_t part = 0;
    lo[0] = 0;
    for (size_t i = 0; i < n && part < KMS_ARN_PARTS - 1; i++) {
        if (s[i] != ':') continue;
        hi[part] = i;
        lo[++part] = i + 1;
    }
    if (part != KMS_ARN_PARTS - 1) return false;
    hi[part] = n;
    return true;
}

bool kms_policy_attestation_key(const char *name, unsigned *pcr)
{
    if (strcasecmp(name, "ImageSha384") == 0) {
        *pcr = 0;
        return true;
    }
    if (strncasecmp(name, "PCR", 3) != 0) return false;
    const char *d = name + 3;
    unsigned v = 0;
    size_t n = 0;
    for (; d[n] >= '0' && d[n] <= '9' && n < 3; n++) v = v * 10 + (unsigned)(d[n] - '0');
    if (n == 0 || d[n] != '\0' || (n > 1 && d[0] == '0') || v >= CL_ATTEST_MAX_PCRS) return false;
    *pcr = v;
    return true;
}

/* --- parsing --------------------------------------------------------------------------------- */

static bool kms_parse_op(const char *name, const kms_op_def **def, kms_set_kind *set, bool *if_exists)
{
    *set = KMS_SET_NONE;
    *if_exists = false;
    if (strncmp(name, "ForAnyValue:", 12) == 0) {
        *set = KMS_SET_ANY;
        name += 12;
    } else if (strncmp(name, "ForAllValues:", 13) == 0) {
        *set = KMS_SET_ALL;
        name += 13;
    }
    size_t len = strlen(name);
    if (len > 8 && strcmp(name + len - 8, "IfExists") == 0) {
        *if_exists = true;
        len -= 8;
    }
    for (size_t i = 0; i < sizeof(kms_ops) / sizeof(kms_ops[0]); i++) {
        if (strlen(kms_ops[i].name) == len && strncmp(kms_ops[i].name, name, len) == 0) {
            *def = &kms_ops[i];
            /* Null has no IfExists form (a missing key is what it tests). */
            return !(*if_exists && kms_ops[i].kind == KMS_OP_NULL);
        }
    }
    return false;
}

/* Which key a condition names; false for one this evaluator does not answer. */
static bool kms_key_resolve(const char *key, kms_key_kind *kind, const char **suffix, bool *env)
{
    for (size_t i = 0; i < sizeof(kms_keys) / sizeof(kms_keys[0]); i++) {
        size_t n = strlen(kms_keys[i].name);
        if (kms_keys[i].prefix ? strncasecmp(key, kms_keys[i].name, n) != 0 : strcasecmp(key, kms_keys[i].name) != 0)
            continue;
        *kind = kms_keys[i].kind;
        *env = kms_keys[i].env;
        *suffix = NULL;
        if (!kms_keys[i].prefix) return true;
        const char *name = key + n;
        unsigned pcr;
        *suffix = name;
        if (*kind == KMS_KEY_ATTESTATION) return kms_policy_attestation_key(name, &pcr);
        return name[0] != '\0'; /* kms:EncryptionContext:<key> names a key */
    }
    return false;
}

/* Policy values are strings, or booleans/numbers written without quotes. */
static const char *kms_value_text(json_t *v, char *tmp, size_t cap, size_t *len)
{
    const char *s = NULL;
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (json_is_true(v)) s = "true";
    if (json_is_false(v)) s = "false";
    if (json_is_integer(v)) {
        (void)snprintf(tmp, cap, "%lld", (long long)json_integer_value(v));
        s = tmp;
    }
    if (json_is_real(v)) {
        (void)snprintf(tmp, cap, "%.17g", json_real_value(v));
        s = tmp;
    }
    if (s != NULL) *len = strlen(s);
    return s;
}

/* A JSON value for a message: a string quoted (printable, bounded), a number as written, or
 * what the value is ("an object", "a list", true, false, null). */
static const char *kms_show(json_t *v, char *buf, size_t n)
{
    if (v == NULL) return "nothing";
    if (json_is_string(v)) {
        char inner[72];
        (void)cl_bytes_show((const uint8_t *)json_string_value(v), json_string_length(v), inner, sizeof(inner));
        (void)snprintf(buf, n, "\"%s\"", inner);
        return buf;
    }
    if (json_is_object(v)) return "an object";
    if (json_is_array(v)) return "a list";
    if (json_is_true(v)) return "true";
    if (json_is_false(v)) return "false";
    if (json_is_null(v)) return "null";
    size_t len = 0;
    return kms_value_text(v, buf, n, &len);
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

/* A condition value, parsed for its operator. */
static CL_MUST_USE cl_status kms_compile_value(kms_policy *p, const kms_cond *c, json_t *v, const char *where,
                                               kms_cval *out)
{
    char tmp[64], shown[96];
    size_t len = 0;
    const char *s = kms_value_text(v, tmp, sizeof(tmp), &len);
    CL_ENSURE(s != NULL, CL_ERR_FORMAT,
              "%s: Condition \"%s\": the values of \"%s\" are strings, numbers or booleans, not %s", where, c->opname,
              c->key, kms_show(v, shown, sizeof(shown)));
    out->text = kms_strdup_n(p, s, len, false);
    out->len = len;
    CL_ENSURE(out->text != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    s = out->text;
    switch (c->def->kind) {
    case KMS_OP_STRING_EQ:
    case KMS_OP_STRING_EQ_IC: break;
    case KMS_OP_STRING_LIKE:
        out->u.wild = kms_wild_new(p, s, len);
        CL_ENSURE(out->u.wild != NULL, CL_ERR_NOMEM, "out of memory for a policy");
        break;
    case KMS_OP_NUMERIC:
        CL_ENSURE(kms_number(s, len, &out->u.num), CL_ERR_FORMAT,
                  "%s: Condition \"%s\": \"%s\" value '%.64s' is not a number", where, c->opname, c->key, s);
        break;
    case KMS_OP_DATE:
        CL_ENSURE(kms_date(s, len, &out->u.ms), CL_ERR_FORMAT,
                  "%s: Condition \"%s\": \"%s\" value '%.64s' is not a date (ISO 8601, e.g. 2030-01-01T00:00:00Z, or "
                  "epoch seconds)",
                  where, c->opname, c->key, s);
        break;
    case KMS_OP_BOOL:
    case KMS_OP_NULL:
        CL_ENSURE(strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0, CL_ERR_FORMAT,
                  "%s: Condition \"%s\": \"%s\" value '%.64s' must be true or false", where, c->opname, c->key, s);
        out->u.truth = strcasecmp(s, "true") == 0;
        break;
    case KMS_OP_IP:
        CL_ENSURE(kms_ip(s, len, true, &out->u.ip.family, out->u.ip.addr, &out->u.ip.prefix), CL_ERR_FORMAT,
                  "%s: Condition \"%s\": \"%s\" value '%.64s' is not an IP address or CIDR block (203.0.113.0/24)",
                  where, c->opname, c->key, s);
        break;
    case KMS_OP_ARN: {
        size_t lo[KMS_ARN_PARTS], hi[KMS_ARN_PARTS];
        CL_ENSURE(kms_arn_split(s, len, lo, hi), CL_ERR_FORMAT,
                  "%s: Condition \"%s\": \"%s\" value '%.64s' is not an ARN "
                  "(arn:partition:service:region:account:resource)",
                  where, c->opname, c->key, s);
        const kms_wild **parts = kms_alloc(p, KMS_ARN_PARTS * sizeof(const kms_wild *));
        CL_ENSURE(parts != NULL, CL_ERR_NOMEM, "out of memory for a policy");
        for (size_t k = 0; k < KMS_ARN_PARTS; k++) {
            parts[k] = kms_wild_new(p, s + lo[k], hi[k] - lo[k]);
            CL_ENSURE(parts[k] != NULL, CL_ERR_NOMEM, "out of memory for a policy");
        }
        out->u.arn = parts;
        break;
    }
    }
    return CL_OK;
}

/* One operator + key + values; c->def, set and if_exists are set. */
static CL_MUST_USE cl_status kms_compile_condition(kms_policy *p, const char *opname, const char *key, json_t *vals,
                                                   const char *where, kms_cond *c)
{
    c->opname = kms_strdup_n(p, opname, strlen(opname), false);
    c->key = kms_strdup_n(p, key, strlen(key), false);
    CL_ENSURE(c->opname != NULL && c->key != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    bool env = false;
    CL_ENSURE(kms_key_resolve(c->key, &c->kind, &c->suffix, &env), CL_ERR_FORMAT,
              "%s: condition key \"%.128s\" is not supported by cloister-kms, so the condition could never "
              "be judged; docs/kms.md lists the keys it evaluates",
              where, key);
    c->nvals = json_is_array(vals) ? json_array_size(vals) : 1;
    char shown[96];
    CL_ENSURE(c->nvals > 0 && !json_is_object(vals), CL_ERR_FORMAT,
              "%s: Condition \"%s\": \"%s\" takes a value or a non-empty list of values, not %s", where, opname, key,
              kms_show(vals, shown, sizeof(shown)));
    CL_ENSURE(c->def->kind != KMS_OP_NULL || c->nvals == 1, CL_ERR_FORMAT,
              "%s: Condition \"Null\": \"%s\" takes one value, true or false", where, key);
    c->vals = kms_alloc(p, c->nvals * sizeof(*c->vals));
    CL_ENSURE(c->vals != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    for (size_t i = 0; i < c->nvals; i++)
        CL_GUARD(kms_compile_value(p, c, json_is_array(vals) ? json_array_get(vals, i) : vals, where, &c->vals[i]));
    p->needs_env = p->needs_env || env;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_compile_conditions(kms_policy *p, json_t *cond, const char *where, kms_stmt *st)
{
    char shown[96];
    CL_ENSURE(json_is_object(cond), CL_ERR_FORMAT,
              "%s: \"Condition\" must be an object of operators ({\"StringEquals\": {...}}), not %s", where,
              kms_show(cond, shown, sizeof(shown)));
    size_t n = 0;
    const char *opname;
    json_t *block;
    json_object_foreach(cond, opname, block)
    {
        CL_ENSURE(json_is_object(block) && json_object_size(block) > 0, CL_ERR_FORMAT,
                  "%s: Condition \"%s\" must be a non-empty object of condition keys and values, not %s", where, opname,
                  kms_show(block, shown, sizeof(shown)));
        n += json_object_size(block);
    }
    st->cond = kms_alloc(p, n * sizeof(*st->cond));
    CL_ENSURE(n == 0 || st->cond != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    json_object_foreach(cond, opname, block)
    {
        const kms_op_def *def = NULL;
        kms_set_kind set;
        bool if_exists;
        CL_ENSURE(kms_parse_op(opname, &def, &set, &if_exists), CL_ERR_FORMAT,
                  "%s: unknown condition operator \"%s\" (StringEquals, StringLike, NumericLessThan, Bool, "
                  "IpAddress, ArnLike, Null, ..., with IfExists or ForAnyValue:/ForAllValues: as IAM has them)",
                  where, opname);
        const char *key;
        json_t *vals;
        json_object_foreach(block, key, vals)
        {
            kms_cond *c = &st->cond[st->ncond++];
            c->def = def;
            c->set = set;
            c->if_exists = if_exists;
            cl_status rc = kms_compile_condition(p, opname, key, vals, where, c);
            if (rc == CL_ERR_FORMAT && p->lenient) {
                /* A stored policy from an older build: see kms_policy_parse_cached. */
                c->unjudged = true;
                cl_error_clear();
            } else if (rc != CL_OK) {
                return rc;
            }
        }
    }
    return CL_OK;
}

/* Action/Resource lists: compiled wildcards (lower-cased for actions). */
static CL_MUST_USE cl_status kms_compile_patterns(kms_policy *p, json_t *v, bool lower, size_t *n,
                                                  const kms_wild ***out)
{
    *n = json_is_array(v) ? json_array_size(v) : 1;
    *out = kms_alloc(p, *n * sizeof(const kms_wild *));
    CL_ENSURE(*out != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    for (size_t i = 0; i < *n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        char *s = kms_strdup_n(p, json_string_value(e), json_string_length(e), lower);
        CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory for a policy");
        (*out)[i] = kms_wild_new(p, s, json_string_length(e));
        CL_ENSURE((*out)[i] != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    }
    return CL_OK;
}

/* The entries of one principal type ({"AWS": ...} or {"Service": ...}: a string or a list of
 * them, checked by the caller), copied into p's arena; none when v is NULL. */
static CL_MUST_USE cl_status kms_principal_list(kms_policy *p, json_t *v, size_t *n, const char ***out)
{
    *n = 0;
    *out = NULL;
    if (v == NULL) return CL_OK;
    *n = json_is_array(v) ? json_array_size(v) : 1;
    *out = kms_alloc(p, *n * sizeof(**out));
    CL_ENSURE(*out != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    for (size_t i = 0; i < *n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        (*out)[i] = kms_strdup_n(p, json_string_value(e), json_string_length(e), false);
        CL_ENSURE((*out)[i] != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    }
    return CL_OK;
}

/* The messages name the statement as a path into the document ("Statement[1]", from 0, or
 * "Statement" when it is a single object), quote the element and say what it holds, so
 * that the key owner can find the mistake. AWS's own texts are used where it has one
 * ("Policy contains a statement with one or more invalid principals."). */
static CL_MUST_USE cl_status kms_compile_statement(kms_policy *p, json_t *st, const char *where, kms_stmt *out)
{
    if (p->kind == KMS_POLICY_IDENTITY) {
        /* An identity policy applies to the identity it is attached to: IAM refuses one that
         * names a principal ("Policy document should not specify a principal.", IAM User Guide,
         * "IAM JSON policy elements: Principal"). */
        CL_ENSURE(!json_is_object(st) ||
                      (json_object_get(st, "Principal") == NULL && json_object_get(st, "NotPrincipal") == NULL),
                  CL_ERR_FORMAT, "Policy document should not specify a principal. (%s)", where);
        out->principal_any = true;
    }
    char shown[96];
    CL_ENSURE(json_is_object(st), CL_ERR_FORMAT, "%s must be an object ({\"Effect\": ..., \"Principal\": ...}), not %s",
              where, kms_show(st, shown, sizeof(shown)));
    const char *k;
    json_t *v;
    json_object_foreach(st, k, v)
    {
        static const char *known[] = {"Sid",       "Effect",   "Principal",   "Action",
                                      "NotAction", "Resource", "NotResource", "Condition"};
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok = ok || strcmp(k, known[i]) == 0;
        CL_ENSURE(ok, CL_ERR_FORMAT,
                  "%s: unknown element \"%.64s\" (a statement has Sid, Effect, Principal, Action or NotAction, "
                  "Resource or NotResource, and Condition)",
                  where, k);
    }
    json_t *eff = json_object_get(st, "Effect");
    CL_ENSURE(eff != NULL, CL_ERR_FORMAT, "%s has no \"Effect\": it must be \"Allow\" or \"Deny\"", where);
    CL_ENSURE(json_is_string(eff) &&
                  (strcmp(json_string_value(eff), "Allow") == 0 || strcmp(json_string_value(eff), "Deny") == 0),
              CL_ERR_FORMAT, "%s: \"Effect\" must be \"Allow\" or \"Deny\", not %s", where,
              kms_show(eff, shown, sizeof(shown)));
    out->deny = strcmp(json_string_value(eff), "Deny") == 0;
    json_t *sid = json_object_get(st, "Sid");
    CL_ENSURE(sid == NULL || json_is_string(sid), CL_ERR_FORMAT, "%s: \"Sid\" must be a string, not %s", where,
              kms_show(sid, shown, sizeof(shown)));
    if (json_is_string(sid)) {
        out->sid = kms_strdup_n(p, json_string_value(sid), json_string_length(sid), false);
        CL_ENSURE(out->sid != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    }
    if (p->kind == KMS_POLICY_IDENTITY) goto actions;
    json_t *pr = json_object_get(st, "Principal");
    CL_ENSURE(pr != NULL, CL_ERR_FORMAT,
              "%s has no \"Principal\": a key policy statement names who it applies to, e.g. {\"AWS\": "
              "\"arn:aws:iam::111122223333:root\"}, or \"*\"",
              where);
    if (json_is_string(pr)) {
        CL_ENSURE(strcmp(json_string_value(pr), "*") == 0, CL_ERR_FORMAT,
                  "Policy contains a statement with one or more invalid principals. %s: \"Principal\" as a string "
                  "must be \"*\", not %s (name principals as {\"AWS\": ARN})",
                  where, kms_show(pr, shown, sizeof(shown)));
        out->principal_any = true;
    } else {
        CL_ENSURE(json_is_object(pr) && json_object_size(pr) > 0, CL_ERR_FORMAT,
                  "Policy contains a statement with one or more invalid principals. %s: \"Principal\" must be \"*\" "
                  "or an object such as {\"AWS\": ARN}, not %s",
                  where, kms_show(pr, shown, sizeof(shown)));
        json_object_foreach(pr, k, v)
        {
            CL_ENSURE(strcmp(k, "AWS") == 0 || strcmp(k, "Service") == 0, CL_ERR_FORMAT,
                      "Policy contains a statement with one or more invalid principals. %s: principal type "
                      "\"%.64s\" is not supported (\"AWS\" or \"Service\")",
                      where, k);
            CL_ENSURE(kms_string_or_list(v), CL_ERR_FORMAT,
                      "Policy contains a statement with one or more invalid principals. %s: \"Principal\": \"%s\" "
                      "must be a string or a non-empty list of strings, not %s",
                      where, k, kms_show(v, shown, sizeof(shown)));
        }
        CL_GUARD(kms_principal_list(p, json_object_get(pr, "AWS"), &out->naws, &out->aws));
        CL_GUARD(kms_principal_list(p, json_object_get(pr, "Service"), &out->nsvc, &out->svc));
    }
actions:;
    json_t *a = json_object_get(st, "Action"), *na = json_object_get(st, "NotAction");
    CL_ENSURE((a != NULL) != (na != NULL), CL_ERR_FORMAT, "%s needs exactly one of \"Action\" and \"NotAction\"%s",
              where, a != NULL ? ", not both" : "");
    CL_ENSURE(kms_string_or_list(a != NULL ? a : na), CL_ERR_FORMAT,
              "%s: \"%s\" must be an action (\"kms:Decrypt\", \"kms:*\") or a non-empty list of them, not %s", where,
              a != NULL ? "Action" : "NotAction", kms_show(a != NULL ? a : na, shown, sizeof(shown)));
    out->not_action = na != NULL;
    CL_GUARD(kms_compile_patterns(p, a != NULL ? a : na, true, &out->nact, &out->act));
    json_t *r = json_object_get(st, "Resource"), *nr = json_object_get(st, "NotResource");
    if (p->kind == KMS_POLICY_TRUST && r == NULL && nr == NULL) {
        /* A role's trust policy has no Resource: the role is its resource (IAM User Guide,
         * "Role trust policy"). No NotResource patterns: every resource matches. */
        out->not_resource = true;
        out->nres = 0;
        goto conditions;
    }
    CL_ENSURE((r != NULL) != (nr != NULL), CL_ERR_FORMAT,
              "%s needs exactly one of \"Resource\" and \"NotResource\"%s (in a key policy, \"Resource\": \"*\" is "
              "the key)",
              where, r != NULL ? ", not both" : "");
    CL_ENSURE(kms_string_or_list(r != NULL ? r : nr), CL_ERR_FORMAT,
              "%s: \"%s\" must be a string (\"*\") or a non-empty list of strings, not %s", where,
              r != NULL ? "Resource" : "NotResource", kms_show(r != NULL ? r : nr, shown, sizeof(shown)));
    out->not_resource = nr != NULL;
    CL_GUARD(kms_compile_patterns(p, r != NULL ? r : nr, false, &out->nres, &out->res));
conditions:;
    json_t *cond = json_object_get(st, "Condition");
    if (cond != NULL) CL_GUARD(kms_compile_conditions(p, cond, where, out));
    return CL_OK;
}

static CL_MUST_USE cl_status kms_policy_compile(const char *text, size_t len, bool lenient, kms_policy_kind kind,
                                                kms_policy **out)
{
    CL_ENSURE(len > 0 && len <= KMS_POLICY_MAX, CL_ERR_FORMAT,
              "policy must be 1 to %d bytes (AWS's key policy size quota); this one is %zu", KMS_POLICY_MAX, len);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE(doc != NULL, CL_ERR_FORMAT, "the policy is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
              jerr.column);
    cl_status rc = CL_OK;
    kms_policy *p = NULL;
    char shown[96];
    CL_ENSURE_GOTO(json_is_object(doc), CL_ERR_FORMAT,
                   "the policy must be a JSON object ({\"Version\": ..., "
                   "\"Statement\": [...]}), not %s",
                   kms_show(doc, shown, sizeof(shown)));
    json_t *ver = json_object_get(doc, "Version");
    CL_ENSURE_GOTO(ver == NULL || (json_is_string(ver) && (strcmp(json_string_value(ver), "2012-10-17") == 0 ||
                                                           strcmp(json_string_value(ver), "2008-10-17") == 0)),
                   CL_ERR_FORMAT, "\"Version\" must be \"2012-10-17\" or \"2008-10-17\", not %s",
                   kms_show(ver, shown, sizeof(shown)));
    json_t *sts = json_object_get(doc, "Statement");
    CL_ENSURE_GOTO(sts != NULL, CL_ERR_FORMAT, "the policy has no \"Statement\"");
    CL_ENSURE_GOTO(json_is_object(sts) || (json_is_array(sts) && json_array_size(sts) > 0), CL_ERR_FORMAT,
                   "\"Statement\" must be a statement or a non-empty list of statements, not %s",
                   kms_show(sts, shown, sizeof(shown)));
    p = calloc(1, sizeof(*p));
    CL_ENSURE_GOTO(p != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    p->lenient = lenient;
    p->kind = kind;
    p->nst = json_is_array(sts) ? json_array_size(sts) : 1;
    p->st = kms_alloc(p, p->nst * sizeof(*p->st));
    CL_ENSURE_GOTO(p->st != NULL, CL_ERR_NOMEM, "out of memory for a policy");
    for (size_t i = 0; i < p->nst; i++) {
        char where[32] = "Statement";
        if (json_is_array(sts)) (void)snprintf(where, sizeof(where), "Statement[%zu]", i);
        CL_GUARD_GOTO(kms_compile_statement(p, json_is_array(sts) ? json_array_get(sts, i) : sts, where, &p->st[i]));
    }
    *out = p;
    p = NULL;
out:
    kms_policy_free(p);
    json_decref(doc);
    return rc;
}

cl_status kms_policy_parse(const char *text, size_t len, kms_policy **out)
{
    return kms_policy_compile(text, len, false, KMS_POLICY_KEY, out);
}

cl_status kms_policy_parse_as(const char *text, size_t len, kms_policy_kind kind, kms_policy **out)
{
    return kms_policy_compile(text, len, false, kind, out);
}

void kms_policy_free(kms_policy *p)
{
    if (p == NULL) return;
    for (kms_arena_block *b = p->blocks, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(p);
}

/* --- evaluation ------------------------------------------------------------------------------- */

/*
 * The wildcard indexes of the request's values, built on first use and shared by every
 * pattern and statement of the evaluation, keyed by the value's address: the encryption
 * context's strings and the request's fields stay put while a policy is evaluated. More slots
 * than any request has distinct values (64 context keys and 64 values, 17 grant operations,
 * 32 PCRs, a few fields).
 */
#define KMS_EVAL_SLOTS 256

typedef struct kms_eval {
    const kms_policy_request *r;
    bool failed; /* out of memory: the evaluation fails closed */
    bool times;  /* now_iso and now_epoch are filled (on first use) */
    char now_iso[32];
    char now_epoch[24];
    size_t nused;
    uint16_t used[KMS_EVAL_SLOTS]; /* the slots holding an index, to free */
    const char *key[KMS_EVAL_SLOTS];
    bool fold[KMS_EVAL_SLOTS];
    kms_wild_text *text[KMS_EVAL_SLOTS];
} kms_eval;

static const kms_wild_text *kms_eval_text(kms_eval *e, const char *s, bool fold)
{
    if (s == NULL) s = ""; /* a request field left out matches what "" matches */
    size_t h = (size_t)(((uintptr_t)s >> 3) * 0x9E3779B97F4A7C15ull >> 56) % KMS_EVAL_SLOTS;
    for (size_t probe = 0; probe < KMS_EVAL_SLOTS; probe++, h = (h + 1) % KMS_EVAL_SLOTS) {
        if (e->key[h] == s && e->fold[h] == fold) return e->text[h];
        if (e->key[h] != NULL) continue;
        kms_wild_text *t = malloc(sizeof(*t));
        if (t == NULL || kms_wild_text_init(t, s, strlen(s), fold) != CL_OK) {
            free(t);
            e->failed = true;
            return NULL;
        }
        e->key[h] = s;
        e->fold[h] = fold;
        e->text[h] = t;
        e->used[e->nused++] = (uint16_t)h;
        return t;
    }
    e->failed = true; /* more distinct values than any request has */
    return NULL;
}

static void kms_eval_free(kms_eval *e)
{
    for (size_t i = 0; i < e->nused; i++) {
        kms_wild_text_free(e->text[e->used[i]]);
        free(e->text[e->used[i]]);
    }
}

/* aws:CurrentTime and aws:EpochTime of the request, formatted when a condition first asks. */
static void kms_eval_times(kms_eval *e)
{
    if (e->times) return;
    e->times = true;
    time_t now = (time_t)e->r->env->now;
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(e->now_iso, sizeof(e->now_iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        e->now_iso[0] = '\0';
    (void)snprintf(e->now_epoch, sizeof(e->now_epoch), "%lld", (long long)e->r->env->now);
}

static void kms_add(kms_cond_values *out, const char *v)
{
    out->present = true;
    if (out->n < KMS_COND_MAX_VALUES) out->v[out->n++] = v;
}

/* aws:username: the user name of an IAM user's ARN (arn:aws:iam::ACCOUNT:user/[path/]NAME);
 * absent for roles and account roots, as in AWS. */
static const char *kms_username(const char *arn)
{
    const char *u = arn != NULL ? strstr(arn, ":user/") : NULL;
    if (u == NULL) return NULL;
    const char *name = strrchr(u, '/') + 1;
    return name[0] != '\0' ? name : NULL;
}

static void kms_lookup(kms_eval *e, const kms_cond *c, kms_cond_values *out)
{
    const kms_policy_request *r = e->r;
    const kms_policy_env *env = r->env;
    memset(out, 0, sizeof(*out));
    switch (c->kind) {
    case KMS_KEY_CONTEXT:
        /* The context key in the condition key's name is matched without regard to case, as
         * AWS does; contexts with keys that differ only by case are refused before they get
         * here (context.c), so at most one matches. */
        for (size_t i = 0; r->encryption_context != NULL && i < r->encryption_context->count; i++) {
            if (strcasecmp(r->encryption_context->items[i].key, c->suffix) == 0) {
                kms_add(out, r->encryption_context->items[i].value);
                break;
            }
        }
        break;
    case KMS_KEY_CONTEXT_KEYS:
        for (size_t i = 0; r->encryption_context != NULL && i < r->encryption_context->count; i++)
            kms_add(out, r->encryption_context->items[i].key);
        break;
    case KMS_KEY_CALLER_ACCOUNT:
    case KMS_KEY_PRINCIPAL_ACCOUNT:
        if (r->principal_account != NULL) kms_add(out, r->principal_account);
        break;
    case KMS_KEY_PRINCIPAL_ARN:
        /* For a role session, aws:PrincipalArn is the role's ARN (IAM User Guide, "AWS global
         * condition context keys", aws:PrincipalArn). */
        if (r->role_arn != NULL)
            kms_add(out, r->role_arn);
        else if (r->principal_arn != NULL)
            kms_add(out, r->principal_arn);
        break;
    case KMS_KEY_EXTERNAL_ID:
        if (r->external_id != NULL) kms_add(out, r->external_id);
        break;
    case KMS_KEY_ROLE_SESSION_NAME:
        if (r->role_session_name != NULL) kms_add(out, r->role_session_name);
        break;
    case KMS_KEY_PASSED_TO_SERVICE:
        /* IAM User Guide, "iam:PassedToService": the service principal a role is passed to,
         * in the iam:PassRole check of the call that passes it. */
        if (r->passed_to_service != NULL) kms_add(out, r->passed_to_service);
        break;
    case KMS_KEY_USERNAME:
        if (kms_username(r->principal_arn) != NULL) kms_add(out, kms_username(r->principal_arn));
        break;
    case KMS_KEY_GRANT_OPERATIONS:
        for (size_t i = 0; r->grant_operations != NULL && r->grant_operations[i] != NULL; i++)
            kms_add(out, r->grant_operations[i]);
        break;
    case KMS_KEY_GRANTEE_PRINCIPAL:
        if (r->grantee_principal != NULL) kms_add(out, r->grantee_principal);
        break;
    case KMS_KEY_GRANT_FOR_AWS_RESOURCE:
        /* AWS KMS Developer Guide, "Controlling access to grants": the key is in CreateGrant,
         * ListGrants and RevokeGrant requests, true when an integrated service sends the
         * request on the principal's behalf. */
        if (strcasecmp(r->action, "kms:CreateGrant") == 0 || strcasecmp(r->action, "kms:ListGrants") == 0 ||
            strcasecmp(r->action, "kms:RevokeGrant") == 0)
            kms_add(out, env != NULL && env->via_service != NULL ? "true" : "false");
        break;
    case KMS_KEY_VIA_SERVICE:
        if (env != NULL && env->via_service != NULL) kms_add(out, env->via_service);
        break;
    case KMS_KEY_VIA_AWS_SERVICE: kms_add(out, env != NULL && env->via_service != NULL ? "true" : "false"); break;
    case KMS_KEY_PRINCIPAL_IS_SERVICE:
        /* true only for the in-process service (a training job's supervisor assuming its role) */
        kms_add(out, r->service_principal != NULL ? "true" : "false");
        break;
    /* The env keys: kms_evaluate refuses a request without env before any is asked. */
    case KMS_KEY_SECURE_TRANSPORT:
        if (env != NULL) kms_add(out, env->secure_transport ? "true" : "false");
        break;
    case KMS_KEY_SOURCE_IP:
        if (env != NULL && env->source_ip[0] != '\0') kms_add(out, env->source_ip);
        break;
    case KMS_KEY_CURRENT_TIME:
        if (env != NULL) kms_eval_times(e);
        if (env != NULL && e->now_iso[0] != '\0') kms_add(out, e->now_iso);
        break;
    case KMS_KEY_EPOCH_TIME:
        if (env != NULL) kms_eval_times(e);
        if (env != NULL) kms_add(out, e->now_epoch);
        break;
    case KMS_KEY_REQUESTED_REGION:
        if (env != NULL && env->region != NULL) kms_add(out, env->region);
        break;
    case KMS_KEY_ATTESTATION:
        if (r->lookup != NULL) (void)r->lookup(r->lookup_arg, c->key, out);
        break;
    }
}

static int kms_compare(double a, double b) { return a < b ? -1 : a > b ? 1 : 0; }

static bool kms_cmp_holds(kms_cmp cmp, int rel)
{
    switch (cmp) {
    case KMS_CMP_EQ: return rel == 0;
    case KMS_CMP_LT: return rel < 0;
    case KMS_CMP_LE: return rel <= 0;
    case KMS_CMP_GT: return rel > 0;
    case KMS_CMP_GE: return rel >= 0;
    }
    return false;
}

static bool kms_ip_in(const kms_cval *block, int family, const uint8_t addr[16])
{
    if (block->u.ip.family != family) return false;
    unsigned full = block->u.ip.prefix / 8, rest = block->u.ip.prefix % 8;
    if (memcmp(block->u.ip.addr, addr, full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xFFu << (8 - rest));
    return (addr[full] & mask) == block->u.ip.addr[full];
}

/* Does one request value match any of the condition's values (before the operator's
 * negation)? Stops at the first that does. */
static bool kms_value_matches(kms_eval *e, const kms_cond *c, const char *v)
{
    size_t vlen = strlen(v);
    switch (c->def->kind) {
    case KMS_OP_STRING_EQ:
        for (size_t i = 0; i < c->nvals; i++)
            if (c->vals[i].len == vlen && memcmp(c->vals[i].text, v, vlen) == 0) return true;
        return false;
    case KMS_OP_STRING_EQ_IC:
        for (size_t i = 0; i < c->nvals; i++)
            if (c->vals[i].len == vlen && strncasecmp(c->vals[i].text, v, vlen) == 0) return true;
        return false;
    case KMS_OP_BOOL: {
        bool truth = strcasecmp(v, "true") == 0;
        if (!truth && strcasecmp(v, "false") != 0) return false;
        for (size_t i = 0; i < c->nvals; i++)
            if (c->vals[i].u.truth == truth) return true;
        return false;
    }
    case KMS_OP_STRING_LIKE: {
        const kms_wild_text *t = kms_eval_text(e, v, false);
        for (size_t i = 0; t != NULL && i < c->nvals; i++)
            if (kms_wild_match(c->vals[i].u.wild, t)) return true;
        return false;
    }
    case KMS_OP_ARN: {
        size_t lo[KMS_ARN_PARTS], hi[KMS_ARN_PARTS];
        if (!kms_arn_split(v, vlen, lo, hi)) return false;
        const kms_wild_text *t = kms_eval_text(e, v, false);
        for (size_t i = 0; t != NULL && i < c->nvals; i++) {
            bool all = true;
            for (size_t k = 0; k < KMS_ARN_PARTS && all; k++)
                all = kms_wild_match_range(c->vals[i].u.arn[k], t, lo[k], hi[k]);
            if (all) return true;
        }
        return false;
    }
    case KMS_OP_NUMERIC: {
        double a;
        if (!kms_number(v, vlen, &a)) return false;
        for (size_t i = 0; i < c->nvals; i++)
            if (kms_cmp_holds(c->def->cmp, kms_compare(a, c->vals[i].u.num))) return true;
        return false;
    }
    case KMS_OP_DATE: {
        int64_t ms;
        if (!kms_date(v, vlen, &ms)) return false;
        for (size_t i = 0; i < c->nvals; i++)
            if (kms_cmp_holds(c->def->cmp, ms < c->vals[i].u.ms ? -1 : ms > c->vals[i].u.ms ? 1 : 0)) return true;
        return false;
    }
    case KMS_OP_IP: {
        int family;
        uint8_t addr[16];
        unsigned prefix;
        if (!kms_ip(v, vlen, false, &family, addr, &prefix)) return false;
        for (size_t i = 0; i < c->nvals; i++)
            if (kms_ip_in(&c->vals[i], family, addr)) return true;
        return false;
    }
    case KMS_OP_NULL: return false;
    }
    return false;
}

static bool kms_condition_holds(kms_eval *e, const kms_cond *c, const kms_cond_values *req)
{
    if (c->def->kind == KMS_OP_NULL) return c->vals[0].u.truth == !req->present; /* "Null": "true": must be absent */
    if (!req->present || req->n == 0) {
        if (c->set == KMS_SET_ALL) return true; /* vacuously */
        if (c->set == KMS_SET_ANY) return false;
        return c->if_exists || c->def->negated;
    }
    bool neg = c->def->negated;
    if (c->set == KMS_SET_NONE) {
        /* Single-valued: a match of any request value counts, then the operator's negation. */
        for (size_t i = 0; i < req->n; i++)
            if (kms_value_matches(e, c, req->v[i])) return !neg;
        return neg;
    }
    for (size_t i = 0; i < req->n; i++) {
        bool m = kms_value_matches(e, c, req->v[i]) != neg;
        if (c->set == KMS_SET_ANY && m) return true;
        if (c->set == KMS_SET_ALL && !m) return false;
    }
    return c->set == KMS_SET_ALL;
}

/* Names the operator and key that did not hold. For an attestation key it also quotes the
 * value the caller's document presented (a measurement is not a secret, and it is the
 * caller's own): "the measurement that failed" is what an operator needs to see which image
 * asked. The policy's expected value is never quoted. */
static void kms_why_condition(char *why, size_t why_cap, const kms_cond *c, const kms_cond_values *req)
{
    if (c->kind == KMS_KEY_ATTESTATION)
        (void)snprintf(why, why_cap, "%s %s; the attestation document has %s", c->opname, c->key,
                       req->present && req->n > 0 ? req->v[0] : "none");
    else
        (void)snprintf(why, why_cap, "%s %s", c->opname, c->key);
}

static bool kms_principal_entry(const char *p, const kms_policy_request *r)
{
    if (strcmp(p, "*") == 0) return true;
    /* A service acting in-process names no IAM principal: only "*" and its Service entry. */
    if (r->service_principal != NULL) return false;
    if (r->principal_arn != NULL && strcmp(p, r->principal_arn) == 0) return true;
    /* "A role session's permissions ... a resource-based policy that names the role ARN applies
     * to its sessions" (IAM User Guide, "Cross account resource access", role sessions). */
    if (r->role_arn != NULL && strcmp(p, r->role_arn) == 0) return true;
    /* An entry naming the account delegates to the account's identity policies, which the
     * caller evaluates itself when it says so (kms_authorize). */
    if (r->principal_account == NULL || r->account_delegates) return false;
    /* The account root ("arn:aws:iam::ACCOUNT:root" or the bare account id)
     * stands for every principal of that account. */
    if (strcmp(p, r->principal_account) == 0) return true;
    char root[64];
    (void)snprintf(root, sizeof(root), "arn:aws:iam::%s:root", r->principal_account);
    return strcmp(p, root) == 0;
}

static bool kms_any_wild(kms_eval *e, const kms_wild *const *w, size_t n, const char *s, bool fold)
{
    const kms_wild_text *t = kms_eval_text(e, s, fold);
    for (size_t i = 0; t != NULL && i < n; i++)
        if (kms_wild_match(w[i], t)) return true;
    return false;
}

/* Does the statement apply? On a failed condition, why (when not NULL) names it. */
static bool kms_statement_applies(kms_eval *e, const kms_stmt *st, char *why, size_t why_cap)
{
    const kms_policy_request *r = e->r;
    bool who = st->principal_any;
    for (size_t i = 0; !who && i < st->naws; i++) who = kms_principal_entry(st->aws[i], r);
    /* {"Service": "sagemaker.amazonaws.com"} (IAM User Guide, "AWS service principals"). Service
     * names are lower-case DNS names; compared exactly. */
    for (size_t i = 0; !who && r->service_principal != NULL && i < st->nsvc; i++)
        who = strcmp(st->svc[i], r->service_principal) == 0;
    if (!who) return false;
    /* Action names are case-insensitive in IAM. */
    if (kms_any_wild(e, st->act, st->nact, r->action, true) == st->not_action) return false;
    if (kms_any_wild(e, st->res, st->nres, r->resource, false) == st->not_resource) return false;
    for (size_t i = 0; i < st->ncond; i++) {
        if (st->cond[i].unjudged) {
            /* Fails closed: holds in a Deny, fails in an Allow. */
            if (st->deny) continue;
            if (why != NULL)
                (void)snprintf(why, why_cap, "%s %s, which this server does not evaluate: replace the key policy",
                               st->cond[i].opname, st->cond[i].key);
            return false;
        }
        kms_cond_values req;
        kms_lookup(e, &st->cond[i], &req);
        if (!kms_condition_holds(e, &st->cond[i], &req)) {
            if (why != NULL) kms_why_condition(why, why_cap, &st->cond[i], &req);
            return false;
        }
    }
    return true;
}

static kms_decision kms_evaluate(kms_eval *e, const kms_policy *p, char *why, size_t why_cap)
{
    const kms_policy_request *r = e->r;
    if (p->needs_env && r->env == NULL) {
        /* A caller that did not say how the request arrived cannot have aws:SecureTransport
         * or aws:SourceIp judged: refuse rather than let a Deny on them go unfired. */
        if (why != NULL) (void)snprintf(why, why_cap, "the policy uses request keys this caller did not supply");
        return KMS_DECISION_EXPLICIT_DENY;
    }
    /* Any Deny that applies decides (IAM's evaluation logic), so the Deny statements go first
     * and the first that applies ends the evaluation; then the first Allow that applies. */
    for (size_t i = 0; i < p->nst; i++) {
        const kms_stmt *st = &p->st[i];
        if (!st->deny || !kms_statement_applies(e, st, NULL, 0)) continue;
        if (why != NULL) (void)snprintf(why, why_cap, "statement %s denies it", st->sid != NULL ? st->sid : "(no Sid)");
        return KMS_DECISION_EXPLICIT_DENY;
    }
    char failed[KMS_POLICY_WHY_MAX] = "";
    for (size_t i = 0; i < p->nst; i++) {
        const kms_stmt *st = &p->st[i];
        if (st->deny) continue;
        char here[KMS_POLICY_WHY_MAX] = "";
        if (kms_statement_applies(e, st, here, sizeof(here))) {
            if (why != NULL) why[0] = '\0';
            return KMS_DECISION_ALLOW;
        }
        /* The first Allow statement for this principal, action and resource whose condition failed. */
        if (failed[0] == '\0' && here[0] != '\0') (void)snprintf(failed, sizeof(failed), "%s", here);
    }
    if (why != NULL) (void)snprintf(why, why_cap, "%s", failed);
    return KMS_DECISION_IMPLICIT_DENY;
}

kms_decision kms_policy_evaluate_why(const kms_policy *p, const kms_policy_request *r, char *why, size_t why_cap)
{
    kms_eval e; /* about 5 KiB: on the stack, only the slot keys zeroed */
    e.r = r;
    e.failed = false;
    e.times = false;
    e.nused = 0;
    memset(e.key, 0, sizeof(e.key));
    kms_decision d = kms_evaluate(&e, p, why, why_cap);
    if (e.failed) {
        /* A value could not be indexed: some statement was not judged, so nothing is allowed. */
        d = KMS_DECISION_EXPLICIT_DENY;
        if (why != NULL) (void)snprintf(why, why_cap, "out of memory evaluating the key policy");
    }
    kms_eval_free(&e);
    return d;
}

kms_decision kms_policy_evaluate(const kms_policy *p, const kms_policy_request *r)
{
    return kms_policy_evaluate_why(p, r, NULL, 0);
}

/*
 * Per-thread cache of parsed policies: Decrypt and friends authorize every
 * call against the key policy, and parsing it (jansson) was a tenth of the
 * server's CPU. The key is the full text, compared byte for byte, so an
 * updated policy simply misses. Per thread: no locks, and a borrowed entry
 * cannot be evicted by another thread. Freed when the thread exits.
 */
#define KMS_POLICY_CACHE_N 8
/* A compiled policy takes up to about 20 times its text (a 32 KiB list of tiny wildcards:
 * ~650 KiB); bounding the bytes as well as the entries keeps an owner of many such policies
 * from holding a worker's memory. Typical policies (a few KiB) fill all 8 entries. */
#define KMS_POLICY_CACHE_BYTES ((size_t)2 << 20)

typedef struct kms_policy_cache {
    struct {
        char *text;
        size_t len;
        kms_policy *p;
    } e[KMS_POLICY_CACHE_N];
    size_t next;  /* round-robin victim */
    size_t bytes; /* of the cached policies and texts */
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

static void kms_policy_cache_evict(kms_policy_cache *pc, size_t i)
{
    if (pc->e[i].p == NULL) return;
    pc->bytes -= pc->e[i].p->bytes + pc->e[i].len;
    free(pc->e[i].text);
    kms_policy_free(pc->e[i].p);
    pc->e[i].text = NULL;
    pc->e[i].p = NULL;
    pc->e[i].len = 0;
}

static void kms_policy_cache_init(void)
{
    kms_policy_cache_ok = pthread_key_create(&kms_policy_cache_key, kms_policy_cache_free) == 0;
}

cl_status kms_policy_parse_cached(const char *text, size_t len, const kms_policy **out)
{
    return kms_policy_parse_cached_as(text, len, KMS_POLICY_KEY, out);
}

cl_status kms_policy_parse_cached_as(const char *text, size_t len, kms_policy_kind kind, const kms_policy **out)
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
            if (pc->e[i].p != NULL && pc->e[i].p->kind == kind && pc->e[i].len == len &&
                memcmp(pc->e[i].text, text, len) == 0) {
                *out = pc->e[i].p;
                return CL_OK;
            }
        }
    }
    CL_ENSURE(pc != NULL, CL_ERR_NOMEM, "out of memory for the policy cache");
    kms_policy *p = NULL;
    CL_GUARD(kms_policy_compile(text, len, true, kind, &p));
    char *copy = malloc(len);
    if (copy == NULL) {
        kms_policy_free(p);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for a cached policy");
    }
    memcpy(copy, text, len);
    /* Evict the round-robin victim, then others until the new entry fits the byte bound (it
     * may be alone in the cache). Entries are per thread: no caller holds an evicted one. */
    size_t v = pc->next, need = p->bytes + len;
    pc->next = (pc->next + 1) % KMS_POLICY_CACHE_N;
    kms_policy_cache_evict(pc, v);
    for (size_t i = 0; i < KMS_POLICY_CACHE_N && pc->bytes + need > KMS_POLICY_CACHE_BYTES; i++)
        kms_policy_cache_evict(pc, i);
    pc->e[v].text = copy;
    pc->e[v].len = len;
    pc->e[v].p = p;
    pc->bytes += need;
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
