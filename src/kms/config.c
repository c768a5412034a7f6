/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloister-kms configuration file (docs/kms.md, "Configuration file"):
 * one JSON object. Every key is known or refused, every value checked
 * against its bounds, and an error names the key at fault.
 */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/log.h"
#include "cloister/mem.h"

#include "server.h"

#define KMS_CONFIG_MAX ((size_t)1 << 20)
#define KMS_CONFIG_PRINCIPALS_MAX 64

cl_status kms_principal_make(const char *access_key_id, const char *secret, const char *arn, kms_principal *p)
{
    memset(p, 0, sizeof(*p));
    size_t al = strlen(access_key_id), sl = strlen(secret), rl = strlen(arn);
    CL_ENSURE(al >= 1 && al < sizeof(p->access_key_id), CL_ERR_USAGE, "an access key id must be 1..%zu characters",
              sizeof(p->access_key_id) - 1);
    for (size_t i = 0; i < al; i++)
        CL_ENSURE(access_key_id[i] > ' ' && access_key_id[i] < 0x7f && access_key_id[i] != ':' &&
                      access_key_id[i] != '/',
                  CL_ERR_USAGE, "access key id %s has a character SigV4 cannot carry (space, ':', '/')", access_key_id);
    /* Never the secret itself in a message. */
    CL_ENSURE(sl >= 1 && sl < sizeof(p->secret), CL_ERR_USAGE, "the secret of %s must be 1..%zu characters",
              access_key_id, sizeof(p->secret) - 1);
    CL_ENSURE(strncmp(arn, "arn:aws:iam::", 13) == 0 && rl < sizeof(p->arn), CL_ERR_USAGE,
              "principal ARN %s is not arn:aws:iam::ACCOUNT:user/NAME or :role/NAME", arn);
    const char *acct = arn + 13;
    const char *end = strchr(acct, ':');
    bool digits = end != NULL && end - acct == KMS_ACCOUNT_LEN;
    for (const char *q = acct; digits && q < end; q++) digits = *q >= '0' && *q <= '9';
    CL_ENSURE(digits && end[1] != '\0', CL_ERR_USAGE, "principal ARN %s needs a 12-digit account and a name", arn);
    (void)snprintf(p->access_key_id, sizeof(p->access_key_id), "%s", access_key_id);
    (void)snprintf(p->secret, sizeof(p->secret), "%s", secret);
    (void)snprintf(p->arn, sizeof(p->arn), "%s", arn);
    (void)snprintf(p->account, sizeof(p->account), "%.*s", KMS_ACCOUNT_LEN, acct);
    return CL_OK;
}

void kms_config_free(kms_config *cfg)
{
    cl_secure_free(cfg->principals); /* wipes the secrets */
    cfg->principals = NULL;
    cfg->n_principals = 0;
    cl_memzero(cfg->store_conninfo, sizeof(cfg->store_conninfo)); /* may hold a password */
}

/* --- values ------------------------------------------------------------------ */

static CL_MUST_USE cl_status kms_cfg_unknown(const char *where, const char *key, const char *const *known, size_t n)
{
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
    CL_FAIL(CL_ERR_USAGE, "unknown key '%s%s' (known: %s)", where, key, list);
}

/* Refuses any key of o not in known. */
static CL_MUST_USE cl_status kms_cfg_keys(json_t *o, const char *where, const char *const *known, size_t n)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++) ok = strcmp(key, known[i]) == 0;
        if (!ok) return kms_cfg_unknown(where, key, known, n);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cfg_string(json_t *o, const char *where, const char *key, size_t max, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL) return CL_OK;
    CL_ENSURE(json_is_string(v), CL_ERR_USAGE, "'%s%s' must be a string", where, key);
    size_t len = json_string_length(v);
    CL_ENSURE(len >= 1 && len <= max && strlen(json_string_value(v)) == len, CL_ERR_USAGE,
              "'%s%s' must be 1..%zu characters, no NUL", where, key, max);
    *out = json_string_value(v);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cfg_int(json_t *o, const char *key, long long min, long long max, bool *set,
                                         long long *out)
{
    json_t *v = json_object_get(o, key);
    *set = v != NULL;
    if (v == NULL) return CL_OK;
    CL_ENSURE(json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max, CL_ERR_USAGE,
              "'%s' must be an integer %lld..%lld", key, min, max);
    *out = json_integer_value(v);
    return CL_OK;
}

/* A path: absolute, or relative to the config file's directory. */
static CL_MUST_USE cl_status kms_cfg_path(json_t *o, const char *where, const char *key, const char *base_dir,
                                          char *out, size_t cap)
{
    const char *s;
    CL_GUARD(kms_cfg_string(o, where, key, cap - 1, &s));
    if (s == NULL) return CL_OK;
    int n = s[0] == '/' ? snprintf(out, cap, "%s", s) : snprintf(out, cap, "%s/%s", base_dir, s);
    CL_ENSURE(n > 0 && (size_t)n < cap, CL_ERR_USAGE, "'%s%s' is longer than %zu characters", where, key, cap - 1);
    return CL_OK;
}

cl_status kms_config_parse_listen(const char *s, kms_config *cfg)
{
    const char *colon = strrchr(s, ':');
    const char *close = strchr(s, ']');
    CL_ENSURE(colon != NULL && colon != s && (close == NULL || close + 1 == colon), CL_ERR_USAGE,
              "'listen' must be HOST:PORT (127.0.0.1:4599, [::1]:4599, kms.example:443), not %s", s);
    uint64_t port = 0;
    CL_GUARD(cl_parse_uint(colon + 1, 0, 65535, "the 'listen' port", &port));
    const char *host = s;
    size_t n = (size_t)(colon - s);
    if (s[0] == '[') {
        /* An IPv6 address in brackets, as in a URL's authority (RFC 3986, 3.2.2); a zone
         * ("%eth0", RFC 6874) is for getaddrinfo to check. */
        CL_ENSURE(n >= 3 && s[n - 1] == ']', CL_ERR_USAGE, "'listen' %s: an IPv6 address ends with ']' before :PORT",
                  s);
        host = s + 1;
        n -= 2;
        size_t addr = strspn(host, "0123456789abcdefABCDEF:.");
        CL_ENSURE(addr >= 2 && (addr == n || host[addr] == '%'), CL_ERR_USAGE,
                  "'listen' %s: not an IPv6 address in brackets", s);
    } else {
        CL_ENSURE(memchr(s, ':', n) == NULL, CL_ERR_USAGE,
                  "'listen' %s: write an IPv6 address in brackets, as in [::1]:4599", s);
        /* An IPv4 address or a host name (letters, digits, '-', '.'; RFC 1123, 2.1). */
        CL_ENSURE(strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == n, CL_ERR_USAGE,
                  "'listen' %s: the host must be an IPv4 address, [IPv6] or a host name", s);
    }
    CL_ENSURE(n >= 1 && n < sizeof(cfg->host), CL_ERR_USAGE, "'listen' %s: the host is longer than %zu characters", s,
              sizeof(cfg->host) - 1);
    (void)snprintf(cfg->host, sizeof(cfg->host), "%.*s", (int)n, host);
    cfg->port = (int)port;
    return CL_OK;
}

cl_status kms_config_parse_metrics(const char *s, kms_config *cfg)
{
    if (strcmp(s, "loopback") == 0)
        cfg->metrics = KMS_METRICS_LOOPBACK;
    else if (strcmp(s, "any") == 0)
        cfg->metrics = KMS_METRICS_ANY;
    else if (strcmp(s, "off") == 0)
        cfg->metrics = KMS_METRICS_OFF;
    else
        CL_FAIL(CL_ERR_USAGE, "'metrics' must be \"loopback\", \"any\" or \"off\", not \"%s\"", s);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cfg_region(const char *s, kms_config *cfg)
{
    CL_ENSURE(kms_region_name_ok(s), CL_ERR_USAGE, "'region' must be 1..%d of [a-z0-9-], like us-east-1",
              KMS_REGION_MAX);
    (void)snprintf(cfg->region, sizeof(cfg->region), "%s", s);
    return CL_OK;
}

/* "regions": the only regions answered. Names as "region"'s (a private name too, for a store
 * whose keys were made under one); the default region must be one of them. */
static CL_MUST_USE cl_status kms_cfg_regions(json_t *o, bool have_region, kms_config *cfg)
{
    CL_ENSURE(json_is_array(o) && json_array_size(o) >= 1 && json_array_size(o) <= KMS_REGIONS_MAX, CL_ERR_USAGE,
              "'regions' must be a list of 1..%d region names", KMS_REGIONS_MAX);
    size_t i;
    json_t *e;
    json_array_foreach(o, i, e)
    {
        const char *sv = json_string_value(e);
        CL_ENSURE(sv != NULL && strlen(sv) == json_string_length(e) && kms_region_name_ok(sv), CL_ERR_USAGE,
                  "'regions[%zu]' must be 1..%d of [a-z0-9-], like eu-central-1", i, KMS_REGION_MAX);
        for (size_t j = 0; j < i; j++)
            CL_ENSURE(strcmp(cfg->regions[j], sv) != 0, CL_ERR_USAGE, "'regions[%zu]' %s is also regions[%zu]", i, sv,
                      j);
        (void)snprintf(cfg->regions[i], sizeof(cfg->regions[i]), "%s", sv);
    }
    cfg->n_regions = json_array_size(o);
    /* Without "region", the first listed is the default (the data of before regions is in it). */
    if (!have_region) (void)snprintf(cfg->region, sizeof(cfg->region), "%s", cfg->regions[0]);
    CL_ENSURE(kms_config_region_allowed(cfg, cfg->region), CL_ERR_USAGE,
              "'region' %s is not in 'regions': the keys made before regions are in it; list it, or leave "
              "'region' out to make the first of 'regions' the default",
              cfg->region);
    return CL_OK;
}

bool kms_config_region_allowed(const kms_config *cfg, const char *region)
{
    if (cfg->n_regions == 0) return kms_region_is_aws(region) || strcmp(region, cfg->region) == 0;
    for (size_t i = 0; i < cfg->n_regions; i++)
        if (strcmp(cfg->regions[i], region) == 0) return true;
    return false;
}

/* --- sections ------------------------------------------------------------------ */

static CL_MUST_USE cl_status kms_cfg_root_key(json_t *o, const char *base_dir, kms_config *cfg)
{
    static const char *const known[] = {"file", "passphrase_file", "passphrase_env", "scrypt_log2_n"};
    CL_ENSURE(json_is_object(o), CL_ERR_USAGE, "'root_key' must be an object");
    CL_GUARD(kms_cfg_keys(o, "root_key.", known, sizeof(known) / sizeof(known[0])));
    const char *env;
    CL_GUARD(kms_cfg_path(o, "root_key.", "file", base_dir, cfg->root_key_file, sizeof(cfg->root_key_file)));
    CL_GUARD(
        kms_cfg_path(o, "root_key.", "passphrase_file", base_dir, cfg->passphrase_file, sizeof(cfg->passphrase_file)));
    CL_GUARD(kms_cfg_string(o, "root_key.", "passphrase_env", sizeof(cfg->passphrase_env) - 1, &env));
    if (env != NULL) {
        bool ok = !(env[0] >= '0' && env[0] <= '9');
        for (const char *p = env; ok && *p; p++)
            ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
        CL_ENSURE(ok, CL_ERR_USAGE, "'root_key.passphrase_env' must be an environment variable name, not %s", env);
        (void)snprintf(cfg->passphrase_env, sizeof(cfg->passphrase_env), "%s", env);
    }
    int set = (cfg->root_key_file[0] != '\0') + (cfg->passphrase_file[0] != '\0') + (env != NULL);
    CL_ENSURE(set == 1, CL_ERR_USAGE,
              "'root_key' must give exactly one of 'file', 'passphrase_file' and 'passphrase_env' (it gives %d)", set);
    json_t *n = json_object_get(o, "scrypt_log2_n");
    if (n != NULL) {
        CL_ENSURE(cfg->root_key_file[0] == '\0', CL_ERR_USAGE,
                  "'root_key.scrypt_log2_n' applies to a passphrase, not to a key 'file'");
        CL_ENSURE(json_is_integer(n) && json_integer_value(n) >= 14 && json_integer_value(n) <= 20, CL_ERR_USAGE,
                  "'root_key.scrypt_log2_n' must be an integer 14..20");
        cfg->scrypt_log2_n = (unsigned)json_integer_value(n);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status kms_cfg_tls(json_t *o, const char *base_dir, kms_config *cfg)
{
    static const char *const known[] = {"cert", "key"};
    CL_ENSURE(json_is_object(o), CL_ERR_USAGE, "'tls' must be an object");
    CL_GUARD(kms_cfg_keys(o, "tls.", known, sizeof(known) / sizeof(known[0])));
    CL_GUARD(kms_cfg_path(o, "tls.", "cert", base_dir, cfg->tls_cert, sizeof(cfg->tls_cert)));
    CL_GUARD(kms_cfg_path(o, "tls.", "key", base_dir, cfg->tls_key, sizeof(cfg->tls_key)));
    CL_ENSURE(cfg->tls_cert[0] != '\0' && cfg->tls_key[0] != '\0', CL_ERR_USAGE,
              "'tls' needs both 'cert' and 'key' (PEM files)");
    return CL_OK;
}

/*
 * "store": {"type": "sqlite", "path": FILE} (type optional) or
 * {"type": "postgresql", "conninfo": "host=... dbname=..." or "postgresql://..."}.
 * The conninfo may carry a password, so no message quotes it, nor libpq's
 * parse error (which can echo part of a URI).
 */
static CL_MUST_USE cl_status kms_cfg_store(json_t *o, const char *base_dir, kms_config *cfg)
{
    static const char *const known[] = {"type", "path", "conninfo"};
    CL_ENSURE(json_is_object(o), CL_ERR_USAGE, "'store' must be an object");
    CL_GUARD(kms_cfg_keys(o, "store.", known, sizeof(known) / sizeof(known[0])));
    const char *type, *conninfo;
    CL_GUARD(kms_cfg_string(o, "store.", "type", 32, &type));
    CL_GUARD(kms_cfg_string(o, "store.", "conninfo", sizeof(cfg->store_conninfo) - 1, &conninfo));
    bool pg = type != NULL && strcmp(type, "postgresql") == 0;
    CL_ENSURE(type == NULL || pg || strcmp(type, "sqlite") == 0, CL_ERR_USAGE,
              "'store.type' %s is not available in this build (sqlite and postgresql are)", type);
    if (!pg) {
        CL_ENSURE(conninfo == NULL, CL_ERR_USAGE,
                  "'store.conninfo' applies to \"type\": \"postgresql\", not to the SQLite store");
        return kms_cfg_path(o, "store.", "path", base_dir, cfg->store_path, sizeof(cfg->store_path));
    }
    CL_ENSURE(json_object_get(o, "path") == NULL, CL_ERR_USAGE,
              "'store.path' applies to the SQLite store; a PostgreSQL store is named by 'store.conninfo'");
    CL_ENSURE(conninfo != NULL, CL_ERR_USAGE,
              "'store.conninfo' is required with \"type\": \"postgresql\" (like \"host=/run/postgresql "
              "dbname=cloister\" or \"postgresql://kms@db.example/cloister\")");
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    PQconninfoFree(opts);
    PQfreemem(err);
    CL_ENSURE(opts != NULL, CL_ERR_USAGE,
              "'store.conninfo' is not a libpq connection string (key=value ...) or a postgresql:// URI");
    (void)snprintf(cfg->store_conninfo, sizeof(cfg->store_conninfo), "%s", conninfo);
    return CL_OK;
}

/* Appends the principals of the JSON list a to cfg's: the config file's "principals", a
 * --principals-file, CLOISTER_KMS_PRINCIPALS (docs/kms.md). Access key ids stay unique. */
static CL_MUST_USE cl_status kms_cfg_principals(json_t *a, kms_config *cfg)
{
    static const char *const known[] = {"access_key_id", "secret", "arn"};
    size_t old = cfg->n_principals;
    CL_ENSURE(json_is_array(a) && json_array_size(a) >= 1 && json_array_size(a) <= KMS_CONFIG_PRINCIPALS_MAX,
              CL_ERR_USAGE, "'principals' must be a list of 1..%d principals", KMS_CONFIG_PRINCIPALS_MAX);
    CL_ENSURE(old + json_array_size(a) <= KMS_CONFIG_PRINCIPALS_MAX, CL_ERR_USAGE,
              "at most %d principals in all: %zu more is too many after the %zu given before",
              KMS_CONFIG_PRINCIPALS_MAX, json_array_size(a), old);
    /* Locked, guarded memory: the principals' secrets live as long as the server. */
    kms_principal *all = cl_secure_alloc((old + json_array_size(a)) * sizeof(*all));
    CL_ENSURE(all != NULL, CL_ERR_NOMEM, "out of memory");
    memset(all, 0, (old + json_array_size(a)) * sizeof(*all));
    if (old > 0) memcpy(all, cfg->principals, old * sizeof(*all));
    cl_secure_free(cfg->principals); /* wipes the old copy */
    cfg->principals = all;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        char where[48];
        (void)snprintf(where, sizeof(where), "principals[%zu].", i);
        CL_ENSURE(json_is_object(e), CL_ERR_USAGE, "'principals[%zu]' must be an object", i);
        CL_GUARD(kms_cfg_keys(e, where, known, sizeof(known) / sizeof(known[0])));
        const char *id, *secret, *arn;
        CL_GUARD(kms_cfg_string(e, where, "access_key_id", 128, &id));
        CL_GUARD(kms_cfg_string(e, where, "secret", 128, &secret));
        CL_GUARD(kms_cfg_string(e, where, "arn", KMS_ARN_MAX, &arn));
        CL_ENSURE(id != NULL && secret != NULL && arn != NULL, CL_ERR_USAGE,
                  "'principals[%zu]' needs access_key_id, secret and arn", i);
        CL_GUARD_CTX(kms_principal_make(id, secret, arn, &all[old + i]), "'principals[%zu]'", i);
        for (size_t j = 0; j < old; j++)
            CL_ENSURE(strcmp(all[j].access_key_id, id) != 0, CL_ERR_USAGE,
                      "'principals[%zu].access_key_id' %s is taken already (by --dev's principal or an earlier "
                      "list)",
                      i, id);
        for (size_t j = old; j < old + i; j++)
            CL_ENSURE(strcmp(all[j].access_key_id, id) != 0, CL_ERR_USAGE,
                      "'principals[%zu].access_key_id' %s is also principals[%zu]'s", i, id, j - old);
        cfg->n_principals = old + i + 1;
    }
    return CL_OK;
}

/* "attestation_roots": PEM files of the roots Recipient documents must chain to. */
static CL_MUST_USE cl_status kms_cfg_attest_roots(json_t *o, const char *base_dir, kms_config *cfg)
{
    CL_ENSURE(json_is_array(o) && json_array_size(o) >= 1 && json_array_size(o) <= KMS_ATTEST_ROOT_FILES_MAX,
              CL_ERR_USAGE, "'attestation_roots' must be an array of 1..%d PEM file paths", KMS_ATTEST_ROOT_FILES_MAX);
    size_t i;
    json_t *e;
    json_array_foreach(o, i, e)
    {
        size_t len = json_string_length(e);
        const char *sv = json_string_value(e);
        CL_ENSURE(sv != NULL && len >= 1 && strlen(sv) == len, CL_ERR_USAGE,
                  "'attestation_roots[%zu]' must be a path (a non-empty string)", i);
        char *out = cfg->attest_root_files[i];
        int n =
            sv[0] == '/' ? snprintf(out, KMS_PATH_MAX, "%s", sv) : snprintf(out, KMS_PATH_MAX, "%s/%s", base_dir, sv);
        CL_ENSURE(n > 0 && n < KMS_PATH_MAX, CL_ERR_USAGE, "'attestation_roots[%zu]' is longer than %d characters", i,
                  KMS_PATH_MAX - 1);
    }
    cfg->n_attest_root_files = json_array_size(o);
    return CL_OK;
}

cl_status kms_config_parse_training(json_t *o, const char *base_dir, kms_config *cfg)
{
    static const char *const known[] = {"runner",  "images_dir", "pki_dir",        "state_dir",         "endpoint",
                                        "ca_file", "max_jobs",   "max_memory_mib", "stop_grace_seconds"};
    kms_training_config *t = &cfg->training;
    CL_ENSURE(json_is_object(o), CL_ERR_USAGE, "'training' must be an object (docs/sagemaker.md, \"Configuration\")");
    CL_GUARD(kms_cfg_keys(o, "training.", known, sizeof(known) / sizeof(known[0])));
    json_t *r = json_object_get(o, "runner");
    if (r != NULL) {
        CL_ENSURE(json_is_array(r) && json_array_size(r) >= 1 && json_array_size(r) <= KMS_TRAIN_RUNNER_ARGS_MAX,
                  CL_ERR_USAGE,
                  "'training.runner' must be a list of 1..%d strings: the program and its first arguments",
                  KMS_TRAIN_RUNNER_ARGS_MAX);
        for (size_t i = 0; i < json_array_size(r); i++) {
            json_t *a = json_array_get(r, i);
            CL_ENSURE(json_is_string(a) && json_string_length(a) >= 1 && json_string_length(a) < KMS_PATH_MAX &&
                          strlen(json_string_value(a)) == json_string_length(a),
                      CL_ERR_USAGE, "'training.runner'[%zu] must be a string of 1..%d characters, no NUL", i,
                      KMS_PATH_MAX - 1);
            (void)snprintf(t->runner[i], KMS_PATH_MAX, "%s", json_string_value(a));
        }
        /* The program itself: absolute, or relative to the configuration's directory. */
        if (t->runner[0][0] != '/') {
            char abs[KMS_PATH_MAX];
            int n = snprintf(abs, sizeof(abs), "%s/%s", base_dir, t->runner[0]);
            CL_ENSURE(n > 0 && (size_t)n < sizeof(abs), CL_ERR_USAGE, "'training.runner'[0] is too long");
            memcpy(t->runner[0], abs, sizeof(abs));
        }
        t->n_runner = json_array_size(r);
    }
    CL_GUARD(kms_cfg_path(o, "training.", "images_dir", base_dir, t->images_dir, sizeof(t->images_dir)));
    CL_GUARD(kms_cfg_path(o, "training.", "pki_dir", base_dir, t->pki_dir, sizeof(t->pki_dir)));
    CL_GUARD(kms_cfg_path(o, "training.", "state_dir", base_dir, t->state_dir, sizeof(t->state_dir)));
    const char *s;
    CL_GUARD(kms_cfg_string(o, "training.", "endpoint", KMS_PATH_MAX - 1, &s));
    if (s != NULL) {
        CL_ENSURE(strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0, CL_ERR_USAGE,
                  "'training.endpoint' must be an http:// or https:// URL (how the enclave reaches this server), not "
                  "'%s'",
                  s);
        (void)snprintf(t->endpoint, sizeof(t->endpoint), "%s", s);
    }
    /* A path in the image, not on this machine: not made absolute against the config's directory. */
    CL_GUARD(kms_cfg_string(o, "training.", "ca_file", KMS_PATH_MAX - 1, &s));
    if (s != NULL) {
        CL_ENSURE(s[0] == '/', CL_ERR_USAGE,
                  "'training.ca_file' must be an absolute path inside the trainer's image (e.g. /files/kms-ca.pem), "
                  "not '%s'",
                  s);
        (void)snprintf(t->ca_file, sizeof(t->ca_file), "%s", s);
    }
    bool set;
    long long v = 0;
    CL_GUARD_CTX(kms_cfg_int(o, "max_jobs", 1, 1024, &set, &v), "training");
    if (set) t->max_jobs = (int)v;
    CL_GUARD_CTX(kms_cfg_int(o, "max_memory_mib", 64, (long long)4 << 20, &set, &v), "training");
    if (set) t->max_memory_mib = (uint64_t)v;
    CL_GUARD_CTX(kms_cfg_int(o, "stop_grace_seconds", 1, 3600, &set, &v), "training");
    if (set) t->stop_grace = (int)v;
    return CL_OK;
}

cl_status kms_config_load_training(const char *path, kms_config *cfg)
{
    cl_status rc = CL_OK;
    cl_buf text;
    cl_buf_init(&text, (size_t)64 << 10);
    json_t *root = NULL;
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&text, path), "--training %s", path);
    json_error_t jerr;
    root = json_loadb((const char *)text.data, text.len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(root != NULL, CL_ERR_USAGE, "--training %s: not JSON: line %d column %d: %s", path, jerr.line,
                   jerr.column, jerr.text);
    char dir[KMS_PATH_MAX];
    (void)snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        (void)snprintf(dir, sizeof(dir), ".");
    CL_GUARD_CTX_GOTO(kms_config_parse_training(root, dir, cfg), "--training %s", path);
out:
    json_decref(root);
    cl_buf_free(&text);
    return rc;
}

static CL_MUST_USE cl_status kms_cfg_apply(json_t *root, const char *base_dir, kms_config *cfg)
{
    static const char *const known[] = {"listen",
                                        "threads",
                                        "max_body",
                                        "region",
                                        "regions",
                                        "data_dir",
                                        "store",
                                        "root_key",
                                        "tls",
                                        "audit_log",
                                        "principals",
                                        "attestation_roots",
                                        "attestation_max_age",
                                        "max_connections",
                                        "request_timeout",
                                        "metrics",
                                        "s3_domain",
                                        "s3_max_body",
                                        "training"};
    CL_ENSURE(json_is_object(root), CL_ERR_USAGE, "the configuration must be a JSON object");
    CL_GUARD(kms_cfg_keys(root, "", known, sizeof(known) / sizeof(known[0])));
    const char *s;
    bool set;
    long long v = 0;
    CL_GUARD(kms_cfg_string(root, "", "listen", KMS_HOST_MAX + 8, &s));
    if (s != NULL) CL_GUARD(kms_config_parse_listen(s, cfg));
    CL_GUARD(kms_cfg_string(root, "", "metrics", 16, &s));
    if (s != NULL) CL_GUARD(kms_config_parse_metrics(s, cfg));
    CL_GUARD(kms_cfg_int(root, "threads", 1, 256, &set, &v));
    if (set) cfg->threads = (int)v;
    CL_GUARD(kms_cfg_int(root, "max_body", 1024, (long long)64 << 20, &set, &v));
    if (set) cfg->max_body = (size_t)v;
    /* S3 (docs/s3.md, "Limits"): up to 5 GiB, S3's own limit of a single PUT. */
    CL_GUARD(kms_cfg_int(root, "s3_max_body", 1024, (long long)5 << 30, &set, &v));
    if (set) cfg->s3_max_body = (size_t)v;
    CL_GUARD(kms_cfg_string(root, "", "s3_domain", KMS_HOST_MAX, &s));
    if (s != NULL) {
        CL_ENSURE(s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == strlen(s) && s[0] != '.' &&
                      s[0] != '-',
                  CL_ERR_USAGE, "'s3_domain' must be a lower-case DNS name like s3.example.com, not '%s'", s);
        (void)snprintf(cfg->s3_domain, sizeof(cfg->s3_domain), "%s", s);
    }
    CL_GUARD(kms_cfg_int(root, "max_connections", 16, KMS_MAX_CONNECTIONS_MAX, &set, &v));
    if (set) cfg->max_connections = (int)v;
    CL_GUARD(kms_cfg_int(root, "request_timeout", 1, KMS_REQUEST_TIMEOUT_MAX, &set, &v));
    if (set) cfg->request_timeout = (int)v;
    CL_GUARD(kms_cfg_string(root, "", "region", 64, &s));
    if (s != NULL) CL_GUARD(kms_cfg_region(s, cfg));
    json_t *regions = json_object_get(root, "regions");
    if (regions != NULL) CL_GUARD(kms_cfg_regions(regions, s != NULL, cfg));
    CL_ENSURE(json_object_get(root, "data_dir") != NULL, CL_ERR_USAGE, "'data_dir' is required");
    CL_GUARD(kms_cfg_path(root, "", "data_dir", base_dir, cfg->data_dir, sizeof(cfg->data_dir)));
    CL_GUARD(kms_cfg_path(root, "", "audit_log", base_dir, cfg->audit_path, sizeof(cfg->audit_path)));
    json_t *o;
    if ((o = json_object_get(root, "store")) != NULL) CL_GUARD(kms_cfg_store(o, base_dir, cfg));
    if ((o = json_object_get(root, "root_key")) != NULL) CL_GUARD(kms_cfg_root_key(o, base_dir, cfg));
    if ((o = json_object_get(root, "tls")) != NULL) CL_GUARD(kms_cfg_tls(o, base_dir, cfg));
    if ((o = json_object_get(root, "attestation_roots")) != NULL) CL_GUARD(kms_cfg_attest_roots(o, base_dir, cfg));
    CL_GUARD(kms_cfg_int(root, "attestation_max_age", 1, 86400, &set, &v));
    if (set) cfg->attest_max_age_ms = (uint64_t)v * 1000;
    if ((o = json_object_get(root, "training")) != NULL) CL_GUARD(kms_config_parse_training(o, base_dir, cfg));
    o = json_object_get(root, "principals");
    CL_ENSURE(o != NULL, CL_ERR_USAGE, "'principals' is required: nobody could call a KMS without one");
    CL_GUARD(kms_cfg_principals(o, cfg));
    return CL_OK;
}

/* A parsed document holds the principals' secrets: wipe its strings (jansson frees without
 * wiping). */
static void kms_cfg_wipe_principals(json_t *ps)
{
    size_t i;
    json_t *e;
    json_array_foreach(ps, i, e)
    {
        const char *sv = json_string_value(json_object_get(e, "secret"));
        if (sv != NULL) cl_memzero((void *)(uintptr_t)sv, strlen(sv));
    }
}

cl_status kms_config_parse(const char *text, size_t len, const char *base_dir, kms_config *cfg)
{
    CL_ENSURE(len <= KMS_CONFIG_MAX, CL_ERR_USAGE, "the configuration is %zu bytes, over %zu", len, KMS_CONFIG_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE(root != NULL, CL_ERR_USAGE, "not JSON: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    cl_status rc = kms_cfg_apply(root, base_dir, cfg);
    if (rc != CL_OK) kms_config_free(cfg);
    kms_cfg_wipe_principals(json_object_get(root, "principals"));
    /* And the database connection string, which may carry a password. */
    const char *ci = json_string_value(json_object_get(json_object_get(root, "store"), "conninfo"));
    if (ci != NULL) cl_memzero(CL_UNCONST(ci), strlen(ci));
    json_decref(root);
    return rc;
}

cl_status kms_config_load(const char *path, kms_config *cfg)
{
    cl_status rc = CL_OK;
    cl_buf text;
    cl_buf_init_secret(&text, KMS_CONFIG_MAX);
    CL_GUARD_CTX_GOTO(cl_buf_reserve(&text, 64 << 10), "config %s", path);
    char base[KMS_PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        (void)snprintf(base, sizeof(base), ".");
    else
        (void)snprintf(base, sizeof(base), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    rc = cl_buf_read_file(&text, path);
    if (rc == CL_ERR_LIMIT) CL_FAIL_GOTO(CL_ERR_USAGE, "config %s is over %zu bytes", path, KMS_CONFIG_MAX);
    if (rc != CL_OK) {
        (void)cl_error_wrap("config %s", path);
        goto out;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0)
        CL_LOG_WARN("config %s is readable by group or others and holds principals' secrets (chmod 600 it)", path);
    CL_GUARD_CTX_GOTO(kms_config_parse((const char *)text.data, text.len, base, cfg), "config %s", path);
out:
    cl_buf_free(&text);
    return rc;
}

cl_status kms_passphrase_read(const kms_config *cfg, cl_buf *pass)
{
    CL_GUARD(cl_buf_reserve(pass, KMS_PASSPHRASE_MAX + 2));
    if (cfg->passphrase_env[0] != '\0') {
        char *v = getenv(cfg->passphrase_env);
        CL_ENSURE(v != NULL, CL_ERR_USAGE, "environment variable %s (root_key.passphrase_env) is not set",
                  cfg->passphrase_env);
        size_t n = strlen(v);
        cl_status rc = n <= KMS_PASSPHRASE_MAX ? cl_buf_append(pass, v, n) : CL_ERR_LIMIT;
        /* Out of /proc/PID/environ and of any child's environment. */
        cl_memzero(v, n);
        (void)unsetenv(cfg->passphrase_env);
        CL_ENSURE(rc == CL_OK, CL_ERR_USAGE, "the passphrase in %s is over %d bytes", cfg->passphrase_env,
                  KMS_PASSPHRASE_MAX);
        return CL_OK;
    }
    const char *path = cfg->passphrase_file;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open passphrase file %s", path);
    cl_status rc = CL_OK;
    struct stat sb;
    if (fstat(fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat %s", path);
    CL_ENSURE_GOTO((sb.st_mode & 077) == 0, CL_ERR_DENIED,
                   "passphrase file %s is readable by group or others (chmod 600 it)", path);
    CL_ENSURE_GOTO(S_ISREG(sb.st_mode) && sb.st_size <= KMS_PASSPHRASE_MAX + 1, CL_ERR_USAGE,
                   "passphrase file %s must be a regular file of at most %d bytes", path, KMS_PASSPHRASE_MAX);
    CL_GUARD_GOTO(cl_buf_resize(pass, (size_t)sb.st_size));
    size_t got = 0;
    while (got < pass->len) {
        ssize_t r = read(fd, pass->data + got, pass->len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read %s", path);
        got += (size_t)r;
    }
    /* One trailing newline is the editor's, not the passphrase's. */
    (void)cl_buf_chomp(pass, '\n');
    (void)cl_buf_chomp(pass, '\r');
out:
    close(fd);
    if (rc != CL_OK) cl_buf_reset(pass);
    return rc;
}

cl_status kms_principal_add(kms_config *cfg, const char *access_key_id, const char *secret, const char *arn)
{
    cl_status rc = CL_OK;
    kms_principal p;
    CL_ENSURE(cfg->n_principals < KMS_CONFIG_PRINCIPALS_MAX, CL_ERR_USAGE, "at most %d principals",
              KMS_CONFIG_PRINCIPALS_MAX);
    CL_GUARD_GOTO(kms_principal_make(access_key_id, secret, arn, &p));
    for (size_t j = 0; j < cfg->n_principals; j++)
        CL_ENSURE_GOTO(strcmp(cfg->principals[j].access_key_id, p.access_key_id) != 0, CL_ERR_USAGE,
                       "access key id %s is given twice", p.access_key_id);
    kms_principal *all = cl_secure_alloc((cfg->n_principals + 1) * sizeof(*all));
    CL_ENSURE_GOTO(all != NULL, CL_ERR_NOMEM, "out of memory");
    if (cfg->n_principals > 0) memcpy(all, cfg->principals, cfg->n_principals * sizeof(*all));
    all[cfg->n_principals] = p;
    cl_secure_free(cfg->principals); /* wipes the old copy */
    cfg->principals = all;
    cfg->n_principals++;
out:
    cl_memzero(&p, sizeof(p));
    return rc;
}

cl_status kms_principals_parse(const char *text, size_t len, kms_config *cfg)
{
    CL_ENSURE(len <= KMS_CONFIG_MAX, CL_ERR_USAGE, "the principals are %zu bytes, over %zu", len, KMS_CONFIG_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE(root != NULL, CL_ERR_USAGE, "not JSON: line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    cl_status rc = kms_cfg_principals(root, cfg);
    kms_cfg_wipe_principals(root);
    json_decref(root);
    return rc;
}

cl_status kms_principals_load(const char *path, kms_config *cfg)
{
    cl_status rc = CL_OK;
    cl_buf text;
    cl_buf_init_secret(&text, KMS_CONFIG_MAX);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot open %s", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat %s", path);
    /* It holds secrets: refused, not warned about, when others may read it. */
    CL_ENSURE_GOTO((sb.st_mode & 077) == 0, CL_ERR_DENIED,
                   "%s is readable or writable by group or others and holds principals' secrets (chmod 600 it)", path);
    CL_ENSURE_GOTO(S_ISREG(sb.st_mode) && (uint64_t)sb.st_size <= KMS_CONFIG_MAX, CL_ERR_USAGE,
                   "%s must be a regular file of at most %zu bytes", path, KMS_CONFIG_MAX);
    CL_GUARD_GOTO(cl_buf_resize(&text, (size_t)sb.st_size));
    for (size_t got = 0; got < text.len;) {
        ssize_t r = read(fd, text.data + got, text.len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read %s", path);
        got += (size_t)r;
    }
    CL_GUARD_CTX_GOTO(kms_principals_parse((const char *)text.data, text.len, cfg), "%s", path);
out:
    if (fd >= 0) (void)close(fd);
    cl_buf_free(&text);
    return rc;
}

cl_status kms_principals_from_env(const char *name, kms_config *cfg)
{
    char *v = getenv(name);
    if (v == NULL) return CL_OK;
    size_t n = strlen(v);
    cl_status rc = kms_principals_parse(v, n, cfg);
    if (rc != CL_OK) (void)cl_error_wrap("environment variable %s", name);
    /* Out of /proc/PID/environ and of any child's environment. */
    cl_memzero(v, n);
    (void)unsetenv(name);
    return rc;
}
