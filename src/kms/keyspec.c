/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: the key spec table (keyspec.h). */
#include "keyspec.h"

#include <string.h>

#define KMS_RSA_ALGS \
    { \
        "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256", \
            "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512", NULL \
    }

/* KeySpec enum of botocore's kms/2014-11-01/service-2.json, in its order. Key spec
 * reference: RSA keys sign with all six RSASSA algorithms; an ECC key with the one ECDSA
 * digest of its curve; HMAC_256 with HMAC_SHA_256. */
static const kms_spec_info kms_specs[] = {
    {.name = "RSA_2048",
     .built = true,
     .kind = KMS_KIND_RSA,
     .usage = "SIGN_VERIFY",
     .rsa_bits = 2048,
     .algs = KMS_RSA_ALGS},
    {.name = "RSA_3072",
     .built = true,
     .kind = KMS_KIND_RSA,
     .usage = "SIGN_VERIFY",
     .rsa_bits = 3072,
     .algs = KMS_RSA_ALGS},
    {.name = "RSA_4096"},
    {.name = "ECC_NIST_P256",
     .built = true,
     .kind = KMS_KIND_EC,
     .usage = "SIGN_VERIFY",
     .curve = "prime256v1",
     .algs = {"ECDSA_SHA_256", NULL}},
    {.name = "ECC_NIST_P384",
     .built = true,
     .kind = KMS_KIND_EC,
     .usage = "SIGN_VERIFY",
     .curve = "secp384r1",
     .algs = {"ECDSA_SHA_384", NULL}},
    {.name = "ECC_NIST_P521"},
    {.name = "ECC_SECG_P256K1"},
    {.name = "SYMMETRIC_DEFAULT",
     .built = true,
     .kind = KMS_KIND_SYMMETRIC,
     .usage = "ENCRYPT_DECRYPT",
     .algs = {"SYMMETRIC_DEFAULT", NULL}},
    {.name = "HMAC_224"},
    {.name = "HMAC_256",
     .built = true,
     .kind = KMS_KIND_HMAC,
     .usage = "GENERATE_VERIFY_MAC",
     .algs = {"HMAC_SHA_256", NULL}},
    {.name = "HMAC_384"},
    {.name = "HMAC_512"},
    {.name = "SM2"},
    {.name = "ML_DSA_44"},
    {.name = "ML_DSA_65"},
    {.name = "ML_DSA_87"},
    {.name = "ECC_NIST_EDWARDS25519"},
};

#define KMS_SPECS_N (sizeof(kms_specs) / sizeof(kms_specs[0]))

static const kms_spec_info *kms_spec_row(const char *name)
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

bool kms_spec_allows(const kms_spec_info *s, const char *alg)
{
    for (size_t i = 0; s->algs[i] != NULL; i++)
        if (strcmp(s->algs[i], alg) == 0) return true;
    return false;
}

void kms_spec_names(bool built_only, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < KMS_SPECS_N && n + 1 < cap; i++)
        if (!built_only || kms_specs[i].built) out[n++] = kms_specs[i].name;
    if (cap > 0) out[n] = NULL;
}

json_t *kms_spec_algs_json(const kms_spec_info *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && s->algs[i] != NULL; i++) json_array_append_new(a, json_string(s->algs[i]));
    return a;
}
