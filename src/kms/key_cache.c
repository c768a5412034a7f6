/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key-record cache (key_cache.h): a fixed table of slots, a key in the slot its id hashes
 * to (FNV-1a), one read-write lock so that lookups run in parallel.
 */
#include "key_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct kms_key_slot {
    uint64_t generation; /* 0: empty */
    kms_key_rec rec;     /* rec.policy owned by the slot */
} kms_key_slot;

struct kms_key_cache {
    pthread_rwlock_t lock;
    size_t n;
    kms_key_slot *slots;
};

cl_status kms_key_cache_new(size_t slots, kms_key_cache **out)
{
    CL_ENSURE(slots > 0, CL_ERR_USAGE, "the key-record cache needs at least one slot");
    kms_key_cache *kc = calloc(1, sizeof(*kc));
    CL_ENSURE(kc != NULL, CL_ERR_NOMEM, "out of memory for the key-record cache");
    kc->slots = calloc(slots, sizeof(*kc->slots));
    if (kc->slots == NULL) {
        free(kc);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for the key-record cache (%zu slots)", slots);
    }
    kc->n = slots;
    pthread_rwlock_init(&kc->lock, NULL);
    *out = kc;
    return CL_OK;
}

void kms_key_cache_free(kms_key_cache *kc)
{
    if (kc == NULL) return;
    for (size_t i = 0; i < kc->n; i++) kms_key_rec_clear(&kc->slots[i].rec);
    pthread_rwlock_destroy(&kc->lock);
    free(kc->slots);
    free(kc);
}

static size_t kms_key_cache_slot(const kms_key_cache *kc, const char *key_id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key_id; *p != '\0'; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return (size_t)(h % kc->n);
}

/* A deep copy of src into dst (the policy text duplicated). */
static CL_MUST_USE cl_status kms_key_rec_copy(kms_key_rec *dst, const kms_key_rec *src)
{
    *dst = *src;
    dst->policy = NULL;
    if (src->policy != NULL) {
        dst->policy = strdup(src->policy);
        if (dst->policy == NULL) {
            memset(dst, 0, sizeof(*dst));
            CL_FAIL(CL_ERR_NOMEM, "out of memory for a key's policy");
        }
    }
    return CL_OK;
}

cl_status kms_key_cache_get(kms_key_cache *kc, kms_store *store, const char *key_id, kms_key_rec *out)
{
    uint64_t gen = kc != NULL && store->ops->generation != NULL ? store->ops->generation(store) : 0;
    if (gen == 0) return store->ops->get_key(store, key_id, out);
    size_t i = kms_key_cache_slot(kc, key_id);
    pthread_rwlock_rdlock(&kc->lock);
    const kms_key_slot *slot = &kc->slots[i];
    bool hit = slot->generation == gen && strcmp(slot->rec.key_id, key_id) == 0;
    cl_status rc = hit ? kms_key_rec_copy(out, &slot->rec) : CL_OK;
    pthread_rwlock_unlock(&kc->lock);
    if (hit) return rc;
    /* The generation was read before the record: a write in between leaves the slot marked
     * with the older generation, so the next lookup reads the store again. */
    CL_GUARD(store->ops->get_key(store, key_id, out));
    kms_key_rec copy;
    if (kms_key_rec_copy(&copy, out) != CL_OK) {
        cl_error_clear(); /* not kept; the answer does not need it */
        return CL_OK;
    }
    pthread_rwlock_wrlock(&kc->lock);
    kms_key_slot *w = &kc->slots[i];
    kms_key_rec_clear(&w->rec);
    w->rec = copy;
    w->generation = gen;
    pthread_rwlock_unlock(&kc->lock);
    return CL_OK;
}
