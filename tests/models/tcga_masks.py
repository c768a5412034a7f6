# SPDX-License-Identifier: Apache-2.0
"""Ground-truth lesion masks and clean FLAIR slices from the three annotated TCGA-LGG series.

NOT FOR CLINICAL USE: three patients' 8-bit, palette-quantised GIF frames are enough to train a
demonstration model, not a diagnostic one.

The data (../shared/data/mri/, see its README; mateuszbuda/brain-segmentation-pytorch, MIT; images
from TCIA's TCGA-LGG collection, Buda, Saha and Mazurowski, Computers in Biology and Medicine 109,
2019) are three animated GIFs, one FLAIR slice per frame, with the radiologist-approved mask's
outline in pure green (0, 255, 0) and that repository's model's prediction in pure red (255, 0, 0).

How each frame is read and what is derived from it:

- Decoding. Every frame of these GIFs carries its own local colour table (256 greys on some
  frames, a 64-entry table of ~32 greys plus red and green on others). Pillow 9.4 does not apply
  the local table of a frame whose predecessor it reads as greyscale ("L"): it returns the raw
  palette indices (0..33) as grey levels, a near-black frame with no outline, on frame 4 of
  TCGA_CS_4944 and frame 12 of TCGA_DU_6404, both of which hold a green outline. So the frames are
  decoded here (decode_gif: GIF89a blocks and LZW, each frame through its own colour table); the
  `check` command compares every frame with Pillow's RGB conversion and lists where they differ.
  Frames are full-size (0, 0, 256, 256) and not interlaced (checked), so there is no compositing.
  Counted this way the series have 9, 11 and 16 frames with a green outline (the data README,
  counting through Pillow, says 8, 11 and 15).
- The mask. The outline was drawn by that repository's utils.outline(): a mask pixel whose 3x3
  window (clipped at the image's edge) holds a non-mask pixel gets the colour, the prediction in
  red first, then the ground truth in green. So green is the mask's inner boundary and is drawn
  last: where the two outlines meet, green hides red, not the reverse. The mask is the green
  outline filled: every pixel not reachable from the image border through non-green pixels
  (4-connected flood fill; an 8-connected outline stops it). The check redraws the outline of that
  mask with the same rule and requires it to equal the green pixels exactly, pixel for pixel, on
  every frame: it does on all 36 outlined frames, so no gap had to be closed.
  Should a frame fail (red over green would leave gaps in the green curve), derive_mask tries
  again with the red pixels touching green (8-neighbours) counted as hidden green, and accepts that
  only if the redrawn outline then lies within green + red and covers every green pixel; otherwise
  it refuses the frame with its name, rather than train on a guess.
- The image. Grey pixels have R = G = B; the outline pixels (green and red) replaced the image
  there, so they are inpainted: each takes the mean of its non-outline 8-neighbours, repeatedly
  until none is left (outlines are one or two pixels wide; three rounds at most here), rounded to
  8 bits as a PNG holds it. Left in, a bright green/black line would teach the model that the lesion
  is where the radiologist drew; the red one, where the other model thought it was.

Usage (Debian's /usr/bin/python3 with python3-numpy, python3-pil):
  tcga_masks.py check OUT_DIR [--data DIR]   the checks above, a contact sheet per patient
                                              (OUT_DIR/<patient>.sheet.png: each frame as decoded,
                                              then inpainted with the derived mask tinted blue and
                                              its outline redrawn in green), a small one of three
                                              frames each (OUT_DIR/masks-check.png, 128x128 crops
                                              around the lesion) and a summary; exit 1
                                              when a check fails, 77 when the data is absent
  tcga_masks.py export OUT_DIR PATIENT FRAMES [--data DIR]
                                              writes <patient>-NN.png (the inpainted FLAIR, 8-bit
                                              grey) and <patient>-NN.mask.png (255 in the lesion)
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERIES = {
    "TCGA_CS_4944": "TCGA_CS_4944_20010208.gif",
    "TCGA_HT_7879": "TCGA_HT_7879_19981009.gif",
    "TCGA_DU_6404": "TCGA_DU_6404_19850629.gif",
}
# Frames with a green outline, counted on this decoder's frames (the data README's 8 and 15 for
# the first and last come from Pillow's, which misses one outlined frame in each).
LESION_FRAMES = {"TCGA_CS_4944": 9, "TCGA_HT_7879": 11, "TCGA_DU_6404": 16}
GREEN = (0, 255, 0)
RED = (255, 0, 0)


MISSING = ("the TCGA-LGG GIFs are not found: give --data DIR or set CLOISTER_MRI_DATA "
           "(the directory holding TCGA_CS_4944_20010208.gif, see ../shared/data/mri/README.md)")


def find_data(given=None):
    """The shared data: --data, $CLOISTER_MRI_DATA, or ../shared/data/mri next to the checkout
    (or next to the main checkout, for a worktree under /work/wt); None when absent."""
    cands = [given, os.environ.get("CLOISTER_MRI_DATA"), os.path.join(ROOT, "..", "shared", "data", "mri"),
             os.path.join(ROOT, "..", "..", "shared", "data", "mri")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, SERIES["TCGA_CS_4944"])):
            return os.path.abspath(c)
    return None


def data_dir(given=None):
    d = find_data(given)
    if d is None:
        sys.exit(MISSING)
    return d


# --- GIF decoding (GIF89a, https://www.w3.org/Graphics/GIF/spec-gif89a.txt) -------------------

def _lzw(data, min_code_size, n_pixels):
    """Variable-length-code LZW as GIF89a appendix F: clear code resets, codes grow to 12 bits."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    size = min_code_size + 1
    table = [bytes([i]) for i in range(clear)] + [b"", b""]
    out = bytearray()
    prev = None
    bits, nbits, pos = int.from_bytes(data, "little"), len(data) * 8, 0
    while pos + size <= nbits:
        code = (bits >> pos) & ((1 << size) - 1)
        pos += size
        if code == clear:
            size, table, prev = min_code_size + 1, table[:clear + 2], None
            continue
        if code == end:
            break
        if prev is None:
            entry = table[code]
        elif code < len(table):
            entry = table[code]
            table.append(prev + entry[:1])
        elif code == len(table):
            entry = prev + prev[:1]
            table.append(entry)
        else:
            raise ValueError(f"LZW code {code} beyond the table ({len(table)} entries)")
        out += entry
        prev = entry
        if len(table) == (1 << size) and size < 12:
            size += 1
    if len(out) < n_pixels:
        raise ValueError(f"LZW data ends after {len(out)} of {n_pixels} pixels")
    return bytes(out[:n_pixels])


def decode_gif(path):
    """Every frame as uint8 RGB [H, W, 3], each through its own colour table (local, else global)."""
    b = open(path, "rb").read()
    if b[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError(f"{path}: not a GIF")
    sw, sh, flags = b[6] | b[7] << 8, b[8] | b[9] << 8, b[10]
    pos, gct = 13, None
    if flags & 0x80:
        n = 2 << (flags & 7)
        gct = np.frombuffer(b[pos:pos + 3 * n], np.uint8).reshape(n, 3)
        pos += 3 * n
    frames = []
    while pos < len(b) and b[pos] != 0x3B:
        if b[pos] == 0x21:  # extension: label, then data sub-blocks
            pos += 2
            while b[pos]:
                pos += b[pos] + 1
            pos += 1
            continue
        if b[pos] != 0x2C:
            raise ValueError(f"{path}: unexpected block 0x{b[pos]:02x} at offset {pos}")
        x, y, w, h = (int.from_bytes(b[pos + k:pos + k + 2], "little") for k in (1, 3, 5, 7))
        f = b[pos + 9]
        pos += 10
        if (x, y, w, h) != (0, 0, sw, sh) or f & 0x40:
            raise ValueError(f"{path}: frame {len(frames)} is partial or interlaced; not handled here")
        ct = gct
        if f & 0x80:
            n = 2 << (f & 7)
            ct = np.frombuffer(b[pos:pos + 3 * n], np.uint8).reshape(n, 3)
            pos += 3 * n
        mcs = b[pos]
        pos += 1
        data = bytearray()
        while b[pos]:
            data += b[pos + 1:pos + 1 + b[pos]]
            pos += b[pos] + 1
        pos += 1
        idx = np.frombuffer(_lzw(bytes(data), mcs, w * h), np.uint8).reshape(h, w)
        frames.append(ct[idx])
    return frames


def series(patient, data=None):
    return decode_gif(os.path.join(data_dir(data), SERIES[patient]))


# --- binary morphology on numpy arrays (no SciPy in the test peers) ------------------------------

N8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
N4 = [(1, 0), (-1, 0), (0, 1), (0, -1)]


def _shift(a, dy, dx, fill=False):
    """out[y, x] = a[y + dy, x + dx], `fill` outside the image."""
    out = np.full_like(a, fill)
    h, w = a.shape
    out[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = a[max(dy, 0):h - max(-dy, 0),
                                                                    max(dx, 0):w - max(-dx, 0)]
    return out


def outline(mask):
    """brain-segmentation-pytorch's utils.outline(): mask pixels whose 3x3 window, clipped at the
    edge, holds a non-mask pixel (outside the image does not count)."""
    inner = np.logical_and.reduce([_shift(mask, dy, dx, fill=True) for dy, dx in N8])
    return mask & ~inner


def fill(boundary):
    """Pixels not reachable from the border through non-boundary pixels, 4-connected."""
    free = ~boundary
    reach = np.zeros_like(boundary)
    reach[0, :], reach[-1, :], reach[:, 0], reach[:, -1] = free[0, :], free[-1, :], free[:, 0], free[:, -1]
    while True:
        nxt = reach.copy()
        for dy, dx in N4:
            nxt |= _shift(reach, dy, dx)
        nxt &= free
        if np.array_equal(nxt, reach):
            return ~reach
        reach = nxt


def colour(frame, rgb):
    return np.all(frame == np.array(rgb, np.uint8), axis=-1)


def derive_mask(frame, where="frame"):
    """(mask, how): the filled green outline, checked by redrawing it (see the module's doc)."""
    g, r = colour(frame, GREEN), colour(frame, RED)
    if not g.any():
        return np.zeros(g.shape, bool), "no outline"
    m = fill(g)
    if np.array_equal(outline(m), g):
        return m, "green outline filled; redrawn outline == green"
    near = np.zeros_like(g)
    for dy, dx in N8:
        near |= _shift(g, dy, dx)
    m = fill(g | (r & near))
    o = outline(m)
    if not (o & ~(g | r)).any() and not (g & ~o).any():
        return m, "green + red touching green (gaps under red) filled; redrawn outline within green + red"
    raise ValueError(f"{where}: the green outline does not close into a mask whose outline redraws it "
                     f"({int((o & ~(g | r)).sum())} outline pixels neither green nor red, "
                     f"{int((g & ~o).sum())} green pixels off the outline)")


def flair(frame):
    """The grey image with outline pixels inpainted from their neighbours, 8-bit."""
    hole = colour(frame, GREEN) | colour(frame, RED)
    grey = frame[..., 0].astype(np.float64)
    if not np.array_equal(frame[..., 0][~hole], frame[..., 1][~hole]) or \
            not np.array_equal(frame[..., 1][~hole], frame[..., 2][~hole]):
        raise ValueError("a pixel outside the outlines is not grey")
    rounds = 0
    while hole.any():
        s = np.zeros_like(grey)
        n = np.zeros_like(grey)
        for dy, dx in N8:
            ok = _shift(~hole, dy, dx)
            s += np.where(ok, _shift(grey, dy, dx), 0.0)
            n += ok
        take = hole & (n > 0)
        if not take.any():
            raise ValueError("an outline pixel has no grey neighbour at any distance")
        grey[take] = s[take] / n[take]
        hole &= ~take
        rounds += 1
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8), rounds


def load(patient, data=None):
    """(images uint8 [N, 256, 256] inpainted FLAIR, masks bool [N, 256, 256]) of one patient."""
    imgs, masks = [], []
    for i, fr in enumerate(series(patient, data)):
        m, _ = derive_mask(fr, f"{patient} frame {i}")
        img, _ = flair(fr)
        imgs.append(img)
        masks.append(m)
    return np.stack(imgs), np.stack(masks)


# --- commands -----------------------------------------------------------------------------------

def sheet(tiles, cols):
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    out = np.zeros((rows * (h + 2), cols * (w + 2), 3), np.uint8)
    for k, t in enumerate(tiles):
        y, x = (k // cols) * (h + 2), (k % cols) * (w + 2)
        out[y:y + h, x:x + w] = t
    return out


def draw_back(img, mask):
    """The inpainted image with the derived mask tinted in and its outline redrawn in green: the
    sheet shows whether the mask covers what the radiologist outlined and nothing else."""
    rgb = np.repeat(img[..., None], 3, axis=2).astype(np.float64)
    tint = np.array([60.0, 120.0, 255.0])
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * tint
    rgb[outline(mask)] = GREEN
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def check(args):
    from PIL import Image, ImageSequence

    os.makedirs(args.out, exist_ok=True)
    d = find_data(args.data)
    if d is None:
        print("skipped: " + MISSING)
        sys.exit(77)
    bad = 0
    small = []
    for patient, fname in SERIES.items():
        frames = decode_gif(os.path.join(d, fname))
        pil = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(os.path.join(d, fname)))]
        differ = [i for i, (a, b) in enumerate(zip(frames, pil)) if not np.array_equal(a, b)]
        if len(pil) != len(frames):
            print(f"FAIL {patient}: {len(frames)} frames decoded, Pillow has {len(pil)}")
            bad += 1
        # Where Pillow differs it must be its known failure (raw indices of a 64-entry local table
        # read as grey), not a fault of this decoder.
        for i in differ:
            if pil[i].max() >= 64 or (pil[i][..., 0] != pil[i][..., 1]).any():
                print(f"FAIL {patient} frame {i}: differs from Pillow's decoding, and not as raw palette indices")
                bad += 1
        tiles, lesion, areas, rounds, crops = [], [], [], 0, []
        for i, fr in enumerate(frames):
            try:
                m, how = derive_mask(fr, f"{patient} frame {i}")
            except ValueError as e:
                print(f"FAIL {e}")
                bad += 1
                continue
            img, r = flair(fr)
            rounds = max(rounds, r)
            if m.any():
                lesion.append(i)
                areas.append(int(m.sum()))
                print(f"  {patient} frame {i:2d}: {int(m.sum()):5d} lesion pixels ({how})")
            tiles.append(np.concatenate([fr, draw_back(img, m)], axis=1))
            if m.any():
                crops.append((i, fr, draw_back(img, m), m))
        if len(lesion) != LESION_FRAMES[patient]:
            print(f"FAIL {patient}: {len(lesion)} frames with a lesion, {LESION_FRAMES[patient]} expected")
            bad += 1
        # For the small sheet: the first, middle and last lesion frame, 128x128 around the lesion, at
        # full resolution (a downscaled sheet would blur the one-pixel outlines it is there to show).
        for i, fr, back, m in [crops[0], crops[len(crops) // 2], crops[-1]]:
            ys, xs = np.nonzero(m)
            cy = int(np.clip((ys.min() + ys.max()) // 2 - 64, 0, m.shape[0] - 128))
            cx = int(np.clip((xs.min() + xs.max()) // 2 - 64, 0, m.shape[1] - 128))
            small.append(np.concatenate([fr[cy:cy + 128, cx:cx + 128], back[cy:cy + 128, cx:cx + 128]], axis=1))
        Image.fromarray(sheet(tiles, 3)).save(os.path.join(args.out, f"{patient}.sheet.png"), optimize=True)
        print(f"{patient}: {len(frames)} frames, {len(lesion)} with a lesion (frames {lesion[0]}-{lesion[-1]}), "
              f"inpainting took at most {rounds} rounds; frames where Pillow's RGB differs: {differ or 'none'}")
    Image.fromarray(sheet(small, 3)).save(os.path.join(args.out, "masks-check.png"), optimize=True)
    sys.exit(1 if bad else 0)


def export(args):
    from PIL import Image

    os.makedirs(args.out, exist_ok=True)
    frames = series(args.patient, args.data)
    for i in (int(x) for x in args.frames.split(",")):
        m, _ = derive_mask(frames[i], f"{args.patient} frame {i}")
        img, _ = flair(frames[i])
        stem = os.path.join(args.out, f"{args.patient}-{i:02d}")
        Image.fromarray(img, mode="L").save(stem + ".png", optimize=True)
        Image.fromarray(m.astype(np.uint8) * 255, mode="L").save(stem + ".mask.png", optimize=True)
        print(f"{stem}.png: {int(m.sum())} lesion pixels")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("out")
    c.add_argument("--data")
    e = sub.add_parser("export")
    e.add_argument("out")
    e.add_argument("patient", choices=sorted(SERIES))
    e.add_argument("frames", help="comma-separated frame numbers")
    e.add_argument("--data")
    args = ap.parse_args(argv)
    check(args) if args.cmd == "check" else export(args)


if __name__ == "__main__":
    main(sys.argv[1:])
