/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attested key-release test enclave: built into images by tests/integration/enclave_kms.py
 * and launched with `cloister enclave run`. What a real enclave does with AWS KMS:
 *   1. makes an ephemeral RSA-2048 key and gets an attestation document carrying it;
 *   2. through the launcher's proxy (vsock port 8000, standing for vsock-proxy to the KMS)
 *      calls GenerateDataKey with Recipient, then Decrypt of the returned CiphertextBlob with
 *      Recipient, then GenerateRandom with Recipient;
 *   3. reports on vsock port 5000 a JSON line: the SHA-256 of the data key (never the key),
 *      the CiphertextBlob, whether Decrypt gave the same key; or the error message.
 * Configuration comes from its image's files: /files/key_id (an alias), /files/endpoint (the
 * URL it signs for), /files/creds ("ACCESS_KEY_ID:SECRET"); /files/pad only makes images differ.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/kms_client.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/recipient.h"

static size_t read_small(const char *path, char *out, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n < 0) n = 0;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) n--;
    out[n] = '\0';
    return (size_t)n;
}

static int send_report(const char *text)
{
    int fd = -1;
    if (cl_vsock_connect(cl_vsock_ctl(), 5000, &fd) != CL_OK) return 3;
    size_t n = strlen(text);
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (write(fd, len, 4) != 4 || write(fd, text, n) != (ssize_t)n) return 4;
    shutdown(fd, SHUT_WR);
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    close(fd);
    return 0;
}

/* The error message as a JSON string body (quotes and backslashes dropped: it is a test report). */
static int report_error(const char *step)
{
    char msg[1200], clean[1100];
    size_t j = 0;
    const char *m = cl_error_message();
    for (size_t i = 0; m[i] != '\0' && j + 1 < sizeof(clean); i++)
        if (m[i] != '"' && m[i] != '\\' && (unsigned char)m[i] >= 0x20) clean[j++] = m[i];
    clean[j] = '\0';
    (void)snprintf(msg, sizeof(msg), "{\"ok\": false, \"step\": \"%s\", \"error\": \"%s\"}", step, clean);
    return send_report(msg) == 0 ? 1 : 5;
}

int main(void)
{
    char key_id[256], endpoint[256], creds[256];
    read_small("/files/key_id", key_id, sizeof(key_id));
    read_small("/files/endpoint", endpoint, sizeof(endpoint));
    read_small("/files/creds", creds, sizeof(creds));
    char *colon = strchr(creds, ':');
    if (colon == NULL) return 64;
    *colon = '\0';
    int nsm = -1;
    if (cl_nsm_open(&nsm) != CL_OK) return report_error("nsm");

    int ec = 0;
    cl_recipient rcpt;
    cl_recipient_init(&rcpt);
    cl_kms_client *kms = NULL;
    cl_buf doc, dk, dk2, blob, arn, rnd, b64, report;
    cl_buf_init(&doc, 1 << 16);
    cl_buf_init_secret(&dk, 64);
    cl_buf_init_secret(&dk2, 64);
    cl_buf_init(&blob, 8192);
    cl_buf_init(&arn, 2048);
    cl_buf_init_secret(&rnd, 64);
    cl_buf_init(&b64, 16384);
    cl_buf_init(&report, 32768);
    const char *step = "generate";
    if (cl_recipient_generate(&rcpt) != CL_OK) goto fail;
    step = "attest";
    if (cl_recipient_attest(&rcpt, nsm, NULL, 0, &doc) != CL_OK) goto fail;
    cl_kms_client_config cfg = {.endpoint = endpoint,
                                .region = "us-east-1",
                                .access_key_id = creds,
                                .secret_access_key = colon + 1,
                                .max_attempts = 1,
                                .vsock_port = 8000};
    step = "client";
    if (cl_kms_client_new(&cfg, &kms) != CL_OK) goto fail;
    step = "GenerateDataKey";
    if (cl_kms_generate_data_key_for_recipient(kms, &rcpt, doc.data, doc.len, key_id, NULL, &dk, &blob, &arn) != CL_OK)
        goto fail;
    step = "Decrypt";
    if (cl_kms_decrypt_for_recipient(kms, &rcpt, doc.data, doc.len, NULL, blob.data, blob.len, NULL, &dk2) != CL_OK)
        goto fail;
    step = "GenerateRandom";
    if (cl_kms_generate_random_for_recipient(kms, &rcpt, doc.data, doc.len, 32, &rnd) != CL_OK) goto fail;
    uint8_t digest[CL_SHA256_LEN];
    step = "report";
    if (cl_sha256(dk.data, dk.len, digest) != CL_OK || cl_base64_encode(blob.data, blob.len, false, &b64) != CL_OK ||
        cl_buf_printf(&report,
                      "{\"ok\": true, \"key_arn\": \"%s\", \"blob\": \"%s\", \"decrypt_match\": %s, "
                      "\"random_len\": %zu, \"data_key_sha256\": \"",
                      cl_buf_cstr(&arn), cl_buf_cstr(&b64),
                      dk.len == dk2.len && cl_ct_equal(dk.data, dk2.data, dk.len) ? "true" : "false",
                      rnd.len) != CL_OK ||
        cl_buf_append_hex(&report, digest, sizeof(digest)) != CL_OK || cl_buf_append_str(&report, "\"}") != CL_OK)
        goto fail;
    ec = send_report(cl_buf_cstr(&report));
    goto out;
fail:
    ec = report_error(step);
out:
    cl_kms_client_free(kms);
    cl_recipient_free(&rcpt);
    cl_buf_free(&doc);
    cl_buf_free(&dk);
    cl_buf_free(&dk2);
    cl_buf_free(&blob);
    cl_buf_free(&arn);
    cl_buf_free(&rnd);
    cl_buf_free(&b64);
    cl_buf_free(&report);
    close(nsm);
    return ec;
}
