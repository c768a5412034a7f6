# SPDX-License-Identifier: Apache-2.0
"""An independent implementation of sealed envelope v1 (docs/formats/envelope.md)
in Python with the `cryptography` package. It shares no code with the C
library: it exists so the format's test vectors and the C implementation can be
checked against a second reading of the specification."""
import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\x89CLSEAL\n"
VERSION = 1
ALG_AES256GCM_HKDF = 1
KDF_INFO = b"cloister/envelope/v1/chunk-key"
LOCAL_WRAP_AAD = b"cloister/local-wrap/v1"
TAG = 16


class EnvelopeError(Exception):
    pass


def encode_context(ctx):
    out = struct.pack(">H", len(ctx))
    for k in sorted(ctx, key=lambda s: s.encode()):
        kb, vb = k.encode(), ctx[k].encode()
        out += struct.pack(">H", len(kb)) + kb + struct.pack(">H", len(vb)) + vb
    return out


def build_header(provider, key_id, wrapped, ctx, chunk_size, salt):
    body = struct.pack(">I", chunk_size)
    body += struct.pack(">B", len(provider)) + provider.encode()
    body += struct.pack(">H", len(key_id)) + key_id.encode()
    body += struct.pack(">H", len(wrapped)) + wrapped
    body += encode_context(ctx) + salt
    total = 8 + 1 + 1 + 4 + len(body)
    return MAGIC + bytes([VERSION, ALG_AES256GCM_HKDF]) + struct.pack(">I", total) + body


def derive(data_key, salt):
    okm = HKDF(algorithm=hashes.SHA256(), length=39, salt=salt, info=KDF_INFO).derive(data_key)
    return okm[:32], okm[32:]


def nonce(prefix, index, last):
    return prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


def seal(data_key, provider, key_id, wrapped, ctx, chunk_size, salt, plaintext):
    header = build_header(provider, key_id, wrapped, ctx, chunk_size, salt)
    aad = hashlib.sha256(header).digest()
    key, prefix = derive(data_key, salt)
    gcm = AESGCM(key)
    out = [header]
    chunks = [plaintext[i:i + chunk_size] for i in range(0, len(plaintext), chunk_size)] or [b""]
    for i, c in enumerate(chunks):
        out.append(gcm.encrypt(nonce(prefix, i, i == len(chunks) - 1), c, aad))
    return b"".join(out)


def parse_header(blob):
    if blob[:8] != MAGIC:
        raise EnvelopeError("bad magic")
    if blob[8] != VERSION or blob[9] != ALG_AES256GCM_HKDF:
        raise EnvelopeError("unsupported version or algorithm")
    (total,) = struct.unpack(">I", blob[10:14])
    header = blob[:total]
    pos = 14
    (chunk_size,) = struct.unpack(">I", header[pos:pos + 4]); pos += 4
    plen = header[pos]; pos += 1
    provider = header[pos:pos + plen].decode(); pos += plen
    (klen,) = struct.unpack(">H", header[pos:pos + 2]); pos += 2
    key_id = header[pos:pos + klen].decode(); pos += klen
    (wlen,) = struct.unpack(">H", header[pos:pos + 2]); pos += 2
    wrapped = header[pos:pos + wlen]; pos += wlen
    (count,) = struct.unpack(">H", header[pos:pos + 2]); pos += 2
    ctx = {}
    for _ in range(count):
        (kl,) = struct.unpack(">H", header[pos:pos + 2]); pos += 2
        k = header[pos:pos + kl].decode(); pos += kl
        (vl,) = struct.unpack(">H", header[pos:pos + 2]); pos += 2
        ctx[k] = header[pos:pos + vl].decode(); pos += vl
    salt = header[pos:pos + 32]; pos += 32
    if pos != total:
        raise EnvelopeError("header length mismatch")
    return dict(header=header, chunk_size=chunk_size, provider=provider, key_id=key_id,
                wrapped=wrapped, context=ctx, salt=salt)


def unseal(blob, data_key_for):
    h = parse_header(blob)
    data_key = data_key_for(h)
    key, prefix = derive(data_key, h["salt"])
    aad = hashlib.sha256(h["header"]).digest()
    gcm = AESGCM(key)
    body = blob[len(h["header"]):]
    unit = h["chunk_size"] + TAG
    out, i, pos = [], 0, 0
    while True:
        rest = len(body) - pos
        last = rest <= unit
        n = rest if last else unit
        if n < TAG:
            raise EnvelopeError("truncated")
        try:
            out.append(gcm.decrypt(nonce(prefix, i, last), body[pos:pos + n], aad))
        except InvalidTag:
            raise EnvelopeError(f"chunk {i} failed authentication")
        pos += n
        i += 1
        if last:
            return b"".join(out), h


def local_key_id(kek):
    return "local:" + hashlib.sha256(b"cloister local key id v1\x00" + kek).hexdigest()[:16]


def local_wrap_aad(key_id, ctx):
    return LOCAL_WRAP_AAD + b"\x00" + key_id.encode() + b"\x00" + encode_context(ctx)


def local_wrap(kek, data_key, ctx, wrap_nonce):
    kid = local_key_id(kek)
    return wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, data_key, local_wrap_aad(kid, ctx))


def local_unwrap(kek, key_id, wrapped, ctx):
    if key_id != local_key_id(kek):
        raise EnvelopeError("wrong key")
    return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], local_wrap_aad(key_id, ctx))


def read_local_key(path):
    text = open(path).read().strip()
    magic = "CLOISTER-LOCAL-KEY-V1 "
    if not text.startswith(magic):
        raise EnvelopeError("not a local key file")
    return bytes.fromhex(text[len(magic):])
