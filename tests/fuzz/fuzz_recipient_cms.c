/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CiphertextForRecipient opener (CMS EnvelopedData parse, shape and algorithm checks,
 * RSAES-OAEP and AES-256-CBC decryption) on arbitrary bytes, with a fixed test key. The
 * seeds in corpus/recipient_cms/ are envelopes sealed to this key by cl_recipient_seal
 * (seal-*) and one that `openssl cms -encrypt` made with PKCS#1 v1.5 and AES-128 (refused).
 */
#include <sanitizer/lsan_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cloister/recipient.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A test key, used for nothing else. */
static const char fuzz_key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                   "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCoFcNxpMs4i532\n"
                                   "8XVIGnzwwGUFliSCM+2siLYyi65G7nye3biGG8a8VsmmCromMWXY9ubLJ92xIZlf\n"
                                   "xPwyhnd5vm3sCwJ5n95jOg0Dk8C1Ak9lZmyvJrhxRMHU8mQJ6kmv/IEcwfCEXatk\n"
                                   "MW4cXXZbxItLLYFkwZO2cluLMGJCTeu9ExKmMbY5JlV2ACwB5cVyvv2L9HY76zzx\n"
                                   "qIFa6gphHzMOJbrFT0b8C+Umo3Bft6Wsue7S7tZIiQJN4AHsioafPOEogGjMkjwq\n"
                                   "Ybj3BtYUCSGeHsgZvdl/iuX5Wuq4dEb/YZr6KigCwR/pKIV6FAjQHdshwv4bs2pW\n"
                                   "a+qF4fRZAgMBAAECggEALYZ7ga/PRRj3p3dduzJFbdXGZt10NPnIoYcDxivz/40/\n"
                                   "nq3R+SzTxpZBFqJoKckOW1YAS70X/A5sIrbRUgP+nzBXSGvw9y04SCrkdHgT5VLj\n"
                                   "W0UDIet8YF1tnHYsZ00YOTzMYZQbx1YxgjkrKC6eTJuu2KVSGw6dKfjOV6Q6sNdG\n"
                                   "M2ur/NTcKhYxidx8mfgvuYq94X0LiM3uEHGhKFrZeF25tVJuUjxTIE9lqK5QEkU+\n"
                                   "y4AeczZbuyPghPN1qDBL/Fjv4t98pWJ+121L9qvO0umQSsvPOU9xVjMuDmHihnyo\n"
                                   "3pwwdRR/gzu6RDqQMkrDV7NQ9Fa0YezNmuF0fOzCkwKBgQDjAxTx7GXkNDLq9Qa0\n"
                                   "4u7rOpsDpXxwop+L+G+afd2mDuWDGagrfrebrS/BP2Fg3roI8ogDRPQROfm3wheW\n"
                                   "XUHwJ4zYtTtz2KhLYYac7BPlTwt/ghVqpwNwtC7dFmClQQWTyBkeYhbxQvupMvrt\n"
                                   "BzEugmiHhL1ekwATzRVCn+w49wKBgQC9jGJxOQt49qVpggUL/J77mJTwSNuQJayJ\n"
                                   "rM+gQpoKlWaanee7usSPXtUEIzJjJNB0oVjPY//gQczMnU5bXmSobZ9Bt1CWiHAm\n"
                                   "TmVGbgv2hU+8R85oNmmUErhPnnsGt7sWxJypFRnj1Tw3LPJhGx7wy55QWgsWAok3\n"
                                   "v/JwOS+5LwKBgQCRw2vSf0lZg47iQRziTwi8L/BTIhJKPJGXjZkTqRgGRXBngrTx\n"
                                   "4LbCliyguDKtwbXQgvKEruTMnt5SeKUunoj1TF/q0kvvccF2TZPi9M89oUivwfZA\n"
                                   "eicCWh/xRCogUiTjpEtEsBUtKyZumVZ3lfOleoTl53y02kzlafzpv8gtNwKBgBkp\n"
                                   "lbfqFrfMJlFHTVw2APTtYHg1c9BC8BCmvDlOHhzhkGleJPEq7gUKVcTi10GKFZIm\n"
                                   "CSAe6kze700KZOiEM2CYjNeweiZBnoG3ToJ3AWeMcvVPovr6njFl+sm3BCX0JgXz\n"
                                   "u8hGYNV57TB16wcxDn5wyWdpTKdzVrvr40c6kDdJAoGAKofZli4OPc4K6Pfk8p86\n"
                                   "KhvJIHFvJLJKKWGKiVIMx8B0W86J1Lo3T/EdI+ZOF/1ipXTpVatALzLw5snwMApz\n"
                                   "vNQ1qlRtvT3yTmO6qKdhY5Adw4Sh+YeY7t0r8GLq+6ezhdksjN81rTtgtP0Uxa3x\n"
                                   "F0qSXlZt1OEzW4xCky1aki4=\n"
                                   "-----END PRIVATE KEY-----\n";

static cl_recipient key;

/* Loads the key and runs one seal and open, so that OpenSSL's once-per-process state
 * (DRBGs, the carrier key, fetched algorithms) exists before the leak checker watches. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* OpenSSL keeps its DRBGs behind thread-local keys the leak checker cannot see into:
     * what this one-time warm-up allocates lives for the process and is not a leak. */
    __lsan_disable();
    cl_recipient_init(&key);
    if (cl_recipient_load_pem(&key, (const uint8_t *)fuzz_key_pem, sizeof(fuzz_key_pem) - 1) != CL_OK) __builtin_trap();
    cl_buf env, pt;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    if (cl_recipient_seal(key.spki.data, key.spki.len, (const uint8_t *)"warm", 4, &env) != CL_OK ||
        cl_recipient_open(&key, env.data, env.len, &pt) != CL_OK || pt.len != 4)
        __builtin_trap();
    cl_buf_free(&env);
    cl_buf_free(&pt);
    __lsan_enable();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_buf pt;
    cl_buf_init_secret(&pt, CL_RECIPIENT_MAX_PLAINTEXT);
    cl_status rc = cl_recipient_open(&key, data, size, &pt);
    /* A failure leaves nothing behind; a success is bounded. */
    if (rc != CL_OK && pt.len != 0) __builtin_trap();
    if (rc == CL_OK && pt.len > CL_RECIPIENT_MAX_PLAINTEXT) __builtin_trap();
    cl_buf_free(&pt);
    return 0;
}
