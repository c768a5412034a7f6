/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the TLS users of core (ratls.c, http.c). */
#ifndef CLOISTER_TLS_SOCKET_INTERNAL_H
#define CLOISTER_TLS_SOCKET_INTERNAL_H

#include <openssl/ssl.h>

#include "cloister/error.h"

/* Attaches the socket fd (not owned) to ssl through a BIO that writes with
 * send(MSG_NOSIGNAL): a peer that has gone is a failed call (EPIPE), not a SIGPIPE
 * that ends the process, as OpenSSL's own socket BIO (write()) would raise. A
 * non-blocking fd gives SSL_ERROR_WANT_READ / WANT_WRITE as usual. `who` names the
 * caller in the error message. */
CL_MUST_USE cl_status cl_tls_attach_socket(SSL *ssl, int fd, const char *who);

#endif
