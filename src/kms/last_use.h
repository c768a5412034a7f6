/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the last successful cryptographic use of each key, for GetKeyLastUsage (AWS KMS
 * API Reference: the operation, when, and the request's id). Kept in memory by this process from
 * its start, which is the tracking start it reports ("TrackingStartDate: the date from which KMS
 * began recording cryptographic activity for this key, or the date the KMS key was created,
 * whichever is later"). One shard per worker thread: a worker records into its own (a lock no
 * other thread takes except a reader), a reader takes the newest entry over all shards. Nothing
 * here is secret: key ids, operation names, request ids and times.
 */
#ifndef CLOISTER_KMS_USAGE_H
#define CLOISTER_KMS_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/error.h"

#include "store.h"

typedef struct kms_last_use kms_last_use;

typedef struct kms_last_use_entry {
    char key_id[KMS_KEY_ID_LEN + 1];
    const char *operation; /* one of kms_last_use_operation's names (static) */
    int64_t when;          /* seconds since the epoch */
    char request_id[40];
} kms_last_use_entry;

/* A tracker with `shards` shards, started at `start` (seconds since the epoch). */
CL_MUST_USE cl_status kms_last_use_new(size_t shards, int64_t start, kms_last_use **out);
void kms_last_use_free(kms_last_use *u);
int64_t kms_last_use_start(const kms_last_use *u);
/* The KeyLastUsageTrackingOperation name equal to op, or NULL when op is not one of them. */
const char *kms_last_use_operation(const char *op);
/* Records a successful use in shard `shard`. A failure to grow the shard (out of memory) keeps
 * the older entries and is reported. */
CL_MUST_USE cl_status kms_last_use_record(kms_last_use *u, size_t shard, const char *key_id, const char *operation,
                                          int64_t when, const char *request_id);
/* The newest use of key_id over all shards into out; false when none was recorded. */
bool kms_last_use_last(kms_last_use *u, const char *key_id, kms_last_use_entry *out);

#endif
