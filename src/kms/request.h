/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the members of a request and of its answer, read and written as the AWS
 * JSON 1.1 protocol and botocore's kms/2014-11-01/service-2.json define them. Each reader
 * answers a bad member as AWS does: SerializationException for a member of the wrong JSON
 * type, ValidationException ("1 validation error detected: ...") for a value outside the
 * model's constraints. Nothing here knows keys, policies or grants: every operation file
 * uses it, and it uses none of them.
 */
#ifndef CLOISTER_KMS_REQUEST_H
#define CLOISTER_KMS_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#include "server.h"

/* LimitType of the listings: 1..1000, default 100. */
#define KMS_LIST_MAX 1000
#define KMS_LIST_DEFAULT 100

/* ValidationException "Member must not be null" for a required member that is absent. */
CL_MUST_USE cl_status kms_req_null(kms_call *c, const char *member);
/* A string member of min..max characters: NULL in *out when absent and optional. */
CL_MUST_USE cl_status kms_req_str(kms_call *c, const char *member, bool required, size_t min, size_t max,
                                  const char **out);
/* A string of the model's name pattern ^[a-zA-Z0-9:/_-]+$ (AliasNameType, GrantNameType), 1..max
 * characters; AWS's "Member must satisfy regular expression pattern" otherwise. */
CL_MUST_USE cl_status kms_req_name(kms_call *c, const char *member, bool required, size_t max, const char **out);
/* An optional integer member within min..max; *present says whether it was given. */
CL_MUST_USE cl_status kms_req_int(kms_call *c, const char *member, bool *present, long long min, long long max,
                                  long long *out);
/* An optional NullableBooleanType member (false when absent). */
CL_MUST_USE cl_status kms_req_bool(kms_call *c, const char *member, bool *out);
/* A blob member (base64 on the wire) of 1..max decoded bytes into out (left empty when
 * absent and optional); out's own cap may be exactly max. */
CL_MUST_USE cl_status kms_req_blob(kms_call *c, const char *member, bool required, size_t max, cl_buf *out);
/* An EncryptionContextType member (a map of string to string), appended to out. */
CL_MUST_USE cl_status kms_req_context(kms_call *c, const char *member, cl_kvlist *out);
/* The Marker of a listing ("" when absent). */
CL_MUST_USE cl_status kms_req_marker(kms_call *c, const char **after);
/* ValidationException "Member must satisfy enum value set: [...]" listing the NULL-ended set. */
CL_MUST_USE cl_status kms_req_enum_fail(kms_call *c, const char *member, const char *value, const char *const *set);
/* Whether v is one of the NULL-ended set. */
bool kms_str_in(const char *const *set, const char *v);

/* Sets a blob member of the answer (base64 through a secret buffer: it may be plaintext). */
CL_MUST_USE cl_status kms_resp_blob(kms_call *c, const char *member, const uint8_t *p, size_t n);

#endif
