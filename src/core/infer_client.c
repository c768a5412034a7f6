/* SPDX-License-Identifier: Apache-2.0 */
/* The worker's clients (src/core/include/cloister/infer_client.h, docs/worker.md). */
#include "cloister/infer_client.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/envelope.h"
#include "cloister/kms_client.h"

#define INFER_ERROR_SHOWN 1000 /* bytes of a worker's error line we print */

cl_status cl_infer_connect(const char *path, int *out)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strnlen(path, sizeof(sa.sun_path));
    CL_ENSURE(n < sizeof(sa.sun_path), CL_ERR_USAGE, "socket path %s is too long", path);
    memcpy(sa.sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "making a socket");
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        (void)CL_RAISE_ERRNO(CL_ERR_IO, "cannot reach the enclave at %s", path);
        (void)close(fd);
        return CL_ERR_IO;
    }
    *out = fd;
    return CL_OK;
}

/* Reads the worker's answer: a result frame's payload into out, an error frame as CL_ERR_REMOTE. */
static CL_MUST_USE cl_status infer_read_answer(const cl_frame_io *io, cl_buf *out)
{
    cl_status rc = CL_OK;
    uint8_t type = 0;
    cl_buf err;
    cl_buf_init(&err, CL_FRAME_MAX);
    cl_buf *dst = out;
    size_t base = out->len;
    rc = cl_frame_read_io(io, CL_FRAME_MAX, &type, dst);
    if (rc == CL_ERR_NOT_FOUND)
        CL_FAIL_GOTO(CL_ERR_IO, "the enclave closed the connection without an answer (was it stopped or killed?)");
    CL_GUARD_CTX_GOTO(rc, "the connection to the enclave broke before its answer arrived");
    if (type == CL_FRAME_ERROR) {
        /* The worker's line, shown as text only, and not left in out. */
        CL_GUARD_GOTO(cl_buf_append(&err, out->data + base, out->len - base));
        cl_buf_truncate(out, base);
        char shown[INFER_ERROR_SHOWN + 1];
        CL_FAIL_GOTO(CL_ERR_REMOTE, "the enclave refused the request: %s",
                     cl_bytes_show(err.data, err.len, shown, sizeof(shown)));
    }
    if (type != CL_FRAME_RESULT) {
        cl_buf_truncate(out, base);
        CL_FAIL_GOTO(CL_ERR_FORMAT, "the enclave answered a frame of type %u, not a result", type);
    }
out:
    cl_buf_free(&err);
    return rc;
}

/* The KMS key and provider of a sealed envelope's header, and its encryption context. */
static CL_MUST_USE cl_status infer_header(const uint8_t *p, size_t n, const char *what, char *key_id, size_t key_size,
                                          cl_kvlist *ctx)
{
    cl_status rc = CL_OK;
    uint32_t hlen = 0;
    cl_envelope_header h;
    memset(&h, 0, sizeof(h));
    CL_GUARD_CTX_GOTO(cl_envelope_header_length(p, n, &hlen), "%s is not a sealed envelope", what);
    CL_ENSURE_GOTO(hlen <= n, CL_ERR_FORMAT, "%s: the envelope header is truncated", what);
    CL_GUARD_CTX_GOTO(cl_envelope_header_parse(p, hlen, &h), "%s", what);
    CL_ENSURE_GOTO(h.provider_len == 3 && memcmp(h.provider, "kms", 3) == 0 && h.key_id_len < key_size, CL_ERR_KEY,
                   "%s must be sealed with a KMS key (cloister seal --key alias/...)", what);
    memcpy(key_id, h.key_id, h.key_id_len);
    key_id[h.key_id_len] = '\0';
    for (size_t i = 0; ctx != NULL && i < h.context.count; i++)
        CL_GUARD_GOTO(cl_kvlist_add(ctx, h.context.items[i].key, strlen(h.context.items[i].key),
                                    h.context.items[i].value, strlen(h.context.items[i].value)));
out:
    cl_envelope_header_free(&h);
    return rc;
}

cl_status cl_infer_client_envelope(const char *socket_path, const uint8_t *sealed, size_t sealed_len,
                                   const cl_infer_envelope_opts *opts, cl_buf *out)
{
    cl_status rc = CL_OK;
    int fd = -1;
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    char in_key[CL_KEY_ID_MAX + 1], res_key[CL_KEY_ID_MAX + 1];
    cl_kms_client *kms = NULL;
    cl_key_provider *kp = NULL;
    cl_kvlist want, got;
    cl_kvlist_init(&want);
    cl_kvlist_init(&got);
    cl_buf req, ans;
    cl_buf_init(&req, CL_FRAME_MAX);
    cl_buf_init(&ans, CL_FRAME_MAX);
    CL_GUARD_GOTO(infer_header(sealed, sealed_len, "the input", in_key, sizeof(in_key), NULL));
    CL_GUARD_GOTO(cl_random(id, sizeof(id)));
    CL_GUARD_GOTO(cl_infer_binding_make(id, sealed, sealed_len, &want));
    CL_GUARD_GOTO(cl_frame_request_encode(id, sealed, sealed_len, &req));
    CL_GUARD_GOTO(cl_infer_connect(socket_path, &fd));
    cl_frame_io io = cl_frame_io_fd(&fd);
    CL_GUARD_CTX_GOTO(cl_frame_write_io(&io, CL_FRAME_REQUEST, req.data, req.len),
                      "sending the request to the enclave");
    (void)shutdown(fd, SHUT_WR);
    CL_GUARD_GOTO(infer_read_answer(&io, &ans));
    CL_GUARD_GOTO(infer_header(ans.data, ans.len, "the enclave's result", res_key, sizeof(res_key), &got));
    CL_ENSURE_GOTO(strcmp(in_key, res_key) == 0, CL_ERR_AUTH,
                   "the enclave's result is sealed under %s, not under the input's key %s", res_key, in_key);
    CL_GUARD_GOTO(cl_infer_binding_check(&got, &want));
    if (opts != NULL && opts->keep_sealed) {
        CL_GUARD_GOTO(cl_buf_append(out, ans.data, ans.len));
    } else {
        CL_GUARD_CTX_GOTO(cl_kms_client_from_env(opts != NULL ? opts->kms_endpoint : NULL, &kms),
                          "opening KMS key %s to unseal the result", res_key);
        rc = cl_kms_provider_open(kms, res_key, &kp);
        kms = NULL; /* the provider owns it, also on failure */
        CL_GUARD_GOTO(rc);
        /* The context given here is checked against the header that the chunks authenticate. */
        CL_GUARD_CTX_GOTO(cl_envelope_unseal_mem(kp, &want, ans.data, ans.len, out), "unsealing the result");
    }
out:
    if (fd >= 0) (void)close(fd);
    cl_key_provider_destroy(kp);
    cl_kms_client_free(kms);
    cl_kvlist_free(&want);
    cl_kvlist_free(&got);
    cl_buf_free(&req);
    cl_buf_free(&ans);
    return rc;
}

cl_status cl_infer_client_stop(const char *socket_path)
{
    cl_status rc = CL_OK;
    int fd = -1;
    CL_GUARD_GOTO(cl_infer_connect(socket_path, &fd));
    CL_GUARD_CTX_GOTO(cl_frame_write(fd, CL_FRAME_STOP, NULL, 0), "sending the stop frame");
out:
    if (fd >= 0) (void)close(fd);
    return rc;
}

cl_status cl_infer_channel_open(cl_infer_channel *ch, const char *socket_path, cl_ratls_client *client,
                                cl_attest_doc *doc)
{
    cl_status rc = CL_OK;
    memset(ch, 0, sizeof(*ch));
    ch->fd = -1;
    CL_GUARD_GOTO(cl_infer_connect(socket_path, &ch->fd));
    CL_GUARD_CTX_GOTO(cl_ratls_client_connect(client, ch->fd, &ch->conn, doc), "the enclave at %s", socket_path);
    ch->tls = true;
out:
    if (rc != CL_OK) cl_infer_channel_close(ch);
    return rc;
}

cl_status cl_infer_channel_open_fd(cl_infer_channel *ch, int fd, cl_ratls_client *client, cl_attest_doc *doc)
{
    cl_status rc = CL_OK;
    memset(ch, 0, sizeof(*ch));
    ch->fd = fd;
    CL_GUARD_CTX_GOTO(cl_ratls_client_connect(client, ch->fd, &ch->conn, doc), "the enclave's RA-TLS handshake");
    ch->tls = true;
out:
    if (rc != CL_OK) cl_infer_channel_close(ch);
    return rc;
}

cl_status cl_infer_channel_request(cl_infer_channel *ch, const uint8_t *input, size_t n, cl_buf *out)
{
    CL_ENSURE(ch->tls, CL_ERR_STATE, "the channel to the enclave is not open");
    cl_frame_io io = cl_frame_io_tls(&ch->conn);
    CL_GUARD_CTX(cl_frame_write_io(&io, CL_FRAME_REQUEST, input, n), "sending the request to the enclave");
    return infer_read_answer(&io, out);
}

void cl_infer_channel_close(cl_infer_channel *ch)
{
    if (ch->tls) cl_ratls_conn_close(&ch->conn);
    ch->tls = false;
    if (ch->fd >= 0) (void)close(ch->fd);
    ch->fd = -1;
}

cl_status cl_infer_client_channel(const char *socket_path, cl_ratls_client *client, const uint8_t *input, size_t n,
                                  cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_infer_channel ch;
    CL_GUARD_GOTO(cl_infer_channel_open(&ch, socket_path, client, NULL));
    CL_GUARD_GOTO(cl_infer_channel_request(&ch, input, n, out));
out:
    cl_infer_channel_close(&ch);
    return rc;
}
