"""Transfer learning on a MoViNet: a new classifier on a pretrained network, blocks frozen or not.

Keras surgery on the clip model of build.py, by MoViNet's layer structure:
copy every pretrained weight but the final classifier projection, group the
backbone's layers into blocks (stem, block0..blockN), and freeze all but the
last K of them.
"""

from __future__ import annotations

from typing import Any

from .errors import ExportError


def _classifier_head(model):  # noqa: ANN001, ANN202
    from official.projects.movinet.modeling.movinet_layers import ClassifierHead

    heads = [layer for layer in model.layers if isinstance(layer, ClassifierHead)]
    if len(heads) != 1:
        raise ExportError(f"internal: expected one classifier head, found {len(heads)}")
    return heads[0]


def _backbone(model):  # noqa: ANN001, ANN202
    from official.projects.movinet.modeling.movinet import Movinet

    backbones = [layer for layer in model.layers if isinstance(layer, Movinet)]
    if len(backbones) != 1:
        raise ExportError(f"internal: expected one MoViNet backbone, found {len(backbones)}")
    return backbones[0]


def transfer_weights(source, target) -> None:  # noqa: ANN001 - tf_keras.Model
    """Copy every weight but the final classifier projection (kept at its fresh init).

    Both models are the same architecture but for the class count, so the
    weights pair up in order; a shape that differs anywhere else is a bug.
    """
    fresh = {id(w) for w in _classifier_head(target).weights if "/classifier/" in w.name}
    if len(fresh) != 2:
        raise ExportError(f"internal: expected the classifier kernel and bias, found {len(fresh)} weights")
    src, dst = source.weights, target.weights
    if len(src) != len(dst):
        raise ExportError(f"internal: models differ ({len(src)} vs {len(dst)} weights)")
    for a, b in zip(src, dst):
        if id(b) in fresh:
            continue
        if a.shape != b.shape:
            raise ExportError(f"internal: weight {a.name} {a.shape} does not fit {b.name} {b.shape}")
        b.assign(a)


def backbone_blocks(model) -> list[list[Any]]:  # noqa: ANN001
    """The backbone's layers grouped into blocks, input to output: stem, block0..blockN (+ final projection)."""
    groups: dict[str, list[Any]] = {}
    for layer in _backbone(model).layers:
        if not layer.weights:
            continue
        name = layer.name
        if name.startswith("block"):
            key = name.split("_")[0]
        elif name == "head":  # the backbone's last 1x1 projection belongs to the last block
            key = max((k for k in groups if k.startswith("block")), key=lambda k: int(k[5:]), default="head")
        else:
            key = name
        groups.setdefault(key, []).append(layer)
    return list(groups.values())


def set_trainable_blocks(model, unfreeze: int | None) -> list[str]:  # noqa: ANN001
    """Freeze the backbone but its last ``unfreeze`` blocks (None: train all); returns the trainable ones.

    Frozen batch-norm layers then run in inference mode (Keras semantics for
    ``trainable=False``), so their pretrained statistics are kept too.
    """
    backbone = _backbone(model)
    _classifier_head(model).trainable = True
    if unfreeze is None:
        backbone.trainable = True
        return ["the whole backbone"]
    backbone.trainable = unfreeze > 0
    if unfreeze == 0:
        return []
    blocks = backbone_blocks(model)
    open_from = max(0, len(blocks) - unfreeze)
    names = []
    for i, layers in enumerate(blocks):
        for layer in layers:
            layer.trainable = i >= open_from
        if i >= open_from:
            names.append(layers[0].name.split("_")[0])
    return names
