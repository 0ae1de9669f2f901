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
        default=None, description="`<layer>.<field>`: this field links each feature to the features of that layer "
        "with the same value (a house's `address_code` -> the standard address); the target's items offer the "
        "linked records with `?expand=<this layer>`.")

    @field_validator("name")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v) or v in SYSTEM_COLUMNS:
            raise ValueError(f"field name {v!r} must match {IDENT.pattern} and not be a system column")
        return v

    @field_validator("references")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", v):
            raise ValueError(f"references {v!r} must be '<layer id>.<field name>'")
        return v

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


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


class Target(BaseModel):
    """The plan indicator(s) a layer feeds."""

    model_config = ConfigDict(extra="forbid")

    indicators: list[str] = Field(default_factory=list)


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


#: fields a layer with ``ingest.parse_address`` declares (what the address parser fills in)
ADDRESS_FIELDS = ("address_code", "full_address", "district", "town", "community", "road", "lane", "sub_lane",
                  "number", "building", "unit", "room", "poi", "parse_level")


class Role(StrEnum):
    """A part a layer plays that code relies on; code asks the catalog for the role, never for a layer id."""

    district_outline = "district_outline"
    town_boundaries = "town_boundaries"
    standard_addresses = "standard_addresses"


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
    fields: list[FieldSpec]
    style: Style = Field(default_factory=Style)
    plan: Target = Field(default_factory=Target)
    default_crs: str = Field(default="wgs84", description="Source CRS assumed by `cim ingest` when --crs is not given.")
    check_district: bool = Field(default=True, description="Flag features outside the district outline.")
    ingest: IngestRules = Field(default_factory=IngestRules)

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
        refs = [*self.key, self.time_field, self.label_field, self.ingest.merge_on, *self.ingest.merge_lists]
        if self.ingest.parse_address:
            refs += ADDRESS_FIELDS
        for ref in refs:
            if ref is not None and ref not in names:
                raise ValueError(f"layer {self.id}: {ref!r} is not a declared field")
        return self

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
                target_id, target_field = f.references.split(".")
                target = self._layers.get(target_id)
                if target is None or target_field not in target.field_names:
                    raise ValueError(f"layer {layer.id}: field {f.name!r} references {f.references!r}, "
                                     f"which is not a declared layer field")

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
        """The layers whose fields reference ``target``: (linking layer, its field, the target's field)."""
        out = []
        for layer in self._layers.values():
            for f in layer.fields:
                if f.references and f.references.split(".")[0] == target.id:
                    out.append((layer, f, f.references.split(".")[1]))
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
