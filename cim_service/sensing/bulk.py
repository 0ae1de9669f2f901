"""The bulk MQTT topic ``v1.1/CreateObservations``: one message carries a SensorThings dataArray body.

The payload is the body of ``POST /sta/v1.1/CreateObservations`` (``[{"Datastream": {"@iot.id": n},
"components": ["phenomenonTime", "result"], "dataArray": [[...], ...]}, ...]``; ``FeatureOfInterest/id`` may be a
component too). It is read column-wise (:mod:`cim_service.core.data_array`: Arrow parses the times, numpy the
results); then the checks of a single reading are made per datastream, not per row: known datastream, range of
the datastream's ``properties.minimum/maximum``. Every refused row is a dead letter with its reason (the row's
JSON as payload, its group and index in the detail); the good rows of the same message are written. Pure
functions: the bridge adds the rate limit, the duplicate checks and the acknowledgement after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import orjson

from cim_service.core import data_array
from cim_service.store.dead_letters import DeadLetter
from cim_service.store.observations import Columns, truncate_ms
from cim_service.store.sta_entities import DatastreamInfo

TOPIC = "v1.1/CreateObservations"
#: a bulk message is bounded like an HTTP body of the same form
MAX_BULK_PAYLOAD = 32 * 1024 * 1024
#: at most this many dead letters for the refused rows of one message (all are counted)
MAX_LETTERS = 200


@dataclass
class BulkParsed:
    """The accepted rows of one bulk message (columns), its dead letters and the refusals by reason."""

    columns: Columns
    letters: list[DeadLetter] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)


def _empty() -> Columns:
    return Columns(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))


def _count(rejected: dict[str, int], reason: str, n: int = 1) -> None:
    if n:
        rejected[reason] = rejected.get(reason, 0) + n


def parse(payload: bytes, infos: Callable[[list[int]], dict[int, DatastreamInfo]], *, now: datetime,
          max_past: timedelta, max_future: timedelta, client: str | None = None) -> BulkParsed:
    """Read one bulk message; ``infos(ids)`` returns the known datastreams among ``ids``."""
    out = BulkParsed(_empty())

    def whole(reason: str, detail: str) -> BulkParsed:
        out.letters.append(DeadLetter(TOPIC, payload, reason, detail, client))
        _count(out.rejected, reason)
        return out

    if len(payload) > MAX_BULK_PAYLOAD:
        return whole("too_large", f"payload above {MAX_BULK_PAYLOAD} bytes")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return whole("not_json", "payload is not JSON (UTF-8)")
    now_ms = int(truncate_ms(now).timestamp() * 1000)
    try:
        arr = data_array.read(body, now_ms=now_ms, lo_ms=int((now - max_past).timestamp() * 1000),
                              hi_ms=int((now + max_future).timestamp() * 1000), max_faults=MAX_LETTERS)
    except data_array.BodyError as exc:
        return whole("bad_type", f"{exc.where}: {exc.detail}")

    def letter(group: int, row: int, reason: str, detail: str) -> None:
        if len(out.letters) >= MAX_LETTERS:
            return
        g = body[group]
        one = g["dataArray"][row] if row >= 0 else g.get("components")
        doc = {"Datastream": g.get("Datastream"), "components": g.get("components"), "dataArray": [one]}
        out.letters.append(DeadLetter(TOPIC, orjson.dumps(doc), reason, f"[{group}]/dataArray[{row}]: {detail}"
                                      if row >= 0 else f"[{group}]: {detail}", client))

    for g in arr.general:
        n = len(body[g]["dataArray"])
        _count(out.rejected, "bad_type", n)
        letter(g, -1, "bad_type", f"{n} rows refused: the bulk topic takes the components phenomenonTime, "
                                  "result and FeatureOfInterest/id (others: v1.1/Datastreams(<id>)/Observations)")
    for f in arr.faults:
        letter(f.group, f.row, f.reason, f.detail)
    for reason, n in arr.refused.items():
        _count(out.rejected, reason, n)
    if not len(arr):
        return out

    uniq, inverse = np.unique(arr.datastream, return_inverse=True)
    known = infos([int(d) for d in uniq])
    lo = np.full(len(uniq), -np.inf)
    hi = np.full(len(uniq), np.inf)
    fid = np.full(len(uniq), -1, dtype=np.int64)
    ok_ds = np.zeros(len(uniq), dtype=bool)
    for i, d in enumerate(uniq.tolist()):
        info = known.get(d)
        if info is None:
            continue
        ok_ds[i] = True
        if info.minimum is not None:
            lo[i] = info.minimum
        if info.maximum is not None:
            hi[i] = info.maximum
        if info.feature_id is not None:
            fid[i] = info.feature_id
    unknown = ~ok_ds[inverse]
    out_of_range = ~unknown & ((arr.result < lo[inverse]) | (arr.result > hi[inverse]))
    for mask, reason, say in ((unknown, "unknown_datastream", lambda j: f"no datastream {arr.datastream[j]}"),
                              (out_of_range, "out_of_range",
                               lambda j: f"result {arr.result[j]} outside [{lo[inverse[j]]}, {hi[inverse[j]]}]")):
        idx = np.flatnonzero(mask)
        _count(out.rejected, reason, len(idx))
        for j in idx[:MAX_LETTERS]:
            letter(int(arr.group[j]), int(arr.row[j]), reason, say(int(j)))
    keep = ~(unknown | out_of_range)
    feature = np.where(arr.feature >= 0, arr.feature, fid[inverse])
    out.columns = Columns(arr.datastream[keep], arr.t_ms[keep], arr.result[keep], feature[keep])
    return out

