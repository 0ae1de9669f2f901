"""Tiles: tile matrix sets, MVT SQL, the tile cache with its invalidation listener, raster tiles, TileJSON."""
