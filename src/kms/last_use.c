/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: last use of each key (usage.h). Each shard is an open-addressing hash table with
 * linear probing, grown at half full, so that no entry is ever dropped: a key reported as unused
 * since the tracking start must not have been used.
 */
#include "last_use.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KeyLastUsageTrackingOperation of the service model. */
static const char *const kms_last_use_ops[] = {"Decrypt",
                                               "DeriveSharedSecret",
                                               "Encrypt",
                                               "GenerateDataKey",
                                               "GenerateDataKeyPair",
                                               "GenerateDataKeyPairWithoutPlaintext",
                                               "GenerateDataKeyWithoutPlaintext",
                                               "GenerateMac",
                                               "ReEncrypt",
                                               "Sign",
                                               "Verify",
                                               "VerifyMac"};

typedef struct kms_last_use_shard {
    pthread_mutex_t mu;
    kms_last_use_entry *slots; /* key_id[0] == '\0': free */
    size_t cap, used;          /* cap: a power of two */
} kms_last_use_shard;

struct kms_last_use {
    int64_t start;
    size_t n;
    kms_last_use_shard *shards;
};

#define KMS_USAGE_INITIAL 64

cl_status kms_last_use_new(size_t shards, int64_t start, kms_last_use **out)
{
    CL_ENSURE(shards >= 1, CL_ERR_INTERNAL, "a usage tracker needs a shard");
    kms_last_use *u = calloc(1, sizeof(*u));
    CL_ENSURE(u != NULL, CL_ERR_NOMEM, "out of memory for the key usage tracker");
    u->shards = calloc(shards, sizeof(*u->shards));
    if (u->shards == NULL) {
        free(u);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for the key usage tracker");
    }
    u->n = shards;
    u->start = start;
    for (size_t i = 0; i < shards; i++) pthread_mutex_init(&u->shards[i].mu, NULL);
    *out = u;
    return CL_OK;
}

void kms_last_use_free(kms_last_use *u)
{
    if (u == NULL) return;
    for (size_t i = 0; i < u->n; i++) {
        pthread_mutex_destroy(&u->shards[i].mu);
        free(u->shards[i].slots);
    }
    free(u->shards);
    free(u);
}

int64_t kms_last_use_start(const kms_last_use *u) { return u->start; }

const char *kms_last_use_operation(const char *op)
{
    for (size_t i = 0; i < sizeof(kms_last_use_ops) / sizeof(kms_last_use_ops[0]); i++)
        if (strcmp(kms_last_use_ops[i], op) == 0) return kms_last_use_ops[i];
    return NULL;
}

static size_t kms_last_use_hash(const char *key_id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = key_id; *p != '\0'; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    return (size_t)h;
}

/* The slot of key_id in slots (cap a power of two): its entry, or the free slot it would take. */
static kms_last_use_entry *kms_usage_find(kms_last_use_entry *slots, size_t cap, const char *key_id)
{
    size_t i = kms_last_use_hash(key_id) & (cap - 1);
    while (slots[i].key_id[0] != '\0' && strcmp(slots[i].key_id, key_id) != 0) i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Doubles the shard's table (or makes its first), moving every entry. Called under its lock. */
static CL_MUST_USE cl_status kms_last_use_grow(kms_last_use_shard *sh)
{
    size_t cap = sh->cap ? sh->cap * 2 : KMS_USAGE_INITIAL;
    kms_last_use_entry *slots = calloc(cap, sizeof(*slots));
    CL_ENSURE(slots != NULL, CL_ERR_NOMEM, "out of memory for %zu key usage entries", cap);
    for (size_t i = 0; i < sh->cap; i++)
        if (sh->slots[i].key_id[0] != '\0') *kms_usage_find(slots, cap, sh->slots[i].key_id) = sh->slots[i];
    free(sh->slots);
    sh->slots = slots;
    sh->cap = cap;
    return CL_OK;
}

cl_status kms_last_use_record(kms_last_use *u, size_t shard, const char *key_id, const char *operation, int64_t when,
                              const char *request_id)
{
    CL_ENSURE(shard < u->n && strlen(key_id) == KMS_KEY_ID_LEN, CL_ERR_INTERNAL, "bad key usage record");
    kms_last_use_shard *sh = &u->shards[shard];
    cl_status rc = CL_OK;
    pthread_mutex_lock(&sh->mu);
    if (2 * (sh->used + 1) > sh->cap) rc = kms_last_use_grow(sh);
    if (rc == CL_OK) {
        kms_last_use_entry *e = kms_usage_find(sh->slots, sh->cap, key_id);
        if (e->key_id[0] == '\0') sh->used++;
        (void)snprintf(e->key_id, sizeof(e->key_id), "%s", key_id);
        e->operation = operation;
        e->when = when;
        (void)snprintf(e->request_id, sizeof(e->request_id), "%s", request_id);
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

bool kms_last_use_last(kms_last_use *u, const char *key_id, kms_last_use_entry *out)
{
    bool found = false;
    for (size_t i = 0; i < u->n; i++) {
        kms_last_use_shard *sh = &u->shards[i];
        pthread_mutex_lock(&sh->mu);
        if (sh->cap > 0) {
            const kms_last_use_entry *e = kms_usage_find(sh->slots, sh->cap, key_id);
            /* Ties (two workers in the same second) go to the later shard: either is right. */
            if (e->key_id[0] != '\0' && (!found || e->when >= out->when)) {
                *out = *e;
                found = true;
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
    return found;
}
