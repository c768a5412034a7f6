/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation documents (COSE_Sign1 over the Nitro CBOR payload) on arbitrary
 * bytes: the bounded CBOR check, libcbor decoding, the payload's syntax, and,
 * for inputs that parse, the certificate chain and signature against AWS Nitro
 * Root-G1 at the two real documents' times (seeds: both real documents and a
 * tagged, indefinite-length document signed by a sim key).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cloister/attestation.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* AWS Nitro Enclaves Root-G1 (tests/vectors/nitro/aws-nitro-enclaves-root-g1.pem). */
static const char aws_root_g1[] = "-----BEGIN CERTIFICATE-----\n"
                                  "MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL\n"
                                  "MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD\n"
                                  "VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4\n"
                                  "MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL\n"
                                  "DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG\n"
                                  "BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb\n"
                                  "48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE\n"
                                  "h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF\n"
                                  "R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC\n"
                                  "MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW\n"
                                  "rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N\n"
                                  "IwLz3/Y=\n"
                                  "-----END CERTIFICATE-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_attest_roots roots;
    static int ready;
    if (!ready) {
        cl_attest_roots_init(&roots);
        if (cl_attest_roots_add(&roots, (const uint8_t *)aws_root_g1, sizeof(aws_root_g1) - 1) != CL_OK)
            __builtin_trap();
        ready = 1;
    }
    cl_attest_doc d;
    cl_attest_doc_init(&d);
    if (cl_attest_doc_parse(data, size, &d) == CL_OK) {
        /* what the parser promises */
        if (d.cabundle_len < 1 || d.cabundle_len > CL_ATTEST_MAX_CABUNDLE || d.pcr_mask == 0 ||
            d.certificate.len == 0 || strcmp(d.digest, "SHA384") != 0 || d.module_id[0] == '\0' ||
            d.timestamp_ms == 0 || d.payload.len == 0)
            __builtin_trap();
        static const int64_t times[2] = {1695057480 /* 2023-09-18T17:18:00Z */, 1725719859 /* 2024-09-07T14:37:39Z */};
        for (int i = 0; i < 2; i++) {
            cl_attest_policy pol = {.verify_at = times[i], .max_age_ms = 3600000};
            cl_attest_doc out;
            cl_attest_doc_init(&out);
            cl_status rc = cl_attest_verify(data, size, &roots, &pol, &out);
            /* a failed verification leaves nothing behind */
            if (rc != CL_OK && (out.payload.len != 0 || out.cabundle_len != 0)) __builtin_trap();
            cl_attest_doc_free(&out);
        }
    } else if (d.payload.len != 0 || d.cabundle_len != 0) {
        __builtin_trap(); /* a failed parse leaves nothing behind */
    }
    cl_attest_doc_free(&d);
    return 0;
}
