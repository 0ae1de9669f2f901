"""The declarative indicator catalog (``indicators.yaml``): ids, names, units, targets and how each is computed."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cim_service.core.catalog import IDENT, Catalog

CATALOG_FILE = Path(__file__).resolve().parent / "indicators.yaml"


class Binding(StrEnum):
    """Indicator type of the plan: 约束性 (binding) or 预期性 (expected)."""

    binding = "binding"
    expected = "expected"

    @property
    def zh(self) -> str:
        """Chinese label used in the plan."""
        return "约束性" if self is Binding.binding else "预期性"


class Kind(StrEnum):
    """How an indicator value is computed (one SQL builder per kind in ``compute.py``)."""

    count = "count"
    density = "density"
    area_coverage = "area_coverage"
    address_coverage = "address_coverage"
    site_coverage = "site_coverage"
    line_coverage = "line_coverage"
    flag_share = "flag_share"


class IndicatorSpec(BaseModel):
    """Declaration of one plan indicator."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name_zh: str
    name_en: str
    unit: str
    target: float
    binding: Binding
    baseline: float | None = None
    kind: Kind
    inputs: list[str]
    params: dict[str, Any] = Field(default_factory=dict)
    town_target: Literal["as_is", "by_area"] = "as_is"
    key_area_baselines: dict[str, float] = Field(default_factory=dict)
    noun: str
    noun_zh: str
    source: str

    @model_validator(mode="after")
    def _check(self) -> IndicatorSpec:
        if not IDENT.match(self.id):
            raise ValueError(f"indicator id {self.id!r} must match {IDENT.pattern}")
        where = self.params.get("where", {})
        for name in [*where, self.params.get("field"), self.params.get("date_field")]:
            if name is not None and not IDENT.match(str(name)):
                raise ValueError(f"indicator {self.id}: field {name!r} is not a valid identifier")
        return self

    @property
    def is_share(self) -> bool:
        """Tell whether the value is a percentage."""
        return self.unit == "%"


class IndicatorCatalog:
    """Registry of indicators, in declaration order."""

    def __init__(self, specs: list[IndicatorSpec]):
        self._specs = {s.id: s for s in specs}
        if len(self._specs) != len(specs):
            raise ValueError("duplicate indicator ids")

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, indicator_id: object) -> bool:
        return indicator_id in self._specs

    @property
    def ids(self) -> list[str]:
        """Indicator ids in declaration order."""
        return list(self._specs)

    def get(self, indicator_id: str) -> IndicatorSpec:
        """Return the indicator ``indicator_id`` or raise UnknownIndicatorError."""
        try:
            return self._specs[indicator_id]
        except KeyError:
            raise UnknownIndicatorError(indicator_id, self.ids) from None

    def check_layers(self, layers: Catalog) -> None:
        """Raise ValueError when an indicator names a layer the layer catalog lacks."""
        for spec in self:
            missing = [i for i in spec.inputs if i not in layers]
            if missing:
                raise ValueError(f"indicator {spec.id}: unknown input layers {missing}")


class UnknownIndicatorError(KeyError):
    """An indicator id that the catalog does not declare."""

    def __init__(self, indicator_id: str, known: list[str]):
        super().__init__(indicator_id)
        self.indicator_id = indicator_id
        self.known = known

    def __str__(self) -> str:
        return f"unknown indicator {self.indicator_id!r}; known indicators: {', '.join(self.known)}"


def _read(path: Path) -> IndicatorCatalog:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return IndicatorCatalog([IndicatorSpec.model_validate(item) for item in data["indicators"]])


@lru_cache(maxsize=4)
def load_indicators(path: Path = CATALOG_FILE) -> IndicatorCatalog:
    """Read and validate the indicator catalog (cached per path)."""
    return _read(path)
