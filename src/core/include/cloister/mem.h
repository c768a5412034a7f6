/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory for secrets, after libsodium's sodium_malloc: each allocation gets its
 * own pages, locked in RAM where the kernel allows (mlock), excluded from core
 * dumps (MADV_DONTDUMP), with an inaccessible guard page on each side so an
 * overrun faults instead of reading a neighbour. Freed memory is wiped first.
 *
 * Prefer a secret cl_buf (cl_buf_init_secret) to calling these directly.
 */
#ifndef CLOISTER_MEM_H
#define CLOISTER_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Returns NULL when out of memory. Never fails for lack of mlock rights: the
 * pages are then unlocked, and cl_secure_locked() says so. */
void *cl_secure_alloc(size_t size);
void cl_secure_free(void *p);
/* 1 when every secure allocation so far could be locked. */
int cl_secure_locked(void);

/*
 * free() and realloc() that wipe the whole block first (all malloc_usable_size bytes), for
 * the heaps of libraries that hold our plaintext in ordinary memory: jansson's strings (a
 * decoded request, an encoded response) and libevent's buffers (request and response
 * bodies). A program installs them before its first call into those libraries
 * (json_set_alloc_funcs, event_set_mem_functions). The blocks come from malloc, so a block
 * a library hands out (json_dumps' text) may still be released with plain free(), unwiped.
 * No size header: malloc_usable_size knows the size, and memory allocated before the
 * switch, or freed by callers with free(), stays compatible.
 */
void cl_free_wiped(void *p);
void *cl_realloc_wiped(void *p, size_t n);
/* Tests: called with each wiped block instead of free() (NULL: free() again). */
void cl_free_wiped_set_release(void (*release)(void *p, size_t n));

/* Wipes memory in a way the compiler cannot elide (OPENSSL_cleanse). */
void cl_memzero(void *p, size_t n);
/* Constant-time equality of two n-byte regions (CRYPTO_memcmp): 1 if equal. */
int cl_ct_equal(const void *a, const void *b, size_t n);

#endif
