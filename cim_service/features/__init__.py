"""OGC API Features internals: CRS handling, parameter parsing, CQL2 translation, SQL building, output formats."""
