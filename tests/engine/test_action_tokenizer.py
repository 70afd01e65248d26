import numpy as np
import pytest
import torch

from pcm_engine.policies import ActionTokenizer


def test_round_trip_error_is_at_most_half_a_bin():
    tok = ActionTokenizer(bins=256)
    values = np.random.default_rng(0).uniform(-1, 1, size=(64, 8, 7))
    ids = tok.encode(values)
    assert ids.dtype == np.int64 and ids.shape == values.shape
    assert ids.min() >= 0 and ids.max() <= 255
    decoded = tok.decode(ids)
    assert decoded.dtype == np.float32
    assert np.abs(decoded - values).max() <= tok.bin_width / 2 + 1e-6

    tensor = torch.from_numpy(values).float()
    t_ids = tok.encode(tensor)
    assert t_ids.dtype == torch.int64
    # float32 input can round a value sitting on a bin edge differently: allow one bin there.
    assert (t_ids - torch.from_numpy(ids)).abs().max() <= 1
    t_decoded = tok.decode(t_ids)
    assert t_decoded.dtype == torch.float32
    assert (t_decoded - tensor).abs().max() <= tok.bin_width / 2 + 1e-6


def test_values_outside_the_range_are_clipped():
    tok = ActionTokenizer(bins=256)
    ids = tok.encode(np.array([-5.0, -1.0001, 1.0001, 7.0]))
    assert ids.tolist() == [0, 0, 255, 255]
    assert tok.encode(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
    np.testing.assert_allclose(tok.decode(ids), [-1 + 1 / 256, -1 + 1 / 256, 1 - 1 / 256, 1 - 1 / 256])


def test_edge_values_and_bin_boundaries():
    tok = ActionTokenizer(bins=4, low=-1.0, high=1.0)  # edges at -1, -0.5, 0, 0.5, 1
    ids = tok.encode(np.array([-1.0, -0.5, -1e-9, 0.0, 0.49999, 0.5, 1.0]))
    assert ids.tolist() == [0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_allclose(tok.decode(np.arange(4)), [-0.75, -0.25, 0.25, 0.75])
    assert tok.decode(torch.arange(4)).tolist() == [-0.75, -0.25, 0.25, 0.75]


def test_custom_range():
    tok = ActionTokenizer(bins=10, low=0.0, high=5.0)
    assert tok.encode(np.array([0.0, 0.25, 0.5, 4.99, 5.0])).tolist() == [0, 0, 1, 9, 9]
    assert tok.decode(np.array([0, 9])).tolist() == [0.25, 4.75]


def test_decode_rejects_invalid_tokens():
    tok = ActionTokenizer(bins=8)
    for bad in (np.array([8]), np.array([-1]), np.array([0.5]), torch.tensor([8]), torch.tensor([0.0])):
        with pytest.raises(ValueError):
            tok.decode(bad)
    with pytest.raises(ValueError):
        ActionTokenizer(bins=1)
    with pytest.raises(ValueError):
        ActionTokenizer(low=1.0, high=1.0)
