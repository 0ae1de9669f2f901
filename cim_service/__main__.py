"""``python -m cim_service``: the ``cim`` command."""

from cim_service.cli import app

app()
