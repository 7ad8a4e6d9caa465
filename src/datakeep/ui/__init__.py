"""The web view of a keep: ``datakeep ui`` serves its content, runs, workspaces, record
directories and file stores read-only, as HTML pages and as JSON under ``/api/``.

    from datakeep.ui import create_app, open_read_only
    app = create_app(open_read_only("."))      # any ASGI server runs it

Needs the ``ui`` extra (Starlette, Jinja2, uvicorn).
"""

from .app import LOOPBACK_HOSTS, create_app
from .readonly import open_read_only

__all__ = ["LOOPBACK_HOSTS", "create_app", "open_read_only"]
