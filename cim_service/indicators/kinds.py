"""The generic kinds of ``indicators.yaml`` and their parameters (validated declarations; the SQL is elsewhere).

Indicator kinds (``compute.py`` measures them; ``results.py`` words their gaps):

========================  ==============================================================================
kind                      params
========================  ==============================================================================
``count``                 ``layer``; ``where`` / ``where_not``; ``since`` + ``date_field`` (features from a date)
``density``               as ``count``; the value is per km² of town / district area
``area_coverage``         ``coverage``; ``key_areas`` {``layer``, ``target_field``, ``baselines``} (optional)
``address_coverage``      ``coverage``, ``points`` (a point layer); ``where`` / ``where_not`` on the points
``site_coverage``         ``sites``, ``near`` (point layers), ``radius_m``: sites with a ``near`` feature within it
``line_coverage``         ``lines``, ``near``, ``radius_m``: line length within ``radius_m`` of a ``near`` feature
``flag_share``            ``layer``, ``field`` (boolean): share of features whose flag is true; ``where``
``events``                ``layer``, ``date_field``; ``where`` / ``where_not``: features dated in the year of the day
                          measured (1 January to the day's end, Asia/Shanghai), e.g. the alerts of a rule
``online_share``          ``layer`` (a sensing layer), ``window_s``: share of its features whose Thing reported
                          (any datastream) within ``window_s`` before the moment measured (live)
``live_site_coverage``    ``sites`` (point layers), ``near`` (a sensing layer), ``radius_m``, ``window_s``: share
                          of the sites with a ``near`` feature within ``radius_m`` that reported within
                          ``window_s`` (live)
========================  ==============================================================================

Derived kinds (``gaps.py``, ``raster.py``, ``suggest.py``):

========================  ==============================================================================
``hex_deficit``           ``indicator`` (a count / density), ``resolution`` (H3), ``count_field`` (output)
``uncovered_area``        ``coverage``
``sites_without``         ``sites`` (layer: kind label), ``near``, ``radius_m``, ``distance_field`` (output)
``density_raster``        ``indicator``, ``name`` (the file ``<home>/rasters/<name>.tif``), ``pixel_m``
``suggestions``           ``max_sites``; the kinds are the ``suggestions:`` section (``method`` coverage or deficit)
========================  ==============================================================================

A number may be ``{setting: name}`` (the value of a ``CIM_*`` setting).

*Live* kinds read the readings (``cim_sta``), not only layers: their value moves without any layer changing, so
a stored result of theirs also goes stale with age (``CIM_LIVE_INDICATOR_PERIOD_S``), and the service recomputes
them every such period. The moment measured is now, or the end of the day ``at`` (readings of that day's window:
raw ones, or the hourly aggregates of compacted days).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cim_service.core.catalog import IDENT
from cim_service.core.settings import Settings


class SettingRef(BaseModel):
    """A number taken from the service settings (``{setting: g5_macro_radius_m}``)."""

    model_config = ConfigDict(extra="forbid")

    setting: str

    @field_validator("setting")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in Settings.model_fields:
            raise ValueError(f"unknown setting {v!r}")
        return v


Number = float | SettingRef


def number(value: Number, settings: Settings) -> float:
    """The value of a number parameter (a setting's current value for ``{setting: ...}``)."""
    return float(getattr(settings, value.setting)) if isinstance(value, SettingRef) else float(value)


def resolve(obj: Any, settings: Settings) -> Any:
    """``obj`` (plain YAML data) with every ``{setting: name}`` replaced by that setting's value."""
    if isinstance(obj, dict):
        if set(obj) == {"setting"}:
            return float(getattr(settings, obj["setting"]))
        return {k: resolve(v, settings) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, settings) for v in obj]
    return obj


class Params(BaseModel):
    """Base of the parameter models: no unknown keys, identifiers checked."""

    model_config = ConfigDict(extra="forbid")

    def layers(self) -> list[str]:
        """Layers these parameters read directly (coverages add their own)."""
        return []


class Filtered(Params):
    """Parameters with a field filter: ``where`` (equal) and ``where_not`` (distinct from; NULL passes)."""

    where: dict[str, Any] = Field(default_factory=dict)
    where_not: dict[str, Any] = Field(default_factory=dict)

    @field_validator("where", "where_not")
    @classmethod
    def _fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if not IDENT.match(k)]
        if bad:
            raise ValueError(f"fields {bad} are not valid identifiers")
        return v


class CountParams(Filtered):
    """``count`` / ``density``: features of ``layer`` (optionally since a date)."""

    layer: str
    since: str | None = None
    date_field: str = "installed_at"

    def layers(self) -> list[str]:
        """The counted layer."""
        return [self.layer]


class KeyAreas(Params):
    """Areas measured against targets of their own (``target_field``: a share 0-1), with 2020 baselines."""

    layer: str
    target_field: str
    baselines: dict[str, float] = Field(default_factory=dict)


class AreaCoverageParams(Params):
    """``area_coverage``: covered share of each area's surface."""

    coverage: str
    key_areas: KeyAreas | None = None

    def layers(self) -> list[str]:
        """The key-area layer, when declared."""
        return [self.key_areas.layer] if self.key_areas else []


class AddressCoverageParams(Filtered):
    """``address_coverage``: share of the ``points`` inside the coverage."""

    coverage: str
    points: str

    def layers(self) -> list[str]:
        """The point layer."""
        return [self.points]


class NearParams(Params):
    """Features of one layer covered by those of ``near`` within ``radius_m``."""

    near: str
    radius_m: Number = 50.0

    def covered(self) -> str:
        """The covered layer."""
        raise NotImplementedError

    def layers(self) -> list[str]:
        """The covered layer, then the layer that covers it."""
        return [self.covered(), self.near]


class SiteCoverageParams(NearParams):
    """``site_coverage``: share of ``sites`` with a ``near`` feature within ``radius_m`` (spheroid)."""

    sites: str

    def covered(self) -> str:
        """The sites."""
        return self.sites


class LineCoverageParams(NearParams):
    """``line_coverage``: share of the ``lines`` length within ``radius_m`` of a ``near`` feature."""

    lines: str

    def covered(self) -> str:
        """The lines."""
        return self.lines


class FlagShareParams(Filtered):
    """``flag_share``: share of ``layer`` features whose boolean ``field`` is true."""

    layer: str
    field: str

    def layers(self) -> list[str]:
        """The flagged layer."""
        return [self.layer]


class EventsParams(Filtered):
    """``events``: features of ``layer`` whose ``date_field`` falls in the current year up to the day measured."""

    layer: str
    date_field: str

    def layers(self) -> list[str]:
        """The layer of the events."""
        return [self.layer]


class OnlineShareParams(Params):
    """``online_share``: features of the sensing ``layer`` whose Thing reported within ``window_s``."""

    layer: str
    window_s: Number = 3600.0

    def layers(self) -> list[str]:
        """The sensing layer."""
        return [self.layer]


class LiveSiteCoverageParams(Params):
    """``live_site_coverage``: sites of every layer of ``sites`` with a live ``near`` feature within ``radius_m``."""

    sites: list[str] = Field(min_length=1)
    near: str
    radius_m: Number = 50.0
    window_s: Number = 3600.0

    def layers(self) -> list[str]:
        """The site layers, then the sensing layer."""
        return [*self.sites, self.near]


class Kind(StrEnum):
    """How an indicator value is computed (one measure per kind in ``compute.py``)."""

    count = "count"
    density = "density"
    area_coverage = "area_coverage"
    address_coverage = "address_coverage"
    site_coverage = "site_coverage"
    line_coverage = "line_coverage"
    flag_share = "flag_share"
    events = "events"
    online_share = "online_share"
    live_site_coverage = "live_site_coverage"

    @property
    def params(self) -> type[Params]:
        """The parameter model of the kind."""
        return {Kind.count: CountParams, Kind.density: CountParams, Kind.area_coverage: AreaCoverageParams,
                Kind.address_coverage: AddressCoverageParams, Kind.site_coverage: SiteCoverageParams,
                Kind.line_coverage: LineCoverageParams, Kind.flag_share: FlagShareParams,
                Kind.events: EventsParams, Kind.online_share: OnlineShareParams,
                Kind.live_site_coverage: LiveSiteCoverageParams}[self]

    @property
    def per_area(self) -> bool:
        """Tell whether the denominator is the area's surface (km²)."""
        return self in (Kind.density, Kind.area_coverage)

    @property
    def live(self) -> bool:
        """Tell whether the value follows the readings (recomputed by age, not only on layer changes)."""
        return self in (Kind.online_share, Kind.live_site_coverage)


class HexDeficitParams(Params):
    """``hex_deficit``: H3 cells over the district with the features of a density indicator and their deficit."""

    indicator: str
    resolution: int = Field(default=8, ge=0, le=15)
    count_field: str


class UncoveredParams(Params):
    """``uncovered_area``: each town's (and zone's) part outside a coverage."""

    coverage: str


class SitesWithoutParams(Params):
    """``sites_without``: sites (layer id -> kind label) without a ``near`` feature within ``radius_m``."""

    sites: dict[str, str]
    near: str
    radius_m: Number
    distance_field: str = Field(description="Output field of the distance to the nearest ``near`` feature.")

    def layers(self) -> list[str]:
        """The site layers, then the layer that covers them."""
        return [*self.sites, self.near]


class RasterParams(Params):
    """``density_raster``: a COG of a density indicator's features per km² around each pixel."""

    indicator: str
    name: str
    pixel_m: float = Field(default=100.0, gt=0)


class SuggestionsParams(Params):
    """``suggestions``: every kind of the ``suggestions:`` section, at most ``max_sites`` each."""

    max_sites: int = Field(default=3000, ge=1)


class DerivedKind(StrEnum):
    """How a derived output is written (``gaps.py``, ``raster.py``, ``suggest.py``)."""

    hex_deficit = "hex_deficit"
    uncovered_area = "uncovered_area"
    sites_without = "sites_without"
    density_raster = "density_raster"
    suggestions = "suggestions"

    @property
    def params(self) -> type[Params]:
        """The parameter model of the kind."""
        return {DerivedKind.hex_deficit: HexDeficitParams, DerivedKind.uncovered_area: UncoveredParams,
                DerivedKind.sites_without: SitesWithoutParams, DerivedKind.density_raster: RasterParams,
                DerivedKind.suggestions: SuggestionsParams}[self]

    @property
    def output_fields(self) -> tuple[str, ...]:
        """Fields the output layer must declare (besides those named in the parameters)."""
        return {DerivedKind.hex_deficit: ("h3_index", "town", "area_km2", "density", "target", "deficit"),
                DerivedKind.uncovered_area: ("gap_id", "town", "area_km2"),
                DerivedKind.sites_without: ("site_key", "site_layer", "site_kind", "site_id", "name", "town"),
                DerivedKind.density_raster: (),
                DerivedKind.suggestions: ("site_key", "kind", "rank", "town", "radius_m", "added", "added_unit",
                                          "cumulative_value", "devices")}[self]

    @property
    def writes_layer(self) -> bool:
        """Tell whether the output is a ``kind: derived`` layer of the same id (not a file)."""
        return self is not DerivedKind.density_raster

    @property
    def needs_outline(self) -> bool:
        """Tell whether the output depends on the district outline (all but the site list need the area)."""
        return self is not DerivedKind.sites_without
