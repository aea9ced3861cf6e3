"""Every model id of the zoo builds as a stream whose frame-by-frame output is the clip model's.

A0 is exported end to end elsewhere; A1-A5 differ in depth, widths and (A3-A5) the causal
positional encoding, which the stream carries as states of its own. Built small (64 px, 10
classes, random weights) so the five fit in CI; the graph's structure, the state names and
the stream/clip equivalence do not depend on the resolution.
"""

from __future__ import annotations

import numpy as np
import pytest

from movinet_export.zoo import ZOO, lookup

RESOLUTION = 64
FRAMES = 4


def test_zoo_matches_the_official_table() -> None:
    table = {k: (e.resolution, e.fps, e.use_positional_encoding) for k, e in ZOO.items()}
    assert table == {
        "a0": (172, 5.0, False), "a1": (172, 5.0, False), "a2": (224, 5.0, False),
        "a3": (256, 12.0, True), "a4": (290, 8.0, True), "a5": (320, 12.0, True),
    }
    for entry in ZOO.values():
        assert entry.checkpoint_url.endswith(f"/movinet_{entry.model_id}_stream.tar.gz")
        assert entry.num_classes == 600


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["a1", "a2", "a3", "a4", "a5"])
def test_stream_model_steps_like_the_clip_model(model_id: str) -> None:
    import tensorflow as tf

    from movinet_export.build import ModelConfig, build_clip_model, build_stream_model, copy_weights, init_states

    tf.keras.utils.set_random_seed(1)
    config = ModelConfig.from_zoo(lookup(model_id), RESOLUTION, num_classes=10)
    stream = build_stream_model(config)
    states = init_states(stream, config)
    frames = np.random.default_rng(0).random((1, FRAMES, RESOLUTION, RESOLUTION, 3), dtype=np.float32)
    stream({**states, "image": tf.constant(frames[:, :1])}, training=False)  # creates the weights
    clip = build_clip_model(config)
    copy_weights(stream, clip)

    kinds = {name.rsplit("_", 2)[-2] + "_" + name.rsplit("_", 2)[-1] for name in states}
    assert {"stream_buffer", "pool_buffer", "frame_count"} <= kinds, sorted(kinds)
    assert all(name.startswith("state_") for name in states)
    if config.use_positional_encoding:  # A3-A5: the causal positional encoding counts frames too
        assert any("pos_enc" in name for name in states), sorted(states)
    for t in range(FRAMES):
        logits, states = stream({**states, "image": tf.constant(frames[:, t : t + 1])}, training=False)
    whole = clip(tf.constant(frames), training=False)
    np.testing.assert_allclose(logits.numpy(), whole.numpy(), rtol=0, atol=1e-4)
