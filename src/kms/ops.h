/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the operations, one function per X-Amz-Target of the AWS KMS API
 * (TrentService.<Name>), each reading its request members (request.h) and filling
 * c->resp. ops.c holds only the table that kms_op_find (server.h) searches; each file
 * below holds one section of the API and depends only on the helper files (request.c,
 * key_access.c, grants.c, keyspec.c, ...), never on another operation file, except
 * ops_keys.c's use of the tag members of ops_tags.c.
 */
#ifndef CLOISTER_KMS_OPS_H
#define CLOISTER_KMS_OPS_H

#include "cloister/error.h"
#include "cloister/kv.h"

#include "server.h"

/* --- ops_keys.c: key lifecycle and key policies ---------------------------- */
CL_MUST_USE cl_status kms_op_create_key(kms_call *c);
CL_MUST_USE cl_status kms_op_describe_key(kms_call *c);
CL_MUST_USE cl_status kms_op_list_keys(kms_call *c);
CL_MUST_USE cl_status kms_op_enable_key(kms_call *c);
CL_MUST_USE cl_status kms_op_disable_key(kms_call *c);
CL_MUST_USE cl_status kms_op_schedule_key_deletion(kms_call *c);
CL_MUST_USE cl_status kms_op_cancel_key_deletion(kms_call *c);
CL_MUST_USE cl_status kms_op_get_key_policy(kms_call *c);
CL_MUST_USE cl_status kms_op_put_key_policy(kms_call *c);
CL_MUST_USE cl_status kms_op_list_key_policies(kms_call *c);
CL_MUST_USE cl_status kms_op_update_key_description(kms_call *c);

/* --- ops_import.c: imported key material (Origin EXTERNAL) --------------------- */
CL_MUST_USE cl_status kms_op_get_parameters_for_import(kms_call *c);
CL_MUST_USE cl_status kms_op_import_key_material(kms_call *c);
CL_MUST_USE cl_status kms_op_delete_imported_key_material(kms_call *c);

/* --- ops_last_use.c: GetKeyLastUsage ----------------------------------------------- */
CL_MUST_USE cl_status kms_op_get_key_last_usage(kms_call *c);

/* --- ops_unsupported.c: custom key stores and multi-Region keys ----------------- */
/* UnsupportedOperationException saying why (one server, no other key store, no replicas). */
CL_MUST_USE cl_status kms_op_unsupported_key_store(kms_call *c);
CL_MUST_USE cl_status kms_op_unsupported_multi_region(kms_call *c);

/* --- ops_rotation.c: key rotation ------------------------------------------- */
CL_MUST_USE cl_status kms_op_enable_key_rotation(kms_call *c);
CL_MUST_USE cl_status kms_op_disable_key_rotation(kms_call *c);
CL_MUST_USE cl_status kms_op_get_key_rotation_status(kms_call *c);
CL_MUST_USE cl_status kms_op_rotate_key_on_demand(kms_call *c);
CL_MUST_USE cl_status kms_op_list_key_rotations(kms_call *c);

/* --- ops_aliases.c ---------------------------------------------------------- */
CL_MUST_USE cl_status kms_op_create_alias(kms_call *c);
CL_MUST_USE cl_status kms_op_update_alias(kms_call *c);
CL_MUST_USE cl_status kms_op_delete_alias(kms_call *c);
CL_MUST_USE cl_status kms_op_list_aliases(kms_call *c);

/* --- ops_grants.c ----------------------------------------------------------- */
CL_MUST_USE cl_status kms_op_create_grant(kms_call *c);
CL_MUST_USE cl_status kms_op_list_grants(kms_call *c);
CL_MUST_USE cl_status kms_op_list_retirable_grants(kms_call *c);
CL_MUST_USE cl_status kms_op_retire_grant(kms_call *c);
CL_MUST_USE cl_status kms_op_revoke_grant(kms_call *c);

/* --- ops_crypto.c: symmetric encryption, data keys, random ------------------- */
CL_MUST_USE cl_status kms_op_encrypt(kms_call *c);
CL_MUST_USE cl_status kms_op_decrypt(kms_call *c);
CL_MUST_USE cl_status kms_op_re_encrypt(kms_call *c);
CL_MUST_USE cl_status kms_op_generate_data_key(kms_call *c);
CL_MUST_USE cl_status kms_op_generate_data_key_wo(kms_call *c);
CL_MUST_USE cl_status kms_op_generate_random(kms_call *c);

/* --- ops_sign.c: asymmetric and HMAC keys ------------------------------------ */
CL_MUST_USE cl_status kms_op_sign(kms_call *c);
CL_MUST_USE cl_status kms_op_verify(kms_call *c);
CL_MUST_USE cl_status kms_op_get_public_key(kms_call *c);
CL_MUST_USE cl_status kms_op_generate_mac(kms_call *c);
CL_MUST_USE cl_status kms_op_verify_mac(kms_call *c);

/* --- ops_agreement.c: key agreement ------------------------------------------ */
CL_MUST_USE cl_status kms_op_derive_shared_secret(kms_call *c);

/* --- ops_keypair.c: data key pairs -------------------------------------------- */
CL_MUST_USE cl_status kms_op_generate_data_key_pair(kms_call *c);
CL_MUST_USE cl_status kms_op_generate_data_key_pair_wo(kms_call *c);

/* --- ops_tags.c --------------------------------------------------------------- */
CL_MUST_USE cl_status kms_op_tag_resource(kms_call *c);
CL_MUST_USE cl_status kms_op_untag_resource(kms_call *c);
CL_MUST_USE cl_status kms_op_list_resource_tags(kms_call *c);
/* The TagList member `member` of the request into out (CreateKey and TagResource). */
CL_MUST_USE cl_status kms_tags_member(kms_call *c, const char *member, cl_kvlist *out);
/* Adds tags to a key (LimitExceededException past AWS's 50 per key). */
CL_MUST_USE cl_status kms_tags_store(kms_call *c, const char *key_id, const cl_kvlist *tags);

#endif
