"""Service settings, read from the environment (prefix ``CIM_``) and an optional ``.env`` file."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Environment(StrEnum):
    """Where the service runs; production refuses development defaults."""

    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    """All configuration of one service process.

    Nothing reads the environment at import time: build ``Settings()`` where it is needed and pass it
    down (``create_app(settings)``, ``cim`` commands), so tests can run against their own database.
    Settings are data only: an unset ``database_url`` is resolved to the project-local cluster's once, where
    the app or a command is assembled (``cim_service.store.localdb.resolve_database_url``).
    """

    model_config = SettingsConfigDict(env_prefix="CIM_", env_file=".env", extra="ignore")

    environment: Environment = Environment.development
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL + PostGIS URL; unset means the project-local cluster (`cim db start`).",
    )
    home: Path = Field(default=PROJECT_ROOT / ".cim", description="Project-local state: database cluster, caches.")
    local_db_port: int = Field(default=54329, ge=1024, le=65535)
    layers_dir: Path | None = Field(default=None, description="Layer catalog folder; default: the `layers` package.")
    indicators_dir: Path | None = Field(default=None, description="Folder of extra indicator declarations "
                                                                  "(*.yaml), read after the built-in ones.")

    # API behaviour
    default_limit: int = Field(default=100, ge=1)
    max_limit: int = Field(default=10_000, ge=1)
    #: the longest interval ``/collections/{id}/changes`` accepts (``to - from``), in days
    history_max_interval_days: int = Field(default=3_660, ge=1)
    #: the largest feature an edit (POST/PUT/PATCH) may send, in bytes
    edit_max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    statement_timeout_ms: int = Field(default=15_000, ge=100)
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    tile_cache: bool = Field(default=True, description="CIM_TILE_CACHE=off disables the server-side tile cache.")
    tile_cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    max_features_per_tile: int = Field(default=20_000, ge=1)
    tiles3d_max_features: int = Field(default=2_500, ge=1, le=100_000, description="Most features of one 3D "
                                      "Tiles content tile (more are split into quadrants).")
    tiles3d_disk_cache: bool = Field(default=True, description="Keep built 3D Tiles in CIM_HOME/3dtiles "
                                     "(CIM_TILES3D_DISK_CACHE=off: memory only).")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Origins whose pages may read the API (CORS): `*` (default: any page reads what anonymous "
                    "callers may read; API keys are never ambient credentials), a comma-separated list of "
                    "origins (https://gis.example.gov.cn), or `off`.")
    # file exports of items (f=gpkg/fgb/parquet/geojsonseq) and PMTiles archives
    max_export_features: int = Field(default=1_000_000, ge=1, description="Most features one export may hold: "
                                     "without `limit` a larger match is refused (400), a larger `limit` clamped.")
    export_batch_rows: int = Field(default=20_000, ge=100, le=1_000_000, description="Rows fetched from the "
                                   "export's server-side cursor and written at a time (a GeoParquet row group).")
    max_concurrent_exports: int = Field(default=2, ge=1, description="Exports running at once per process; "
                                        "one more is a 503 with Retry-After.")
    pmtiles_dir: Path | None = Field(default=None, description="Folder of the PMTiles archives served at "
                                     "/pmtiles/{name}; default: <CIM_HOME>/pmtiles.")
    log_json: bool = True

    # Edge: the origin of links, trusted proxies, request bounds (cim_service/edge.py)
    public_url: str | None = Field(default=None, description="Public base URL of every link, e.g. "
                                   "https://cim.example.gov.cn/api; unset: trusted proxy headers or the "
                                   "address the connection arrived at (never the client's Host header).")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated proxy addresses/networks whose Forwarded and "
                                          "X-Forwarded-* headers are believed (client address, links).")
    max_query_bytes: int = Field(default=32 * 1024, ge=1024)
    max_header_bytes: int = Field(default=8 * 1024, ge=256)
    max_headers_bytes: int = Field(default=32 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=10)
    max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    max_bulk_body_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="Largest body of a bulk "
                                     "write (`POST /sta/v1.1/CreateObservations`, the dataArray extension).")
    sta_mqtt_publish: bool = Field(default=True, description="Publish entities created over /sta/v1.1 on their "
                                   "MQTT entity-set topics (v1.1/Things...) when a broker is configured.")
    sta_max_top: int = Field(default=10_000, ge=1, description="Largest `$top` of a SensorThings request.")
    sta_default_top: int = Field(default=100, ge=1, description="`$top` of a SensorThings request without one.")
    max_html_limit: int = Field(default=500, ge=1, description="Largest items page rendered as HTML.")

    # Indicator defaults
    g5_macro_radius_m: float = Field(default=250.0, gt=0)
    g5_small_radius_m: float = Field(default=100.0, gt=0)
    sensor_site_radius_m: float = Field(default=50.0, gt=0)
    gap_refresh: bool = Field(default=True, description="CIM_GAP_REFRESH=off: the service does not refresh gap "
                                                        "layers in the background (requests still do).")
    gap_refresh_debounce_s: float = Field(default=2.0, ge=0, description="Quiet time after an input change.")
    indicator_statement_timeout_ms: int = Field(
        default=60_000, ge=100, description="Longest statement of an indicator or gap-layer computation (also the "
                                            "longest wait for another computation); one cut off keeps the previous "
                                            "results.")
    indicator_lock_timeout_ms: int = Field(
        default=10_000, ge=100, description="Longest wait of an indicator or gap-layer computation for a table or "
                                            "row lock held by another session.")
    indicator_day_workers: int = Field(
        default=2, ge=1, le=16, description="Days computed at once when indicators are computed as of several days "
                                            "(a trajectory): one connection and transaction each.")

    # Sensing: the MQTT broker, the bridge and the retention of observations (cim_service/sensing)
    mqtt_url: str | None = Field(default=None, description="mqtt://user:password@host:port of the broker; unset "
                                 "means the project-local Mosquitto (`cim broker start`).")
    local_mqtt_port: int = Field(default=18839, ge=1024, le=65535, description="Port of the project-local broker "
                                 "(a free one is taken when another server holds it).")
    sensor_bridge: bool | None = Field(default=None, description="CIM_SENSOR_BRIDGE=on|off: whether `cim serve` "
                                       "runs the MQTT bridge; unset: on, except in the test environment.")
    sensor_raw_days: int = Field(default=30, ge=1, description="Days of raw observations kept; older days are "
                                 "folded into hourly aggregates (`cim sensors compact`).")
    sensor_max_future_s: float = Field(default=300.0, ge=0, description="Readings later than now + this are "
                                       "refused (clock of the device wrong).")
    sensor_batch_size: int = Field(default=5000, ge=1, description="Most messages in one batch of "
                                   "the bridge (one transaction).")
    sensor_batch_wait_ms: int = Field(default=100, ge=1, description="Longest wait for a batch to fill.")
    sensor_batch_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="Most "
                                    "payload bytes in one batch of the bridge (bulk messages of "
                                    "`v1.1/CreateObservations` carry many readings each).")
    sensor_rate_per_s: float = Field(default=10.0, gt=0, description="Readings a second accepted per datastream "
                                     "(token bucket; a device's flood beyond it is dead-lettered).")
    sensor_rate_burst: float = Field(default=50.0, ge=1, description="Burst size of the per-datastream limit.")
    sensor_offline_s: float = Field(default=3600.0, gt=0, le=30 * 86400, description="A sensing feature whose "
                                    "primary datastream received nothing for this long is `offline`.")
    sensor_online_window_s: float = Field(default=3600.0, ge=60, le=30 * 86400, description="A neuron node (any "
                                          "sensing feature) is online when it reported within this many seconds "
                                          "(the plan's 'last hour'; indicator iot_nodes_online and "
                                          "waterlogging_sites_live).")
    live_indicator_period_s: float = Field(default=60.0, ge=5, le=86400, description="Period of the service's "
                                           "recomputation of the live indicators (their stored results older "
                                           "than this are stale).")
    alert_rules: Path | None = Field(default=None, description="CIM_ALERT_RULES: the alert rules file (YAML); "
                                     "unset: cim_service/sensing/alert_rules.yaml.")
    map_indicator: str | None = Field(default=None, description="CIM_MAP_INDICATOR: the indicator the web map "
                                      "opens on (an id of the indicator catalog; default: the one it declares "
                                      "map_default).")
    basemap_url: str | None = Field(default=None, description="CIM_BASEMAP_URL: an external basemap under the "
                                    "map's layers, an XYZ ({z}/{x}/{y}) or WMTS ({TileMatrix}/{TileRow}/"
                                    "{TileCol}) PNG/JPEG tile template, e.g. 天地图 or an intranet service; "
                                    "unset: the map asks nothing of any other host. The provider must allow "
                                    "CORS (the map draws its tiles in WebGL).")
    basemap_crs: Literal["wgs84", "gcj02"] = Field(default="wgs84", description="CIM_BASEMAP_CRS: the datum of "
                                                   "the external basemap's tiles: wgs84 (天地图, OSM) or gcj02 "
                                                   "(AMap/Tencent style; the map moves each tile onto WGS84).")
    alert_sweep_s: float = Field(default=30.0, ge=1, le=3600, description="Period of the offline sweep of the "
                                 "alerts in the service (`cim sensors alerts sweep` does one).")

    # Pushed changes: GET /events (Server-Sent Events, cim_service/sensing/events.py)
    events_queue_size: int = Field(default=256, ge=1, le=100_000, description="Events that may wait for one "
                                   "subscriber; a subscriber with more is dropped (a final `reset` event).")
    events_heartbeat_s: float = Field(default=15.0, ge=0.05, le=300, description="Seconds between heartbeat "
                                      "comments on a quiet stream.")
    events_max_subscribers: int = Field(default=200, ge=1, le=100_000, description="Streams one process holds "
                                        "at once; more are refused with 503 and Retry-After.")
    events_max_datastreams: int = Field(default=1000, ge=1, le=100_000, description="Most datastreams one "
                                        "stream subscribes to (`datastreams=`).")
    events_retry_ms: int = Field(default=3000, ge=100, le=600_000, description="The `retry:` a stream sends "
                                 "(how long a client waits before reconnecting).")
    events_status_interval_s: float = Field(default=0.5, ge=0.05, le=60, description="Least time between two "
                                            "`status` events of a stream (the sensors' live status changes in "
                                            "between are sent together).")
    events_status_max: int = Field(default=1000, ge=1, le=100_000, description="Most sensors of one layer a "
                                   "`status` event names; a layer with more changes in one interval is named in "
                                   "its `refetch` instead (re-read its tiles).")

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        u = urlsplit(value.strip())
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError("CIM_MQTT_URL must look like mqtt://user:password@host:port")
        return value.strip()

    @field_validator("tile_cache", "sensor_bridge", "sta_mqtt_publish", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"on", "off"}:
            return value.strip().lower() == "on"
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in ("off", "none", ""):
                return []
            value = [v.strip() for v in text.split(",") if v.strip()]
        for item in value if isinstance(value, list) else ():
            origin = str(item).strip()
            u = urlsplit(origin)
            if origin != "*" and (u.scheme not in ("http", "https") or not u.hostname or u.path or u.query):
                raise ValueError(f"CIM_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port]) or '*'")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        for item in value if isinstance(value, list) else ():
            ipaddress.ip_network(str(item).strip(), strict=False)  # ValueError names the bad entry
        return value

    @field_validator("basemap_url")
    @classmethod
    def _basemap_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        text = value.strip()
        u = urlsplit(text.replace("{", "").replace("}", ""))
        xyz = all(p in text for p in ("{z}", "{x}", "{y}"))
        wmts = all(p in text for p in ("{TileMatrix}", "{TileRow}", "{TileCol}"))
        if u.scheme not in ("http", "https") or not u.hostname or not (xyz or wmts):
            raise ValueError("CIM_BASEMAP_URL must be an http(s) tile template with {z}, {x} and {y} (XYZ) or "
                             "{TileMatrix}, {TileRow} and {TileCol} (WMTS)")
        return text

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        u = urlsplit(value.strip())
        if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment:
            raise ValueError("CIM_PUBLIC_URL must be an http(s) URL with a host, e.g. https://cim.example.gov.cn")
        return value.strip().rstrip("/")

    @property
    def run_sensor_bridge(self) -> bool:
        """Whether the service runs the MQTT bridge (tests start their own unless told)."""
        if self.sensor_bridge is None:
            return self.environment is not Environment.test
        return self.sensor_bridge

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.default_limit > self.max_limit:
            raise ValueError("CIM_DEFAULT_LIMIT must not exceed CIM_MAX_LIMIT")
        if self.environment is Environment.production and not self.database_url:
            raise ValueError("production needs CIM_DATABASE_URL; the project-local cluster is for development")
        return self

    @property
    def pmtiles_folder(self) -> Path:
        """Folder of the PMTiles archives served at ``/pmtiles/{name}``."""
        return self.pmtiles_dir if self.pmtiles_dir is not None else self.home / "pmtiles"

    @property
    def catalog_dir(self) -> Path:
        """Folder of the declarative layer catalog (a plain property: ``model_copy(update={"layers_dir": …})`` copies
        a cached value, and a copy made for another catalog would keep reading the first one)."""
        if self.layers_dir is not None:
            return self.layers_dir
        import layers

        return Path(layers.__file__).resolve().parent
