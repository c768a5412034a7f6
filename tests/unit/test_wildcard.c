/* SPDX-License-Identifier: Apache-2.0 */
/* The bounded wildcard matcher against a plain reference (dynamic programming over pattern x
 * text, obviously right and too slow for the server) on random patterns and texts, whole and
 * on sub-ranges, and the cases that break naive matchers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "wildcard.h"

/* IAM semantics by definition: '*' any run, '?' any one byte, everything else itself. */
static bool ref_match(const char *p, size_t pn, const char *s, size_t sn)
{
    /* m[j]: p[0..i) matches s[0..j) */
    bool *m = calloc(sn + 1, sizeof(bool)), *next = calloc(sn + 1, sizeof(bool));
    if (m == NULL || next == NULL) abort();
    m[0] = true;
    for (size_t i = 0; i < pn; i++) {
        memset(next, 0, sn + 1);
        if (p[i] == '*') {
            bool any = false;
            for (size_t j = 0; j <= sn; j++) {
                any = any || m[j];
                next[j] = any;
            }
        } else {
            for (size_t j = 1; j <= sn; j++) next[j] = m[j - 1] && (p[i] == '?' || p[i] == s[j - 1]);
        }
        bool *t = m;
        m = next;
        next = t;
    }
    bool r = m[sn];
    free(m);
    free(next);
    return r;
}

static bool wild_match(const char *p, size_t pn, const kms_wild_text *t, size_t lo, size_t hi)
{
    kms_wild *w = malloc(kms_wild_size(p, pn));
    if (w == NULL) abort();
    kms_wild_compile(p, pn, w);
    bool r = kms_wild_match_range(w, t, lo, hi);
    free(w);
    return r;
}

static void check(const char *p, const char *s, bool want)
{
    kms_wild_text t;
    assert_ok(kms_wild_text_init(&t, s, strlen(s), false));
    bool got = wild_match(p, strlen(p), &t, 0, t.n);
    if (got != want) fail_msg("pattern \"%s\" on \"%s\": %d, want %d", p, s, got, want);
    kms_wild_text_free(&t);
}

static void test_cases(void **state)
{
    (void)state;
    check("", "", true);
    check("", "a", false);
    check("*", "", true);
    check("*", "anything", true);
    check("**", "", true);
    check("?", "", false);
    check("?", "x", true);
    check("a?c", "abc", true);
    check("a?c", "abbc", false);
    check("scans/*.png", "scans/a/b.png", true);
    check("scans/*.png", "scans/a/b.pn", false);
    check("*.png", ".png", true);
    check("a*a", "a", false); /* the anchored head and tail may not share the one 'a' */
    check("a*a", "aa", true);
    check("*ab*ab*", "abab", true);
    check("*ab*ab*", "aba", false);
    check("*aab", "aaab", true); /* the tail is checked at the end, not where a greedy scan put it */
    check("kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", true);
    check("arn:aws:kms:*:*:key/*", "arn:aws:kms:us-east-1:111122223333:key/x", true);
    /* Segments straddling the 64-position words of the index. */
    char text[300], pat[300];
    memset(text, 'a', 299);
    text[299] = '\0';
    text[200] = 'b';
    (void)snprintf(pat, sizeof(pat), "*%.70sb*", text);
    check(pat, text, true);
    text[199] = 'c';
    check(pat, text, false);
}

/* Folding: the text is lower-cased, the pattern is compiled from lower case by its caller. */
static void test_fold(void **state)
{
    (void)state;
    kms_wild_text t;
    assert_ok(kms_wild_text_init(&t, "KMS:Decrypt", 11, true));
    assert_true(wild_match("kms:decrypt", 11, &t, 0, t.n));
    assert_true(wild_match("kms:de*", 7, &t, 0, t.n));
    assert_false(wild_match("KMS:*", 5, &t, 0, t.n));
    kms_wild_text_free(&t);
}

static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) % n;
}

/* Random patterns over {a, b, *, ?} and texts over {a, b} (a small alphabet makes partial
 * matches, the hard case, common; some texts are all 'a'), lengths across the 64-bit words. */
static void test_random_against_reference(void **state)
{
    (void)state;
    enum { rounds = 20000 };
    char p[80], s[200];
    for (int round = 0; round < rounds; round++) {
        /* Every seventh pattern is long with few stars: segments longer than a word. */
        bool long_pat = round % 7 == 0;
        size_t pn = rnd(long_pat ? 80 : 12), sn = rnd(round % 10 == 0 || long_pat ? 200 : 24);
        for (size_t i = 0; i < pn; i++) p[i] = long_pat ? "aaaaaaab?*"[rnd(10)] : "ab*?a*"[rnd(6)];
        for (size_t i = 0; i < sn; i++) s[i] = "ab"[rnd(round % 3 == 0 ? 1 : 2)];
        kms_wild_text t;
        assert_ok(kms_wild_text_init(&t, s, sn, false));
        bool want = ref_match(p, pn, s, sn), got = wild_match(p, pn, &t, 0, sn);
        if (got != want)
            fail_msg("round %d: pattern \"%.*s\" on \"%.*s\": %d, want %d", round, (int)pn, p, (int)sn, s, got, want);
        /* A sub-range of the same index (ArnLike matches each ARN component this way). */
        size_t lo = sn ? rnd((unsigned)sn + 1) : 0, hi = lo + (sn - lo ? rnd((unsigned)(sn - lo) + 1) : 0);
        want = ref_match(p, pn, s + lo, hi - lo);
        got = wild_match(p, pn, &t, lo, hi);
        if (got != want)
            fail_msg("round %d: pattern \"%.*s\" on \"%.*s\"[%zu..%zu): %d, want %d", round, (int)pn, p, (int)sn, s, lo,
                     hi, got, want);
        kms_wild_text_free(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
