"""Model store: atomic swap, live learning kept per model, status of each coin."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from pt_models import (
    STALE_AFTER,
    Model,
    ModelError,
    ModelMeta,
    load_meta,
    load_model,
    model_status,
    new_model_id,
    save_learned,
    save_model,
    tidy_model_folder,
)
from pt_patterns import MemoryArrays, PatternConfig
from pt_state import DataLayout
from pt_types import Timeframe

NOW = 1_700_000_000.0


def arrays(value: float, n: int = 3) -> MemoryArrays:
    return MemoryArrays(np.full((n, 1), value), np.full((n, 3), value), np.ones((n, 3)), 12.5)


def model(coin: str = "BTC", value: float = 1.0) -> Model:
    meta = ModelMeta(
        coin=coin,
        model_id=new_model_id(coin, NOW),
        trained_at=NOW,
        data_from=0,
        data_to=3600,
        config=asdict(PatternConfig()),
        code_version="3.0.0-dev",
        accuracy={"1h": {"mae_high": 0.36}},
    )
    return Model(meta, {tf: arrays(value) for tf in Timeframe})


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path).ensure()


def test_round_trip(layout: DataLayout) -> None:
    saved = model()
    save_model(layout, saved)
    loaded = load_model(layout, "btc")
    assert loaded.meta == saved.meta
    assert loaded.meta.pattern_config == PatternConfig()
    for tf in Timeframe:
        np.testing.assert_array_equal(loaded.memories[tf].patterns, saved.memories[tf].patterns)
        assert loaded.memories[tf].threshold == 12.5


def test_a_new_model_replaces_the_old_and_one_previous_version_is_kept(
    layout: DataLayout,
) -> None:
    first, second, third = model(value=1.0), model(value=2.0), model(value=3.0)
    for saved in (first, second, third):
        save_model(layout, saved)
    assert load_meta(layout, "BTC").model_id == third.meta.model_id
    assert load_model(layout, "BTC").memories[Timeframe.H4].patterns[0, 0] == 3.0
    folder = layout.model_dir("BTC")
    # the previous version stays for a reader that may be loading it; older ones go
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["current.json", second.meta.model_id, third.meta.model_id]
    )
    assert sorted(p.name for p in layout.models_dir.iterdir()) == ["BTC"]


def test_the_current_model_never_disappears_during_a_save(layout: DataLayout) -> None:
    first = model(value=1.0)
    save_model(layout, first)
    staging = layout.model_dir("BTC") / ".staging-half"
    staging.mkdir()  # a save killed half way
    (staging / "memories.npz").write_bytes(b"half")
    assert load_meta(layout, "BTC").model_id == first.meta.model_id
    tidy_model_folder(layout, "BTC")
    assert not staging.exists() and load_meta(layout, "BTC").model_id == first.meta.model_id


def test_live_learning_is_used_only_with_its_own_model(layout: DataLayout) -> None:
    first = model()
    save_model(layout, first)
    learned = {tf: arrays(7.0, n=4) for tf in Timeframe}
    save_learned(layout, first.meta, learned, learned_until=NOW)
    assert len(load_model(layout, "BTC").memories[Timeframe.H1].patterns) == 4
    save_model(layout, model(value=3.0))  # retrained: the old learning no longer applies
    assert load_model(layout, "BTC").memories[Timeframe.H1].patterns[0, 0] == 3.0
    old_learning = layout.model_dir("BTC") / f"learned-{first.meta.model_id}.npz"
    before = old_learning.read_bytes()
    save_learned(layout, first.meta, {tf: arrays(9.0, n=9) for tf in Timeframe}, learned_until=NOW)
    assert old_learning.read_bytes() == before  # a thinker holding the old model writes nothing
    save_model(layout, model(value=4.0))  # two versions on, the old learning is removed
    assert not old_learning.exists()
    assert not old_learning.with_suffix(".json").exists()


def test_status_of_each_kind_of_coin(layout: DataLayout) -> None:
    assert model_status(layout, "ETH", NOW).state == "missing"
    save_model(layout, model())
    assert model_status(layout, "BTC", NOW + 3600).state == "trained"
    stale = model_status(layout, "BTC", NOW + STALE_AFTER + 86400)
    assert stale.state == "stale" and "15 days ago" in stale.detail
    (layout.model_dir("BTC") / "current.json").write_text("{not json")
    damaged = model_status(layout, "BTC", NOW)
    assert damaged.state == "damaged" and "train the coin again" in damaged.detail


def test_live_learning_keeps_a_model_fresh(layout: DataLayout) -> None:
    trained = model()
    save_model(layout, trained)
    later = NOW + STALE_AFTER + 86400  # 15 days after training
    assert model_status(layout, "BTC", later).state == "stale"
    # The thinker's own learning, not yet saved, counts for the thinker...
    assert model_status(layout, "BTC", later, learning_at=NOW + 10 * 86400).state == "trained"
    # ...and once saved, for every reader.
    memories = {tf: arrays(7.0, n=4) for tf in Timeframe}
    save_learned(layout, trained.meta, memories, learned_until=NOW + 10 * 86400)
    status = model_status(layout, "BTC", later)
    assert status.state == "trained" and status.learned_until == NOW + 10 * 86400
    stale = model_status(layout, "BTC", NOW + 25 * 86400)
    assert stale.state == "stale" and "trained or learned 15 days ago" in stale.detail
    marker = layout.model_dir("BTC") / f"learned-{trained.meta.model_id}.json"
    marker.write_text("{broken")  # an unreadable marker: freshness falls back to training
    assert model_status(layout, "BTC", later).state == "stale"


def test_unknown_format_and_damaged_arrays_are_explained(layout: DataLayout) -> None:
    saved = model()
    save_model(layout, saved)
    meta_file = layout.model_dir("BTC") / saved.meta.model_id / "meta.json"
    meta_file.write_text(json.dumps({**asdict(saved.meta), "schema": 99}))
    with pytest.raises(ModelError, match="model format 99 is not 1"):
        load_meta(layout, "BTC")
    save_model(layout, replace(saved, meta=replace(saved.meta, model_id="BTC-x")))
    (layout.model_dir("BTC") / "BTC-x" / "memories.npz").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot be read"):
        load_model(layout, "BTC")


def test_a_damaged_learning_file_falls_back_to_the_trained_memories(
    layout: DataLayout, caplog: pytest.LogCaptureFixture
) -> None:
    saved = model(value=5.0)
    save_model(layout, saved)
    (layout.model_dir("BTC") / f"learned-{saved.meta.model_id}.npz").write_bytes(b"junk")
    with caplog.at_level("WARNING"):
        loaded = load_model(layout, "BTC")
    assert loaded.memories[Timeframe.H1].patterns[0, 0] == 5.0
    assert "using the trained memories without live learning" in caplog.text
