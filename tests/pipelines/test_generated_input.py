"""Generated hostile input (hypothesis): readers and whole ingests end in a clean load, rejects or one error line.

- random bytes as CSV, GeoJSON, .shp, .dbf and GeoPackage: the readers raise :class:`ReadError` or read;
- random bytes decoded in random blocks: the same text and byte offsets as one whole decode;
- structured CSV (valid skeletons, corrupted cells, odd encodings, inserted NUL and non-ASCII bytes, huge
  numbers) and GeoJSON (wrong members, NaN, Z, non-features, cut files) ingested into ``cameras``: either an
  :class:`IngestError` whose one printable line names the file and the database is as it was, or a
  committed batch in which every row is loaded or rejected (none lost), every row the generator did not
  damage that is valid is loaded, and every loaded text is exactly what the generator wrote.

The examples are derandomized (the same in every run); ``CIM_HYPOTHESIS_EXAMPLES=N`` runs N of each instead
of the default counts (e.g. 5000 for a long run). Own throwaway database.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import readers
from pipelines.encoding import DecodedStream, Encoding, decode_marked
from pipelines.ingest import IngestError, ingest_file

DEVICE = 31011200001320000000
CAMERA_TYPES = ["bullet", "dome", "ptz", "checkpoint", "panoramic"]
#: what a text value may not hold (control characters but TAB/LF/CR, DEL, C1, bidi controls, surrogates)
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _examples(default: int) -> int:
    return int(os.environ.get("CIM_HYPOTHESIS_EXAMPLES", default))


def _settings(default: int):
    return settings(max_examples=_examples(default), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="module")
def shapefile(work_dir):
    """A valid three-point shapefile whose .dbf the tests replace."""
    frame = gpd.GeoDataFrame({"locker_id": ["L1", "L2", "L3"], "operator": ["丰巢", "速递易", "x"]},
                             geometry=shapely.points([121.40, 121.41, 121.42], [31.10, 31.11, 31.12]), crs="EPSG:4326")
    path = work_dir / "base.shp"
    pyogrio.write_dataframe(frame, path)
    return path


def _fresh_dir(work_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=work_dir))


# -- readers on random bytes -------------------------------------------------------------------------------


@_settings(300)
@given(data=st.binary(max_size=3000), kind=st.sampled_from(["csv", "geojson", "shp", "dbf", "gpkg"]))
def test_readers_on_random_bytes(data, kind, work_dir, shapefile):
    folder = _fresh_dir(work_dir)
    try:
        _read_everything(folder, data, kind, shapefile)
    finally:
        shutil.rmtree(folder)


def _read_everything(folder: Path, data: bytes, kind: str, shapefile: Path) -> None:
    """Read ``data`` as a file of ``kind``; only :class:`ReadError` may come out."""
    if kind == "dbf":  # a valid .shp and .shx with this .dbf; half the time a real .dbf header in front
        for suffix in (".shp", ".shx"):
            shutil.copy(shapefile.with_suffix(suffix), folder / f"t{suffix}")
        header = shapefile.with_suffix(".dbf").read_bytes()
        (folder / "t.dbf").write_bytes(header[: len(header) // 2] + data if len(data) % 2 else data)
        path = folder / "t.shp"
    else:
        path = folder / f"t.{kind}"
        path.write_bytes(data)
    try:
        fmt = readers.detect_format(path)
        if fmt == "csv":
            reader = readers.CsvReader(path, readers.csv_encoding(path), chunk_rows=7)
            for chunk in reader.chunks():
                assert all(chunk.index[0] <= row <= chunk.index[-1] for row, _, _ in reader.damaged(chunk))
        else:
            source = readers.read_vector(path, fmt)
            assert source.frame.geometry.name == readers.GEOMETRY
            assert all(isinstance(row, int) and row >= 1 for row in source.faults)
    except readers.ReadError as exc:
        assert str(exc).strip()


@_settings(300)
@given(data=st.binary(max_size=400), codec=st.sampled_from(["utf-8", "gb18030", "gbk", "utf-16-le"]),
       block=st.integers(min_value=1, max_value=64))
def test_decoding_in_random_blocks_matches_one_decode(data, codec, block, work_dir):
    path = work_dir / f"blocks-{codec}.bin"
    path.write_bytes(data)
    stream = DecodedStream(path, Encoding(codec, codec), block_size=block)
    with io.BufferedReader(stream) as fh:
        out = fh.read()
    whole, spans = decode_marked(data, codec)
    assert out == whole.encode("utf-8")
    assert [s.offset for s in stream.spots if not s.nul] == [start for start, _ in spans]
    assert out.count(b"\x00") == len(stream.spots)


# -- whole ingests: CSV ------------------------------------------------------------------------------------

OWNER_CHARS = st.sampled_from(["\x00", "\x1b", "\x07", "\x9b", "\u202e", "\ufffd", "\U0001f600", "丰", "a", " "])
CLEAN_CHARS = st.sampled_from(list("丰巢速递易闵行区公安分局莘庄七宝abcXYZ019 ,\"'=+-@|;\t\r\n·°é"))
#: draws True six times in seven: most cells of a generated file are valid, so rejects and loads both happen
MOSTLY = st.sampled_from([True] * 6 + [False])
#: refusals for the file's text (encoding, binary data): the generator's undamaged files must never get one
TEXT_REFUSAL = re.compile("encoding|looks like UTF-8|binary data|not valid|not readable")
HUGE = ["1e400", "-1e400", "99999999999999999999999999", "NaN", "inf", "0x1F", "1,5", "", "  ", "abc"]


@dataclass
class Row:
    """One generated CSV row and what the generator did to it."""

    number: int
    cells: dict[str, str]
    damaged: bool = False
    valid: bool = True


@st.composite
def csv_files(draw):
    """A cameras CSV: (file bytes, the rows as generated and whether their bytes were damaged, whether the file
    as a whole was broken: header dropped, cut anywhere, or not text at all)."""
    n = draw(st.integers(min_value=1, max_value=12))
    rows = []
    for i in range(1, n + 1):
        owner = draw(st.text(CLEAN_CHARS if draw(MOSTLY) else OWNER_CHARS, max_size=12))
        kind = draw(st.sampled_from(CAMERA_TYPES + ["PTZ"]) if draw(MOSTLY) else st.sampled_from(["tripod", "", "x"]))
        lon = draw(st.sampled_from(["121.40", "121.45", " 121.5 "]) if draw(MOSTLY) else st.sampled_from(HUGE))
        lat = draw(st.sampled_from(["31.10", "31.15"]) if draw(MOSTLY) else st.sampled_from(HUGE))
        device = str(DEVICE + draw(st.integers(min_value=1, max_value=n + 2)))  # duplicates happen
        cells = {"device_id": device, "camera_type": kind, "owner": owner, "lon": lon, "lat": lat}
        valid = (kind.lower() in CAMERA_TYPES and lon.strip() in ("121.40", "121.45", "121.5")
                 and lat in ("31.10", "31.15") and not FORBIDDEN.search(owner))
        rows.append(Row(i, cells, valid=valid))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gbk", "utf-16"]))
    terminator, quoting = draw(st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator, quoting=quoting)
    writer.writerow(["device_id", "camera_type", "owner", "lon", "lat"])
    header = out.getvalue()
    records = []
    for row in rows:
        out = io.StringIO()
        csv.writer(out, lineterminator=terminator, quoting=quoting).writerow(list(row.cells.values()))
        records.append(out.getvalue())
    try:
        encoded = [x.encode(encoding) for x in [header, *records]]
    except UnicodeEncodeError:
        encoding = "utf-8"
        encoded = [x.encode("utf-8", errors="surrogatepass") for x in [header, *records]]
    if encoding in ("utf-16", "utf-8-sig"):  # one BOM at the start only
        bom = encoded[0][:3 if encoding == "utf-8-sig" else 2]
        encoded = [encoded[0]] + [e[len(bom):] for e in encoded[1:]]
    elif not draw(MOSTLY):  # damage some rows: insert a NUL or a byte of 0x80-0xff inside them
            for _ in range(draw(st.integers(min_value=1, max_value=3))):
                i = draw(st.integers(min_value=1, max_value=n))
                record = encoded[i]
                at = draw(st.integers(min_value=0, max_value=max(len(record) - 2, 0)))
                byte = draw(st.sampled_from([0x00, 0x80, 0xA1, 0xC3, 0xE4, 0xFF]))
                encoded[i] = record[:at] + bytes([byte]) + record[at:]
                rows[i - 1].damaged = True
    data = b"".join(encoded)
    hazard = "none" if draw(MOSTLY) else draw(st.sampled_from(["no header", "cut", "gzip"]))
    if hazard != "none":  # the file as a whole is broken: a refusal or rejects, whatever the rows were
        for row in rows:
            row.damaged = True
        cut = draw(st.integers(min_value=0, max_value=len(data)))
        data = {"no header": data[len(encoded[0]):], "cut": data[:cut], "gzip": b"\x1f\x8b\x08" + data}[hazard]
    return data, rows, hazard != "none"


def _normalized(owner: str) -> str | None:
    """The text the layer should hold for an owner cell: stripped, but a leading TAB or CR kept."""
    text = re.sub(r"^[^\S\t\r]+", "", owner).rstrip()
    return text or None


def _reset(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text('TRUNCATE "cim"."cameras"'))
        conn.execute(sa.text("DELETE FROM cim_meta.ingest_batch WHERE layer_id = 'cameras'"))


def test_generated_csv_ingests(db, catalog, work_dir, db_state):
    seen: Counter = Counter()

    @_settings(60)
    @given(generated=csv_files())
    def run(generated):
        data, rows, broken = generated
        _reset(db)
        path = work_dir / "generated.csv"
        path.write_bytes(data)
        outcome = _ingest(db, catalog, path, db_state, seen)
        if isinstance(outcome, str):  # refused: for its text, only when the generator damaged bytes
            reason = outcome.split(": ", 1)[1]
            assert any(r.damaged for r in rows) or reason.startswith("all ") or not TEXT_REFUSAL.search(reason), \
                outcome
            return
        if broken:
            return
        result, loaded = outcome
        assert result.rows_read == len(rows)  # no row vanished
        rejected = _rejected_rows(db, result.batch_id)
        by_device: dict[str, Row] = {}
        for row in rows:
            if row.number not in rejected:
                by_device.setdefault(row.cells["device_id"], row)  # in-file duplicates: the first row wins
        for device, (kind, owner) in loaded.items():
            row = by_device[device]
            if not row.damaged:
                assert owner == _normalized(row.cells["owner"]), (row, owner)
                assert kind == row.cells["camera_type"].lower()
        for row in by_device.values():
            if row.valid and not row.damaged:
                assert row.cells["device_id"] in loaded, row
        for row in rows:
            if row.valid and not row.damaged:
                assert row.number not in rejected, (row, rejected[row.number])

    run()
    assert seen["refused"] and seen["with rejects"] and seen["clean"], seen  # the generator reaches all three
    print("outcomes:", dict(seen))  # shown with -s, e.g. for a long run


def _ingest(engine, catalog, path: Path, db_state, seen: Counter):
    """Ingest ``path`` into ``cameras``; return the message of a refusal (checked), else the result and rows."""
    before = db_state(engine)
    try:
        result = ingest_file(engine, catalog, "cameras", path, crs="wgs84")
    except IngestError as exc:
        message = str(exc)
        assert message.startswith(path.name) and "\n" not in message and message.isprintable(), message
        assert db_state(engine) == before
        seen["refused"] += 1
        seen[re.sub(r"\d+", "N", message.split(": ", 1)[1][:50])] += 1
        return message
    seen["with rejects" if result.rejected else "clean"] += 1
    assert result.status == "committed"
    assert result.loaded + result.rejected + result.duplicates == result.rows_read
    with engine.connect() as conn:
        loaded = {d: (k, o) for d, k, o in conn.execute(sa.text(
            "SELECT device_id, camera_type, owner FROM cim.cameras")).all()}
        stored_rejects = conn.execute(sa.text("SELECT count(*) FROM cim_meta.ingest_reject WHERE batch_id = :b"),
                                      {"b": result.batch_id}).scalar()
    assert len(loaded) == result.inserted and stored_rejects == result.rejected
    return result, loaded


def _rejected_rows(engine, batch: int) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT row_number, reason FROM cim_meta.ingest_reject WHERE batch_id = :b"),
                                 {"b": batch}).all())


# -- whole ingests: GeoJSON --------------------------------------------------------------------------------

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**30),
                                                                                max_value=10**30))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(OWNER_CHARS, max_size=8), st.just([]), st.just({})),
    lambda inner: st.lists(inner, min_size=1, max_size=3) | st.dictionaries(st.text(max_size=3), inner, min_size=1,
                                                                            max_size=3),
    max_leaves=6)
GOOD_POINT = {"type": "Point", "coordinates": [121.40, 31.10]}
GEOMETRIES = st.one_of(
    st.just(GOOD_POINT),
    st.builds(lambda z: {"type": "Point", "coordinates": [121.41, 31.11, z]}, NUMBERS),
    st.just({"type": "MultiPoint", "coordinates": [[121.42, 31.12]]}),
    st.builds(lambda c: {"type": "Point", "coordinates": c}, JSON_VALUES),
    st.builds(lambda t, c: {"type": t, "coordinates": c},
              st.sampled_from(["LineString", "Polygon", "MultiPolygon", "Circle", "GeometryCollection", ""]),
              JSON_VALUES),
    st.builds(lambda g: {"type": "GeometryCollection", "geometries": g}, st.lists(st.just(GOOD_POINT), max_size=2)),
    st.none(), JSON_VALUES,
)


@dataclass
class Feature:
    """One generated GeoJSON feature and whether it should load."""

    device: str
    owner: object
    valid: bool
    doc: object = field(default=None)


@st.composite
def geojson_files(draw):
    """A cameras GeoJSON: (file bytes, features, whether the bytes were cut or damaged)."""
    n = draw(st.integers(min_value=0, max_value=10))
    features = []
    for i in range(1, n + 1):
        device = DEVICE + i
        owner = draw(st.text(CLEAN_CHARS, max_size=10) if draw(MOSTLY) else st.one_of(
            st.text(OWNER_CHARS, max_size=10), JSON_VALUES))
        props = {"device_id": draw(st.sampled_from([str(device), device]) if draw(MOSTLY)
                                   else st.sampled_from([float(device), None, "x"])),
                 "camera_type": draw(st.just("dome") if draw(MOSTLY) else st.sampled_from(["PTZ", "tripod", 7, None])),
                 "owner": owner,
                 "direction_deg": draw(st.none() if draw(MOSTLY) else st.one_of(NUMBERS, st.text(max_size=4)))}
        geometry = draw(st.just(GOOD_POINT) if draw(MOSTLY) else GEOMETRIES)
        doc = "feature" if draw(MOSTLY) else draw(st.sampled_from(["bare", "string"]))
        if doc == "string":
            element: object = "not a feature"
        elif doc == "bare":
            element = {"type": "Feature", "geometry": geometry}
        else:
            element = {"type": "Feature", "properties": props, "geometry": geometry}
        valid = (doc == "feature" and geometry == GOOD_POINT and props["device_id"] in (str(device), device)
                 and props["camera_type"] in ("dome", "PTZ") and isinstance(owner, str) and not FORBIDDEN.search(owner)
                 and (props["direction_deg"] is None or (isinstance(props["direction_deg"], int | float)
                                                          and 0 <= props["direction_deg"] <= 360)))
        features.append(Feature(str(device), owner, valid, element))
    text = json.dumps({"type": "FeatureCollection", "features": [f.doc for f in features]},
                      ensure_ascii=draw(st.booleans()))
    data = text.encode("utf-8", errors="surrogatepass")
    damage = "none" if draw(MOSTLY) else draw(st.sampled_from(["cut", "byte"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    elif damage == "byte":
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + bytes([draw(st.sampled_from([0x00, 0x22, 0x5D, 0x80, 0xFF]))]) + data[at:]
    return data, features, damage != "none"


def test_generated_geojson_ingests(db, catalog, work_dir, db_state):
    seen: Counter = Counter()

    @_settings(60)
    @given(generated=geojson_files())
    def run(generated):
        data, features, damaged = generated
        _reset(db)
        path = work_dir / "generated.geojson"
        path.write_bytes(data)
        outcome = _ingest(db, catalog, path, db_state, seen)
        if isinstance(outcome, str) or damaged:
            return
        result, loaded = outcome
        assert result.rows_read == len(features)  # no feature vanished
        for f in features:
            if f.device in loaded and isinstance(f.owner, str):
                assert loaded[f.device][1] == _normalized(f.owner), (f, loaded[f.device])
            if f.valid:
                assert f.device in loaded, (f, _rejected_rows(db, result.batch_id))

    run()
    assert seen["refused"] and seen["with rejects"] and seen["clean"], seen
    print("outcomes:", dict(seen))  # shown with -s, e.g. for a long run
