/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS settings resolved as the SDKs and the aws CLI resolve them (cloister/aws_config.h):
 * the files' INI dialect with its refusals, and the order of every source. Expected
 * orders come from the AWS SDKs and Tools Reference Guide and from the aws CLI's own
 * test suite for configured endpoints (tests/functional/configured_endpoint_urls/
 * profile-tests.json in aws/aws-cli: client configuration, then AWS_ENDPOINT_URL_<SERVICE>,
 * then AWS_ENDPOINT_URL, then the services section, then the profile's endpoint_url, and
 * ignore_configured_endpoint_urls dropping all but the client's); the integration test
 * cli_aws_profiles compares the same settings with what the aws CLI itself does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/aws_config.h"

#include "test_util.h"

/* --- the INI dialect ------------------------------------------------------------------ */

typedef struct seen {
    char lines[64][200];
    size_t n;
    int fail_at; /* 1-based entry to fail at; 0: never */
} seen;

static CL_MUST_USE cl_status t_collect(void *arg, const cl_aws_ini_entry *e)
{
    seen *s = arg;
    if (s->fail_at > 0 && (size_t)s->fail_at == s->n + 1) return CL_RAISE(CL_ERR_DENIED, "stop here");
    const uint8_t *p[4];
    size_t n[4];
    cl_reader_rest(&e->section, &p[0], &n[0]);
    cl_reader_rest(&e->key, &p[1], &n[1]);
    cl_reader_rest(&e->subkey, &p[2], &n[2]);
    cl_reader_rest(&e->value, &p[3], &n[3]);
    if (s->n < 64)
        (void)snprintf(s->lines[s->n++], 200, "%zu [%.*s] %.*s.%.*s=%.*s%s", e->line, (int)n[0], (const char *)p[0],
                       (int)n[1], (const char *)p[1], (int)n[2], (const char *)p[2], (int)n[3], (const char *)p[3],
                       e->continued ? " (continued)" : "");
    return CL_OK;
}

static CL_MUST_USE cl_status t_parse(const char *text, seen *s)
{
    memset(s, 0, sizeof(*s));
    return cl_aws_ini_parse((const uint8_t *)text, strlen(text), "F", t_collect, s);
}

static void test_ini_dialect(void **state)
{
    (void)state;
    seen s;
    const char *text = "# comment\r\n"
                       "; also a comment\n"
                       "[default]\r\n"
                       "Region = us-east-1   \r\n"
                       "aws_access_key_id:AKID\n"
                       "\n"
                       "[profile dev]\n"
                       "  indented = yes\n"
                       "services = mine\n"
                       "note = first # not a comment\n"
                       "  more text\n"
                       "empty =\n"
                       "[services mine]\n"
                       "kms =\n"
                       "  endpoint_url = http://127.0.0.1:4599\n"
                       "  # a comment inside\n"
                       "\n"
                       "  other = x=y\n"
                       "[ spaced ]\n";
    assert_ok(t_parse(text, &s));
    static const char *const want[] = {
        "3 [default] .=",
        "4 [default] Region.=us-east-1",
        "5 [default] aws_access_key_id.=AKID",
        "7 [profile dev] .=",
        "8 [profile dev] indented.=yes",
        "9 [profile dev] services.=mine",
        "10 [profile dev] note.=first # not a comment (continued)",
        "12 [profile dev] empty.=",
        "13 [services mine] .=",
        "15 [services mine] kms.endpoint_url=http://127.0.0.1:4599",
        "18 [services mine] kms.other=x=y",
        "14 [services mine] kms.=",
        "19 [ spaced ] .=",
    };
    assert_int_equal(s.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < s.n; i++) assert_string_equal(s.lines[i], want[i]);
    /* An empty file and a file of comments are fine; so is a missing final newline. */
    assert_ok(t_parse("", &s));
    assert_int_equal(s.n, 0);
    assert_ok(t_parse("[a]\nk=v", &s));
    assert_int_equal(s.n, 2);
    /* The callback's failure stops the parse and comes back as it is. */
    memset(&s, 0, sizeof(s));
    s.fail_at = 2;
    const char *two = "[a]\nk = v\nj = w\n";
    assert_fails(cl_aws_ini_parse((const uint8_t *)two, strlen(two), "F", t_collect, &s), CL_ERR_DENIED, "stop here");
}

/* What people get wrong in files they edit: each refused, naming the file and line. */
static void test_ini_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        cl_status code;
        const char *needle;
    } bad[] = {
        {"[a]\nk=1\n[b]\n[a]\n", CL_ERR_FORMAT, "F line 4: section [a] is already at line 1"},
        {"[a]\nRegion=1\nregion=2\n", CL_ERR_FORMAT, "F line 3: region is already set in [a] at line 2"},
        {"k = v\n[a]\n", CL_ERR_FORMAT, "F line 1: a setting before any [section] header"},
        {"[a]\njust words\n", CL_ERR_FORMAT, "F line 2: expected \"name = value\", a [section] header or a # comment"},
        {"[a]\n= v\n", CL_ERR_FORMAT, "F line 2: a setting without a name"},
        {"[a\nk=v\n", CL_ERR_FORMAT, "F line 1: a section header without its closing ']'"},
        {"[a] b\n", CL_ERR_FORMAT, "F line 1: text after the section header's ']'"},
        {"[]\n", CL_ERR_FORMAT, "F line 1: a section header with no name"},
        {"[a]\nk=v\x01w\n", CL_ERR_FORMAT, "F line 2: control byte 0x01"},
        {"[a]\nk=\n  no equals sign\n", CL_ERR_FORMAT, "F line 3: the lines indented under \"k =\" must be"},
        {"[a]\nk=\n  =v\n", CL_ERR_FORMAT, "F line 3: a sub-setting needs a name"},
        {"[a]\nk=v\rw\n", CL_ERR_FORMAT, "F line 2: control byte 0x0d"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen s;
        assert_fails(t_parse(bad[i].text, &s), bad[i].code, bad[i].needle);
    }
    /* A NUL byte (strlen would stop at it: the length is explicit). */
    static const uint8_t nul[] = "[a]\nk=v\0w\n";
    seen s;
    memset(&s, 0, sizeof(s));
    assert_fails(cl_aws_ini_parse(nul, sizeof(nul) - 1, "F", t_collect, &s), CL_ERR_FORMAT,
                 "F line 2: control byte 0x00");
    /* Bounds: the file, a value, the sections, the settings of one section. */
    cl_buf big;
    cl_buf_init(&big, CL_AWS_FILE_MAX + 2);
    assert_ok(cl_buf_resize(&big, CL_AWS_FILE_MAX + 1));
    assert_fails(cl_aws_ini_parse(big.data, big.len, "F", t_collect, &s), CL_ERR_LIMIT, "F is 1048577 bytes");
    cl_buf_reset(&big);
    assert_ok(cl_buf_append_str(&big, "[a]\nk = "));
    for (size_t i = 0; i <= CL_AWS_VALUE_MAX; i++) assert_ok(cl_buf_append_u8(&big, 'v'));
    assert_fails(cl_aws_ini_parse(big.data, big.len, "F", t_collect, &s), CL_ERR_LIMIT,
                 "F line 2: the value of k is over 16384 bytes");
    cl_buf_reset(&big);
    for (int i = 0; i <= CL_AWS_SECTIONS_MAX; i++) assert_ok(cl_buf_printf(&big, "[s%d]\n", i));
    assert_fails(cl_aws_ini_parse(big.data, big.len, "F", t_collect, &s), CL_ERR_LIMIT,
                 "F line 1025: more than 1024 sections");
    cl_buf_reset(&big);
    assert_ok(cl_buf_append_str(&big, "[a]\n"));
    for (int i = 0; i <= CL_AWS_KEYS_MAX; i++) assert_ok(cl_buf_printf(&big, "k%d = v\n", i));
    assert_fails(cl_aws_ini_parse(big.data, big.len, "F", t_collect, &s), CL_ERR_LIMIT,
                 "more than 256 settings in [a]");
    cl_buf_free(&big);
}

/* --- resolution ---------------------------------------------------------------------- */

static const char *const t_vars[] = {"AWS_ACCESS_KEY_ID",
                                     "AWS_SECRET_ACCESS_KEY",
                                     "AWS_SESSION_TOKEN",
                                     "AWS_REGION",
                                     "AWS_DEFAULT_REGION",
                                     "AWS_PROFILE",
                                     "AWS_ENDPOINT_URL",
                                     "AWS_ENDPOINT_URL_KMS",
                                     "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                                     "AWS_CA_BUNDLE",
                                     "AWS_CONFIG_FILE",
                                     "AWS_SHARED_CREDENTIALS_FILE",
                                     "CLOISTER_KMS_VSOCK_PORT"};

static char t_config[512], t_credentials[512];

static void t_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A clean environment whose files are the two given texts (NULL: no such file). */
static void t_setup(const char *config, const char *credentials)
{
    for (size_t i = 0; i < sizeof(t_vars) / sizeof(t_vars[0]); i++) unsetenv(t_vars[i]);
    (void)snprintf(t_config, sizeof(t_config), "%s/config", t_tmpdir());
    (void)snprintf(t_credentials, sizeof(t_credentials), "%s/credentials", t_tmpdir());
    (void)remove(t_config);
    (void)remove(t_credentials);
    if (config != NULL) t_write(t_config, config);
    if (credentials != NULL) t_write(t_credentials, credentials);
    setenv("AWS_CONFIG_FILE", t_config, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", t_credentials, 1);
}

static const char t_creds[] = "[default]\n"
                              "aws_access_key_id = AKDEFAULT\n"
                              "aws_secret_access_key = secret-default\n"
                              "[dev]\n"
                              "aws_access_key_id = AKDEV\n"
                              "aws_secret_access_key = secret-dev\n"
                              "aws_session_token = token-dev\n";

static const char t_conf[] = "[default]\n"
                             "region = us-east-1\n"
                             "[profile dev]\n"
                             "region = eu-west-1\n"
                             "ca_bundle = /etc/dev-ca.pem\n"
                             "[profile keys-in-config]\n"
                             "region = ap-south-1\n"
                             "aws_access_key_id = AKCONF\n"
                             "aws_secret_access_key = secret-conf\n";

static void test_profiles(void **state)
{
    (void)state;
    cl_aws_config c;
    cl_aws_config_init(&c);
    cl_aws_settings none = {0};
    t_setup(t_conf, t_creds);

    /* default profile: credentials file [default], config [default] */
    assert_ok(cl_aws_config_resolve(&none, "kms", &c));
    assert_string_equal(c.profile, "default");
    assert_string_equal(c.access_key_id, "AKDEFAULT");
    assert_string_equal(cl_buf_cstr(&c.secret_access_key), "secret-default");
    assert_true(c.secret_access_key.secret);
    assert_true(c.session_token.secret);
    assert_int_equal(c.session_token.len, 0);
    assert_string_equal(c.region, "us-east-1");
    assert_null(c.endpoint_url);
    assert_null(c.ca_bundle);
    assert_non_null(strstr(c.credentials_from, "credentials [default]"));
    cl_aws_config_free(&c);

    /* AWS_PROFILE: credentials [dev] (with its token), config [profile dev] */
    setenv("AWS_PROFILE", "dev", 1);
    assert_ok(cl_aws_config_resolve(&none, "kms", &c));
    assert_string_equal(c.access_key_id, "AKDEV");
    assert_string_equal(cl_buf_cstr(&c.session_token), "token-dev");
    assert_string_equal(c.region, "eu-west-1");
    assert_string_equal(c.ca_bundle, "/etc/dev-ca.pem");
    cl_aws_config_free(&c);

    /* Environment credentials win over AWS_PROFILE's (botocore leaves the EnvProvider first)... */
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    assert_ok(cl_aws_config_resolve(&none, "kms", &c));
    assert_string_equal(c.access_key_id, "AKENV");
    assert_int_equal(c.session_token.len, 0);
    assert_string_equal(c.region, "eu-west-1"); /* the profile still gives the region */
    cl_aws_config_free(&c);
    /* ...but not over --profile's: "an explicitly provided profile will negate an EnvProvider" */
    cl_aws_settings dev = {.profile = "dev"};
    assert_ok(cl_aws_config_resolve(&dev, "kms", &c));
    assert_string_equal(c.access_key_id, "AKDEV");
    cl_aws_config_free(&c);

    /* Credentials only in the config file's profile. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    cl_aws_settings conf = {.profile = "keys-in-config"};
    assert_ok(cl_aws_config_resolve(&conf, "kms", &c));
    assert_string_equal(c.access_key_id, "AKCONF");
    assert_string_equal(c.region, "ap-south-1");
    cl_aws_config_free(&c);

    /* Region: --region, AWS_REGION, AWS_DEFAULT_REGION, the profile. */
    setenv("AWS_DEFAULT_REGION", "ca-central-1", 1);
    assert_ok(cl_aws_config_resolve(&dev, "kms", &c));
    assert_string_equal(c.region, "ca-central-1");
    assert_string_equal(c.region_from, "AWS_DEFAULT_REGION");
    cl_aws_config_free(&c);
    setenv("AWS_REGION", "sa-east-1", 1);
    assert_ok(cl_aws_config_resolve(&dev, "kms", &c));
    assert_string_equal(c.region, "sa-east-1");
    cl_aws_config_free(&c);
    cl_aws_settings dev_region = {.profile = "dev", .region = "us-west-2"};
    assert_ok(cl_aws_config_resolve(&dev_region, "kms", &c));
    assert_string_equal(c.region, "us-west-2");
    assert_string_equal(c.region_from, "--region");
    cl_aws_config_free(&c);

    /* CA bundle: --ca-bundle, AWS_CA_BUNDLE, the profile's ca_bundle. */
    setenv("AWS_CA_BUNDLE", "/env/ca.pem", 1);
    assert_ok(cl_aws_config_resolve(&dev, "kms", &c));
    assert_string_equal(c.ca_bundle, "/env/ca.pem");
    cl_aws_config_free(&c);
    cl_aws_settings dev_ca = {.profile = "dev", .ca_bundle = "/cli/ca.pem"};
    assert_ok(cl_aws_config_resolve(&dev_ca, "kms", &c));
    assert_string_equal(c.ca_bundle, "/cli/ca.pem");
    cl_aws_config_free(&c);

    /* No files at all: the environment alone, as before there were profiles. */
    t_setup(NULL, NULL);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    setenv("AWS_SESSION_TOKEN", "token-env", 1);
    setenv("AWS_REGION", "us-east-2", 1);
    assert_ok(cl_aws_config_resolve(&none, "kms", &c));
    assert_string_equal(c.access_key_id, "AKENV");
    assert_string_equal(cl_buf_cstr(&c.session_token), "token-env");
    assert_string_equal(c.credentials_from, "the environment (AWS_ACCESS_KEY_ID)");
    cl_aws_config_free(&c);

    /* AWS_CONFIG_FILE=~/x means $HOME/x. */
    t_setup(NULL, NULL);
    char home[600];
    (void)snprintf(home, sizeof(home), "%s", t_tmpdir());
    setenv("HOME", home, 1);
    t_write(t_config, "[default]\nregion = eu-north-1\n");
    setenv("AWS_CONFIG_FILE", "~/config", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    assert_ok(cl_aws_config_resolve(&none, "kms", &c));
    assert_string_equal(c.region, "eu-north-1");
    cl_aws_config_free(&c);
}

/* Each refusal says what is missing and what to do. */
static void test_profile_refusals(void **state)
{
    (void)state;
    cl_aws_config c;
    cl_aws_config_init(&c);
    cl_aws_settings none = {0};

    t_setup(t_conf, t_creds);
    setenv("AWS_PROFILE", "nope", 1);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "profile nope (from AWS_PROFILE) is in neither the AWS config file nor the credentials file");
    cl_aws_settings nope = {.profile = "nope"};
    unsetenv("AWS_PROFILE");
    assert_fails(cl_aws_config_resolve(&nope, "kms", &c), CL_ERR_USAGE, "profile nope (from --profile)");

    t_setup("[default]\nregion = us-east-1\n", "[default]\naws_access_key_id = AK\n");
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "credentials [default] has aws_access_key_id but no aws_secret_access_key");

    t_setup("[default]\nregion = us-east-1\n", NULL);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put aws_access_key_id");
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    unsetenv("AWS_ACCESS_KEY_ID");

    t_setup("[profile sso]\nregion = us-east-1\nsso_session = corp\n", NULL);
    cl_aws_settings sso = {.profile = "sso"};
    assert_fails(cl_aws_config_resolve(&sso, "kms", &c), CL_ERR_UNSUPPORTED,
                 "profile sso gets its credentials through sso_session, which cloister does not run; export them for "
                 "it with: eval \"$(aws configure export-credentials --profile sso --format env)\"");

    t_setup(NULL, t_creds);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "no AWS region: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, or put region = ...");
    setenv("AWS_REGION", "us east 1", 1);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "the AWS region from AWS_REGION is 'us east 1', not a region name such as us-east-1");
    setenv("AWS_REGION", "-bad", 1);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE, "not a region name");

    /* A value we use that goes on over several lines; a broken file, named. */
    t_setup("[default]\nregion = us-east-1\n  us-west-2\n", t_creds);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_FORMAT,
                 "config line 2: the value of region goes on over the lines below it");
    t_setup("[default]\nregion = us-east-1\n", "[default]\n[default]\n");
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_FORMAT,
                 "credentials line 2: section [default] is already at line 1");
    /* A secret with a blank is refused without showing it. */
    t_setup("[default]\nregion = us-east-1\n",
            "[default]\naws_access_key_id = AK\naws_secret_access_key = two words\n");
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_FORMAT, "must be printable ASCII without blanks");
    assert_null(strstr(cl_error_message(), "two words"));
    /* After a failure nothing is left set. */
    assert_null(c.region);
    assert_null(c.access_key_id);
    assert_int_equal(c.secret_access_key.len, 0);
}

/* The endpoint's sources in the aws CLI's configured_endpoint_urls order, for kms. */
static void test_endpoint_order(void **state)
{
    (void)state;
    static const char conf[] = "[default]\n"
                               "region = us-east-1\n"
                               "[profile global]\n"
                               "region = us-east-1\n"
                               "endpoint_url = https://global.config\n"
                               "[profile service]\n"
                               "region = us-east-1\n"
                               "services = mine\n"
                               "[profile both]\n"
                               "region = us-east-1\n"
                               "endpoint_url = https://global.config\n"
                               "services = mine\n"
                               "[profile ignore]\n"
                               "region = us-east-1\n"
                               "endpoint_url = https://global.config\n"
                               "services = mine\n"
                               "ignore_configured_endpoint_urls = true\n"
                               "[profile other-service]\n"
                               "region = us-east-1\n"
                               "services = s3-only\n"
                               "[services mine]\n"
                               "kms =\n"
                               "  endpoint_url = https://kms.config\n"
                               "s3 =\n"
                               "  endpoint_url = https://s3.config\n"
                               "[services s3-only]\n"
                               "s3 =\n"
                               "  endpoint_url = https://s3.config\n";
    static const struct {
        const char *profile, *cli, *env_global, *env_kms, *env_ignore, *want;
    } rows[] = {
        {"default", NULL, NULL, NULL, NULL, NULL},
        {"global", NULL, NULL, NULL, NULL, "https://global.config"},
        {"service", NULL, NULL, NULL, NULL, "https://kms.config"},
        {"both", NULL, NULL, NULL, NULL, "https://kms.config"},
        {"other-service", NULL, NULL, NULL, NULL, NULL},
        {"both", NULL, "https://global.env", NULL, NULL, "https://global.env"},
        {"both", NULL, "https://global.env", "https://kms.env", NULL, "https://kms.env"},
        {"default", NULL, NULL, "https://kms.env", NULL, "https://kms.env"},
        {"both", "https://cli", "https://global.env", "https://kms.env", NULL, "https://cli"},
        {"both", NULL, "https://global.env", "https://kms.env", "true", NULL},
        {"both", "https://cli", "https://global.env", "https://kms.env", "TRUE", "https://cli"},
        {"ignore", NULL, "https://global.env", "https://kms.env", NULL, NULL},
        {"ignore", "https://cli", NULL, NULL, NULL, "https://cli"},
        {"both", NULL, "https://global.env", NULL, "false", "https://global.env"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        t_setup(conf, t_creds);
        if (rows[i].env_global) setenv("AWS_ENDPOINT_URL", rows[i].env_global, 1);
        if (rows[i].env_kms) setenv("AWS_ENDPOINT_URL_KMS", rows[i].env_kms, 1);
        if (rows[i].env_ignore) setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", rows[i].env_ignore, 1);
        setenv("AWS_ACCESS_KEY_ID", "AK", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
        setenv("AWS_PROFILE", rows[i].profile, 1); /* not --profile: that would set the environment's keys aside */
        cl_aws_settings s = {.endpoint_url = rows[i].cli};
        cl_aws_config c;
        cl_aws_config_init(&c);
        cl_status rc = cl_aws_config_resolve(&s, "kms", &c);
        if (rc != CL_OK) fail_msg("row %zu: %s", i, cl_error_message());
        if (rows[i].want == NULL && c.endpoint_url != NULL) fail_msg("row %zu: endpoint %s", i, c.endpoint_url);
        if (rows[i].want != NULL && (c.endpoint_url == NULL || strcmp(c.endpoint_url, rows[i].want) != 0))
            fail_msg("row %zu: endpoint %s, want %s", i, c.endpoint_url ? c.endpoint_url : "(none)", rows[i].want);
        cl_aws_config_free(&c);
    }
    /* An endpoint with a blank is refused, naming where it came from. */
    t_setup("[default]\nregion = us-east-1\n", t_creds);
    setenv("AWS_ENDPOINT_URL_KMS", "http://a b", 1);
    cl_aws_settings none = {0};
    cl_aws_config c;
    cl_aws_config_init(&c);
    assert_fails(cl_aws_config_resolve(&none, "kms", &c), CL_ERR_USAGE,
                 "the endpoint URL from AWS_ENDPOINT_URL_KMS has a blank");
}

/* botocore reads aws_security_token before aws_session_token. */
static void test_session_token_names(void **state)
{
    (void)state;
    t_setup("[default]\nregion = us-east-1\n", "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
                                               "aws_session_token = newer\naws_security_token = older\n");
    cl_aws_settings none = {0};
    cl_aws_config c;
    cl_aws_config_init(&c);
    assert_ok(cl_aws_config_resolve(&none, "kms", &c));
    assert_string_equal(cl_buf_cstr(&c.session_token), "older");
    cl_aws_config_free(&c);
}

/* cl_reader_trim / cl_reader_equal / cl_reader_is, which the dialect is read with. */
static void test_reader_helpers(void **state)
{
    (void)state;
    cl_reader r = cl_reader_make("  \tab c \r", 9);
    cl_reader_trim(&r, " \t\r");
    assert_true(cl_reader_is(&r, "ab c", false));
    assert_false(cl_reader_is(&r, "AB C", false));
    assert_true(cl_reader_is(&r, "AB C", true));
    assert_false(cl_reader_is(&r, "ab", true));
    cl_reader blank = cl_reader_make("   ", 3), empty = cl_reader_make(NULL, 0);
    cl_reader_trim(&blank, " ");
    assert_int_equal(cl_reader_remaining(&blank), 0);
    assert_true(cl_reader_equal(&blank, &empty, false));
    assert_true(cl_reader_is(&empty, "", true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ini_dialect),    cmocka_unit_test(test_ini_refusals),
        cmocka_unit_test(test_profiles),       cmocka_unit_test(test_profile_refusals),
        cmocka_unit_test(test_endpoint_order), cmocka_unit_test(test_session_token_names),
        cmocka_unit_test(test_reader_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
