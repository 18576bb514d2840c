"""Normal training: it learns, it is reproducible under a seed, and it follows the protocol."""

from __future__ import annotations

import torch
from conftest import small_nb201

from hypernas.train import TrainConfig, train


def test_training_learns_and_is_deterministic(mnist1d):
    G = small_nb201()
    config = TrainConfig(epochs=1)
    a = train(G, mnist1d, config, seed=3, progress=False)
    b = train(G, mnist1d, config, seed=3, progress=False)
    c = train(G, mnist1d, config, seed=4, progress=False)
    assert a.test_accuracy == b.test_accuracy and a.test_loss == b.test_loss
    assert a.test_loss != c.test_loss
    assert a.test_accuracy > 0.3  # chance is 0.1
    assert a.params == sum(p.numel() for p in a.model.parameters())


def test_default_config_is_the_reference_protocol():
    c = TrainConfig()
    assert (c.epochs, c.lr, c.momentum, c.weight_decay, c.batch_size) == (6, 0.1, 0.9, 5e-4, 128)


def test_weight_averaging_keeps_a_working_model_and_needs_epochs_to_average(mnist1d):
    import pytest

    from hypernas.config import TrainConfig
    from hypernas.errors import OptionError

    with pytest.raises(OptionError, match="average_epochs"):
        TrainConfig(epochs=2, average_epochs=3)
    G = small_nb201()
    plain = train(G, mnist1d, TrainConfig(epochs=2), seed=0, progress=False)
    averaged = train(G, mnist1d, TrainConfig(epochs=2, average_epochs=1), seed=0, progress=False)
    w_plain, w_avg = (dict(r.model.named_parameters()) for r in (plain, averaged))
    assert any(not torch.equal(w_plain[k], w_avg[k]) for k in w_plain)  # the mean of the last epoch's steps
    assert 0.3 < averaged.test_accuracy <= 1  # trained, with BatchNorm statistics of its own weights


def test_calibrating_on_several_batches_keeps_their_mean():
    from hypernas.compile import compile_graph

    model = compile_graph(small_nb201(), 1)
    x = torch.randn(64, 1, 40)
    model.calibrate([x[:32], x[32:]])
    two = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model.calibrate(x[:32])
    first = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model.calibrate(x[32:])
    second = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    stem = next(iter(two))  # the first BatchNorm sees the same inputs whatever came before
    assert torch.allclose(two[stem], (first[stem] + second[stem]) / 2, atol=1e-6)
