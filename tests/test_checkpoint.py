import random

import pytest
import torch

from pavflow.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip_with_tensors_and_rng(tmp_path):
    rng = random.Random(3)
    rng.random()
    torch.manual_seed(5)
    state = {"step": 7, "w": torch.arange(6.0).reshape(2, 3), "rows": [{"loss": 0.5}], "rng": rng_state(rng)}
    path = save_checkpoint(state, tmp_path / "ckpt" / "job.pt", "abc")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["job.pt"]  # no temp file left
    expected = (rng.random(), torch.rand(3))

    got = load_checkpoint(path, "abc")
    assert got["step"] == 7 and torch.equal(got["w"], state["w"]) and got["rows"] == [{"loss": 0.5}]
    rng2 = random.Random(0)
    set_rng_state(rng2, got["rng"])  # both streams continue where they were saved
    assert rng2.random() == expected[0]
    assert torch.equal(torch.rand(3), expected[1])


def test_round_trip_of_a_torch_generator(tmp_path):
    gen = torch.Generator().manual_seed(3)
    torch.rand(2, generator=gen)
    path = save_checkpoint({"rng": rng_state(gen)}, tmp_path / "job.pt", "abc")
    expected = (torch.randperm(10, generator=gen), torch.rand(3))
    gen2 = torch.Generator().manual_seed(0)
    set_rng_state(gen2, load_checkpoint(path, "abc")["rng"])
    assert torch.equal(torch.randperm(10, generator=gen2), expected[0])
    assert torch.equal(torch.rand(3), expected[1])


def test_missing_is_none_and_another_config_is_discarded(tmp_path):
    assert load_checkpoint(tmp_path / "none.pt", "abc") is None
    path = save_checkpoint({"step": 1}, tmp_path / "job.pt", "old-config")
    assert load_checkpoint(path, "new-config") is None
    assert not path.exists()  # stale: removed so it cannot be resumed later by mistake


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "job.pt"
    path.write_bytes(b"\x80\x02 not a checkpoint")
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path, "abc")
    assert path.exists()  # kept for inspection; the message says to delete it
