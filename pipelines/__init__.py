"""Ingest pipelines: read real Chinese geodata files, normalise their CRS to WGS84, validate, load into PostGIS."""
