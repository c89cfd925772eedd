"""Settings an operator can trust: typed and bounded, a bad value refused in one line naming its
variable and what it accepts (exit 2, no traceback, from `settle` and from uvicorn's workers
alike), relative paths resolved against SETTLE_HOME and never the working directory, an env file
in a documented place, `settle serve`'s options over the environment, and one documentation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from api import settings as settings_module
from api.db.migrate import head_revision
from api.settings import PROJECT_ROOT, InvalidSetting, LogFormat, Mode, Settings, settings_table, values_in_force
from tests.api.test_serve import STARTUP_SECONDS, free_port


def settle(*args: str, cwd: Path = PROJECT_ROOT, **environment: str) -> subprocess.CompletedProcess[str]:
    """`settle ARGS` in a child process with only `environment` (and a PATH) set."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(PROJECT_ROOT), **environment},
        timeout=120,
    )


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *(("true", True), ("True", True), ("1", True), ("yes", True), ("on", True)),
        *(("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False)),
    ],
)
def test_a_boolean_reads_true_false_1_0_yes_no_on_off(text: str, expected: bool) -> None:
    assert Settings.from_environment({"SETTLE_DEMO_DATA": text}).demo_data is expected
    assert Settings.from_environment({"SETTLE_RATE_LIMITS": text}).rate_limits is expected


def test_lists_are_read_from_comma_separated_values() -> None:
    settings = Settings.from_environment(
        {
            "SETTLE_CORS_ORIGINS": "https://his.hospital.example, http://127.0.0.1:8080,",
            "SETTLE_AUDIT_WITNESS_URLS": "https://a.example/w.jsonl https://b.example/w.jsonl,https://c.example/w",
        }
    )

    assert settings.cors_origins == ("https://his.hospital.example", "http://127.0.0.1:8080")
    assert settings.audit_witness_urls == (
        "https://a.example/w.jsonl",
        "https://b.example/w.jsonl",
        "https://c.example/w",
    )


def test_an_empty_variable_is_an_unset_one() -> None:
    settings = Settings.from_environment(
        {"SETTLE_PORT": "", "SETTLE_KEYRING_DIR": "", "SETTLE_CORS_ORIGINS": "", "SETTLE_METRICS_TOKEN": ""}
    )

    assert (settings.port, settings.keyring_dir, settings.cors_origins, settings.metrics_token) == (
        8000,
        None,
        (),
        None,
    )


def test_closed_sets_and_numbers_arrive_typed() -> None:
    settings = Settings.from_environment(
        {
            "SETTLE_MODE": "production",
            "SETTLE_LOG_FORMAT": "console",
            "SETTLE_LOG_LEVEL": "debug",
            "SETTLE_PORT": "9000",
            "SETTLE_RATE_TOKEN_PER_SECOND": "7.5",
        }
    )

    assert (settings.mode, settings.log_format, settings.log_level) == (Mode.PRODUCTION, LogFormat.CONSOLE, "DEBUG")
    assert (settings.port, settings.rate_token_per_second) == (9000, 7.5)
    assert not settings.development


@pytest.mark.parametrize(
    ("environment", "line"),
    [
        ({"SETTLE_PORT": "eighty"}, "bad setting SETTLE_PORT='eighty': expected a whole number from 1 to 65535"),
        ({"SETTLE_PORT": "70000"}, "bad setting SETTLE_PORT='70000': expected a whole number from 1 to 65535"),
        ({"SETTLE_MODE": "prod"}, "bad setting SETTLE_MODE='prod': expected one of development, production"),
        (
            {"SETTLE_DEMO_DATA": "sometimes"},
            "bad setting SETTLE_DEMO_DATA='sometimes': expected true or false (also 1/0, yes/no, on/off)",
        ),
        (
            {"SETTLE_RATE_TOKEN_PER_SECOND": "0"},
            "bad setting SETTLE_RATE_TOKEN_PER_SECOND='0': expected a number greater than 0",
        ),
        ({"SETTLE_WORKERS": "0"}, "bad setting SETTLE_WORKERS='0': expected a whole number from 1 to 64"),
        (
            {"SETTLE_CIPHER_SUITE": "des"},
            "bad setting SETTLE_CIPHER_SUITE='des': expected one of aes-256-gcm, sm4-gcm",
        ),
        (
            {"SETTLE_CORS_ORIGINS": "https://his.example/app"},
            "bad setting SETTLE_CORS_ORIGINS='https://his.example/app': expected origins (scheme://host[:port]), "
            "comma-separated; not an origin: https://his.example/app",
        ),
        (
            {"DATABASE_URL": "mysql://settle@db/settle"},
            "bad setting DATABASE_URL='mysql://settle@db/settle': expected sqlite+aiosqlite:///FILE or "
            "postgresql+asyncpg://USER@HOST/DB; an unsupported database or driver",
        ),
        ({"SETTLE_HOME": "var/settle"}, "bad setting SETTLE_HOME='var/settle': expected an absolute folder path"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_what_it_accepts(
    environment: dict[str, str], line: str
) -> None:
    with pytest.raises(InvalidSetting) as refused:
        Settings.from_environment(environment)

    assert str(refused.value) == line
    assert refused.value.variables == list(environment)


def test_several_bad_values_are_one_line_each() -> None:
    with pytest.raises(InvalidSetting) as refused:
        Settings.from_environment({"SETTLE_PORT": "0", "SETTLE_LOG_FORMAT": "xml", "SETTLE_MAX_TOKENS": "-1"})

    assert refused.value.variables == ["SETTLE_PORT", "SETTLE_MAX_TOKENS", "SETTLE_LOG_FORMAT"]  # in the table's order
    assert len(str(refused.value).splitlines()) == 3


def test_a_refusal_echoes_no_secret() -> None:
    with pytest.raises(InvalidSetting) as token:
        Settings.from_environment({"SETTLE_METRICS_TOKEN": "hunter2-hunter2"})
    with pytest.raises(InvalidSetting) as url:
        Settings.from_environment({"DATABASE_URL": "mysql://settle:hunter2@db/settle"})

    assert (
        str(token.value)
        == "bad setting SETTLE_METRICS_TOKEN (value hidden): expected a secret of at least 32 characters"
    )
    assert "hunter2" not in str(token.value) and "hunter2" not in str(url.value)
    assert "mysql://settle:***@db/settle" in str(url.value)


def test_settle_with_a_bad_value_prints_one_line_and_exits_2_without_a_traceback() -> None:
    current = settle("db", "current", SETTLE_PORT="eighty")
    serve = settle("serve", SETTLE_MODE="prod")

    assert (current.returncode, current.stdout) == (2, "")
    assert current.stderr == "settle: bad setting SETTLE_PORT='eighty': expected a whole number from 1 to 65535\n"
    assert (serve.returncode, serve.stdout) == (2, "")
    assert serve.stderr == "settle: bad setting SETTLE_MODE='prod': expected one of development, production\n"


def test_uvicorns_workers_stop_on_a_bad_value_with_one_line_and_status_2() -> None:
    """The app factory is what each worker runs, and what `uvicorn --factory` runs without `settle`."""
    worker = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app_from_environment", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SETTLE_LOG_FORMAT": "xml"},
        timeout=60,
    )

    assert worker.returncode == 2
    assert (
        worker.stderr.splitlines()[-1] == "settle: bad setting SETTLE_LOG_FORMAT='xml': expected one of json, console"
    )
    assert "Traceback" not in worker.stderr


def test_settle_serve_options_are_checked_like_the_settings() -> None:
    refused = settle("serve", "--port", "0")

    assert refused.returncode == 2 and refused.stdout == ""
    assert (
        refused.stderr.splitlines()[-1]
        == "settle serve: error: argument --port: expected a whole number from 1 to 65535"
    )


def test_settle_serve_options_override_the_environments_settings(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}",
        "SETTLE_KEYS_DIR": str(tmp_path / "keys"),
        "SETTLE_DEMO_DATA": "0",
        "SETTLE_AUDIT_SEAL_SECONDS": "0",
        "SETTLE_HOST": "127.0.0.2",
        "SETTLE_PORT": str(other),
        "SETTLE_WORKERS": "4",  # SQLite serves with one, whatever is asked
    }
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not answer: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        for unused in (f"127.0.0.1:{other}", f"127.0.0.2:{port}", f"127.0.0.2:{other}"):
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://{unused}/healthz", timeout=2)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()

    assert health.json() == {"status": "ok"}


# --- paths --------------------------------------------------------------------------------------


def test_by_default_paths_resolve_against_the_checkout_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_environment({})

    assert settings.home == PROJECT_ROOT
    assert settings.database_url == f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'settle.sqlite3'}"
    assert settings.sqlite_file == PROJECT_ROOT / "var" / "settle.sqlite3"
    assert (settings.migrations, settings.keys_dir) == (PROJECT_ROOT / "migrations", PROJECT_ROOT / "keys")
    assert settings.var_dir == PROJECT_ROOT / "var"
    assert settings.notices == ()


def test_relative_paths_resolve_against_settle_home_never_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = Settings.from_environment(
        {
            "SETTLE_HOME": str(home),
            "DATABASE_URL": "sqlite+aiosqlite:///data/settle.sqlite3",
            "SETTLE_KEYS_DIR": "keys",
            "SETTLE_KEYRING_DIR": "secrets/keyring",
            "SETTLE_AUDIT_WITNESS_DIR": "witness",
            "SETTLE_TRUSTED_DOCUMENTS": "trusted.json",
        }
    )

    assert settings.sqlite_file == home / "data" / "settle.sqlite3"
    assert (settings.keys_dir, settings.keyring_dir) == (home / "keys", home / "secrets" / "keyring")
    assert (settings.audit_witness_dir, settings.trusted_documents) == (str(home / "witness"), home / "trusted.json")
    assert settings.var_dir == home / "var"
    assert settings.migrations == PROJECT_ROOT / "migrations"  # shipped with the code, not kept in the home
    absolute = Settings.from_environment({"SETTLE_HOME": str(home), "SETTLE_AUDIT_WITNESS_DIR": "off"})
    assert absolute.audit_witness_dir == "off"
    postgresql = "postgresql+asyncpg://settle@db.internal:5432/settle"
    assert Settings.from_environment({"SETTLE_HOME": str(home), "DATABASE_URL": postgresql}).database_url == postgresql


def test_an_installed_package_takes_the_working_directory_for_home_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "CHECKOUT", None)  # as in site-packages: no checkout beside the code
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "env.py").touch()
    monkeypatch.chdir(tmp_path)

    guessed = Settings.from_environment({})
    named = Settings.from_environment({"SETTLE_HOME": str(tmp_path)})

    assert guessed.home == tmp_path and guessed.migrations == tmp_path / "migrations"
    (notice,) = guessed.notices
    assert "SETTLE_HOME is not set" in notice and f"the working directory, {tmp_path}" in notice
    assert named.home == tmp_path and named.notices == ()


def test_settle_db_current_from_another_folder_finds_the_same_database(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()

    upgraded = settle("db", "upgrade", cwd=home, SETTLE_HOME=str(home))
    current = settle("db", "current", cwd=elsewhere, SETTLE_HOME=str(home))

    assert upgraded.returncode == 0, upgraded.stderr
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == head_revision(PROJECT_ROOT / "migrations")
    assert (home / "var" / "settle.sqlite3").is_file()
    assert list(elsewhere.iterdir()) == []


def test_a_command_that_reads_the_database_refuses_a_missing_one_and_creates_none(tmp_path: Path) -> None:
    document = tmp_path / "payers.json"
    document.write_text('{"payers": [{"code": "INS-Z", "name": "Insurer Z", "kind": "insurer"}]}', encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    missing = home / "var" / "settle.sqlite3"

    for args in (
        ("db", "current"),
        ("db", "downgrade"),
        ("load", str(document)),
        ("keys", "list"),
        ("audit", "verify"),
    ):
        refused = settle(*args, cwd=tmp_path, SETTLE_HOME=str(home), SETTLE_KEYS_DIR=str(tmp_path / "keys"))

        assert refused.returncode == 1 and refused.stdout == "", (args, refused.stderr)
        assert refused.stderr == (
            f"settle: no database at {missing} (DATABASE_URL, relative to SETTLE_HOME={home}); "
            "`settle db upgrade` creates it\n"
        ), args
    assert list(home.iterdir()) == []


# --- the env file ---------------------------------------------------------------------------------


def test_the_env_file_in_settle_home_is_read_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / ".env").write_text(
        "# the operator's settings\nSETTLE_PORT=9001\nSETTLE_DEMO_DATA=no\nDATABASE_URL=sqlite+aiosqlite:///db.sqlite3\n",
        encoding="utf-8",
    )
    (elsewhere / ".env").write_text("SETTLE_MODE=production\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)

    settings = Settings.from_environment({"SETTLE_HOME": str(home), "SETTLE_PORT": "9002"})

    assert settings.env_file == home / ".env"
    assert (settings.port, settings.demo_data, settings.sqlite_file) == (9002, False, home / "db.sqlite3")
    assert settings.mode is Mode.DEVELOPMENT  # the working directory's .env is not the home's


def test_settle_env_file_names_the_file_and_it_must_exist(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "settle.env").write_text("SETTLE_WORKERS=3\n", encoding="utf-8")
    (tmp_path / ".env").write_text("SETTLE_WORKERS=2\n", encoding="utf-8")
    home = {"SETTLE_HOME": str(tmp_path)}

    named = Settings.from_environment({**home, "SETTLE_ENV_FILE": "conf/settle.env"})
    with pytest.raises(InvalidSetting) as missing:
        Settings.from_environment({**home, "SETTLE_ENV_FILE": "conf/absent.env"})

    assert named.workers == 3 and named.env_file == tmp_path / "conf" / "settle.env"
    assert str(missing.value) == (
        f"bad setting SETTLE_ENV_FILE='conf/absent.env': expected an existing file (no file at "
        f"{tmp_path / 'conf' / 'absent.env'})"
    )


def test_a_bad_value_in_the_env_file_is_named_with_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SETTLE_PORT=eighty\n", encoding="utf-8")

    with pytest.raises(InvalidSetting) as refused:
        Settings.from_environment({"SETTLE_HOME": str(tmp_path)})

    assert str(refused.value) == (
        f"bad setting SETTLE_PORT='eighty' in {tmp_path / '.env'}: expected a whole number from 1 to 65535"
    )


def test_an_env_file_may_not_move_the_home_it_was_found_in(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SETTLE_HOME={tmp_path / 'other'}\n", encoding="utf-8")

    with pytest.raises(InvalidSetting, match=r"SETTLE_HOME .*: expected the environment only, not an env file"):
        Settings.from_environment({"SETTLE_HOME": str(tmp_path)})


def test_a_variable_that_is_no_setting_is_named_in_a_notice() -> None:
    settings = Settings.from_environment(
        {"SETTLE_PROT": "9000", "SETTLE_WITNESS_TOKEN": "t", "SETTLE_TEST_REQUIRE_POSTGRES": "1", "HOME": "/root"}
    )

    assert settings.notices == ("SETTLE_PROT is not a setting and is ignored (`settle settings` lists them)",)
    assert settings.port == 8000


# --- building and changing settings in code -------------------------------------------------------


def test_the_constructor_reads_nothing_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SETTLE_PORT", "9999")

    assert Settings().port == 8000
    assert Settings(port=9000).port == 9000
    assert Settings.from_environment().port == 9999


def test_replace_validates_its_changes_and_leaves_the_original_alone() -> None:
    original = Settings()
    changed = original.replace(port=9000, cors_origins=("https://his.example",))

    assert (changed.port, changed.cors_origins, original.port) == (9000, ("https://his.example",), 8000)
    with pytest.raises(ValidationError, match="port"):
        original.replace(port=0)
    with pytest.raises(ValidationError, match="prot"):
        original.replace(prot=9000)
    with pytest.raises(ValidationError, match="frozen"):
        original.port = 9000  # type: ignore[misc]


# --- one documentation ---------------------------------------------------------------------------


def test_every_setting_is_described_and_the_readme_carries_the_models_table() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    printed = settle("settings")

    assert all(field.description for field in Settings.model_fields.values())
    assert printed.returncode == 0 and printed.stdout == settings_table()
    assert settings_table() in readme, "README.md's settings table differs: paste `settle settings` into it"


def test_the_values_in_force_hide_secrets() -> None:
    settings = Settings(
        metrics_token="m" * 32, database_url="postgresql+asyncpg://settle:hunter2@db.internal:5432/settle"
    )

    shown = values_in_force(settings)

    assert shown["SETTLE_METRICS_TOKEN"] == "(hidden)"
    assert shown["DATABASE_URL"] == "postgresql+asyncpg://settle:***@db.internal:5432/settle"
    assert shown["SETTLE_DEMO_DATA"] == "true" and shown["SETTLE_MODE"] == "development"
