/* SPDX-License-Identifier: Apache-2.0 */
/* The query protocol's form parser and XML writer (src/kms/query.c), with its refusals. */
#include <stdio.h>
#include <string.h>

#include "query.h"
#include "test_util.h"

static void test_form_parse(void **state)
{
    (void)state;
    /* botocore's body of AssumeRole, a list member, '+' and %-escapes. */
    static const char body[] = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%"
                               "2Fr&RoleSessionName=a+b&PolicyArns.member.1.arn=x&Empty=&Flag";
    json_t *f = NULL;
    assert_int_equal(kms_form_parse((const uint8_t *)body, strlen(body), &f), CL_OK);
    assert_string_equal(json_string_value(json_object_get(f, "Action")), "AssumeRole");
    assert_string_equal(json_string_value(json_object_get(f, "RoleArn")), "arn:aws:iam::111122223333:role/r");
    assert_string_equal(json_string_value(json_object_get(f, "RoleSessionName")), "a b");
    assert_string_equal(json_string_value(json_object_get(f, "PolicyArns.member.1.arn")), "x");
    assert_string_equal(json_string_value(json_object_get(f, "Empty")), "");
    assert_string_equal(json_string_value(json_object_get(f, "Flag")), "");
    json_decref(f);
    assert_int_equal(kms_form_parse((const uint8_t *)"", 0, &f), CL_OK);
    assert_int_equal(json_object_size(f), 0);
    json_decref(f);
    assert_int_equal(kms_form_parse((const uint8_t *)"&&a=1&", 6, &f), CL_OK);
    assert_string_equal(json_string_value(json_object_get(f, "a")), "1");
    json_decref(f);
    /* A value as large as a policy document (far beyond an encryption context's 4 KiB). */
    static char big[100000];
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "PolicyDocument=", 15);
    assert_int_equal(kms_form_parse((const uint8_t *)big, strlen(big), &f), CL_OK);
    assert_int_equal(strlen(json_string_value(json_object_get(f, "PolicyDocument"))), sizeof(big) - 1 - 15);
    json_decref(f);
}

static void expect_refused(const char *body, size_t len, const char *words)
{
    json_t *f = (json_t *)1;
    assert_int_equal(kms_form_parse((const uint8_t *)body, len, &f), CL_ERR_FORMAT);
    assert_null(f); /* nothing left behind */
    if (strstr(cl_error_message(), words) == NULL) fail_msg("message \"%s\" lacks \"%s\"", cl_error_message(), words);
    cl_error_clear();
}

static void test_form_refused(void **state)
{
    (void)state;
    expect_refused("a=%4", 4, "without two hex digits at offset 2");
    expect_refused("a=1&b=%zz", 9, "without two hex digits at offset 6");
    expect_refused("a=%00", 5, "NUL byte");
    expect_refused("a=x\0y", 5, "NUL byte");
    expect_refused("=1", 2, "without a name");
    expect_refused("a=%ff%fe", 8, "not UTF-8");
    expect_refused("a=1&a=2", 7, "gives field a twice");
    /* Too many fields, a name too long. */
    char many[KMS_FORM_MAX_PAIRS * 6 + 16];
    size_t n = 0;
    for (int i = 0; i <= KMS_FORM_MAX_PAIRS; i++) n += (size_t)snprintf(many + n, sizeof(many) - n, "f%d=&", i);
    expect_refused(many, n, "more than 512 fields");
    char name[KMS_FORM_NAME_MAX + 8];
    memset(name, 'n', sizeof(name));
    expect_refused(name, sizeof(name), "longer than 256 bytes");
}

static void test_xml(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 4096);
    assert_int_equal(kms_xml_elem(&b, "Message", "a<b>&\"c'\x01\td"), CL_OK);
    assert_string_equal(cl_buf_cstr(&b), "<Message>a&lt;b&gt;&amp;&quot;c&apos;\xEF\xBF\xBD\td</Message>");
    cl_buf_reset(&b);
    assert_int_equal(kms_url_encode(&b, "{\"A\": \"b/c~\"}"), CL_OK);
    assert_string_equal(cl_buf_cstr(&b), "%7B%22A%22%3A%20%22b%2Fc~%22%7D");
    cl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_parse),
        cmocka_unit_test(test_form_refused),
        cmocka_unit_test(test_xml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
