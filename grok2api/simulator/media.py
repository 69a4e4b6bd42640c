"""Real, valid media bytes made in pure Python: baseline JPEG, PNG and H.264/MP4.

Nothing here is a placeholder: each function returns a file that an image
viewer or a browser decodes.

* :func:`make_jpeg` writes a baseline (SOF0) JFIF file. Every 8×8 block is one
  flat colour, so only the DC coefficient of each block is coded (AC = EOB);
  the picture is a soft mosaic of a colour pattern chosen by ``seed``.
* :func:`make_png` writes an 8-bit RGB PNG (zlib-compressed IDAT, CRCs), a
  smooth gradient; ``level=0`` keeps it large (stored deflate blocks).
* :func:`make_mp4` writes an ISO-BMFF file (``ftyp``/``moov``/``mdat``) holding
  an H.264 Constrained Baseline stream: one IDR picture made of I_PCM
  macroblocks followed by P pictures whose macroblocks are all skipped — a
  still clip of the requested length that every H.264 decoder plays.
"""

from __future__ import annotations

import colorsys
import hashlib
import struct
import zlib
from functools import lru_cache

# --------------------------------------------------------------------------- colours


def _palette(seed: str) -> tuple[float, float]:
    digest = hashlib.sha256(seed.encode()).digest()
    return digest[0] / 255.0, digest[1] / 255.0


def _rgb_at(x: float, y: float, hue: float, shift: float) -> tuple[int, int, int]:
    """A soft two-tone pattern: hue drifts along a diagonal, a bright disc in the middle."""
    dx, dy = x - 0.5, y - 0.5
    disc = 1.0 if dx * dx + dy * dy < 0.08 else 0.0
    h = (hue + 0.25 * (x + y) * (0.5 + shift)) % 1.0
    s = 0.55 + 0.3 * (1.0 - disc)
    v = 0.55 + 0.4 * disc + 0.05 * y
    r, g, b = colorsys.hsv_to_rgb(h, s, min(v, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


# --------------------------------------------------------------------------- JPEG

# Annex K.3 / K.4 DC Huffman tables (number of codes per length 1..16, then symbols).
_DC_LUMA_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_CHROMA_BITS = (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)
_DC_VALS = tuple(range(12))
# AC table with the single symbol we need: EOB (0x00) coded as one "0" bit.
_AC_BITS = (1,) + (0,) * 15
_AC_VALS = (0x00,)


def _huff_codes(bits: tuple[int, ...], vals: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (symbol -> (code, length)) as in JPEG Annex C."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_LUMA = _huff_codes(_DC_LUMA_BITS, _DC_VALS)
_DC_CHROMA = _huff_codes(_DC_CHROMA_BITS, _DC_VALS)
_EOB = _huff_codes(_AC_BITS, _AC_VALS)[0x00]


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def _dht(table_class: int, table_id: int, bits: tuple[int, ...], vals: tuple[int, ...]) -> bytes:
    return bytes([(table_class << 4) | table_id]) + bytes(bits) + bytes(vals)


def make_jpeg(width: int = 256, height: int = 256, seed: str = "grok") -> bytes:
    """A baseline JPEG of ``width``×``height`` (rounded up to 8) showing a seeded pattern."""
    width = max(8, (width + 7) // 8 * 8)
    height = max(8, (height + 7) // 8 * 8)
    bw, bh = width // 8, height // 8
    hue, shift = _palette(seed)

    out = bytearray()
    acc = 0  # bit accumulator
    nbits = 0

    def put(code: int, length: int) -> None:
        nonlocal acc, nbits
        acc = (acc << length) | code
        nbits += length
        while nbits >= 8:
            nbits -= 8
            byte = (acc >> nbits) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)  # byte stuffing
        acc &= (1 << nbits) - 1

    pred = [0, 0, 0]
    tables = (_DC_LUMA, _DC_CHROMA, _DC_CHROMA)
    eob_code, eob_len = _EOB
    for by in range(bh):
        for bx in range(bw):
            r, g, b = _rgb_at((bx + 0.5) / bw, (by + 0.5) / bh, hue, shift)
            ycc = (
                0.299 * r + 0.587 * g + 0.114 * b,
                128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
            )
            for comp in range(3):
                # Flat block: F(0,0) = 8·(v−128); quantised by 8 → v−128.
                dc = max(-127, min(127, int(round(ycc[comp])) - 128))
                diff = dc - pred[comp]
                pred[comp] = dc
                mag = abs(diff)
                cat = mag.bit_length()
                code, length = tables[comp][cat]
                put(code, length)
                if cat:
                    put(diff if diff > 0 else (diff - 1) & ((1 << cat) - 1), cat)
                put(eob_code, eob_len)
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)  # pad with 1-bits

    qtable = bytes([8] + [16] * 63)  # zig-zag order; only DC (8) matters here
    header = bytearray(b"\xff\xd8")
    header += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    header += _segment(0xDB, b"\x00" + qtable)
    header += _segment(
        0xC0,
        struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]),
    )
    header += _segment(
        0xC4,
        _dht(0, 0, _DC_LUMA_BITS, _DC_VALS)
        + _dht(0, 1, _DC_CHROMA_BITS, _DC_VALS)
        + _dht(1, 0, _AC_BITS, _AC_VALS),
    )
    header += _segment(0xDA, bytes([3, 1, 0x00, 2, 0x10, 3, 0x10, 0, 63, 0]))
    return bytes(header) + bytes(out) + b"\xff\xd9"


# --------------------------------------------------------------------------- PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_png(width: int = 128, height: int = 128, seed: str = "grok", level: int = 6) -> bytes:
    """An 8-bit RGB PNG with a seeded gradient; ``level`` is the zlib level (0 = stored, large)."""
    hue, shift = _palette(seed)
    # Build a small colour ramp once per column/row pair, then rows by slicing.
    rows = bytearray()
    top = _rgb_at(0.0, 0.0, hue, shift)
    right = _rgb_at(1.0, 0.0, hue, shift)
    bottom = _rgb_at(0.0, 1.0, hue, shift)
    for y in range(height):
        fy = y / max(1, height - 1)
        rows.append(0)  # filter type None
        line = bytearray(width * 3)
        for x in range(width):
            fx = x / max(1, width - 1)
            i = x * 3
            for c in range(3):
                v = top[c] + (right[c] - top[c]) * fx + (bottom[c] - top[c]) * fy
                line[i + c] = max(0, min(255, int(v)))
        rows += line
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), level))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- H.264 / MP4


class _Bits:
    """MSB-first bit writer with Exp-Golomb helpers (H.264 §7.2, §9.1)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.acc = 0
        self.n = 0

    def u(self, value: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.buf.append(self.acc)
                self.acc = 0
                self.n = 0

    def ue(self, value: int) -> None:
        v = value + 1
        length = v.bit_length()
        self.u(0, length - 1)
        self.u(v, length)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        if self.n:
            self.u(0, 8 - self.n)

    def raw(self, data: bytes) -> None:
        assert self.n == 0
        self.buf += data

    def trailing(self) -> bytes:
        self.u(1, 1)
        self.align_zero()
        return bytes(self.buf)


def _nal(ref_idc: int, nal_type: int, rbsp: bytes) -> bytes:
    """NAL unit with emulation-prevention bytes inserted."""
    out = bytearray([(ref_idc << 5) | nal_type])
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _h264_stream(width: int, height: int, frames: int, seed: str) -> tuple[bytes, bytes, list[bytes]]:
    mbw, mbh = width // 16, height // 16
    sps = _Bits()
    sps.u(66, 8)  # profile_idc: Baseline
    sps.u(0b11000000, 8)  # constraint_set0/1 → Constrained Baseline
    sps.u(30, 8)  # level 3.0
    sps.ue(0)  # seq_parameter_set_id
    sps.ue(0)  # log2_max_frame_num_minus4 → frame_num is 4 bits
    sps.ue(2)  # pic_order_cnt_type 2 (output order = decode order)
    sps.ue(1)  # max_num_ref_frames
    sps.u(0, 1)  # gaps_in_frame_num_value_allowed_flag
    sps.ue(mbw - 1)
    sps.ue(mbh - 1)
    sps.u(1, 1)  # frame_mbs_only_flag
    sps.u(1, 1)  # direct_8x8_inference_flag
    sps.u(0, 1)  # frame_cropping_flag
    sps.u(0, 1)  # vui_parameters_present_flag
    sps_nal = _nal(3, 7, sps.trailing())

    pps = _Bits()
    pps.ue(0)  # pic_parameter_set_id
    pps.ue(0)  # seq_parameter_set_id
    pps.u(0, 1)  # entropy_coding_mode_flag: CAVLC
    pps.u(0, 1)  # bottom_field_pic_order_in_frame_present_flag
    pps.ue(0)  # num_slice_groups_minus1
    pps.ue(0)  # num_ref_idx_l0_default_active_minus1
    pps.ue(0)  # num_ref_idx_l1_default_active_minus1
    pps.u(0, 1)  # weighted_pred_flag
    pps.u(0, 2)  # weighted_bipred_idc
    pps.se(0)  # pic_init_qp_minus26
    pps.se(0)  # pic_init_qs_minus26
    pps.se(0)  # chroma_qp_index_offset
    pps.u(0, 1)  # deblocking_filter_control_present_flag
    pps.u(0, 1)  # constrained_intra_pred_flag
    pps.u(0, 1)  # redundant_pic_cnt_present_flag
    pps_nal = _nal(3, 8, pps.trailing())

    hue, shift = _palette(seed)
    idr = _Bits()
    idr.ue(0)  # first_mb_in_slice
    idr.ue(7)  # slice_type: I (all slices)
    idr.ue(0)  # pic_parameter_set_id
    idr.u(0, 4)  # frame_num
    idr.ue(0)  # idr_pic_id
    idr.u(0, 1)  # no_output_of_prior_pics_flag
    idr.u(0, 1)  # long_term_reference_flag
    idr.se(0)  # slice_qp_delta
    for my in range(mbh):
        for mx in range(mbw):
            r, g, b = _rgb_at((mx + 0.5) / mbw, (my + 0.5) / mbh, hue, shift)
            y = int(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)
            cb = int(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255)
            cr = int(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255)
            idr.ue(25)  # mb_type I_PCM
            idr.align_zero()  # pcm_alignment_zero_bit
            idr.raw(bytes([max(1, y)]) * 256 + bytes([max(1, cb)]) * 64 + bytes([max(1, cr)]) * 64)
    samples = [_nal(3, 5, idr.trailing())]

    for n in range(1, frames):
        p = _Bits()
        p.ue(0)  # first_mb_in_slice
        p.ue(5)  # slice_type: P (all slices)
        p.ue(0)  # pic_parameter_set_id
        p.u(n % 16, 4)  # frame_num
        p.u(0, 1)  # num_ref_idx_active_override_flag
        p.u(0, 1)  # ref_pic_list_modification_flag_l0
        p.u(0, 1)  # adaptive_ref_pic_marking_mode_flag
        p.se(0)  # slice_qp_delta
        p.ue(mbw * mbh)  # mb_skip_run: every macroblock skipped
        samples.append(_nal(2, 1, p.trailing()))
    return sps_nal, pps_nal, samples


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def make_mp4(width: int = 112, height: int = 64, seconds: int = 6, fps: int = 2, seed: str = "grok") -> bytes:
    """A playable H.264 MP4: ``seconds`` long at ``fps``, ``width``×``height`` (multiples of 16)."""
    width = max(16, width // 16 * 16)
    height = max(16, height // 16 * 16)
    frames = max(1, seconds * fps)
    timescale = 1000
    delta = timescale // fps
    duration = frames * delta
    sps, pps, nals = _h264_stream(width, height, frames, seed)
    samples = [struct.pack(">I", len(n)) + n for n in nals]

    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    avcc = _box(
        b"avcC",
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps)),
        sps,
        b"\x01",
        struct.pack(">H", len(pps)),
        pps,
    )
    avc1 = _box(
        b"avc1",
        b"\x00" * 6 + struct.pack(">H", 1),  # reserved + data_reference_index
        b"\x00" * 16,  # pre_defined / reserved
        struct.pack(">HH", width, height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        b"\x00" * 4,
        struct.pack(">H", 1),  # frame_count
        b"\x00" * 32,  # compressorname
        struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    stsd = _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1)
    stts = _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, delta))
    stss = _full_box(b"stss", 0, 0, struct.pack(">II", 1, 1))
    stsc = _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1))
    stsz = _full_box(b"stsz", 0, 0, struct.pack(">II", 0, frames), b"".join(struct.pack(">I", len(s)) for s in samples))

    def moov_with(offset: int) -> bytes:
        stco = _full_box(b"stco", 0, 0, struct.pack(">II", 1, offset))
        stbl = _box(b"stbl", stsd, stts, stss, stsc, stsz, stco)
        dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
        vmhd = _full_box(b"vmhd", 0, 1, b"\x00" * 8)
        minf = _box(b"minf", vmhd, dinf, stbl)
        hdlr = _full_box(b"hdlr", 0, 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"VideoHandler\x00")
        mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
        mdia = _box(b"mdia", mdhd, hdlr, minf)
        tkhd = _full_box(
            b"tkhd", 0, 3,
            struct.pack(">IIIII", 0, 0, 1, 0, duration),
            b"\x00" * 8, struct.pack(">hhhH", 0, 0, 0, 0), _MATRIX,
            struct.pack(">II", width << 16, height << 16),
        )
        trak = _box(b"trak", tkhd, mdia)
        mvhd = _full_box(
            b"mvhd", 0, 0,
            struct.pack(">IIII", 0, 0, timescale, duration),
            struct.pack(">IH", 0x00010000, 0x0100), b"\x00" * 10, _MATRIX, b"\x00" * 24,
            struct.pack(">I", 2),
        )
        return _box(b"moov", mvhd, trak)

    moov_len = len(moov_with(0))
    mdat_offset = len(ftyp) + moov_len + 8
    return ftyp + moov_with(mdat_offset) + _box(b"mdat", *samples)


# --------------------------------------------------------------------------- cached helpers


@lru_cache(maxsize=256)
def jpeg_for(key: str, width: int = 256, height: int = 256) -> bytes:
    return make_jpeg(width, height, seed=key)


@lru_cache(maxsize=64)
def png_for(key: str, width: int = 128, height: int = 128, level: int = 6) -> bytes:
    return make_png(width, height, seed=key, level=level)


@lru_cache(maxsize=32)
def mp4_for(key: str, width: int = 112, height: int = 64, seconds: int = 6) -> bytes:
    return make_mp4(width, height, seconds=seconds, seed=key)


def sniff_mime(data: bytes) -> str | None:
    """The media type of ``data`` from its magic bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None
