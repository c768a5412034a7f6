/* SPDX-License-Identifier: Apache-2.0 */
/*
 * IAM wildcard patterns (IAM User Guide, "IAM JSON policy elements: Condition operators",
 * StringLike: "*" matches any run of characters, "?" any single one; here a byte), matched
 * with a bound on the work that does not depend on what the pattern or the text are made of.
 *
 * A pattern is compiled once into its literal segments, the pieces between "*"s. A match
 * checks the first segment at the start of the text and the last at its end when the pattern
 * is anchored there, then finds each middle segment at its leftmost place after the previous
 * one: taking the leftmost place never loses a match, since any later place leaves less text
 * for the segments that follow. No backtracking, so the O(pattern x text) of a backtracking
 * glob on "*a*a*a*...b" cannot happen.
 *
 * Finding a segment is bit-parallel over an index of the text (one bit per position for each
 * byte value it contains): a segment s occurs at q when bit q+k of the index of s[k] is set
 * for every literal k, which tests 64 positions with one AND per literal. A failed search
 * costs at most |s| x (n/64 + 1) word operations and stops at the first word that still has
 * a candidate, so a policy's whole pattern list against one request value costs at most
 * (pattern bytes) x (n/64 + 1), whatever the patterns: a 32 KiB policy against an 8 KiB
 * encryption context is about 4 million word operations (tests/unit/test_policy.c times the
 * worst case). The index is built once per request value and shared by every pattern.
 */
#ifndef CLOISTER_KMS_WILDCARD_H
#define CLOISTER_KMS_WILDCARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/error.h"

typedef struct kms_wild_seg {
    uint32_t off;      /* into the pattern */
    uint32_t len;      /* bytes, '?' included */
    uint32_t literals; /* bytes other than '?' */
} kms_wild_seg;

/* A compiled pattern (patterns are policy values: at most KMS_POLICY_MAX bytes); it borrows
 * the pattern's bytes, which must outlive it. */
typedef struct kms_wild {
    const char *pat;
    uint64_t need[4]; /* the byte values of its literals: a text lacking one cannot match */
    uint32_t min_len; /* sum of the segments' lengths: the shortest text it can match */
    uint32_t nseg;
    bool star;          /* the pattern has a '*' */
    bool anchor_head;   /* seg[0] must be at the start of the text (no leading '*') */
    bool anchor_tail;   /* seg[nseg-1] must be at its end (no trailing '*') */
    kms_wild_seg seg[]; /* the literal segments, none empty */
} kms_wild;

/* Bytes kms_wild_compile needs for pat[0..len). */
size_t kms_wild_size(const char *pat, size_t len);
/* Compiles pat[0..len) into out, which has kms_wild_size(pat, len) bytes. */
void kms_wild_compile(const char *pat, size_t len, kms_wild *out);

/*
 * A text prepared for matching: a private copy of its bytes (ASCII letters lower-cased when
 * fold is set: compile the pattern from lower-case bytes too) and, for each byte value that
 * occurs, a bitset of its positions. Built in one pass.
 */
typedef struct kms_wild_text {
    uint8_t *s;
    size_t n;
    size_t words;        /* per bitset: n/64 + 2, the last zero, so a shifted read never overruns */
    uint64_t present[4]; /* the byte values that occur */
    uint32_t row[256];   /* where the bitset of a byte that occurs starts in bits, in words */
    uint64_t *bits;
} kms_wild_text;

CL_MUST_USE cl_status kms_wild_text_init(kms_wild_text *t, const char *s, size_t n, bool fold);
void kms_wild_text_free(kms_wild_text *t);

/* Does the pattern match t's bytes lo..hi-1 (lo <= hi <= t->n), all of them? */
bool kms_wild_match_range(const kms_wild *w, const kms_wild_text *t, size_t lo, size_t hi);
bool kms_wild_match(const kms_wild *w, const kms_wild_text *t);

#endif
