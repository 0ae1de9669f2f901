"""Reading a SensorThings ``dataArray`` body (``CreateObservations``) as columns, with a fault per bad row.

The one reader of the bulk form for both writers: ``POST /sta/v1.1/CreateObservations`` (HTTP, where any fault
refuses the request) and the MQTT topic ``v1.1/CreateObservations`` (where a bad row goes to the dead letters and
the good ones are written). A body is ``[{"Datastream": {"@iot.id": n}, "components": [...], "dataArray":
[[...], ...]}, ...]``; the columns this reader takes are ``phenomenonTime``, ``result`` and
``FeatureOfInterest/id`` (numeric readings, the bulk of a sensor network). A group with any other component is
:attr:`DataArray.general` (the HTTP writer reads those row by row; the MQTT bridge refuses them).

Times are parsed column-wise by Arrow (ISO 8601 with ``Z`` or an offset; a time without a zone is a fault),
results by numpy after one type pass; no Python object is made per row beyond what the JSON parser made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: the components read column-wise
FAST_COMPONENTS = frozenset({"phenomenonTime", "result", "FeatureOfInterest/id"})
#: every component of the dataArray extension
ALL_COMPONENTS = FAST_COMPONENTS | {"resultTime", "resultQuality", "validTime", "parameters"}
MAX_ROWS = 2_000_000
_INT32_MAX = 2**31 - 1
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_RESULT = ["phenomenonTime", "result"]
_MS = timedelta(milliseconds=1)


class BodyError(ValueError):
    """The body as a whole is no dataArray document (``where`` names the member)."""

    def __init__(self, where: str, detail: str):
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RowFault:
    """One refused row: group and row index, a reason code (metrics label) and what is wrong."""

    group: int
    row: int              # -1: the whole group
    reason: str           # bad_type, time_range, unknown_component
    detail: str


@dataclass
class DataArray:
    """The accepted rows of a body in columns (numpy), the faults, and the groups left to a general reader."""

    datastream: np.ndarray      # int32
    t_ms: np.ndarray            # int64, milliseconds since the Unix epoch (UTC)
    result: np.ndarray          # float64
    feature: np.ndarray         # int64, -1: none given
    group: np.ndarray           # int32, index of the row's group in the body
    row: np.ndarray             # int32, index of the row in its group's dataArray
    faults: list[RowFault] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # rows refused by reason (all, not only those listed)
    general: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.t_ms)


def _times_ms(texts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds (UTC) of ISO 8601 texts and a mask of the ones that are no such text."""
    n = len(texts)
    try:
        ts = pc.cast(pa.array(texts, pa.string()), pa.timestamp("us", "UTC")).cast(pa.int64())
        if ts.null_count:  # a missing time (null) is no time
            bad = ~ts.is_valid().to_numpy(zero_copy_only=False)
            return ts.fill_null(0).to_numpy() // 1000, bad
        return ts.to_numpy() // 1000, np.zeros(n, dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        pass
    out = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    for i, text in enumerate(texts):  # the slow path: only a body holding a bad time takes it
        try:
            if not isinstance(text, str) or len(text) > 64:
                raise ValueError
            t = datetime.fromisoformat(text)
            if t.tzinfo is None:
                raise ValueError
            out[i] = (t - _UNIX) // _MS
        except (ValueError, OverflowError):
            bad[i] = True
    return out, bad


def _results(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """float64 results and a mask of the values that are no finite number (booleans and texts are not)."""
    kinds = set(map(type, values))
    if kinds <= {float, int}:
        try:
            res = np.array(values, dtype=np.float64)
            return res, ~np.isfinite(res)
        except OverflowError:
            pass
    res = np.zeros(len(values), dtype=np.float64)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        try:
            if (type(v) is float or type(v) is int) and math.isfinite(float(v)):
                res[i] = float(v)
                continue
        except OverflowError:  # an integer beyond float64
            pass
        bad[i] = True
    return res, bad


def _features(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(len(values), -1, dtype=np.int64)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if type(v) is int and 0 < v < 2**63:
            out[i] = v
        else:
            bad[i] = True
    return out, bad


def _check_group(g: int, group: Any) -> tuple[int, list[str], list]:
    where = f"[{g}]"
    if not isinstance(group, dict):
        raise BodyError(where, "must be an object {Datastream, components, dataArray}")
    if len(group) > 3 or not group.keys() <= {"Datastream", "components", "dataArray", "dataArray@iot.count"}:
        extra = set(group) - {"Datastream", "components", "dataArray", "dataArray@iot.count"}
        if "MultiDatastream" in extra:
            raise BodyError(f"{where}/MultiDatastream", "MultiDatastreams are not supported")
        if extra:
            raise BodyError(where, f"unknown member {sorted(extra)[0]!r}")
    ref = group.get("Datastream")
    ds = ref.get("@iot.id") if type(ref) is dict else None
    if type(ds) is not int or not 0 < ds <= _INT32_MAX:
        raise BodyError(f"{where}/Datastream", "must reference a Datastream by @iot.id")
    comps = group.get("components")
    if type(comps) is not list or not comps or not all(type(c) is str for c in comps) \
            or len(set(comps)) != len(comps):
        raise BodyError(f"{where}/components", "must be a list of distinct component names")
    unknown = [c for c in comps if c not in ALL_COMPONENTS]
    if unknown:
        raise BodyError(f"{where}/components", f"unknown component {unknown[0]!r}")
    if "result" not in comps:
        raise BodyError(f"{where}/components", "must include 'result'")
    data = group.get("dataArray")
    if type(data) is not list:
        raise BodyError(f"{where}/dataArray", "must be a JSON array of arrays")
    return ds, comps, data


def read(body: Any, *, now_ms: int, lo_ms: int, hi_ms: int, max_faults: int = 1000) -> DataArray:
    """The columns of a ``CreateObservations`` body; rows outside [lo_ms, hi_ms] are ``time_range`` faults.

    A body that is no array of groups, or a group that is no ``{Datastream, components, dataArray}``, raises
    :class:`BodyError`. Faults of rows are kept up to ``max_faults`` (the rows are refused all the same, and
    counted in :attr:`DataArray.refused`; the last fault kept says how many more there were). The groups are
    flattened first and every column parsed once for the whole body: a body of many one-row groups (a gateway
    reporting its nodes) costs about what one group of as many rows does.
    """
    if not isinstance(body, list):
        raise BodyError("body", "must be a JSON array of {Datastream, components, dataArray}")
    refused: dict[str, int] = {}
    faults: list[RowFault] = []
    general: list[int] = []
    dropped = 0
    total = 0
    # flat columns of the rows of the fast groups; per group: its datastream, number of rows
    g_ids: list[int] = []
    g_ds: list[int] = []
    g_n: list[int] = []
    times: list[Any] = []
    results: list[Any] = []
    feats: list[Any] = []
    timeless: list[int] = []   # groups without phenomenonTime (their rows are "now")
    shape_bad: list[tuple[int, int]] = []

    for g, group in enumerate(body):
        # the common group first, checked inline: {"Datastream": {"@iot.id": n}, "components": ["phenomenonTime",
        # "result"], "dataArray": [[time, result], ...]} (a gateway sends many of one row each)
        if type(group) is dict and len(group) == 3 and group.get("components") == _TIME_RESULT:
            ref, data = group.get("Datastream"), group.get("dataArray")
            if type(ref) is dict and len(ref) == 1 and type(data) is list and data:
                ds = ref.get("@iot.id")
                if type(ds) is int and 0 < ds <= _INT32_MAX:
                    if len(data) == 1:
                        r = data[0]
                        if type(r) is list and len(r) == 2:
                            total += 1
                            g_ids.append(g)
                            g_ds.append(ds)
                            g_n.append(1)
                            times.append(r[0])
                            results.append(r[1])
                            feats.append(None)
                            continue
        ds, comps, data = _check_group(g, group)
        total += len(data)
        if total > MAX_ROWS:
            raise BodyError("body", f"at most {MAX_ROWS} observations in one body")
        if not set(comps) <= FAST_COMPONENTS:
            general.append(g)
            continue
        if not data:
            continue
        width = len(comps)
        if not all(type(r) is list and len(r) == width for r in data):
            for j, r in enumerate(data):
                if not (type(r) is list and len(r) == width):
                    shape_bad.append((len(results) + j, width))
            data = [r if type(r) is list and len(r) == width else [None] * width for r in data]
        g_ids.append(g)
        g_ds.append(ds)
        g_n.append(len(data))
        if comps == ["phenomenonTime", "result"]:
            times.extend([r[0] for r in data])
            results.extend([r[1] for r in data])
            feats.extend([None] * len(data))
            continue
        ir = comps.index("result")
        results.extend([r[ir] for r in data])
        if "phenomenonTime" in comps:
            ip = comps.index("phenomenonTime")
            times.extend([r[ip] for r in data])
        else:
            timeless.append(len(g_ids) - 1)
            times.extend([None] * len(data))
        if "FeatureOfInterest/id" in comps:
            ifo = comps.index("FeatureOfInterest/id")
            feats.extend([r[ifo] for r in data])
        else:
            feats.extend([None] * len(data))

    n = len(results)
    counts = np.array(g_n, dtype=np.int64)
    group = np.repeat(np.array(g_ids, dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    row = (np.arange(n, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32)
    datastream = np.repeat(np.array(g_ds, dtype=np.int32), counts)

    def fault(mask: np.ndarray, reason: str, detail: str) -> None:
        nonlocal dropped
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        refused[reason] = refused.get(reason, 0) + len(idx)
        room = max(0, max_faults - len(faults))
        faults.extend(RowFault(int(group[i]), int(row[i]), reason, detail) for i in idx[:room])
        dropped += max(0, len(idx) - room)

    bad = np.zeros(n, dtype=bool)
    if shape_bad:
        shape = np.zeros(n, dtype=bool)
        shape[[i for i, _w in shape_bad]] = True
        fault(shape, "bad_type", "a row must be an array of as many values as there are components")
        bad |= shape
    result, rbad = _results(results)
    fault(rbad & ~bad, "bad_type", "result must be a finite number")
    bad |= rbad
    if timeless:
        tl = np.zeros(len(g_ids), dtype=bool)
        tl[timeless] = True
        now_rows = np.repeat(tl, counts)
        texts = [t for t, k in zip(times, now_rows.tolist(), strict=True) if not k]
        t_ms = np.full(n, now_ms, dtype=np.int64)
        tbad = np.zeros(n, dtype=bool)
        t_ms[~now_rows], tbad[~now_rows] = _times_ms(texts)
    else:
        t_ms, tbad = _times_ms(times)
    fault(tbad & ~bad, "bad_type", "phenomenonTime must be an ISO 8601 instant with a time zone")
    bad |= tbad
    out = ~bad & ((t_ms < lo_ms) | (t_ms > hi_ms))
    fault(out, "time_range", "phenomenonTime is outside the accepted window")
    bad |= out
    if any(f is not None for f in feats):
        feature, fbad = _features(feats)
        fault(fbad & ~bad, "bad_type", "FeatureOfInterest/id must be an integer id")
        bad |= fbad
    else:
        feature = np.full(n, -1, dtype=np.int64)
    if dropped:
        last = faults[-1]
        faults[-1] = RowFault(last.group, last.row, last.reason, f"{last.detail} (and {dropped} more refused rows "
                                                                 "not listed)")
    keep = ~bad
    if keep.all():
        return DataArray(datastream, t_ms, result, feature, group, row, faults, refused, general)
    return DataArray(datastream[keep], t_ms[keep], result[keep], feature[keep], group[keep], row[keep], faults,
                     refused, general)
