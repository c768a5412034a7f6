/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encryption contexts in requests (EncryptionContextType of botocore's kms/2014-11-01
 * service-2.json: a map of string to string), checked whole before any work is done.
 *
 * AWS publishes bounds only for grant constraints (CreateGrant, Constraints: "Each constraint
 * value can include up to 8 encryption context pairs. The encryption context value in each
 * constraint cannot exceed 384 characters."); the model gives a request's context no length
 * constraint. cloister-kms bounds it anyway, because every byte of it is evaluated against the
 * key policy and written (its keys) to the audit log: at most KMS_CONTEXT_MAX_PAIRS pairs and
 * KMS_CONTEXT_MAX_BYTES bytes of keys and values together. A context over either is a
 * ValidationException naming the bound.
 *
 * Keys that differ only by case ({"TENANT": "alice", "tenant": "bob"}) are refused too: policy
 * conditions name context keys case-insensitively (kms:EncryptionContext:tenant matches either,
 * as in AWS), so such a pair would let a request borrow an Allow with one spelling and dodge a
 * Deny with the other. AWS accepts them and advises against them (GrantConstraints: "do not use
 * multiple encryption context pairs that differ only by case"); here they are a
 * ValidationException. docs/kms.md, "Limits".
 */
#ifndef CLOISTER_KMS_CONTEXT_H
#define CLOISTER_KMS_CONTEXT_H

#include <jansson.h>

#include "cloister/error.h"
#include "cloister/kv.h"

#include "server.h"

#define KMS_CONTEXT_MAX_PAIRS 64     /* = CL_KV_MAX_COUNT */
#define KMS_CONTEXT_MAX_BYTES 8192   /* keys and values, UTF-8 */
#define KMS_CONSTRAINT_MAX_PAIRS 8   /* AWS: CreateGrant, Constraints */
#define KMS_CONSTRAINT_MAX_VALUE 384 /* characters, AWS: CreateGrant, Constraints */

/* The request member `member` (absent or null: nothing) into out, or the AWS exception:
 * SerializationException for a wrong shape, ValidationException for a bound or case duplicate. */
CL_MUST_USE cl_status kms_context_read(kms_call *c, const char *member, cl_kvlist *out);

/* A grant constraint map (EncryptionContextEquals / EncryptionContextSubset; NULL: absent):
 * the same checks with AWS's constraint bounds. */
CL_MUST_USE cl_status kms_context_check_constraint(kms_call *c, json_t *map, const char *name);

#endif
