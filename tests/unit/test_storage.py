import socket
from pathlib import Path

import pytest

from autotune import storage
from autotune.errors import StorageError


def test_default_is_an_sqlite_file_in_the_current_directory(workdir: Path):
    assert storage.resolve_url() == f"sqlite:///{workdir / 'autotune.db'}"


def test_environment_overrides_the_default(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOTUNE_STORAGE", "sqlite:///elsewhere.db")
    assert storage.resolve_url() == "sqlite:///elsewhere.db"
    assert storage.resolve_url("sqlite:///flag.db") == "sqlite:///flag.db"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("mysql://root@127.0.0.1/test", "mysql+pymysql://root@127.0.0.1/test"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_bare_dialects_get_the_installed_driver(url, expected):
    assert storage.resolve_url(url) == expected


def test_password_is_masked():
    assert (
        storage.mask("postgresql+psycopg://u:s3cret@h:5432/db")
        == "postgresql+psycopg://u:***@h:5432/db"
    )
    assert "s3cret" not in storage.mask("not a url //u:s3cret@h")


def test_malformed_url_is_one_clear_line():
    with pytest.raises(
        StorageError,
        match=r"'nonsense' is not a storage URL; expected for example sqlite:///autotune.db",
    ):
        storage.resolve_url("nonsense")


def test_unsupported_database_is_refused():
    with pytest.raises(StorageError, match=r"uses 'oracle', which autotune does not support"):
        storage.resolve_url("oracle://u@h/db")


def test_missing_folder_is_named(tmp_path: Path):
    with pytest.raises(StorageError, match=r"the folder .*/nope does not exist"):
        storage.open_storage(f"sqlite:///{tmp_path}/nope/x.db")


def test_unreachable_server_masks_the_password():
    with pytest.raises(StorageError) as info:
        storage.open_storage("postgresql+psycopg://user:s3cret@127.0.0.1:1/test")
    assert "Cannot connect to storage postgresql+psycopg://user:***@127.0.0.1:1/test" in str(
        info.value
    )
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "url, masked",
    [
        (
            "postgresql://postgres:p@ssw0rd@db:5432/test",
            "postgresql+psycopg://postgres:***@db:5432/test",
        ),
        ("postgresql://me:pa:ss@db/test", "postgresql+psycopg://me:***@db/test"),
        (
            "mysql://root:a@b:c@d@127.0.0.1:3306/test",
            "mysql+pymysql://root:***@127.0.0.1:3306/test",
        ),
        ("postgresql://me@db/test", "postgresql+psycopg://me@db/test"),
    ],
)
def test_masking_holds_for_passwords_with_at_and_colon(url: str, masked: str):
    resolved = storage.resolve_url(url)
    assert storage.mask(resolved) == masked
    # and the URL as the user wrote it, before autotune encodes its password
    assert "ssw0rd" not in storage.mask(url) and ":pa:ss@" not in storage.mask(url)


def test_a_password_with_an_at_sign_still_reaches_the_right_host():
    from sqlalchemy.engine import make_url

    parsed = make_url(storage.resolve_url("postgresql://postgres:p@ssw0rd@db:5432/test"))
    assert (parsed.host, parsed.password, parsed.database) == ("db", "p@ssw0rd", "test")


def test_a_drivers_message_never_shows_a_piece_of_the_password():
    url = "postgresql://postgres:p@ssw0rd@127.0.0.1:5432/test"
    message = 'connection to server at "ssw0rd@127.0.0.1" failed: password p@ssw0rd rejected'
    shown = storage.hide_password(message, url)
    assert "ssw0rd" not in shown and shown.startswith('connection to server at "***@127.0.0.1"')


def test_a_proxy_url_is_resolved_and_a_bad_one_is_refused(monkeypatch: pytest.MonkeyPatch):
    assert storage.resolve_url("grpc://127.0.0.1:13000/") == "grpc://127.0.0.1:13000"
    monkeypatch.setenv("AUTOTUNE_STORAGE", "grpc://[::1]:13000")
    assert storage.resolve_url() == "grpc://[::1]:13000"
    with pytest.raises(StorageError, match=r"^'grpc://proxy' is not a storage proxy URL; "
                                           r"expected grpc://HOST:PORT"):  # fmt: skip
        storage.resolve_url("grpc://proxy")


def test_a_proxy_that_does_not_answer_is_one_line_naming_it_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(storage, "PROXY_WAIT_SECONDS", 0.2)
    port = free_port()
    with pytest.raises(StorageError) as info:
        storage.open_storage(f"grpc://127.0.0.1:{port}")
    assert str(info.value) == (
        f"No storage proxy answers at grpc://127.0.0.1:{port} (waited 0.2 s). Start one there"
        f" with `autotune storage-proxy --port {port}`, or check the host and port."
    )


def test_closing_a_storage_hands_back_its_connections(tmp_path: Path):
    import optuna

    opened = storage.open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    optuna.create_study(study_name="s", storage=opened)
    assert opened.engine.pool.checkedin() >= 1  # kept for the next request
    storage.close(opened)
    assert opened.engine.pool.checkedin() == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
