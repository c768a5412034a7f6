/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the operation table. The operations themselves are in the ops_*.c files
 * (ops.h); this file only maps X-Amz-Target's operation name to them.
 */
#include "ops.h"

#include <string.h>

static const struct {
    const char *name;
    kms_op_fn fn;
} kms_op_table[] = {
    {"CancelKeyDeletion", kms_op_cancel_key_deletion},
    {"ConnectCustomKeyStore", kms_op_unsupported_key_store},
    {"CreateAlias", kms_op_create_alias},
    {"CreateCustomKeyStore", kms_op_unsupported_key_store},
    {"CreateGrant", kms_op_create_grant},
    {"CreateKey", kms_op_create_key},
    {"Decrypt", kms_op_decrypt},
    {"DeleteAlias", kms_op_delete_alias},
    {"DeleteCustomKeyStore", kms_op_unsupported_key_store},
    {"DeleteImportedKeyMaterial", kms_op_delete_imported_key_material},
    {"DeriveSharedSecret", kms_op_derive_shared_secret},
    {"DescribeCustomKeyStores", kms_op_unsupported_key_store},
    {"DescribeKey", kms_op_describe_key},
    {"DisableKey", kms_op_disable_key},
    {"DisableKeyRotation", kms_op_disable_key_rotation},
    {"DisconnectCustomKeyStore", kms_op_unsupported_key_store},
    {"EnableKey", kms_op_enable_key},
    {"EnableKeyRotation", kms_op_enable_key_rotation},
    {"Encrypt", kms_op_encrypt},
    {"GenerateDataKey", kms_op_generate_data_key},
    {"GenerateDataKeyPair", kms_op_generate_data_key_pair},
    {"GenerateDataKeyPairWithoutPlaintext", kms_op_generate_data_key_pair_wo},
    {"GenerateDataKeyWithoutPlaintext", kms_op_generate_data_key_wo},
    {"GenerateMac", kms_op_generate_mac},
    {"GenerateRandom", kms_op_generate_random},
    {"GetKeyLastUsage", kms_op_get_key_last_usage},
    {"GetKeyPolicy", kms_op_get_key_policy},
    {"GetKeyRotationStatus", kms_op_get_key_rotation_status},
    {"GetParametersForImport", kms_op_get_parameters_for_import},
    {"GetPublicKey", kms_op_get_public_key},
    {"ImportKeyMaterial", kms_op_import_key_material},
    {"ListAliases", kms_op_list_aliases},
    {"ListGrants", kms_op_list_grants},
    {"ListKeyPolicies", kms_op_list_key_policies},
    {"ListKeyRotations", kms_op_list_key_rotations},
    {"ListKeys", kms_op_list_keys},
    {"ListResourceTags", kms_op_list_resource_tags},
    {"ListRetirableGrants", kms_op_list_retirable_grants},
    {"PutKeyPolicy", kms_op_put_key_policy},
    {"ReEncrypt", kms_op_re_encrypt},
    {"ReplicateKey", kms_op_unsupported_multi_region},
    {"RetireGrant", kms_op_retire_grant},
    {"RevokeGrant", kms_op_revoke_grant},
    {"RotateKeyOnDemand", kms_op_rotate_key_on_demand},
    {"ScheduleKeyDeletion", kms_op_schedule_key_deletion},
    {"Sign", kms_op_sign},
    {"TagResource", kms_op_tag_resource},
    {"UntagResource", kms_op_untag_resource},
    {"UpdateAlias", kms_op_update_alias},
    {"UpdateCustomKeyStore", kms_op_unsupported_key_store},
    {"UpdateKeyDescription", kms_op_update_key_description},
    {"UpdatePrimaryRegion", kms_op_unsupported_multi_region},
    {"Verify", kms_op_verify},
    {"VerifyMac", kms_op_verify_mac},
};

#define KMS_OP_COUNT (sizeof(kms_op_table) / sizeof(kms_op_table[0]))

kms_op_fn kms_op_lookup(const char *name, size_t *index)
{
    for (size_t i = 0; i < KMS_OP_COUNT; i++) {
        if (strcmp(kms_op_table[i].name, name) == 0) {
            if (index != NULL) *index = i;
            return kms_op_table[i].fn;
        }
    }
    return NULL;
}

kms_op_fn kms_op_find(const char *name) { return kms_op_lookup(name, NULL); }

size_t kms_op_count(void) { return KMS_OP_COUNT; }

const char *kms_op_name(size_t index) { return index < KMS_OP_COUNT ? kms_op_table[index].name : NULL; }

/* One table from status to AWS exception (used when an operation did not
 * name a more specific one). */
static const struct {
    const char *exception;
    cl_status code;
    int http;
} kms_error_table[] = {
    {"ValidationException", CL_ERR_USAGE, 400},         {"ValidationException", CL_ERR_FORMAT, 400},
    {"ValidationException", CL_ERR_LIMIT, 400},         {"InvalidCiphertextException", CL_ERR_AUTH, 400},
    {"IncorrectKeyException", CL_ERR_KEY, 400},         {"AlreadyExistsException", CL_ERR_EXISTS, 400},
    {"NotFoundException", CL_ERR_NOT_FOUND, 400},       {"KMSInvalidStateException", CL_ERR_STATE, 400},
    {"AccessDeniedException", CL_ERR_DENIED, 400},      {"UnsupportedOperationException", CL_ERR_UNSUPPORTED, 400},
    {"InvalidSignatureException", CL_ERR_EXPIRED, 400},
};

const char *kms_exception_for(const kms_call *c, cl_status rc, int *http_status)
{
    *http_status = 400;
    if (c != NULL && c->exception != NULL) return c->exception;
    for (size_t i = 0; i < sizeof(kms_error_table) / sizeof(kms_error_table[0]); i++) {
        if (kms_error_table[i].code == rc) {
            *http_status = kms_error_table[i].http;
            return kms_error_table[i].exception;
        }
    }
    *http_status = 500;
    return "KMSInternalException";
}
