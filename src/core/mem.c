/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/mem.h"

#include <malloc.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cloister/log.h"

/* Layout of one allocation, in pages:
 *   [header][guard][data ... data][guard]
 * The header page holds the total mapping size and the user size; the pointer
 * returned is the first data byte. */
typedef struct cl_secure_header {
    size_t total;
    size_t size;
} cl_secure_header;

static atomic_int cl_secure_all_locked = 1;

/* Freed one-page allocations are kept (wiped, still locked and guarded) in a
 * small per-thread cache and handed out again: a server allocates a few
 * secret buffers per request, and each munmap in a multi-threaded process is
 * a TLB shootdown on every core (measured: half of cloister-kms's CPU time
 * under load went to munmap before this cache). */
#define CL_SECURE_CACHE_SLOTS 16
static _Thread_local uint8_t *cl_secure_cache[CL_SECURE_CACHE_SLOTS];
static _Thread_local size_t cl_secure_cached;

static size_t cl_page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096u;
}

void *cl_secure_alloc(size_t size)
{
    size_t page = cl_page_size();
    if (size == 0) size = 1;
    if (size > SIZE_MAX - 4 * page) return NULL;
    size_t data_len = (size + page - 1) / page * page;
    size_t total = data_len + 3 * page;
    if (data_len == page && cl_secure_cached > 0) {
        uint8_t *cached = cl_secure_cache[--cl_secure_cached];
        ((cl_secure_header *)cached)->size = size;
        return cached + 2 * page; /* wiped when it was freed */
    }
    uint8_t *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    uint8_t *data = base + 2 * page;
    if (mprotect(base + page, page, PROT_NONE) != 0 || mprotect(data + data_len, page, PROT_NONE) != 0) {
        munmap(base, total);
        return NULL;
    }
#ifdef MADV_DONTDUMP
    (void)madvise(base, total, MADV_DONTDUMP);
#endif
    if (mlock(data, data_len) != 0) {
        if (atomic_exchange(&cl_secure_all_locked, 0) == 1) {
            CL_LOG_DEBUG("mlock of secret memory failed (RLIMIT_MEMLOCK?); secrets may be swapped");
        }
    }
    cl_secure_header *hdr = (cl_secure_header *)base;
    hdr->total = total;
    hdr->size = size;
    return data;
}

void cl_secure_free(void *p)
{
    if (p == NULL) return;
    size_t page = cl_page_size();
    uint8_t *data = p;
    uint8_t *base = data - 2 * page;
    cl_secure_header *hdr = (cl_secure_header *)base;
    size_t total = hdr->total;
    size_t data_len = total - 3 * page;
    OPENSSL_cleanse(data, data_len);
    if (data_len == page && cl_secure_cached < CL_SECURE_CACHE_SLOTS) {
        cl_secure_cache[cl_secure_cached++] = base;
        return;
    }
    (void)munlock(data, data_len);
    munmap(base, total);
}

int cl_secure_locked(void) { return atomic_load(&cl_secure_all_locked); }

static void (*cl_wiped_release)(void *p, size_t n);

void cl_free_wiped_set_release(void (*release)(void *p, size_t n)) { cl_wiped_release = release; }

void cl_free_wiped(void *p)
{
    if (p == NULL) return;
    size_t n = malloc_usable_size(p);
    cl_memzero(p, n);
    if (cl_wiped_release != NULL)
        cl_wiped_release(p, n);
    else
        free(p);
}

/* Never realloc(): glibc moves a block without clearing the old one. */
void *cl_realloc_wiped(void *p, size_t n)
{
    if (p == NULL) return malloc(n);
    if (n == 0) {
        cl_free_wiped(p);
        return NULL;
    }
    size_t have = malloc_usable_size(p);
    if (n <= have) return p;
    void *q = malloc(n);
    if (q == NULL) return NULL;
    memcpy(q, p, have);
    cl_free_wiped(p);
    return q;
}

void cl_memzero(void *p, size_t n)
{
    if (p != NULL && n > 0) OPENSSL_cleanse(p, n);
}

int cl_ct_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }
