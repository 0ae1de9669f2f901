"""Declarative layer catalog: one YAML file per layer (see cim_service.catalog.LayerSpec)."""
