/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the one table of key specs. Every value of the service model's KeySpec enum
 * (botocore kms/2014-11-01/service-2.json) is in it, so "is it a KeySpec at all" and "does
 * this build make it" are answered from the same rows and cannot disagree; the rows this
 * build implements also carry their key usage and algorithms (AWS KMS Developer Guide, "Key
 * spec reference"). Pure data and lookups: it uses nothing of cloister-kms.
 */
#ifndef CLOISTER_KMS_KEYSPEC_H
#define CLOISTER_KMS_KEYSPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum kms_key_kind {
    KMS_KIND_SYMMETRIC = 0,
    KMS_KIND_RSA,
    KMS_KIND_EC,
    KMS_KIND_HMAC,
} kms_key_kind;

#define KMS_ALGS_MAX 6

typedef struct kms_spec_info {
    const char *name;                   /* KeySpec value */
    bool built;                         /* this build creates keys of this spec; the fields below are set */
    const char *usage;                  /* the one KeyUsage this build creates it with */
    const char *curve;                  /* KMS_KIND_EC: OpenSSL group name */
    const char *algs[KMS_ALGS_MAX + 1]; /* SigningAlgorithms / MacAlgorithms / EncryptionAlgorithms, NULL-ended */
    kms_key_kind kind;
    unsigned rsa_bits; /* KMS_KIND_RSA */
} kms_spec_info;

/* The spec this build implements, or NULL. */
const kms_spec_info *kms_spec_find(const char *name);
/* Whether name is in the service model's KeySpec enum (implemented or not). */
bool kms_spec_in_model(const char *name);
/* Whether alg is one of s->algs. */
bool kms_spec_allows(const kms_spec_info *s, const char *alg);
/* The names of the model's KeySpec values (built_only: of those this build implements), in
 * the model's order, NULL-ended; out has room for cap entries, the NULL included. */
void kms_spec_names(bool built_only, const char **out, size_t cap);
/* s->algs as a JSON array of strings (DescribeKey, GetPublicKey); NULL when out of memory. */
json_t *kms_spec_algs_json(const kms_spec_info *s);

#endif
