"""Normal training: it learns, it is reproducible under a seed, and it follows the protocol."""

from __future__ import annotations

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
