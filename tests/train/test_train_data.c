/* SPDX-License-Identifier: Apache-2.0 */
/* The training table parser (negative cases first) and the stratified split. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/train.h"

#include "test_util.h"

static CL_MUST_USE cl_status parse(const char *s, cl_train_dataset *d)
{
    return cl_train_csv_parse(s, strlen(s), "t.csv", d);
}

static void test_parse_small_table(void **state)
{
    (void)state;
    const char *s = "radius,diagnosis,texture\n"
                    "1.5,M,2\n"
                    "\n"
                    " 3 ,B, -4e1\r\n"
                    "5,malignant,6\n";
    cl_train_dataset d;
    assert_ok(parse(s, &d));
    assert_int_equal(d.n_rows, 3);
    assert_int_equal(d.n_features, 2);
    assert_int_equal(d.n_positive, 2);
    assert_string_equal(d.feature_names[0], "radius");
    assert_string_equal(d.feature_names[1], "texture");
    assert_true(d.x[0] == 1.5 && d.x[1] == 2 && d.x[2] == 3 && d.x[3] == -40 && d.x[4] == 5 && d.x[5] == 6);
    assert_true(d.y[0] == 1 && d.y[1] == 0 && d.y[2] == 1);
    uint8_t want[32];
    assert_ok(cl_sha256(s, strlen(s), want));
    assert_memory_equal(d.sha256, want, 32);
    cl_train_dataset_free(&d);
    assert_null(d.x);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        cl_status code;
        const char *needle;
    } bad[] = {
        {"", CL_ERR_FORMAT, "t.csv is empty"},
        {"\n\n", CL_ERR_FORMAT, "t.csv is empty"},
        {"a,diagnosis\n", CL_ERR_FORMAT, "has a header but no data rows"},
        {"a,b\n1,2\n", CL_ERR_FORMAT, "line 1: no column named 'diagnosis'"},
        {"diagnosis\nM\n", CL_ERR_FORMAT, "no feature columns"},
        {"a,diagnosis,diagnosis\n", CL_ERR_FORMAT, "columns 2 and 3 are both named"},
        {"a,a,diagnosis\n", CL_ERR_FORMAT, "line 1, column 2: feature 'a' is named twice"},
        {"a b,diagnosis\n", CL_ERR_FORMAT, "line 1, column 1: feature name 'a b' must be"},
        {",diagnosis\n", CL_ERR_FORMAT, "column 1: feature name '' must be"},
        {"a,diagnosis\n1,M\n2\n", CL_ERR_FORMAT, "t.csv, line 3: 1 columns, but the header has 2"},
        {"a,diagnosis\n1,M\n2,B,3\n", CL_ERR_FORMAT, "t.csv, line 3: 3 columns, but the header has 2"},
        {"a,diagnosis\n1,M\nx,B\n", CL_ERR_FORMAT, "t.csv, line 3, column 1 (a) ('x') is not a number"},
        {"a,diagnosis\n1,M\n,B\n", CL_ERR_FORMAT, "t.csv, line 3, column 1 (a) is empty"},
        {"a,b,diagnosis\n1,NaN,M\n", CL_ERR_FORMAT, "t.csv, line 2, column 2 (b) is NaN"},
        {"a,b,diagnosis\n1,-inf,M\n", CL_ERR_FORMAT, "line 2, column 2 (b) is infinite"},
        {"a,b,diagnosis\n1,1e400,M\n", CL_ERR_FORMAT, "line 2, column 2 (b) ('1e400') is out of the range"},
        {"a,diagnosis\n1,M\n2,X\n", CL_ERR_FORMAT, "line 3, column 2 (diagnosis): unknown label 'X'"},
        {"a,diagnosis\n1,m\n", CL_ERR_FORMAT, "unknown label 'm'"},
        {"a,diagnosis\n1,\n", CL_ERR_FORMAT, "unknown label ''"},
        {"a,diagnosis\n\"1\",M\n", CL_ERR_UNSUPPORTED, "line 2, column 1: quoted fields"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_train_dataset d;
        assert_fails(parse(bad[i].in, &d), bad[i].code, bad[i].needle);
        assert_null(d.x); /* nothing left allocated */
        assert_null(d.feature_names);
    }
}

static void test_parse_limits(void **state)
{
    (void)state;
    /* One column more than allowed. */
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    for (int i = 0; i < CL_TRAIN_MAX_FEATURES + 1; i++) assert_ok(cl_buf_printf(&b, "f%d,", i));
    assert_ok(cl_buf_append_str(&b, "diagnosis\n"));
    cl_train_dataset d;
    assert_fails(cl_train_csv_parse(b.data, b.len, "wide.csv", &d), CL_ERR_FORMAT, "more than 257 columns");
    cl_buf_free(&b);
    /* Exactly the row cap is fine; one more is not. */
    cl_buf_init(&b, 64 << 20);
    assert_ok(cl_buf_append_str(&b, "a,diagnosis\n"));
    for (int i = 0; i < CL_TRAIN_MAX_ROWS; i++) assert_ok(cl_buf_append_str(&b, i & 1 ? "1,M\n" : "2,B\n"));
    assert_ok(cl_train_csv_parse(b.data, b.len, "long.csv", &d));
    assert_int_equal(d.n_rows, CL_TRAIN_MAX_ROWS);
    cl_train_dataset_free(&d);
    assert_ok(cl_buf_append_str(&b, "3,B\n"));
    assert_fails(cl_train_csv_parse(b.data, b.len, "long.csv", &d), CL_ERR_LIMIT, "more than 200000 data rows");
    cl_buf_free(&b);
}

/* A table of n rows, the first n_pos positive, feature = row index. */
static void make_table(cl_train_dataset *d, size_t n, size_t n_pos)
{
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    assert_ok(cl_buf_append_str(&b, "i,diagnosis\n"));
    for (size_t i = 0; i < n; i++) assert_ok(cl_buf_printf(&b, "%zu,%s\n", i, i < n_pos ? "M" : "B"));
    assert_ok(cl_train_csv_parse(b.data, b.len, "t.csv", d));
    cl_buf_free(&b);
}

static void test_split_is_stratified_and_seeded(void **state)
{
    (void)state;
    cl_train_dataset d;
    make_table(&d, 569, 212);
    cl_train_split a, b, c;
    assert_ok(cl_train_split_stratified(&d, 0.2, 42, &a));
    assert_ok(cl_train_split_stratified(&d, 0.2, 42, &b));
    assert_ok(cl_train_split_stratified(&d, 0.2, 43, &c));
    /* round(0.2 * 212) = 42 malignant and round(0.2 * 357) = 71 benign held out. */
    assert_int_equal(a.n_test, 113);
    assert_int_equal(a.n_train, 456);
    size_t pos = 0;
    for (size_t i = 0; i < a.n_test; i++) pos += d.y[a.test[i]];
    assert_int_equal(pos, 42);
    /* Every row exactly once; lists ascending. */
    char *seen = calloc(d.n_rows, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < a.n_test; i++) seen[a.test[i]]++;
    for (size_t i = 0; i < a.n_train; i++) seen[a.train[i]]++;
    for (size_t i = 0; i < d.n_rows; i++) assert_int_equal(seen[i], 1);
    for (size_t i = 1; i < a.n_test; i++) assert_true(a.test[i - 1] < a.test[i]);
    free(seen);
    /* Same seed, same split; another seed, another split. */
    assert_memory_equal(a.test, b.test, a.n_test * sizeof(size_t));
    assert_int_equal(c.n_test, a.n_test);
    assert_true(memcmp(a.test, c.test, a.n_test * sizeof(size_t)) != 0);
    cl_train_split_free(&a);
    cl_train_split_free(&b);
    cl_train_split_free(&c);
    cl_train_dataset_free(&d);
}

static void test_split_rejects(void **state)
{
    (void)state;
    cl_train_dataset d;
    cl_train_split s;
    make_table(&d, 10, 1);
    assert_fails(cl_train_split_stratified(&d, 0.2, 1, &s), CL_ERR_FORMAT, "9 benign and 1 malignant rows");
    assert_null(s.train);
    cl_train_dataset_free(&d);
    make_table(&d, 10, 5);
    assert_fails(cl_train_split_stratified(&d, 0.0, 1, &s), CL_ERR_USAGE, "not between 0 and 1");
    assert_fails(cl_train_split_stratified(&d, 1.0, 1, &s), CL_ERR_USAGE, "not between 0 and 1");
    /* Extreme fractions still leave one row of each class on each side. */
    assert_ok(cl_train_split_stratified(&d, 0.01, 1, &s));
    assert_int_equal(s.n_test, 2);
    cl_train_split_free(&s);
    assert_ok(cl_train_split_stratified(&d, 0.99, 1, &s));
    assert_int_equal(s.n_train, 2);
    cl_train_split_free(&s);
    cl_train_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_small_table), cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_limits),      cmocka_unit_test(test_split_is_stratified_and_seeded),
        cmocka_unit_test(test_split_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
