/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The body of an STS or IAM request (src/kms/query.c): application/x-www-form-urlencoded bytes
 * from anyone who can reach the endpoint, parsed before the action runs. What the parser
 * promises: a form it accepts has every name non-empty (unique: a JSON object's), no NUL in any name
 * or value, UTF-8,
 * each within its bound; what it refuses leaves nothing behind. The names and values are then
 * written as XML (the echo an error message makes), which must stay well-formed: no raw '<'
 * or '&' from the input.
 * Seeds: botocore's AssumeRole and CreateRole bodies.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (size_t)512 << 10) return 0;
    json_t *f = NULL;
    if (kms_form_parse(data, size, &f) == CL_OK) {
        if (f == NULL || json_object_size(f) > KMS_FORM_MAX_PAIRS) abort();
        cl_buf xml;
        cl_buf_init(&xml, (size_t)64 << 20);
        const char *k;
        json_t *jv;
        json_object_foreach(f, k, jv)
        {
            const char *v = json_string_value(jv);
            if (v == NULL || k[0] == '\0' || strlen(k) > KMS_FORM_NAME_MAX || strlen(v) > KMS_FORM_VALUE_MAX ||
                strlen(v) != json_string_length(jv))
                abort();
            cl_buf_reset(&xml);
            if (kms_xml_text(&xml, v) != CL_OK) abort();
            if (xml.len > 0 && memchr(xml.data, '<', xml.len) != NULL) abort(); /* data is NULL when empty */
            for (size_t j = 0; j < xml.len; j++)
                if (xml.data[j] == '&' && xml.data[j + 1] != 'a' && xml.data[j + 1] != 'l' && xml.data[j + 1] != 'g' &&
                    xml.data[j + 1] != 'q')
                    abort();
        }
        cl_buf_free(&xml);
    } else {
        if (f != NULL) abort();
        cl_error_clear();
    }
    json_decref(f);
    return 0;
}
