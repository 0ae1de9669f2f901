"""The store: the database. Connections and pools, the project-local cluster, the schema, and one module per
system table (``cim_meta.*``) holding every statement on that table.
"""
