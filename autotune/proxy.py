"""A storage proxy: many workers, a few database connections, and crash safety kept.

``autotune storage-proxy`` serves Optuna's gRPC storage proxy in front of a database, so that
workers open ``grpc://HOST:PORT`` and only the proxy holds connections to the database (at most
:data:`THREADS` and one more for its monitor, however many workers there are).

Optuna's heartbeats need a worker that writes to the database itself, so through the proxy
autotune keeps its own, split in two:

- **a worker** (:func:`beating`) counts up the trial's system attribute :data:`BEAT_ATTR`
  every ``heartbeat_interval`` seconds while the trial runs, through the proxy;
- **the proxy** (:class:`Monitor`) looks at every RUNNING trial of every autotune study once a
  second and fails one whose beat has not changed for the study's ``grace_period`` seconds,
  timed on the proxy's own clock (no two machines' clocks are compared; a trial never seen
  beating counts from when the monitor first saw it). Optuna's
  ``RetryHeartbeatStaleTrialCallback`` then queues its params again, as for a stale trial of
  a direct worker, so a retry goes on from the dead trial's checkpoint.

Workers that open the database directly may share a study with workers behind the proxy: each
beat the monitor sees is written as the trial's Optuna heartbeat too, so direct workers take a
trial behind the proxy for alive while it beats, and the monitor fails a direct worker's trial
whose Optuna heartbeat stops changing, as it does one behind the proxy.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from autotune import storage as storage_module
from autotune import study as study_module
from autotune.errors import AutotuneError, StorageError
from autotune.spec import GRACE_PERIOD, HEARTBEAT_INTERVAL

if TYPE_CHECKING:
    import optuna

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000
# The trial system attribute a worker behind the proxy counts up while its trial runs.
BEAT_ATTR = "autotune:beat"
# Requests the proxy serves at once, each on a database connection of its own.
THREADS = 16
# How often the monitor looks at the running trials.
MONITOR_SECONDS = 1.0


class Proxy:
    """Optuna's gRPC storage proxy on the database at ``url``, with the heartbeat monitor.

    The server is bound when this is made (a port in use is one error, not a second server on
    it), and serves from :meth:`start` to :meth:`stop`.

    Args:
        url: A resolved database URL (not another proxy's).
        host: The address to listen on; 127.0.0.1 keeps the proxy on this machine.
        port: The port; 0 picks a free one (see :attr:`port`).
        threads: Requests served at once, and database connections.
        warn: Told of the monitor's errors (once each, until it works again).

    Raises:
        StorageError: The URL names a proxy, or the database cannot be opened.
        AutotuneError: The address is in use or cannot be bound.
    """

    def __init__(
        self,
        url: str,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        threads: int = THREADS,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if storage_module.is_proxy(url):
            raise StorageError(
                f"A storage proxy serves a database, not another proxy ({url}). Give the"
                f" database's URL, e.g. postgresql+psycopg://user@host:5432/db."
            )
        import optuna

        _check_free(host, port)
        self.url = url
        self.host = host
        rdb = storage_module.open_storage(url, retry_stale=False, connections=threads + 1)
        # Optuna's trial cache reads only the trials that changed, not the study, per request.
        self.storage = optuna.storages._CachedStorage(rdb)
        self.monitor = Monitor(self.storage)
        self.server = _bound_server(self.storage, host, port, threads)
        self.port: int = self.server.port
        self._warn = warn
        self._stop = threading.Event()
        self._watching: threading.Thread | None = None

    @property
    def address(self) -> str:
        """The storage URL workers use: ``grpc://HOST:PORT`` (this machine's name for a proxy
        that listens on every address)."""
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        shown = f"[{host}]" if ":" in host else host
        return f"{storage_module.PROXY_SCHEME}{shown}:{self.port}"

    def start(self) -> None:
        """Serves requests, and starts the monitor."""
        self.server.start()
        self._watching = threading.Thread(
            target=self.monitor.watch, args=(self._stop, MONITOR_SECONDS, self._warn),
            name="autotune-proxy-monitor", daemon=True,
        )  # fmt: skip
        self._watching.start()

    def stop(self) -> None:
        """Stops serving (requests in flight get a second to finish) and the monitor, and
        closes the database connections."""
        self.server.stop(grace=1.0).wait()
        self._stop.set()
        if self._watching is not None:
            self._watching.join()
        storage_module.rdb_of(self.storage).engine.dispose()


class _Server:
    """A gRPC server and the port it is bound to."""

    def __init__(self, server: Any, port: int) -> None:
        self.server = server
        self.port = port

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float) -> Any:
        return self.server.stop(grace)

    def wait_for_termination(self) -> None:
        self.server.wait_for_termination()


def _bound_server(storage: Any, host: str, port: int, threads: int) -> _Server:
    """Optuna's proxy service on ``storage``, bound to ``host:port``.

    Made here rather than by ``optuna.storages.run_grpc_proxy_server``, which serves the same
    service: that one cannot say which port it bound when given 0, and leaves gRPC's
    SO_REUSEPORT on, with which a second proxy on a port in use starts without error and takes
    half the workers' requests.
    """
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="autotune-proxy"),
        options=[("grpc.so_reuseport", 0)],
    )
    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    shown = f"[{host}]" if ":" in host else host
    try:
        bound = server.add_insecure_port(f"{shown}:{port}")
    except RuntimeError as e:  # taken between the check and now
        raise _cannot_listen(host, port, "address already in use") from e
    return _Server(server, bound)


def _check_free(host: str, port: int) -> None:
    """Refuses an address that another program listens on (gRPC would only log it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise _cannot_listen(host, port, e.strerror or str(e)) from e


def _cannot_listen(host: str, port: int, why: str) -> AutotuneError:
    return AutotuneError(
        f"Cannot listen on {host}:{port}: {why.lower()}. Choose another port with --port, or"
        f" stop what uses this one."
    )


def serve(
    url: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[Proxy], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Serves the storage proxy on the database at ``url`` until Ctrl-C.

    Args:
        url, host, port, warn: See :class:`Proxy`.
        ready: Called with the proxy once it serves.
    """
    proxy = Proxy(url, host, port, warn=warn)
    # The workers' requests would make Optuna log a line for each study they create.
    with storage_module.quiet_optuna():
        try:
            proxy.start()
            if ready is not None:
                ready(proxy)
            proxy.server.wait_for_termination()
        except KeyboardInterrupt:
            pass
        finally:
            proxy.stop()


class Monitor:
    """Fails the RUNNING trials of autotune studies whose beat stopped (see the module's
    docstring), and queues their params again.

    Args:
        storage: The storage the proxy serves (an RDB storage, or Optuna's cache over one).
        clock: Seconds on a clock that only goes forward.
    """

    def __init__(self, storage: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.rdb = storage_module.rdb_of(storage)
        self.clock = clock
        # trial id -> (its last beat, when that beat was first seen)
        self.seen: dict[int, tuple[tuple[str, Any], float]] = {}

    def watch(
        self, stop: threading.Event, every: float, warn: Callable[[str], None] | None = None
    ) -> None:
        """Checks every ``every`` seconds until ``stop`` is set; a database error is said once
        (through ``warn``) and the checks go on."""
        said = None
        while not stop.wait(every):
            try:
                self.check()
                said = None
            except Exception as e:
                line = storage_module.error_line(e, storage_module.url_of(self.storage))
                if warn is not None and line != said:
                    warn(f"The proxy cannot check the running trials now: {line}. It goes on.")
                said = line

    def check(self) -> list[int]:
        """One look at the running trials.

        Returns:
            The ids of the trials this look failed.
        """
        now = self.clock()
        rows = self._running()
        graces = {study_id: self._grace_period(study_id) for study_id in {r[1] for r in rows}}
        seen = {}
        failed = []
        for trial_id, study_id, beat, heartbeat in rows:
            grace = graces[study_id]
            if grace is None:
                continue  # not an autotune study: no worker of it beats
            sign = ("beat", beat) if beat is not None else ("heartbeat", heartbeat)
            last = self.seen.get(trial_id)
            if last is None or last[0] != sign:
                seen[trial_id] = (sign, now)
                if beat is not None:
                    # Workers on the database itself read this as the trial's heartbeat.
                    self.rdb.record_heartbeat(trial_id)
            elif now - last[1] < grace:
                seen[trial_id] = last
            elif self._fail(study_id, trial_id):
                failed.append(trial_id)
        self.seen = seen
        return failed

    def _running(self) -> list[tuple[int, int, Any, Any]]:
        """Every RUNNING trial in the database: its id, its study's, its beat (None before the
        first) and its Optuna heartbeat (None before the first)."""
        import sqlalchemy as sa
        from optuna.storages._rdb import models
        from optuna.trial import TrialState

        trials = models.TrialModel.__table__
        attrs = models.TrialSystemAttributeModel.__table__
        heartbeats = models.TrialHeartbeatModel.__table__
        joined = trials.outerjoin(
            attrs, sa.and_(attrs.c.trial_id == trials.c.trial_id, attrs.c.key == BEAT_ATTR)
        ).outerjoin(heartbeats, heartbeats.c.trial_id == trials.c.trial_id)
        query = (
            sa.select(
                trials.c.trial_id, trials.c.study_id, attrs.c.value_json, heartbeats.c.heartbeat
            )
            .select_from(joined)
            .where(trials.c.state == TrialState.RUNNING)
        )
        with self.rdb.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    def _grace_period(self, study_id: int) -> float | None:
        """The study's grace period, from its stored study file; None for a study that
        autotune did not make."""
        try:
            spec = self.storage.get_study_user_attrs(study_id).get(study_module.SPEC_ATTR)
        except KeyError:  # deleted since
            return None
        if spec is None:
            return None
        return float(spec.get("grace_period", GRACE_PERIOD))

    def _fail(self, study_id: int, trial_id: int) -> bool:
        """Fails the trial and queues its params again; False if it had ended meanwhile."""
        import optuna

        try:
            if not self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL):
                return False
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # it finished, or a worker on the database failed it first
        trial = copy.deepcopy(self.storage.get_trial(trial_id))
        # The retry starts unbeaten, so that its first beat is a change whatever it counts.
        trial.system_attrs.pop(BEAT_ATTR, None)
        with storage_module.quiet_optuna():
            study = optuna.load_study(
                study_name=self.storage.get_study_name_from_id(study_id),
                storage=self.storage,
                sampler=optuna.samplers.RandomSampler(),
            )
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=storage_module.MAX_RETRY
            )
        retry(study, trial)
        return True


# The heartbeat interval of each study a worker works on, read once from its stored spec.
_intervals: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def beating(trial: optuna.Trial) -> Iterator[None]:
    """Beats for ``trial`` inside the block, if its study is behind a storage proxy: a daemon
    thread counts up its :data:`BEAT_ATTR` every ``heartbeat_interval`` seconds (the first at
    once). Elsewhere it does nothing (Optuna's own heartbeat thread runs then)."""
    storage = storage_module.proxy_of(trial.study._storage)
    if storage is None:
        yield
        return
    interval = _intervals.get(trial.study)
    if interval is None:
        spec = trial.study.user_attrs.get(study_module.SPEC_ATTR) or {}
        interval = _intervals[trial.study] = float(
            spec.get("heartbeat_interval", HEARTBEAT_INTERVAL)
        )
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat, args=(storage, trial._trial_id, interval, stop),
        name=f"autotune-beat-{trial.number}", daemon=True,
    )  # fmt: skip
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # A beat still in flight when the trial is told is refused by the storage, harmlessly.
        thread.join(timeout=interval)


def _beat(storage: Any, trial_id: int, interval: float, stop: threading.Event) -> None:
    import optuna

    count = 0
    while True:
        count += 1
        try:
            storage.set_trial_system_attr(trial_id, BEAT_ATTR, count)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # the proxy failed the trial; the worker learns it when it tells the trial
        except Exception:
            pass  # the proxy is away for a moment; the worker's own requests say so if it stays
        if stop.wait(interval):
            return
