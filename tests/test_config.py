"""Config: flags, WHISPER_* variables, precedence and one-line errors (pure logic)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wyoming_whisper.config import Config, default_threads, load_config

from .harness import skip_platform

pytestmark = pytest.mark.smoke  # also run on Python 3.12 and 3.13 (.ci/run)


def test_defaults_match_the_spec() -> None:
    cfg = load_config([], {})
    assert cfg.models == ("large-v3",) and cfg.default_model == "large-v3"
    assert (cfg.device, cfg.compute_type, cfg.backend) == ("auto", "auto", "auto")
    assert cfg.ttl == 300 and cfg.preload is False and cfg.cache_dir is None
    assert (cfg.host, cfg.port, cfg.wyoming_port) == ("0.0.0.0", 10301, 10300)
    assert cfg.no_wyoming is False and cfg.download_only is False
    assert cfg.log_level == "info" and cfg.beam_size == 5
    assert cfg.max_upload_mb == 200
    assert cfg.drain_seconds == 10 and cfg.shutdown_delay == 0


def test_flags_short_and_long() -> None:
    cfg = load_config(
        [
            "-m",
            "tiny.en",
            "--model",
            "base",
            "--default-model",
            "base",
            "-d",
            "cuda:1",
            "--compute-type",
            "int8_float16",
            "--ttl",
            "0",
            "--preload",
            "-p",
            "8000",
            "--wyoming-port",
            "8001",
            "-b",
            "faster-whisper",
            "--cache-dir",
            "/tmp/c",
            "--no-wyoming",
            "--log-level",
            "DEBUG",
            "--no-zeroconf",
            "--zeroconf-name",
            "kitchen",
        ],
        {},
    )
    assert cfg.models == ("tiny.en", "base") and cfg.default_model == "base"
    assert cfg.device == "cuda:1" and cfg.compute_type == "int8_float16"
    assert cfg.ttl == 0 and cfg.preload and cfg.port == 8000 and cfg.wyoming_port == 8001
    assert cfg.backend == "faster-whisper" and cfg.cache_dir == Path("/tmp/c")
    assert cfg.no_wyoming and cfg.log_level == "debug"
    assert cfg.no_zeroconf and cfg.zeroconf_name == "kitchen"


def test_environment_and_precedence() -> None:
    env = {
        "WHISPER_MODEL": "tiny.en, base",
        "WHISPER_TTL": "60",
        "WHISPER_DEVICE": "cpu",
        "WHISPER_LOG_LEVEL": "warning",
        "WHISPER_PORT": "9000",
        "WHISPER_PRELOAD": "true",
        "WHISPER_NO_ZEROCONF": "0",
        "WHISPER_EXTRA_ARGS": "--beam-size 2 --wyoming-port 9001",
    }
    cfg = load_config([], env)
    assert cfg.models == ("tiny.en", "base") and cfg.default_model == "tiny.en"
    assert cfg.ttl == 60 and cfg.device == "cpu" and cfg.log_level == "warning"
    assert cfg.port == 9000 and cfg.preload and not cfg.no_zeroconf
    assert cfg.beam_size == 2 and cfg.wyoming_port == 9001
    # The command line wins over both the variable and WHISPER_EXTRA_ARGS.
    cfg = load_config(["--ttl", "5", "-m", "small", "--beam-size", "3"], env)
    assert cfg.ttl == 5 and cfg.models == ("small",) and cfg.beam_size == 3


def test_duplicate_models_are_served_once() -> None:
    assert load_config(["-m", "base", "-m", "base"], {}).models == ("base",)


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--port", "70000"], {}, "port"),
        (["--wyoming-port", "0"], {}, "port"),
        (["--device", "gpu"], {}, "device"),
        (["--compute-type", "int3"], {}, "compute type"),
        (["--ttl", "-1"], {}, "ttl"),
        (["--ttl", "soon"], {}, "ttl"),
        (["-m", "tiny.en", "--default-model", "base"], {}, "default-model"),
        (["--backend", "tensorflow"], {}, "backend"),
        ([], {"WHISPER_TTL": "-5"}, "WHISPER_TTL"),
        ([], {"WHISPER_PRELOAD": "maybe"}, "WHISPER_PRELOAD"),
        ([], {"WHISPER_PORT": "http"}, "WHISPER_PORT"),
        (["--drain-seconds", "-1"], {}, "drain-seconds"),
        ([], {"WHISPER_SHUTDOWN_DELAY": "soon"}, "WHISPER_SHUTDOWN_DELAY"),
        (["--cpu-threads", "0"], {}, "cpu-threads"),
        (["--language", "xx"], {}, "Unsupported language 'xx'"),
        ([], {"WHISPER_LANGUAGE": "klingon"}, "--language"),
        (["-m", "tiny.en", "--language", "de"], {}, "English-only"),
        ([], {"WHISPER_API_KEY_FILE": "/nonexistent/key"}, "WHISPER_API_KEY_FILE"),
        (["--max-connections", "0"], {}, "max-connections"),
        ([], {"WHISPER_HTTP_READ_TIMEOUT": "0"}, "WHISPER_HTTP_READ_TIMEOUT"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    argv: list[str], env: dict[str, str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config(argv, env)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_cli_bad_value_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", "--device", "tpu"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "device" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cuda_without_gpu_exits_2() -> None:
    from wyoming_whisper.backends.select import detect_platform

    if detect_platform().cuda_devices:
        skip_platform("this machine has a CUDA device")
    proc = subprocess.run(
        [sys.executable, "-m", "wyoming_whisper", "--device", "cuda", "-m", "tiny.en"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "CUDA" in proc.stderr and "Traceback" not in proc.stderr


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.port = 1  # type: ignore[misc]


def test_home_assistant_names_settings(tmp_path: Path) -> None:
    cfg = load_config([], {"WHISPER_HASS_URL": "http://ha:8123", "WHISPER_HASS_TOKEN": "t0k"})
    assert (cfg.hass_url, cfg.hass_token, cfg.no_hass_names) == ("http://ha:8123", "t0k", False)
    assert "t0k" not in repr(cfg)  # a secret stays out of logs
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    env = {"WHISPER_HASS_URL": "http://ha:8123", "WHISPER_HASS_TOKEN_FILE": str(secret)}
    assert load_config([], env).hass_token == "from-a-file"
    assert load_config(["--no-hass-names", "--hass-names-for-http"], {}).no_hass_names
    with pytest.raises(SystemExit) as info:
        load_config(["--hass-url", "http://ha:8123"], {})
    assert info.value.code == 2


def test_drain_settings() -> None:
    """--drain-seconds and --shutdown-delay: the stop a load balancer needs (docs/scaling.md)."""
    env = {"WHISPER_DRAIN_SECONDS": "30", "WHISPER_SHUTDOWN_DELAY": "5"}
    cfg = load_config([], env)
    assert (cfg.drain_seconds, cfg.shutdown_delay) == (30, 5)
    cfg = load_config(["--drain-seconds", "0", "--shutdown-delay", "2.5"], env)
    assert (cfg.drain_seconds, cfg.shutdown_delay) == (0, 2.5)


def test_connection_settings() -> None:
    """--max-connections and --http-read-timeout (server.py), each also from the environment."""
    cfg = load_config([], {})
    assert (cfg.max_connections, cfg.http_read_timeout) == (100, 30)
    env = {"WHISPER_MAX_CONNECTIONS": "20", "WHISPER_HTTP_READ_TIMEOUT": "5"}
    assert (load_config([], env).max_connections, load_config([], env).http_read_timeout) == (20, 5)
    cfg = load_config(["--max-connections", "7", "--http-read-timeout", "2.5"], env)
    assert (cfg.max_connections, cfg.http_read_timeout) == (7, 2.5)


def test_cpu_threads() -> None:
    """One CTranslate2 thread per two cores a worker has (per core with every window at 30 s),
    1 to 4, unless set."""
    assert [default_threads(1, cores) for cores in (1, 2, 3, 4, 8, 64)] == [1, 1, 1, 2, 4, 4]
    assert default_threads(4, 8) == 1 and default_threads(2, 16) == 4 and default_threads(3, 8) == 1
    full = [default_threads(1, cores, window="full") for cores in (1, 2, 3, 4, 8)]
    assert full == [1, 2, 3, 4, 4] and default_threads(2, 4, window="full") == 2
    cfg = load_config(["--max-concurrency", "1"], {"WHISPER_CPU_THREADS": "3"})
    assert cfg.cpu_threads == 3 and cfg.threads == 3
    cfg = load_config(["--max-concurrency", "1"], {})
    assert cfg.cpu_threads is None and cfg.threads == default_threads(1)
    cfg = load_config(["--max-concurrency", "1", "--encoder-window", "full"], {})
    assert cfg.threads == default_threads(1, window="full")
    cfg = load_config(["--encoder-window", "full"], {"WHISPER_CPU_THREADS": "1"})
    assert cfg.threads == 1


def test_language_is_read_as_a_request_language_is() -> None:
    """auto or empty detects, names and regions are codes; one English model is enough for en."""
    for given, code in (("auto", None), ("", None), ("English", "en"), ("en-US", "en")):
        assert load_config(["-m", "tiny.en", "--language", given], {}).language == code
    assert load_config(["-m", "base"], {"WHISPER_LANGUAGE": "German"}).language == "de"
    assert load_config(["-m", "tiny.en", "-m", "base", "--language", "de_AT"], {}).language == "de"


def test_api_key_from_a_file_stays_out_of_repr(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("  k3y-from-file\n")
    cfg = load_config([], {"WHISPER_API_KEY_FILE": str(key)})
    assert cfg.api_key == "k3y-from-file" and "k3y" not in repr(cfg)
    assert load_config(["--api-key", "flag"], {"WHISPER_API_KEY_FILE": str(key)}).api_key == "flag"
    env = {"WHISPER_API_KEY": "env", "WHISPER_API_KEY_FILE": str(key)}
    assert load_config([], env).api_key == "env"
    assert "s3cret" not in repr(load_config(["--api-key", "s3cret"], {}))


def test_log_transcripts_is_off_unless_asked() -> None:
    assert load_config([], {}).log_transcripts is False
    assert load_config(["--log-transcripts"], {}).log_transcripts
    assert load_config([], {"WHISPER_LOG_TRANSCRIPTS": "true"}).log_transcripts
