"""Text encodings of source files: what may be guessed, and decoding that never invents text.

The rule: a guessed encoding is only accepted when the file's bytes decode strictly (so the text re-encodes to
the very same bytes) *and* the decoded text is plausible for a Chinese geodata file. Only two encodings are
ever guessed, because only they can be told apart from their bytes with confidence:

- **UTF-8**, when the non-ASCII text decodes and is not made of the odd letters (IPA, Greek, Hebrew, Arabic,
  ...) that GBK bytes turn into when they happen to be valid UTF-8; a UTF-8 file damaged in a few lines
  (fewer than :data:`MAX_BAD_SHARE` of its non-ASCII lines) is still UTF-8, and the damaged rows are rejected;
- **GB18030** (a superset of GBK and GB2312), when the text is not UTF-8, decodes, and at least
  :data:`MIN_GB2312_SHARE` of its characters are common (GB2312) ones, which text of other encodings read as
  GB18030 is not.

A byte-order mark (UTF-8, UTF-16, UTF-32) or an encoding the user names is taken as said. Anything else
(single-byte code pages, Big5, Shift-JIS, random bytes) is refused with a request for ``--encoding``:
a single-byte code page decodes any bytes, so a guess of one can never be checked.

:class:`DecodedStream` feeds a file to the CSV parser as UTF-8. Bytes that do not decode, and NUL bytes, each
become one NUL character, and each is recorded as a :class:`Spot` with its byte offset in the file, so the
reader can reject exactly the rows that hold them and name the offset.
"""

from __future__ import annotations

import codecs
import functools
import io
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

#: encodings that may be guessed, in order of preference
GUESSED = ("utf-8", "gb18030")
#: a guess is refused when more than this share of the non-ASCII lines do not decode
MAX_BAD_SHARE = 0.1
#: GB18030 is only guessed when at least this share of its non-ASCII characters are GB2312 ones
MIN_GB2312_SHARE = 0.8
#: bytes read to decide the encoding (twice: from the start, and from the first non-ASCII block)
SAMPLE_BYTES = 1 << 20
#: more NUL bytes than this share of the sample make a binary file
MAX_NUL_SHARE = 0.1
MARK = "\x00"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32"), (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32"),
    (codecs.BOM_UTF8, "utf-8", "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16"),
)
#: the letters GBK bytes become when read as UTF-8 two-byte sequences (U+0250 to U+07FF)
_ODD_LETTERS = re.compile("[\u0250-\u07ff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")
#: CJK characters and punctuation (what valid UTF-8 in a Chinese file mostly is, and GBK bytes rarely form)
_CJK = re.compile("[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")
#: at most this many undecodable bytes at the end of a block are kept for the next block
_MAX_TAIL = 8
_DISPLAY = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030", "gbk": "GBK", "utf-16": "UTF-16",
            "utf-32": "UTF-32", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16", "gb2312": "GB2312"}


class EncodingError(ValueError):
    """The text encoding of a file cannot be determined or does not hold (the message says why)."""


@dataclass(frozen=True)
class Encoding:
    """How a file's text is decoded.

    ``name`` is what is recorded with the batch (``utf-8-sig`` for UTF-8 with a byte-order mark);
    ``codec`` decodes the bytes after the byte-order mark of ``bom`` bytes; ``guessed`` tells whether the
    encoding was inferred from the bytes (not given by the user or a byte-order mark).
    """

    name: str
    codec: str
    bom: int = 0
    guessed: bool = False

    @property
    def display(self) -> str:
        """Return the encoding's usual name (UTF-8, GB18030, ...)."""
        return display_name(self.codec)


@dataclass(frozen=True)
class Spot:
    """One NUL character (``nul``) or undecodable byte sequence, at ``offset`` bytes from the start of the file."""

    offset: int
    raw: bytes
    encoding: str
    nul: bool = False

    def describe(self) -> str:
        """Return the reason a row holding this spot is rejected."""
        if self.nul:
            return f"a NUL byte at byte offset {self.offset} (binary data in a text file)"
        return f"not valid {display_name(self.encoding)} text at byte offset {self.offset} (bytes {self.raw.hex(' ')})"


def display_name(codec: str) -> str:
    """Return the usual name of a Python codec name (``gb18030`` -> ``GB18030``)."""
    return _DISPLAY.get(codec, codec)


def canonical_codec(name: str) -> str:
    """Return the Python codec name of an encoding name; raise :class:`EncodingError` for unknown ones."""
    try:
        return codecs.lookup(name.strip()).name
    except (LookupError, ValueError):
        raise EncodingError(f"unknown encoding {name!r}") from None


def given_encoding(name: str) -> Encoding:
    """Return the encoding a user named (``utf-8`` also strips a leading byte-order mark)."""
    codec = canonical_codec(name)
    if codec in ("utf-8", "utf-8-sig"):
        return Encoding("utf-8-sig", "utf-8")
    return Encoding(codec, codec)


def bom_encoding(head: bytes) -> Encoding | None:
    """Return the encoding announced by a byte-order mark at the start of ``head``, if any."""
    for bom, codec, name in _BOMS:
        if head.startswith(bom):
            return Encoding(name, codec, bom=len(bom))
    return None


# -- guessing ----------------------------------------------------------------------------------------------


def guess(units: list[bytes], *, what: str = "file") -> str:
    """Return ``utf-8`` or ``gb18030`` for text ``units`` (lines or cells); raise :class:`EncodingError`.

    Only units with non-ASCII bytes are evidence; a file without any is UTF-8.
    """
    evidence = [u for u in units if not u.isascii()]
    if not evidence:
        return "utf-8"
    bad_utf8 = _undecodable(evidence, "utf-8")
    text = b"\n".join(evidence).decode("utf-8", errors="replace")
    letters = len(_NON_ASCII.findall(text)) - text.count("\ufffd")
    odd = len(_ODD_LETTERS.findall(text))
    if odd * 10 <= letters:  # the text read as UTF-8 looks like text
        if not bad_utf8:
            return "utf-8"
        damaged = text.count("\ufffd")
        if len(_CJK.findall(text)) >= damaged:  # more valid CJK characters than damaged spots
            if len(bad_utf8) <= MAX_BAD_SHARE * len(evidence):
                return "utf-8"
            raise EncodingError(
                f"{what} looks like UTF-8, but {len(bad_utf8)} of its {len(evidence)} lines with non-ASCII text "
                f"do not decode (first at line {bad_utf8[0]}); name the encoding with --encoding"
            )
    bad_gb = _undecodable(evidence, "gb18030")
    if len(bad_gb) <= MAX_BAD_SHARE * len(evidence) and _gb2312_share(evidence) >= MIN_GB2312_SHARE:
        return "gb18030"
    raise EncodingError(
        f"cannot tell the text encoding of the {what}: it is neither UTF-8 nor GB18030/GBK "
        f"({len(bad_utf8)} of {len(evidence)} lines with non-ASCII text are not UTF-8); name it with --encoding"
    )


def _undecodable(units: list[bytes], codec: str) -> list[int]:
    """Return the 1-based positions of the units that do not decode strictly as ``codec``."""
    bad = []
    for i, unit in enumerate(units, start=1):
        try:
            unit.decode(codec)
        except UnicodeDecodeError:
            bad.append(i)
    return bad


def _gb2312_share(units: list[bytes]) -> float:
    """Return the share of the non-ASCII characters of ``units`` (read as GB18030) from the GB2312 area."""
    text = b"\n".join(units).decode("gb18030", errors="ignore")
    wide = "".join(_NON_ASCII.findall(text))
    if not wide:
        return 0.0
    return 1 - len(wide.translate(_gb2312_area())) / len(wide)


@functools.cache
def _gb2312_area() -> dict[int, None]:
    """Return a translation table deleting the characters of the GB2312 byte area (A1A1-F7FE, no private use).

    That area holds the common hanzi and symbols (as GBK maps them, e.g. A1A4 is U+00B7 '·'); text of other
    encodings read as GB18030 falls outside it about half of the time.
    """
    table: dict[int, None] = {}
    for lead in range(0xA1, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                char = bytes((lead, trail)).decode("gb18030")
            except UnicodeDecodeError:
                continue
            if not "\ue000" <= char <= "\uf8ff":
                table[ord(char)] = None
    return table


def detect_text_encoding(path: Path, given: str | None = None) -> Encoding:
    """Return the encoding of a text file: the given one, its byte-order mark's, or a checked guess.

    Raises :class:`EncodingError` for an unknown or unfitting encoding name, binary data (NUL bytes in the
    first line or in more than :data:`MAX_NUL_SHARE` of the sample) and text whose encoding cannot be guessed.
    """
    sample, more = _evidence_sample(path)
    bom = bom_encoding(sample)
    if given:
        chosen = given_encoding(given)
        if bom is not None and bom.codec != chosen.codec:
            raise EncodingError(f"the file starts with a {bom.display} byte-order mark, not {chosen.display} text")
        if bom is not None:
            chosen = bom
    elif bom is not None:
        chosen = bom
    else:
        chosen = None
    body = sample[chosen.bom if chosen else 0:]
    if chosen is None or chosen.codec not in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        _refuse_binary(body)
    if chosen is not None:
        _check_header(body, chosen.codec)
        return chosen
    lines = (sample + more).split(b"\n")
    return Encoding(name := guess(lines[:-1] if len(lines) > 1 else lines), name, guessed=True)


def _evidence_sample(path: Path) -> tuple[bytes, bytes]:
    """Return the file's first :data:`SAMPLE_BYTES`, and as many from its first non-ASCII block on."""
    with open(path, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
        if not head.isascii():
            return head, b""
        while block := fh.read(SAMPLE_BYTES):
            if not block.isascii():
                start = block.find(b"\n") + 1
                return head, block[start:] + fh.read(start)
    return head, b""


def _refuse_binary(sample: bytes) -> None:
    first_line = sample.split(b"\n", 1)[0]
    nul = sample.count(b"\x00")
    if b"\x00" in first_line or nul > MAX_NUL_SHARE * len(sample):
        hint = " (UTF-16 text without a byte-order mark? name it with --encoding utf-16-le)" \
            if nul * 3 > len(sample) else ""
        raise EncodingError(f"contains binary data (NUL bytes), not a text CSV{hint}")


def _check_header(sample: bytes, codec: str) -> None:
    """Refuse a file whose first line does not decode as ``codec`` (its column names would be garbled)."""
    first_line = sample.split(b"\n", 1)[0]
    try:
        codecs.decode(first_line, codec)
    except UnicodeDecodeError as exc:
        raise EncodingError(
            f"the file is not valid {codec} text (its header, at byte offset {exc.start})"
        ) from None


# -- decoding ----------------------------------------------------------------------------------------------


@dataclass
class DecodedStream(io.RawIOBase):
    """A text file read as UTF-8 bytes, with each NUL byte and undecodable sequence turned into one NUL.

    ``spots`` lists them in file order, with their byte offsets.
    """

    path: Path
    encoding: Encoding
    block_size: int = SAMPLE_BYTES
    spots: list[Spot] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self._fh = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._fh.seek(self.encoding.bom)
        self._offset = self.encoding.bom  # file offset of self._pending[0]
        self._pending = b""
        self._out = memoryview(b"")
        self._eof = False
        self._utf8 = self.encoding.codec == "utf-8"

    def readable(self) -> bool:
        """Tell that the stream can be read."""
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - the io protocol's writable buffer
        """Fill ``buffer`` with the next UTF-8 bytes; return how many (0 at the end)."""
        while not len(self._out) and not self._eof:
            self._fill()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        """Close the underlying file."""
        self._fh.close()
        super().close()

    def _fill(self) -> None:
        block = self._fh.read(self.block_size)
        self._eof = not block
        data = self._pending + block
        base, self._pending = self._offset, b""
        if self._utf8 and data.isascii() and b"\x00" not in data:
            self._out, self._offset = memoryview(data), base + len(data)  # the common case: nothing to do
            return
        text, errors = decode_marked(data, self.encoding.codec)
        if errors and not self._eof and errors[-1][1] >= len(data) and len(data) - errors[-1][0] <= _MAX_TAIL:
            start = errors.pop()[0]  # possibly a character cut by the block boundary: decode it with the next block
            self._pending, data, text = data[start:], data[:start], text[:-1]
        self._offset = base + len(data)
        spots = [Spot(base + s, data[s:e], self.encoding.codec) for s, e in errors]
        if "\x00" in text and len(errors) < text.count("\x00"):
            spots += [Spot(base + p, b"\x00", self.encoding.codec, nul=True) for p in self._nul_offsets(data, errors)]
            spots.sort(key=lambda s: s.offset)
        self.spots.extend(spots)
        self._out = memoryview(data if self._utf8 and not errors else text.encode("utf-8"))

    def _nul_offsets(self, data: bytes, errors: list[tuple[int, int]]) -> list[int]:
        """Return the offsets in ``data`` of its NUL characters (outside the undecodable spans)."""
        found: list[int] = []
        edges = [0] + [x for span in errors for x in span] + [len(data)]
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            if self.encoding.codec.startswith(("utf-16", "utf-32")):
                segment = codecs.decode(data[start:end], self.encoding.codec)
                found += [start + len(segment[:i].encode(self.encoding.codec))
                          for i, c in enumerate(segment) if c == "\x00"]
                continue
            at = data.find(b"\x00", start, end)
            while at >= 0:
                found.append(at)
                at = data.find(b"\x00", at + 1, end)
        return found


def decode_marked(data: bytes, codec: str) -> tuple[str, list[tuple[int, int]]]:
    """Decode ``data``, each undecodable sequence becoming one NUL; return the text and the sequences' spans."""
    spans: list[tuple[int, int]] = []
    _RECORDER.spans = spans
    try:
        return codecs.decode(data, codec, "cim-mark"), spans
    finally:
        _RECORDER.spans = None


def _mark(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError) or getattr(_RECORDER, "spans", None) is None:
        raise exc
    _RECORDER.spans.append((exc.start, exc.end))
    return MARK, exc.end


_RECORDER = threading.local()
codecs.register_error("cim-mark", _mark)


class SpotCursor:
    """Hands out the spots of a :class:`DecodedStream` in order, as the rows holding their marks are read."""

    def __init__(self, spots: list[Spot]) -> None:
        self._spots = spots
        self._next = 0

    @property
    def pending(self) -> bool:
        """Tell whether spots were recorded that no row has claimed yet."""
        return self._next < len(self._spots)

    def take(self, marks: int) -> Spot | None:
        """Claim the next ``marks`` spots (one row's NUL marks); return the first of them."""
        first = self._spots[self._next] if self._next < len(self._spots) else None
        self._next += marks
        return first
