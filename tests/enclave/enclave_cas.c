/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate-service test enclave (tests/integration/cas_enclave.py builds it into images
 * and runs them with `cloister enclave run`). What a guest program does at start with
 * cloister/cas.h:
 *   1. cl_cas_obtain: attests and gets its certificate for `api` and its secrets from
 *      cloister-kms (through the launcher's proxy, vsock port `vsock_port`);
 *   2. reports on vsock port 5000 a JSON line: the certificate chain, its serial, the SHA-256 of
 *      each secret (never the secret); or the refusal's message, and exits 1;
 *   3. starts the renewal thread (`renew_after`, `retry_after` seconds) and reports each attempt;
 *   4. serves HTTPS on vsock port `listen_port` with whatever certificate is current: one request
 *      per connection, answered {"service", "serial", "generation"}.
 * Its configuration is the image's /files/cas.json; /files/pad only makes images differ.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/cas.h"
#include "cloister/crypto.h"
#include "cloister/nsm.h"

static int send_report(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL) return 2;
    int fd = -1;
    int rc = 0;
    size_t n = strlen(text);
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (cl_vsock_connect(cl_vsock_ctl(), 5000, &fd) != CL_OK) {
        rc = 3;
    } else {
        if (write(fd, len, 4) != 4 || write(fd, text, n) != (ssize_t)n) rc = 4;
        (void)shutdown(fd, SHUT_WR);
        char c;
        while (read(fd, &c, 1) > 0) {
        }
        (void)close(fd);
    }
    free(text);
    return rc;
}

static json_t *secret_digest(cl_cas_identity *id, const char *name)
{
    cl_buf v;
    cl_buf_init_secret(&v, 65536);
    uint8_t d[CL_SHA256_LEN];
    char hex[2 * CL_SHA256_LEN + 1];
    json_t *out = json_null();
    if (cl_cas_secret(id, name, &v) == CL_OK && cl_sha256(v.data, v.len, d) == CL_OK)
        out = json_string(cl_hex_encode(d, sizeof(d), hex, sizeof(hex)));
    cl_buf_free(&v);
    return out;
}

static json_t *state_report(cl_cas_identity *id, const char *event)
{
    cl_buf chain;
    cl_buf_init(&chain, 1 << 17);
    char serial[64] = "";
    if (cl_cas_serial(id, serial, sizeof(serial)) != CL_OK) serial[0] = '\0';
    if (cl_cas_chain_pem(id, &chain) != CL_OK) cl_error_clear();
    json_t *j = json_pack("{s:s, s:b, s:i, s:s, s:s, s:I, s:o}", "event", event, "ok", 1, "generation",
                          (int)cl_cas_generation(id), "serial", serial, "chain", cl_buf_cstr(&chain), "not_after",
                          (json_int_t)cl_cas_not_after(id), "db_key_sha256", secret_digest(id, "db_key"));
    cl_buf_free(&chain);
    return j;
}

static void on_renewal(void *arg, cl_status rc, const char *message)
{
    cl_cas_identity *id = *(cl_cas_identity **)arg;
    if (rc == CL_OK) {
        (void)send_report(state_report(id, "renewal"));
        return;
    }
    char serial[64] = "";
    if (cl_cas_serial(id, serial, sizeof(serial)) != CL_OK) serial[0] = '\0';
    (void)send_report(json_pack("{s:s, s:b, s:i, s:s, s:s}", "event", "renewal", "ok", 0, "generation",
                                (int)cl_cas_generation(id), "serial", serial, "error", message));
}

/* One HTTPS request: read the head, answer JSON about the current certificate. */
static void serve(cl_cas_identity *id, int fd)
{
    cl_ratls_conn conn;
    if (cl_cas_tls_accept(id, fd, &conn) != CL_OK) return;
    char in[4096];
    size_t have = 0, got = 0;
    while (have < sizeof(in) - 1 && cl_ratls_conn_read(&conn, in + have, sizeof(in) - 1 - have, &got) == CL_OK &&
           got > 0) {
        have += got;
        in[have] = '\0';
        if (strstr(in, "\r\n\r\n") != NULL) break;
    }
    char serial[64] = "", body[256], head[256];
    if (cl_cas_serial(id, serial, sizeof(serial)) != CL_OK) serial[0] = '\0';
    int bn = snprintf(body, sizeof(body), "{\"service\":\"api\",\"serial\":\"%s\",\"generation\":%u}\n", serial,
                      cl_cas_generation(id));
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: "
                      "close\r\n\r\n",
                      bn);
    if (cl_ratls_conn_write(&conn, head, (size_t)hn) != CL_OK || cl_ratls_conn_write(&conn, body, (size_t)bn) != CL_OK)
        cl_error_clear();
    cl_ratls_conn_close(&conn);
}

int main(void)
{
    (void)signal(SIGPIPE, SIG_IGN);
    json_error_t jerr;
    json_t *cfg = json_load_file("/files/cas.json", 0, &jerr);
    if (cfg == NULL) return 64;
    static cl_cas_identity *id = NULL;
    cl_cas_config cc = {
        .endpoint = json_string_value(json_object_get(cfg, "endpoint")),
        .ca_file = json_string_value(json_object_get(cfg, "ca_file")),
        .vsock_port = (uint32_t)json_integer_value(json_object_get(cfg, "vsock_port")),
        .session = json_string_value(json_object_get(cfg, "session")),
        .service = json_string_value(json_object_get(cfg, "service")),
        .renew_after = json_integer_value(json_object_get(cfg, "renew_after")),
        .retry_after = json_integer_value(json_object_get(cfg, "retry_after")),
        .on_renewal = on_renewal,
        .on_renewal_arg = &id,
    };
    uint32_t listen_port = (uint32_t)json_integer_value(json_object_get(cfg, "listen_port"));
    if (cl_nsm_open(&cc.nsm_fd) != CL_OK || cl_cas_obtain(&cc, &id) != CL_OK) {
        int rc = send_report(json_pack("{s:s, s:b, s:s}", "event", "obtain", "ok", 0, "error", cl_error_message()));
        return rc == 0 ? 1 : 10 + rc;
    }
    int listener = -1;
    if (cl_vsock_listen(cl_vsock_ctl(), listen_port, &listener) != CL_OK) {
        (void)send_report(json_pack("{s:s, s:b, s:s}", "event", "listen", "ok", 0, "error", cl_error_message()));
        return 2;
    }
    /* Listening before the report: the test connects as soon as it reads it. */
    if (send_report(state_report(id, "obtain")) != 0 || cl_cas_start_renewal(id) != CL_OK) return 3;
    for (;;) {
        int fd = -1;
        if (cl_vsock_accept(listener, &fd) != CL_OK) continue;
        serve(id, fd);
        (void)close(fd);
    }
}
