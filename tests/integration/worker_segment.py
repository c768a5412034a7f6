# SPDX-License-Identifier: Apache-2.0
"""The MRI delineation story through the worker: the TCGA-LGG U-Net
(models/tcga-lgg-unet, NOT FOR CLINICAL USE) sealed by the model owner, the walk-through's MRI
slice (TCGA_CS_4944.png, RGB; the model reads its FLAIR channel) sealed by the hospital, both
paths. Both KMSs serve HTTPS and the worker trusts their CA from a file in its image
(kms_ca_file), so its TLS sessions to the KMSs end inside the enclave: the relays in front of
the KMSs see TLS records and no HTTP at all.

- Envelope and channel paths give the mask and summary `cloister infer-local` gives on the
  plaintext slice (-o mask.png: the mask into the file, the summary on stdout; -o x.json: the
  whole result with the mask in base64).
- A sealed input that is not an image gets one line without details, and the worker serves on.
- Neither the slice nor the mask appears in the bytes the host relays.

Skips (prints the reason, exits 0) only when the kernel refuses unprivileged user namespaces."""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import worker_harness as wh  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "tcga-lgg-unet", "tcga-lgg-unet.onnx")
SLICE = os.path.join(ROOT, "models", "tcga-lgg-unet", "samples", "TCGA_CS_4944.png")
passed = failed = 0


def check(cond, what):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "not ok - ") + what, flush=True)


def main():
    try:
        with wh.world(model=MODEL, record=SLICE, tls=True) as w:
            r = w.run("infer-local", w.p("model.onnx"), SLICE, "-o", w.p("expected.png"))
            assert r.returncode == 0, r.stderr
            expected = json.loads(r.stdout)
            expected_mask = open(w.p("expected.png"), "rb").read()
            check(expected["kind"] == "segmentation" and expected["area_pixels"] > 0,
                  "infer-local delineates the plaintext slice: %d pixels" % expected["area_pixels"])
            slice_sealed = w.seal_record("slice.sealed", w.record)
            proc, env_s, chan_s = w.start_enclave()
            host_env, host_chan = wh.Relay(env_s, w.p("h-env.sock")), wh.Relay(chan_s, w.p("h-chan.sock"))

            r = w.run("infer", "--enclave", host_env.path, slice_sealed, "-o", w.p("env.png"), env=w.henv)
            got = json.loads(r.stdout) if r.returncode == 0 else {}
            check(r.returncode == 0 and got == expected and open(w.p("env.png"), "rb").read() == expected_mask,
                  "envelope path: the enclave's mask and summary are infer-local's: " + (r.stderr.strip() or
                                                                                          json.dumps(got)))
            r = w.run("infer", "--channel", host_chan.path, "--root", w.p("pki", "root.pem"), "--expect-pcr0",
                      w.pcr0, SLICE, "-o", w.p("chan.json"))
            doc = json.load(open(w.p("chan.json"))) if r.returncode == 0 else {}
            mask = base64.b64decode(doc.pop("mask_png_base64", ""))
            check(r.returncode == 0 and doc == expected and mask == expected_mask,
                  "channel path, -o x.json: the whole result, the same mask in base64: " + r.stderr.strip())
            r = w.run("infer", "--channel", host_chan.path, "--root", w.p("pki", "root.pem"), "--expect-pcr0",
                      w.pcr0, SLICE, "-o", w.p("chan.png"))
            check(r.returncode == 0 and json.loads(r.stdout) == expected and
                  open(w.p("chan.png"), "rb").read() == expected_mask, "channel path, -o mask.png: the same")

            notes = w.seal_record("notes.sealed", b'{"secret-diagnosis": 1}')
            r = w.run("infer", "--enclave", host_env.path, notes, "-o", w.p("notes.png"), env=w.henv)
            lines = r.stderr.strip().splitlines()
            check(r.returncode == 1 and len(lines) == 1 and "not an image this model reads" in lines[0] and
                  "secret-diagnosis" not in r.stderr and not os.path.exists(w.p("notes.png")),
                  "a sealed input that is not an image: one line, no details, no output: " + r.stderr.strip())
            r = w.run("infer", "--enclave", host_env.path, w.seal_record("again.sealed", w.record), "-o",
                      w.p("again.png"), env=w.henv)
            check(r.returncode == 0 and open(w.p("again.png"), "rb").read() == expected_mask,
                  "and the worker serves the next slice")

            seen = host_env.seen() + host_chan.seen()
            check(len(seen) > 0 and w.record[100:164] not in seen and expected_mask[-40:] not in seen,
                  "the host channel carried neither the slice nor the mask (%d bytes)" % len(seen))
            kms_seen = w.kms_relay.seen() + w.hosp_relay.seen()
            check(len(kms_seen) > 1000 and b"TrentService" not in kms_seen and b"HTTP/1.1" not in kms_seen and
                  b"CiphertextForRecipient" not in kms_seen,
                  "the enclave's KMS traffic crossed the host as TLS only (%d bytes, no HTTP visible)" % len(kms_seen))
    except wh.Skip as e:
        print("SKIP: %s" % e)
        return 77
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
