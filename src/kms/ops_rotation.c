/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
 * RotateKeyOnDemand, ListKeyRotations (ops.h). Rotation adds a key version (key_access.h,
 * kms_key_rotate); automatic rotation happens when a due key is next loaded. Uses
 * request.c and key_access.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key_access.h"
#include "ops.h"
#include "request.h"

#define KMS_ROTATION_MIN_DAYS 90
#define KMS_ROTATION_MAX_DAYS 2560

/* Rotation settings need an enabled key (AWS: DisabledException for a
 * disabled key, KMSInvalidStateException pending deletion). */
static CL_MUST_USE cl_status kms_rotation_key(kms_call *c, const char *action, kms_key_rec *k)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_key_load(c, id, 0, k));
    cl_status rc = kms_key_authorize(c, k, action, NULL);
    /* AWS rotates symmetric encryption keys only. */
    if (rc == CL_OK && strcmp(k->key_spec, "SYMMETRIC_DEFAULT") != 0) {
        c->exception = "UnsupportedOperationException";
        rc = CL_RAISE(CL_ERR_UNSUPPORTED, "%s is a %s key: only symmetric encryption keys rotate", k->arn, k->key_spec);
    }
    /* "You cannot enable automatic rotation of ... KMS keys with imported key material"
     * (EnableKeyRotation). AWS rotates them on demand only into new material imported for it
     * (ImportType NEW_KEY_MATERIAL), which this server does not take (ops_import.c). */
    if (rc == CL_OK && k->external) {
        c->exception = "UnsupportedOperationException";
        rc = CL_RAISE(CL_ERR_UNSUPPORTED,
                      "%s has imported key material (Origin EXTERNAL): it does not rotate here; to change its "
                      "material, create a new key",
                      k->arn);
    }
    if (rc == CL_OK) rc = kms_key_require_enabled(c, k);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_op_enable_key_rotation(kms_call *c)
{
    long long days = KMS_ROTATION_DEFAULT_DAYS;
    bool have;
    CL_GUARD(kms_req_int(c, "RotationPeriodInDays", &have, KMS_ROTATION_MIN_DAYS, KMS_ROTATION_MAX_DAYS, &days));
    kms_key_rec k;
    CL_GUARD(kms_rotation_key(c, "kms:EnableKeyRotation", &k));
    if (!k.rotation_enabled) {
        /* The period counts from when rotation is turned on. */
        k.last_rotated = c->now;
    }
    k.rotation_enabled = true;
    k.rotation_period_days = (int)days;
    cl_status rc = c->kms->store->ops->update_key(c->kms->store, &k);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_disable_key_rotation(kms_call *c)
{
    kms_key_rec k;
    CL_GUARD(kms_rotation_key(c, "kms:DisableKeyRotation", &k));
    k.rotation_enabled = false;
    cl_status rc = c->kms->store->ops->update_key(c->kms->store, &k);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_get_key_rotation_status(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = kms_key_authorize(c, &k, "kms:GetKeyRotationStatus", NULL);
    if (rc == CL_OK) {
        json_object_set_new(c->resp, "KeyRotationEnabled", json_boolean(k.rotation_enabled));
        json_object_set_new(c->resp, "KeyId", json_string(k.arn));
        if (k.rotation_enabled) {
            json_object_set_new(c->resp, "RotationPeriodInDays", json_integer(k.rotation_period_days));
            json_object_set_new(c->resp, "NextRotationDate",
                                json_integer(k.last_rotated + (int64_t)k.rotation_period_days * KMS_DAY));
        }
    }
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_rotate_key_on_demand(kms_call *c)
{
    kms_key_rec k;
    CL_GUARD(kms_rotation_key(c, "kms:RotateKeyOnDemand", &k));
    cl_status rc = kms_key_rotate(c, &k, true);
    if (rc == CL_ERR_STATE) {
        c->exception = "ConflictException";
        rc = CL_RAISE(CL_ERR_STATE, "%s is already being rotated", k.arn);
    }
    if (rc == CL_OK) json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_list_key_rotations(kms_call *c)
{
    const char *id, *marker;
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_req_marker(c, &marker));
    /* The marker is the last version returned; version 1 is never listed (it
     * is the original material, not a rotation). */
    uint32_t after = 1;
    if (marker[0] != '\0') {
        uint64_t v = 0;
        if (cl_parse_uint(marker, 1, UINT32_MAX, "Marker", &v) != CL_OK)
            KMS_FAIL_AS(c, "InvalidMarkerException", CL_ERR_USAGE, "Marker %s is not valid", marker);
        after = (uint32_t)v;
    }
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = CL_OK;
    uint32_t *vers = calloc((size_t)limit, sizeof(*vers));
    int64_t *when = calloc((size_t)limit, sizeof(*when));
    bool *od = calloc((size_t)limit, sizeof(*od));
    CL_ENSURE_GOTO(vers && when && od, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:ListKeyRotations", NULL));
    size_t n;
    bool more;
    CL_GUARD_GOTO(
        c->kms->store->ops->list_versions(c->kms->store, k.key_id, after, (size_t)limit, vers, when, od, &n, &more));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "KeyId", k.key_id, "RotationDate", (json_int_t)when[i],
                                             "RotationType", od[i] ? "ON_DEMAND" : "AUTOMATIC"));
    json_object_set_new(c->resp, "Rotations", arr);
    json_object_set_new(c->resp, "Truncated", json_boolean(more));
    if (more && n > 0) {
        char m[16];
        (void)snprintf(m, sizeof(m), "%u", vers[n - 1]);
        json_object_set_new(c->resp, "NextMarker", json_string(m));
    }
out:
    free(vers);
    free(when);
    free(od);
    kms_key_rec_clear(&k);
    return rc;
}
