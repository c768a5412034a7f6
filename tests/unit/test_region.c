/* SPDX-License-Identifier: Apache-2.0 */
/* Region names, their partitions and ARNs (src/kms/region.c). The expected shapes are the
 * partitions' regionRegex of botocore's data/endpoints.json and the SDKs' partitions.json,
 * with \w as [a-z0-9]; the names below are AWS's regions of each partition. */
#include <stdio.h>
#include <string.h>

#include "region.h"
#include "test_util.h"

static void test_aws_region_names(void **state)
{
    (void)state;
    static const struct {
        const char *region, *partition;
    } ok[] = {
        {"us-east-1", "aws"},
        {"eu-central-1", "aws"},
        {"ap-northeast-1", "aws"},
        {"ap-southeast-7", "aws"},
        {"sa-east-1", "aws"},
        {"ca-west-1", "aws"},
        {"me-central-1", "aws"},
        {"af-south-1", "aws"},
        {"il-central-1", "aws"},
        {"mx-central-1", "aws"},
        {"cn-north-1", "aws-cn"},
        {"cn-northwest-1", "aws-cn"},
        {"us-gov-west-1", "aws-us-gov"},
        {"us-gov-east-1", "aws-us-gov"},
        {"us-iso-east-1", "aws-iso"},
        {"us-isob-east-1", "aws-iso-b"},
        {"eu-isoe-west-1", "aws-iso-e"},
        {"us-isof-south-1", "aws-iso-f"},
        {"eusc-de-east-1", "aws-eusc"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(kms_region_is_aws(ok[i].region));
        assert_string_equal(kms_region_partition(ok[i].region), ok[i].partition);
        assert_true(kms_region_name_ok(ok[i].region));
    }
    static const char *const bad[] = {
        "",
        "us-east",
        "useast-1",
        "us-east-1a",
        "US-EAST-1",
        "us-east_x-1",
        "us--1",
        "us-east-",
        "-us-east-1",
        "zz-east-1",
        "aws-global",
        "local",
        "eu-central-1 ",
        "eusc-fr-east-1",
        "us-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1", /* 35 characters */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(kms_region_is_aws(bad[i]));
        assert_string_equal(kms_region_partition(bad[i]), "aws");
    }
}

static void test_config_region_names(void **state)
{
    (void)state;
    assert_true(kms_region_name_ok("local"));
    assert_true(kms_region_name_ok("a"));
    assert_true(kms_region_name_ok("abcdefghijklmnopqrstuvwxyz-0123")); /* 31 */
    assert_false(kms_region_name_ok("abcdefghijklmnopqrstuvwxyz-01234"));
    assert_false(kms_region_name_ok(""));
    assert_false(kms_region_name_ok("Local"));
    assert_false(kms_region_name_ok("lo cal"));
    assert_false(kms_region_name_ok("lo/cal"));
}

static void t_part(const cl_reader *r, const char *want)
{
    const uint8_t *p;
    size_t n;
    cl_reader_rest(r, &p, &n);
    assert_int_equal(n, strlen(want));
    if (n > 0) assert_memory_equal(p, want, n);
}

static void test_arn_split(void **state)
{
    (void)state;
    kms_arn_parts a;
    assert_true(kms_arn_split("arn:aws-cn:kms:cn-north-1:111122223333:alias/x:y", &a));
    t_part(&a.partition, "aws-cn");
    t_part(&a.service, "kms");
    t_part(&a.region, "cn-north-1");
    t_part(&a.account, "111122223333");
    t_part(&a.resource, "alias/x:y");
    assert_true(kms_arn_split("arn:::::", &a));
    t_part(&a.region, "");
    t_part(&a.resource, "");
    assert_false(kms_arn_split("arn:aws:kms:us-east-1:111122223333", &a));
    assert_false(kms_arn_split("arx:aws:kms:us-east-1:111122223333:key/x", &a));
    assert_false(kms_arn_split("", &a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_region_names),
        cmocka_unit_test(test_config_region_names),
        cmocka_unit_test(test_arn_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
