"""The declarative layer catalog: one YAML file per layer in ``layers/``, read once into a registry.

The catalog is the single source of truth for the pipelines (what a file must contain), the database
(which table and columns exist), the API (what a collection offers and who may see it) and the map
(titles, style, grouping). Layers differ by declaration, not by code.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cim_service.core.fieldtypes import FieldType

IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: columns every layer table has besides its declared fields
SYSTEM_COLUMNS = ("id", "feature_key", "geom", "geom_3857", "outside_district", "batch_id", "updated_at")
LAYER_SCHEMA = "cim"


class Access(StrEnum):
    """Who may read a layer: everybody, any authenticated user, or roles granted restricted data."""

    public = "public"
    internal = "internal"
    restricted = "restricted"


class GeometryType(StrEnum):
    """Geometry type of a layer's ``geom`` column (always EPSG:4326 in the database)."""

    Point = "Point"
    LineString = "LineString"
    Polygon = "Polygon"
    MultiPoint = "MultiPoint"
    MultiLineString = "MultiLineString"
    MultiPolygon = "MultiPolygon"

    @property
    def is_point(self) -> bool:
        """Tell whether features are points."""
        return self in (GeometryType.Point, GeometryType.MultiPoint)


class FieldSpec(BaseModel):
    """One attribute of a layer."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: FieldType = FieldType.text
    required: bool = False
    personal: bool = Field(default=False, description="Personal data: never served without the `personal_data` scope.")
    title_zh: str
    title_en: str
    description: str | None = None
    enum: list[Any] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    aliases: list[str] = Field(default_factory=list, description="Other column names accepted on ingest.")
    references: str | None = Field(
        default=None, description="Id of the layer whose (one-field) key this field holds, e.g. the standard "
        "address a building stands at.")

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v) or v in SYSTEM_COLUMNS:
            raise ValueError(f"field name {v!r} must match {IDENT.pattern} and not be a system column")
        return v

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


class Label(BaseModel):
    """A layer's map labels (web map, MapLibre style, SLD): which fields name a feature and how labels compete.

    ``priority`` decides collisions (a higher one is placed first, the others give way); ``placement`` is
    ``point`` (at the point, or a polygon's interior point) or ``line`` (along the line, never upside down).
    """

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="The Chinese label field.")
    field_en: str | None = Field(default=None, description="The English label field (the EN switch).")
    size: float = Field(default=12, ge=6, le=48, description="Text size in pixels.")
    priority: int = Field(default=0, ge=0, le=100, description="Collision priority: higher labels win.")
    placement: Literal["point", "line"] = "point"
    min_zoom: float = Field(default=0, ge=0, le=24, description="Lowest zoom the labels show at.")
    color: list[int] = Field(default_factory=lambda: [40, 40, 40, 255], description="Text colour (RGBA 0-255).")


class Ramp(BaseModel):
    """The choropleth ramps of a layer drawn by an indicator's values: RGB colours from the target outwards.

    ``not_met`` runs from just short of the target to furthest from it, ``met`` from just at the target to
    furthest beyond it: the map breaks the colours at the target, so the two sides never look alike.
    """

    model_config = ConfigDict(extra="forbid")

    met: list[list[int]] = Field(min_length=2, max_length=7, description="RGB colours at/beyond the target.")
    not_met: list[list[int]] = Field(min_length=2, max_length=7, description="RGB colours short of the target.")

    @field_validator("met", "not_met")
    @classmethod
    def _rgb(cls, colours: list[list[int]]) -> list[list[int]]:
        for c in colours:
            if len(c) != 3 or any(not 0 <= v <= 255 for v in c):
                raise ValueError(f"a ramp colour is 3 values 0-255 (RGB), not {c}")
        return colours


class Columns(BaseModel):
    """In the 3D view, the layer's polygons stand as columns as high as a number field says (a gap layer's
    deficit): ``field`` × ``metres_per_unit`` metres."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="The number field the columns' height comes from.")
    metres_per_unit: float = Field(gt=0, le=1000, description="Metres of column per unit of the field.")
    opacity: float = Field(default=1.0, gt=0, le=1, description=(
        "Opacity of the columns (times the layer's): columns lighter than the flat cells let the buildings in "
        "and behind them show through."))


class Style(BaseModel):
    """Default map style of a layer (deck.gl conventions: RGBA 0-255, radius in pixels)."""

    model_config = ConfigDict(extra="forbid")

    fill: list[int] = Field(default_factory=lambda: [30, 120, 200, 180])
    line: list[int] = Field(default_factory=lambda: [255, 255, 255, 200])
    line_width: float = 1.0
    radius: float = 3.0
    min_zoom: int = 0
    visible: bool = True
    group: str = "基础"
    label: Label | None = Field(default=None, description="Labels drawn on the map (fields, size, priority).")
    ramp: Ramp | None = Field(default=None, description="Choropleth ramps broken at an indicator's target "
                              "(the town boundaries: the map colours them by the selected indicator).")
    columns: Columns | None = Field(default=None, description="3D view: the polygons as columns of a number "
                                    "field (shown with the 3D view).")


class Target(BaseModel):
    """The plan indicator(s) a layer feeds."""

    model_config = ConfigDict(extra="forbid")

    indicators: list[str] = Field(default_factory=list)


class HeightFromFloors(BaseModel):
    """Derive a height (metres) from a storey count where a file gives none: ``floors`` × ``storey_height_m``."""

    model_config = ConfigDict(extra="forbid")

    height: str = Field(description="The height field (metres) to fill.")
    floors: str = Field(description="The storey-count field it is derived from.")
    storey_height_m: float = Field(gt=0, le=20, description="The declared storey height (metres).")


class IngestRules(BaseModel):
    """How ``cim ingest`` prepares a file for this layer beyond column mapping and validation."""

    model_config = ConfigDict(extra="forbid")

    parse_address: bool = Field(
        default=False, description="Rows with an address text (`full_address`) but no `address_code` get their "
        "GA/T 2000.32 levels, standard text and code from the address parser (the file's own values win).")
    merge_on: str | None = Field(
        default=None, description="Rows sharing this field's value are one feature (the first row's attributes).")
    merge_lists: list[str] = Field(
        default_factory=list, description="Fields whose values are joined over merged rows ('1号线,5号线').")
    height_from_floors: HeightFromFloors | None = Field(
        default=None, description="Rows without a height get floors × the declared storey height.")


#: fields a layer with ``ingest.parse_address`` declares (what the address parser fills in)
ADDRESS_FIELDS = ("address_code", "full_address", "district", "town", "community", "road", "lane", "sub_lane",
                  "number", "building", "unit", "room", "poi", "parse_level")


class Unit(BaseModel):
    """Unit of measurement of a SensorThings Datastream (name, symbol, definition URI)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    symbol: str
    definition: str = ""


class ObservedPropertySpec(BaseModel):
    """One quantity the sensors of a layer report: a Datastream per feature (of the kinds in ``where``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    title_zh: str | None = None
    title_en: str | None = None
    definition: str = ""
    description: str = ""
    unit: Unit
    minimum: float | None = Field(default=None, description="Smallest plausible reading (lower ones are refused).")
    maximum: float | None = Field(default=None, description="Largest plausible reading (higher ones are refused).")
    where: dict[str, list[Any]] = Field(
        default_factory=dict, description="Only features whose field has one of these values sense this "
        "property (e.g. {sensor_kind: [water]}); empty: every feature.")

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError(f"observed property name {v!r} must match {IDENT.pattern}")
        return v


class SensorSpec(BaseModel):
    """The SensorThings Sensor (the device model) of a sensing layer's features."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    encoding_type: str = "text/html"
    metadata: str = ""


#: members the items and tiles of a sensing layer carry besides its fields (its primary datastream's state)
LIVE_MEMBERS = ("latest_value", "latest_time", "status")


class LiveStatus(BaseModel):
    """Which reading is a sensing feature's live state (its levels are the alert rules', ``sensing.alerts``).

    ``status`` is ``offline`` when the primary datastream has reported nothing for the offline time of its alert
    rule (default ``CIM_SENSOR_OFFLINE_S``), else the severity of its active alert (``alarm`` / ``warning``, with
    the rule's hysteresis), else ``ok``.
    """

    model_config = ConfigDict(extra="forbid")

    property: str = Field(description="The observed property whose latest reading is the feature's state.")


class Sensing(BaseModel):
    """A sensing layer: its features are SensorThings Things whose Location is the feature's point."""

    model_config = ConfigDict(extra="forbid")

    sensor: SensorSpec
    observed_properties: list[ObservedPropertySpec] = Field(min_length=1)
    live: LiveStatus | None = Field(default=None, description="Primary property and status levels; default: the "
                                    "first observed property, no levels (ok or offline).")

    @model_validator(mode="after")
    def _unique(self) -> Sensing:
        names = [p.name for p in self.observed_properties]
        if len(set(names)) != len(names):
            raise ValueError("observed property names must be unique within a layer")
        if self.live is None:
            self.live = LiveStatus(property=names[0])
        elif self.live.property not in names:
            raise ValueError(f"live.property {self.live.property!r} is not an observed property of the layer")
        primary = next(p for p in self.observed_properties if p.name == self.live.property)
        if primary.where:
            raise ValueError(f"live.property {primary.name!r} must be sensed by every feature (no 'where')")
        return self


class Role(StrEnum):
    """A part a layer plays that code relies on; code asks the catalog for the role, never for a layer id."""

    district_outline = "district_outline"
    town_boundaries = "town_boundaries"
    standard_addresses = "standard_addresses"
    alert_feed = "alert_feed"  # the OGC API collection of the alerts (fed by the alert trigger, store.alerts)


class LayerSpec(BaseModel):
    """Declaration of one layer: the file ``layers/<id>.yaml``."""

    model_config = ConfigDict(extra="forbid")

    id: str
    table: str
    order: int = Field(default=1000, description="Listing and display order (ascending); ties by id.")
    roles: list[Role] = Field(default_factory=list, description="Parts this layer plays (at most one layer each).")
    title_zh: str
    title_en: str
    description_zh: str | None = None
    description_en: str | None = None
    geometry: GeometryType
    access: Access = Access.public
    kind: Literal["source", "derived"] = Field(
        default="source", description="`derived` layers are written by the indicator engine, not ingested."
    )
    key: list[str] = Field(
        default_factory=list,
        description="Natural key fields; empty means features are keyed by a hash of geometry and attributes.",
    )
    time_field: str | None = None
    label_field: str | None = None
    label_field_en: str | None = Field(default=None, description="The English label (the map's EN switch).")
    height_field: str | None = Field(
        default=None, description="Extrusion height in metres: polygons are drawn extruded on the map and served "
        "as OGC 3D Tiles (`/collections/{id}/3dtiles`).")
    fields: list[FieldSpec]
    style: Style = Field(default_factory=Style)
    plan: Target = Field(default_factory=Target)
    default_crs: str = Field(default="wgs84", description="Source CRS assumed by `cim ingest` when --crs is not given.")
    check_district: bool = Field(default=True, description="Flag features outside the district outline.")
    ingest: IngestRules = Field(default_factory=IngestRules)
    sensing: Sensing | None = Field(default=None, description="Features are SensorThings Things (point layers).")

    @field_validator("id", "table")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError(f"{v!r} must match {IDENT.pattern}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> LayerSpec:
        names = [f.name for f in self.fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"layer {self.id}: duplicate fields {sorted(dupes)}")
        label = self.style.label
        refs = [*self.key, self.time_field, self.label_field, self.label_field_en, self.height_field,
                label.field if label else None, label.field_en if label else None,
                self.ingest.merge_on, *self.ingest.merge_lists]
        rule = self.ingest.height_from_floors
        if rule is not None:
            refs += [rule.height, rule.floors]
        if self.ingest.parse_address:
            refs += ADDRESS_FIELDS
        if self.sensing is not None:
            if not self.geometry.is_point:
                raise ValueError(f"layer {self.id}: a sensing layer must have point geometry")
            refs += [f for p in self.sensing.observed_properties for f in p.where]
            clash = set(LIVE_MEMBERS) & set(names)
            if clash:
                raise ValueError(f"layer {self.id}: fields {sorted(clash)} are the live members of a sensing layer")
        for ref in refs:
            if ref is not None and ref not in names:
                raise ValueError(f"layer {self.id}: {ref!r} is not a declared field")
        numeric = (FieldType.integer, FieldType.float)
        for ref in (self.height_field, rule.height if rule else None, rule.floors if rule else None):
            if ref is not None and self.field(ref).type not in numeric:
                raise ValueError(f"layer {self.id}: {ref!r} must be a number field (integer or float)")
        if label is not None and label.placement == "line" and "Line" not in self.geometry.value:
            raise ValueError(f"layer {self.id}: label placement 'line' needs line geometry")
        if label is not None and any(self.field(f).personal for f in (label.field, label.field_en) if f):
            raise ValueError(f"layer {self.id}: a label field must not be personal data (labels are drawn for all)")
        if self.height_field is not None and self.geometry not in (GeometryType.Polygon, GeometryType.MultiPolygon):
            raise ValueError(f"layer {self.id}: height_field needs polygon geometry, not {self.geometry.value}")
        columns = self.style.columns
        if columns is not None:
            if columns.field not in names or self.field(columns.field).type not in numeric:
                raise ValueError(f"layer {self.id}: style.columns.field {columns.field!r} must be a declared "
                                 "number field")
            if self.geometry not in (GeometryType.Polygon, GeometryType.MultiPolygon):
                raise ValueError(f"layer {self.id}: style.columns needs polygon geometry, not {self.geometry.value}")
        return self

    @property
    def extruded(self) -> bool:
        """Tell whether the layer's polygons have a height (3D Tiles, extruded on the map)."""
        return self.height_field is not None

    # -- conveniences ----------------------------------------------------------------------------
    @property
    def qualified_table(self) -> str:
        """Schema-qualified, quoted table name (identifiers are validated, so quoting is safe)."""
        return f'"{LAYER_SCHEMA}"."{self.table}"'

    def field(self, name: str) -> FieldSpec:
        """Return the declared field ``name`` or raise KeyError."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> list[str]:
        """Names of the declared fields in declaration order."""
        return [f.name for f in self.fields]

    @property
    def personal_fields(self) -> list[str]:
        """Names of the personal-data fields."""
        return [f.name for f in self.fields if f.personal]

    def public_fields(self, *, personal_data: bool) -> list[FieldSpec]:
        """Fields a caller may see: personal ones only with the personal-data scope."""
        return [f for f in self.fields if personal_data or not f.personal]


class Catalog:
    """The registry of layers, keyed by id."""

    def __init__(self, layers: list[LayerSpec]):
        self._layers = {layer.id: layer for layer in layers}
        tables = [layer.table for layer in layers]
        dupes = {t for t in tables if tables.count(t) > 1}
        if dupes:
            raise ValueError(f"layers share tables: {sorted(dupes)}")
        self._roles: dict[Role, LayerSpec] = {}
        for layer in layers:
            for role in layer.roles:
                if role in self._roles:
                    raise ValueError(f"role {role.value!r} declared by both {self._roles[role].id!r} and {layer.id!r}")
                self._roles[role] = layer
        for layer in layers:
            for f in layer.fields:
                if f.references is None:
                    continue
                target = self._layers.get(f.references)
                if target is None or len(target.key) != 1:
                    raise ValueError(f"layer {layer.id}: field {f.name!r} references {f.references!r}, "
                                     f"which is not a layer with a one-field key")

    def __iter__(self):
        return iter(self._layers.values())

    def __len__(self) -> int:
        return len(self._layers)

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self._layers

    def get(self, layer_id: str) -> LayerSpec:
        """Return the layer ``layer_id`` or raise UnknownLayerError."""
        try:
            return self._layers[layer_id]
        except KeyError:
            raise UnknownLayerError(layer_id, sorted(self._layers)) from None

    @property
    def ids(self) -> list[str]:
        """Layer ids in catalog order."""
        return list(self._layers)

    def links_to(self, target: LayerSpec) -> list[tuple[LayerSpec, FieldSpec, str]]:
        """The layers whose fields reference ``target``: (linking layer, its field, the target's key field)."""
        out = []
        for layer in self._layers.values():
            for f in layer.fields:
                if f.references == target.id:
                    out.append((layer, f, target.key[0]))
        return out

    def role(self, role: Role | str) -> LayerSpec | None:
        """Return the layer declaring ``role``, or None when no layer plays it."""
        return self._roles.get(Role(role))

    def require_role(self, role: Role | str) -> LayerSpec:
        """Return the layer declaring ``role``; raise LookupError naming the role when none does."""
        spec = self.role(role)
        if spec is None:
            raise LookupError(f"no layer of the catalog declares the role {Role(role).value!r} "
                              f"(roles are declared in layers/*.yaml)")
        return spec

    @property
    def sensing_layers(self) -> list[LayerSpec]:
        """Layers whose features are SensorThings Things, in catalog order."""
        return [layer for layer in self._layers.values() if layer.sensing is not None]

    @property
    def roles(self) -> dict[str, str]:
        """Role name -> layer id, for every declared role."""
        return {role.value: spec.id for role, spec in self._roles.items()}


class UnknownLayerError(KeyError):
    """A layer id that the catalog does not declare."""

    def __init__(self, layer_id: str, known: list[str]):
        super().__init__(layer_id)
        self.layer_id = layer_id
        self.known = known

    def __str__(self) -> str:
        return f"unknown layer {self.layer_id!r}; known layers: {', '.join(self.known)}"


def load_catalog(folder: Path | None = None) -> Catalog:
    """Read every ``*.yaml`` in the catalog folder, validated; errors name the file."""
    if folder is None:
        import layers

        folder = Path(layers.__file__).resolve().parent
    specs: list[LayerSpec] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            spec = LayerSpec.model_validate(data)
        except Exception as exc:  # report which declaration is wrong
            raise ValueError(f"{path}: invalid layer declaration: {exc}") from exc
        if spec.id != path.stem:
            raise ValueError(f"{path}: layer id {spec.id!r} must equal the file name")
        specs.append(spec)
    specs.sort(key=lambda s: (s.order, s.id))
    return Catalog(specs)
