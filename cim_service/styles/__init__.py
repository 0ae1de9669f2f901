"""Map styles from the catalog's ``style:`` declarations: MapLibre/Mapbox GL style JSON and SLD 1.1."""
