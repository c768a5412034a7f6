/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where an AWS client's profile, credentials, region, endpoint and CA bundle come from,
 * resolved as the AWS SDKs and the aws CLI resolve them (AWS SDKs and Tools Reference
 * Guide: "Using shared config and credentials files", "Standardized credential
 * providers", "Service-specific endpoints"; botocore's configloader.py, credentials.py
 * and configprovider.py, which are what `aws` runs):
 *
 *   profile      --profile, AWS_PROFILE, "default"
 *   credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), unless
 *                --profile names the profile (botocore: "an explicitly provided profile
 *                will negate an EnvProvider"); then the credentials file's [NAME]; then
 *                the config file's [profile NAME] ([default] for "default")
 *   region       --region, AWS_REGION, AWS_DEFAULT_REGION, the profile's region
 *   endpoint     --endpoint-url, AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the
 *                profile's `services` section's <service> endpoint_url, the profile's
 *                endpoint_url (all but --endpoint-url skipped when
 *                AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's
 *                ignore_configured_endpoint_urls is true); none: the service's public
 *                endpoint in the region
 *   CA bundle    --ca-bundle, AWS_CA_BUNDLE, the profile's ca_bundle
 *   files        AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials),
 *                AWS_CONFIG_FILE (~/.aws/config); a file that does not exist is skipped
 *
 * A profile named by --profile or AWS_PROFILE that neither file has is an error, as in
 * the aws CLI. Profiles that get credentials by running something (credential_process,
 * role_arn, sso_*, web_identity_token_file) are refused with what to do instead.
 *
 * The files are people's own edits, so they are read with bounds through cl_reader
 * (cl_aws_ini_parse): at most 1 MiB, the secrets in locked memory that is wiped.
 */
#ifndef CLOISTER_AWS_CONFIG_H
#define CLOISTER_AWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_AWS_FILE_MAX ((size_t)1 << 20)
#define CL_AWS_NAME_MAX 128    /* a profile's or a services section's name */
#define CL_AWS_VALUE_MAX 16384 /* one setting's value (session tokens run to a few KiB) */
#define CL_AWS_SECTIONS_MAX 1024
#define CL_AWS_KEYS_MAX 256 /* settings in one section */

/* What the command line says; NULL: not given. */
typedef struct cl_aws_settings {
    const char *profile;
    const char *region;
    const char *endpoint_url;
    const char *ca_bundle;
} cl_aws_settings;

typedef struct cl_aws_config {
    char profile[CL_AWS_NAME_MAX + 1];
    char *region;
    char *endpoint_url; /* NULL: the service's public endpoint in the region */
    char *ca_bundle;    /* NULL: the system's trust store */
    char *access_key_id;
    cl_buf secret_access_key; /* secret */
    cl_buf session_token;     /* secret; empty: none */
    /* Where each came from, for messages: "--region", "AWS_REGION", "/home/u/.aws/config [profile dev]". */
    char region_from[320];
    char endpoint_from[320];
    char credentials_from[320];
} cl_aws_config;

void cl_aws_config_init(cl_aws_config *c);
/* Resolves the settings for `service` (its identifier as in AWS_ENDPOINT_URL_<SERVICE> and
 * the services sections, lower case: "kms"). CL_ERR_USAGE when no region or no credentials
 * can be found, or a profile asked for does not exist; CL_ERR_FORMAT, naming the file and
 * line, when a file does not parse; CL_ERR_UNSUPPORTED for a profile that runs something. */
CL_MUST_USE cl_status cl_aws_config_resolve(const cl_aws_settings *s, const char *service, cl_aws_config *out);
/* Wipes the secrets and frees everything; the config can be resolved into again after init. */
void cl_aws_config_free(cl_aws_config *c);

/*
 * The files' INI dialect, as Python's configparser.RawConfigParser reads it for botocore:
 *   [section]          a section; its name is the text between the brackets, as written
 *   name = value       a setting (also "name: value"); names compare without case, values
 *                      are trimmed; no inline comments (a '#' after a value is part of it)
 *   # or ;             a comment line
 *   name =             followed by more-indented "sub = value" lines: sub-settings
 *     sub = value      (a services section's "kms =" block)
 * A setting whose value goes on over more-indented lines that are not sub-settings is
 * reported with `continued` set. A section named twice in one file, or a setting named
 * twice in one section, is refused (configparser's strict mode, so the aws CLI refuses
 * the file too), as is a NUL or other control byte, a line that is none of the above, and
 * more than CL_AWS_SECTIONS_MAX sections or CL_AWS_KEYS_MAX settings in one section.
 */
typedef struct cl_aws_ini_entry {
    cl_reader section; /* the name between the brackets */
    cl_reader key;     /* empty: the section's header line */
    cl_reader subkey;  /* non-empty: a sub-setting of `key` */
    cl_reader value;
    size_t line; /* 1-based */
    bool continued;
} cl_aws_ini_entry;

typedef CL_MUST_USE cl_status (*cl_aws_ini_fn)(void *arg, const cl_aws_ini_entry *e);

/* Calls fn for every section header, setting and sub-setting of the n bytes at p, in file
 * order (a setting after its sub-settings); `name` names the file in messages. The
 * readers borrow from p. Stops at fn's first failure and returns it. */
CL_MUST_USE cl_status cl_aws_ini_parse(const uint8_t *p, size_t n, const char *name, cl_aws_ini_fn fn, void *arg);

#endif
