"""``datakeep ui``: the read-only web view of the keep (the ``ui`` extra)."""

from __future__ import annotations

import ipaddress
import socket

import click

from ..errors import DatakeepError
from . import cli

__all__: list[str] = []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _bound(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that the URL printed is the one served (port 0
    gives a free port) and a port in use is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise DatakeepError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8421,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the view in a web browser.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other than loopback: anyone who reaches it reads the keep.",
)
def ui(host: str, port: int, open_browser: bool, allow_remote: bool) -> None:
    """Serve a read-only web view of the keep: content and trees, runs, workspaces,
    record directories, file stores and health, with a JSON API under /api/.

    \b
    Example:
        datakeep ui --open
        datakeep ui --port 9000 && curl localhost:9000/api/runs
    """
    remote = not _is_loopback(host)
    if remote and not allow_remote:
        raise click.UsageError(
            f"--host {host} is not a loopback address: the keep would be readable by anyone "
            "who reaches it; add --allow-remote if that is meant"
        )
    try:
        import uvicorn

        from ..ui import LOOPBACK_HOSTS, create_app, open_read_only
    except ImportError as exc:
        raise DatakeepError(
            f"the web view needs the ui extra ({exc.name} is missing): pip install 'datakeep[ui]'"
        ) from None
    if remote:
        click.echo(
            f"datakeep: warning: serving on {host}, not loopback: anyone who reaches this "
            "address can read every content, run and workspace of the keep",
            err=True,
        )
    keep = open_read_only(".")
    sock = _bound(host, port)
    allowed = ["*"] if remote else [*LOOPBACK_HOSTS, host]
    app = create_app(keep, allowed_hosts=allowed, close_keep=True)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    click.echo(f"serving {keep.path.parent} read-only at {url} (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(0.3, webbrowser.open, [url]).start()
    server.run(sockets=[sock])
