"""Trained models on disk: ``models/<COIN>/`` (numpy arrays + ``meta.json``).

Layout: each training writes a new folder ``models/<COIN>/<model_id>/`` (``memories.npz`` and
``meta.json``) and then points ``models/<COIN>/current.json`` at it with one atomic replace. A
stopped or crashed training therefore leaves the previous model in force, and a reader never
sees half a model, nor a moment without one. The previous version is kept (a reader may be
loading it) and older ones are removed. The thinker keeps
learning live and saves what it learned beside the model as ``learned-<model_id>.npz``: the
original lost every learned weight; here a restart continues where it left off, and a newly
trained model (a new ``model_id``) is never mixed with weights learned on an older one.
"""

from __future__ import annotations

import io
import json
import logging
import math
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pt_errors import PowerTraderError
from pt_patterns import MemoryArrays, PatternConfig
from pt_state import DataLayout, atomic_write_bytes, atomic_write_json
from pt_types import Timeframe

log = logging.getLogger(__name__)

MODEL_SCHEMA = 1
# The original's rule: a model that has not learned for 14 days is stale. Live learning in the
# thinker counts: a model the thinker keeps feeding closed candles stays fresh.
STALE_AFTER = 14 * 24 * 3600
META_FILE = "meta.json"
CURRENT_FILE = "current.json"


class ModelError(PowerTraderError):
    """A model is missing, damaged or from an unknown format; the message says what to do."""


class ModelMissingError(ModelError):
    """The coin has never been trained (in this data folder)."""


@dataclass(frozen=True)
class ModelMeta:
    coin: str
    model_id: str
    trained_at: float  # on the mode's clock (simulated in demo)
    data_from: int  # first and last candle open time used, UTC seconds
    data_to: int
    config: dict[str, Any]
    code_version: str
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # per timeframe
    schema: int = MODEL_SCHEMA

    @property
    def pattern_config(self) -> PatternConfig:
        return PatternConfig(**self.config)


@dataclass(frozen=True)
class Model:
    meta: ModelMeta
    memories: dict[Timeframe, MemoryArrays]


@dataclass(frozen=True)
class ModelStatus:
    """What the hub and thinker show per coin."""

    coin: str
    state: str  # "trained", "stale", "missing" or "damaged"
    detail: str
    trained_at: float | None = None
    learned_until: float | None = None  # the newest live learning saved for this model


def new_model_id(coin: str, trained_at: float) -> str:
    return f"{coin.upper()}-{int(trained_at)}-{secrets.token_hex(3)}"


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _memory_arrays(data: Any, prefix: str, where: Path) -> MemoryArrays:
    try:
        return MemoryArrays(
            np.asarray(data[f"{prefix}patterns"], dtype=float),
            np.asarray(data[f"{prefix}outcomes"], dtype=float),
            np.asarray(data[f"{prefix}weights"], dtype=float),
            float(data[f"{prefix}threshold"]),
        )
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{where}: missing or bad array ({exc}); train the coin again") from exc


def _pack(memories: dict[Timeframe, MemoryArrays]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for tf, m in memories.items():
        out[f"{tf.value}_patterns"] = m.patterns
        out[f"{tf.value}_outcomes"] = m.outcomes
        out[f"{tf.value}_weights"] = m.weights
        out[f"{tf.value}_threshold"] = np.array(m.threshold)
    return out


def current_marker(layout: DataLayout, coin: str) -> Path:
    """The file that changes exactly when a coin gets a new model (cheap to stat)."""
    return layout.model_dir(coin) / CURRENT_FILE


def _current_id(folder: Path) -> str | None:
    try:
        raw = json.loads((folder / CURRENT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{folder / CURRENT_FILE} is damaged ({exc}); train the coin again"
        ) from exc
    model_id = raw.get("model_id") if isinstance(raw, dict) else None
    if not isinstance(model_id, str) or not model_id or "/" in model_id or model_id[0] == ".":
        raise ModelError(f"{folder / CURRENT_FILE} names no model; train the coin again")
    return model_id


def save_model(layout: DataLayout, model: Model) -> Path:
    """Write the model into its own new folder, then make it the current one atomically."""
    coin = model.meta.coin.upper()
    folder = layout.model_dir(coin)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        previous = _current_id(folder)
    except ModelError:
        previous = None
    staging = folder / f".staging-{model.meta.model_id}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    atomic_write_bytes(staging / "memories.npz", _npz_bytes(_pack(model.memories)))
    atomic_write_json(staging / META_FILE, asdict(model.meta))
    version = folder / model.meta.model_id
    staging.replace(version)
    atomic_write_json(folder / CURRENT_FILE, {"model_id": model.meta.model_id})
    tidy_model_folder(layout, coin, keep={model.meta.model_id, previous or ""})
    log.info("saved model %s for %s in %s", model.meta.model_id, coin, version)
    return version


def tidy_model_folder(layout: DataLayout, coin: str, *, keep: set[str] | None = None) -> None:
    """Remove half-written staging folders, and with ``keep`` every model version (and its live
    learning) not in it: versions no reader can still be loading."""
    folder = layout.model_dir(coin)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        version = _version_of(entry)
        if entry.name.startswith(".staging-"):
            log.info("%s: removing %s left by an interrupted training", coin, entry.name)
            shutil.rmtree(entry, ignore_errors=True)
        elif keep is not None and version is not None and version not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _version_of(entry: Path) -> str | None:
    """The model id a folder entry belongs to (``<id>/``, ``learned-<id>.npz|json``), if any."""
    if entry.is_dir() and not entry.name.startswith("."):
        return entry.name
    if entry.name.startswith("learned-") and entry.suffix in (".npz", ".json"):
        return entry.name.removeprefix("learned-").removesuffix(entry.suffix)
    return None


def load_meta(layout: DataLayout, coin: str) -> ModelMeta:
    folder = layout.model_dir(coin)
    model_id = _current_id(folder)
    if model_id is None:
        raise ModelMissingError(f"{coin}: not trained yet (no model in {folder}); train it")
    path = folder / model_id / META_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is damaged ({exc}); train the coin again") from exc
    if not isinstance(raw, dict) or raw.get("schema") != MODEL_SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else raw
        raise ModelError(
            f"{path}: model format {found!r} is not {MODEL_SCHEMA}; train the coin again"
        )
    try:
        return ModelMeta(**raw)
    except TypeError as exc:
        raise ModelError(f"{path}: unexpected fields ({exc}); train the coin again") from exc


def _read_memories(path: Path) -> dict[Timeframe, MemoryArrays]:
    try:
        with np.load(path) as data:
            return {tf: _memory_arrays(data, f"{tf.value}_", path) for tf in Timeframe}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} cannot be read ({exc}); train the coin again") from exc


def load_model(layout: DataLayout, coin: str) -> Model:
    """The coin's model; with what the thinker learned live when it belongs to this model.

    A damaged live-learning file costs only that learning: the trained memories are used, with
    a warning, rather than leaving the coin without signals until it is retrained.
    """
    meta = load_meta(layout, coin)
    folder = layout.model_dir(coin)
    learned = folder / f"learned-{meta.model_id}.npz"
    if learned.exists():
        try:
            return Model(meta, _read_memories(learned))
        except ModelError as exc:
            log.warning("%s; using the trained memories without live learning", exc)
    return Model(meta, _read_memories(folder / meta.model_id / "memories.npz"))


def save_learned(
    layout: DataLayout,
    meta: ModelMeta,
    memories: dict[Timeframe, MemoryArrays],
    *,
    learned_until: float,
) -> None:
    """Persist live learning for this model (only if the model on disk is still this one).

    ``learned_until`` (the mode's clock) is when the newest learned candle was seen; it keeps the
    model fresh (:data:`STALE_AFTER`). It is written after the memories, so it never claims
    learning that is not on disk."""
    folder = layout.model_dir(meta.coin)
    try:
        on_disk = load_meta(layout, meta.coin).model_id
    except ModelError:
        on_disk = None
    if on_disk != meta.model_id:
        log.info("%s: model was replaced; live learning of %s not saved", meta.coin, meta.model_id)
        return
    atomic_write_bytes(folder / f"learned-{meta.model_id}.npz", _npz_bytes(_pack(memories)))
    marker = {"model_id": meta.model_id, "learned_until": learned_until}
    atomic_write_bytes(folder / f"learned-{meta.model_id}.json", json.dumps(marker).encode())


def learned_until(layout: DataLayout, meta: ModelMeta) -> float | None:
    """When this model last saved live learning, or None (none, or an unreadable marker)."""
    path = layout.model_dir(meta.coin) / f"learned-{meta.model_id}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        value = float(raw["learned_until"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("%s is unreadable (%s): freshness from the training time", path, exc)
        return None
    return value if math.isfinite(value) else None


def model_status(
    layout: DataLayout, coin: str, now: float, *, learning_at: float | None = None
) -> ModelStatus:
    """The coin's model state on the mode's clock. Fresh means trained, or learning live (saved,
    or ``learning_at``: the caller's own unsaved learning), within :data:`STALE_AFTER`."""
    try:
        meta = load_meta(layout, coin)
    except ModelMissingError as exc:
        return ModelStatus(coin, "missing", str(exc))
    except ModelError as exc:
        return ModelStatus(coin, "damaged", str(exc))
    saved = learned_until(layout, meta)
    fresh_at = max(meta.trained_at, saved or -math.inf, learning_at or -math.inf)
    age = now - fresh_at
    if age > STALE_AFTER:
        days = age / 86400
        since = "trained or learned" if fresh_at > meta.trained_at else "trained"
        return ModelStatus(
            coin,
            "stale",
            f"{coin}: {since} {days:.0f} days ago (over 14); train it again",
            meta.trained_at,
            saved,
        )
    return ModelStatus(coin, "trained", f"{coin}: trained", meta.trained_at, saved)
