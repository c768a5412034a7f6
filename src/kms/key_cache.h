/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key records kept between requests: a Decrypt of a known key reads its record (state, policy,
 * rotation) from memory instead of the store. A record is kept together with the store's
 * generation when it was read (kms_store_ops.generation) and used only while the generation is
 * the same: any write to the store, by any request, makes every kept record stale, so a key
 * disabled, scheduled for deletion or given a new policy is never served from an old copy. A
 * store that cannot tell (generation 0: PostgreSQL, which other processes may write) keeps
 * nothing. The unwrapped material has its own cache (keys.h); records hold no key bytes.
 */
#ifndef CLOISTER_KMS_KEY_CACHE_H
#define CLOISTER_KMS_KEY_CACHE_H

#include "cloister/error.h"

#include "store.h"

typedef struct kms_key_cache kms_key_cache;

CL_MUST_USE cl_status kms_key_cache_new(size_t slots, kms_key_cache **out);
void kms_key_cache_free(kms_key_cache *kc);

/* The store's record of key_id, as get_key returns it (CL_ERR_NOT_FOUND when absent), from the
 * cache when it is current. kc NULL: straight from the store. Thread-safe. */
CL_MUST_USE cl_status kms_key_cache_get(kms_key_cache *kc, kms_store *store, const char *key_id, kms_key_rec *out);

#endif
