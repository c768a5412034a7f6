/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: region names and ARNs (region.h).
 *
 * The shape of a region name is the "regionRegex" of each partition in the AWS SDKs' partition
 * data: botocore's data/endpoints.json on Debian 12 (botocore 1.29) gives
 *   aws         ^(us|eu|ap|sa|ca|me|af)\-\w+\-\d+$
 *   aws-cn      ^cn\-\w+\-\d+$
 *   aws-us-gov  ^us\-gov\-\w+\-\d+$
 *   aws-iso     ^us\-iso\-\w+\-\d+$
 *   aws-iso-b   ^us\-isob\-\w+\-\d+$
 * and the SDKs' newer partitions.json (@aws-sdk/util-endpoints, botocore 1.3x) adds il and mx to
 * aws (il-central-1, mx-central-1) and the partitions
 *   aws-iso-e   ^eu\-isoe\-\w+\-\d+$
 *   aws-iso-f   ^us\-isof\-\w+\-\d+$
 *   aws-eusc    ^eusc\-(de)\-\w+\-\d+$
 * \w is narrowed here to [a-z0-9]: every region name is lower case, and a credential scope of
 * "US-EAST-1" or "us-east_x-1" would otherwise open a region of its own beside us-east-1.
 */
#include "region.h"

#include <string.h>

static bool kms_lower_alnum(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); }

/* s is prefix, then [a-z0-9]+ "-" [0-9]+ to its end. */
static bool kms_region_match(const char *s, const char *prefix)
{
    size_t i = strlen(prefix);
    if (strncmp(s, prefix, i) != 0) return false;
    size_t w = i;
    while (kms_lower_alnum(s[w])) w++;
    if (w == i || s[w] != '-') return false;
    size_t d = w + 1;
    while (s[d] >= '0' && s[d] <= '9') d++;
    return d > w + 1 && s[d] == '\0';
}

static const struct {
    const char *partition;
    const char *prefix;
} kms_partitions[] = {
    {"aws", "us-"},
    {"aws", "eu-"},
    {"aws", "ap-"},
    {"aws", "sa-"},
    {"aws", "ca-"},
    {"aws", "me-"},
    {"aws", "af-"},
    {"aws", "il-"},
    {"aws", "mx-"},
    {"aws-cn", "cn-"},
    {"aws-us-gov", "us-gov-"},
    {"aws-iso", "us-iso-"},
    {"aws-iso-b", "us-isob-"},
    {"aws-iso-e", "eu-isoe-"},
    {"aws-iso-f", "us-isof-"},
    {"aws-eusc", "eusc-de-"},
};

/* The partition whose regionRegex s matches, NULL when none does. The patterns never overlap:
 * [a-z0-9]+ stops at a dash, so "us-gov-west-1" is not "us-" GOV "-" digits. */
static const char *kms_partition_of(const char *s)
{
    if (strlen(s) > KMS_REGION_MAX) return NULL;
    for (size_t i = 0; i < sizeof(kms_partitions) / sizeof(kms_partitions[0]); i++)
        if (kms_region_match(s, kms_partitions[i].prefix)) return kms_partitions[i].partition;
    return NULL;
}

bool kms_region_is_aws(const char *s) { return kms_partition_of(s) != NULL; }

const char *kms_region_partition(const char *s)
{
    const char *p = kms_partition_of(s);
    return p != NULL ? p : "aws";
}

bool kms_region_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > KMS_REGION_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!kms_lower_alnum(s[i]) && s[i] != '-') return false;
    return true;
}

bool kms_arn_split(const char *arn, kms_arn_parts *out)
{
    memset(out, 0, sizeof(*out));
    cl_reader r = cl_reader_make(arn, strlen(arn));
    if (!cl_reader_starts_with_str(&r, "arn:") || cl_reader_skip(&r, 4) != CL_OK) return false;
    cl_reader *parts[] = {&out->partition, &out->service, &out->region, &out->account};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        bool found;
        cl_reader_until(&r, ':', parts[i], &found);
        if (!found || cl_reader_skip(&r, 1) != CL_OK) return false;
    }
    out->resource = r;
    return true;
}
