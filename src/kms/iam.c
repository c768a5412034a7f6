/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: STS and IAM actions (iam.h). Shapes and error codes are botocore's models
 * (sts/2011-06-15, iam/2010-05-08 service-2.json) and the STS and IAM API References.
 */
#include "iam.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "authorize.h"
#include "identity.h"
#include "query.h"

#define KMS_STS_NS "https://sts.amazonaws.com/doc/2011-06-15/"
#define KMS_IAM_NS "https://iam.amazonaws.com/doc/2010-05-08/"
/* IAM API Reference, CreateRole: MaxSessionDuration 3600..43200, default 3600; STS AssumeRole:
 * DurationSeconds from 900 to the role's maximum, default 3600; a role chain at most an hour. */
#define KMS_SESSION_MIN 900
#define KMS_SESSION_DEFAULT 3600
#define KMS_SESSION_MAX 43200
#define KMS_LIST_MAX 1000 /* MaxItems: 1..1000, default 100 */

/* Fails the action with the query protocol's code and HTTP status. */
#define Q_FAIL(q, st, cd, ...) \
    do { \
        (q)->status = (st); \
        (q)->code = (cd); \
        CL_FAIL(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)
#define Q_FAIL_GOTO(q, st, cd, ...) \
    do { \
        (q)->status = (st); \
        (q)->code = (cd); \
        CL_FAIL_GOTO(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)

typedef CL_MUST_USE cl_status (*kms_query_fn)(kms_query_call *q);

void kms_query_error(cl_buf *xml, const char *type, const char *code, const char *message, const char *request_id)
{
    cl_buf_reset(xml);
    cl_status rc = cl_buf_append_str(xml, "<ErrorResponse><Error>");
    if (rc == CL_OK) rc = kms_xml_elem(xml, "Type", type);
    if (rc == CL_OK) rc = kms_xml_elem(xml, "Code", code);
    if (rc == CL_OK) rc = kms_xml_elem(xml, "Message", message);
    if (rc == CL_OK) rc = cl_buf_append_str(xml, "</Error>");
    if (rc == CL_OK) rc = kms_xml_elem(xml, "RequestId", request_id);
    if (rc == CL_OK) rc = cl_buf_append_str(xml, "</ErrorResponse>");
    if (rc != CL_OK) {
        cl_error_clear();
        cl_buf_reset(xml);
        if (cl_buf_append_str(xml, "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
                                   "</Error></ErrorResponse>") != CL_OK)
            cl_error_clear();
    }
}

/* --- helpers ------------------------------------------------------------------------ */

static const char *q_arg(const kms_query_call *q, const char *name)
{
    return json_string_value(json_object_get(q->form, name));
}

static void kms_iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    (void)strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A stable id of an ARN as IAM's ids look (AIDA.../AROA.../ANPA...: 4 letters and 16 of
 * A-Z2-7), derived from the ARN. */
static CL_MUST_USE cl_status kms_entity_id(const char *prefix, const char *arn, char out[21])
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint8_t d[CL_SHA256_LEN];
    CL_GUARD(cl_sha256(arn, strlen(arn), d));
    (void)snprintf(out, 21, "%.4s", prefix);
    for (size_t i = 0; i < 16; i++) out[4 + i] = alnum[d[i] & 31];
    out[20] = '\0';
    return CL_OK;
}

/* A name as IAM's models give it: 1..max of [\w+=,.@-] (userNameType, roleNameType,
 * policyNameType). */
static CL_MUST_USE cl_status q_name(kms_query_call *q, const char *member, size_t min, size_t max, const char **out)
{
    const char *v = q_arg(q, member);
    if (v == NULL)
        Q_FAIL(q, 400, "ValidationError",
               "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
               member);
    size_t n = strlen(v);
    bool ok = n >= min && n <= max;
    for (size_t i = 0; ok && i < n; i++) {
        char c = v[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
             c == '=' || c == ',' || c == '.' || c == '@' || c == '-';
    }
    if (!ok)
        Q_FAIL(q, 400, "ValidationError",
               "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
               "%zu..%zu and satisfy regular expression pattern: [\\w+=,.@-]+",
               member, min, max);
    *out = v;
    return CL_OK;
}

static CL_MUST_USE cl_status q_required(kms_query_call *q, const char *member, const char **out)
{
    *out = q_arg(q, member);
    if (*out == NULL)
        Q_FAIL(q, 400, "ValidationError",
               "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null",
               member);
    return CL_OK;
}

/* A path: "/" or /.../ of printable ASCII (pathType), default "/". */
static CL_MUST_USE cl_status q_path(kms_query_call *q, const char **out)
{
    const char *v = q_arg(q, "Path");
    *out = v != NULL ? v : "/";
    size_t n = strlen(*out);
    bool ok = n >= 1 && n <= 512 && (*out)[0] == '/' && (*out)[n - 1] == '/';
    for (size_t i = 0; ok && i < n; i++) ok = (*out)[i] >= '!' && (*out)[i] <= '~';
    if (!ok)
        Q_FAIL(q, 400, "ValidationError",
               "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric "
               "characters and/or / characters.");
    return CL_OK;
}

/* May the caller perform action on resource? AccessDenied in AWS's words otherwise. */
static CL_MUST_USE cl_status q_authorize(kms_query_call *q, const char *action, const char *resource)
{
    kms_decision d;
    CL_GUARD(kms_authorize(q->kms, q->principal, action, resource, NULL, q->env, &d));
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    Q_FAIL(q, 403, "AccessDenied", "User: %s is not authorized to perform: %s on resource: %s because %s",
           q->principal->arn, action, resource,
           d == KMS_DECISION_EXPLICIT_DENY ? "of an explicit deny in an identity-based policy"
                                           : "no identity-based policy allows the action");
}

static CL_MUST_USE cl_status q_begin(kms_query_call *q, const char *action, bool result)
{
    const char *ns = q->service == KMS_SERVICE_STS ? KMS_STS_NS : KMS_IAM_NS;
    CL_GUARD(cl_buf_printf(q->xml, "<%sResponse xmlns=\"%s\">", action, ns));
    if (result) CL_GUARD(cl_buf_printf(q->xml, "<%sResult>", action));
    return CL_OK;
}

static CL_MUST_USE cl_status q_end(kms_query_call *q, const char *action, bool result)
{
    if (result) CL_GUARD(cl_buf_printf(q->xml, "</%sResult>", action));
    CL_GUARD(cl_buf_append_str(q->xml, "<ResponseMetadata>"));
    CL_GUARD(kms_xml_elem(q->xml, "RequestId", q->request_id));
    return cl_buf_printf(q->xml, "</ResponseMetadata></%sResponse>", action);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static CL_MUST_USE cl_status q_elem_time(kms_query_call *q, const char *name, int64_t t)
{
    char iso[32];
    kms_iso_time(t, iso);
    return kms_xml_elem(q->xml, name, iso);
}

/* A document stored as an entity (kind, name) into *out; NoSuchEntity with `missing` otherwise. */
static CL_MUST_USE cl_status q_load(kms_query_call *q, const char *kind, const char *name, json_t **out,
                                    const char *missing)
{
    cl_buf doc;
    cl_buf_init(&doc, (size_t)1 << 20);
    cl_status rc = q->kms->store->ops->iam_get(q->kms->store, kind, name, &doc);
    if (rc == CL_OK) {
        *out = json_loadb((const char *)doc.data, doc.len, 0, NULL);
        if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = CL_RAISE(CL_ERR_FORMAT, "the stored %s %s is not JSON", kind, name);
        }
    }
    cl_buf_free(&doc);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        Q_FAIL(q, 404, "NoSuchEntity", "%s", missing);
    }
    return rc;
}

static CL_MUST_USE cl_status q_store(kms_query_call *q, const char *kind, const char *name, json_t *doc,
                                     kms_iam_put_mode mode, const char *exists)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = q->kms->store->ops->iam_put(q->kms->store, kind, name, text, mode, q->now);
    free(text);
    if (rc == CL_ERR_EXISTS) {
        cl_error_clear();
        Q_FAIL(q, 409, "EntityAlreadyExists", "%s", exists);
    }
    return rc;
}

static CL_MUST_USE cl_status q_delete(kms_query_call *q, const char *kind, const char *name, const char *missing)
{
    cl_status rc = q->kms->store->ops->iam_delete(q->kms->store, kind, name);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        Q_FAIL(q, 404, "NoSuchEntity", "%s", missing);
    }
    return rc;
}

/* Collects up to the store rows of a listing as {name: doc} (the callback may not call the store). */
static CL_MUST_USE cl_status q_rows_row(void *arg, const char *name, const char *doc)
{
    json_t *rows = arg, *j = json_loads(doc, 0, NULL);
    CL_ENSURE(j != NULL, CL_ERR_FORMAT, "identity %s: its stored record is not JSON", name);
    json_t *pair = json_pack("{s:s, s:o}", "name", name, "doc", j);
    CL_ENSURE(pair != NULL && json_array_append_new(rows, pair) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

static CL_MUST_USE cl_status q_list(kms_query_call *q, const char *kind, const char *prefix, const char *after,
                                    size_t limit, json_t **rows, bool *more)
{
    *rows = json_array();
    CL_ENSURE(*rows != NULL, CL_ERR_NOMEM, "out of memory");
    return q->kms->store->ops->iam_list(q->kms->store, kind, prefix, after, limit, q_rows_row, *rows, more);
}

/* MaxItems (1..1000, default 100) and Marker (the last name of the previous page). */
static CL_MUST_USE cl_status q_page(kms_query_call *q, size_t *limit, const char **marker)
{
    const char *m = q_arg(q, "MaxItems");
    uint64_t v = 100;
    if (m != NULL && cl_parse_uint(m, 1, KMS_LIST_MAX, "MaxItems", &v) != CL_OK)
        Q_FAIL(q, 400, "ValidationError", "%s", cl_error_message());
    *limit = (size_t)v;
    *marker = q_arg(q, "Marker") != NULL ? q_arg(q, "Marker") : "";
    return CL_OK;
}

static CL_MUST_USE cl_status q_truncated(kms_query_call *q, bool more, const char *last)
{
    CL_GUARD(kms_xml_elem(q->xml, "IsTruncated", more ? "true" : "false"));
    if (more) CL_GUARD(kms_xml_elem(q->xml, "Marker", last));
    return CL_OK;
}

/* A policy document member: valid for its kind (MalformedPolicyDocument otherwise). */
static CL_MUST_USE cl_status q_policy_doc(kms_query_call *q, const char *member, kms_policy_kind kind, const char **out)
{
    CL_GUARD(q_required(q, member, out));
    kms_policy *p = NULL;
    if (kms_policy_parse_as(*out, strlen(*out), kind, &p) != CL_OK)
        Q_FAIL(q, 400, "MalformedPolicyDocument", "%s", cl_error_message());
    kms_policy_free(p);
    return CL_OK;
}

static void q_arn(const kms_query_call *q, const char *type, const char *path, const char *name, char *out, size_t cap)
{
    (void)snprintf(out, cap, "arn:aws:iam::%s:%s%s%s", q->principal->account, type, path, name);
}

/* --- STS ---------------------------------------------------------------------------- */

static CL_MUST_USE cl_status sts_get_caller_identity(kms_query_call *q)
{
    const kms_principal *p = q->principal;
    char id[KMS_ARN_MAX + 64];
    if (p->kind == KMS_PRINCIPAL_ROOT) {
        (void)snprintf(id, sizeof(id), "%s", p->account);
    } else if (p->kind == KMS_PRINCIPAL_ASSUMED_ROLE) {
        char rid[21];
        CL_GUARD(kms_entity_id("AROA", p->role_arn, rid));
        (void)snprintf(id, sizeof(id), "%s:%s", rid, p->session_name);
    } else {
        CL_GUARD(kms_entity_id("AIDA", p->arn, id));
    }
    /* GetCallerIdentity needs no permission ("No permissions are required to perform this
     * operation", STS API Reference). */
    (void)snprintf(q->resource, sizeof(q->resource), "%s", p->arn);
    CL_GUARD(q_begin(q, "GetCallerIdentity", true));
    CL_GUARD(kms_xml_elem(q->xml, "UserId", id));
    CL_GUARD(kms_xml_elem(q->xml, "Account", p->account));
    CL_GUARD(kms_xml_elem(q->xml, "Arn", p->arn));
    return q_end(q, "GetCallerIdentity", true);
}

/* The store name ACCOUNT/NAME of a role ARN arn:aws:iam::ACCOUNT:role/PATH/NAME. */
static bool kms_role_store_name(const char *arn, char *out, size_t cap)
{
    char entity[KMS_ENTITY_MAX + 1];
    if (!kms_identity_entity(arn, entity, sizeof(entity)) || strstr(entity, "/role/") == NULL) return false;
    int n = snprintf(out, cap, "%.*s/%s", KMS_ACCOUNT_LEN, entity, strrchr(entity, '/') + 1);
    return n > 0 && (size_t)n < cap;
}

static CL_MUST_USE cl_status sts_assume_role(kms_query_call *q)
{
    cl_status rc = CL_OK;
    const char *role_arn, *session;
    json_t *role = NULL;
    kms_principal s;
    memset(&s, 0, sizeof(s));
    cl_buf token;
    cl_buf_init_secret(&token, 8192);
    CL_GUARD_GOTO(q_required(q, "RoleArn", &role_arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", role_arn);
    /* roleSessionNameType: 2..64 of [\w+=,.@-]. */
    CL_GUARD_GOTO(q_name(q, "RoleSessionName", 2, KMS_SESSION_NAME_MAX, &session));
    if (q_arg(q, "Policy") != NULL || q_arg(q, "PolicyArns.member.1") != NULL)
        Q_FAIL_GOTO(q, 400, "ValidationError",
                    "Session policies (Policy, PolicyArns) are not supported by this server: the session has its "
                    "role's permissions; give the role a narrower policy instead");
    const char *ext = q_arg(q, "ExternalId");
    if (ext != NULL && (strlen(ext) < 2 || strlen(ext) > 1224))
        Q_FAIL_GOTO(q, 400, "ValidationError",
                    "1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must have "
                    "length between 2 and 1224");
    uint64_t duration = KMS_SESSION_DEFAULT;
    const char *ds = q_arg(q, "DurationSeconds");
    if (ds != NULL && cl_parse_uint(ds, KMS_SESSION_MIN, KMS_SESSION_MAX, "DurationSeconds", &duration) != CL_OK)
        Q_FAIL_GOTO(q, 400, "ValidationError",
                    "1 validation error detected: Value '%.32s' at 'durationSeconds' failed to satisfy constraint: "
                    "Member must have value between %d and %d",
                    ds, KMS_SESSION_MIN, KMS_SESSION_MAX);
    char name[KMS_ENTITY_MAX + 1];
    bool found = kms_role_store_name(role_arn, name, sizeof(name));
    if (found) {
        rc = q_load(q, KMS_IAM_ROLE, name, &role, "");
        if (rc == CL_ERR_USAGE && q->status == 404) {
            found = false;
            cl_error_clear();
            rc = CL_OK;
        }
        CL_GUARD_GOTO(rc);
        found = found && strcmp(jstr(role, "arn"), role_arn) == 0;
    }
    /* A role that does not exist is refused as one the caller may not assume: AWS does not
     * tell a caller which roles exist. */
    kms_decision trust_all = KMS_DECISION_IMPLICIT_DENY, trust_direct = KMS_DECISION_IMPLICIT_DENY, id;
    kms_policy_request r = {.action = "sts:AssumeRole",
                            .resource = role_arn,
                            .env = q->env,
                            .external_id = ext,
                            .role_session_name = session};
    CL_GUARD_GOTO(kms_identity_decide(q->kms, q->principal, &r, &id, NULL, 0));
    if (found) {
        const kms_policy *tp = NULL;
        const char *trust = jstr(role, "trust");
        CL_GUARD_CTX_GOTO(kms_policy_parse_cached_as(trust, strlen(trust), KMS_POLICY_TRUST, &tp),
                          "the trust policy of %s", role_arn);
        trust_all = kms_policy_evaluate(tp, &r);
        r.account_delegates = q->principal->kind != KMS_PRINCIPAL_ROOT;
        trust_direct = kms_policy_evaluate(tp, &r);
    }
    /* IAM User Guide, "Policy evaluation logic": the trust policy is the role's resource-based
     * policy. Within the account, a trust statement naming the caller allows; one naming the
     * account needs an identity policy allowing sts:AssumeRole too; across accounts both. */
    char role_acct[KMS_ACCOUNT_LEN + 1] = "";
    if (found) (void)snprintf(role_acct, sizeof(role_acct), "%.*s", KMS_ACCOUNT_LEN, name);
    bool same = strcmp(role_acct, q->principal->account) == 0;
    bool allowed = found && id != KMS_DECISION_EXPLICIT_DENY && trust_all != KMS_DECISION_EXPLICIT_DENY &&
                   ((same && (trust_direct == KMS_DECISION_ALLOW ||
                              (trust_all == KMS_DECISION_ALLOW && id == KMS_DECISION_ALLOW))) ||
                    (!same && trust_all == KMS_DECISION_ALLOW && id == KMS_DECISION_ALLOW));
    if (!allowed)
        Q_FAIL_GOTO(q, 403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s",
                    q->principal->arn, role_arn);
    json_int_t max = json_integer_value(json_object_get(role, "max"));
    if (max < KMS_SESSION_DEFAULT) max = KMS_SESSION_DEFAULT;
    if ((json_int_t)duration > max)
        Q_FAIL_GOTO(q, 400, "ValidationError",
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.");
    /* Role chaining: "limits your AWS CLI or AWS API role session to a maximum of one hour"
     * (IAM User Guide, "Role chaining"). */
    if (q->principal->kind == KMS_PRINCIPAL_ASSUMED_ROLE && duration > KMS_SESSION_DEFAULT)
        Q_FAIL_GOTO(q, 400, "ValidationError",
                    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
                    "chaining.");
    char akid[21], secret[41];
    CL_GUARD_GOTO(kms_identity_new_key("ASIA", akid, secret));
    s.kind = KMS_PRINCIPAL_ASSUMED_ROLE;
    (void)snprintf(s.access_key_id, sizeof(s.access_key_id), "%s", akid);
    (void)snprintf(s.secret, sizeof(s.secret), "%s", secret);
    cl_memzero(secret, sizeof(secret));
    (void)snprintf(s.account, sizeof(s.account), "%s", role_acct);
    (void)snprintf(s.role_arn, sizeof(s.role_arn), "%s", role_arn);
    (void)snprintf(s.session_name, sizeof(s.session_name), "%s", session);
    s.expires = q->now + (int64_t)duration;
    CL_GUARD_GOTO(kms_session_token_seal(q->kms, &s, &token));
    char rid[21];
    CL_GUARD_GOTO(kms_entity_id("AROA", role_arn, rid));
    const char *role_name = strrchr(role_arn, '/') + 1;
    CL_GUARD_GOTO(q_begin(q, "AssumeRole", true));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<Credentials>"));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "AccessKeyId", s.access_key_id));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "SecretAccessKey", s.secret));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "SessionToken", cl_buf_cstr(&token)));
    CL_GUARD_GOTO(q_elem_time(q, "Expiration", s.expires));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</Credentials><AssumedRoleUser>"));
    CL_GUARD_GOTO(cl_buf_printf(q->xml, "<AssumedRoleId>%s:", rid));
    CL_GUARD_GOTO(kms_xml_text(q->xml, session));
    CL_GUARD_GOTO(cl_buf_printf(q->xml, "</AssumedRoleId><Arn>arn:aws:sts::%s:assumed-role/", role_acct));
    CL_GUARD_GOTO(kms_xml_text(q->xml, role_name));
    CL_GUARD_GOTO(cl_buf_append_u8(q->xml, '/'));
    CL_GUARD_GOTO(kms_xml_text(q->xml, session));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</Arn></AssumedRoleUser>"));
    CL_GUARD_GOTO(q_end(q, "AssumeRole", true));
    CL_LOG_INFO("sts: %s assumed %s as session %s (key %s) until %lld", q->principal->arn, role_arn, session,
                s.access_key_id, (long long)s.expires);
out:
    json_decref(role);
    cl_memzero(&s, sizeof(s));
    cl_buf_free(&token);
    return rc;
}

/*
 * iam.h: an AWS service principal assuming a role in-process (the training-job supervisor as
 * sagemaker.amazonaws.com). Only the role's trust policy decides: a service has no identity
 * policies (IAM User Guide, "AWS service principals"; the caller that passed the role was
 * checked for iam:PassRole). No HTTP request reaches this: kms_policy_request.service_principal
 * is set here and nowhere else.
 */
cl_status kms_sts_assume_role_as_service(kms_ctx *ctx, const char *service, const char *role_arn, const char *session,
                                         int64_t duration, int64_t now, const kms_policy_env *env, kms_principal *out)
{
    cl_status rc = CL_OK;
    json_t *role = NULL;
    cl_buf doc;
    cl_buf_init(&doc, (size_t)1 << 20);
    char name[KMS_ENTITY_MAX + 1];
    memset(out, 0, sizeof(*out));
    CL_ENSURE_GOTO(duration >= KMS_SESSION_MIN && duration <= KMS_SESSION_MAX, CL_ERR_USAGE,
                   "a session of %lld s; STS gives %d..%d", (long long)duration, KMS_SESSION_MIN, KMS_SESSION_MAX);
    bool found = kms_role_store_name(role_arn, name, sizeof(name));
    if (found) {
        rc = ctx->store->ops->iam_get(ctx->store, KMS_IAM_ROLE, name, &doc);
        if (rc == CL_ERR_NOT_FOUND) {
            cl_error_clear();
            rc = CL_OK;
            found = false;
        }
        CL_GUARD_GOTO(rc);
    }
    if (found) {
        role = json_loadb((const char *)doc.data, doc.len, 0, NULL);
        CL_ENSURE_GOTO(json_is_object(role), CL_ERR_FORMAT, "the stored role %s is not JSON", name);
        found = strcmp(jstr(role, "arn"), role_arn) == 0;
    }
    kms_decision d = KMS_DECISION_IMPLICIT_DENY;
    if (found) {
        const kms_policy *tp = NULL;
        const char *trust = jstr(role, "trust");
        CL_GUARD_CTX_GOTO(kms_policy_parse_cached_as(trust, strlen(trust), KMS_POLICY_TRUST, &tp),
                          "the trust policy of %s", role_arn);
        kms_policy_request r = {.action = "sts:AssumeRole",
                                .resource = role_arn,
                                .env = env,
                                .service_principal = service,
                                .role_session_name = session};
        d = kms_policy_evaluate(tp, &r);
    }
    CL_ENSURE_GOTO(d == KMS_DECISION_ALLOW, CL_ERR_DENIED,
                   "Could not assume role %s. Please ensure that the role exists and allows principal '%s' to assume "
                   "the role.",
                   role_arn, service);
    char akid[21], secret[41];
    CL_GUARD_GOTO(kms_identity_new_key("ASIA", akid, secret));
    out->kind = KMS_PRINCIPAL_ASSUMED_ROLE;
    (void)snprintf(out->access_key_id, sizeof(out->access_key_id), "%s", akid);
    (void)snprintf(out->secret, sizeof(out->secret), "%s", secret);
    cl_memzero(secret, sizeof(secret));
    (void)snprintf(out->account, sizeof(out->account), "%.*s", KMS_ACCOUNT_LEN, name);
    (void)snprintf(out->role_arn, sizeof(out->role_arn), "%s", role_arn);
    (void)snprintf(out->session_name, sizeof(out->session_name), "%s", session);
    (void)snprintf(out->arn, sizeof(out->arn), "arn:aws:sts::%.*s:assumed-role/%s/%s", KMS_ACCOUNT_LEN, name,
                   strrchr(role_arn, '/') + 1, session);
    out->expires = now + duration;
    CL_LOG_INFO("sts: %s assumed %s as session %s (key %s) until %lld", service, role_arn, session, out->access_key_id,
                (long long)out->expires);
out:
    if (rc != CL_OK) cl_memzero(out, sizeof(*out));
    json_decref(role);
    cl_buf_free(&doc);
    return rc;
}

/* --- IAM users and access keys --------------------------------------------------------- */

static CL_MUST_USE cl_status q_user_xml(kms_query_call *q, const char *elem, json_t *u, const char *name)
{
    char id[21];
    CL_GUARD(kms_entity_id("AIDA", jstr(u, "arn"), id));
    CL_GUARD(cl_buf_printf(q->xml, "<%s>", elem));
    CL_GUARD(kms_xml_elem(q->xml, "Path", jstr(u, "path")[0] ? jstr(u, "path") : "/"));
    CL_GUARD(kms_xml_elem(q->xml, "UserName", name));
    CL_GUARD(kms_xml_elem(q->xml, "UserId", id));
    CL_GUARD(kms_xml_elem(q->xml, "Arn", jstr(u, "arn")));
    CL_GUARD(q_elem_time(q, "CreateDate", json_integer_value(json_object_get(u, "created"))));
    return cl_buf_printf(q->xml, "</%s>", elem);
}

static void q_user_key(const kms_query_call *q, const char *name, char *out, size_t cap)
{
    (void)snprintf(out, cap, "%s/%s", q->principal->account, name);
}

static CL_MUST_USE cl_status iam_create_user(kms_query_call *q)
{
    const char *name, *path;
    char arn[KMS_ARN_MAX + 1], key[KMS_ENTITY_MAX + 1];
    CL_GUARD(q_name(q, "UserName", 1, 64, &name));
    CL_GUARD(q_path(q, &path));
    q_arn(q, "user", path, name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, "iam:CreateUser", arn));
    q_user_key(q, name, key, sizeof(key));
    json_t *u = json_pack("{s:s, s:s, s:I}", "arn", arn, "path", path, "created", (json_int_t)q->now);
    CL_ENSURE(u != NULL, CL_ERR_NOMEM, "out of memory");
    char exists[160];
    (void)snprintf(exists, sizeof(exists), "User with name %s already exists.", name);
    cl_status rc = q_store(q, KMS_IAM_USER, key, u, KMS_IAM_CREATE, exists);
    if (rc == CL_OK) rc = q_begin(q, "CreateUser", true);
    if (rc == CL_OK) rc = q_user_xml(q, "User", u, name);
    if (rc == CL_OK) rc = q_end(q, "CreateUser", true);
    json_decref(u);
    return rc;
}

/* The user a member names, or the caller's own user when it is absent (as IAM's *AccessKey*
 * and GetUser do). */
static CL_MUST_USE cl_status q_user_or_self(kms_query_call *q, const char **name)
{
    *name = q_arg(q, "UserName");
    if (*name != NULL) return q_name(q, "UserName", 1, 64, name);
    const kms_principal *p = q->principal;
    if (p->kind != KMS_PRINCIPAL_USER || strstr(p->entity, "/user/") == NULL)
        Q_FAIL(q, 400, "ValidationError", "Must specify userName when calling with non-User credentials");
    *name = strrchr(p->entity, '/') + 1;
    return CL_OK;
}

static CL_MUST_USE cl_status q_missing_user(char *out, size_t cap, const char *name)
{
    (void)snprintf(out, cap, "The user with name %s cannot be found.", name);
    return CL_OK;
}

static CL_MUST_USE cl_status iam_get_user(kms_query_call *q)
{
    const char *name;
    char key[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1], missing[160];
    json_t *u = NULL;
    CL_GUARD(q_user_or_self(q, &name));
    q_arn(q, "user", "/", name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, "iam:GetUser", arn));
    q_user_key(q, name, key, sizeof(key));
    CL_GUARD(q_missing_user(missing, sizeof(missing), name));
    CL_GUARD(q_load(q, KMS_IAM_USER, key, &u, missing));
    cl_status rc = q_begin(q, "GetUser", true);
    if (rc == CL_OK) rc = q_user_xml(q, "User", u, name);
    if (rc == CL_OK) rc = q_end(q, "GetUser", true);
    json_decref(u);
    return rc;
}

/* Whether the store has any row of kind with the prefix. */
static CL_MUST_USE cl_status q_any(kms_query_call *q, const char *kind, const char *prefix, bool *any)
{
    json_t *rows = NULL;
    bool more;
    cl_status rc = q_list(q, kind, prefix, "", 1, &rows, &more);
    *any = json_array_size(rows) > 0;
    json_decref(rows);
    return rc;
}

/* The access keys of a user: every akey row whose entity is ACCOUNT/user/NAME (keys are
 * named by id, so this reads them all; a deployment has few). */
static CL_MUST_USE cl_status q_user_keys(kms_query_call *q, const char *name, json_t **keys)
{
    char entity[KMS_ENTITY_MAX + 1];
    (void)snprintf(entity, sizeof(entity), "%s/user/%s", q->principal->account, name);
    *keys = json_array();
    CL_ENSURE(*keys != NULL, CL_ERR_NOMEM, "out of memory");
    char after[130] = "";
    bool more = true;
    while (more) {
        json_t *rows = NULL;
        cl_status rc = q_list(q, KMS_IAM_AKEY, "", after, 256, &rows, &more);
        for (size_t i = 0; rc == CL_OK && i < json_array_size(rows); i++) {
            json_t *row = json_array_get(rows, i);
            (void)snprintf(after, sizeof(after), "%s", jstr(row, "name"));
            if (strcmp(jstr(json_object_get(row, "doc"), "entity"), entity) == 0)
                rc = json_array_append(*keys, row) == 0 ? CL_OK : CL_RAISE(CL_ERR_NOMEM, "out of memory");
        }
        json_decref(rows);
        CL_GUARD(rc);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status iam_delete_user(kms_query_call *q)
{
    const char *name;
    char key[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1], missing[160], prefix[KMS_ENTITY_MAX + 2];
    json_t *u = NULL, *keys = NULL;
    cl_status rc = CL_OK;
    CL_GUARD(q_name(q, "UserName", 1, 64, &name));
    q_arn(q, "user", "/", name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, "iam:DeleteUser", arn));
    q_user_key(q, name, key, sizeof(key));
    CL_GUARD(q_missing_user(missing, sizeof(missing), name));
    CL_GUARD_GOTO(q_load(q, KMS_IAM_USER, key, &u, missing));
    CL_GUARD_GOTO(q_user_keys(q, name, &keys));
    /* IAM API Reference, DeleteUser: "you must delete the items attached to the user
     * manually": DeleteConflict otherwise. */
    if (json_array_size(keys) > 0)
        Q_FAIL_GOTO(q, 409, "DeleteConflict", "Cannot delete entity, must delete access keys first.");
    bool any;
    (void)snprintf(prefix, sizeof(prefix), "%s/user/%s|", q->principal->account, name);
    CL_GUARD_GOTO(q_any(q, KMS_IAM_ATTACH, prefix, &any));
    if (any) Q_FAIL_GOTO(q, 409, "DeleteConflict", "Cannot delete entity, must detach all policies first.");
    CL_GUARD_GOTO(q_any(q, KMS_IAM_INLINE, prefix, &any));
    if (any) Q_FAIL_GOTO(q, 409, "DeleteConflict", "Cannot delete entity, must delete policies first.");
    CL_GUARD_GOTO(q_delete(q, KMS_IAM_USER, key, missing));
    CL_GUARD_GOTO(q_begin(q, "DeleteUser", false));
    CL_GUARD_GOTO(q_end(q, "DeleteUser", false));
out:
    json_decref(u);
    json_decref(keys);
    return rc;
}

static CL_MUST_USE cl_status iam_create_access_key(kms_query_call *q)
{
    const char *name;
    char key[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1], missing[160], entity[KMS_ENTITY_MAX + 1];
    char akid[21], secret[41] = "";
    json_t *u = NULL, *doc = NULL, *keys = NULL;
    cl_buf sealed;
    cl_buf_init(&sealed, 1024);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(q_user_or_self(q, &name));
    q_arn(q, "user", "/", name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD_GOTO(q_authorize(q, "iam:CreateAccessKey", arn));
    q_user_key(q, name, key, sizeof(key));
    CL_GUARD_GOTO(q_missing_user(missing, sizeof(missing), name));
    CL_GUARD_GOTO(q_load(q, KMS_IAM_USER, key, &u, missing));
    CL_GUARD_GOTO(q_user_keys(q, name, &keys));
    /* IAM quotas: "Access keys assigned to an IAM user: 2". */
    if (json_array_size(keys) >= 2)
        Q_FAIL_GOTO(q, 409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2");
    CL_GUARD_GOTO(kms_identity_new_key("AKIA", akid, secret));
    CL_GUARD_GOTO(kms_identity_seal_secret(q->kms, akid, secret, &sealed));
    (void)snprintf(entity, sizeof(entity), "%s/user/%s", q->principal->account, name);
    doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "arn", jstr(u, "arn"), "account", q->principal->account, "entity",
                    entity, "secret", cl_buf_cstr(&sealed), "status", "Active", "created", (json_int_t)q->now);
    CL_ENSURE_GOTO(doc != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(q_store(q, KMS_IAM_AKEY, akid, doc, KMS_IAM_CREATE, "the new access key id is taken; try again"));
    CL_GUARD_GOTO(q_begin(q, "CreateAccessKey", true));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<AccessKey>"));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "UserName", name));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "AccessKeyId", akid));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "Status", "Active"));
    CL_GUARD_GOTO(kms_xml_elem(q->xml, "SecretAccessKey", secret));
    CL_GUARD_GOTO(q_elem_time(q, "CreateDate", q->now));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</AccessKey>"));
    CL_GUARD_GOTO(q_end(q, "CreateAccessKey", true));
out:
    cl_memzero(secret, sizeof(secret));
    json_decref(u);
    json_decref(doc);
    json_decref(keys);
    cl_buf_free(&sealed);
    return rc;
}

static CL_MUST_USE cl_status iam_list_access_keys(kms_query_call *q)
{
    const char *name;
    char key[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1], missing[160];
    json_t *u = NULL, *keys = NULL;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(q_user_or_self(q, &name));
    q_arn(q, "user", "/", name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD_GOTO(q_authorize(q, "iam:ListAccessKeys", arn));
    q_user_key(q, name, key, sizeof(key));
    CL_GUARD_GOTO(q_missing_user(missing, sizeof(missing), name));
    CL_GUARD_GOTO(q_load(q, KMS_IAM_USER, key, &u, missing));
    CL_GUARD_GOTO(q_user_keys(q, name, &keys));
    CL_GUARD_GOTO(q_begin(q, "ListAccessKeys", true));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<AccessKeyMetadata>"));
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *row = json_array_get(keys, i), *d = json_object_get(row, "doc");
        CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<member>"));
        CL_GUARD_GOTO(kms_xml_elem(q->xml, "UserName", name));
        CL_GUARD_GOTO(kms_xml_elem(q->xml, "AccessKeyId", jstr(row, "name")));
        CL_GUARD_GOTO(kms_xml_elem(q->xml, "Status", jstr(d, "status")));
        CL_GUARD_GOTO(q_elem_time(q, "CreateDate", json_integer_value(json_object_get(d, "created"))));
        CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</member>"));
    }
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</AccessKeyMetadata>"));
    CL_GUARD_GOTO(q_truncated(q, false, ""));
    CL_GUARD_GOTO(q_end(q, "ListAccessKeys", true));
out:
    json_decref(u);
    json_decref(keys);
    return rc;
}

static CL_MUST_USE cl_status iam_delete_access_key(kms_query_call *q)
{
    const char *name, *akid;
    char arn[KMS_ARN_MAX + 1], entity[KMS_ENTITY_MAX + 1], missing[200];
    json_t *k = NULL;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(q_user_or_self(q, &name));
    CL_GUARD_GOTO(q_required(q, "AccessKeyId", &akid));
    q_arn(q, "user", "/", name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD_GOTO(q_authorize(q, "iam:DeleteAccessKey", arn));
    (void)snprintf(missing, sizeof(missing), "The Access Key with id %.32s cannot be found.", akid);
    CL_GUARD_GOTO(q_load(q, KMS_IAM_AKEY, akid, &k, missing));
    (void)snprintf(entity, sizeof(entity), "%s/user/%s", q->principal->account, name);
    if (strcmp(jstr(k, "entity"), entity) != 0) Q_FAIL_GOTO(q, 404, "NoSuchEntity", "%s", missing);
    CL_GUARD_GOTO(q_delete(q, KMS_IAM_AKEY, akid, missing));
    CL_GUARD_GOTO(q_begin(q, "DeleteAccessKey", false));
    CL_GUARD_GOTO(q_end(q, "DeleteAccessKey", false));
out:
    json_decref(k);
    return rc;
}

/* --- roles ----------------------------------------------------------------------------- */

static CL_MUST_USE cl_status q_role_xml(kms_query_call *q, const char *elem, json_t *r, const char *name)
{
    char id[21];
    CL_GUARD(kms_entity_id("AROA", jstr(r, "arn"), id));
    CL_GUARD(cl_buf_printf(q->xml, "<%s>", elem));
    CL_GUARD(kms_xml_elem(q->xml, "Path", jstr(r, "path")));
    CL_GUARD(kms_xml_elem(q->xml, "RoleName", name));
    CL_GUARD(kms_xml_elem(q->xml, "RoleId", id));
    CL_GUARD(kms_xml_elem(q->xml, "Arn", jstr(r, "arn")));
    CL_GUARD(q_elem_time(q, "CreateDate", json_integer_value(json_object_get(r, "created"))));
    CL_GUARD(cl_buf_append_str(q->xml, "<AssumeRolePolicyDocument>"));
    CL_GUARD(kms_url_encode(q->xml, jstr(r, "trust")));
    CL_GUARD(cl_buf_append_str(q->xml, "</AssumeRolePolicyDocument>"));
    if (jstr(r, "description")[0]) CL_GUARD(kms_xml_elem(q->xml, "Description", jstr(r, "description")));
    CL_GUARD(cl_buf_printf(q->xml, "<MaxSessionDuration>%lld</MaxSessionDuration>",
                           (long long)json_integer_value(json_object_get(r, "max"))));
    return cl_buf_printf(q->xml, "</%s>", elem);
}

static CL_MUST_USE cl_status q_role(kms_query_call *q, const char *action, const char **name, char *key, json_t **r)
{
    char arn[KMS_ARN_MAX + 1], missing[160];
    CL_GUARD(q_name(q, "RoleName", 1, 64, name));
    q_arn(q, "role", "/", *name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, action, arn));
    (void)snprintf(key, KMS_ENTITY_MAX + 1, "%s/%s", q->principal->account, *name);
    (void)snprintf(missing, sizeof(missing), "The role with name %s cannot be found.", *name);
    return q_load(q, KMS_IAM_ROLE, key, r, missing);
}

static CL_MUST_USE cl_status iam_create_role(kms_query_call *q)
{
    const char *name, *path, *trust;
    char arn[KMS_ARN_MAX + 1], key[KMS_ENTITY_MAX + 1], exists[160];
    uint64_t max = KMS_SESSION_DEFAULT;
    CL_GUARD(q_name(q, "RoleName", 1, 64, &name));
    CL_GUARD(q_path(q, &path));
    q_arn(q, "role", path, name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, "iam:CreateRole", arn));
    CL_GUARD(q_policy_doc(q, "AssumeRolePolicyDocument", KMS_POLICY_TRUST, &trust));
    const char *ms = q_arg(q, "MaxSessionDuration");
    if (ms != NULL && cl_parse_uint(ms, KMS_SESSION_DEFAULT, KMS_SESSION_MAX, "MaxSessionDuration", &max) != CL_OK)
        Q_FAIL(q, 400, "ValidationError",
               "1 validation error detected: Value '%.32s' at 'maxSessionDuration' failed to satisfy constraint: "
               "Member must have value between %d and %d",
               ms, KMS_SESSION_DEFAULT, KMS_SESSION_MAX);
    const char *desc = q_arg(q, "Description");
    if (desc != NULL && strlen(desc) > 1000)
        Q_FAIL(q, 400, "ValidationError", "The description of a role has at most 1000 characters.");
    (void)snprintf(key, sizeof(key), "%s/%s", q->principal->account, name);
    (void)snprintf(exists, sizeof(exists), "Role with name %s already exists.", name);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "arn", arn, "path", path, "trust", trust, "description",
                          desc != NULL ? desc : "", "max", (json_int_t)max, "created", (json_int_t)q->now);
    CL_ENSURE(r != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = q_store(q, KMS_IAM_ROLE, key, r, KMS_IAM_CREATE, exists);
    if (rc == CL_OK) rc = q_begin(q, "CreateRole", true);
    if (rc == CL_OK) rc = q_role_xml(q, "Role", r, name);
    if (rc == CL_OK) rc = q_end(q, "CreateRole", true);
    json_decref(r);
    return rc;
}

static CL_MUST_USE cl_status iam_get_role(kms_query_call *q)
{
    const char *name;
    char key[KMS_ENTITY_MAX + 1];
    json_t *r = NULL;
    CL_GUARD(q_role(q, "iam:GetRole", &name, key, &r));
    cl_status rc = q_begin(q, "GetRole", true);
    if (rc == CL_OK) rc = q_role_xml(q, "Role", r, name);
    if (rc == CL_OK) rc = q_end(q, "GetRole", true);
    json_decref(r);
    return rc;
}

/* A page of the caller's account's users or roles (ListUsers, ListRoles): kind's rows after the
 * marker, each as a member element made by its kind's xml function. */
typedef CL_MUST_USE cl_status (*q_entity_xml_fn)(kms_query_call *q, const char *elem, json_t *doc, const char *name);

static CL_MUST_USE cl_status q_list_entities(kms_query_call *q, const char *kind, const char *arn_kind,
                                             const char *action, const char *op, const char *list_elem,
                                             q_entity_xml_fn xml)
{
    size_t limit;
    const char *marker;
    char prefix[KMS_ACCOUNT_LEN + 2], after[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1];
    json_t *rows = NULL;
    bool more = false;
    cl_status rc = CL_OK;
    CL_GUARD(q_page(q, &limit, &marker));
    q_arn(q, arn_kind, "/", "", arn, sizeof(arn));
    CL_GUARD(q_authorize(q, action, arn));
    (void)snprintf(prefix, sizeof(prefix), "%s/", q->principal->account);
    (void)snprintf(after, sizeof(after), "%s%s", marker[0] ? prefix : "", marker);
    CL_GUARD_GOTO(q_list(q, kind, prefix, after, limit, &rows, &more));
    CL_GUARD_GOTO(q_begin(q, op, true));
    CL_GUARD_GOTO(cl_buf_printf(q->xml, "<%s>", list_elem));
    const char *last = "";
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        last = strchr(jstr(row, "name"), '/') + 1;
        CL_GUARD_GOTO(xml(q, "member", json_object_get(row, "doc"), last));
    }
    CL_GUARD_GOTO(cl_buf_printf(q->xml, "</%s>", list_elem));
    CL_GUARD_GOTO(q_truncated(q, more, last));
    CL_GUARD_GOTO(q_end(q, op, true));
out:
    json_decref(rows);
    return rc;
}

static CL_MUST_USE cl_status iam_list_users(kms_query_call *q)
{
    return q_list_entities(q, KMS_IAM_USER, "user", "iam:ListUsers", "ListUsers", "Users", q_user_xml);
}

static CL_MUST_USE cl_status iam_list_roles(kms_query_call *q)
{
    return q_list_entities(q, KMS_IAM_ROLE, "role", "iam:ListRoles", "ListRoles", "Roles", q_role_xml);
}

static CL_MUST_USE cl_status iam_delete_role(kms_query_call *q)
{
    const char *name;
    char key[KMS_ENTITY_MAX + 1], prefix[KMS_ENTITY_MAX + 2], missing[160];
    json_t *r = NULL;
    cl_status rc = CL_OK;
    bool any;
    CL_GUARD_GOTO(q_role(q, "iam:DeleteRole", &name, key, &r));
    (void)snprintf(prefix, sizeof(prefix), "%s/role/%s|", q->principal->account, name);
    CL_GUARD_GOTO(q_any(q, KMS_IAM_ATTACH, prefix, &any));
    if (any) Q_FAIL_GOTO(q, 409, "DeleteConflict", "Cannot delete entity, must detach all policies first.");
    CL_GUARD_GOTO(q_any(q, KMS_IAM_INLINE, prefix, &any));
    if (any) Q_FAIL_GOTO(q, 409, "DeleteConflict", "Cannot delete entity, must delete policies first.");
    (void)snprintf(missing, sizeof(missing), "The role with name %s cannot be found.", name);
    CL_GUARD_GOTO(q_delete(q, KMS_IAM_ROLE, key, missing));
    CL_GUARD_GOTO(q_begin(q, "DeleteRole", false));
    CL_GUARD_GOTO(q_end(q, "DeleteRole", false));
out:
    json_decref(r);
    return rc;
}

static CL_MUST_USE cl_status iam_update_assume_role_policy(kms_query_call *q)
{
    const char *name, *trust;
    char key[KMS_ENTITY_MAX + 1];
    json_t *r = NULL;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(q_role(q, "iam:UpdateAssumeRolePolicy", &name, key, &r));
    CL_GUARD_GOTO(q_policy_doc(q, "PolicyDocument", KMS_POLICY_TRUST, &trust));
    CL_ENSURE_GOTO(json_object_set_new(r, "trust", json_string(trust)) == 0, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(q_store(q, KMS_IAM_ROLE, key, r, KMS_IAM_REPLACE, ""));
    CL_GUARD_GOTO(q_begin(q, "UpdateAssumeRolePolicy", false));
    CL_GUARD_GOTO(q_end(q, "UpdateAssumeRolePolicy", false));
out:
    json_decref(r);
    return rc;
}

/* --- inline policies (roles and users) ---------------------------------------------------- */

/* The entity (ACCOUNT/role/NAME or ACCOUNT/user/NAME) of RoleName or UserName, checked to exist. */
static CL_MUST_USE cl_status q_holder(kms_query_call *q, bool role, const char *action, const char **name, char *entity)
{
    char key[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1], missing[160];
    json_t *doc = NULL;
    CL_GUARD(q_name(q, role ? "RoleName" : "UserName", 1, 64, name));
    q_arn(q, role ? "role" : "user", "/", *name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, action, arn));
    (void)snprintf(key, sizeof(key), "%s/%s", q->principal->account, *name);
    (void)snprintf(missing, sizeof(missing), "The %s with name %s cannot be found.", role ? "role" : "user", *name);
    CL_GUARD(q_load(q, role ? KMS_IAM_ROLE : KMS_IAM_USER, key, &doc, missing));
    json_decref(doc);
    (void)snprintf(entity, KMS_ENTITY_MAX + 1, "%s/%s/%s", q->principal->account, role ? "role" : "user", *name);
    return CL_OK;
}

static CL_MUST_USE cl_status q_put_inline(kms_query_call *q, bool role)
{
    const char *name, *pname, *text;
    char entity[KMS_ENTITY_MAX + 1], key[KMS_ENTITY_MAX + 160];
    const char *action = role ? "PutRolePolicy" : "PutUserPolicy";
    CL_GUARD(q_holder(q, role, role ? "iam:PutRolePolicy" : "iam:PutUserPolicy", &name, entity));
    CL_GUARD(q_name(q, "PolicyName", 1, 128, &pname));
    CL_GUARD(q_policy_doc(q, "PolicyDocument", KMS_POLICY_IDENTITY, &text));
    (void)snprintf(key, sizeof(key), "%s|%s", entity, pname);
    json_t *d = json_pack("{s:s}", "document", text);
    CL_ENSURE(d != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = q_store(q, KMS_IAM_INLINE, key, d, KMS_IAM_UPSERT, "");
    json_decref(d);
    CL_GUARD(rc);
    CL_GUARD(q_begin(q, action, false));
    return q_end(q, action, false);
}

static CL_MUST_USE cl_status iam_put_role_policy(kms_query_call *q) { return q_put_inline(q, true); }
static CL_MUST_USE cl_status iam_put_user_policy(kms_query_call *q) { return q_put_inline(q, false); }

static CL_MUST_USE cl_status q_get_inline(kms_query_call *q, bool role)
{
    const char *name, *pname;
    char entity[KMS_ENTITY_MAX + 1], key[KMS_ENTITY_MAX + 160], missing[300];
    const char *action = role ? "GetRolePolicy" : "GetUserPolicy";
    json_t *d = NULL;
    CL_GUARD(q_holder(q, role, role ? "iam:GetRolePolicy" : "iam:GetUserPolicy", &name, entity));
    CL_GUARD(q_name(q, "PolicyName", 1, 128, &pname));
    (void)snprintf(key, sizeof(key), "%s|%s", entity, pname);
    (void)snprintf(missing, sizeof(missing), "The %s policy with name %s cannot be found.", role ? "role" : "user",
                   pname);
    CL_GUARD(q_load(q, KMS_IAM_INLINE, key, &d, missing));
    cl_status rc = q_begin(q, action, true);
    if (rc == CL_OK) rc = kms_xml_elem(q->xml, role ? "RoleName" : "UserName", name);
    if (rc == CL_OK) rc = kms_xml_elem(q->xml, "PolicyName", pname);
    if (rc == CL_OK) rc = cl_buf_append_str(q->xml, "<PolicyDocument>");
    if (rc == CL_OK) rc = kms_url_encode(q->xml, jstr(d, "document"));
    if (rc == CL_OK) rc = cl_buf_append_str(q->xml, "</PolicyDocument>");
    if (rc == CL_OK) rc = q_end(q, action, true);
    json_decref(d);
    return rc;
}

static CL_MUST_USE cl_status iam_get_role_policy(kms_query_call *q) { return q_get_inline(q, true); }
static CL_MUST_USE cl_status iam_get_user_policy(kms_query_call *q) { return q_get_inline(q, false); }

static CL_MUST_USE cl_status q_list_inline(kms_query_call *q, bool role)
{
    const char *name;
    char entity[KMS_ENTITY_MAX + 1], prefix[KMS_ENTITY_MAX + 2];
    const char *action = role ? "ListRolePolicies" : "ListUserPolicies";
    json_t *rows = NULL;
    bool more;
    cl_status rc = CL_OK;
    CL_GUARD(q_holder(q, role, role ? "iam:ListRolePolicies" : "iam:ListUserPolicies", &name, entity));
    (void)snprintf(prefix, sizeof(prefix), "%s|", entity);
    CL_GUARD_GOTO(q_list(q, KMS_IAM_INLINE, prefix, "", KMS_LIST_MAX, &rows, &more));
    CL_GUARD_GOTO(q_begin(q, action, true));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<PolicyNames>"));
    for (size_t i = 0; i < json_array_size(rows); i++)
        CL_GUARD_GOTO(kms_xml_elem(q->xml, "member", strchr(jstr(json_array_get(rows, i), "name"), '|') + 1));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</PolicyNames>"));
    CL_GUARD_GOTO(q_truncated(q, false, ""));
    CL_GUARD_GOTO(q_end(q, action, true));
out:
    json_decref(rows);
    return rc;
}

static CL_MUST_USE cl_status iam_list_role_policies(kms_query_call *q) { return q_list_inline(q, true); }
static CL_MUST_USE cl_status iam_list_user_policies(kms_query_call *q) { return q_list_inline(q, false); }

static CL_MUST_USE cl_status q_delete_inline(kms_query_call *q, bool role)
{
    const char *name, *pname;
    char entity[KMS_ENTITY_MAX + 1], key[KMS_ENTITY_MAX + 160], missing[300];
    const char *action = role ? "DeleteRolePolicy" : "DeleteUserPolicy";
    CL_GUARD(q_holder(q, role, role ? "iam:DeleteRolePolicy" : "iam:DeleteUserPolicy", &name, entity));
    CL_GUARD(q_name(q, "PolicyName", 1, 128, &pname));
    (void)snprintf(key, sizeof(key), "%s|%s", entity, pname);
    (void)snprintf(missing, sizeof(missing), "The %s policy with name %s cannot be found.", role ? "role" : "user",
                   pname);
    CL_GUARD(q_delete(q, KMS_IAM_INLINE, key, missing));
    CL_GUARD(q_begin(q, action, false));
    return q_end(q, action, false);
}

static CL_MUST_USE cl_status iam_delete_role_policy(kms_query_call *q) { return q_delete_inline(q, true); }
static CL_MUST_USE cl_status iam_delete_user_policy(kms_query_call *q) { return q_delete_inline(q, false); }

/* --- managed policies ------------------------------------------------------------------------ */

/* A policy ARN's store name (ACCOUNT/NAME) for a customer managed policy of the caller's
 * account; false for an AWS managed policy or another account's. */
static bool q_policy_name(const kms_query_call *q, const char *arn, char *out, size_t cap)
{
    char prefix[64];
    (void)snprintf(prefix, sizeof(prefix), "arn:aws:iam::%s:policy/", q->principal->account);
    if (strncmp(arn, prefix, strlen(prefix)) != 0) return false;
    const char *name = strrchr(arn, '/') + 1;
    int n = snprintf(out, cap, "%s/%s", q->principal->account, name);
    return name[0] != '\0' && n > 0 && (size_t)n < cap;
}

/* How many entities of the caller's account have arn attached. */
static CL_MUST_USE cl_status q_attachments(kms_query_call *q, const char *arn, size_t *count)
{
    char prefix[KMS_ACCOUNT_LEN + 2], after[KMS_ENTITY_MAX + KMS_ARN_MAX + 2] = "";
    (void)snprintf(prefix, sizeof(prefix), "%s/", q->principal->account);
    *count = 0;
    bool more = true;
    while (more) {
        json_t *rows = NULL;
        CL_GUARD(q_list(q, KMS_IAM_ATTACH, prefix, after, 256, &rows, &more));
        for (size_t i = 0; i < json_array_size(rows); i++) {
            const char *name = jstr(json_array_get(rows, i), "name");
            (void)snprintf(after, sizeof(after), "%s", name);
            const char *bar = strchr(name, '|');
            if (bar != NULL && strcmp(bar + 1, arn) == 0) (*count)++;
        }
        json_decref(rows);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status q_policy_xml(kms_query_call *q, const char *elem, const char *arn, json_t *p)
{
    char id[21];
    size_t count = 0;
    CL_GUARD(kms_entity_id("ANPA", arn, id));
    CL_GUARD(q_attachments(q, arn, &count));
    CL_GUARD(cl_buf_printf(q->xml, "<%s>", elem));
    CL_GUARD(kms_xml_elem(q->xml, "PolicyName", strrchr(arn, '/') + 1));
    CL_GUARD(kms_xml_elem(q->xml, "PolicyId", id));
    CL_GUARD(kms_xml_elem(q->xml, "Arn", arn));
    CL_GUARD(kms_xml_elem(q->xml, "Path", p != NULL ? jstr(p, "path") : "/"));
    CL_GUARD(kms_xml_elem(q->xml, "DefaultVersionId", "v1"));
    CL_GUARD(cl_buf_printf(q->xml, "<AttachmentCount>%zu</AttachmentCount>", count));
    CL_GUARD(cl_buf_append_str(q->xml, "<IsAttachable>true</IsAttachable>"));
    if (p != NULL && jstr(p, "description")[0]) CL_GUARD(kms_xml_elem(q->xml, "Description", jstr(p, "description")));
    int64_t created = p != NULL ? json_integer_value(json_object_get(p, "created")) : 0;
    CL_GUARD(q_elem_time(q, "CreateDate", created));
    CL_GUARD(q_elem_time(q, "UpdateDate", created));
    return cl_buf_printf(q->xml, "</%s>", elem);
}

static CL_MUST_USE cl_status iam_create_policy(kms_query_call *q)
{
    const char *name, *path, *text;
    char arn[KMS_ARN_MAX + 1], key[KMS_ENTITY_MAX + 1], exists[300];
    CL_GUARD(q_name(q, "PolicyName", 1, 128, &name));
    CL_GUARD(q_path(q, &path));
    q_arn(q, "policy", path, name, arn, sizeof(arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", arn);
    CL_GUARD(q_authorize(q, "iam:CreatePolicy", arn));
    CL_GUARD(q_policy_doc(q, "PolicyDocument", KMS_POLICY_IDENTITY, &text));
    const char *desc = q_arg(q, "Description");
    (void)snprintf(key, sizeof(key), "%s/%s", q->principal->account, name);
    (void)snprintf(exists, sizeof(exists), "A policy called %s already exists. Duplicate names are not allowed.", name);
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:I}", "arn", arn, "path", path, "document", text, "description",
                          desc != NULL ? desc : "", "created", (json_int_t)q->now);
    CL_ENSURE(p != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = q_store(q, KMS_IAM_POLICY, key, p, KMS_IAM_CREATE, exists);
    if (rc == CL_OK) rc = q_begin(q, "CreatePolicy", true);
    if (rc == CL_OK) rc = q_policy_xml(q, "Policy", arn, p);
    if (rc == CL_OK) rc = q_end(q, "CreatePolicy", true);
    json_decref(p);
    return rc;
}

/* PolicyArn: a customer managed policy of the account (*doc set) or an AWS managed one this
 * server knows (*doc NULL, *text its document). */
static CL_MUST_USE cl_status q_managed(kms_query_call *q, const char *action, const char **arn, json_t **doc,
                                       const char **text)
{
    char name[KMS_ENTITY_MAX + 1], missing[KMS_ARN_MAX + 64];
    *doc = NULL;
    CL_GUARD(q_required(q, "PolicyArn", arn));
    (void)snprintf(q->resource, sizeof(q->resource), "%s", *arn);
    if (action != NULL) CL_GUARD(q_authorize(q, action, *arn));
    (void)snprintf(missing, sizeof(missing), "Policy %s does not exist or is not attachable.", *arn);
    *text = kms_managed_policy(*arn);
    if (*text != NULL) return CL_OK;
    if (!q_policy_name(q, *arn, name, sizeof(name))) Q_FAIL(q, 404, "NoSuchEntity", "%s", missing);
    CL_GUARD(q_load(q, KMS_IAM_POLICY, name, doc, missing));
    if (strcmp(jstr(*doc, "arn"), *arn) != 0) {
        json_decref(*doc);
        *doc = NULL;
        Q_FAIL(q, 404, "NoSuchEntity", "%s", missing);
    }
    *text = jstr(*doc, "document");
    return CL_OK;
}

static CL_MUST_USE cl_status iam_get_policy(kms_query_call *q)
{
    const char *arn, *text;
    json_t *doc = NULL;
    CL_GUARD(q_managed(q, "iam:GetPolicy", &arn, &doc, &text));
    cl_status rc = q_begin(q, "GetPolicy", true);
    if (rc == CL_OK) rc = q_policy_xml(q, "Policy", arn, doc);
    if (rc == CL_OK) rc = q_end(q, "GetPolicy", true);
    json_decref(doc);
    return rc;
}

static CL_MUST_USE cl_status iam_get_policy_version(kms_query_call *q)
{
    const char *arn, *text, *version;
    json_t *doc = NULL;
    CL_GUARD(q_managed(q, "iam:GetPolicyVersion", &arn, &doc, &text));
    cl_status rc = q_required(q, "VersionId", &version);
    /* One version per policy here: v1, the default (docs/iam.md). */
    if (rc == CL_OK && strcmp(version, "v1") != 0) {
        q->status = 404;
        q->code = "NoSuchEntity";
        rc = CL_RAISE(CL_ERR_USAGE, "Policy %s version %.16s does not exist or is not attachable.", arn, version);
    }
    if (rc == CL_OK) rc = q_begin(q, "GetPolicyVersion", true);
    if (rc == CL_OK) rc = cl_buf_append_str(q->xml, "<PolicyVersion><Document>");
    if (rc == CL_OK) rc = kms_url_encode(q->xml, text);
    if (rc == CL_OK)
        rc = cl_buf_append_str(q->xml, "</Document><VersionId>v1</VersionId>"
                                       "<IsDefaultVersion>true</IsDefaultVersion>");
    if (rc == CL_OK)
        rc = q_elem_time(q, "CreateDate", doc != NULL ? json_integer_value(json_object_get(doc, "created")) : 0);
    if (rc == CL_OK) rc = cl_buf_append_str(q->xml, "</PolicyVersion>");
    if (rc == CL_OK) rc = q_end(q, "GetPolicyVersion", true);
    json_decref(doc);
    return rc;
}

static CL_MUST_USE cl_status iam_list_policies(kms_query_call *q)
{
    size_t limit;
    const char *marker;
    char prefix[KMS_ACCOUNT_LEN + 2], after[KMS_ENTITY_MAX + 1], arn[KMS_ARN_MAX + 1];
    json_t *rows = NULL;
    bool more = false;
    cl_status rc = CL_OK;
    CL_GUARD(q_page(q, &limit, &marker));
    q_arn(q, "policy", "/", "", arn, sizeof(arn));
    CL_GUARD(q_authorize(q, "iam:ListPolicies", arn));
    const char *scope = q_arg(q, "Scope") != NULL ? q_arg(q, "Scope") : "All";
    (void)snprintf(prefix, sizeof(prefix), "%s/", q->principal->account);
    (void)snprintf(after, sizeof(after), "%s%s", marker[0] ? prefix : "", marker);
    CL_GUARD_GOTO(q_begin(q, "ListPolicies", true));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<Policies>"));
    if (strcmp(scope, "AWS") == 0 || (strcmp(scope, "All") == 0 && marker[0] == '\0')) {
        static const char *const aws[] = {KMS_ADMIN_POLICY_ARN, "arn:aws:iam::aws:policy/AmazonS3FullAccess",
                                          "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
                                          "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"};
        for (size_t i = 0; i < sizeof(aws) / sizeof(aws[0]); i++)
            CL_GUARD_GOTO(q_policy_xml(q, "member", aws[i], NULL));
    }
    const char *last = "";
    if (strcmp(scope, "AWS") != 0) {
        CL_GUARD_GOTO(q_list(q, KMS_IAM_POLICY, prefix, after, limit, &rows, &more));
        for (size_t i = 0; i < json_array_size(rows); i++) {
            json_t *row = json_array_get(rows, i), *d = json_object_get(row, "doc");
            last = strchr(jstr(row, "name"), '/') + 1;
            CL_GUARD_GOTO(q_policy_xml(q, "member", jstr(d, "arn"), d));
        }
    }
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</Policies>"));
    CL_GUARD_GOTO(q_truncated(q, more, last));
    CL_GUARD_GOTO(q_end(q, "ListPolicies", true));
out:
    json_decref(rows);
    return rc;
}

static CL_MUST_USE cl_status iam_delete_policy(kms_query_call *q)
{
    const char *arn, *text;
    char name[KMS_ENTITY_MAX + 1];
    json_t *doc = NULL;
    size_t count = 0;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(q_managed(q, "iam:DeletePolicy", &arn, &doc, &text));
    if (doc == NULL) Q_FAIL_GOTO(q, 400, "InvalidInput", "%s is an AWS managed policy: it cannot be deleted.", arn);
    CL_GUARD_GOTO(q_attachments(q, arn, &count));
    if (count > 0) Q_FAIL_GOTO(q, 409, "DeleteConflict", "Cannot delete a policy attached to entities.");
    if (!q_policy_name(q, arn, name, sizeof(name))) Q_FAIL_GOTO(q, 404, "NoSuchEntity", "no policy %s", arn);
    CL_GUARD_GOTO(q_delete(q, KMS_IAM_POLICY, name, "the policy was deleted meanwhile"));
    CL_GUARD_GOTO(q_begin(q, "DeletePolicy", false));
    CL_GUARD_GOTO(q_end(q, "DeletePolicy", false));
out:
    json_decref(doc);
    return rc;
}

/* --- attachments -------------------------------------------------------------------------- */

static CL_MUST_USE cl_status q_attach(kms_query_call *q, bool role, bool attach)
{
    const char *name, *arn, *text;
    char entity[KMS_ENTITY_MAX + 1], key[KMS_ENTITY_MAX + KMS_ARN_MAX + 2], missing[KMS_ARN_MAX + 64];
    json_t *doc = NULL;
    const char *action =
        role ? (attach ? "AttachRolePolicy" : "DetachRolePolicy") : (attach ? "AttachUserPolicy" : "DetachUserPolicy");
    char iam_action[64];
    (void)snprintf(iam_action, sizeof(iam_action), "iam:%s", action);
    CL_GUARD(q_holder(q, role, iam_action, &name, entity));
    char holder_arn[KMS_ARN_MAX + 1];
    (void)snprintf(holder_arn, sizeof(holder_arn), "%s", q->resource);
    cl_status rc = CL_OK;
    if (attach) {
        CL_GUARD(q_managed(q, NULL, &arn, &doc, &text));
        json_decref(doc);
    } else {
        CL_GUARD(q_required(q, "PolicyArn", &arn));
    }
    (void)snprintf(q->resource, sizeof(q->resource), "%s", holder_arn);
    (void)snprintf(key, sizeof(key), "%s|%s", entity, arn);
    if (attach) {
        json_t *d = json_pack("{s:s}", "arn", arn);
        CL_ENSURE(d != NULL, CL_ERR_NOMEM, "out of memory");
        rc = q_store(q, KMS_IAM_ATTACH, key, d, KMS_IAM_UPSERT, "");
        json_decref(d);
    } else {
        (void)snprintf(missing, sizeof(missing), "Policy %s was not found.", arn);
        rc = q_delete(q, KMS_IAM_ATTACH, key, missing);
    }
    CL_GUARD(rc);
    CL_GUARD(q_begin(q, action, false));
    return q_end(q, action, false);
}

static CL_MUST_USE cl_status iam_attach_role_policy(kms_query_call *q) { return q_attach(q, true, true); }
static CL_MUST_USE cl_status iam_detach_role_policy(kms_query_call *q) { return q_attach(q, true, false); }
static CL_MUST_USE cl_status iam_attach_user_policy(kms_query_call *q) { return q_attach(q, false, true); }
static CL_MUST_USE cl_status iam_detach_user_policy(kms_query_call *q) { return q_attach(q, false, false); }

static CL_MUST_USE cl_status q_list_attached(kms_query_call *q, bool role)
{
    const char *name;
    char entity[KMS_ENTITY_MAX + 1], prefix[KMS_ENTITY_MAX + 2];
    const char *action = role ? "ListAttachedRolePolicies" : "ListAttachedUserPolicies";
    char iam_action[64];
    (void)snprintf(iam_action, sizeof(iam_action), "iam:%s", action);
    json_t *rows = NULL;
    bool more;
    cl_status rc = CL_OK;
    CL_GUARD(q_holder(q, role, iam_action, &name, entity));
    (void)snprintf(prefix, sizeof(prefix), "%s|", entity);
    CL_GUARD_GOTO(q_list(q, KMS_IAM_ATTACH, prefix, "", KMS_LIST_MAX, &rows, &more));
    CL_GUARD_GOTO(q_begin(q, action, true));
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<AttachedPolicies>"));
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const char *arn = strchr(jstr(json_array_get(rows, i), "name"), '|') + 1;
        CL_GUARD_GOTO(cl_buf_append_str(q->xml, "<member>"));
        CL_GUARD_GOTO(kms_xml_elem(q->xml, "PolicyName", strrchr(arn, '/') + 1));
        CL_GUARD_GOTO(kms_xml_elem(q->xml, "PolicyArn", arn));
        CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</member>"));
    }
    CL_GUARD_GOTO(cl_buf_append_str(q->xml, "</AttachedPolicies>"));
    CL_GUARD_GOTO(q_truncated(q, false, ""));
    CL_GUARD_GOTO(q_end(q, action, true));
out:
    json_decref(rows);
    return rc;
}

static CL_MUST_USE cl_status iam_list_attached_role_policies(kms_query_call *q) { return q_list_attached(q, true); }
static CL_MUST_USE cl_status iam_list_attached_user_policies(kms_query_call *q) { return q_list_attached(q, false); }

/* --- the table ------------------------------------------------------------------------------ */

static const struct {
    const char *action;
    kms_query_fn fn;
    kms_service service;
    bool changes;
} kms_query_ops[] = {
    {"GetCallerIdentity", sts_get_caller_identity, KMS_SERVICE_STS, false},
    {"AssumeRole", sts_assume_role, KMS_SERVICE_STS, true},
    {"CreateUser", iam_create_user, KMS_SERVICE_IAM, true},
    {"GetUser", iam_get_user, KMS_SERVICE_IAM, false},
    {"ListUsers", iam_list_users, KMS_SERVICE_IAM, false},
    {"DeleteUser", iam_delete_user, KMS_SERVICE_IAM, true},
    {"CreateAccessKey", iam_create_access_key, KMS_SERVICE_IAM, true},
    {"ListAccessKeys", iam_list_access_keys, KMS_SERVICE_IAM, false},
    {"DeleteAccessKey", iam_delete_access_key, KMS_SERVICE_IAM, true},
    {"CreateRole", iam_create_role, KMS_SERVICE_IAM, true},
    {"GetRole", iam_get_role, KMS_SERVICE_IAM, false},
    {"ListRoles", iam_list_roles, KMS_SERVICE_IAM, false},
    {"DeleteRole", iam_delete_role, KMS_SERVICE_IAM, true},
    {"UpdateAssumeRolePolicy", iam_update_assume_role_policy, KMS_SERVICE_IAM, true},
    {"PutRolePolicy", iam_put_role_policy, KMS_SERVICE_IAM, true},
    {"GetRolePolicy", iam_get_role_policy, KMS_SERVICE_IAM, false},
    {"ListRolePolicies", iam_list_role_policies, KMS_SERVICE_IAM, false},
    {"DeleteRolePolicy", iam_delete_role_policy, KMS_SERVICE_IAM, true},
    {"PutUserPolicy", iam_put_user_policy, KMS_SERVICE_IAM, true},
    {"GetUserPolicy", iam_get_user_policy, KMS_SERVICE_IAM, false},
    {"ListUserPolicies", iam_list_user_policies, KMS_SERVICE_IAM, false},
    {"DeleteUserPolicy", iam_delete_user_policy, KMS_SERVICE_IAM, true},
    {"CreatePolicy", iam_create_policy, KMS_SERVICE_IAM, true},
    {"GetPolicy", iam_get_policy, KMS_SERVICE_IAM, false},
    {"GetPolicyVersion", iam_get_policy_version, KMS_SERVICE_IAM, false},
    {"ListPolicies", iam_list_policies, KMS_SERVICE_IAM, false},
    {"DeletePolicy", iam_delete_policy, KMS_SERVICE_IAM, true},
    {"AttachRolePolicy", iam_attach_role_policy, KMS_SERVICE_IAM, true},
    {"DetachRolePolicy", iam_detach_role_policy, KMS_SERVICE_IAM, true},
    {"ListAttachedRolePolicies", iam_list_attached_role_policies, KMS_SERVICE_IAM, false},
    {"AttachUserPolicy", iam_attach_user_policy, KMS_SERVICE_IAM, true},
    {"DetachUserPolicy", iam_detach_user_policy, KMS_SERVICE_IAM, true},
    {"ListAttachedUserPolicies", iam_list_attached_user_policies, KMS_SERVICE_IAM, false},
};

bool kms_query_changes_state(kms_service service, const char *action)
{
    for (size_t i = 0; i < sizeof(kms_query_ops) / sizeof(kms_query_ops[0]); i++)
        if (kms_query_ops[i].service == service && strcmp(kms_query_ops[i].action, action) == 0)
            return kms_query_ops[i].changes;
    return false;
}

void kms_query_handle(kms_query_call *q)
{
    const char *action = q_arg(q, "Action");
    kms_query_fn fn = NULL;
    for (size_t i = 0; action != NULL && i < sizeof(kms_query_ops) / sizeof(kms_query_ops[0]); i++)
        if (kms_query_ops[i].service == q->service && strcmp(kms_query_ops[i].action, action) == 0)
            fn = kms_query_ops[i].fn;
    cl_status rc;
    q->status = 200;
    q->code = NULL;
    if (action == NULL) {
        q->status = 400;
        q->code = "MissingAction";
        rc = CL_RAISE(CL_ERR_USAGE, "Missing Action: the form has no Action member");
    } else if (fn == NULL) {
        q->status = 400;
        q->code = "InvalidAction";
        rc = CL_RAISE(CL_ERR_USAGE,
                      "Could not find operation %.64s for version %s (docs/iam.md lists what this "
                      "server answers)",
                      action, q->service == KMS_SERVICE_STS ? "2011-06-15" : "2010-05-08");
    } else {
        rc = fn(q);
    }
    if (rc == CL_OK) return;
    if (q->code == NULL) {
        /* A failure the action did not name: the store's or an internal one. */
        q->status = 500;
        q->code = q->service == KMS_SERVICE_IAM ? "ServiceFailure" : "InternalFailure";
        CL_LOG_ERROR("%s %s: %s", action != NULL ? action : "-", q->request_id, cl_error_message());
    }
    kms_query_error(q->xml, q->status >= 500 ? "Receiver" : "Sender", q->code, cl_error_message(), q->request_id);
}
