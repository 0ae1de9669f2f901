"""The declarative indicator catalog (``indicators.yaml``): indicators, coverages, derived outputs, suggestions.

Layer ids, fields and parameters live in the YAML (the built-in file, then the ``*.yaml`` of
``CIM_INDICATORS_DIR``); the generic kinds of :mod:`cim_service.indicators.kinds` compute them. The district
outline and the town boundaries are catalog roles of the layer catalog, never named here.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cim_service.core.catalog import IDENT, Catalog, Role
from cim_service.core.settings import Settings
from cim_service.indicators.kinds import (
    AreaCoverageParams,
    CountParams,
    DerivedKind,
    EventsParams,
    Filtered,
    Kind,
    Number,
    Params,
)

CATALOG_FILE = Path(__file__).resolve().parent / "indicators.yaml"
#: the roles every per-area computation reads
AREA_ROLES = (Role.district_outline, Role.town_boundaries)
#: placeholders of a gap sentence
GAP_FIELDS = {"area": "甲镇", "gap": 1, "den": 2.0, "target": 3.0, "pct": 4.0, "noun": "n", "noun_zh": "n", "unit": "u"}


class Binding(StrEnum):
    """Indicator type of the plan: 约束性 (binding) or 预期性 (expected)."""

    binding = "binding"
    expected = "expected"

    @property
    def zh(self) -> str:
        """Chinese label used in the plan."""
        return "约束性" if self is Binding.binding else "预期性"


class GapText(BaseModel):
    """A gap sentence in English and Chinese (``str.format`` placeholders, see ``GAP_FIELDS``)."""

    model_config = ConfigDict(extra="forbid")

    en: str
    zh: str

    @model_validator(mode="after")
    def _formats(self) -> GapText:
        for text in (self.en, self.zh):
            text.format(**GAP_FIELDS)  # KeyError / ValueError name the bad placeholder
        return self


def _label(item: BaseModel) -> str:
    """``indicator camera_density``, ``derived gap_5g``, ``suggestion g5``: a declaration named in messages."""
    return f"{type(item).__name__.removesuffix('Spec').lower()} {getattr(item, 'id', '?')}"


def _parse(kind: Kind | DerivedKind, params: dict[str, Any], owner: str) -> Params:
    try:
        return kind.params.model_validate(params)
    except ValueError as exc:
        raise ValueError(f"{owner}: invalid params for kind {kind.value}: {exc}") from None


class Declared(BaseModel):
    """A declaration with an id, a kind and the kind's parameters (validated on load, parsed once)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """What the declaration is, for messages (e.g. ``indicator camera_density``)."""
        return _label(self)

    @model_validator(mode="after")
    def _check(self) -> Declared:
        if not IDENT.match(self.id):
            raise ValueError(f"{self.label}: id must match {IDENT.pattern}")
        _parse(self.kind, self.params, self.label)
        return self

    @cached_property
    def p(self) -> Any:
        """The validated parameters (the kind's model in :mod:`~cim_service.indicators.kinds`)."""
        return _parse(self.kind, self.params, self.label)


class IndicatorSpec(Declared):
    """Declaration of one plan indicator."""

    name_zh: str
    name_en: str
    unit: str
    target: float
    binding: Binding
    baseline: float | None = None
    baseline_year: int = Field(default=2020, ge=1990, le=2100, description="The baseline's year (its 31 December).")
    target_year: int = Field(default=2025, ge=1990, le=2100, description="The year (its end) the target is due.")
    kind: Kind
    town_target: Literal["as_is", "by_area"] = "as_is"
    noun: str
    noun_zh: str
    source: str
    method: str | None = Field(default=None, description="How it is measured (default: the kind's wording).")
    gap_text: GapText | None = Field(default=None, description="Gap sentence (default: the kind's wording).")
    map_default: bool = Field(default=False, description="The indicator the web map opens on (at most one "
                              "indicator; CIM_MAP_INDICATOR chooses another).")

    @model_validator(mode="after")
    def _years(self) -> IndicatorSpec:
        if self.target_year <= self.baseline_year:
            raise ValueError(f"{self.label}: target_year must come after baseline_year")
        return self

    @property
    def lower_is_better(self) -> bool:
        """Tell whether the target is a most (events: met at or below it), not a least."""
        return self.kind is Kind.events

    @property
    def is_share(self) -> bool:
        """Tell whether the value is a percentage."""
        return self.unit == "%"


class Zones(BaseModel):
    """A zone layer giving its own service radius per zone."""

    model_config = ConfigDict(extra="forbid")

    layer: str
    zone_field: str
    radius_field: str


class RadiusBy(BaseModel):
    """Another radius for stations whose ``field`` has one of ``values``."""

    model_config = ConfigDict(extra="forbid")

    field: str
    values: dict[str, Number]


class Coverage(Filtered):
    """Service discs of a station layer (``where`` picks the stations), per zone when ``zones`` is given."""

    stations: str
    radius_m: Number
    radius_by: RadiusBy | None = None
    zones: Zones | None = None

    def layers(self) -> list[str]:
        """Stations, then the zone layer (optional: without zones ``radius_m`` applies everywhere)."""
        return [self.stations, *([self.zones.layer] if self.zones else [])]


class DerivedSpec(Declared):
    """Declaration of one derived output (a gap layer, the suggestions, a raster)."""

    kind: DerivedKind
    after: list[str] = Field(default_factory=list, description="Outputs refreshed first (this one reads them).")


class Demand(Filtered):
    """Demand points of a coverage suggestion (else a grid over the district)."""

    layer: str
    unit: str


class SuggestionSpec(BaseModel):
    """One kind of site suggestion (a ``kind`` value of the suggestions layer)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    aliases: list[str] = Field(default_factory=list)
    method: Literal["coverage", "deficit"]
    indicators: list[str]
    requires_any: list[str] = Field(default_factory=list)
    describe: str | None = None
    describe_grid: str | None = None
    coverage: str | None = None
    demand: Demand | None = None
    radius_m: Number | None = None
    candidate_m: float = Field(default=250.0, gt=0)
    hexes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> SuggestionSpec:
        if self.method == "coverage" and (self.coverage is None or self.describe_grid is None
                                          or (self.demand is not None and self.describe is None)):
            raise ValueError(f"suggestion {self.id}: method coverage needs coverage, describe_grid (and describe "
                             f"with a demand layer)")
        if self.method == "deficit" and (self.hexes is None or self.describe is None):
            raise ValueError(f"suggestion {self.id}: method deficit needs hexes and describe")
        return self

    @property
    def names(self) -> list[str]:
        """The id and its aliases, lower case."""
        return [n.lower() for n in (self.id, *self.aliases)]


class IndicatorCatalog:
    """Registry of indicators (in declaration order), coverages, derived outputs and suggestion kinds."""

    def __init__(self, specs: list[IndicatorSpec], coverages: dict[str, Coverage] | None = None,
                 derived: list[DerivedSpec] | None = None, suggestions: list[SuggestionSpec] | None = None):
        self._specs = {s.id: s for s in specs}
        self.coverages = dict(coverages or {})
        self._derived = {d.id: d for d in derived or []}
        self.suggestions = list(suggestions or [])
        for what, items, unique in (("indicator", specs, self._specs), ("derived output", derived or [],
                                                                           self._derived)):
            if len(unique) != len(items):
                raise ValueError(f"duplicate {what} ids")
        names = [n for s in self.suggestions for n in s.names]
        if len(set(names)) != len(names):
            raise ValueError(f"suggestion kinds share names: {sorted({n for n in names if names.count(n) > 1})}")
        defaults = [s.id for s in specs if s.map_default]
        if len(defaults) > 1:
            raise ValueError(f"more than one indicator is the map's default (map_default): {defaults}")
        self._check_references()

    def map_indicator(self, chosen: str | None = None) -> str | None:
        """Return the indicator the web map opens on: ``chosen`` (CIM_MAP_INDICATOR, checked), else the one
        declared ``map_default``, else None (the map takes the first with town values)."""
        if chosen is not None:
            return self.get(chosen).id
        return next((s.id for s in self if s.map_default), None)

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

    # -- derived outputs and suggestions -----------------------------------------------------------
    @property
    def derived(self) -> list[DerivedSpec]:
        """Derived outputs in declaration order."""
        return list(self._derived.values())

    @property
    def derived_ids(self) -> list[str]:
        """Ids of the derived outputs in declaration order."""
        return list(self._derived)

    def get_derived(self, name: str) -> DerivedSpec:
        """Return the derived output ``name`` or raise KeyError naming the known ones."""
        try:
            return self._derived[name]
        except KeyError:
            raise KeyError(f"unknown derived output {name!r}; known: {', '.join(self._derived)}") from None

    @property
    def suggestions_output(self) -> DerivedSpec | None:
        """The derived output holding the suggestions, if declared."""
        return next((d for d in self.derived if d.kind is DerivedKind.suggestions), None)

    def suggestion_kind(self, name: str) -> SuggestionSpec | None:
        """The suggestion kind called ``name`` (its id or an alias, any case), else None."""
        key = name.strip().lower()
        return next((s for s in self.suggestions if key in s.names), None)

    def suggestion_for(self, indicator_id: str) -> SuggestionSpec | None:
        """The suggestion kind closing the gap of indicator ``indicator_id``, else None."""
        return next((s for s in self.suggestions if indicator_id in s.indicators), None)

    def density_indicator(self, indicator_id: str) -> IndicatorSpec:
        """The indicator ``indicator_id``, which must count features of one layer (count / density)."""
        spec = self.get(indicator_id)
        if not isinstance(spec.p, CountParams):
            raise ValueError(f"indicator {indicator_id} is of kind {spec.kind.value}, not count or density")
        return spec

    # -- inputs ------------------------------------------------------------------------------------
    def coverage(self, name: str) -> Coverage:
        """The coverage ``name`` or KeyError naming the known ones."""
        try:
            return self.coverages[name]
        except KeyError:
            raise KeyError(f"unknown coverage {name!r}; known: {', '.join(self.coverages)}") from None

    def source_layers(self, item: IndicatorSpec | DerivedSpec | SuggestionSpec) -> list[str]:
        """Layers an indicator, derived output or suggestion kind reads (without the area layers)."""
        if isinstance(item, SuggestionSpec):
            if item.method == "coverage":
                return [*self.coverage(item.coverage).layers(), *([item.demand.layer] if item.demand else [])]
            hexes = self.get_derived(item.hexes)
            return self.source_layers(hexes)
        p = item.p
        out = list(p.layers())
        if getattr(p, "coverage", None):
            out = [*self.coverage(p.coverage).layers(), *out]
        if getattr(p, "indicator", None):  # hexes and rasters of a density indicator
            out += self.density_indicator(p.indicator).p.layers()
        if isinstance(item, DerivedSpec) and item.kind is DerivedKind.suggestions:
            out += [layer for s in self.suggestions for layer in self.source_layers(s)]
        return list(dict.fromkeys(out))

    def inputs(self, item: IndicatorSpec | DerivedSpec, layers: Catalog) -> list[str]:
        """Layers whose versions key the stored result of ``item``: what it reads and the area layers."""
        roles = AREA_ROLES
        if isinstance(item, DerivedSpec) and not item.kind.needs_outline:
            roles = (Role.town_boundaries,)
        areas = [spec.id for spec in (layers.role(r) for r in roles) if spec is not None]
        return sorted({*self.source_layers(item), *areas})

    def optional_inputs(self, spec: IndicatorSpec) -> set[str]:
        """Input layers an indicator can do without (zones, key areas: their absence only narrows it)."""
        out = set()
        if getattr(spec.p, "coverage", None) and self.coverage(spec.p.coverage).zones:
            out.add(self.coverage(spec.p.coverage).zones.layer)
        if isinstance(spec.p, AreaCoverageParams) and spec.p.key_areas:
            out.add(spec.p.key_areas.layer)
        if isinstance(spec.p, EventsParams):  # no event yet: none this year, not no data
            out.add(spec.p.layer)
        return out

    def input_layers(self, layers: Catalog) -> frozenset[str]:
        """Layers whose changes make a derived output stale (never a derived output itself)."""
        return frozenset(x for d in self.derived for x in self.inputs(d, layers)) - set(self._derived)

    # -- checks ------------------------------------------------------------------------------------
    def _check_references(self) -> None:
        """Raise ValueError for a coverage, indicator or derived output named but not declared."""
        for item in [*self, *self.derived, *self.suggestions]:
            label = _label(item)
            try:
                self.source_layers(item)
                for dep in getattr(item, "after", []):
                    self.get_derived(dep)
                for ind in getattr(item, "indicators", []):
                    self.get(ind)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{label}: {exc}") from None

    def check_layers(self, layers: Catalog) -> None:
        """Raise ValueError when a declaration names a layer or field the layer catalog lacks."""
        for role in AREA_ROLES:
            layers.require_role(role)
        for item in [*self, *self.derived, *self.suggestions]:
            label = _label(item)
            missing = [i for i in self.source_layers(item) if i not in layers]
            if isinstance(item, DerivedSpec) and item.kind.writes_layer:
                if item.id not in layers or layers.get(item.id).kind != "derived":
                    missing.append(f"{item.id} (a kind: derived layer)")
            if missing:
                raise ValueError(f"{label}: unknown input layers {missing}")
            for layer_id, field in self._fields(item):
                try:
                    layers.get(layer_id).field(field)
                except KeyError:
                    raise ValueError(f"{label}: layer {layer_id} has no field {field!r}") from None

    def _fields(self, item: IndicatorSpec | DerivedSpec | SuggestionSpec) -> list[tuple[str, str]]:
        """(layer, field) pairs a declaration relies on."""
        out: list[tuple[str, str]] = []
        p = item if isinstance(item, SuggestionSpec) else item.p
        for flt, layer in ((p, getattr(p, "layer", None) or getattr(p, "points", None)),
                           (getattr(p, "demand", None), getattr(getattr(p, "demand", None), "layer", None))):
            if isinstance(flt, Filtered) and layer:
                out += [(layer, f) for f in (*flt.where, *flt.where_not)]
        if isinstance(p, CountParams) and p.since:
            out.append((p.layer, p.date_field))
        if getattr(p, "field", None) and getattr(p, "layer", None):
            out.append((p.layer, p.field))
        if isinstance(p, AreaCoverageParams) and p.key_areas:
            out.append((p.key_areas.layer, p.key_areas.target_field))
        if isinstance(item, DerivedSpec) and item.kind.writes_layer:
            named = [getattr(p, "count_field", None), getattr(p, "distance_field", None)]
            out += [(item.id, f) for f in (*item.kind.output_fields, *named) if f]
        cov = getattr(p, "coverage", None)
        if cov:
            c = self.coverage(cov)
            out += [(c.stations, f) for f in (*c.where, *c.where_not, *([c.radius_by.field] if c.radius_by else []))]
            if c.zones:
                out += [(c.zones.layer, c.zones.zone_field), (c.zones.layer, c.zones.radius_field)]
        return out


class UnknownIndicatorError(KeyError):
    """An indicator id that the catalog does not declare."""

    def __init__(self, indicator_id: str, known: list[str]):
        super().__init__(indicator_id)
        self.indicator_id = indicator_id
        self.known = known

    def __str__(self) -> str:
        return f"unknown indicator {self.indicator_id!r}; known indicators: {', '.join(self.known)}"


SECTIONS = ("coverages", "indicators", "derived", "suggestions")


def _read(paths: tuple[Path, ...]) -> IndicatorCatalog:
    specs: list[IndicatorSpec] = []
    coverages: dict[str, Coverage] = {}
    derived: list[DerivedSpec] = []
    suggestions: list[SuggestionSpec] = []
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            unknown = set(data) - set(SECTIONS)
            if unknown:
                raise ValueError(f"unknown sections {sorted(unknown)}; use {', '.join(SECTIONS)}")
            for name, body in (data.get("coverages") or {}).items():
                if name in coverages:
                    raise ValueError(f"coverage {name!r} is declared twice")
                coverages[name] = Coverage.model_validate(body)
            specs += [IndicatorSpec.model_validate(item) for item in data.get("indicators") or []]
            derived += [DerivedSpec.model_validate(item) for item in data.get("derived") or []]
            suggestions += [SuggestionSpec.model_validate(item) for item in data.get("suggestions") or []]
        except Exception as exc:  # report which file is wrong
            raise ValueError(f"{path}: invalid indicator declaration: {exc}") from exc
    try:
        return IndicatorCatalog(specs, coverages, derived, suggestions)
    except ValueError as exc:
        raise ValueError(f"{', '.join(str(p) for p in paths)}: {exc}") from exc


@lru_cache(maxsize=8)
def load_indicators(path: Path = CATALOG_FILE, extra: tuple[Path, ...] = ()) -> IndicatorCatalog:
    """Read and validate the indicator catalog ``path`` and the ``extra`` files after it (cached)."""
    return _read((path, *extra))


def indicators_for(settings: Settings) -> IndicatorCatalog:
    """The built-in catalog plus the ``*.yaml`` of ``CIM_INDICATORS_DIR`` when set."""
    folder = settings.indicators_dir
    extra = tuple(sorted(Path(folder).glob("*.yaml"))) if folder else ()
    return load_indicators(CATALOG_FILE, extra)
