/* SPDX-License-Identifier: Apache-2.0 */
/* The cloister-kms config file (src/kms/config.c) and the passphrase-derived
 * root key (scrypt, root.kdf; src/kms/keys.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server.h"
#include "test_util.h"

#define PRINCIPAL \
    "{\"access_key_id\": \"AKIA1\", \"secret\": \"s3cret\", \"arn\": \"arn:aws:iam::123456789012:user/a\"}"

static CL_MUST_USE cl_status t_parse(const char *text, kms_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    return kms_config_parse(text, strlen(text), "/etc/kms", cfg);
}

static void test_config_full(void **state)
{
    (void)state;
    kms_config cfg;
    assert_ok(t_parse("{\"listen\": \"0.0.0.0:443\", \"threads\": 8, \"max_body\": 65536, \"region\": \"eu-west-1\","
                      " \"max_connections\": 20000, \"request_timeout\": 5,"
                      " \"s3_max_body\": 16777216, \"s3_domain\": \"s3.example.com\","
                      " \"data_dir\": \"/var/lib/kms\", \"store\": {\"type\": \"sqlite\", \"path\": \"db/keys.db\"},"
                      " \"root_key\": {\"passphrase_env\": \"KMS_PASS\", \"scrypt_log2_n\": 15},"
                      " \"tls\": {\"cert\": \"tls/cert.pem\", \"key\": \"/k.pem\"}, \"audit_log\": \"audit.log\","
                      " \"principals\": [" PRINCIPAL ", {\"access_key_id\": \"B\", \"secret\": \"x\","
                      " \"arn\": \"arn:aws:iam::000000000001:role/r\"}]}",
                      &cfg));
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 443);
    assert_int_equal(cfg.threads, 8);
    assert_int_equal(cfg.max_body, 65536);
    assert_int_equal(cfg.max_connections, 20000);
    assert_int_equal(cfg.request_timeout, 5);
    assert_int_equal(cfg.s3_max_body, 16777216);
    assert_string_equal(cfg.s3_domain, "s3.example.com");
    assert_string_equal(cfg.region, "eu-west-1");
    assert_string_equal(cfg.data_dir, "/var/lib/kms");
    assert_string_equal(cfg.store_path, "/etc/kms/db/keys.db");
    assert_string_equal(cfg.passphrase_env, "KMS_PASS");
    assert_int_equal(cfg.scrypt_log2_n, 15);
    assert_string_equal(cfg.tls_cert, "/etc/kms/tls/cert.pem");
    assert_string_equal(cfg.tls_key, "/k.pem");
    assert_string_equal(cfg.audit_path, "/etc/kms/audit.log");
    assert_int_equal(cfg.n_principals, 2);
    assert_string_equal(cfg.principals[0].account, "123456789012");
    assert_string_equal(cfg.principals[1].arn, "arn:aws:iam::000000000001:role/r");
    assert_string_equal(cfg.principals[1].secret, "x");
    kms_config_free(&cfg);
    assert_null(cfg.principals);
}

/* The training-job service's "training" object (docs/sagemaker.md, "Configuration"). */
static void test_config_training(void **state)
{
    (void)state;
    kms_config cfg;
    assert_ok(t_parse("{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"training\": {\"runner\": "
                      "[\"bin/cloister\", \"train-job\", \"run\"], \"images_dir\": \"images\", \"pki_dir\": \"/pki\","
                      " \"state_dir\": \"state\", \"endpoint\": \"https://kms.example:4599\", \"max_jobs\": 4,"
                      " \"ca_file\": \"/files/kms-ca.pem\","
                      " \"max_memory_mib\": 8192, \"stop_grace_seconds\": 5}}",
                      &cfg));
    assert_int_equal(cfg.training.n_runner, 3);
    assert_string_equal(cfg.training.runner[0], "/etc/kms/bin/cloister");
    assert_string_equal(cfg.training.runner[2], "run");
    assert_string_equal(cfg.training.images_dir, "/etc/kms/images");
    assert_string_equal(cfg.training.pki_dir, "/pki");
    assert_string_equal(cfg.training.state_dir, "/etc/kms/state");
    assert_string_equal(cfg.training.endpoint, "https://kms.example:4599");
    assert_string_equal(cfg.training.ca_file, "/files/kms-ca.pem"); /* in the image: kept as given */
    assert_int_equal(cfg.training.max_jobs, 4);
    assert_int_equal(cfg.training.max_memory_mib, 8192);
    assert_int_equal(cfg.training.stop_grace, 5);
    kms_config_free(&cfg);
    static const struct {
        const char *training;
        const char *needle;
    } cases[] = {
        {"[]", "'training' must be an object"},
        {"{\"runner\": \"cloister\"}", "'training.runner' must be a list of 1..16 strings"},
        {"{\"runner\": []}", "'training.runner' must be a list of 1..16 strings"},
        {"{\"runner\": [\"\"]}", "'training.runner'[0] must be a string of 1..1023 characters"},
        {"{\"endpoint\": \"127.0.0.1:4599\"}", "'training.endpoint' must be an http:// or https:// URL"},
        {"{\"ca_file\": \"files/kms-ca.pem\"}",
         "'training.ca_file' must be an absolute path inside the trainer's image"},
        {"{\"max_jobs\": 0}", "training: 'max_jobs' must be an integer 1..1024"},
        {"{\"max_memory_mib\": 10}", "training: 'max_memory_mib' must be an integer 64..4194304"},
        {"{\"stop_grace_seconds\": 0}", "training: 'stop_grace_seconds' must be an integer 1..3600"},
        {"{\"images\": \"x\"}", "unknown key 'training.images' (known: runner, images_dir"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        (void)snprintf(text, sizeof(text), "{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"training\": %s}",
                       cases[i].training);
        assert_fails(t_parse(text, &cfg), CL_ERR_USAGE, cases[i].needle);
    }
}

/* "region" and "regions" (docs/kms.md, "Regions"): without "regions" every AWS region and the
 * default are answered; with it only those listed, the default among them. */
static void test_config_regions(void **state)
{
    (void)state;
    kms_config cfg;
    assert_ok(t_parse("{\"data_dir\": \"/d\", \"region\": \"local\", \"principals\": [" PRINCIPAL "]}", &cfg));
    assert_true(kms_config_region_allowed(&cfg, "local"));
    assert_true(kms_config_region_allowed(&cfg, "ap-northeast-1"));
    assert_false(kms_config_region_allowed(&cfg, "other"));
    kms_config_free(&cfg);
    assert_ok(t_parse(
        "{\"data_dir\": \"/d\", \"regions\": [\"eu-west-1\", \"local\"], \"principals\": [" PRINCIPAL "]}", &cfg));
    assert_string_equal(cfg.region, "eu-west-1"); /* the first listed */
    assert_int_equal(cfg.n_regions, 2);
    assert_true(kms_config_region_allowed(&cfg, "local"));
    assert_false(kms_config_region_allowed(&cfg, "us-east-1"));
    kms_config_free(&cfg);
    assert_fails(t_parse("{\"data_dir\": \"/d\", \"region\": \"us-east-1\", \"regions\": [\"eu-west-1\"], "
                         "\"principals\": [" PRINCIPAL "]}",
                         &cfg),
                 CL_ERR_USAGE, "'region' us-east-1 is not in 'regions'");
    assert_fails(t_parse("{\"data_dir\": \"/d\", \"regions\": \"eu-west-1\", \"principals\": [" PRINCIPAL "]}", &cfg),
                 CL_ERR_USAGE, "'regions' must be a list of 1..64 region names");
    assert_fails(
        t_parse("{\"data_dir\": \"/d\", \"regions\": [\"eu-west-1\", 7], \"principals\": [" PRINCIPAL "]}", &cfg),
        CL_ERR_USAGE, "'regions[1]' must be 1..31 of [a-z0-9-]");
    assert_fails(t_parse("{\"data_dir\": \"/d\", \"region\": \"Eu\", \"principals\": [" PRINCIPAL "]}", &cfg),
                 CL_ERR_USAGE, "'region' must be 1..31 of [a-z0-9-]");
}

/* --listen and "listen": IPv4, [IPv6] with an optional zone, host names (docs/kms.md). */
static void test_config_listen(void **state)
{
    (void)state;
    static const struct {
        const char *text, *host;
        int port;
    } ok[] = {
        {"127.0.0.1:4599", "127.0.0.1", 4599},
        {"[::1]:4599", "::1", 4599},
        {"[::]:0", "::", 0},
        {"localhost:80", "localhost", 80},
        {"kms.example-1.org:443", "kms.example-1.org", 443},
        {"[fe80::1%eth0]:9", "fe80::1%eth0", 9},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        kms_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        assert_ok(kms_config_parse_listen(ok[i].text, &cfg));
        assert_string_equal(cfg.host, ok[i].host);
        assert_int_equal(cfg.port, ok[i].port);
    }
    kms_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(cfg.metrics, KMS_METRICS_LOOPBACK); /* the default */
    assert_ok(t_parse("{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"metrics\": \"any\"}", &cfg));
    assert_int_equal(cfg.metrics, KMS_METRICS_ANY);
    kms_config_free(&cfg);
    assert_ok(t_parse("{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"metrics\": \"off\"}", &cfg));
    assert_int_equal(cfg.metrics, KMS_METRICS_OFF);
    kms_config_free(&cfg);
    char longname[300];
    memset(longname, 'a', 290);
    (void)snprintf(longname + 290, sizeof(longname) - 290, ":1");
    assert_fails(kms_config_parse_listen(longname, &cfg), CL_ERR_USAGE, "longer than 255 characters");
}

static void test_config_postgresql(void **state)
{
    (void)state;
    kms_config cfg;
    assert_ok(t_parse("{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"store\": {\"type\": \"postgresql\", "
                      "\"conninfo\": \"postgresql://kms:Unit-Pg-9@db.example:5433/cloister?sslmode=verify-full\"}}",
                      &cfg));
    assert_string_equal(cfg.store_conninfo, "postgresql://kms:Unit-Pg-9@db.example:5433/cloister?sslmode=verify-full");
    assert_string_equal(cfg.store_path, "");
    kms_config_free(&cfg);
    assert_string_equal(cfg.store_conninfo, ""); /* the password is wiped with the rest */
}

static void test_config_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen_addr\": \"x\"}", "unknown key 'listen_addr'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"tls\": {\"cert\": \"c\", \"key\": \"k\", \"v\": 1}}",
         "unknown key 'tls.v'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"threads\": 257}", "'threads' must be an integer"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"threads\": -1}", "'threads'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"threads\": 1e3}", "'threads'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"max_body\": 67108865}", "'max_body'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"s3_max_body\": 5368709121}",
         "'s3_max_body' must be an integer 1024..5368709120"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"s3_domain\": \"S3.Example.com\"}",
         "'s3_domain' must be a lower-case DNS name like s3.example.com, not 'S3.Example.com'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"s3_domain\": \"\"}", "'s3_domain'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"max_connections\": 15}",
         "'max_connections' must be an integer 16..1000000"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"request_timeout\": 0}",
         "'request_timeout' must be an integer 1..3600"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"request_timeout\": \"20\"}", "'request_timeout'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \":80\"}", "HOST:PORT"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \"h:80x\"}", "port must be"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \"h:99999999999999999999\"}",
         "port must be"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \"::1:4599\"}",
         "write an IPv6 address in brackets"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \"[::1:4599\"}", "ends with ']'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \"[kms.example]:4599\"}",
         "not an IPv6 address"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"listen\": \"k_m s:4599\"}",
         "IPv4 address, [IPv6] or a host name"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"metrics\": \"public\"}",
         "'metrics' must be \"loopback\", \"any\" or \"off\", not \"public\""},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"metrics\": true}", "'metrics' must be a string"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"region\": \"a/b\"}", "'region'"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"region\": \"\"}", "'region'"},
        {"{\"data_dir\": \"\", \"principals\": [" PRINCIPAL "]}", "'data_dir' must be 1.."},
        {"{\"principals\": [" PRINCIPAL "]}", "'data_dir' is required"},
        {"{\"data_dir\": \"d\"}", "'principals' is required"},
        {"{\"data_dir\": \"d\", \"principals\": [{}]}", "needs access_key_id"},
        {"{\"data_dir\": \"d\", \"principals\": [{\"access_key_id\": \"a:b\", \"secret\": \"s\", \"arn\": "
         "\"arn:aws:iam::123456789012:user/a\"}]}",
         "SigV4 cannot carry"},
        {"{\"data_dir\": \"d\", \"principals\": [{\"access_key_id\": \"a\", \"secret\": \"s\", \"arn\": "
         "\"arn:aws:iam::123456789012:\"}]}",
         "12-digit account and a name"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"root_key\": {\"file\": \"f\", \"passphrase_file\": "
         "\"p\"}}",
         "exactly one"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"root_key\": {\"passphrase_env\": \"P\", "
         "\"scrypt_log2_n\": 13}}",
         "14..20"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"store\": {\"type\": \"redis\"}}", "not available"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"store\": {\"type\": \"postgresql\"}}",
         "'store.conninfo' is required"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"store\": {\"type\": \"postgresql\", "
         "\"conninfo\": \"dbname=k\", \"path\": \"k.db\"}}",
         "'store.path' applies to the SQLite store"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"store\": {\"conninfo\": \"dbname=k\"}}",
         "'store.conninfo' applies to"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"store\": {\"type\": \"postgresql\", "
         "\"conninfo\": \"dbname=k pasword=Unit-Pg-9\"}}",
         "'store.conninfo' is not a libpq connection string"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "], \"tls\": {\"key\": \"k\"}}", "both 'cert' and 'key'"},
        {"{\"data_dir\": \"d\", \"data_dir\": \"e\", \"principals\": [" PRINCIPAL "]}", "duplicate"},
        {"{\"data_dir\": \"d\", \"principals\": [" PRINCIPAL "]", "not JSON: line 1"},
        {"[1, 2]", "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kms_config cfg;
        cl_status rc = t_parse(cases[i].text, &cfg);
        if (rc != CL_ERR_USAGE || strstr(cl_error_message(), cases[i].needle) == NULL)
            fail_msg("case %zu: %s: got %s: %s", i, cases[i].text, cl_status_name(rc), cl_error_message());
        assert_null(cfg.principals); /* freed on failure */
        assert_null(strstr(cl_error_message(), "s3cret"));
        assert_null(strstr(cl_error_message(), "Unit-Pg-9")); /* nor a database password */
    }
    /* A path longer than the buffer once the config directory is prefixed. */
    char big[1200];
    char path[1100];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    (void)snprintf(big, sizeof(big), "{\"data_dir\": \"%.1020s\", \"principals\": [" PRINCIPAL "]}", path);
    kms_config cfg;
    assert_fails(t_parse(big, &cfg), CL_ERR_USAGE, "'data_dir' is longer than 1023");
}

static void test_principal_make(void **state)
{
    (void)state;
    kms_principal p;
    assert_ok(kms_principal_make("test", "test", "arn:aws:iam::111122223333:user/dev", &p));
    assert_string_equal(p.account, "111122223333");
    assert_fails(kms_principal_make("", "s", "arn:aws:iam::111122223333:user/dev", &p), CL_ERR_USAGE, "1..128");
    assert_fails(kms_principal_make("a", "", "arn:aws:iam::111122223333:user/dev", &p), CL_ERR_USAGE, "secret of a");
    assert_fails(kms_principal_make("a", "s", "arn:aws:iam::11112222333x:user/dev", &p), CL_ERR_USAGE, "12-digit");
    assert_fails(kms_principal_make("a", "s", "arn:aws:iam::1111222233334:user/dev", &p), CL_ERR_USAGE, "12-digit");
}

/* RFC 7914 section 12, the second and third test vectors. */
/* Principals outside a config file (--dev): appended, unique, never more than 64. */
static void test_principals_outside_config(void **state)
{
    (void)state;
    kms_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    assert_ok(kms_principal_add(&cfg, "test", "test", "arn:aws:iam::111122223333:user/dev"));
    const char *list = "[" PRINCIPAL ", {\"access_key_id\": \"B\", \"secret\": \"x\", "
                       "\"arn\": \"arn:aws:iam::000000000001:role/r\"}]";
    assert_ok(kms_principals_parse(list, strlen(list), &cfg));
    assert_int_equal(cfg.n_principals, 3);
    assert_string_equal(cfg.principals[0].access_key_id, "test");
    assert_string_equal(cfg.principals[1].secret, "s3cret");
    assert_string_equal(cfg.principals[2].account, "000000000001");
    assert_fails(kms_principals_parse(list, strlen(list), &cfg), CL_ERR_USAGE, "AKIA1 is taken already");
    assert_fails(kms_principal_add(&cfg, "B", "y", "arn:aws:iam::000000000001:role/r"), CL_ERR_USAGE,
                 "access key id B is given twice");
    assert_fails(kms_principals_parse("{}", 2, &cfg), CL_ERR_USAGE, "'principals' must be a list");
    assert_fails(kms_principals_parse("[", 1, &cfg), CL_ERR_USAGE, "not JSON");
    kms_config_free(&cfg);
    assert_null(cfg.principals);
    assert_int_equal(cfg.n_principals, 0);

    /* 64 in all, --dev's included. */
    assert_ok(kms_principal_add(&cfg, "test", "test", "arn:aws:iam::111122223333:user/dev"));
    for (int i = 1; i < 64; i++) {
        char id[16];
        (void)snprintf(id, sizeof(id), "K%d", i);
        assert_ok(kms_principal_add(&cfg, id, "s", "arn:aws:iam::111122223333:user/u"));
    }
    assert_fails(kms_principal_add(&cfg, "K64", "s", "arn:aws:iam::111122223333:user/u"), CL_ERR_USAGE,
                 "at most 64 principals");
    assert_fails(kms_principals_parse("[" PRINCIPAL "]", strlen("[" PRINCIPAL "]"), &cfg), CL_ERR_USAGE,
                 "at most 64 principals in all");
    kms_config_free(&cfg);

    /* The file: only its owner may read or write it. */
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/principals.json", t_tmpdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs("[" PRINCIPAL "]", f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0640), 0);
    assert_fails(kms_principals_load(path, &cfg), CL_ERR_DENIED, "chmod 600 it");
    assert_int_equal(cfg.n_principals, 0);
    assert_int_equal(chmod(path, 0600), 0);
    assert_ok(kms_principals_load(path, &cfg));
    assert_int_equal(cfg.n_principals, 1);
    kms_config_free(&cfg);
    assert_int_equal(unlink(path), 0);
}

static void test_scrypt_rfc7914(void **state)
{
    (void)state;
    uint8_t out[64];
    cl_buf want;
    assert_ok(kms_scrypt((const uint8_t *)"password", 8, (const uint8_t *)"NaCl", 4, 1024, 8, 16, out, 64));
    t_hex(&want, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                 "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
    assert_memory_equal(out, want.data, 64);
    cl_buf_free(&want);
    assert_ok(
        kms_scrypt((const uint8_t *)"pleaseletmein", 13, (const uint8_t *)"SodiumChloride", 14, 16384, 8, 1, out, 64));
    t_hex(&want, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
                 "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
    assert_memory_equal(out, want.data, 64);
    cl_buf_free(&want);
    assert_fails(kms_scrypt((const uint8_t *)"p", 1, (const uint8_t *)"s", 1, 1000, 8, 1, out, 64), CL_ERR_CRYPTO,
                 "scrypt");
}

static void test_kdf_parse(void **state)
{
    (void)state;
    kms_kdf_params k;
    const char *good = "{\"kdf\": \"scrypt\", \"n\": 16384, \"r\": 8, \"p\": 1, \"salt\": "
                       "\"AAAAAAAAAAAAAAAAAAAAAA==\", \"check\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}";
    assert_ok(kms_kdf_parse(good, strlen(good), &k));
    assert_int_equal(k.n, 16384);
    assert_int_equal(k.salt_len, 16);
    static const struct {
        const char *text;
        cl_status code;
        const char *needle;
    } cases[] = {
        {"{\"kdf\": \"argon2\", \"n\": 16384, \"r\": 8, \"p\": 1}", CL_ERR_UNSUPPORTED, "'kdf' must be"},
        {"{\"kdf\": \"scrypt\", \"n\": 16385, \"r\": 8, \"p\": 1}", CL_ERR_FORMAT, "power of two"},
        {"{\"kdf\": \"scrypt\", \"n\": 8192, \"r\": 8, \"p\": 1}", CL_ERR_FORMAT, "'n' must be"},
        {"{\"kdf\": \"scrypt\", \"n\": 2097152, \"r\": 8, \"p\": 1}", CL_ERR_FORMAT, "'n' must be"},
        {"{\"kdf\": \"scrypt\", \"n\": 16384, \"r\": 33, \"p\": 1}", CL_ERR_FORMAT, "'r' must be"},
        {"{\"kdf\": \"scrypt\", \"n\": 16384, \"r\": 8, \"p\": 0}", CL_ERR_FORMAT, "'p' must be"},
        {"{\"kdf\": \"scrypt\", \"n\": 16384, \"r\": 8, \"p\": 1, \"salt\": \"AAAA\"}", CL_ERR_FORMAT,
         "'salt' must be"},
        {"{\"kdf\": \"scrypt\", \"n\": 16384, \"r\": 8, \"p\": 1, \"salt\": \"AAAAAAAAAAAAAAAAAAAAAA==\", \"check\": "
         "\"AAAA\"}",
         CL_ERR_FORMAT, "'check' must be"},
        {"{\"kdf\": \"scrypt\", \"extra\": 1}", CL_ERR_FORMAT, "unknown member 'extra'"},
        {"[]", CL_ERR_FORMAT, "not a JSON object"},
        {"{\"kdf\":", CL_ERR_FORMAT, "not JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cl_status rc = kms_kdf_parse(cases[i].text, strlen(cases[i].text), &k);
        if (rc != cases[i].code || strstr(cl_error_message(), cases[i].needle) == NULL)
            fail_msg("case %zu: got %s: %s", i, cl_status_name(rc), cl_error_message());
    }
    char huge[5000];
    memset(huge, ' ', sizeof(huge));
    assert_fails(kms_kdf_parse(huge, sizeof(huge), &k), CL_ERR_LIMIT, "over 4096");
}

static void test_root_key_derive(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/root-%d.kdf", t_tmpdir(), (int)getpid());
    unlink(path);
    const uint8_t pass[] = "a long enough passphrase";
    kms_root_key a = {0}, b = {0};
    assert_ok(kms_root_key_derive(pass, sizeof(pass) - 1, path, 14, &a));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* The second start reads the parameters (its own cost argument is ignored). */
    assert_ok(kms_root_key_derive(pass, sizeof(pass) - 1, path, 20, &b));
    assert_memory_equal(a.key, b.key, 32);
    kms_root_key_free(&b);
    assert_fails(kms_root_key_derive(pass, sizeof(pass) - 2, path, 14, &b), CL_ERR_AUTH, "passphrase is not the one");
    assert_null(b.key);
    assert_fails(kms_root_key_derive(pass, 7, path, 14, &b), CL_ERR_USAGE, "8..1024");
    assert_fails(kms_root_key_derive(pass, sizeof(pass) - 1, path, 13, &b), CL_ERR_USAGE, "2^14..2^20");
    /* Another file (another salt) gives another key from the same passphrase. */
    unlink(path);
    assert_ok(kms_root_key_derive(pass, sizeof(pass) - 1, path, 14, &b));
    assert_memory_not_equal(a.key, b.key, 32);
    kms_root_key_free(&a);
    kms_root_key_free(&b);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_full),     cmocka_unit_test(test_config_training),
        cmocka_unit_test(test_config_regions),  cmocka_unit_test(test_config_listen),
        cmocka_unit_test(test_config_refused),  cmocka_unit_test(test_config_postgresql),
        cmocka_unit_test(test_principal_make),  cmocka_unit_test(test_principals_outside_config),
        cmocka_unit_test(test_scrypt_rfc7914),  cmocka_unit_test(test_kdf_parse),
        cmocka_unit_test(test_root_key_derive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
