/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the operations of the AWS KMS API that make no sense for one self-hosted server
 * (ops.h): custom key stores (an AWS CloudHSM cluster or an external key manager behind a proxy
 * holding a key's material instead of KMS) and multi-Region keys (replicas of one key in other
 * Regions). This server is itself the one key store, and one server: its Regions are names in a
 * credential scope and an ARN, not places holding copies. Each answers UnsupportedOperationException
 * saying why. AWS answers some of them otherwise for an account that has no key store or replica
 * (docs/kms.md, "Operations": CustomKeyStoreNotFoundException, an empty DescribeCustomKeyStores);
 * an operation outside the model is the server's UnknownOperationException, not this.
 */
#include <string.h>

#include "ops.h"

cl_status kms_op_unsupported_key_store(kms_call *c)
{
    KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                "%s is not supported by this server: it has no custom key stores (AWS CloudHSM or external key "
                "stores). It is itself the key store: its keys' material is generated here (Origin AWS_KMS) or "
                "imported (Origin EXTERNAL, GetParametersForImport and ImportKeyMaterial)",
                c->operation);
}

cl_status kms_op_unsupported_multi_region(kms_call *c)
{
    KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                "%s is not supported by this server: it has no multi-Region keys. It is one server, and its Regions "
                "are not replicas of one another: a key belongs to the Region it was created in",
                c->operation);
}
