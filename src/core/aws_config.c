/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS settings as the SDKs and the aws CLI resolve them (cloister/aws_config.h has the
 * order and its sources), and cl_kms_client_from_env / cl_kms_client_from_aws on top.
 *
 * This file, not kms_client.c, holds them so that a program that configures its KMS
 * client itself (cloister-infer in an enclave: worker.json) does not link a reader of
 * files from a home directory it does not have.
 */
#include "cloister/aws_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cloister/kms_client.h"

#define AWS_WS " \t"
/* Bytes that have no place in a text file people edit (tab, CR LF aside). */
#define AWS_CONTROL \
    "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d" \
    "\x1e\x1f\x7f"
#define AWS_SECTION_NAME_MAX 256
#define AWS_KEY_NAME_MAX 128

/* --- the INI dialect ---------------------------------------------------------------- */

typedef struct aws_ini {
    const char *name;
    cl_aws_ini_fn fn;
    void *arg;
    cl_reader sections[CL_AWS_SECTIONS_MAX];
    size_t section_lines[CL_AWS_SECTIONS_MAX];
    size_t nsections;
    cl_reader keys[CL_AWS_KEYS_MAX];
    size_t key_lines[CL_AWS_KEYS_MAX];
    size_t nkeys;
    bool in_section;
    cl_reader section;
    /* The setting that more-indented lines continue. */
    bool open;
    bool nested; /* its value on its own line is empty: the lines below are sub-settings */
    size_t open_indent;
    cl_aws_ini_entry pending;
} aws_ini;

/* A name from the file for a message: printable, bounded. */
static const char *aws_show(const cl_reader *r, char *buf, size_t n)
{
    const uint8_t *p;
    size_t len;
    cl_reader_rest(r, &p, &len);
    return cl_bytes_show(p, len, buf, n);
}

static CL_MUST_USE cl_status aws_ini_flush(aws_ini *st)
{
    if (!st->open) return CL_OK;
    st->open = false;
    return st->fn(st->arg, &st->pending);
}

static CL_MUST_USE cl_status aws_ini_section(aws_ini *st, cl_reader rest, size_t no)
{
    char shown[80];
    cl_reader name;
    bool found;
    CL_GUARD(cl_reader_skip(&rest, 1));
    cl_reader_until(&rest, ']', &name, &found);
    CL_ENSURE(found, CL_ERR_FORMAT, "%s line %zu: a section header without its closing ']'", st->name, no);
    CL_GUARD(cl_reader_skip(&rest, 1));
    (void)cl_reader_skip_any(&rest, AWS_WS);
    CL_ENSURE(cl_reader_remaining(&rest) == 0 || cl_reader_next_is(&rest, '#') || cl_reader_next_is(&rest, ';'),
              CL_ERR_FORMAT, "%s line %zu: text after the section header's ']'", st->name, no);
    CL_ENSURE(cl_reader_remaining(&name) > 0, CL_ERR_FORMAT, "%s line %zu: a section header with no name", st->name,
              no);
    CL_ENSURE(cl_reader_remaining(&name) <= AWS_SECTION_NAME_MAX, CL_ERR_LIMIT,
              "%s line %zu: a section name of over %d bytes", st->name, no, AWS_SECTION_NAME_MAX);
    for (size_t i = 0; i < st->nsections; i++)
        CL_ENSURE(!cl_reader_equal(&st->sections[i], &name, false), CL_ERR_FORMAT,
                  "%s line %zu: section [%s] is already at line %zu; a section may appear once in a file (the "
                  "aws CLI refuses the file too)",
                  st->name, no, aws_show(&name, shown, sizeof(shown)), st->section_lines[i]);
    CL_ENSURE(st->nsections < CL_AWS_SECTIONS_MAX, CL_ERR_LIMIT, "%s line %zu: more than %d sections", st->name, no,
              CL_AWS_SECTIONS_MAX);
    st->sections[st->nsections] = name;
    st->section_lines[st->nsections++] = no;
    st->in_section = true;
    st->section = name;
    st->nkeys = 0;
    cl_aws_ini_entry e = {.section = name, .line = no};
    return st->fn(st->arg, &e);
}

static CL_MUST_USE cl_status aws_ini_setting(aws_ini *st, cl_reader rest, size_t indent, size_t no)
{
    char shown[80], sec[80];
    CL_ENSURE(st->in_section, CL_ERR_FORMAT, "%s line %zu: a setting before any [section] header", st->name, no);
    cl_reader key;
    bool found;
    cl_reader_until_any(&rest, "=:", &key, &found);
    CL_ENSURE(found, CL_ERR_FORMAT, "%s line %zu: expected \"name = value\", a [section] header or a # comment",
              st->name, no);
    CL_GUARD(cl_reader_skip(&rest, 1));
    cl_reader_trim(&key, AWS_WS);
    cl_reader_trim(&rest, AWS_WS);
    CL_ENSURE(cl_reader_remaining(&key) > 0, CL_ERR_FORMAT, "%s line %zu: a setting without a name before '='",
              st->name, no);
    CL_ENSURE(cl_reader_remaining(&key) <= AWS_KEY_NAME_MAX, CL_ERR_LIMIT,
              "%s line %zu: a setting name of over %d bytes", st->name, no, AWS_KEY_NAME_MAX);
    CL_ENSURE(cl_reader_remaining(&rest) <= CL_AWS_VALUE_MAX, CL_ERR_LIMIT,
              "%s line %zu: the value of %s is over %d bytes", st->name, no, aws_show(&key, shown, sizeof(shown)),
              CL_AWS_VALUE_MAX);
    for (size_t i = 0; i < st->nkeys; i++)
        CL_ENSURE(!cl_reader_equal(&st->keys[i], &key, true), CL_ERR_FORMAT,
                  "%s line %zu: %s is already set in [%s] at line %zu; a setting may appear once in a section "
                  "(the aws CLI refuses the file too)",
                  st->name, no, aws_show(&key, shown, sizeof(shown)), aws_show(&st->section, sec, sizeof(sec)),
                  st->key_lines[i]);
    CL_ENSURE(st->nkeys < CL_AWS_KEYS_MAX, CL_ERR_LIMIT, "%s line %zu: more than %d settings in [%s]", st->name, no,
              CL_AWS_KEYS_MAX, aws_show(&st->section, sec, sizeof(sec)));
    st->keys[st->nkeys] = key;
    st->key_lines[st->nkeys++] = no;
    memset(&st->pending, 0, sizeof(st->pending));
    st->pending.section = st->section;
    st->pending.key = key;
    st->pending.value = rest;
    st->pending.line = no;
    st->open = true;
    st->nested = cl_reader_remaining(&rest) == 0;
    st->open_indent = indent;
    return CL_OK;
}

/* A more-indented line under an open setting: a sub-setting, or more of its value. */
static CL_MUST_USE cl_status aws_ini_continuation(aws_ini *st, cl_reader rest, size_t no)
{
    char shown[80];
    if (!st->nested) {
        st->pending.continued = true;
        return CL_OK;
    }
    cl_reader sub;
    bool found;
    cl_reader_until(&rest, '=', &sub, &found);
    CL_ENSURE(found, CL_ERR_FORMAT, "%s line %zu: the lines indented under \"%s =\" must be \"name = value\"", st->name,
              no, aws_show(&st->pending.key, shown, sizeof(shown)));
    CL_GUARD(cl_reader_skip(&rest, 1));
    cl_reader_trim(&sub, AWS_WS);
    cl_reader_trim(&rest, AWS_WS);
    CL_ENSURE(cl_reader_remaining(&sub) > 0 && cl_reader_remaining(&sub) <= AWS_KEY_NAME_MAX, CL_ERR_FORMAT,
              "%s line %zu: a sub-setting needs a name of 1 to %d bytes before '='", st->name, no, AWS_KEY_NAME_MAX);
    CL_ENSURE(cl_reader_remaining(&rest) <= CL_AWS_VALUE_MAX, CL_ERR_LIMIT, "%s line %zu: a value of over %d bytes",
              st->name, no, CL_AWS_VALUE_MAX);
    cl_aws_ini_entry e = {.section = st->section, .key = st->pending.key, .subkey = sub, .value = rest, .line = no};
    return st->fn(st->arg, &e);
}

static CL_MUST_USE cl_status aws_ini_line(aws_ini *st, cl_reader line, size_t no)
{
    cl_reader_trim(&line, "\r"); /* CR LF line ends */
    /* cl_reader_until_any cannot stop at NUL (its set is a C string): that one first. */
    cl_reader scan = line, text;
    bool found;
    cl_reader_until(&scan, 0, &text, &found);
    if (!found) {
        scan = line;
        cl_reader_until_any(&scan, AWS_CONTROL, &text, &found);
    }
    uint8_t bad = 0;
    CL_ENSURE(!found || !cl_reader_peek_u8(&scan, &bad), CL_ERR_FORMAT,
              "%s line %zu: control byte 0x%02x; the file must be text", st->name, no, bad);
    cl_reader rest = line;
    size_t indent = cl_reader_skip_any(&rest, AWS_WS);
    cl_reader_trim(&rest, AWS_WS);
    /* A blank or comment line leaves the setting above open to more-indented lines. */
    if (cl_reader_remaining(&rest) == 0 || cl_reader_next_is(&rest, '#') || cl_reader_next_is(&rest, ';')) return CL_OK;
    if (st->open && indent > st->open_indent) return aws_ini_continuation(st, rest, no);
    CL_GUARD(aws_ini_flush(st));
    if (cl_reader_next_is(&rest, '[')) return aws_ini_section(st, rest, no);
    return aws_ini_setting(st, rest, indent, no);
}

cl_status cl_aws_ini_parse(const uint8_t *p, size_t n, const char *name, cl_aws_ini_fn fn, void *arg)
{
    CL_ENSURE(n <= CL_AWS_FILE_MAX, CL_ERR_LIMIT, "%s is %zu bytes; an AWS config or credentials file may have %zu",
              name, n, CL_AWS_FILE_MAX);
    aws_ini *st = calloc(1, sizeof(*st));
    CL_ENSURE(st != NULL, CL_ERR_NOMEM, "out of memory reading %s", name);
    st->name = name;
    st->fn = fn;
    st->arg = arg;
    cl_status rc = CL_OK;
    cl_reader r = cl_reader_make(p, n);
    for (size_t no = 1; cl_reader_remaining(&r) > 0; no++) {
        cl_reader line;
        bool found;
        cl_reader_until(&r, '\n', &line, &found);
        if (found) CL_GUARD_GOTO(cl_reader_skip(&r, 1));
        CL_GUARD_GOTO(aws_ini_line(st, line, no));
    }
    CL_GUARD_GOTO(aws_ini_flush(st));
out:
    free(st);
    return rc;
}

/* --- one profile's settings from one file ------------------------------------------- */

/* The settings read from a profile, and what could have run to get credentials. */
typedef struct aws_profile {
    bool exists;
    char where[300]; /* "FILE [section]" */
    cl_buf key_id, secret, token, region, endpoint_url, ca_bundle, services, ignore_endpoints;
    bool has_security_token;
    char runs[40]; /* credential_process, role_arn, ...: the first one seen */
} aws_profile;

static void aws_profile_init(aws_profile *v)
{
    memset(v, 0, sizeof(*v));
    cl_buf_init(&v->key_id, CL_AWS_VALUE_MAX);
    cl_buf_init_secret(&v->secret, CL_AWS_VALUE_MAX);
    cl_buf_init_secret(&v->token, CL_AWS_VALUE_MAX);
    cl_buf_init(&v->region, CL_AWS_VALUE_MAX);
    cl_buf_init(&v->endpoint_url, CL_AWS_VALUE_MAX);
    cl_buf_init(&v->ca_bundle, CL_AWS_VALUE_MAX);
    cl_buf_init(&v->services, CL_AWS_VALUE_MAX);
    cl_buf_init(&v->ignore_endpoints, CL_AWS_VALUE_MAX);
}

static void aws_profile_free(aws_profile *v)
{
    cl_buf *all[] = {&v->key_id,       &v->secret,    &v->token,    &v->region,
                     &v->endpoint_url, &v->ca_bundle, &v->services, &v->ignore_endpoints};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) cl_buf_free(all[i]);
}

typedef struct aws_reader {
    const char *file;
    bool config_file;    /* sections are "default" and "profile NAME"; else the profile's name */
    const char *profile; /* the profile wanted */
    const char *service; /* pass 2: the service's sub-settings in [services NAME] */
    const char *services_name;
    aws_profile *v;
    cl_buf *service_endpoint;
    bool in_profile, in_services;
} aws_reader;

/* "profile NAME" / "services NAME" as botocore's shlex.split takes them: the word, blanks,
 * then a name without blanks (a section that is not two words is not a profile). */
static bool aws_section_is(cl_reader sec, const char *word, const char *name)
{
    if (!cl_reader_starts_with_str(&sec, word) || cl_reader_skip(&sec, strlen(word)) != CL_OK) return false;
    if (cl_reader_skip_any(&sec, AWS_WS) == 0) return false;
    cl_reader_trim(&sec, AWS_WS);
    return cl_reader_is(&sec, name, false);
}

static CL_MUST_USE cl_status aws_take(const cl_aws_ini_entry *e, const char *file, cl_buf *into)
{
    char shown[80];
    CL_ENSURE(!e->continued, CL_ERR_FORMAT,
              "%s line %zu: the value of %s goes on over the lines below it; put it on one line", file, e->line,
              aws_show(&e->key, shown, sizeof(shown)));
    const uint8_t *p;
    size_t n;
    cl_reader_rest(&e->value, &p, &n);
    cl_buf_reset(into);
    return cl_buf_append(into, p, n);
}

static CL_MUST_USE cl_status aws_read_entry(void *arg, const cl_aws_ini_entry *e)
{
    aws_reader *rd = arg;
    aws_profile *v = rd->v;
    bool header = cl_reader_remaining(&e->key) == 0;
    if (rd->service != NULL) { /* pass 2: [services NAME] <service> = / endpoint_url = URL */
        if (header)
            rd->in_services = aws_section_is(e->section, "services", rd->services_name);
        else if (rd->in_services && cl_reader_is(&e->key, rd->service, true) &&
                 cl_reader_is(&e->subkey, "endpoint_url", false))
            return aws_take(e, rd->file, rd->service_endpoint);
        return CL_OK;
    }
    if (header) {
        if (rd->config_file)
            rd->in_profile = (strcmp(rd->profile, "default") == 0 && cl_reader_is(&e->section, "default", false)) ||
                             aws_section_is(e->section, "profile", rd->profile);
        else
            rd->in_profile = cl_reader_is(&e->section, rd->profile, false);
        if (rd->in_profile) {
            char shown[AWS_SECTION_NAME_MAX];
            v->exists = true;
            (void)snprintf(v->where, sizeof(v->where), "%s [%s]", rd->file,
                           aws_show(&e->section, shown, sizeof(shown)));
        }
        return CL_OK;
    }
    if (!rd->in_profile || cl_reader_remaining(&e->subkey) > 0) return CL_OK;
    const struct {
        const char *name;
        cl_buf *into;
    } wanted[] = {
        /* botocore reads the older aws_security_token before aws_session_token */
        {"aws_security_token", &v->token},
        {"aws_session_token", &v->token},
        {"aws_access_key_id", &v->key_id},
        {"aws_secret_access_key", &v->secret},
        {"region", &v->region},
        {"endpoint_url", &v->endpoint_url},
        {"ca_bundle", &v->ca_bundle},
        {"services", &v->services},
        {"ignore_configured_endpoint_urls", &v->ignore_endpoints},
    };
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
        if (cl_reader_is(&e->key, wanted[i].name, true)) {
            if (i == 1 && v->has_security_token) return CL_OK;
            if (i == 0) v->has_security_token = true;
            return aws_take(e, rd->file, wanted[i].into);
        }
    static const char *const runs[] = {"credential_process",      "role_arn",         "sso_start_url", "sso_session",
                                       "web_identity_token_file", "credential_source"};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
        if (v->runs[0] == '\0' && cl_reader_is(&e->key, runs[i], true))
            (void)snprintf(v->runs, sizeof(v->runs), "%s", runs[i]);
    return CL_OK;
}

/* The file's path: the variable's value or ~/.aws/<name>, a leading ~/ meaning $HOME. NULL
 * (CL_OK) when there is no home to look in. */
static CL_MUST_USE cl_status aws_file_path(const char *var, const char *name, cl_buf *path)
{
    const char *v = getenv(var);
    const char *home = getenv("HOME");
    if (v == NULL || v[0] == '\0') {
        if (home == NULL || home[0] == '\0') return CL_OK;
        return cl_buf_printf(path, "%s/.aws/%s", home, name);
    }
    if (strncmp(v, "~/", 2) == 0 && home != NULL) return cl_buf_printf(path, "%s/%s", home, v + 2);
    return cl_buf_append_str(path, v);
}

/* Reads one file's settings for the profile (and, with service, the endpoint of its
 * services section). A file that is not there is skipped, as botocore skips it. */
static CL_MUST_USE cl_status aws_read_file(const char *var, const char *name, bool config_file, const char *profile,
                                           const char *service, aws_profile *v, cl_buf *service_endpoint)
{
    cl_status rc = CL_OK;
    cl_buf path, data;
    cl_buf_init(&path, 4096);
    cl_buf_init_secret(&data, CL_AWS_FILE_MAX);
    CL_GUARD_GOTO(aws_file_path(var, name, &path));
    struct stat sb;
    if (path.len == 0 || stat(cl_buf_cstr(&path), &sb) != 0 || !S_ISREG(sb.st_mode)) goto out;
    CL_ENSURE_GOTO((uint64_t)sb.st_size <= CL_AWS_FILE_MAX, CL_ERR_LIMIT,
                   "%s is %llu bytes; an AWS config or credentials file may have %zu", cl_buf_cstr(&path),
                   (unsigned long long)sb.st_size, CL_AWS_FILE_MAX);
    CL_GUARD_GOTO(cl_buf_read_file(&data, cl_buf_cstr(&path)));
    aws_reader rd = {.file = cl_buf_cstr(&path), .config_file = config_file, .profile = profile, .v = v};
    CL_GUARD_GOTO(cl_aws_ini_parse(data.data, data.len, rd.file, aws_read_entry, &rd));
    if (service != NULL && config_file && v->services.len > 0) {
        aws_reader rs = {.file = rd.file,
                         .service = service,
                         .services_name = cl_buf_cstr(&v->services),
                         .v = v,
                         .service_endpoint = service_endpoint};
        CL_GUARD_GOTO(cl_aws_ini_parse(data.data, data.len, rs.file, aws_read_entry, &rs));
    }
out:
    cl_buf_free(&path);
    cl_buf_free(&data);
    return rc;
}

/* --- resolution --------------------------------------------------------------------- */

static const char *aws_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool aws_true(const char *v) { return v != NULL && strcasecmp(v, "true") == 0; }

/* Text we copy into a request or a file name: printable ASCII with no blanks (a key id, a
 * secret, a token, a URL). The value itself is not shown: it may be a secret. */
static bool aws_token_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) return false;
    return n > 0;
}

/* A region name as botocore's validate_region_name takes it: 1 to 63 letters, digits and
 * hyphens, neither first nor last a hyphen. */
static bool aws_region_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-'))
            return false;
    return true;
}

void cl_aws_config_init(cl_aws_config *c)
{
    memset(c, 0, sizeof(*c));
    cl_buf_init_secret(&c->secret_access_key, CL_AWS_VALUE_MAX);
    cl_buf_init_secret(&c->session_token, CL_AWS_VALUE_MAX);
}

void cl_aws_config_free(cl_aws_config *c)
{
    free(c->region);
    free(c->endpoint_url);
    free(c->ca_bundle);
    free(c->access_key_id);
    cl_buf_free(&c->secret_access_key);
    cl_buf_free(&c->session_token);
    cl_aws_config_init(c);
}

static CL_MUST_USE cl_status aws_set(char **field, const char *v, char *from, size_t from_size, const char *src)
{
    *field = strdup(v);
    CL_ENSURE(*field != NULL, CL_ERR_NOMEM, "out of memory");
    if (from != NULL) (void)snprintf(from, from_size, "%s", src);
    return CL_OK;
}

/* The credentials: from the environment, unless --profile named the profile, else from
 * the credentials file's profile, else from the config file's. */
static CL_MUST_USE cl_status aws_credentials(const cl_aws_settings *s, const aws_profile *cred, const aws_profile *conf,
                                             cl_aws_config *out)
{
    const char *id = aws_env("AWS_ACCESS_KEY_ID"), *secret = aws_env("AWS_SECRET_ACCESS_KEY");
    if (s->profile == NULL && (id != NULL || secret != NULL)) {
        CL_ENSURE(id != NULL, CL_ERR_USAGE, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both");
        CL_ENSURE(secret != NULL, CL_ERR_USAGE, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both");
        CL_GUARD(aws_set(&out->access_key_id, id, out->credentials_from, sizeof(out->credentials_from),
                         "the environment (AWS_ACCESS_KEY_ID)"));
        CL_GUARD(cl_buf_append_str(&out->secret_access_key, secret));
        const char *token = aws_env("AWS_SESSION_TOKEN");
        if (token != NULL) CL_GUARD(cl_buf_append_str(&out->session_token, token));
        return CL_OK;
    }
    const aws_profile *from = cred->key_id.len > 0 ? cred : conf->key_id.len > 0 ? conf : NULL;
    if (from == NULL) {
        CL_ENSURE(conf->runs[0] == '\0' && cred->runs[0] == '\0', CL_ERR_UNSUPPORTED,
                  "profile %s gets its credentials through %s, which cloister does not run; export them for it "
                  "with: eval \"$(aws configure export-credentials --profile %s --format env)\"",
                  out->profile, conf->runs[0] ? conf->runs : cred->runs, out->profile);
        CL_FAIL(CL_ERR_USAGE,
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put aws_access_key_id and "
                "aws_secret_access_key in profile %s of ~/.aws/credentials (aws configure writes them)",
                out->profile);
    }
    CL_ENSURE(from->secret.len > 0, CL_ERR_USAGE, "%s has aws_access_key_id but no aws_secret_access_key", from->where);
    CL_ENSURE(aws_token_ok(cl_buf_cstr(&from->key_id), from->key_id.len) &&
                  aws_token_ok(cl_buf_cstr(&from->secret), from->secret.len) &&
                  (from->token.len == 0 || aws_token_ok(cl_buf_cstr(&from->token), from->token.len)),
              CL_ERR_FORMAT,
              "%s: aws_access_key_id, aws_secret_access_key and aws_session_token must be printable ASCII without "
              "blanks",
              from->where);
    CL_GUARD(aws_set(&out->access_key_id, cl_buf_cstr(&from->key_id), out->credentials_from,
                     sizeof(out->credentials_from), from->where));
    CL_GUARD(cl_buf_append(&out->secret_access_key, from->secret.data, from->secret.len));
    if (from->token.len > 0) CL_GUARD(cl_buf_append(&out->session_token, from->token.data, from->token.len));
    return CL_OK;
}

/* The endpoint, in the order of the SDKs' "Service-specific endpoints" and the aws CLI's
 * configured_endpoint_urls test suite: explicit, AWS_ENDPOINT_URL_<SERVICE>,
 * AWS_ENDPOINT_URL, the services section, the profile's endpoint_url. */
static CL_MUST_USE cl_status aws_endpoint(const cl_aws_settings *s, const char *service, const aws_profile *conf,
                                          const cl_buf *service_endpoint, cl_aws_config *out)
{
    char var[64], where[340];
    (void)snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", service);
    for (char *c = var; *c != '\0'; c++)
        if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 'a' + 'A');
    const char *v = NULL, *src = NULL;
    if (s->endpoint_url != NULL) {
        v = s->endpoint_url, src = "--endpoint-url";
    } else if (!aws_true(aws_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) &&
               !aws_true(cl_buf_cstr(&conf->ignore_endpoints))) {
        if ((v = aws_env(var)) != NULL) {
            src = var;
        } else if ((v = aws_env("AWS_ENDPOINT_URL")) != NULL) {
            src = "AWS_ENDPOINT_URL";
        } else if (service_endpoint->len > 0) {
            (void)snprintf(where, sizeof(where), "%s (services %s)", conf->where, cl_buf_cstr(&conf->services));
            v = cl_buf_cstr(service_endpoint), src = where;
        } else if (conf->endpoint_url.len > 0) {
            v = cl_buf_cstr(&conf->endpoint_url), src = conf->where;
        }
    }
    if (v == NULL) return CL_OK;
    CL_ENSURE(aws_token_ok(v, strlen(v)), CL_ERR_USAGE, "the endpoint URL from %s has a blank or a control character",
              src);
    return aws_set(&out->endpoint_url, v, out->endpoint_from, sizeof(out->endpoint_from), src);
}

cl_status cl_aws_config_resolve(const cl_aws_settings *s, const char *service, cl_aws_config *out)
{
    cl_status rc = CL_OK;
    aws_profile cred, conf;
    aws_profile_init(&cred);
    aws_profile_init(&conf);
    cl_buf service_endpoint;
    cl_buf_init(&service_endpoint, CL_AWS_VALUE_MAX);
    const char *profile = s->profile != NULL ? s->profile : aws_env("AWS_PROFILE");
    bool named = profile != NULL;
    if (profile == NULL) profile = "default";
    CL_ENSURE_GOTO(strlen(profile) <= CL_AWS_NAME_MAX, CL_ERR_USAGE, "a profile name has at most %d bytes",
                   CL_AWS_NAME_MAX);
    (void)snprintf(out->profile, sizeof(out->profile), "%s", profile);
    CL_GUARD_GOTO(aws_read_file("AWS_CONFIG_FILE", "config", true, profile, service, &conf, &service_endpoint));
    CL_GUARD_GOTO(aws_read_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", false, profile, NULL, &cred, NULL));
    /* botocore: ProfileNotFound, "The config profile (NAME) could not be found". */
    CL_ENSURE_GOTO(!named || strcmp(profile, "default") == 0 || conf.exists || cred.exists, CL_ERR_USAGE,
                   "profile %s (from %s) is in neither the AWS config file nor the credentials file "
                   "(AWS_CONFIG_FILE, default ~/.aws/config; AWS_SHARED_CREDENTIALS_FILE, default "
                   "~/.aws/credentials)",
                   profile, s->profile != NULL ? "--profile" : "AWS_PROFILE");

    const char *region = s->region, *rsrc = "--region";
    if (region == NULL && (region = aws_env("AWS_REGION")) != NULL) rsrc = "AWS_REGION";
    if (region == NULL && (region = aws_env("AWS_DEFAULT_REGION")) != NULL) rsrc = "AWS_DEFAULT_REGION";
    if (region == NULL && conf.region.len > 0) region = cl_buf_cstr(&conf.region), rsrc = conf.where;
    CL_ENSURE_GOTO(region != NULL, CL_ERR_USAGE,
                   "no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or put region = ... in "
                   "profile %s of ~/.aws/config (aws configure writes it)",
                   profile);
    if (!aws_region_ok(region)) {
        char shown[80];
        CL_FAIL_GOTO(CL_ERR_USAGE, "the AWS region from %s is '%s', not a region name such as us-east-1", rsrc,
                     cl_bytes_show((const uint8_t *)region, strlen(region), shown, sizeof(shown)));
    }
    CL_GUARD_GOTO(aws_set(&out->region, region, out->region_from, sizeof(out->region_from), rsrc));
    CL_GUARD_GOTO(aws_endpoint(s, service, &conf, &service_endpoint, out));
    const char *ca = s->ca_bundle != NULL               ? s->ca_bundle
                     : aws_env("AWS_CA_BUNDLE") != NULL ? aws_env("AWS_CA_BUNDLE")
                     : conf.ca_bundle.len > 0           ? cl_buf_cstr(&conf.ca_bundle)
                                                        : NULL;
    if (ca != NULL) CL_GUARD_GOTO(aws_set(&out->ca_bundle, ca, NULL, 0, NULL));
    CL_GUARD_GOTO(aws_credentials(s, &cred, &conf, out));
out:
    if (rc != CL_OK) cl_aws_config_free(out);
    aws_profile_free(&cred);
    aws_profile_free(&conf);
    cl_buf_free(&service_endpoint);
    return rc;
}

/* --- KMS clients from it ------------------------------------------------------------ */

cl_status cl_kms_client_from_aws(const cl_aws_settings *s, cl_kms_client **out)
{
    return cl_aws_json_client_from_aws(s, &cl_aws_service_kms, out);
}

cl_status cl_aws_json_client_from_aws(const cl_aws_settings *s, const cl_aws_json_service *service, cl_kms_client **out)
{
    cl_status rc = CL_OK;
    cl_aws_config ac;
    cl_aws_config_init(&ac);
    CL_GUARD_GOTO(cl_aws_config_resolve(s, service->config_id, &ac));
    cl_kms_client_config cfg = {
        .service = service,
        .endpoint = ac.endpoint_url,
        .region = ac.region,
        .access_key_id = ac.access_key_id,
        .secret_access_key = cl_buf_cstr(&ac.secret_access_key),
        .session_token = ac.session_token.len > 0 ? cl_buf_cstr(&ac.session_token) : NULL,
        .ca_file = ac.ca_bundle,
    };
    const char *vp = aws_env("CLOISTER_KMS_VSOCK_PORT");
    if (vp != NULL) {
        uint64_t port = 0;
        CL_GUARD_CTX_GOTO(cl_parse_uint(vp, 1, UINT32_MAX, "CLOISTER_KMS_VSOCK_PORT", &port),
                          "CLOISTER_KMS_VSOCK_PORT is a vsock port number");
        cfg.vsock_port = (uint32_t)port;
    }
    CL_GUARD_GOTO(cl_kms_client_new(&cfg, out));
out:
    cl_aws_config_free(&ac);
    return rc;
}

cl_status cl_kms_client_from_env(const char *endpoint, cl_kms_client **out)
{
    cl_aws_settings s = {.endpoint_url = endpoint};
    return cl_kms_client_from_aws(&s, out);
}
