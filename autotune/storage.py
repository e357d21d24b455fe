"""Where studies live: storage URLs, their engines, heartbeats, and password masking.

The default storage is the SQLite file ``autotune.db`` in the current directory; ``--storage``
or the ``AUTOTUNE_STORAGE`` environment variable name another, such as a PostgreSQL or
MySQL/MariaDB server that several workers share, or ``grpc://HOST:PORT``, the address of an
``autotune storage-proxy`` in front of one (see :mod:`autotune.proxy`). A URL is never printed
with its password.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autotune.errors import StorageError

ENV_VAR = "AUTOTUNE_STORAGE"
DEFAULT_FILE = "autotune.db"

# A bare dialect gets the driver that autotune installs.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
# Connections each process keeps to a database server, and how many more it may open for a
# moment (closed as soon as they are handed back). The overflow cannot be 0: Optuna's
# RDBStorage holds two connections at once while it checks the tables' version when opened, and
# a pool of one would wait there for 30 s and fail.
POOL_SIZE = 1
POOL_OVERFLOW = 1
_EXAMPLES = "sqlite:///autotune.db or postgresql+psycopg://user@host:5432/db"
# How many times a trial whose worker died is queued again.
MAX_RETRY = 3
PROXY_SCHEME = "grpc://"
# How long opening a grpc:// storage waits for the proxy to answer.
PROXY_WAIT_SECONDS = 5.0


def default_url() -> str:
    """The SQLite file in the current directory, as an absolute URL."""
    return f"sqlite:///{Path.cwd() / DEFAULT_FILE}"


def resolve_url(url: str | None = None) -> str:
    """The storage URL to use: ``url``, else ``$AUTOTUNE_STORAGE``, else :func:`default_url`.

    Raises:
        StorageError: The URL cannot be parsed, or names a database autotune has no driver for.
    """
    url = _encode_password(url or os.environ.get(ENV_VAR) or default_url())
    if is_proxy(url):
        return _proxy_url(url)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not chained: SQLAlchemy's message quotes the whole URL, password included.
        raise StorageError(
            f"'{mask(url)}' is not a storage URL; expected for example {_EXAMPLES}."
        ) from None
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(
            f"Storage '{mask(url)}' uses '{parsed.drivername}', which autotune does not"
            f" support; use SQLite, PostgreSQL or MySQL/MariaDB, e.g. {_EXAMPLES}."
        )
    return parsed.render_as_string(hide_password=False)


def is_proxy(url: str) -> bool:
    """Whether ``url`` names a storage proxy (``grpc://HOST:PORT``) rather than a database."""
    return url.startswith(PROXY_SCHEME)


def proxy_address(url: str) -> tuple[str, int]:
    """The host and port of a resolved ``grpc://HOST:PORT`` URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def _proxy_url(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, or out of range
        host, port = None, None
    if not host or port is None or parts.path not in ("", "/") or parts.query or parts.username:
        raise StorageError(
            f"'{mask(url)}' is not a storage proxy URL; expected grpc://HOST:PORT, for example"
            f" grpc://127.0.0.1:13000 (where `autotune storage-proxy` listens)."
        )
    shown = f"[{host}]" if ":" in host else host
    return f"{PROXY_SCHEME}{shown}:{port}"


# scheme://user:password@host...: the password runs to the last "@", so that one holding an
# unencoded "@" or ":" is hidden whole, not cut at its first "@".
_CREDENTIALS = re.compile(r"^(?P<head>.*?//[^:/@?#]*):(?P<password>.*)@(?P<tail>[^@]*)$")


def _encode_password(url: str) -> str:
    """Percent-encodes a password written with a bare ``@``, which a URL parser would cut there
    (and take the rest for the host)."""
    from urllib.parse import quote

    found = _CREDENTIALS.match(url)
    if found is None or "@" not in found["password"]:
        return url
    return f"{found['head']}:{quote(found['password'], safe='')}@{found['tail']}"


def password_of(url: str) -> str | None:
    """The password in ``url`` as written, or None."""
    found = _CREDENTIALS.match(url)
    return found["password"] if found else None


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``, whatever characters the password holds."""
    found = _CREDENTIALS.match(url)
    return f"{found['head']}:***@{found['tail']}" if found else url


def hide_password(text: str, url: str) -> str:
    """``text`` (a driver's message, say) with ``url``'s password, and any piece of it that a
    parser may have cut at an ``@`` or ``:``, replaced by ``***``."""
    from urllib.parse import unquote

    password = password_of(url)
    if not password:
        return text
    plain = unquote(password)
    pieces = {password, plain, *plain.split("@"), *plain.split(":")}
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    """The database file of an SQLite URL (``sqlite:///path/to.db``)."""
    return Path(url.split("///", 1)[-1])


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    retry_stale: bool = True,
    connections: int | None = None,
) -> Any:
    """Opens Optuna's RDB storage at a resolved URL, or the storage proxy a ``grpc://`` URL
    names (Optuna's ``GrpcStorageProxy``, once the proxy answers).

    With a heartbeat, a trial whose worker stops beating for ``grace_period`` seconds is failed
    by the next worker that starts a trial, and Optuna's ``RetryHeartbeatStaleTrialCallback``
    queues its parameters again. Through a proxy, the proxy fails such trials instead (see
    :mod:`autotune.proxy`), and the heartbeat arguments are not used.

    Args:
        connections: Connections to a database server to keep (none more); by default
            :data:`POOL_SIZE`, and :data:`POOL_OVERFLOW` more for a moment.

    Raises:
        StorageError: The driver is missing, or the database or the proxy cannot be reached;
            the message masks the password.
    """
    if is_proxy(url):
        return _open_proxy(url)
    import optuna
    import sqlalchemy.exc

    # One connection per worker process: the main thread and Optuna's heartbeat thread take
    # turns on it (each storage call holds it for one short transaction), so N workers hold
    # at most N connections, and 64 workers fit a server's default max_connections (100).
    engine_kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
    }
    if connections is not None:
        engine_kwargs.update(pool_size=connections, max_overflow=0)
    if is_sqlite(url):
        # Several local workers share one file: wait for the writer's lock instead of failing.
        engine_kwargs = {"connect_args": {"timeout": 60}}
        path = sqlite_path(url)
        if str(path) not in ("", ".", ":memory:") and not path.parent.is_dir():
            raise StorageError(
                f"Cannot create storage {url}: the folder {path.parent} does not exist."
                f" Create it, or choose another path."
            )
    with quiet_optuna():
        callback = (
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
            if retry_stale
            else None
        )
    last_error: Exception | None = None
    # Several workers starting at once on a fresh database race to create Optuna's tables;
    # the loser sees a duplicate-object error and simply tries again.
    for attempt in range(5):
        try:
            # Heartbeats are marked experimental in Optuna, which would warn on every start.
            with quiet_optuna():
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=callback if heartbeat_interval else None,
                )
            break
        except ImportError as e:
            raise StorageError(
                f"No database driver for {mask(url)}: {e.__cause__ or e}."
                f" Install it, or use {_EXAMPLES}."
            ) from e
        except sqlalchemy.exc.OperationalError as e:
            if "already exists" in str(e.orig):
                # SQLite reports the table-creation race as an operational error.
                last_error = e
                time.sleep(0.2 * (attempt + 1))
                continue
            # Not chained: a driver's message may echo the connection string, password included.
            raise StorageError(
                f"Cannot connect to storage {mask(url)}: {_first_line(e, url)}."
                f" Check that the server runs and the URL is right."
            ) from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            last_error = e
            time.sleep(0.2 * (attempt + 1))
    else:
        raise StorageError(f"Cannot set up storage {mask(url)}: {_first_line(last_error, url)}.")
    if not is_sqlite(url):
        _sessions_in_utc(storage.engine, url)
    if is_sqlite(url):
        # WAL lets readers (the dashboard, `autotune show`) work while a worker writes; the
        # setting is kept in the database file.
        with storage.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    return storage


def _open_proxy(url: str) -> Any:
    """Optuna's client of the storage proxy at ``url``, once the proxy answers."""
    import optuna

    host, port = proxy_address(url)
    # Optuna joins host and port with a colon: an IPv6 address keeps its brackets.
    host = f"[{host}]" if ":" in host else host
    with quiet_optuna():  # the proxy is marked experimental in Optuna
        proxy = optuna.storages.GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=PROXY_WAIT_SECONDS)
    except ConnectionError:
        proxy.close()
        raise StorageError(
            f"No storage proxy answers at {url} (waited {PROXY_WAIT_SECONDS:g} s). Start one"
            f" there with `autotune storage-proxy --port {port}`, or check the host and port."
        ) from None
    return proxy


def proxy_of(storage: Any) -> Any:
    """Optuna's client of a storage proxy under the caches and windows wrapped around it, or
    None for another kind of storage."""
    from optuna.storages import GrpcStorageProxy

    while not isinstance(storage, GrpcStorageProxy) and hasattr(storage, "_backend"):
        storage = storage._backend
    return storage if isinstance(storage, GrpcStorageProxy) else None


def url_of(storage: Any) -> str:
    """The URL of an opened storage (a database's or a proxy's), with its password; empty for
    another kind of storage."""
    rdb = rdb_of(storage)
    if rdb is not None:
        return str(rdb.engine.url.render_as_string(hide_password=False))
    proxy = proxy_of(storage)
    return f"{PROXY_SCHEME}{proxy._host}:{proxy._port}" if proxy is not None else ""


def close(storage: Any) -> None:
    """Closes an opened storage's connections to its database (or its channel to the proxy)."""
    rdb = rdb_of(storage)
    if rdb is not None:
        rdb.engine.dispose()
    proxy = proxy_of(storage)
    if proxy is not None:
        proxy.close()


def rdb_of(storage: Any) -> Any:
    """The RDB storage under Optuna's trial cache, or None for another kind of storage."""
    backend = getattr(storage, "_backend", storage)
    return backend if hasattr(backend, "engine") else None


def running_without_heartbeat(storage: Any, study_id: int) -> set[int]:
    """The ids of the study's RUNNING trials that never wrote a heartbeat (Optuna's stale-trial
    check passes over them); empty for a storage without heartbeats."""
    rdb = rdb_of(storage)
    if rdb is None or rdb.heartbeat_interval is None:
        return set()
    import sqlalchemy

    query = sqlalchemy.text(
        "SELECT t.trial_id FROM trials t WHERE t.study_id = :study AND t.state = 'RUNNING'"
        " AND NOT EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id)"
    )
    with rdb.engine.connect() as connection:
        return {row[0] for row in connection.execute(query, {"study": study_id})}


def lost(error: BaseException, storage: Any) -> StorageError:
    """The fatal error of a storage that stopped answering while a study ran: which storage
    (its password masked), the database's own first line, and that nothing finished is lost.
    """
    url = url_of(storage)
    return StorageError(
        f"The storage {mask(url)} stopped answering: {_first_line(error, url)}. Finished"
        f" trials are kept in it; run the study again once it answers."
    )


def _sessions_in_utc(engine: Any, url: str) -> None:
    """Sets every database session of ``engine`` to UTC.

    Heartbeats are the server's now() kept in a column without a time zone: a session writes
    and reads them in its own time zone, which the client's environment sets (PGTZ, the
    server's default). Every worker must use one zone, or a live trial looks hours old to a
    worker elsewhere and is failed, and a dead one never looks stale.
    """
    import sqlalchemy

    statement = (
        "SET TIME ZONE 'UTC'" if url.startswith("postgresql") else "SET time_zone = '+00:00'"
    )

    def utc(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute(statement)
        cursor.close()
        connection.commit()

    sqlalchemy.event.listen(engine, "connect", utc)
    engine.dispose()  # the connections Optuna opened before the listener go


def error_line(error: BaseException, url: str) -> str:
    """The first line of a database's (or the proxy's) error, ``url``'s password hidden."""
    return _first_line(error, url)


def _first_line(error: BaseException | None, url: str) -> str:
    details = getattr(error, "details", None)  # a gRPC error's own message, from the proxy
    said = details() if callable(details) else None
    text = str(said or getattr(error, "orig", None) or error).strip().splitlines()
    return hide_password(text[0] if text else type(error).__name__, url)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines and experimental-feature warnings off inside the block, and back as
    they were after it: autotune prints its own line per trial, and a notebook that calls it
    keeps its own logging and warning settings."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)
