/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the one table of key specs. Every value of the service model's KeySpec enum
 * (botocore kms/2014-11-01/service-2.json) is in it, so "is it a KeySpec at all" and "does
 * this build make it" are answered from the same rows and cannot disagree; the rows this
 * build implements also carry, for each KeyUsage the spec may have, the algorithms a key of
 * that usage offers (AWS KMS Developer Guide, "Key spec reference"; CreateKey's KeyUsage in
 * the API Reference). Pure data and lookups: it uses nothing of cloister-kms.
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

/* The KeyUsage values, in the service model's KeyUsageType order. */
typedef enum kms_usage {
    KMS_USAGE_SIGN_VERIFY = 0,
    KMS_USAGE_ENCRYPT_DECRYPT,
    KMS_USAGE_GENERATE_VERIFY_MAC,
    KMS_USAGE_KEY_AGREEMENT,
    KMS_USAGE_N,
} kms_usage;

typedef struct kms_spec_info {
    const char *name; /* KeySpec value */
    bool built;       /* this build creates keys of this spec; the fields below are set */
    kms_key_kind kind;
    const char *curve;  /* KMS_KIND_EC: OpenSSL group name */
    unsigned rsa_bits;  /* KMS_KIND_RSA */
    const char *mac_md; /* KMS_KIND_HMAC: OpenSSL digest name */
    size_t mac_len;     /* KMS_KIND_HMAC: key and MAC length in bytes */
    /* Per KeyUsage: the algorithms a key of this spec and usage offers (NULL-ended), or NULL
     * when the spec cannot have that usage. */
    const char *const *algs[KMS_USAGE_N];
    const char *why_not; /* !built: why this build refuses it */
} kms_spec_info;

/* The spec this build implements, or NULL. */
const kms_spec_info *kms_spec_find(const char *name);
/* The model's row (implemented or not), or NULL for a value outside the KeySpec enum. */
const kms_spec_info *kms_spec_row(const char *name);
/* Whether name is in the service model's KeySpec enum (implemented or not). */
bool kms_spec_in_model(const char *name);
/* The usage named (KMS_USAGE_N for a value outside the KeyUsageType enum). */
kms_usage kms_usage_find(const char *name);
const char *kms_usage_name(kms_usage u);
/* The member DescribeKey and GetPublicKey list a key's algorithms in: EncryptionAlgorithms,
 * SigningAlgorithms, MacAlgorithms or KeyAgreementAlgorithms. */
const char *kms_usage_algs_member(kms_usage u);
/* Whether a key of spec s may have usage u. */
bool kms_spec_has_usage(const kms_spec_info *s, kms_usage u);
/* Whether alg is one of the algorithms of s with usage u. */
bool kms_spec_allows(const kms_spec_info *s, kms_usage u, const char *alg);
/* The names of the model's KeySpec values (built_only: of those this build implements), in
 * the model's order, NULL-ended; out has room for cap entries, the NULL included. */
void kms_spec_names(bool built_only, const char **out, size_t cap);
/* The algorithms of s with usage u as a JSON array of strings (DescribeKey, GetPublicKey);
 * NULL when out of memory or when s cannot have u. */
json_t *kms_spec_algs_json(const kms_spec_info *s, kms_usage u);

#endif
