/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CLOISTER_ENVELOPE_INTERNAL_H
#define CLOISTER_ENVELOPE_INTERNAL_H

#include "cloister/buf.h"
#include "cloister/kv.h"

/* Canonical context encoding: u16 count, then per pair u16 key length, key,
 * u16 value length, value, in key order (docs/formats/envelope.md). */
CL_MUST_USE cl_status cl_envelope_context_encode(const cl_kvlist *ctx, cl_buf *out);

#endif
