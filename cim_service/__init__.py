"""Minhang CIM: CIM一张图 spatial data service for Minhang District, Shanghai."""

__version__ = "0.1.0"
