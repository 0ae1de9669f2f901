"""OGC 3D Tiles 1.1 of the extruded layers (``height_field``): glTF 2.0 content built with numpy, cached by version."""
