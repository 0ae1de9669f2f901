"""Ingest pipelines: read real Chinese geodata files, normalise CRS to WGS84, validate and load into PostGIS."""
