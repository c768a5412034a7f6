/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: the key spec table (keyspec.h). */
#include "keyspec.h"

#include <string.h>

/* The algorithm lists of the Key spec reference (AWS KMS Developer Guide): an RSA key
 * encrypts with RSAES-OAEP over SHA-1 or SHA-256, or signs with all six RSASSA algorithms;
 * an ECC key signs with the one ECDSA digest of its curve (SHA-256 for secp256k1 too) and,
 * on the NIST curves, agrees keys with ECDH; an HMAC key computes the HMAC of its digest. */
static const char *const kms_rsa_sign[] = {"RSASSA_PSS_SHA_256",
                                           "RSASSA_PSS_SHA_384",
                                           "RSASSA_PSS_SHA_512",
                                           "RSASSA_PKCS1_V1_5_SHA_256",
                                           "RSASSA_PKCS1_V1_5_SHA_384",
                                           "RSASSA_PKCS1_V1_5_SHA_512",
                                           NULL};
static const char *const kms_rsa_encrypt[] = {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", NULL};
static const char *const kms_ecdsa_256[] = {"ECDSA_SHA_256", NULL};
static const char *const kms_ecdsa_384[] = {"ECDSA_SHA_384", NULL};
static const char *const kms_ecdsa_512[] = {"ECDSA_SHA_512", NULL};
static const char *const kms_ecdh[] = {"ECDH", NULL};
static const char *const kms_symmetric[] = {"SYMMETRIC_DEFAULT", NULL};
static const char *const kms_hmac_224[] = {"HMAC_SHA_224", NULL};
static const char *const kms_hmac_256[] = {"HMAC_SHA_256", NULL};
static const char *const kms_hmac_384[] = {"HMAC_SHA_384", NULL};
static const char *const kms_hmac_512[] = {"HMAC_SHA_512", NULL};

#define KMS_RSA(n, bits) \
    { \
        .name = (n), .built = true, .kind = KMS_KIND_RSA, .rsa_bits = (bits), \
        .algs = {[KMS_USAGE_SIGN_VERIFY] = kms_rsa_sign, [KMS_USAGE_ENCRYPT_DECRYPT] = kms_rsa_encrypt}, \
    }
/* ECC keys on a NIST curve may sign or agree keys; secp256k1 only signs ("For asymmetric KMS
 * keys with ECC_SECG_P256K1 key pairs, specify SIGN_VERIFY", CreateKey's KeyUsage). */
#define KMS_EC(n, group, ecdsa, agree) \
    { \
        .name = (n), .built = true, .kind = KMS_KIND_EC, .curve = (group), \
        .algs = {[KMS_USAGE_SIGN_VERIFY] = (ecdsa), [KMS_USAGE_KEY_AGREEMENT] = (agree)}, \
    }
/* HMAC_<n>: a key of n bits for the HMAC (RFC 2104) of SHA-<n>, whose MAC is n bits too. */
#define KMS_HMAC(n, md, len, alg) \
    { \
        .name = (n), .built = true, .kind = KMS_KIND_HMAC, .mac_md = (md), .mac_len = (len), \
        .algs = {[KMS_USAGE_GENERATE_VERIFY_MAC] = (alg)}, \
    }

/* KeySpec enum of botocore's kms/2014-11-01/service-2.json, in its order. */
static const kms_spec_info kms_specs[] = {
    KMS_RSA("RSA_2048", 2048),
    KMS_RSA("RSA_3072", 3072),
    KMS_RSA("RSA_4096", 4096),
    KMS_EC("ECC_NIST_P256", "prime256v1", kms_ecdsa_256, kms_ecdh),
    KMS_EC("ECC_NIST_P384", "secp384r1", kms_ecdsa_384, kms_ecdh),
    KMS_EC("ECC_NIST_P521", "secp521r1", kms_ecdsa_512, kms_ecdh),
    KMS_EC("ECC_SECG_P256K1", "secp256k1", kms_ecdsa_256, NULL),
    {.name = "SYMMETRIC_DEFAULT",
     .built = true,
     .kind = KMS_KIND_SYMMETRIC,
     .algs = {[KMS_USAGE_ENCRYPT_DECRYPT] = kms_symmetric}},
    KMS_HMAC("HMAC_224", "SHA224", 28, kms_hmac_224),
    KMS_HMAC("HMAC_256", "SHA256", 32, kms_hmac_256),
    KMS_HMAC("HMAC_384", "SHA384", 48, kms_hmac_384),
    KMS_HMAC("HMAC_512", "SHA512", 64, kms_hmac_512),
    {.name = "SM2",
     .why_not = "SM2 (the Chinese ShangMi standard, with SM2DSA and SM2PKE) is offered by AWS in its China Regions "
                "only and is not implemented by this server; use an ECC_NIST_* or RSA_* key spec"},
    {.name = "ML_DSA_44", .why_not = "ML-DSA (FIPS 204) needs OpenSSL 3.5, and this server is built on OpenSSL 3.0"},
    {.name = "ML_DSA_65", .why_not = "ML-DSA (FIPS 204) needs OpenSSL 3.5, and this server is built on OpenSSL 3.0"},
    {.name = "ML_DSA_87", .why_not = "ML-DSA (FIPS 204) needs OpenSSL 3.5, and this server is built on OpenSSL 3.0"},
    {.name = "ECC_NIST_EDWARDS25519",
     .why_not = "Ed25519 KMS keys sign with ED25519_PH_SHA_512 too (Ed25519ph, RFC 8032), which OpenSSL 3.0, this "
                "server's, does not implement"},
};

#define KMS_SPECS_N (sizeof(kms_specs) / sizeof(kms_specs[0]))

static const char *const kms_usage_names[KMS_USAGE_N] = {"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC",
                                                         "KEY_AGREEMENT"};
/* KeyMetadata and GetPublicKeyResponse members. */
static const char *const kms_usage_members[KMS_USAGE_N] = {"SigningAlgorithms", "EncryptionAlgorithms", "MacAlgorithms",
                                                           "KeyAgreementAlgorithms"};

const kms_spec_info *kms_spec_row(const char *name)
{
    for (size_t i = 0; i < KMS_SPECS_N; i++)
        if (strcmp(kms_specs[i].name, name) == 0) return &kms_specs[i];
    return NULL;
}

const kms_spec_info *kms_spec_find(const char *name)
{
    const kms_spec_info *s = kms_spec_row(name);
    return s != NULL && s->built ? s : NULL;
}

bool kms_spec_in_model(const char *name) { return kms_spec_row(name) != NULL; }

kms_usage kms_usage_find(const char *name)
{
    for (int u = 0; u < KMS_USAGE_N; u++)
        if (strcmp(kms_usage_names[u], name) == 0) return (kms_usage)u;
    return KMS_USAGE_N;
}

const char *kms_usage_name(kms_usage u) { return u < KMS_USAGE_N ? kms_usage_names[u] : "(none)"; }

const char *kms_usage_algs_member(kms_usage u) { return u < KMS_USAGE_N ? kms_usage_members[u] : NULL; }

bool kms_spec_has_usage(const kms_spec_info *s, kms_usage u) { return u < KMS_USAGE_N && s->algs[u] != NULL; }

bool kms_spec_allows(const kms_spec_info *s, kms_usage u, const char *alg)
{
    if (!kms_spec_has_usage(s, u)) return false;
    for (size_t i = 0; s->algs[u][i] != NULL; i++)
        if (strcmp(s->algs[u][i], alg) == 0) return true;
    return false;
}

void kms_spec_names(bool built_only, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < KMS_SPECS_N && n + 1 < cap; i++)
        if (!built_only || kms_specs[i].built) out[n++] = kms_specs[i].name;
    if (cap > 0) out[n] = NULL;
}

json_t *kms_spec_algs_json(const kms_spec_info *s, kms_usage u)
{
    if (!kms_spec_has_usage(s, u)) return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && s->algs[u][i] != NULL; i++) {
        if (json_array_append_new(a, json_string(s->algs[u][i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}
