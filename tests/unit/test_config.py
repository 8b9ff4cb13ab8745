"""One declaration per option (cdc/options.py): the CLI, the environment, the TOML file and the checks
all follow it.

Commands run through click's CliRunner with the part that would connect replaced by a recorder, so
every test sees the settings exactly as `wpcdc` would build them, without servers.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from cdc import cli, logs
from cdc.config import (
    KafkaSettings,
    MysqlSettings,
    SnapshotSettings,
    StreamSettings,
    default_checkpoint_topic,
    default_server_id,
    load_toml,
)
from cdc.errors import ConfigError
from cdc.options import OPTIONS, Option, for_command
from cdc.wordpress import DEFAULT_EXCLUDED_POST_TYPES

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOT_DECLARED = {"help", "version", "as_json", "repair"}  # click's own, output formats, verify's --repair


def commands() -> list[tuple[str, click.Command]]:
    """(declared command name, click command) for every command a user can run, and the group."""
    offsets = cli.main.commands["offsets"]
    assert isinstance(offsets, click.Group)
    pairs: list[tuple[str, click.Command]] = [("wpcdc", cli.main)]
    pairs += [(name, cli.main.commands[name]) for name in cli.COMMANDS if name != "offsets"]
    pairs += [("offsets", sub) for sub in offsets.commands.values()]
    return pairs


def value_at(settings: object, path: str) -> Any:
    for attr in path.split("."):
        settings = getattr(settings, attr)
    return settings


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run(*args, env=..., config=...)`` → (click result, the StreamSettings the command built or None)."""
    built: list[StreamSettings] = []
    monkeypatch.setattr(logs, "setup", lambda *a, **k: None)  # keep the root logger on pytest's streams
    monkeypatch.setattr(cli, "_run", lambda settings, backfill_now=False: built.append(settings))
    import cdc.commands.check

    def run_checks(settings: StreamSettings) -> int:
        built.append(settings)
        return 0

    monkeypatch.setattr(cdc.commands.check, "run_checks", run_checks)
    import cdc.commands.verify

    def run_verify(settings: StreamSettings, repair: bool = False, as_json: bool = False) -> int:
        built.append(settings)
        return 0

    monkeypatch.setattr(cdc.commands.verify, "run_verify", run_verify)

    def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[Result, StreamSettings | None]:
        clean: dict[str, str | None] = {o.envvar: None for o in OPTIONS}  # nothing from the outer environment
        result = CliRunner(env=clean | (env or {})).invoke(cli.main, list(args))
        return result, (built[-1] if built else None)

    return invoke


# ---------------------------------------------------------------------------- the declarations on the CLI


@pytest.mark.parametrize(("declared", "command"), commands(), ids=lambda c: getattr(c, "name", c))
def test_every_command_has_exactly_its_declared_options_with_their_env_vars(declared: str, command: click.Command) -> None:
    params = {p.name: p for p in command.params if isinstance(p, click.Option) and p.name not in NOT_DECLARED}
    wanted = for_command(declared)
    assert list(params) == [o.name for o in wanted]  # same options, in the declared (--help) order
    for o in wanted:
        p = params[o.name]
        assert p.opts == [o.flag] and p.envvar == o.envvar and p.show_envvar, o.name
        assert p.default == o.default and bool(p.show_default) == o.show_default, o.name
        assert p.help == o.help_text, o.name


def test_every_option_of_the_help_is_declared_and_help_says_its_range() -> None:
    text = cli.main.commands["stream"].get_help(click.Context(cli.main.commands["stream"], info_name="stream"))
    for o in for_command("stream"):
        assert o.flag in text and o.envvar in text
    assert "Posts per consistent read (1..10000)." in text.replace("\n", " ").replace("  ", "")


def test_each_option_is_declared_once_for_commands_that_exist() -> None:
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    assert {n for o in OPTIONS for n in o.commands} == {"wpcdc", *cli.COMMANDS}


# ---------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("command", ["stream", "check"])
def test_declared_defaults_are_what_build_settings_makes_of_no_input(run: Any, command: str) -> None:
    result, s = run(command)
    assert result.exit_code == 0, result.output
    assert s is not None
    for o in OPTIONS:
        if o.setting is None or o.name == "server_id":
            continue
        assert value_at(s, o.setting) == o.default, o.name
    name = "wordpress"
    assert s.server_id == default_server_id(name)
    assert (s.topic, s.checkpoint_topic) == ("wpcdc.wordpress.posts", default_checkpoint_topic(name))
    assert s.term_topic == "wpcdc.wordpress.terms" and s.term_fanout == 0
    assert s.max_pending_bytes == 64 << 20 and s.blog_ids is None
    assert (s.snapshot.blog_ids, s.snapshot.post_types, s.snapshot.id_min, s.snapshot.id_max) == (None, None, 0, None)
    assert s.capture.excluded_post_types == frozenset(DEFAULT_EXCLUDED_POST_TYPES)
    assert s.capture.included_post_types is None and s.capture.excluded_statuses == frozenset()
    # the settings classes start from the same values, so code that builds them agrees with the CLI
    plain = StreamSettings(name=name, mysql=MysqlSettings(), kafka=KafkaSettings(), server_id=s.server_id,
                           topic=s.topic, checkpoint_topic=s.checkpoint_topic, term_topic=s.term_topic,
                           capture=s.capture)
    assert plain == s


def test_a_few_defaults_an_operator_relies_on() -> None:
    """Pinned literally: a changed default is a changed contract (docs/design.md, docs/events.md)."""
    s = SnapshotSettings()
    assert (MysqlSettings().port, KafkaSettings().bootstrap, s.chunk_size) == (3306, "127.0.0.1:9092", 500)
    st = StreamSettings(name="n", mysql=MysqlSettings(), kafka=KafkaSettings())
    assert (st.window, st.max_delay, st.max_message_bytes, st.delivery) == (2.0, 30.0, 900_000, "exactly-once")


# ---------------------------------------------------------------------------- bounds


def outside(o: Option) -> list[float]:
    values: list[float] = []
    if o.low is not None:
        values.append(o.low if o.low_open else o.low - 1)
    if o.high is not None:
        values.append(o.high + 1)
    return values


BOUNDED = [o for o in OPTIONS if o.low is not None or o.high is not None]
OUTSIDE = [(o, v) for o in BOUNDED for v in outside(o)]


def env_text(o: Option, value: float) -> str:
    return str(int(value)) if o.type is int else str(float(value))


@pytest.mark.parametrize(("option", "value"), OUTSIDE, ids=[f"{o.name}={v}" for o, v in OUTSIDE])
def test_out_of_bounds_from_the_environment_names_the_option_and_its_range(run: Any, option: Option,
                                                                              value: float) -> None:
    result, s = run(option.commands[0], env={option.envvar: env_text(option, value)})
    assert result.exit_code == 2 and s is None, result.output
    message = f"wpcdc: {option.flag} {option.type(value)}: must be {option.allowed}"
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("wpcdc:") == 1


@pytest.mark.parametrize("option", [o for o in BOUNDED if not o.low_open], ids=lambda o: o.name)
def test_the_bounds_themselves_are_allowed_and_land_in_the_settings(run: Any, option: Option) -> None:
    for bound in (option.low, option.high):
        if bound is None:
            continue
        result, s = run(option.commands[0], env={option.envvar: env_text(option, bound)})
        assert result.exit_code == 0, result.output
        assert option.setting is not None and value_at(s, option.setting) == bound


# The Kafka security choices need credentials beside them (config.validate): test_auth_options.
CHOSEN = [o for o in OPTIONS if o.choices and o.setting is not None
          and o.name not in ("kafka_security_protocol", "kafka_sasl_mechanism")]


@pytest.mark.parametrize("option", CHOSEN, ids=lambda o: o.name)
def test_each_choice_lands_in_the_settings(run: Any, option: Option) -> None:
    """A choice given is the choice the connector runs with (``--binlog-reader thread`` once parsed
    and then dropped on the way to the settings)."""
    for choice in option.choices:
        result, s = run(option.commands[0], env={option.envvar: choice})
        assert result.exit_code == 0, result.output
        assert option.setting is not None and value_at(s, option.setting) == choice


@pytest.mark.parametrize(("toml", "command", "message"), [
    ("[mysql]\nport = 0\n", "check", "--mysql-port 0: must be 1..65535"),
    ("mysql_port = 65536\n", "status", "--mysql-port 65536: must be 1..65535"),
    ("[snapshot]\nchunk_size = 10001\n", "stream", "--snapshot-chunk-size 10001: must be 1..10000 (every post"),
    ("stall_timeout = 0\n", "backfill", "--stall-timeout 0.0: must be > 0 seconds"),
    ("window = -1\n", "stream", "--window -1.0: must be >= 0 seconds"),
    ('delivery = "twice"\n', "stream", "'twice' is not one of 'exactly-once', 'at-least-once'"),  # click's own
])
def test_out_of_bounds_from_the_file_names_the_option(run: Any, tmp_path: Path, toml: str, command: str,
                                                      message: str) -> None:
    config = tmp_path / "wpcdc.toml"
    config.write_text(toml)
    result, s = run("--config", str(config), command)
    assert result.exit_code == 2 and s is None
    assert message in result.stderr, result.stderr


def test_a_choice_is_checked_for_settings_built_in_code() -> None:
    with pytest.raises(ConfigError, match=r"--delivery 'twice': must be exactly-once or at-least-once"):
        from cdc.config import validate

        validate(StreamSettings(name="n", mysql=MysqlSettings(), kafka=KafkaSettings(), server_id=1,
                                delivery="twice"))


def test_server_id_zero_is_refused_not_replaced(run: Any) -> None:
    result, _ = run("stream", "--server-id", "0")
    assert result.exit_code == 2 and "--server-id 0: must be 1..4294967295 and unique among replicas" in result.stderr


# ---------------------------------------------------------------------------- the TOML file


def test_tables_flat_keys_and_dashes_all_reach_the_settings(run: Any, tmp_path: Path) -> None:
    config = tmp_path / "wpcdc.toml"
    config.write_text('name = "blog"\nmysql-user = "reader"\nmax_message_bytes = 20000\n'
                      '[mysql]\nhost = "db-1"\nport = 3307\n'
                      '[kafka]\nbootstrap = "k:9093"\nsecurity_protocol = "SASL_PLAINTEXT"\n'
                      '[kafka.sasl]\nmechanism = "PLAIN"\nusername = "u"\npassword = "file-secret"\n'
                      '[snapshot]\nchunk_size = 50\n')
    result, s = run("--config", str(config), "stream", env={"WPCDC_MYSQL_PORT": "3308"})
    assert result.exit_code == 0, result.output
    assert s is not None
    assert (s.name, s.mysql.user, s.mysql.host, s.mysql.port) == ("blog", "reader", "db-1", 3308)  # env wins
    assert (s.kafka.bootstrap, s.kafka.sasl_mechanism, s.kafka.sasl_password) == ("k:9093", "PLAIN", "file-secret")
    assert (s.max_message_bytes, s.snapshot.chunk_size, s.topic) == (20000, 50, "wpcdc.blog.posts")


def test_the_file_sets_the_group_options_too(run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    config = tmp_path / "wpcdc.toml"
    config.write_text('[log]\nlevel = "DEBUG"\nformat = "text"\n')
    monkeypatch.setattr(logs, "setup", lambda level, fmt, *a: seen.append((level, fmt)))
    result = CliRunner(env={"WPCDC_LOG_LEVEL": None}).invoke(cli.main, ["--config", str(config), "offsets", "--help"])
    assert result.exit_code == 0 and seen == [("debug", "text")]


@pytest.mark.parametrize(("toml", "message"), [
    ('[mysql]\nhots = "x"\n', "unknown key 'mysql.hots' (did you mean 'mysql.host'?)"),
    ('mysql_hots = "x"\n', "unknown key 'mysql_hots' (did you mean 'mysql_host'?)"),
    ('[kafka.sasl]\nusrname = "x"\n', "unknown key 'kafka.sasl.usrname' (did you mean 'kafka.sasl.username'?)"),
    ('[snapshot]\nchunk-sise = 5\n', "unknown key 'snapshot.chunk-sise' (did you mean 'snapshot.chunk_size'?)"),
    ("windw = 3\n", "unknown key 'windw' (did you mean 'window'?)"),
    ('zzzz = "x"\n', "unknown key 'zzzz'"),
    ('config = "other.toml"\n', "'config' cannot be set in the file; use --config or WPCDC_CONFIG"),
    ('mysql_host = "a"\n[mysql]\nhost = "b"\n', "'mysql_host' and 'mysql.host' both set --mysql-host; keep one"),
])
def test_a_key_no_command_knows_is_refused_with_the_nearest_known_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "x.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as raised:
        load_toml(str(config))
    assert str(raised.value) == f"config file {config}: {message}"


def test_an_unknown_key_stops_every_command_with_exit_2(run: Any, tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text('[mysql]\nhots = "x"\n')
    result, s = run("--config", str(config), "check")
    assert result.exit_code == 2 and s is None
    assert f"config file {config}: unknown key 'mysql.hots' (did you mean 'mysql.host'?)" in result.stderr


def test_keys_of_other_commands_are_fine(run: Any, tmp_path: Path) -> None:
    config = tmp_path / "wpcdc.toml"
    config.write_text('name = "blog"\nwindow = 5.0\nsnapshot = "initial"\nsnapshot_chunk_size = 7\n')
    result, s = run("--config", str(config), "check")  # check has none of these but the name
    assert result.exit_code == 0, result.output
    assert s is not None and s.name == "blog" and s.window == 2.0


def test_the_example_files_of_the_docs_are_accepted(tmp_path: Path) -> None:
    blocks = [b for doc in (DOCS / "operations.md", DOCS.parent / "README.md")
              for b in re.findall(r"```toml\n(.*?)```", doc.read_text(), re.DOTALL)]
    assert blocks, "docs/operations.md lost its example config file"
    for i, block in enumerate(blocks):
        config = tmp_path / f"example-{i}.toml"
        config.write_text(block)
        assert load_toml(str(config))  # raises on a key wpcdc does not know


# ---------------------------------------------------------------------------- secrets


def test_a_password_on_the_command_line_is_warned_about_and_from_env_is_not(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wpcdc"):
        run("check", "--mysql-password", "cli-secret-1")
        run("check", env={"WPCDC_KAFKA_SASL_PASSWORD": "env-secret-2"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["--mysql-password on the command line is visible to every user of this machine (ps, /proc): "
                        "use WPCDC_MYSQL_PASSWORD or --mysql-password-file instead"]
