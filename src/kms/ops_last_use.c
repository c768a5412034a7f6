/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: GetKeyLastUsage (ops.h): "usage information about the last successful
 * cryptographic operation performed with a specified KMS key, including the operation type,
 * timestamp" and the request's id (AWS KMS API Reference). The uses are those this process
 * recorded since it started (usage.h), which is the TrackingStartDate it answers, or the key's
 * creation if later: after a restart, or for uses another instance on a shared PostgreSQL store
 * served, the answer says "no record since the tracking start", as AWS's does for uses before its
 * tracking began. The audit log holds every use (its lines name the same request id). Uses
 * request.c, key_access.c and usage.c.
 */
#include "key_access.h"
#include "last_use.h"
#include "ops.h"
#include "request.h"

cl_status kms_op_get_key_last_usage(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    /* "Alias names are not supported": a key id or key ARN. */
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = kms_key_authorize(c, &k, "kms:GetKeyLastUsage", NULL);
    if (rc == CL_OK) {
        kms_last_use *u = c->kms->usage;
        int64_t start = u != NULL ? kms_last_use_start(u) : c->now;
        kms_last_use_entry e;
        json_t *last = json_object();
        if (u != NULL && kms_last_use_last(u, k.key_id, &e)) {
            json_object_set_new(last, "Operation", json_string(e.operation));
            json_object_set_new(last, "Timestamp", json_integer(e.when));
            json_object_set_new(last, "KmsRequestId", json_string(e.request_id));
        }
        json_object_set_new(c->resp, "KeyId", json_string(k.key_id));
        json_object_set_new(c->resp, "KeyLastUsage", last);
        json_object_set_new(c->resp, "TrackingStartDate", json_integer(start > k.created ? start : k.created));
        json_object_set_new(c->resp, "KeyCreationDate", json_integer(k.created));
    }
    kms_key_rec_clear(&k);
    return rc;
}
