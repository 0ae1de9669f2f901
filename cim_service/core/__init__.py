"""The core: what the service knows without a database or HTTP (catalog, field types, CRS, addresses, settings).

Nothing here imports SQLAlchemy, a database driver, FastAPI or Starlette (import-linter contract in pyproject).
"""
