/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's session parser (cas_session.c): whatever parses is walked through the
 * queries the service makes of it. */
#include <stddef.h>
#include <stdint.h>

#include "cas_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kms_cas_session *s = NULL;
    if (kms_cas_session_parse((const char *)data, size, &s) != CL_OK) return 0;
    if (s == NULL || !kms_cas_name_ok(s->name)) __builtin_trap();
    for (size_t i = 0; i < s->n_services; i++) {
        const kms_cas_service *v = &s->services[i];
        if (kms_cas_session_service(s, v->name) != v) __builtin_trap();
        if (v->certificate != NULL && v->certificate->kind != KMS_CAS_X509) __builtin_trap();
        for (size_t j = 0; j < v->n_secrets; j++)
            if (v->secrets[j]->kind != KMS_CAS_RANDOM && v->secrets[j]->kind != KMS_CAS_VALUE) __builtin_trap();
    }
    for (size_t i = 0; i < s->n_secrets; i++) {
        const kms_cas_secret *x = &s->secrets[i];
        if (x->kind == KMS_CAS_X509 && kms_cas_session_secret(s, x->issuer) == NULL) __builtin_trap();
        if (x->export_public && x->kind != KMS_CAS_X509_CA && x->kind != KMS_CAS_VALUE) __builtin_trap();
    }
    (void)kms_cas_may_read(s, "arn:aws:iam::111122223333:user/dev");
    kms_cas_session_free(s);
    return 0;
}
