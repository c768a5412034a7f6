/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloister-kms config file and root.kdf parsers: the first byte picks
 * which, the rest is the file. Any input must parse or fail with a status,
 * never crash, and a failed config parse leaves nothing allocated.
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1) {
        kms_kdf_params k;
        (void)kms_kdf_parse((const char *)data + 1, size - 1, &k);
        return 0;
    }
    kms_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cl_status rc = kms_config_parse((const char *)data + 1, size - 1, "/etc/kms", &cfg);
    if (rc != CL_OK && cfg.principals != NULL) __builtin_trap();
    if (rc == CL_OK && (cfg.n_principals < 1 || cfg.data_dir[0] == '\0')) __builtin_trap();
    kms_config_free(&cfg);
    return 0;
}
