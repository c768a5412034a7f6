/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded reading of comma-separated text (see cloister/csv.h). */
#include "cloister/csv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest number we parse: 17 significant digits, sign, point and exponent
 * fit many times over; longer is not a measurement anybody wrote. */
#define CSV_NUMBER_MAX 64

cl_csv cl_csv_make(const void *data, size_t len, const char *what)
{
    cl_csv c = {.r = cl_reader_make(data, len), .what = what ? what : "input", .line = 0};
    return c;
}

bool cl_csv_field_is(const cl_csv_field *f, const char *s)
{
    size_t n = strlen(s); /* s is ours (a constant or a validated name), not the input */
    return f->len == n && (n == 0 || memcmp(f->p, s, n) == 0);
}

static bool csv_is_blank(uint8_t b) { return b == ' ' || b == '\t'; }

static cl_csv_field csv_trim(const uint8_t *p, size_t len)
{
    size_t a = 0, b = len;
    while (a < b && csv_is_blank(p[a])) a++;
    while (b > a && csv_is_blank(p[b - 1])) b--;
    cl_csv_field f = {.p = len ? p + a : p, .len = b - a};
    return f;
}

/* Splits one line (without its end of line) into trimmed fields. */
static CL_MUST_USE cl_status csv_split(const cl_csv *c, cl_reader *line, cl_csv_field *fields, size_t max, size_t *n)
{
    for (;;) {
        cl_reader field;
        bool comma = false;
        cl_reader_until(line, ',', &field, &comma);
        const uint8_t *p = NULL;
        size_t len = 0;
        cl_reader_rest(&field, &p, &len);
        for (size_t i = 0; i < len; i++) {
            CL_ENSURE(p[i] != '"', CL_ERR_UNSUPPORTED,
                      "%s, line %zu, column %zu: quoted fields are not supported; write plain values separated by "
                      "commas",
                      c->what, c->line, *n + 1);
            CL_ENSURE((p[i] >= 0x20 || p[i] == '\t') && p[i] != 0x7f, CL_ERR_FORMAT,
                      "%s, line %zu, column %zu: control byte 0x%02x; the input must be plain text", c->what, c->line,
                      *n + 1, p[i]);
        }
        CL_ENSURE(*n < max, CL_ERR_FORMAT, "%s, line %zu: more than %zu columns", c->what, c->line, max);
        cl_csv_field f = csv_trim(p, len);
        CL_ENSURE(f.len <= CL_CSV_FIELD_MAX, CL_ERR_LIMIT, "%s, line %zu, column %zu: the field is %zu bytes, over %d",
                  c->what, c->line, *n + 1, f.len, CL_CSV_FIELD_MAX);
        fields[(*n)++] = f;
        if (!comma) return CL_OK;
        CL_GUARD(cl_reader_skip(line, 1));
    }
}

cl_status cl_csv_record(cl_csv *c, cl_csv_field *fields, size_t max, size_t *n, bool *eof)
{
    *n = 0;
    *eof = false;
    for (;;) {
        if (cl_reader_remaining(&c->r) == 0) {
            *eof = true;
            return CL_OK;
        }
        /* A UTF-8 byte order mark (spreadsheets write one) before the first line. */
        if (cl_reader_offset(&c->r) == 0 && cl_reader_starts_with(&c->r, "\xef\xbb\xbf", 3))
            CL_GUARD(cl_reader_skip(&c->r, 3));
        c->line++;
        cl_reader line;
        bool newline = false;
        cl_reader_until(&c->r, '\n', &line, &newline);
        if (newline) CL_GUARD(cl_reader_skip(&c->r, 1));
        const uint8_t *p = NULL;
        size_t len = 0;
        cl_reader_rest(&line, &p, &len);
        if (len > 0 && p[len - 1] == '\r') len--;
        CL_ENSURE(len <= CL_CSV_LINE_MAX, CL_ERR_LIMIT, "%s, line %zu is longer than %zu bytes", c->what, c->line,
                  CL_CSV_LINE_MAX);
        line = cl_reader_make(p, len);
        cl_reader blank;
        if (cl_reader_span(&line, " \t", &blank) == len) continue; /* blank line */
        line = cl_reader_make(p, len);
        if (max == 0) CL_FAIL(CL_ERR_USAGE, "no room for fields");
        return csv_split(c, &line, fields, max, n);
    }
}

static bool csv_word_is(const uint8_t *p, size_t len, const char *lower)
{
    size_t n = strlen(lower); /* a constant of ours */
    if (len != n) return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (b >= 'A' && b <= 'Z') b = (uint8_t)(b - 'A' + 'a');
        if (b != (uint8_t)lower[i]) return false;
    }
    return true;
}

cl_status cl_text_parse_double(const uint8_t *p, size_t len, const char *where, double *out)
{
    char show[40];
    CL_ENSURE(len > 0, CL_ERR_FORMAT, "%s is empty; a value is missing", where);
    /* Named non-finite values get their own message: a NaN in a measurement
     * column usually means a missing value an export wrote as "NaN". */
    const uint8_t *w = p;
    size_t wl = len;
    if (w[0] == '+' || w[0] == '-') {
        w++;
        wl--;
    }
    CL_ENSURE(!csv_word_is(w, wl, "nan"), CL_ERR_FORMAT, "%s is NaN; every value must be a finite number", where);
    CL_ENSURE(!csv_word_is(w, wl, "inf") && !csv_word_is(w, wl, "infinity"), CL_ERR_FORMAT,
              "%s is infinite; every value must be a finite number", where);
    CL_ENSURE(len <= CSV_NUMBER_MAX, CL_ERR_FORMAT, "%s ('%s') is %zu characters, too long for a number", where,
              cl_bytes_show(p, len, show, sizeof(show)), len);
    /* strtod also takes hex floats, "nan(...)" and leading space; only plain
     * decimal notation is a measurement, so every byte is checked first. */
    char num[CSV_NUMBER_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        bool ok = (b >= '0' && b <= '9') || b == '.' || b == '+' || b == '-' || b == 'e' || b == 'E';
        CL_ENSURE(ok, CL_ERR_FORMAT, "%s ('%s') is not a number", where, cl_bytes_show(p, len, show, sizeof(show)));
        num[i] = (char)b;
    }
    num[len] = '\0';
    char *end = NULL;
    /* The C locale's decimal point: the programs never call setlocale. */
    double v = strtod(num, &end);
    CL_ENSURE(end == num + len && end != num, CL_ERR_FORMAT, "%s ('%s') is not a number", where,
              cl_bytes_show(p, len, show, sizeof(show)));
    /* Overflow gives HUGE_VAL with ERANGE; underflow to a tiny finite value is fine. */
    CL_ENSURE(isfinite(v), CL_ERR_FORMAT, "%s ('%s') is out of the range of a double", where,
              cl_bytes_show(p, len, show, sizeof(show)));
    *out = v;
    return CL_OK;
}

cl_status cl_csv_field_double(const cl_csv *c, const cl_csv_field *f, size_t col, const char *name, double *out)
{
    char where[160];
    if (name != NULL)
        snprintf(where, sizeof(where), "%s, line %zu, column %zu (%s)", c->what, c->line, col, name);
    else
        snprintf(where, sizeof(where), "%s, line %zu, column %zu", c->what, c->line, col);
    return cl_text_parse_double(f->p, f->len, where, out);
}
