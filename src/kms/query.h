/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the AWS query protocol that STS and IAM speak (botocore's sts/2011-06-15 and
 * iam/2010-05-08 service-2.json: "protocol": "query"). A request is POST / with an
 * application/x-www-form-urlencoded body (Action, Version, the members; a list as
 * Name.member.1, Name.member.2, ...); the answer is XML:
 * <ActionResponse xmlns=...><ActionResult>...</ActionResult><ResponseMetadata><RequestId>,
 * a failure <ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..</Message>
 * </Error><RequestId>..</RequestId></ErrorResponse> (what botocore's QueryParser reads).
 */
#ifndef CLOISTER_KMS_QUERY_H
#define CLOISTER_KMS_QUERY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

/* Bounds on a form: names are short; values up to the largest IAM member (a policy document,
 * 131072 characters URL-encoded in the model's policyDocumentType). */
#define KMS_FORM_MAX_PAIRS 512
#define KMS_FORM_NAME_MAX 256
#define KMS_FORM_VALUE_MAX ((size_t)128 << 10)

/*
 * Parses an application/x-www-form-urlencoded body (WHATWG URL Standard, "application/
 * x-www-form-urlencoded parsing": '&'-separated name=value, '+' a space, %XX a byte) into *out,
 * a new JSON object of strings (json_decref it; jansson frees through cl_free_wiped).
 * Refused with CL_ERR_FORMAT naming the offset: a bad %-escape, a NUL byte, an empty or
 * repeated name, more than KMS_FORM_MAX_PAIRS pairs, a name or value over its bound.
 */
CL_MUST_USE cl_status kms_form_parse(const uint8_t *body, size_t len, json_t **out);

/* Appends s with XML's five special characters escaped (XML 1.0, 2.4); a control character XML
 * cannot carry (below 0x20 but tab, LF, CR) becomes U+FFFD. */
CL_MUST_USE cl_status kms_xml_text(cl_buf *b, const char *s);
/* <name>escaped value</name> */
CL_MUST_USE cl_status kms_xml_elem(cl_buf *b, const char *name, const char *value);
/* s percent-encoded as RFC 3986's unreserved characters allow (IAM gives policy documents so:
 * IAM API Reference, e.g. GetRolePolicy "PolicyDocument ... URL-encoded compliant with RFC 3986"). */
CL_MUST_USE cl_status kms_url_encode(cl_buf *b, const char *s);

#endif
