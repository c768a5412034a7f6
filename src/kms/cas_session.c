/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's session documents: schema and validation. See cas_session.h and
 * docs/cas.md, "Sessions". */
#include "cas_session.h"

#include <stdlib.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/mem.h"

#define KMS_CAS_CA_DAYS_DEFAULT 3650
#define KMS_CAS_CA_DAYS_MAX 36500
#define KMS_CAS_LEAF_HOURS_DEFAULT 24
#define KMS_CAS_LEAF_HOURS_MAX 8760
#define KMS_CAS_RANDOM_DEFAULT 32

const char *kms_cas_kind_name(kms_cas_kind k)
{
    switch (k) {
    case KMS_CAS_X509_CA: return "x509-ca";
    case KMS_CAS_X509: return "x509";
    case KMS_CAS_RANDOM: return "random";
    case KMS_CAS_VALUE: return "value";
    }
    return "?";
}

/* Every byte of s is in set, and s has 1..max bytes. */
static bool kms_cas_chars_ok(const char *s, size_t max, const char *set)
{
    if (s == NULL) return false;
    cl_reader r = cl_reader_make(s, strnlen(s, max + 1));
    size_t n = cl_reader_remaining(&r);
    if (n == 0 || n > max) return false;
    cl_reader run;
    return cl_reader_span(&r, set, &run) == n;
}

#define KMS_CAS_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

bool kms_cas_name_ok(const char *s)
{
    return kms_cas_chars_ok(s, KMS_CAS_NAME_MAX, KMS_CAS_ALNUM "._-") && s[0] != '.';
}

bool kms_cas_item_name_ok(const char *s) { return kms_cas_chars_ok(s, KMS_CAS_ITEM_NAME_MAX, KMS_CAS_ALNUM "_-"); }

/* arn:aws:iam::<12 digits>:user/NAME or :role/NAME (the principals cloister-kms has). */
static bool kms_cas_arn_ok(const char *s)
{
    cl_reader r = cl_reader_make(s, strnlen(s, 600));
    cl_reader digits, name;
    if (cl_reader_remaining(&r) > 512 || !cl_reader_starts_with_str(&r, "arn:aws:iam::") ||
        cl_reader_skip(&r, 13) != CL_OK || cl_reader_span(&r, "0123456789", &digits) != 12 ||
        !cl_reader_next_is(&r, ':') || cl_reader_skip(&r, 1) != CL_OK)
        return false;
    if ((!cl_reader_starts_with_str(&r, "user/") && !cl_reader_starts_with_str(&r, "role/")) ||
        cl_reader_skip(&r, 5) != CL_OK)
        return false;
    size_t n = cl_reader_remaining(&r);
    return n >= 1 && cl_reader_span(&r, KMS_CAS_ALNUM "+=,.@_/-", &name) == n;
}

/* A DNS name for a certificate: LDH labels of 1..63 (RFC 1035 section 2.3.1, RFC 1123 section
 * 2.1), at most 253 characters; no wildcard, no trailing dot. */
static bool kms_cas_dns_ok(const char *s)
{
    cl_reader r = cl_reader_make(s, strnlen(s, KMS_CAS_DNS_MAX + 1));
    if (cl_reader_remaining(&r) == 0 || cl_reader_remaining(&r) > KMS_CAS_DNS_MAX) return false;
    for (;;) {
        cl_reader label;
        bool dot = false;
        cl_reader_until(&r, '.', &label, &dot);
        size_t n = cl_reader_remaining(&label);
        if (n == 0 || n > 63 || cl_reader_next_is(&label, '-')) return false;
        cl_reader copy = label, run;
        if (cl_reader_span(&copy, KMS_CAS_ALNUM "-", &run) != n) return false;
        const uint8_t *p = NULL;
        size_t len = 0;
        cl_reader_rest(&label, &p, &len);
        cl_reader last = cl_reader_make(p, len);
        if (cl_reader_skip(&last, len - 1) != CL_OK || cl_reader_next_is(&last, '-')) return false;
        if (!dot) return true;
        if (cl_reader_skip(&r, 1) != CL_OK || cl_reader_remaining(&r) == 0) return false;
    }
}

/* --- members ------------------------------------------------------------------------ */

/* Refuses members of o other than those of known (NULL-terminated), naming where. */
static CL_MUST_USE cl_status kms_cas_known(json_t *o, const char *where, const char *const *known, const char *list)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++) ok = strcmp(k, known[i]) == 0;
        if (!ok) {
            char shown[80];
            (void)cl_bytes_show((const uint8_t *)k, strlen(k), shown, sizeof(shown));
            CL_FAIL(CL_ERR_FORMAT, "session: %s: unknown member \"%s\" (expected %s)", where, shown, list);
        }
    }
    return CL_OK;
}

/* A string member of at most max bytes without NUL; absent: *out NULL unless required. */
static CL_MUST_USE cl_status kms_cas_string(json_t *o, const char *where, const char *member, bool required, size_t max,
                                            const char **out, size_t *len)
{
    json_t *v = json_object_get(o, member);
    *out = NULL;
    if (len != NULL) *len = 0;
    if (v == NULL && !required) return CL_OK;
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "session: %s: \"%s\" is missing", where, member);
    CL_ENSURE(json_is_string(v), CL_ERR_FORMAT, "session: %s: \"%s\" must be a string", where, member);
    size_t n = json_string_length(v);
    CL_ENSURE(n <= max, CL_ERR_LIMIT, "session: %s: \"%s\" is %zu bytes, over %zu", where, member, n, max);
    CL_ENSURE(memchr(json_string_value(v), 0, n) == NULL, CL_ERR_FORMAT, "session: %s: \"%s\" holds a NUL character",
              where, member);
    *out = json_string_value(v);
    if (len != NULL) *len = n;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cas_int(json_t *o, const char *where, const char *member, json_int_t lo, json_int_t hi,
                                         json_int_t def, json_int_t *out)
{
    json_t *v = json_object_get(o, member);
    *out = def;
    if (v == NULL) return CL_OK;
    CL_ENSURE(json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi, CL_ERR_FORMAT,
              "session: %s: \"%s\" must be an integer from %lld to %lld", where, member, (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cas_bool(json_t *o, const char *where, const char *member, bool *out)
{
    json_t *v = json_object_get(o, member);
    *out = false;
    if (v == NULL) return CL_OK;
    CL_ENSURE(json_is_boolean(v), CL_ERR_FORMAT, "session: %s: \"%s\" must be true or false", where, member);
    *out = json_is_true(v);
    return CL_OK;
}

/* An array member of strings (absent: empty), each at most max bytes; n at most cap. */
static CL_MUST_USE cl_status kms_cas_strings(json_t *o, const char *where, const char *member, size_t cap, size_t max,
                                             const char **out, size_t *n)
{
    json_t *a = json_object_get(o, member);
    *n = 0;
    if (a == NULL) return CL_OK;
    CL_ENSURE(json_is_array(a), CL_ERR_FORMAT, "session: %s: \"%s\" must be a list of strings", where, member);
    CL_ENSURE(json_array_size(a) <= cap, CL_ERR_LIMIT, "session: %s: \"%s\" has %zu entries, at most %zu", where,
              member, json_array_size(a), cap);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        CL_ENSURE(json_is_string(v), CL_ERR_FORMAT, "session: %s: %s[%zu] must be a string", where, member, i);
        size_t len = json_string_length(v);
        CL_ENSURE(len >= 1 && len <= max && memchr(json_string_value(v), 0, len) == NULL, CL_ERR_FORMAT,
                  "session: %s: %s[%zu] must be 1 to %zu characters", where, member, i, max);
        for (size_t j = 0; j < i; j++)
            CL_ENSURE(strcmp(out[j], json_string_value(v)) != 0, CL_ERR_FORMAT, "session: %s: %s[%zu] repeats %s[%zu]",
                      where, member, i, member, j);
        out[i] = json_string_value(v);
    }
    *n = json_array_size(a);
    return CL_OK;
}

/* SHA-256 (hex) of a secret's definition without export_public, keys sorted: what decides
 * whether a generated secret is kept across an update. */
static CL_MUST_USE cl_status kms_cas_fingerprint(json_t *spec, char out[KMS_CAS_HASH_HEX + 1])
{
    json_t *copy = json_deep_copy(spec);
    CL_ENSURE(copy != NULL, CL_ERR_NOMEM, "out of memory");
    (void)json_object_del(copy, "export_public");
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory");
    uint8_t d[CL_SHA256_LEN];
    cl_status rc = cl_sha256(text, strlen(text), d);
    cl_free_wiped(text); /* a value secret's text */
    CL_GUARD(rc);
    (void)cl_hex_encode(d, sizeof(d), out, KMS_CAS_HASH_HEX + 1);
    return CL_OK;
}

/* --- secrets -------------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_cas_secret_parse(const char *name, json_t *spec, kms_cas_secret *out)
{
    char where[96];
    (void)snprintf(where, sizeof(where), "secrets.%s", name);
    CL_ENSURE(json_is_object(spec), CL_ERR_FORMAT, "session: %s: must be an object with a \"kind\"", where);
    const char *kind = NULL;
    CL_GUARD(kms_cas_string(spec, where, "kind", true, 16, &kind, NULL));
    out->name = name;
    json_int_t v = 0;
    if (strcmp(kind, "x509-ca") == 0) {
        static const char *const known[] = {"kind", "common_name", "valid_days", "export_public", NULL};
        CL_GUARD(kms_cas_known(spec, where, known, "kind, common_name, valid_days, export_public"));
        out->kind = KMS_CAS_X509_CA;
        CL_GUARD(kms_cas_string(spec, where, "common_name", true, CL_CSR_MAX_CN, &out->common_name, NULL));
        CL_ENSURE(out->common_name[0] != '\0', CL_ERR_FORMAT, "session: %s: \"common_name\" is empty", where);
        CL_GUARD(kms_cas_int(spec, where, "valid_days", 1, KMS_CAS_CA_DAYS_MAX, KMS_CAS_CA_DAYS_DEFAULT, &v));
        out->validity = (int64_t)v * 86400;
    } else if (strcmp(kind, "x509") == 0) {
        static const char *const known[] = {"kind",     "issuer",      "common_name",   "dns",
                                            "key_type", "valid_hours", "export_public", NULL};
        CL_GUARD(kms_cas_known(spec, where, known, "kind, issuer, common_name, dns, key_type, valid_hours"));
        out->kind = KMS_CAS_X509;
        CL_GUARD(kms_cas_string(spec, where, "issuer", true, KMS_CAS_ITEM_NAME_MAX, &out->issuer, NULL));
        CL_GUARD(kms_cas_string(spec, where, "common_name", true, CL_CSR_MAX_CN, &out->common_name, NULL));
        CL_ENSURE(out->common_name[0] != '\0', CL_ERR_FORMAT, "session: %s: \"common_name\" is empty", where);
        CL_GUARD(kms_cas_strings(spec, where, "dns", KMS_CAS_MAX_DNS, KMS_CAS_DNS_MAX, out->dns, &out->n_dns));
        for (size_t i = 0; i < out->n_dns; i++)
            CL_ENSURE(kms_cas_dns_ok(out->dns[i]), CL_ERR_FORMAT,
                      "session: %s: dns[%zu] \"%s\" is not a host name (letters, digits and '-' in labels of 1 to 63 "
                      "characters, separated by '.'; no wildcard)",
                      where, i, out->dns[i]);
        const char *kt = NULL;
        CL_GUARD(kms_cas_string(spec, where, "key_type", false, 16, &kt, NULL));
        out->key_type = CL_KEY_EC_P256;
        CL_ENSURE(kt == NULL || cl_key_type_parse(kt, &out->key_type), CL_ERR_FORMAT,
                  "session: %s: \"key_type\" must be EC_P256, EC_P384, RSA_2048 or RSA_3072", where);
        CL_GUARD(kms_cas_int(spec, where, "valid_hours", 1, KMS_CAS_LEAF_HOURS_MAX, KMS_CAS_LEAF_HOURS_DEFAULT, &v));
        out->validity = (int64_t)v * 3600;
    } else if (strcmp(kind, "random") == 0) {
        static const char *const known[] = {"kind", "size", "export_public", NULL};
        CL_GUARD(kms_cas_known(spec, where, known, "kind, size"));
        out->kind = KMS_CAS_RANDOM;
        CL_GUARD(kms_cas_int(spec, where, "size", 1, KMS_CAS_RANDOM_MAX, KMS_CAS_RANDOM_DEFAULT, &v));
        out->size = (size_t)v;
    } else if (strcmp(kind, "value") == 0) {
        static const char *const known[] = {"kind", "value", "export_public", NULL};
        CL_GUARD(kms_cas_known(spec, where, known, "kind, value, export_public"));
        out->kind = KMS_CAS_VALUE;
        CL_GUARD(kms_cas_string(spec, where, "value", true, KMS_CAS_VALUE_MAX, &out->value, &out->value_len));
    } else {
        char shown[40];
        (void)cl_bytes_show((const uint8_t *)kind, strlen(kind), shown, sizeof(shown));
        CL_FAIL(CL_ERR_FORMAT, "session: %s: kind \"%s\" is not one of x509-ca, x509, random, value", where, shown);
    }
    /* Only what is public may be published: a CA's certificate, or a value the session gives. */
    CL_GUARD(kms_cas_bool(spec, where, "export_public", &out->export_public));
    if (out->kind == KMS_CAS_X509_CA || out->kind == KMS_CAS_RANDOM)
        CL_GUARD(kms_cas_fingerprint(spec, out->fingerprint));
    return CL_OK;
}

/* --- services ------------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_cas_service_parse(kms_cas_session *s, const char *name, json_t *spec,
                                                   kms_cas_service *out)
{
    char where[96];
    (void)snprintf(where, sizeof(where), "services.%s", name);
    CL_ENSURE(json_is_object(spec), CL_ERR_FORMAT, "session: %s: must be an object", where);
    static const char *const known[] = {"image_sha384", "allow_debug", "certificate", "secrets", NULL};
    CL_GUARD(kms_cas_known(spec, where, known, "image_sha384, allow_debug, certificate, secrets"));
    out->name = name;
    const char *hex[KMS_CAS_MAX_MEASUREMENTS] = {0};
    CL_GUARD(kms_cas_strings(spec, where, "image_sha384", KMS_CAS_MAX_MEASUREMENTS, (size_t)2 * CL_ATTEST_PCR_LEN, hex,
                             &out->n_images));
    cl_buf raw;
    cl_buf_init(&raw, CL_ATTEST_PCR_LEN);
    for (size_t i = 0; i < out->n_images; i++) {
        cl_buf_reset(&raw);
        size_t hl = hex[i] != NULL ? strlen(hex[i]) : 0;
        cl_status rc = hl == (size_t)2 * CL_ATTEST_PCR_LEN ? cl_hex_decode(hex[i], hl, &raw) : CL_ERR_FORMAT;
        if (rc == CL_OK) memcpy(out->image_sha384[i], raw.data, CL_ATTEST_PCR_LEN);
        if (rc != CL_OK) {
            cl_buf_free(&raw);
            CL_FAIL(CL_ERR_FORMAT,
                    "session: %s: image_sha384[%zu] must be 96 hex digits (the PCR0 `cloister enclave build` prints)",
                    where, i);
        }
    }
    cl_buf_free(&raw);
    for (size_t i = 0; i < out->n_images; i++)
        for (size_t j = 0; j < i; j++)
            CL_ENSURE(memcmp(out->image_sha384[i], out->image_sha384[j], CL_ATTEST_PCR_LEN) != 0, CL_ERR_FORMAT,
                      "session: %s: image_sha384[%zu] repeats image_sha384[%zu]", where, i, j);
    CL_GUARD(kms_cas_bool(spec, where, "allow_debug", &out->allow_debug));
    const char *cert = NULL;
    CL_GUARD(kms_cas_string(spec, where, "certificate", false, KMS_CAS_ITEM_NAME_MAX, &cert, NULL));
    if (cert != NULL) {
        out->certificate = kms_cas_session_secret(s, cert);
        CL_ENSURE(out->certificate != NULL && out->certificate->kind == KMS_CAS_X509, CL_ERR_FORMAT,
                  "session: %s: \"certificate\" names %s, which is not an x509 secret of this session", where, cert);
    }
    const char *names[KMS_CAS_MAX_SERVICE_SECRETS] = {0};
    CL_GUARD(kms_cas_strings(spec, where, "secrets", KMS_CAS_MAX_SERVICE_SECRETS, KMS_CAS_ITEM_NAME_MAX, names,
                             &out->n_secrets));
    for (size_t i = 0; i < out->n_secrets; i++) {
        out->secrets[i] = kms_cas_session_secret(s, names[i]);
        CL_ENSURE(out->secrets[i] != NULL, CL_ERR_FORMAT, "session: %s: secrets[%zu] names %s, which is not a secret",
                  where, i, names[i]);
        CL_ENSURE(out->secrets[i]->kind == KMS_CAS_RANDOM || out->secrets[i]->kind == KMS_CAS_VALUE, CL_ERR_FORMAT,
                  "session: %s: secrets[%zu] names %s, a %s secret; a service is given random and value secrets (its "
                  "certificate comes from \"certificate\"; a CA's key never leaves the service)",
                  where, i, names[i], kms_cas_kind_name(out->secrets[i]->kind));
    }
    return CL_OK;
}

/* --- the document --------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_cas_access_parse(kms_cas_session *s, json_t *access)
{
    CL_ENSURE(access != NULL, CL_ERR_FORMAT,
              "session: \"access\" is missing: name the principals who may read and update it, "
              "{\"read\": [ARN...], \"update\": [ARN...]}");
    CL_ENSURE(json_is_object(access), CL_ERR_FORMAT, "session: \"access\" must be an object");
    static const char *const known[] = {"read", "update", NULL};
    CL_GUARD(kms_cas_known(access, "access", known, "read, update"));
    CL_GUARD(kms_cas_strings(access, "access", "read", KMS_CAS_MAX_PRINCIPALS, 512, s->readers, &s->n_readers));
    CL_GUARD(kms_cas_strings(access, "access", "update", KMS_CAS_MAX_PRINCIPALS, 512, s->updaters, &s->n_updaters));
    CL_ENSURE(s->n_updaters >= 1, CL_ERR_FORMAT,
              "session: access: \"update\" must name at least one principal (else nobody could change the session)");
    for (size_t i = 0; i < s->n_readers; i++)
        CL_ENSURE(kms_cas_arn_ok(s->readers[i]), CL_ERR_FORMAT,
                  "session: access: read[%zu] \"%s\" is not arn:aws:iam::ACCOUNT:user/NAME or :role/NAME", i,
                  s->readers[i]);
    for (size_t i = 0; i < s->n_updaters; i++)
        CL_ENSURE(kms_cas_arn_ok(s->updaters[i]), CL_ERR_FORMAT,
                  "session: access: update[%zu] \"%s\" is not arn:aws:iam::ACCOUNT:user/NAME or :role/NAME", i,
                  s->updaters[i]);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cas_session_check(kms_cas_session *s)
{
    json_t *root = s->root;
    CL_ENSURE(json_is_object(root), CL_ERR_FORMAT, "session: the document must be a JSON object");
    static const char *const known[] = {"name", "predecessor", "access", "services", "secrets", NULL};
    CL_GUARD(kms_cas_known(root, "the document", known, "name, predecessor, access, services, secrets"));
    CL_GUARD(kms_cas_string(root, "the document", "name", true, KMS_CAS_NAME_MAX, &s->name, NULL));
    CL_ENSURE(kms_cas_name_ok(s->name), CL_ERR_FORMAT,
              "session: \"name\" must be 1 to %d of A-Z a-z 0-9 . _ - (not starting with '.')", KMS_CAS_NAME_MAX);
    json_t *pred = json_object_get(root, "predecessor");
    if (pred != NULL && !json_is_null(pred)) {
        size_t n = json_is_string(pred) ? json_string_length(pred) : 0;
        cl_buf raw;
        cl_buf_init(&raw, CL_SHA256_LEN);
        bool ok = n == KMS_CAS_HASH_HEX && cl_hex_decode(json_string_value(pred), n, &raw) == CL_OK;
        if (ok) (void)cl_hex_encode(raw.data, raw.len, s->predecessor, sizeof(s->predecessor)); /* lower case */
        cl_buf_free(&raw);
        CL_ENSURE(ok, CL_ERR_FORMAT,
                  "session: \"predecessor\" must be the 64 hex digits of the SHA-256 of the session it replaces");
        s->has_predecessor = true;
    }
    CL_GUARD(kms_cas_access_parse(s, json_object_get(root, "access")));
    /* Secrets first: services name them. */
    json_t *secrets = json_object_get(root, "secrets");
    CL_ENSURE(secrets == NULL || json_is_object(secrets), CL_ERR_FORMAT,
              "session: \"secrets\" must be an object of named secrets");
    CL_ENSURE(json_object_size(secrets) <= KMS_CAS_MAX_SECRETS, CL_ERR_LIMIT, "session: %zu secrets, at most %d",
              json_object_size(secrets), KMS_CAS_MAX_SECRETS);
    const char *k;
    json_t *v;
    json_object_foreach(secrets, k, v)
    {
        CL_ENSURE(kms_cas_item_name_ok(k), CL_ERR_FORMAT, "session: secrets: a name must be 1 to %d of A-Z a-z 0-9 _ -",
                  KMS_CAS_ITEM_NAME_MAX);
        CL_GUARD(kms_cas_secret_parse(k, v, &s->secrets[s->n_secrets]));
        s->n_secrets++;
    }
    for (size_t i = 0; i < s->n_secrets; i++) {
        kms_cas_secret *x = &s->secrets[i];
        if (x->export_public)
            CL_ENSURE(x->kind == KMS_CAS_X509_CA || x->kind == KMS_CAS_VALUE, CL_ERR_FORMAT,
                      "session: secrets.%s: a %s secret cannot be exported publicly (only an x509-ca's certificate "
                      "and a value can)",
                      x->name, kms_cas_kind_name(x->kind));
        if (x->kind != KMS_CAS_X509) continue;
        const kms_cas_secret *ca = kms_cas_session_secret(s, x->issuer);
        CL_ENSURE(ca != NULL && ca->kind == KMS_CAS_X509_CA, CL_ERR_FORMAT,
                  "session: secrets.%s: \"issuer\" names %s, which is not an x509-ca secret of this session", x->name,
                  x->issuer);
    }
    json_t *services = json_object_get(root, "services");
    CL_ENSURE(services == NULL || json_is_object(services), CL_ERR_FORMAT,
              "session: \"services\" must be an object of named services");
    CL_ENSURE(json_object_size(services) <= KMS_CAS_MAX_SERVICES, CL_ERR_LIMIT, "session: %zu services, at most %d",
              json_object_size(services), KMS_CAS_MAX_SERVICES);
    json_object_foreach(services, k, v)
    {
        CL_ENSURE(kms_cas_item_name_ok(k), CL_ERR_FORMAT,
                  "session: services: a name must be 1 to %d of A-Z a-z 0-9 _ -", KMS_CAS_ITEM_NAME_MAX);
        CL_GUARD(kms_cas_service_parse(s, k, v, &s->services[s->n_services]));
        s->n_services++;
    }
    return CL_OK;
}

cl_status kms_cas_session_parse(const char *text, size_t len, kms_cas_session **out)
{
    *out = NULL;
    CL_ENSURE(len <= KMS_CAS_DOC_MAX, CL_ERR_LIMIT, "session: the document is %zu bytes, over %zu", len,
              KMS_CAS_DOC_MAX);
    kms_cas_session *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    json_error_t jerr;
    /* Duplicate keys are refused: two "update" lists, one seen by a reviewer and one by us, would
     * be a way to slip a principal past review. */
    s->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (s->root == NULL) {
        kms_cas_session_free(s);
        CL_FAIL(CL_ERR_FORMAT, "session: not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    }
    cl_status rc = kms_cas_session_check(s);
    if (rc != CL_OK) {
        kms_cas_session_free(s);
        return rc;
    }
    *out = s;
    return CL_OK;
}

void kms_cas_session_free(kms_cas_session *s)
{
    if (s == NULL) return;
    json_decref(s->root); /* value secrets: the server's jansson frees through cl_free_wiped */
    free(s);
}

const kms_cas_service *kms_cas_session_service(const kms_cas_session *s, const char *name)
{
    for (size_t i = 0; i < s->n_services; i++)
        if (strcmp(s->services[i].name, name) == 0) return &s->services[i];
    return NULL;
}

const kms_cas_secret *kms_cas_session_secret(const kms_cas_session *s, const char *name)
{
    for (size_t i = 0; i < s->n_secrets; i++)
        if (strcmp(s->secrets[i].name, name) == 0) return &s->secrets[i];
    return NULL;
}

bool kms_cas_may_update(const kms_cas_session *s, const char *arn)
{
    for (size_t i = 0; i < s->n_updaters; i++)
        if (strcmp(s->updaters[i], arn) == 0) return true;
    return false;
}

bool kms_cas_may_read(const kms_cas_session *s, const char *arn)
{
    for (size_t i = 0; i < s->n_readers; i++)
        if (strcmp(s->readers[i], arn) == 0) return true;
    return kms_cas_may_update(s, arn);
}
