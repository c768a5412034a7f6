/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: AWS region names, their partitions and ARNs. One server answers every region a
 * SigV4 credential scope names (docs/kms.md, "Regions"); keys, aliases and grants belong to one
 * region, as in AWS KMS. Uses nothing else of src/kms.
 */
#ifndef CLOISTER_KMS_REGION_H
#define CLOISTER_KMS_REGION_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister/buf.h"

/* The longest region name kept (the config's "region" has always had this bound; AWS's longest,
 * "ap-southeast-7" or "us-isof-south-1", is half of it). */
#define KMS_REGION_MAX 31
/* "regions" of the config file: at most this many. */
#define KMS_REGIONS_MAX 64

/* Whether s has the shape of an AWS region name: one partition's regionRegex of the AWS SDKs'
 * partitions.json (below). */
bool kms_region_is_aws(const char *s);
/* A name the config file may give ("region", "regions"): 1..KMS_REGION_MAX of [a-z0-9-]. */
bool kms_region_name_ok(const char *s);
/* The ARN partition of region s ("aws", "aws-cn", "aws-us-gov", ...): the partition whose
 * regionRegex s matches, "aws" for a name of no partition (a configured private name). */
const char *kms_region_partition(const char *s);

/* An ARN split at its colons (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, the IAM User Guide's
 * "ARN format"), each part a reader over `arn` (the resource runs to the end, colons included). */
typedef struct kms_arn_parts {
    cl_reader partition, service, region, account, resource;
} kms_arn_parts;
/* false when arn does not start "arn:" or has fewer than six parts. */
bool kms_arn_split(const char *arn, kms_arn_parts *out);

#endif
