"""Settings: load, validate, save, override from the environment and hot-reload.

One file, ``settings.json`` in the data folder, written only by the hub (or this module's CLI).
The schema lives in :mod:`pt_config_schema`. Rules that matter to a trading bot:

* Validation reports **every** problem at once, each naming the key, the bad value and what is
  allowed; an invalid file is never half-applied (the previous settings stay in force).
* A file that is not JSON at all is kept aside as ``settings.json.corrupt-<time>`` and the
  defaults (demo mode: no network, no keys, no real orders) are used, with a warning.
* ``POWERTRADER_<KEY>`` / ``POWERTRADER_<SECTION>__<KEY>`` environment variables override the
  file for one run; they are never written back by :class:`ConfigManager`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pt_config_schema import Settings
from pt_state import atomic_write_json

log = logging.getLogger(__name__)

ENV_PREFIX = "POWERTRADER_"
# Environment variables with our prefix that are not settings.
RESERVED_ENV = frozenset({"POWERTRADER_HOME"})


@dataclass(frozen=True)
class SettingsProblem:
    """One thing wrong with the settings, worded for the person who has to fix it."""

    key: str
    value: Any
    message: str
    allowed: str = ""
    source: str = "settings"

    def __str__(self) -> str:
        return self.describe(with_source=True)

    def describe(self, *, with_source: bool) -> str:
        where = f"{self.source}: " if with_source and self.source else ""
        allowed = f"; allowed: {self.allowed}" if self.allowed else ""
        return f"{where}{self.key or '(whole file)'} = {self.value!r}: {self.message}{allowed}"


class SettingsError(ValueError):
    """Settings that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[SettingsProblem], path: Path | None = None) -> None:
        self.problems = tuple(problems)
        self.path = path
        head = f"invalid settings in {path}" if path else "invalid settings"
        lines = "\n".join(f"  - {p.describe(with_source=p.source != str(path))}" for p in problems)
        super().__init__(f"{head} ({len(problems)} problem(s)):\n{lines}")


# --------------------------------------------------------------------------- validation


def _model_at(loc: tuple[str | int, ...]) -> tuple[type[BaseModel] | None, str]:
    """The model that owns the field at ``loc`` and the field's name."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        ann = field.annotation if field else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model, str(loc[-1]) if loc else ""


_BOUND_WORDS = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}


def _range_words(bounds: Mapping[str, Any]) -> str:
    """``{"ge": 1, "le": 7}`` → ``"from 1 to 7"``; ``{"gt": 0, "le": 5}`` → ``"above 0 and at
    most 5"``: a range as a person says it."""
    if "ge" in bounds and "le" in bounds:
        return f"from {bounds['ge']} to {bounds['le']}"
    return " and ".join(
        f"{word} {bounds[key]}" for key, word in _BOUND_WORDS.items() if key in bounds
    )


def describe_allowed(model: type[BaseModel], name: str) -> str:
    """Plain-words description of what a field accepts, derived from the schema itself."""
    field = model.model_fields.get(name)
    if field is None:
        return ""
    bounds = {
        k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)
    }
    ann = field.annotation
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return f"an object of {name} settings"
    kind = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(
        ann,  # type: ignore[arg-type]
        f"like the default {json.dumps(field.default, default=str)}",
    )
    return f"{kind} {_range_words(bounds)}".strip()


def _problem_from_error(err: Mapping[str, Any], source: str) -> SettingsProblem:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    model, name = _model_at(loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    allowed = describe_allowed(model, name) if model else ""
    if err["type"] == "extra_forbidden":
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(name, known, n=1)
        message = "unknown setting" + (f" (did you mean {close[0]!r}?)" if close else "")
        allowed = ""
    elif err["type"] == "value_error" or "expected" in (err.get("ctx") or {}):
        allowed = ""  # the message already says what is wrong and what would be right
    return SettingsProblem(key, err.get("input"), message, allowed, source)


def validate(data: Mapping[str, Any], *, source: str = "settings") -> list[SettingsProblem]:
    """Every problem in ``data`` (empty when it is valid). Never raises."""
    try:
        text = json.dumps(data, allow_nan=True, default=str)
        Settings.model_validate_json(text)
    except ValidationError as exc:
        return [_problem_from_error(e, source) for e in exc.errors()]
    return []


def parse(data: Mapping[str, Any], *, source: str = "settings") -> Settings:
    """A validated :class:`Settings`, or :class:`SettingsError` listing every problem."""
    problems = validate(data, source=source)
    if problems:
        raise SettingsError(problems)
    return Settings.model_validate_json(json.dumps(data))


def to_data(settings: Settings) -> dict[str, Any]:
    """Plain JSON-ready dict of every setting (what ``settings.json`` holds)."""
    return settings.model_dump(mode="json")


# --------------------------------------------------------------------------- dotted keys


def get_path(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise KeyError(f"{key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


# --------------------------------------------------------------------------- environment


def _env_value(raw: str) -> Any:
    """JSON when it parses (``4``, ``true``, ``["BTC"]``), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], list[SettingsProblem]]:
    """Dotted keys and values from ``POWERTRADER_*`` variables, plus unknown-variable problems."""
    found: dict[str, Any] = {}
    problems: list[SettingsProblem] = []
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        model, field = _model_at(tuple(key.split(".")))
        if model is None or field not in model.model_fields:
            fields = [f.upper() for f in Settings.model_fields]
            close = difflib.get_close_matches(name[len(ENV_PREFIX) :], fields, n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
            problems.append(
                SettingsProblem(key, raw, f"no such setting{hint}", source=f"environment {name}")
            )
            continue
        found[key] = _env_value(raw)
    return found, problems


def apply_env(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``data`` with environment overrides applied; raises :class:`SettingsError` on bad ones."""
    overrides, problems = env_overrides(env)
    merged: dict[str, Any] = json.loads(json.dumps(data))
    for key, value in overrides.items():
        set_path(merged, key, value)
    problems += [
        p
        for p in validate(merged, source="environment")
        if any(p.key == k or p.key.startswith(k + ".") for k in overrides)
    ]
    if problems:
        raise SettingsError(problems)
    return merged


# --------------------------------------------------------------------------- files


def read_file(path: Path, *, clock: Any = time.time) -> dict[str, Any]:
    """The raw settings in ``path``: ``{}`` when missing; a non-JSON file is kept aside."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"top level is {type(data).__name__}, not an object")
    except ValueError as exc:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        path.replace(aside)
        log.warning(
            "settings file %s is not valid JSON (%s); kept it as %s and started from defaults",
            path,
            exc,
            aside,
        )
        return {}
    return data


def load(path: Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` plus environment overrides.

    Raises :class:`SettingsError` (naming the file) when the file or an override is invalid;
    the file itself is left untouched so nothing the user saved is lost.
    """
    data = read_file(path)
    problems = validate(data, source=str(path))
    if problems:
        raise SettingsError(problems, path)
    merged = apply_env(data, os.environ if env is None else env)
    return Settings.model_validate_json(json.dumps(merged))


def save(path: Path, settings: Settings | Mapping[str, Any]) -> None:
    """Write settings atomically (validated first: an invalid mapping writes nothing)."""
    data = to_data(settings) if isinstance(settings, Settings) else to_data(parse(settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, data)


class SettingsWatcher:
    """Hot reload for the thinker and trader loops.

    ``changed()`` is cheap: a ``stat`` per call, and a content hash only when the file's mtime
    or size moved, so an editor that rewrites identical bytes does not trigger a reload.
    ``reload()`` never lets an invalid edit through: the last good settings stay in force and
    the problems are logged once per edit.
    """

    def __init__(self, path: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._env = dict(os.environ if env is None else env)
        self._stat: tuple[int, int] | None = None
        self._digest = ""
        self.problems: tuple[SettingsProblem, ...] = ()
        self.current = load(path, env=self._env)
        self._remember(self._read_bytes())

    def _read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def _stat_key(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _remember(self, content: bytes) -> None:
        self._stat = self._stat_key()
        self._digest = hashlib.sha256(content).hexdigest()

    def changed(self) -> bool:
        if self._stat_key() == self._stat:
            return False
        content = self._read_bytes()
        if hashlib.sha256(content).hexdigest() == self._digest:
            self._stat = self._stat_key()
            return False
        return True

    def reload(self) -> Settings:
        """The settings now in force (new ones if the file changed and is valid)."""
        if not self.changed():
            return self.current
        content = self._read_bytes()
        try:
            self.current = load(self.path, env=self._env)
            self.problems = ()
            log.info("settings reloaded from %s", self.path)
        except SettingsError as exc:
            self.problems = exc.problems
            log.error("%s; keeping the previous settings until the file is fixed", exc)
        self._remember(content)
        return self.current


# --------------------------------------------------------------------------- roadmap API


class ConfigManager:
    """The roadmap's settings API, over the schema.

    Holds the file's own values (environment overrides are applied to what :attr:`settings`
    returns, never to what is saved) so saving cannot bake a one-off override into the file.
    """

    def __init__(self, path: Path | None = None, *, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._env = dict(os.environ if env is None else env)
        self._data: dict[str, Any] = to_data(Settings())

    @property
    def settings(self) -> Settings:
        return Settings.model_validate_json(json.dumps(apply_env(self._data, self._env)))

    def load_config(self, path: str | Path | None = None) -> dict[str, Any]:
        """Load and validate a file; raises :class:`SettingsError` if it is invalid."""
        self.path = Path(path) if path is not None else self.path
        if self.path is None:
            raise ValueError("no settings path given")
        data = read_file(self.path)
        problems = validate(data, source=str(self.path))
        if problems:
            raise SettingsError(problems, self.path)
        self._data = to_data(parse(data))
        return to_data(self.settings)

    def save_config(self, path: str | Path | None = None) -> bool:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no settings path given")
        try:
            save(target, self._data)
        except OSError:
            log.exception("could not save settings to %s", target)
            return False
        return True

    def validate_config(self, config: Mapping[str, Any]) -> tuple[bool, list[str]]:
        problems = validate(config)
        return not problems, [str(p) for p in problems]

    def get_value(self, key: str, default: Any = None) -> Any:
        try:
            return get_path(to_data(self.settings), key)
        except KeyError:
            return default

    def set_value(self, key: str, value: Any) -> bool:
        """Change one setting in memory; refused (False, logged) if it would be invalid."""
        problems = self.try_set(key, value)
        if problems:
            log.error("refused %s = %r: %s", key, value, "; ".join(map(str, problems)))
        return not problems

    def try_set(self, key: str, value: Any) -> list[SettingsProblem]:
        """Like :meth:`set_value`, returning every problem instead (empty: applied)."""
        candidate = json.loads(json.dumps(self._data))
        try:
            set_path(candidate, key, value)
        except KeyError as exc:
            return [SettingsProblem(key, value, str(exc.args[0]))]
        problems = validate(candidate)
        if not problems:
            self._data = to_data(parse(candidate))
        return problems


# --------------------------------------------------------------------------- CLI


def _settings_path(data_dir: str | None) -> Path:
    from pt_state import DataLayout, resolve_data_dir  # noqa: PLC0415  (CLI only)

    return DataLayout(resolve_data_dir(data_dir)).settings_file


def _missing_secrets(path: Path, settings: Settings) -> dict[str, str]:
    """Enabled notification channels whose secret was never stored (read from the secrets
    file's header: no key needed, nothing decrypted)."""
    from pt_notify_format import missing_secrets  # noqa: PLC0415  (CLI only)
    from pt_secrets_vault import read_header  # noqa: PLC0415
    from pt_state import DataLayout  # noqa: PLC0415

    header = read_header(DataLayout(path.parent))
    return missing_secrets(settings.notifications, header.names if header else ())


def main(argv: list[str] | None = None) -> int:
    """``python pt_config.py validate|show|get|set|import-gui-settings`` for the data folder."""
    import argparse  # noqa: PLC0415  (CLI only)

    parser = argparse.ArgumentParser(prog="pt_config.py", description=main.__doc__)
    parser.add_argument(
        "--data-dir", help="data folder (default: $POWERTRADER_HOME or ./user_data)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="check settings.json and the environment overrides")
    sub.add_parser("show", help="print the settings in force as JSON")
    get = sub.add_parser("get", help="print one setting (dotted key, e.g. demo.speed)")
    get.add_argument("key")
    put = sub.add_parser("set", help="change one setting in settings.json (validated)")
    put.add_argument("key")
    put.add_argument("value", help='JSON (4, true, ["BTC"]) or plain text')
    imp = sub.add_parser("import-gui-settings", help="import the original gui_settings.json")
    imp.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    out: list[str] = []
    code = _run_command(args, _settings_path(args.data_dir), out)
    print("\n".join(out))  # noqa: T201  (CLI output)
    return code


def _run_command(args: Any, path: Path, out: list[str]) -> int:
    import pt_config_legacy  # noqa: PLC0415  (it imports this module)

    try:
        if args.command == "import-gui-settings":
            report = pt_config_legacy.import_gui_settings(args.path, path)
            out.append(f"imported {len(report.carried)} setting(s) into {path}")
            out += [f"  not imported: {key} ({why})" for key, why in report.dropped]
            return 0
        if args.command == "set":
            return _set_one(path, args.key, _env_value(args.value), out)
        settings = load(path)
        if args.command == "validate":
            missing = _missing_secrets(path, settings)
            if missing:
                out.append(f"{path}: the settings are valid, but:")
                out += [f"  notifications.{key}: {why}" for key, why in missing.items()]
                return 1
            out.append(
                f"{path}: OK (mode {settings.mode.value}, coins {', '.join(settings.coins)})"
            )
        elif args.command == "show":
            out.append(json.dumps(to_data(settings), indent=2))
        else:
            out.append(json.dumps(get_path(to_data(settings), args.key)))
    except SettingsError as exc:
        out.append(str(exc))
        return 1
    except KeyError as exc:
        out.append(f"no such setting: {exc.args[0]}")
        return 1
    return 0


def _set_one(path: Path, key: str, value: Any, out: list[str]) -> int:
    manager = ConfigManager(path, env={})
    manager.load_config()
    problems = manager.try_set(key, value)
    if problems:
        raise SettingsError(problems, path)
    if not manager.save_config():
        out.append(f"could not write {path}")
        return 1
    out.append(f"{key} = {json.dumps(value)} saved in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
