"""server.settings: defaults, generated development secrets, production checks, and errors that
name the variable to fix."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.settings import (
    GENERATED_SECRETS,
    SettingsError,
    generated_secret_names,
    load_settings,
)

PRODUCTION_ENV = {
    "VOXSOUTH_ENV": "production",
    "VOXSOUTH_PUBLIC_URL": "https://voice.example.com",
    "VOXSOUTH_MEDIA_PUBLIC_URL": "wss://voice.example.com/media",
    "VOXSOUTH_SIGNALWIRE_SIGNING_KEY": "PSK_production_signing_key",
    "VOXSOUTH_STREAM_TOKEN_SECRET": "production-stream-token-secret-0123456789",
    "VOXSOUTH_CREDENTIALS_KEY": "production-credentials-key-0123456789",
    "DATABASE_URL": "postgresql://voxsouth:db-password@db.internal/voxsouth",
}


def problem_variables(error: SettingsError) -> list[str]:
    """The variable each line of the message names (`NAME: what is wrong`)."""
    return [line.split(":", 1)[0] for line in str(error).splitlines()]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VOXSOUTH_* or DATABASE_URL from the machine running the tests, and no stray .env."""
    for name in list(os.environ):
        if name.upper().startswith("VOXSOUTH_") or name.upper() == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def secret_files(data_dir: Path) -> dict[str, str]:
    folder = data_dir / "secrets"
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


# --- development defaults ----------------------------------------------------------------------


def test_defaults_work_with_no_environment(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.env == "development"
    assert not settings.production
    assert settings.database_url is None
    assert settings.http_base_url == "http://127.0.0.1:8080"
    assert settings.l16_big_endian is True
    assert settings.vad_aggressiveness == 2
    assert settings.endpoint_hangover_ms == 500
    assert settings.endpoint_early_decode_ms == 200
    assert settings.partial_every_ms == 400
    assert settings.max_utterance_ms == 15_000
    for name in GENERATED_SECRETS:
        assert len(settings.secret(name)) >= 32
    assert settings.secret("signalwire_signing_key") != settings.secret("stream_token_secret")


def test_generated_secrets_are_private_files(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    folder = tmp_path / "secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = secret_files(tmp_path)
    # Exactly one file per secret: no staging files left behind.
    assert sorted(files) == sorted(GENERATED_SECRETS)
    for name in GENERATED_SECRETS:
        path = folder / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert files[name].strip() == settings.secret(name)


def test_generated_secrets_are_reused_on_the_next_load(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path)
    files = secret_files(tmp_path)
    second = load_settings(data_dir=tmp_path)
    for name in GENERATED_SECRETS:
        assert second.secret(name) == first.secret(name)
    assert secret_files(tmp_path) == files


def test_secrets_from_the_environment_are_used_and_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXSOUTH_SIGNALWIRE_SIGNING_KEY", "PSK_from_env")
    settings = load_settings(data_dir=tmp_path)
    assert settings.secret("signalwire_signing_key") == "PSK_from_env"
    assert sorted(secret_files(tmp_path)) == ["credentials_key", "stream_token_secret"]


def test_overrides_beat_the_environment_and_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("VOXSOUTH_MEDIA_PORT=9100\nVOXSOUTH_HTTP_PORT=9001\n")
    monkeypatch.setenv("VOXSOUTH_HTTP_PORT", "9002")
    settings = load_settings(data_dir=tmp_path, log_level="DEBUG")
    assert settings.media_port == 9100  # from .env
    assert settings.http_port == 9002  # environment beats .env
    assert settings.log_level == "DEBUG"
    assert load_settings(data_dir=tmp_path, http_port=9003).http_port == 9003


# --- generated_secret_names --------------------------------------------------------------------


def test_generated_secret_names_lists_what_came_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert sorted(generated_secret_names(settings)) == sorted(GENERATED_SECRETS)

    monkeypatch.setenv("VOXSOUTH_STREAM_TOKEN_SECRET", "set-by-the-operator-0123456789")
    settings = load_settings(data_dir=tmp_path)
    assert settings.secret("stream_token_secret") == "set-by-the-operator-0123456789"
    assert generated_secret_names(settings) == ["signalwire_signing_key", "credentials_key"]


def test_generated_secret_names_is_empty_when_every_secret_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXSOUTH_SIGNALWIRE_SIGNING_KEY", "PSK_from_env")
    monkeypatch.setenv("VOXSOUTH_STREAM_TOKEN_SECRET", "set-by-the-operator-0123456789")
    monkeypatch.setenv("VOXSOUTH_CREDENTIALS_KEY", "set-by-the-operator-9876543210")
    settings = load_settings(data_dir=tmp_path)
    assert generated_secret_names(settings) == []
    assert not (tmp_path / "secrets").exists()


def test_secret_set_in_env_file_is_not_reported_as_generated(tmp_path: Path) -> None:
    """A development start generated both; the operator then sets one in .env."""
    load_settings(data_dir=tmp_path)
    (tmp_path / ".env").write_text("VOXSOUTH_SIGNALWIRE_SIGNING_KEY=PSK_from_dotenv\n")
    settings = load_settings(data_dir=tmp_path)
    assert settings.secret("signalwire_signing_key") == "PSK_from_dotenv"
    assert generated_secret_names(settings) == ["stream_token_secret", "credentials_key"]


# --- production --------------------------------------------------------------------------------


def test_production_without_secrets_or_public_urls_lists_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXSOUTH_ENV", "production")
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    variables = problem_variables(info.value)
    # One line per problem, each naming its variable.
    assert len(variables) == len(set(variables))
    assert set(variables) >= {
        "VOXSOUTH_SIGNALWIRE_SIGNING_KEY",
        "VOXSOUTH_STREAM_TOKEN_SECRET",
        "VOXSOUTH_CREDENTIALS_KEY",
        "VOXSOUTH_PUBLIC_URL",
        "VOXSOUTH_MEDIA_PUBLIC_URL",
    }
    assert set(variables) <= {
        "VOXSOUTH_SIGNALWIRE_SIGNING_KEY",
        "VOXSOUTH_STREAM_TOKEN_SECRET",
        "VOXSOUTH_CREDENTIALS_KEY",
        "VOXSOUTH_PUBLIC_URL",
        "VOXSOUTH_MEDIA_PUBLIC_URL",
        "DATABASE_URL",
    }
    assert not (tmp_path / "secrets").exists()  # nothing generated in production


def test_production_refuses_plain_http_and_ws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VOXSOUTH_PUBLIC_URL", "http://voice.example.com")
    monkeypatch.setenv("VOXSOUTH_MEDIA_PUBLIC_URL", "ws://voice.example.com/media")
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    assert problem_variables(info.value) == ["VOXSOUTH_PUBLIC_URL", "VOXSOUTH_MEDIA_PUBLIC_URL"]


def test_complete_production_settings_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(data_dir=tmp_path)
    assert settings.production
    assert settings.secret("signalwire_signing_key") == "PSK_production_signing_key"
    assert settings.http_base_url == "https://voice.example.com"
    assert generated_secret_names(settings) == []
    assert not (tmp_path / "secrets").exists()


def test_production_error_does_not_echo_secret_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VOXSOUTH_PUBLIC_URL")
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    message = str(info.value)
    assert message == "VOXSOUTH_PUBLIC_URL: an https:// URL is required in production"
    for secret in ("PSK_production_signing_key", "production-stream-token-secret", "db-password"):
        assert secret not in message


# --- invalid values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VOXSOUTH_HTTP_PORT", "abc"),
        ("VOXSOUTH_HTTP_PORT", "70000"),
        ("VOXSOUTH_MEDIA_PORT", "-1"),
        ("VOXSOUTH_DB_POOL_SIZE", "0"),
        ("VOXSOUTH_ENV", "staging"),
        ("VOXSOUTH_LOG_LEVEL", "LOUD"),
        ("VOXSOUTH_VAD_AGGRESSIVENESS", "4"),
        ("VOXSOUTH_TRANSCRIPTION_ENGINE", "magic"),
        ("VOXSOUTH_L16_BIG_ENDIAN", "sometimes"),
        ("VOXSOUTH_ENDPOINT_EARLY_DECODE_MS", "100"),  # less than the tail kept after speech
        ("VOXSOUTH_ENDPOINT_EARLY_DECODE_MS", "500"),  # not before the hangover
        ("VOXSOUTH_PARTIAL_EVERY_MS", "10"),  # shorter than a frame
        ("VOXSOUTH_PROCESS_LEASE_S", "6"),  # under twice the 5 s heartbeat
    ],
)
def test_invalid_value_names_the_variable(
    variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{variable}: ")


def test_every_invalid_value_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSOUTH_HTTP_PORT", "abc")
    monkeypatch.setenv("VOXSOUTH_MEDIA_PORT", "99999")
    monkeypatch.setenv("VOXSOUTH_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    assert sorted(problem_variables(info.value)) == [
        "VOXSOUTH_HTTP_PORT",
        "VOXSOUTH_LOG_FORMAT",
        "VOXSOUTH_MEDIA_PORT",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VOXSOUTH_MEDIA_PUBLIC_URL", "wss://voice.example.com/media?token=abc"),
        ("VOXSOUTH_MEDIA_PUBLIC_URL", "wss://voice.example.com/media#frag"),
        ("VOXSOUTH_MEDIA_PUBLIC_URL", "https://voice.example.com/media"),
        ("VOXSOUTH_PUBLIC_URL", "https://voice.example.com/?a=1"),
        ("VOXSOUTH_PUBLIC_URL", "ftp://voice.example.com"),
    ],
)
def test_invalid_url_names_the_variable(
    variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    assert variable in str(info.value)


def test_both_invalid_urls_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSOUTH_PUBLIC_URL", "https://voice.example.com/?a=1")
    monkeypatch.setenv("VOXSOUTH_MEDIA_PUBLIC_URL", "wss://voice.example.com/media?b=2")
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert any("VOXSOUTH_PUBLIC_URL" in line for line in lines)
    assert any("VOXSOUTH_MEDIA_PUBLIC_URL" in line for line in lines)


# --- database url ------------------------------------------------------------------------------


def test_database_url_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db.internal/voxsouth")
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://app:pw@db.internal/voxsouth"
    assert "pw" not in repr(settings.database_url)


def test_prefixed_database_url_wins_over_the_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://generic/db")
    monkeypatch.setenv("VOXSOUTH_DATABASE_URL", "postgresql://specific/db")
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://specific/db"


def test_database_url_as_override(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url="postgresql://override/db")
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://override/db"


def test_cors_origins_are_checked_at_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    ok = load_settings(
        data_dir=tmp_path, cors_origins="https://app.example.com, http://localhost:3000"
    )
    assert ok.cors_origin_set == {"https://app.example.com", "http://localhost:3000"}
    with pytest.raises(SettingsError, match="VOXSOUTH_CORS_ORIGINS: .*https://app.example.com/"):
        load_settings(data_dir=tmp_path, cors_origins="https://app.example.com/")


@pytest.mark.parametrize("engine", ["assemblyai", "deepgram"])
def test_a_cloud_engine_without_its_key_is_a_start_up_error(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXSOUTH_TRANSCRIPTION_ENGINE", engine)
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    assert problem_variables(info.value) == [f"VOXSOUTH_{engine.upper()}_API_KEY"]
    monkeypatch.setenv(f"VOXSOUTH_{engine.upper()}_API_KEY", "the-key")
    assert load_settings(data_dir=tmp_path).transcription_engine == engine


def test_a_cloud_url_must_be_a_websocket_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXSOUTH_DEEPGRAM_URL", "https://api.deepgram.com/v1/listen")
    with pytest.raises(SettingsError) as info:
        load_settings(data_dir=tmp_path)
    assert problem_variables(info.value) == ["VOXSOUTH_DEEPGRAM_URL"]
