"""OGC SensorThings API 1.1: the query language, the entity model over ``cim_sta``, SQL compilation, writes."""
