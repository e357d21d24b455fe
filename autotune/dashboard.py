"""optuna-dashboard on a study storage, served until Ctrl-C.

The dashboard is optuna-dashboard's own WSGI app, on the storage that ``autotune run`` writes
to, served by the standard library's threaded WSGI server. The socket is bound before anything
is printed, so a port in use is one clean error rather than a traceback from a thread.
"""

from __future__ import annotations

import functools
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotune import storage as storage_module
from autotune.errors import AutotuneError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# The names a request to a dashboard bound to this machine alone may carry in its Host header.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def host_guard(app: Any, allowed: tuple[str, ...] = LOOPBACK) -> Any:
    """A WSGI app that passes on only requests whose ``Host`` is one of ``allowed``.

    A web page on another site can make a browser send requests to 127.0.0.1 by rebinding a
    name it controls (DNS rebinding); those requests carry that name as their ``Host``.
    Refusing them keeps such a page from reading or deleting studies.
    """

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        host = environ.get("HTTP_HOST", "")
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if name.lower() in allowed:
            return app(environ, start_response)
        body = (
            f"This dashboard answers requests for {', '.join(allowed)} only, not {host!r}. To"
            f" open it to a network on purpose, start it with --host 0.0.0.0 (or the address"
            f" to listen on).\n"
        ).encode()
        start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]

    return guarded


def page_url(host: str, port: int) -> str:
    """The dashboard's address in a browser: ``http://127.0.0.1:8080/dashboard``."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/dashboard"


def make_server(
    url: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, artifacts: Path | None = None
) -> Any:
    """A bound (not yet serving) WSGI server of optuna-dashboard on the storage at ``url``,
    with the artifact store (trials' checkpoints, the best model) that ``autotune run`` writes.

    Args:
        url: A resolved storage URL.
        host: The address to listen on; 127.0.0.1 keeps the dashboard on this machine.
        port: The port; 0 picks a free one.
        artifacts: The artifact folder; by default the storage's (see
            :func:`autotune.checkpoints.default_folder`). It is read, never made.

    Raises:
        AutotuneError: The address is in use or cannot be bound.
        StorageError: The storage cannot be opened.
    """
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
    from wsgiref.simple_server import make_server as wsgi_server

    import optuna_dashboard

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """One line per request would bury the URL; the dashboard shows what matters."""

    # The dashboard recomputes importances on every page load; Optuna's warnings about few
    # trials would fill the terminal, and the page already says what it can.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna\.importance")
    # Optuna's trial cache: each poll of the study's page reads only the trials that changed
    # since the last one, not the whole study (optuna-dashboard reads a bare RDB storage whole
    # whenever its own 10-second cache has run out).
    from optuna.storages._cached_storage import _CachedStorage

    storage = _CachedStorage(storage_module.open_storage(url, retry_stale=False))
    _scan_new_trials_only()
    from optuna.artifacts import FileSystemArtifactStore

    from autotune.checkpoints import default_folder

    folder = artifacts if artifacts is not None else default_folder(url)
    # The folder may come only with the first checkpoint; the store reads it as it is then.
    app = optuna_dashboard.wsgi(storage, artifact_store=FileSystemArtifactStore(str(folder)))
    if host in LOOPBACK:
        app = host_guard(app)
    try:
        return wsgi_server(host, port, app, server_class=Server, handler_class=QuietHandler)
    except OSError as e:
        raise AutotuneError(
            f"Cannot listen on {host}:{port}: {e.strerror or e}. Choose another port with"
            f" --port, or stop what uses this one."
        ) from e


@functools.cache
def _scan_new_trials_only() -> None:
    """Makes optuna-dashboard's per-study summary (search spaces, attribute names) look at the
    new trials on each poll, not at every trial again.

    Its cursor moves only to the oldest unfinished trial, so once a study has none (every
    trial finished, between runs or at the end of one) each poll rescanned the whole study:
    12 s a poll at 10,000 trials. Here the cursor moves past the last trial when every trial
    it scanned has finished; what the summary holds is unchanged.
    """
    from optuna_dashboard import _inmemory_cache

    summary = _inmemory_cache._CachedExtraStudyProperty
    update = summary.update

    def update_then_move_on(self: Any, trials: list[Any]) -> None:
        before = self._cursor
        update(self, trials)
        scanned = [t for t in trials if t.number >= before]
        if trials and self._cursor == before and all(t.state.is_finished() for t in scanned):
            self._cursor = trials[-1].number + 1

    summary.update = update_then_move_on


def serve(
    url: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[str], None] | None = None,
    artifacts: Path | None = None,
) -> None:
    """Serves optuna-dashboard on the storage at ``url`` until Ctrl-C.

    Args:
        url: A resolved storage URL.
        host, port, artifacts: Where to listen, and the artifacts; see :func:`make_server`.
        ready: Called with the page's address once the server accepts connections.
    """
    server = make_server(url, host, port, artifacts)
    try:
        if ready is not None:
            ready(page_url(host, server.server_port))
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
