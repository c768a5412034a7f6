/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fernet tokens (https://github.com/fernet/spec, Spec.md), byte-compatible with
 * Python cryptography's Fernet: version 0x80, 64-bit big-endian timestamp,
 * 128-bit IV, AES-128-CBC with PKCS#7 padding, HMAC-SHA256 over everything
 * before it, the whole token in padded base64url.
 */
#ifndef CLOISTER_FERNET_H
#define CLOISTER_FERNET_H

#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_FERNET_KEY_LEN 32        /* signing key (16) || encryption key (16) */
#define CL_FERNET_MAX_CLOCK_SKEW 60 /* seconds, as in Python cryptography */
#define CL_FERNET_NO_TTL (-1)

/* Parses the url-safe base64 form of a key (44 characters, as
 * Fernet.generate_key() returns it; trailing whitespace is ignored) into a
 * secret buffer of 32 bytes. */
CL_MUST_USE cl_status cl_fernet_key_decode(const char *text, size_t n, cl_buf *key);
/* Makes a fresh key in its url-safe base64 form. */
CL_MUST_USE cl_status cl_fernet_key_generate(cl_buf *text);

/* iv == NULL draws a random IV; a fixed IV is for test vectors only. */
CL_MUST_USE cl_status cl_fernet_encrypt(const uint8_t key[CL_FERNET_KEY_LEN], const uint8_t *msg, size_t n,
                                        uint64_t now, const uint8_t *iv, cl_buf *token);
/* ttl < 0: no age limit. Fails with CL_ERR_FORMAT (not a token),
 * CL_ERR_AUTH (wrong key or tampered) or CL_ERR_EXPIRED. */
CL_MUST_USE cl_status cl_fernet_decrypt(const uint8_t key[CL_FERNET_KEY_LEN], const char *token, size_t n, uint64_t now,
                                        int64_t ttl, cl_buf *plaintext);
/* Reads the timestamp of an authentic token. */
CL_MUST_USE cl_status cl_fernet_timestamp(const uint8_t key[CL_FERNET_KEY_LEN], const char *token, size_t n,
                                          uint64_t *timestamp);

#endif
