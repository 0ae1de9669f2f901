"""Alert rules (the file ``alert_rules.yaml``, or ``CIM_ALERT_RULES``): read, checked against the catalog, and
written to the database, where a trigger evaluates every writer's readings (``store.alerts``).

A rule names a sensing layer, one of its numeric observed properties, a direction, warning and alarm levels
(optionally per value of a layer field, e.g. ``site_kind``), a hysteresis and an offline time. A file naming an
unknown layer, property or field is refused with one line (:class:`AlertRulesError`): the service does not start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cim_service.core.catalog import IDENT, Access, Catalog, Role
from cim_service.core.settings import Settings
from cim_service.store import alerts as store

DEFAULT_RULES = Path(__file__).resolve().parent / "alert_rules.yaml"


class AlertRulesError(ValueError):
    """The rules file cannot be used; the message is one line naming the file, the rule and the problem."""


class Levels(BaseModel):
    """Warning and alarm levels, in the property's unit."""

    model_config = ConfigDict(extra="forbid")

    warning: float | None = None
    alarm: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Levels:
        if self.warning is None and self.alarm is None:
            raise ValueError("give a warning or an alarm level")
        return self


class AlertRule(Levels):
    """One rule of the rules file."""

    id: str
    title_zh: str | None = None
    title_en: str | None = None
    layer: str
    property: str
    direction: Literal["above", "below"] = "above"
    hysteresis: float = Field(default=0.0, ge=0)
    offline_minutes: float | None = Field(default=-1.0, description="-1 (unset): CIM_SENSOR_OFFLINE_S; null: none")
    by: str | None = None
    levels: dict[str, Levels] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.match(v):
            raise ValueError(f"rule id {v!r} must match {IDENT.pattern}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> AlertRule:
        if self.offline_minutes is not None and self.offline_minutes != -1 and self.offline_minutes <= 0:
            raise ValueError("offline_minutes must be positive (or null: no offline alert)")
        if self.levels and self.by is None:
            raise ValueError("levels per value need `by` (the field whose value picks them)")
        sign = 1 if self.direction == "above" else -1
        for name, lv in [("", self), *self.levels.items()]:
            if lv.warning is not None and lv.alarm is not None and sign * lv.warning > sign * lv.alarm:
                where = f" for {name!r}" if name else ""
                raise ValueError(f"the warning level{where} must come before the alarm level ({self.direction})")
        return self

    @property
    def sign(self) -> float:
        """1 for ``above``, -1 for ``below``."""
        return 1.0 if self.direction == "above" else -1.0

    def offline_s(self, settings: Settings) -> float | None:
        """Seconds of silence before an offline alert (None: no offline alert)."""
        if self.offline_minutes is None:
            return None
        return settings.sensor_offline_s if self.offline_minutes == -1 else self.offline_minutes * 60.0

    def rows(self, settings: Settings) -> list[store.RuleRow]:
        """The database rows of the rule: its own levels ('' site kind), then one per value of ``by``."""
        return [store.RuleRow(rule=self.id, layer_id=self.layer, property=self.property, kind_field=self.by,
                              site_kind=kind, sign=self.sign, warning=lv.warning, alarm=lv.alarm,
                              hysteresis=self.hysteresis, offline_s=self.offline_s(settings))
                for kind, lv in [("", self), *self.levels.items()]]


class AlertRules(BaseModel):
    """The rules file."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRule] = Field(default_factory=list)

    def get(self, layer_id: str, prop: str) -> AlertRule | None:
        """The rule of a layer's property (None: none)."""
        return next((r for r in self.rules if r.layer == layer_id and r.property == prop), None)

    def by_id(self, rule_id: str) -> AlertRule | None:
        """The rule with this id."""
        return next((r for r in self.rules if r.id == rule_id), None)


def check(rules: AlertRules, catalog: Catalog) -> None:
    """Refuse rules naming an unknown layer, a non-sensing layer, an unknown property or field (ValueError)."""
    seen: set[tuple[str, str]] = set()
    ids: set[str] = set()
    for r in rules.rules:
        if r.id in ids:
            raise ValueError(f"rule {r.id}: the id is used twice")
        ids.add(r.id)
        if r.layer not in catalog:
            raise ValueError(f"rule {r.id}: unknown layer {r.layer!r}; sensing layers: "
                             f"{', '.join(s.id for s in catalog.sensing_layers)}")
        spec = catalog.get(r.layer)
        if spec.sensing is None:
            raise ValueError(f"rule {r.id}: layer {r.layer!r} is not a sensing layer (no `sensing:` block)")
        props = {p.name for p in spec.sensing.observed_properties}
        if r.property not in props:
            raise ValueError(f"rule {r.id}: layer {r.layer!r} observes no {r.property!r}; it observes "
                             f"{', '.join(sorted(props))}")
        if (r.layer, r.property) in seen:
            raise ValueError(f"rule {r.id}: a second rule on {r.layer}.{r.property}")
        seen.add((r.layer, r.property))
        if r.by is not None:
            if r.by not in spec.field_names:
                raise ValueError(f"rule {r.id}: layer {r.layer!r} has no field {r.by!r}")
            enum = spec.field(r.by).enum
            bad = [k for k in r.levels if enum and k not in enum]
            if bad:
                raise ValueError(f"rule {r.id}: {bad} are not values of {r.layer}.{r.by} ({', '.join(enum)})")


def load_rules(path: Path | None, catalog: Catalog) -> AlertRules:
    """Read and check the rules file (default: the project's); :class:`AlertRulesError` with one line if unusable."""
    path = Path(path) if path is not None else DEFAULT_RULES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AlertRulesError(f"{path}: cannot read the alert rules: {' '.join(str(exc).split())}") from None
    try:
        rules = AlertRules.model_validate(data if data is not None else {})
        check(rules, catalog)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise AlertRulesError(f"{path}: {where}: {err['msg']}") from None
    except ValueError as exc:
        raise AlertRulesError(f"{path}: {exc}") from None
    return rules


def rules_for(settings: Settings, catalog: Catalog) -> AlertRules:
    """The rules of ``CIM_ALERT_RULES`` (or the project's file)."""
    return load_rules(settings.alert_rules, catalog)


def install(conn: sa.Connection, catalog: Catalog, rules: AlertRules, settings: Settings) -> None:
    """Write the rules and the alert layer's feed to the database (in the caller's transaction)."""
    store.sync_rules(conn, [row for r in rules.rules for row in r.rows(settings)])
    feed = catalog.role(Role.alert_feed)
    public = [s.id for s in catalog.sensing_layers if s.access is Access.public]
    store.sync_feed(conn, feed, catalog.role(Role.town_boundaries), public)


def sweep(engine: sa.engine.Engine, now: datetime | None = None) -> int:
    """One offline sweep (its own transaction); the number of offline alerts raised."""
    with engine.begin() as conn:
        return store.sweep(conn, now or datetime.now(UTC))
