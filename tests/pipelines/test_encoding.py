"""Encoding guesses and decoding (no database): what may be guessed, what is refused, offsets that are exact."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from cim_service.core.catalog import FieldSpec
from pipelines.encoding import DecodedStream, Encoding, EncodingError, decode_marked, detect_text_encoding, guess
from pipelines.readers import ReadError, column_mapping
from pipelines.validate import Faults, coerce_field


def _lines(text: str, encoding: str) -> list[bytes]:
    return text.encode(encoding).split(b"\n")


def test_guesses_are_utf8_or_gb18030_only_when_the_text_fits():
    assert guess(_lines("name\n丰巢\n速递易\n", "utf-8")) == "utf-8"
    assert guess(_lines("name\n丰巢\n速递易\n", "gbk")) == "gb18030"
    assert guess(_lines("name,lon\nplain ascii,121.4\n", "ascii")) == "utf-8"
    # GBK bytes of 莘庄 happen to be valid UTF-8 (U+0777 U+05EF): implausible letters, so GB18030
    assert "莘庄".encode("gbk").decode("utf-8") == "\u0777\u05ef"
    assert guess(_lines("name\n莘庄\n", "gbk")) == "gb18030"
    assert guess(_lines("name\n·安\n°\n", "gbk")) == "gb18030"  # GBK's A1A4 is U+00B7, not GB2312's U+30FB
    # UTF-8 read as GB18030 decodes too (丰巢 -> 涓板发), but UTF-8 is tried first and fits
    assert "丰巢".encode().decode("gb18030") == "涓板发"
    assert guess(_lines("name\n丰巢\n", "utf-8")) == "utf-8"
    with pytest.raises(EncodingError, match="neither UTF-8 nor GB18030"):
        guess(_lines("name\nCafé Müller\nSão Paulo\n", "latin-1"))


def test_a_damaged_utf8_file_is_utf8_only_when_the_damage_is_rare():
    good = "\n".join(f"L{i},丰巢,速递易" for i in range(40)).encode()
    damaged = good.replace(b"L7,", b"L7\xff,")
    assert guess(damaged.split(b"\n")) == "utf-8"  # 1 of 40 lines: its row is rejected
    worse = good.replace("丰巢".encode(), b"\xff", 10)
    with pytest.raises(EncodingError, match="looks like UTF-8, but 10 of its 40 lines"):
        guess(worse.split(b"\n"))


def test_given_and_bom_encodings_are_taken_as_said(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("\ufeffname,lon\n丰巢,1\n".encode("utf-16-le"))
    assert detect_text_encoding(path) == Encoding("utf-16", "utf-16-le", bom=2)
    path.write_bytes("name,lon\n丰巢,1\n".encode("gbk"))
    assert detect_text_encoding(path, "GBK") == Encoding("gbk", "gbk")
    assert detect_text_encoding(path, "cp936").codec == "gbk"
    with pytest.raises(EncodingError, match="unknown encoding 'klingon'"):
        detect_text_encoding(path, "klingon")


def test_the_guess_looks_past_an_ascii_start(tmp_path):
    path = tmp_path / "late.csv"
    path.write_bytes(("name,lon\n" + "plain,1\n" * 200_000).encode() + "丰巢,1\n".encode("gbk") * 50)
    assert path.stat().st_size > 1 << 20
    assert detect_text_encoding(path).codec == "gb18030"


@pytest.mark.parametrize("codec", ["utf-8", "gb18030", "utf-16-le"])
@pytest.mark.parametrize("block", [1, 2, 3, 5, 64, 1 << 20])
def test_decoding_in_blocks_gives_the_same_text_and_offsets(tmp_path, codec, block):
    text = "a,丰巢\nb,速\x00递易\n" * 3
    data = bytearray(text.encode(codec))
    wide = codec == "utf-16-le"
    data[6:6] = b"\x00\xdc" if wide else b"\xff"  # a lone low surrogate / a byte no text holds
    data[-4:-4] = b"\x00\xdc" if wide else b"\x81"
    path = tmp_path / "t.csv"
    path.write_bytes(bytes(data))
    stream = DecodedStream(path, Encoding(codec, codec), block_size=block)
    with io.BufferedReader(stream) as fh:
        out = fh.read()
    whole, spans = decode_marked(bytes(data), codec)
    assert out == whole.encode("utf-8")
    assert [s.offset for s in stream.spots if not s.nul] == [s for s, _ in spans]
    nuls = [s.offset for s in stream.spots if s.nul]
    assert len(nuls) == 3 and all(bytes(data)[o:o + (2 if wide else 1)] == b"\x00" * (2 if wide else 1)
                                  for o in nuls)
    assert out.count(b"\x00") == len(stream.spots)


def test_truncated_dbf_names_match_one_field_or_are_refused(catalog):
    houses = catalog.get("houses")
    mapping = column_mapping(houses, ["house_id", "address_co", "floor_area", "floors"], truncated_names=True)
    assert mapping["address_code"] == ["address_co"] and mapping["floor_area_m2"] == ["floor_area"]
    assert "address_code" not in column_mapping(houses, ["house_id", "address_co"])  # only for a .dbf
    twins = houses.model_copy(update={"fields": [*houses.fields,
                                                 FieldSpec(name="description_zh", title_zh="说明", title_en="Note"),
                                                 FieldSpec(name="description_en", title_zh="说明", title_en="Note")]})
    with pytest.raises(ReadError, match="'descriptio' is a field name cut to 10 characters .* could be any of "
                                        "description_zh, description_en"):
        column_mapping(twins, ["house_id", "descriptio"], truncated_names=True)


def _coerce(values, **kw):
    faults = Faults()
    series = pd.Series(values, index=range(1, len(values) + 1), dtype=object)
    out = coerce_field(FieldSpec(name="f", title_zh="字段", title_en="Field", **kw), series, faults)
    return out, {r.row_number: r.reason for r in faults.rejects.values()}


def test_bigint_is_exact_and_bounded():
    out, bad = _coerce(["9007199254740993", "9223372036854775807", "9223372036854775808", "-0", "12.0"],
                       type="bigint")
    assert out[1] == 9007199254740993 and out[2] == 2**63 - 1 and out[4] == 0 and out[5] == 12
    assert bad == {3: "'9223372036854775808' is out of range for a bigint field "
                      "(-9223372036854775808 to 9223372036854775807)"}


def test_json_fields_refuse_what_jsonb_cannot_store():
    out, bad = _coerce(['{"a": 1}', '{"a": NaN}', '{"a": "x\\u0000y"}', '["\\ud800"]', "[" * 5000 + "]" * 5000],
                       type="json")
    assert out[1] == {"a": 1} and set(bad) == {2, 3, 4, 5}
