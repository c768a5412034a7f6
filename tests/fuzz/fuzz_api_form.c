/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bodies cloister-api reads (src/guest/api/form.c, record.c): the first byte picks the
 * parser, the rest is its input: a form-urlencoded record, a JSON record, the query of
 * /patients, or a multipart/form-data body whose boundary is "b". What the parsers promise:
 * every pair they return lies inside the input (multipart) or the form's storage, an empty name
 * or value is "" and never NULL (the crash CI found: an empty part's value was NULL), and a record
 * they accept has all 30 measurements or none.
 * Seeds: the walk-through's form, a JSON record, a multipart upload.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > CL_API_RECORD_BODY_MAX) return 0;
    uint8_t which = data[0] % 4;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (which == 0 || which == 1) {
        cl_api_record r;
        cl_api_record_init(&r);
        const char *ct = which == 0 ? "application/x-www-form-urlencoded" : "application/json; charset=utf-8";
        if (cl_api_record_from_body(&r, ct, strlen(ct), p, n) == CL_OK) {
            size_t count = 0;
            for (size_t i = 0; i < cl_api_field_count(); i++)
                if (cl_api_field(i)->kind == CL_API_FIELD_MEASUREMENT && (r.present & (1ULL << i)) != 0) count++;
            if (count != 0 && count != CL_API_N_MEASUREMENTS) abort();
            cl_buf json;
            cl_buf_init(&json, CL_API_RECORD_MAX);
            if (cl_api_record_json(&r, "fuzz", false, 0, &json) != CL_OK) abort();
            cl_buf_free(&json);
        }
        cl_api_record_free(&r);
    } else {
        cl_api_form f;
        cl_api_form_init(&f);
        cl_status rc = which == 2 ? cl_api_form_parse_urlencoded(p, n, &f) : cl_api_form_parse_multipart(p, n, "b", &f);
        if (rc == CL_OK && which == 3)
            for (size_t i = 0; i < f.n; i++)
                if (f.pairs[i].value == NULL || f.pairs[i].name == NULL ||
                    (f.pairs[i].value_len > 0 &&
                     (f.pairs[i].value < p || f.pairs[i].value + f.pairs[i].value_len > p + n)))
                    abort();
        cl_api_form_free(&f);
    }
    cl_error_clear();
    return 0;
}
