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


def _empty() -> DataArray:
    return DataArray(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64),
                     np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int32))


def _times_ms(texts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds (UTC) of ISO 8601 texts and a mask of the ones that are no such text."""
    n = len(texts)
    try:
        arr = pa.array(texts, pa.string())
        us = pc.cast(arr, pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return us // 1000, np.zeros(n, dtype=bool)
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
        if (type(v) is float or type(v) is int) and math.isfinite(float(v)):
            res[i] = float(v)
        else:
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


def read(body: Any, *, now_ms: int, lo_ms: int, hi_ms: int, max_faults: int = 1000) -> DataArray:
    """The columns of a ``CreateObservations`` body; rows outside [lo_ms, hi_ms] are ``time_range`` faults.

    A body that is no array of groups, or a group that is no ``{Datastream, components, dataArray}``, raises
    :class:`BodyError`. Faults of rows are kept up to ``max_faults`` (the rows are refused all the same; the
    last fault kept says how many more there were).
    """
    if not isinstance(body, list):
        raise BodyError("body", "must be a JSON array of {Datastream, components, dataArray}")
    cols: dict[str, list[np.ndarray]] = {"ds": [], "t": [], "r": [], "f": [], "g": [], "j": []}
    refused: dict[str, int] = {}
    faults: list[RowFault] = []
    general: list[int] = []
    dropped = 0
    total = 0

    def fault(g: int, rows: np.ndarray | list[int], reason: str, detail: str) -> None:
        nonlocal dropped
        if len(rows):
            refused[reason] = refused.get(reason, 0) + len(rows)
        for j in rows:
            if len(faults) < max_faults:
                faults.append(RowFault(g, int(j), reason, detail))
            else:
                dropped += 1

    for g, group in enumerate(body):
        where = f"[{g}]"
        if not isinstance(group, dict):
            raise BodyError(where, "must be an object {Datastream, components, dataArray}")
        extra = set(group) - {"Datastream", "components", "dataArray", "dataArray@iot.count"}
        if extra:
            if "MultiDatastream" in extra:
                raise BodyError(f"{where}/MultiDatastream", "MultiDatastreams are not supported")
            raise BodyError(where, f"unknown member {sorted(extra)[0]!r}")
        ref = group.get("Datastream")
        ds = ref.get("@iot.id") if isinstance(ref, dict) else None
        if type(ds) is not int or not 0 < ds <= _INT32_MAX:
            raise BodyError(f"{where}/Datastream", "must reference a Datastream by @iot.id")
        comps = group.get("components")
        if not isinstance(comps, list) or not comps or not all(isinstance(c, str) for c in comps) \
                or len(set(comps)) != len(comps):
            raise BodyError(f"{where}/components", "must be a list of distinct component names")
        unknown = [c for c in comps if c not in ALL_COMPONENTS]
        if unknown:
            raise BodyError(f"{where}/components", f"unknown component {unknown[0]!r}")
        if "result" not in comps:
            raise BodyError(f"{where}/components", "must include 'result'")
        data = group.get("dataArray")
        if not isinstance(data, list):
            raise BodyError(f"{where}/dataArray", "must be a JSON array of arrays")
        total += len(data)
        if total > MAX_ROWS:
            raise BodyError("body", f"at most {MAX_ROWS} observations in one body")
        if not set(comps) <= FAST_COMPONENTS:
            general.append(g)
            continue
        if not data:
            continue
        width = len(comps)
        n = len(data)
        bad = np.zeros(n, dtype=bool)
        if not all(type(r) is list and len(r) == width for r in data):
            shape = np.array([not (type(r) is list and len(r) == width) for r in data])
            fault(g, np.flatnonzero(shape), "bad_type", f"a row must be an array of {width} values")
            bad |= shape
            data = [r if type(r) is list and len(r) == width else [None] * width for r in data]
        result, rbad = _results([r[comps.index("result")] for r in data])
        fault(g, np.flatnonzero(rbad & ~bad), "bad_type", "result must be a finite number")
        bad |= rbad
        if "phenomenonTime" in comps:
            t_ms, tbad = _times_ms([r[comps.index("phenomenonTime")] for r in data])
            fault(g, np.flatnonzero(tbad & ~bad), "bad_type",
                  "phenomenonTime must be an ISO 8601 instant with a time zone")
            bad |= tbad
            out = ~bad & ((t_ms < lo_ms) | (t_ms > hi_ms))
            fault(g, np.flatnonzero(out), "time_range", "phenomenonTime is outside the accepted window")
            bad |= out
        else:
            t_ms = np.full(n, now_ms, dtype=np.int64)
        if "FeatureOfInterest/id" in comps:
            feature, fbad = _features([r[comps.index("FeatureOfInterest/id")] for r in data])
            fault(g, np.flatnonzero(fbad & ~bad), "bad_type", "FeatureOfInterest/id must be an integer id")
            bad |= fbad
        else:
            feature = np.full(n, -1, dtype=np.int64)
        keep = ~bad
        k = int(keep.sum())
        cols["ds"].append(np.full(k, ds, dtype=np.int32))
        cols["t"].append(t_ms[keep])
        cols["r"].append(result[keep])
        cols["f"].append(feature[keep])
        cols["g"].append(np.full(k, g, dtype=np.int32))
        cols["j"].append(np.flatnonzero(keep).astype(np.int32))
    if dropped:
        faults[-1] = RowFault(faults[-1].group, faults[-1].row, faults[-1].reason,
                              f"{faults[-1].detail} (and {dropped} more refused rows not listed)")
    if not cols["t"]:
        out = _empty()
        out.faults, out.general, out.refused = faults, general, refused
        return out
    return DataArray(*(np.concatenate(cols[k]) for k in ("ds", "t", "r", "f", "g", "j")), faults=faults,
                     refused=refused, general=general)
