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

/* Wipes memory in a way the compiler cannot elide (OPENSSL_cleanse). */
void cl_memzero(void *p, size_t n);
/* Constant-time equality of two n-byte regions (CRYPTO_memcmp): 1 if equal. */
int cl_ct_equal(const void *a, const void *b, size_t n);

#endif
