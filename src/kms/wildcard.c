/* SPDX-License-Identifier: Apache-2.0 */
/* IAM wildcard matching with a worst-case bound. See wildcard.h. */
#include "wildcard.h"

#include <stdlib.h>
#include <string.h>

#define KMS_WILD_NONE ((size_t)-1)

static size_t kms_wild_count(const char *pat, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (pat[i] != '*' && (i == 0 || pat[i - 1] == '*')) n++;
    return n;
}

size_t kms_wild_size(const char *pat, size_t len)
{
    return sizeof(kms_wild) + kms_wild_count(pat, len) * sizeof(kms_wild_seg);
}

void kms_wild_compile(const char *pat, size_t len, kms_wild *out)
{
    memset(out, 0, sizeof(*out));
    out->pat = pat;
    out->star = memchr(pat, '*', len) != NULL;
    out->anchor_head = len == 0 || pat[0] != '*';
    out->anchor_tail = len == 0 || pat[len - 1] != '*';
    for (size_t i = 0; i < len;) {
        if (pat[i] == '*') {
            i++;
            continue;
        }
        kms_wild_seg *g = &out->seg[out->nseg++];
        memset(g, 0, sizeof(*g));
        g->off = (uint32_t)i;
        for (; i < len && pat[i] != '*'; i++) {
            uint8_t c = (uint8_t)pat[i];
            if (c == '?') continue;
            out->need[c / 64] |= (uint64_t)1 << (c % 64);
            g->literals++;
        }
        g->len = (uint32_t)(i - g->off);
        out->min_len += g->len;
    }
}

cl_status kms_wild_text_init(kms_wild_text *t, const char *s, size_t n, bool fold)
{
    /* row[] is read only for the bytes present marks: not cleared. */
    memset(t->present, 0, sizeof(t->present));
    t->n = n;
    t->words = n / 64 + 2;
    t->bits = NULL;
    t->s = malloc(n + 1);
    CL_ENSURE(t->s != NULL, CL_ERR_NOMEM, "out of memory indexing a %zu-byte condition value", n);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (fold && c >= 'A' && c <= 'Z') c = (uint8_t)(c - 'A' + 'a');
        t->s[i] = c;
        if ((t->present[c / 64] & ((uint64_t)1 << (c % 64))) != 0) continue;
        t->present[c / 64] |= (uint64_t)1 << (c % 64);
        t->row[c] = (uint32_t)(distinct++ * t->words);
    }
    t->s[n] = 0;
    if (distinct > 0) {
        t->bits = calloc(distinct * t->words, sizeof(uint64_t));
        if (t->bits == NULL) {
            kms_wild_text_free(t);
            CL_FAIL(CL_ERR_NOMEM, "out of memory indexing a %zu-byte condition value", n);
        }
    }
    for (size_t i = 0; i < n; i++) t->bits[t->row[t->s[i]] + i / 64] |= (uint64_t)1 << (i % 64);
    return CL_OK;
}

void kms_wild_text_free(kms_wild_text *t)
{
    free(t->s);
    free(t->bits);
    t->s = NULL;
    t->bits = NULL;
    t->n = 0;
}

/* Does segment g sit at text position p (p + g->len <= t->n)? */
static bool kms_wild_seg_at(const kms_wild *w, const kms_wild_seg *g, const kms_wild_text *t, size_t p)
{
    for (size_t k = 0; k < g->len; k++) {
        char c = w->pat[g->off + k];
        if (c != '?' && (uint8_t)c != t->s[p + k]) return false;
    }
    return true;
}

/* Bits at..at+63 of a bitset whose word `b[0]` holds bit `at - shift`: (b[1] << 1) << (63 - shift)
 * is b[1] << (64 - shift) without the undefined shift by 64 when shift is 0 (it is then 0). */
static inline uint64_t kms_wild_bits(const uint64_t *b, unsigned shift)
{
    return (b[0] >> shift) | ((b[1] << 1) << (63 - shift));
}

/* The leftmost q in [pos, end - g->len] where g occurs, or KMS_WILD_NONE.
 *
 * Candidates are kept for a block of up to 8 words (512 positions) at a time: for each literal
 * k of the segment, candidate q survives when bit q+k of the literal's bitset is set, so the
 * block's candidate words are ANDed with the bitset's words shifted by k (the same shift for
 * the whole block, which the compiler can turn into vector operations). A block stops at the
 * first literal that leaves it no candidate, the search at the first block that keeps one.
 * Reads stay inside the bitsets: the last is word (last + k) / 64 + 1 <= n / 64 + 1. */
#define KMS_WILD_BLOCK 8

static size_t kms_wild_find(const kms_wild *w, const kms_wild_seg *g, const kms_wild_text *t, size_t pos, size_t end)
{
    if (end < pos || end - pos < g->len) return KMS_WILD_NONE;
    if (g->literals == 0) return pos; /* all '?': any place with room */
    const uint8_t *pat = (const uint8_t *)w->pat + g->off;
    size_t last = end - g->len, first_word = pos / 64, last_word = last / 64;
    uint64_t head_mask = ~(uint64_t)0 << (pos % 64);
    uint64_t tail_mask = last % 64 == 63 ? ~(uint64_t)0 : ((uint64_t)1 << (last % 64 + 1)) - 1;
    if (last_word - first_word < 2) {
        /* One or two words (a short value: most of them): two registers, no block. */
        uint64_t c0 = head_mask & (last_word == first_word ? tail_mask : ~(uint64_t)0);
        uint64_t c1 = last_word > first_word ? tail_mask : 0;
        for (size_t k = 0; k < g->len && (c0 | c1) != 0; k++) {
            if (pat[k] == '?') continue;
            const uint64_t *b = t->bits + t->row[pat[k]] + first_word + k / 64;
            c0 &= kms_wild_bits(b, (unsigned)(k % 64));
            if (c1 != 0) c1 &= kms_wild_bits(b + 1, (unsigned)(k % 64));
        }
        if (c0 != 0) return first_word * 64 + (size_t)__builtin_ctzll(c0);
        if (c1 != 0) return last_word * 64 + (size_t)__builtin_ctzll(c1);
        return KMS_WILD_NONE;
    }
    for (size_t w0 = first_word; w0 <= last_word; w0 += KMS_WILD_BLOCK) {
        size_t nw = last_word - w0 + 1 < KMS_WILD_BLOCK ? last_word - w0 + 1 : KMS_WILD_BLOCK;
        uint64_t cand[KMS_WILD_BLOCK];
        for (size_t i = 0; i < KMS_WILD_BLOCK; i++) cand[i] = ~(uint64_t)0;
        if (w0 == first_word) cand[0] &= head_mask;
        if (w0 + nw - 1 == last_word) cand[nw - 1] &= tail_mask;
        for (size_t k = 0; k < g->len; k++) {
            if (pat[k] == '?') continue;
            const uint64_t *b = t->bits + t->row[pat[k]] + w0 + k / 64;
            unsigned shift = (unsigned)(k % 64);
            uint64_t any = 0;
            for (size_t i = 0; i < nw; i++) any |= cand[i] &= kms_wild_bits(b + i, shift);
            if (any == 0) break;
        }
        for (size_t i = 0; i < nw; i++)
            if (cand[i] != 0) return (w0 + i) * 64 + (size_t)__builtin_ctzll(cand[i]);
    }
    return KMS_WILD_NONE;
}

bool kms_wild_match_range(const kms_wild *w, const kms_wild_text *t, size_t lo, size_t hi)
{
    size_t n = hi - lo;
    if (!w->star) return n == w->min_len && (w->nseg == 0 || kms_wild_seg_at(w, &w->seg[0], t, lo));
    if (n < w->min_len) return false;
    uint64_t lacking = 0;
    for (int i = 0; i < 4; i++) lacking |= w->need[i] & ~t->present[i];
    if (lacking != 0) return false; /* a byte the text does not contain: no search finds it */
    size_t first = 0, stop = w->nseg, pos = lo, end = hi;
    if (w->anchor_head && stop > first) {
        if (!kms_wild_seg_at(w, &w->seg[0], t, pos)) return false;
        pos += w->seg[0].len;
        first = 1;
    }
    if (w->anchor_tail && stop > first) {
        const kms_wild_seg *g = &w->seg[stop - 1];
        if (!kms_wild_seg_at(w, g, t, hi - g->len)) return false;
        end = hi - g->len;
        stop--;
    }
    /* n >= min_len keeps pos <= end here: the anchored segments do not overlap. */
    for (size_t i = first; i < stop; i++) {
        size_t q = kms_wild_find(w, &w->seg[i], t, pos, end);
        if (q == KMS_WILD_NONE) return false;
        pos = q + w->seg[i].len;
    }
    return true;
}

bool kms_wild_match(const kms_wild *w, const kms_wild_text *t) { return kms_wild_match_range(w, t, 0, t->n); }
