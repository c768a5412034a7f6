# SPDX-License-Identifier: Apache-2.0
"""Issue 12, finding 11: plaintext copies in the KMS heap. jansson's strings and libevent's
buffers kept request and response plaintext after use. Now both libraries allocate through a
free() that wipes (cl_free_wiped), the request body is wiped in place once answered, and the
answer's text is wiped before it is freed.

The check is on the running server: after Encrypt and Decrypt of distinctive plaintexts (and of
a GenerateDataKey, whose key we learn from its answer), every readable private mapping of the
process (heap, thread stacks and arenas, libraries' data) is read through /proc/PID/mem and
searched for the plaintexts, raw and in the base64 the wire carries. The key id is searched as
a control: it is still held (key cache, audit state), so a scan that finds nothing at all would
not be a scan. Skipped (77) where /proc/PID/mem cannot be read (ptrace restrictions), and in the
sanitizer passes."""
import base64
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import kms_harness  # noqa: E402


def memory_of(pid):
    """The bytes of every readable, private, non-file-backed-or-writable mapping."""
    chunks = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
            start, end, perms, name = int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4)
            if not perms.startswith("r") or "w" not in perms or name in ("[vvar]", "[vsyscall]"):
                continue
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except OSError:
                pass  # guard pages of secret buffers, unmapped meanwhile
    return b"".join(chunks)


def main():
    if os.environ.get("CLOISTER_SANITIZED"):
        print("SKIP: a sanitized server's memory is mostly shadow mappings (terabytes); the main pass scans it")
        return 77
    with kms_harness.kms_server() as srv:
        pid = srv.proc.pid
        try:
            with open("/proc/%d/mem" % pid, "rb", 0):
                pass
        except OSError as e:
            print("SKIP: cannot read /proc/%d/mem: %s" % (pid, e))
            return 77
        kms = kms_harness.boto_client(srv.endpoint)
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        secrets = []
        for i in range(24):
            # sizes from 40 bytes to AWS's 4096: buffers of different size classes
            pt = b"CLOISTER-HEAP-CANARY-%d-" % i + os.urandom(6 + i * 80).hex().encode()[:4000]
            blob = kms.encrypt(KeyId=key, Plaintext=pt, EncryptionContext={"case": str(i)})["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"case": str(i)})["Plaintext"] == pt
            secrets.append(pt)
        for _ in range(4):
            secrets.append(kms.generate_data_key(KeyId=key, KeySpec="AES_256")["Plaintext"])
        secrets.append(kms.generate_random(NumberOfBytes=48)["Plaintext"])
        kms.list_keys()  # one more turn of the workers' loops
        image = memory_of(pid)
        assert key.encode() in image, "the scan found not even the key id: it did not read the heap"
        found = []
        for s in secrets:
            for form, needle in (("raw", s), ("base64", base64.b64encode(s))):
                # 24 bytes are enough to be unique; a whole data key or its base64 is longer
                if needle[:24] in image:
                    found.append("%s %s" % (form, s[:24]))
        print("scanned %d MiB of the server's writable memory for %d plaintexts: %d copies" %
              (len(image) >> 20, len(secrets), len(found)))
        if found:
            print("plaintext left in the server's memory:\n  " + "\n  ".join(found))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
