/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How `cloister kms` prints an answer, as the aws CLI prints it: timestamps as ISO 8601
 * in local time, `--query` (a subset of JMESPath), and `--output json|text`.
 */
#ifndef CLOISTER_CLI_KMS_FORMAT_H
#define CLOISTER_CLI_KMS_FORMAT_H

#include <jansson.h>
#include <stdbool.h>

#include "cloister/buf.h"
#include "cloister/error.h"

/* Replaces the epoch-seconds numbers of the KMS API's timestamp members (CreationDate,
 * DeletionDate, ValidTo, ...) anywhere in j by the strings the aws CLI prints for them:
 * botocore's datetime.fromtimestamp(value, tzlocal()).isoformat(), e.g.
 * "2024-05-01T12:00:00.123000+02:00" (no fraction when it is zero). */
CL_MUST_USE cl_status kms_format_timestamps(json_t *j);

/* Checks a --query expression: a subset of JMESPath (jmespath.org/specification.html):
 * identifiers joined by '.', each followed by any of [N] (an index, negative from the end)
 * and [] or [*] (a projection: the rest of the expression applied to every element,
 * missing results dropped), e.g. KeyMetadata.KeyId, Keys[0].KeyId, Aliases[].AliasName.
 * CL_ERR_USAGE, saying what is supported, for anything else. */
CL_MUST_USE cl_status kms_query_check(const char *expr);
/* Evaluates a checked expression on j; *out is a new reference, or NULL for JMESPath's null. */
CL_MUST_USE cl_status kms_query(json_t *j, const char *expr, json_t **out);

/* The aws CLI's --output text (awscli/text.py): scalars of an object on one line, tab
 * separated, in the order of their keys; lists of objects one line per element, prefixed
 * by the list's key in upper case; true/false/null as True/False/None. */
CL_MUST_USE cl_status kms_format_text(json_t *j, cl_buf *out);
/* --output json: as Python's json.dump(indent=4, ensure_ascii=False), then a newline. */
CL_MUST_USE cl_status kms_format_json(json_t *j, cl_buf *out);

#endif
