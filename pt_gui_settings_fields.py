"""What the SETTINGS tab shows, worked out from the schema alone (no Tk here).

Every field of :class:`pt_config_schema.Settings` becomes a :class:`FieldSpec` (its label, kind,
default, description and bounds), grouped into :class:`SectionSpec` panels, so a setting added to
the schema appears in the editor without GUI code. The text the user types is turned back into
JSON values here too, and the schema's problems are mapped back onto the fields they belong to,
which keeps all of the editor's decisions testable without a display.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

import pt_config
from pt_config_schema import Settings

Kind = Literal["bool", "choice", "int", "float", "text", "list", "json"]
Raw = str | bool  # what a form widget holds: the typed text, or a checkbutton's state
NBSP = "\u00a0"
MIN_ALLOCATION_USD = 0.50  # the trader never buys less than this (original-behaviour.md §4.4)

# Top-level settings by topic; a new top-level setting lands in "other" until it is placed.
TOP_LEVEL_GROUPS: Mapping[str, str] = {
    "mode": "mode", "coins": "coins",
    "trade_start_level": "trading", "start_allocation_pct": "trading",
    "dca_levels": "dca", "dca_multiplier": "dca", "max_dca_buys_per_24h": "dca",
    "pm_start_pct_no_dca": "trailing", "pm_start_pct_with_dca": "trailing",
    "trailing_gap_pct": "trailing",
    "timeframes": "display", "default_timeframe": "display", "candles_limit": "display",
    "ui_refresh_seconds": "display", "chart_refresh_seconds": "display",
    "auto_start_scripts": "display",
}  # fmt: skip
SECTION_ORDER = (
    "mode", "coins", "trading", "dca", "trailing", "exchanges", "predictor", "trader", "paper",
    "demo", "notifications", "volume", "sizing", "risk", "logging", "display", "other",
)  # fmt: skip
TITLES: Mapping[str, tuple[str, str]] = {
    "mode": ("Mode", "Where prices come from and where orders go."),
    "coins": ("Coins", "The coins the bot trains, predicts and trades."),
    "trading": ("Trading", "When a trade starts and how large its first buy is."),
    "dca": ("DCA", "Buying more while a position is down."),
    "trailing": ("Trailing profit margin", "When a position in profit is sold."),
    "exchanges": ("Exchanges", ""),
    "predictor": ("Predictor", ""),
    "trader": ("Trader limits", ""),
    "paper": ("Paper wallet", ""),
    "demo": ("Demo", ""),
    "notifications": ("Notifications", "Email, Discord, Telegram and webhook messages."),
    "volume": ("Volume analysis", "Anomalies and trend of each coin's hourly volume."),
    "sizing": ("Entry sizing", "Fixed first buys, or sized by the coin's volatility (ATR)."),
    "risk": ("Risk limits", "Optional limits, off unless set (there is no stop loss by design)."),
    "logging": ("Logging", "The log files every process writes."),
    "display": ("Display", "The hub's charts, refresh periods and start-up."),
    "other": ("Other", "Settings not yet sorted into a section."),
}
LABELS: Mapping[str, str] = {
    "coins": "Coins",
    "dca_levels": "DCA levels (% list)",
    "max_dca_buys_per_24h": "Max DCA buys / coin / 24 h",
    "pm_start_pct_no_dca": "Trailing PM start % (no DCA)",
    "pm_start_pct_with_dca": "Trailing PM start % (with DCA)",
    "trailing_gap_pct": "Trailing gap % (behind peak)",
    "auto_start_scripts": "Auto start on launch",
    "exchanges.order": "Venue order",
    "logging.level": "Log level",
    "logging.max_bytes": "Rotate at (bytes)",
    "logging.backup_count": "Rotated files kept",
    "logging.console": "Also to the terminal",
}
WORDS = {
    "pct": "%", "usd": "(USD)", "url": "URL", "dca": "DCA", "atr": "ATR", "pm": "PM", "ui": "UI",
    "seconds": "(s)", "kucoin": "KuCoin", "binance": "Binance", "coinbase": "Coinbase",
    "robinhood": "Robinhood", "24h": "24 h",
}  # fmt: skip


@dataclass(frozen=True)
class FieldSpec:
    """One editable setting: ``path`` is its dotted key in ``settings.json``."""

    path: str
    label: str
    kind: Kind
    default: Any
    description: str = ""
    bounds: str = ""
    choices: tuple[str, ...] = ()  # a choice's options, or what a list's items may be
    item: Literal["int", "float", "text"] = "text"  # a list's item type
    optional: bool = False  # empty text means null

    @property
    def hint(self) -> str:
        """The muted text beside the field: what it means and what it accepts."""
        extra = "comma-separated" if self.kind == "list" else ""
        if self.kind == "list" and self.choices:
            extra += f" from {', '.join(self.choices)}"
        bounds = self.bounds.replace(" ", NBSP)  # "0 to 100" never breaks across lines
        parts = (self.description, extra, bounds, "empty = off" if self.optional else "")
        return " · ".join(p for p in parts if p)


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    note: str
    fields: tuple[FieldSpec, ...]


class ConversionError(ValueError):
    """Typed text that is not a value of the field's kind (the message is shown under it)."""


# --------------------------------------------------------------------------- building specs


def _num(value: object, *, grouped: bool = False) -> str:
    """A number as a person writes it: ``60`` rather than ``60.0``, ``1e-05`` as is; bounds
    are ``grouped`` (``1,000,000``) to be read, entries are not, to be typed back."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if grouped and isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def bounds_text(field: FieldInfo) -> str:
    """``Field(ge=1, le=7)`` → ``"1 to 7"``; ``gt=0, le=5`` → ``"above 0, at most 5"``."""
    found = {
        key: getattr(m, key)
        for m in field.metadata
        for key in ("ge", "gt", "le", "lt", "min_length")
        if getattr(m, key, None) is not None
    }
    parts: list[str] = []
    if "ge" in found and "le" in found:
        parts.append(f"{_num(found['ge'], grouped=True)} to {_num(found['le'], grouped=True)}")
    else:
        words = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}
        parts += [f"{w} {_num(found[k], grouped=True)}" for k, w in words.items() if k in found]
    if found.get("min_length", 0) > 1:
        parts.append(f"at least {found['min_length']} items")
    return ", ".join(parts)


def _label(path: str) -> str:
    if path in LABELS:
        return LABELS[path]
    words = [WORDS.get(w, w) for w in path.rsplit(".", 1)[-1].split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _options(ann: Any) -> tuple[str, ...] | None:
    """The allowed values of a Literal or an Enum, as text; None for anything else."""
    if get_origin(ann) is Literal:
        return tuple(str(a) for a in get_args(ann))
    if isinstance(ann, type) and issubclass(ann, Enum):
        return tuple(str(m.value) for m in ann)
    return None


def _kind(ann: Any) -> tuple[Kind, tuple[str, ...], Literal["int", "float", "text"]]:
    simple: dict[Any, Kind] = {bool: "bool", int: "int", float: "float", str: "text"}
    if ann in simple:
        return simple[ann], (), "text"
    if (options := _options(ann)) is not None:
        numbers = get_origin(ann) is Literal and all(type(a) is int for a in get_args(ann))
        return "choice", options, "int" if numbers else "text"  # a choice of 7, 30, 90 days
    args = get_args(ann)
    if get_origin(ann) in (tuple, list) and args:
        item = args[0]
        of: Literal["int", "float", "text"] = (
            "int" if item is int else "float" if item is float else "text"
        )
        return "list", _options(item) or (), of
    return "json", (), "text"


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    if get_origin(ann) in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1 and len(get_args(ann)) == 2:
            return args[0], True
    return ann, False


def section_model(field: FieldInfo) -> type[BaseModel] | None:
    ann = field.annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def field_spec(path: str, field: FieldInfo) -> FieldSpec:
    ann, optional = _unwrap_optional(field.annotation)
    kind, choices, item = _kind(ann)
    default = field.get_default(call_default_factory=True)
    if isinstance(default, Enum):
        default = default.value
    return FieldSpec(
        path=path,
        label=_label(path),
        kind=kind,
        default=default,
        description=field.description or "",
        bounds="" if kind in ("bool", "choice") else bounds_text(field),
        choices=choices,
        item=item,
        optional=optional,
    )


def build_sections(model: type[BaseModel] = Settings) -> tuple[SectionSpec, ...]:
    """Every setting of ``model`` in display order: sub-models are their own sections."""
    groups: dict[str, list[FieldSpec]] = {}
    notes: dict[str, str] = {}
    for name, field in model.model_fields.items():
        sub = section_model(field)
        if sub is None:
            groups.setdefault(TOP_LEVEL_GROUPS.get(name, "other"), []).append(
                field_spec(name, field)
            )
            continue
        notes[name] = (sub.__doc__ or "").strip().split("\n")[0]
        groups[name] = [field_spec(f"{name}.{n}", f) for n, f in sub.model_fields.items()]
    order = [k for k in SECTION_ORDER if k in groups] + [
        k for k in groups if k not in SECTION_ORDER
    ]
    sections = []
    for key in order:
        title, note = TITLES.get(key, (key.replace("_", " ").capitalize(), ""))
        sections.append(SectionSpec(key, title, note or notes.get(key, ""), tuple(groups[key])))
    return tuple(sections)


def all_fields(sections: Iterable[SectionSpec]) -> tuple[FieldSpec, ...]:
    return tuple(f for s in sections for f in s.fields)


# --------------------------------------------------------------------------- text <-> value


def _item_text(value: object) -> str:
    return _num(value) if isinstance(value, float) else str(value)


def to_raw(spec: FieldSpec, value: Any) -> Raw:
    """What the widget shows for ``value`` (a value from the file, which may be invalid)."""
    if spec.kind == "bool":
        return bool(value)
    if value is None:
        return ""
    if spec.kind == "list" and isinstance(value, list | tuple):
        return ", ".join(_item_text(v) for v in value)
    if spec.kind == "json":
        return json.dumps(value)
    return _item_text(value)


def _number(text: str, item: Literal["int", "float"]) -> int | float:
    if item == "int":
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ConversionError(f"{text!r} is not a whole number")
        return int(text)
    try:
        value = float(text.removesuffix("%").strip())
    except ValueError:
        raise ConversionError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConversionError(f"{text!r} is not a finite number")
    return value


def from_raw(spec: FieldSpec, raw: Raw) -> Any:
    """The JSON value for what the user typed; :class:`ConversionError` says why not."""
    if spec.kind == "bool" or isinstance(raw, bool):
        return bool(raw)
    text = raw.strip()
    value: Any = text
    if not text and spec.optional:
        value = None
    elif spec.kind in ("int", "float") or (spec.kind == "choice" and spec.item == "int"):
        if not text:
            raise ConversionError("enter a number")
        value = _number(text, "float" if spec.kind == "float" else "int")
    elif spec.kind == "list":
        items = [t for t in re.split(r"[,\s]+", text) if t]
        value = items if spec.item == "text" else [_number(t, spec.item) for t in items]
    elif spec.kind == "json":
        try:
            value = json.loads(text)
        except ValueError:
            raise ConversionError("not valid JSON") from None
    return value


# --------------------------------------------------------------------------- problems


def owner_of(key: str, paths: Iterable[str]) -> str | None:
    """The field a problem's key belongs to (``dca_levels.2`` → ``dca_levels``), if any."""
    best: str | None = None
    for path in paths:
        if (key == path or key.startswith(path + ".")) and len(path) > len(best or ""):
            best = path
    return best


def problem_text(problem: pt_config.SettingsProblem, path: str) -> str:
    """The schema's message, worded for the line under the field: ``must be less than or equal
    to 7 — allowed: a whole number from 1 to 7``; ``item 2: must be a valid number``."""
    rest = problem.key[len(path) + 1 :]
    where = f"item {int(rest.split('.')[0]) + 1}: " if rest[:1].isdigit() else ""
    message = problem.message.replace("Input should be", "must be")
    allowed = f" — allowed: {problem.allowed}" if problem.allowed else ""
    return f"{where}{message}{allowed}"


@dataclass(frozen=True)
class Checked:
    """The outcome of checking the form: the data to save, or what is wrong with it."""

    data: dict[str, Any]
    field_errors: Mapping[str, str]  # dotted path → message
    general: tuple[str, ...]  # problems that belong to no single field

    @property
    def ok(self) -> bool:
        return not self.field_errors and not self.general


def check_form(
    fields: Iterable[FieldSpec], raws: Mapping[str, Raw], base: Mapping[str, Any]
) -> Checked:
    """Apply every field's text over ``base`` (the file's known settings) and validate it all:
    conversion errors and schema problems together, each on its own field."""
    data: dict[str, Any] = json.loads(json.dumps(base))
    specs = list(fields)
    errors: dict[str, str] = {}
    for spec in specs:
        if spec.path not in raws:
            continue
        try:
            pt_config.set_path(data, spec.path, from_raw(spec, raws[spec.path]))
        except ConversionError as exc:
            errors[spec.path] = str(exc)
    general: list[str] = []
    paths = [s.path for s in specs]
    unreadable = set(errors)  # the schema saw the old value there: its opinion does not count
    for problem in pt_config.validate(data):
        owner = owner_of(problem.key, paths)
        if owner is None:
            general.append(problem.describe(with_source=False))
        elif owner in unreadable:
            continue
        elif owner not in errors:
            errors[owner] = problem_text(problem, owner)
        else:  # several items of one list: say the first, count the rest
            errors[owner] = errors[owner].split(" (+")[0] + " (+ more)"
    return Checked(data, errors, tuple(general))


# --------------------------------------------------------------------------- unknown keys


def split_unknown(
    raw: Mapping[str, Any], model: type[BaseModel] = Settings
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The file's settings this version knows, and the rest (kept and written back as is).

    A section that is not an object is left out of both: the form shows its defaults and the
    next save writes them.
    """
    known: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, value in raw.items():
        field = model.model_fields.get(key)
        if field is None:
            unknown[key] = value
        elif (sub := section_model(field)) is None:
            known[key] = value
        elif isinstance(value, Mapping):
            known[key], inner = split_unknown(value, sub)
            if inner:
                unknown[key] = inner
    return known, unknown


def merge_unknown(data: Mapping[str, Any], unknown: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the unknown keys put back where they were."""
    merged = dict(data)
    for key, value in unknown.items():
        inner = merged.get(key)
        if isinstance(value, Mapping) and isinstance(inner, Mapping):
            merged[key] = merge_unknown(inner, value)
        else:
            merged[key] = value
    return merged


def unknown_text(unknown: Mapping[str, Any]) -> str:
    """``"trade_start_levle (did you mean 'trade_start_level'?), demo.colour"``."""
    described = []
    for p in pt_config.validate(unknown):
        hint = p.message.removeprefix("unknown setting").strip()
        if p.message.startswith("unknown setting"):
            described.append(f"{p.key} {hint}".strip())
    return ", ".join(described)


# --------------------------------------------------------------------------- live hints


def allocation_hint(pct_text: Raw, account_value: float | None) -> str:
    """``≈ $X per trade`` beside the start allocation, as the original showed it."""
    try:
        pct = float(str(pct_text).removesuffix("%").strip())
    except ValueError:
        return ""
    if not math.isfinite(pct) or pct < 0:
        return ""
    if account_value is None or not math.isfinite(account_value):
        return f"≈ ${MIN_ALLOCATION_USD:.2f} minimum per trade (needs an account value)"
    amount = account_value * pct / 100
    if amount < MIN_ALLOCATION_USD:
        return f"≈ ${MIN_ALLOCATION_USD:.2f} per trade (the minimum; {pct:g}% is ${amount:,.2f})"
    return f"≈ ${amount:,.2f} per trade (of ${account_value:,.2f})"


MODE_HINTS = {
    "demo": "bundled history on a fast clock, paper orders: no network, no keys",
    "paper": "live prices, paper orders: nothing real is bought",
    "live": "REAL orders with real money on Robinhood: needs API keys and a typed confirmation",
}
