"""The CIM一张图 planners' web map: deck.gl page builder, bundled assets, static export."""
