"""Independent structural decoders for the media the simulator serves (PNG, baseline JPEG, MP4)."""

from __future__ import annotations

import struct
import zlib


def check_png(data: bytes) -> tuple[int, int]:
    """Verify signature, every chunk CRC and that IDAT inflates to the exact scanline size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, kinds = 8, b"", 0, 0, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype == 2
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + 3 * width)
    assert all(raw[y * (1 + 3 * width)] <= 4 for y in range(height))  # valid filter bytes
    return width, height


def check_jpeg(data: bytes) -> tuple[int, int]:
    """Parse the markers of a baseline JPEG and entropy-decode every block's coefficients."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    pos = 2
    tables: dict[tuple[int, int], dict[tuple[int, int], int]] = {}
    comps: list[tuple[int, int, int]] = []
    width = height = 0
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        seg = data[pos + 4:pos + 2 + length]
        pos += 2 + length
        if marker == 0xC0:
            _, height, width, n = struct.unpack(">BHHB", seg[:6])
            comp_ids = [seg[6 + 3 * i] for i in range(n)]
            assert all(seg[7 + 3 * i] == 0x11 for i in range(n))
        elif marker == 0xC4:
            p = 0
            while p < len(seg):
                tc_th = seg[p]
                bits = seg[p + 1:p + 17]
                vals = seg[p + 17:p + 17 + sum(bits)]
                code, k, table = 0, 0, {}
                for length_ in range(1, 17):
                    for _ in range(bits[length_ - 1]):
                        table[(length_, code)] = vals[k]
                        code += 1
                        k += 1
                    code <<= 1
                tables[(tc_th >> 4, tc_th & 15)] = table
                p += 17 + sum(bits)
        elif marker == 0xDA:
            n = seg[0]
            comps = [(seg[1 + 2 * i], seg[2 + 2 * i] >> 4, seg[2 + 2 * i] & 15) for i in range(n)]
            assert [c[0] for c in comps] == comp_ids
            break
    # un-stuff the entropy-coded segment
    end = len(data) - 2
    ecs = data[pos:end].replace(b"\xff\x00", b"\xff")
    bitpos = 0

    def bit() -> int:
        nonlocal bitpos
        b = (ecs[bitpos >> 3] >> (7 - (bitpos & 7))) & 1
        bitpos += 1
        return b

    def decode(table: dict[tuple[int, int], int]) -> int:
        code = 0
        for length_ in range(1, 17):
            code = (code << 1) | bit()
            if (length_, code) in table:
                return table[(length_, code)]
        raise AssertionError("bad Huffman code")

    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    for _ in range(blocks):
        for _, td, ta in comps:
            cat = decode(tables[(0, td)])
            for _ in range(cat):
                bit()
            k = 1
            while k < 64:
                sym = decode(tables[(1, ta)])
                if sym == 0:
                    break
                run, size = sym >> 4, sym & 15
                for _ in range(size):
                    bit()
                k += run + 1
    assert len(ecs) * 8 - bitpos < 8  # only padding is left
    return width, height


def boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, tuple[int, int]]:
    end = len(data) if end is None else end
    out, pos = {}, start
    while pos < end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        assert size >= 8 and pos + size <= end
        out[kind] = (pos + 8, pos + size)
        pos += size
    assert pos == end
    return out


def check_mp4(data: bytes) -> dict[str, int]:
    top = boxes(data)
    assert list(top)[0] == b"ftyp" and {b"moov", b"mdat"} <= set(top)

    def inner(parent: dict, *path: bytes, skip: int = 0) -> dict:
        cur = parent
        for kind in path:
            s, e = cur[kind]
            cur = boxes(data, s + skip if kind in (b"stsd",) else s, e)
        return cur

    trak = inner(top, b"moov", b"trak")
    stbl = inner(trak, b"mdia", b"minf", b"stbl")
    s, e = stbl[b"stsd"]
    sample_entries = boxes(data, s + 8, e)
    assert b"avc1" in sample_entries
    a_s, a_e = sample_entries[b"avc1"]
    avc = boxes(data, a_s + 78, a_e)
    c_s, _ = avc[b"avcC"]
    assert data[c_s] == 1  # configurationVersion
    sps_len = struct.unpack(">H", data[c_s + 6:c_s + 8])[0]
    assert data[c_s + 8] & 0x1F == 7  # SPS NAL
    assert data[c_s + 9 + sps_len - 1 + 3] & 0x1F == 8  # PPS NAL after count + length
    s, _ = stbl[b"stsz"]
    _, count = struct.unpack(">II", data[s + 4:s + 12])
    sizes = struct.unpack(f">{count}I", data[s + 12:s + 12 + 4 * count])
    s, _ = stbl[b"stts"]
    n_entries, n_samples, delta = struct.unpack(">III", data[s + 4:s + 16])
    assert n_entries == 1 and n_samples == count
    s, _ = stbl[b"stco"]
    (offset,) = struct.unpack(">I", data[s + 8:s + 12])
    m_s, m_e = top[b"mdat"]
    assert offset == m_s and sum(sizes) == m_e - m_s
    pos = offset
    for i, size in enumerate(sizes):
        (nal_len,) = struct.unpack(">I", data[pos:pos + 4])
        assert nal_len == size - 4
        assert data[pos + 4] & 0x1F == (5 if i == 0 else 1)
        pos += size
    mdhd_s, _ = inner(trak, b"mdia")[b"mdhd"]
    _, _, _, timescale, duration = struct.unpack(">IIIII", data[mdhd_s:mdhd_s + 20])
    return {"samples": count, "duration_ms": duration * 1000 // timescale}
