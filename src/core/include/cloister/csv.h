/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one reader for comma-separated text we did not produce (training data,
 * a patient's measurements).
 *
 * A bounded cursor over the bytes (it keeps a cl_reader): one record per line,
 * LF or CRLF endings, fields split on commas and trimmed of spaces and tabs,
 * blank lines skipped, a UTF-8 byte order mark at the very start ignored (as
 * spreadsheet exports write one). Quoted fields (RFC 4180 section 2, rules 5-7)
 * are not supported: the numeric tables this reads never need them, so a quote
 * is reported rather than half-handled. NUL bytes and control characters are
 * rejected. Every error names the line and column, 1-based, as an editor shows
 * them, so a user can find the bad cell.
 */
#ifndef CLOISTER_CSV_H
#define CLOISTER_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

/* Longest field, in bytes; longer ones are CL_ERR_LIMIT (no real name or number needs more). */
#define CL_CSV_FIELD_MAX 256
/* Longest line, in bytes. */
#define CL_CSV_LINE_MAX ((size_t)1 << 20)

/* A field borrowed from the input (valid as long as the input bytes). */
typedef struct cl_csv_field {
    const uint8_t *p;
    size_t len;
} cl_csv_field;

typedef struct cl_csv {
    cl_reader r;
    const char *what; /* names the input in messages ("wdbc.csv", "patient input") */
    size_t line;      /* 1-based line of the record last read (0 before the first) */
} cl_csv;

/* `what` must outlive the reader. */
cl_csv cl_csv_make(const void *data, size_t len, const char *what);

/* Reads the next non-blank record into fields[0..*n). *eof is set (and *n = 0)
 * when no record is left. More than `max` fields is CL_ERR_FORMAT. */
CL_MUST_USE cl_status cl_csv_record(cl_csv *c, cl_csv_field *fields, size_t max, size_t *n, bool *eof);

/* Parses field `col` (1-based, for the message) of the record last read as a
 * finite decimal number: digits, one optional sign, point and exponent. Empty,
 * non-numeric, NaN, infinite and out-of-range values are CL_ERR_FORMAT naming
 * line, column and (sanitised) content. `name`, when not NULL, is the column's
 * name for the message. */
CL_MUST_USE cl_status cl_csv_field_double(const cl_csv *c, const cl_csv_field *f, size_t col, const char *name,
                                          double *out);

/* Parses a finite decimal number from bytes, as above, with `where` leading the message
 * (for callers outside CSV, e.g. JSON strings). */
CL_MUST_USE cl_status cl_text_parse_double(const uint8_t *p, size_t len, const char *where, double *out);

/* Whether field f equals the NUL-terminated ASCII string s (case-sensitive). */
bool cl_csv_field_is(const cl_csv_field *f, const char *s);

#endif
