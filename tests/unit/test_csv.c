/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cloister/csv.h"

#include "test_util.h"

/* Reads every record of s; returns the number of records, fields of the last in *nf. */
static CL_MUST_USE cl_status read_all(const char *s, size_t max, size_t *records, cl_csv_field *fields, size_t *nf)
{
    cl_csv c = cl_csv_make(s, strlen(s), "t.csv");
    bool eof = false;
    *records = 0;
    for (;;) {
        size_t n;
        CL_GUARD(cl_csv_record(&c, fields, max, &n, &eof));
        if (eof) return CL_OK;
        *nf = n;
        (*records)++;
    }
}

static void test_records_and_fields(void **state)
{
    (void)state;
    /* BOM, CRLF, blank lines, spaces around fields, a trailing empty field, no final newline. */
    const char *s = "\xef\xbb\xbf"
                    "a, b ,c\r\n"
                    "\r\n"
                    "   \n"
                    "1,2,\n"
                    "4,\t5\t,6";
    cl_csv c = cl_csv_make(s, strlen(s), "t.csv");
    cl_csv_field f[4];
    size_t n;
    bool eof;
    assert_ok(cl_csv_record(&c, f, 4, &n, &eof));
    assert_false(eof);
    assert_int_equal(n, 3);
    assert_int_equal(c.line, 1);
    assert_true(cl_csv_field_is(&f[0], "a"));
    assert_true(cl_csv_field_is(&f[1], "b"));
    assert_true(cl_csv_field_is(&f[2], "c"));
    assert_ok(cl_csv_record(&c, f, 4, &n, &eof));
    assert_int_equal(c.line, 4); /* blank lines 2 and 3 skipped, but counted */
    assert_int_equal(n, 3);
    assert_int_equal(f[2].len, 0);
    assert_ok(cl_csv_record(&c, f, 4, &n, &eof));
    assert_int_equal(c.line, 5);
    assert_true(cl_csv_field_is(&f[1], "5"));
    double v;
    assert_ok(cl_csv_field_double(&c, &f[2], 3, NULL, &v));
    assert_true(v == 6.0);
    assert_ok(cl_csv_record(&c, f, 4, &n, &eof));
    assert_true(eof);
    assert_int_equal(n, 0);
    /* Reading past the end stays at the end. */
    assert_ok(cl_csv_record(&c, f, 4, &n, &eof));
    assert_true(eof);
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double want;
    } ok[] = {
        {"17.99", 17.99}, {"-0.5", -0.5}, {"+3", 3.0},        {"1e-3", 1e-3}, {"2.5E+2", 250.0},
        {".5", 0.5},      {"7.", 7.0},    {"1e-320", 1e-320}, /* underflow to a subnormal is a finite number */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        double v = 0;
        assert_ok(cl_text_parse_double((const uint8_t *)ok[i].in, strlen(ok[i].in), "x", &v));
        assert_true(v == ok[i].want);
    }
}

static void test_numbers_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *needle;
    } bad[] = {
        {"", "is empty"},
        {"abc", "'abc') is not a number"},
        {"NaN", "is NaN"},
        {"-nan", "is NaN"},
        {"inf", "is infinite"},
        {"-Infinity", "is infinite"},
        {"1e999", "out of the range"},
        {"0x1p3", "is not a number"}, /* strtod would take hex floats */
        {"1.2.3", "is not a number"},
        {"1e", "is not a number"},
        {"+", "is not a number"},
        {"12 3", "is not a number"},
        {"1,5", "is not a number"}, /* a decimal comma is not silently read as 1 */
        {"00000000000000000000000000000000000000000000000000000000000000001", "too long"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double v = 42;
        assert_fails(cl_text_parse_double((const uint8_t *)bad[i].in, strlen(bad[i].in), "cell", &v), CL_ERR_FORMAT,
                     bad[i].needle);
        assert_true(v == 42); /* untouched on failure */
    }
}

static void test_errors_name_line_and_column(void **state)
{
    (void)state;
    const char *s = "a,b\n1,2\n\n3,x7\n";
    cl_csv c = cl_csv_make(s, strlen(s), "data.csv");
    cl_csv_field f[2];
    size_t n;
    bool eof;
    for (int i = 0; i < 3; i++) assert_ok(cl_csv_record(&c, f, 2, &n, &eof));
    double v;
    assert_fails(cl_csv_field_double(&c, &f[1], 2, "texture", &v), CL_ERR_FORMAT,
                 "data.csv, line 4, column 2 (texture) ('x7') is not a number");
}

static void test_records_rejected(void **state)
{
    (void)state;
    cl_csv_field f[3];
    size_t recs, nf;
    assert_fails(read_all("1,2,3,4\n", 3, &recs, f, &nf), CL_ERR_FORMAT, "t.csv, line 1: more than 3 columns");
    assert_fails(read_all("1,2\n\"3\",4\n", 3, &recs, f, &nf), CL_ERR_UNSUPPORTED,
                 "line 2, column 1: quoted fields are not supported");
    assert_fails(read_all("1,2\n3,4\x01\n", 3, &recs, f, &nf), CL_ERR_FORMAT, "line 2, column 2: control byte 0x01");
    static const char nul[] = "1,2\n3\0,4\n";
    cl_csv c = cl_csv_make(nul, sizeof(nul) - 1, "t.csv");
    size_t n;
    bool eof;
    assert_ok(cl_csv_record(&c, f, 3, &n, &eof));
    assert_fails(cl_csv_record(&c, f, 3, &n, &eof), CL_ERR_FORMAT, "control byte 0x00");
    char big[CL_CSV_FIELD_MAX + 8];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_fails(read_all(big, 3, &recs, f, &nf), CL_ERR_LIMIT, "line 1, column 1: the field is");
    /* A BOM is skipped only at the very start. */
    assert_ok(read_all("1\n\xef\xbb\xbf"
                       "2\n",
                       3, &recs, f, &nf));
    assert_int_equal(f[0].len, 4);
}

static void test_long_line_is_bounded(void **state)
{
    (void)state;
    static char line[CL_CSV_LINE_MAX + 16];
    memset(line, ' ', sizeof(line) - 1);
    cl_csv c = cl_csv_make(line, sizeof(line) - 1, "t.csv");
    cl_csv_field f[1];
    size_t n;
    bool eof;
    assert_fails(cl_csv_record(&c, f, 1, &n, &eof), CL_ERR_LIMIT, "line 1 is longer than");
}

static void test_field_show_sanitises(void **state)
{
    (void)state;
    char buf[8];
    assert_string_equal(cl_bytes_show((const uint8_t *)"a\x1b[31m", 6, buf, sizeof(buf)), "a?[31m");
    assert_string_equal(cl_bytes_show((const uint8_t *)"0123456789", 10, buf, sizeof(buf)), "0123...");
    assert_string_equal(cl_bytes_show((const uint8_t *)"\xff", 1, buf, sizeof(buf)), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_and_fields),   cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_numbers_rejected),     cmocka_unit_test(test_errors_name_line_and_column),
        cmocka_unit_test(test_records_rejected),     cmocka_unit_test(test_long_line_is_bounded),
        cmocka_unit_test(test_field_show_sanitises),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
