"""Declarative layer catalog: one YAML file per layer (see cim_service.core.catalog.LayerSpec)."""
