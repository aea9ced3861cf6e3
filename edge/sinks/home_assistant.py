"""Home Assistant MQTT discovery: the device appears in Home Assistant without any YAML.

With ``[mqtt] home_assistant = true`` the MQTT sink publishes, retained, on
every connection (``H`` is ``discovery_prefix``, default ``homeassistant``;
``P/D`` the sink's base topic; ``<d>`` the device id as an entity id)::

    H/sensor/<d>_action/config             the current top action; its score as an attribute,
                                           state on P/D/state: {"action": ..., "score": ...}
    H/binary_sensor/<d>_<label>/config     one per allowed label ([events] allow): ON while an
                                           action of that label is in progress, on P/D/<label>/state

With several cameras each gets its own entities (``<d>_<camera>_action``,
``P/D/<camera>/state``, ``P/D/<camera>/<label>/state``). Every entity's
availability is the device's (``P/D/availability``: the last will turns them
all unavailable when the device vanishes), and all belong to one Home
Assistant device (identifiers, name, model, sw_version).

Without an allow list there are no label sensors: 600 Kinetics classes would
be 600 entities. The action sensor's state is published on a change of the
top action and otherwise at most once a second (:class:`StateLimiter`).

This module builds topics and payloads only; :mod:`.mqtt` publishes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any

ON = "ON"
OFF = "OFF"
#: A state with an unchanged top action is republished at most this often (seconds).
STATE_EVERY = 1.0


def slug(text: str) -> str:
    """A topic level and entity id part: lower case letters, digits and '_' ("carving ice" -> "carving_ice")."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def label_slugs(labels: Iterable[str]) -> dict[str, str]:
    """Each label's slug, made unique (two labels that differ only in punctuation get _2, _3...)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for label in labels:
        if label in out:
            continue
        base = candidate = slug(label)
        n = 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        out[label] = candidate
    return out


def camera_base(base: str, camera: str | None) -> str:
    return f"{base}/{camera}" if camera else base


def state_topic(base: str, camera: str | None = None) -> str:
    """Where the current top action goes (JSON {"action", "score"})."""
    return f"{camera_base(base, camera)}/state"


def label_state_topic(base: str, label_slug: str, camera: str | None = None) -> str:
    """Where a label's ON / OFF goes."""
    return f"{camera_base(base, camera)}/{label_slug}/state"


def state_payload(label: str, score: float) -> dict[str, Any]:
    return {"action": label, "score": round(float(score), 3)}


def device_block(device_id: str, info: dict[str, str]) -> dict[str, Any]:
    """The Home Assistant device all entities belong to."""
    block: dict[str, Any] = {
        "identifiers": [f"movinet-edge_{slug(device_id)}"],
        "name": device_id,
        "manufacturer": "movinet-edge",
        "model": f"MoViNet {PurePath(info['model']).name}" if info.get("model") else "MoViNet",
    }
    if info.get("version"):
        block["sw_version"] = info["version"]
    return block


def discovery_messages(
    *,
    prefix: str,
    base: str,
    device_id: str,
    availability_topic: str,
    info: dict[str, str],
    labels: Iterable[str],
    cameras: Iterable[str | None] = (None,),
) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, payload) for every entity: an action sensor per camera, a binary sensor per label and camera."""
    device = device_block(device_id, info)
    common: dict[str, Any] = {
        "availability_topic": availability_topic,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
        "origin": {"name": "movinet-edge", **({"sw_version": info["version"]} if info.get("version") else {})},
    }
    slugs = label_slugs(labels)
    messages: list[tuple[str, dict[str, Any]]] = []
    for camera in cameras:
        entity = "_".join(slug(part) for part in (device_id, camera) if part)
        topic = state_topic(base, camera)
        messages.append((f"{prefix}/sensor/{entity}_action/config", {
            "name": f"{camera} action" if camera else "Action",
            "unique_id": f"{entity}_action",
            "state_topic": topic,
            "value_template": "{{ value_json.action }}",
            "json_attributes_topic": topic,
            "json_attributes_template": "{{ {'score': value_json.score} | tojson }}",
            "icon": "mdi:run",
            **common,
        }))  # fmt: skip
        for label, label_slug in slugs.items():
            messages.append((f"{prefix}/binary_sensor/{entity}_{label_slug}/config", {
                "name": f"{camera} {label}" if camera else label,
                "unique_id": f"{entity}_{label_slug}",
                "state_topic": label_state_topic(base, label_slug, camera),
                "payload_on": ON,
                "payload_off": OFF,
                "icon": "mdi:motion-sensor",
                **common,
            }))  # fmt: skip
    return messages


class StateLimiter:
    """Lets a camera's state through on a change of the top action, else at most every ``every`` seconds."""

    def __init__(self, every: float = STATE_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._last: dict[str | None, tuple[str, float]] = {}  # camera -> (action, when published)

    def due(self, camera: str | None, action: str) -> bool:
        now = self.clock()
        last = self._last.get(camera)
        if last is not None and last[0] == action and now - last[1] < self.every:
            return False
        self._last[camera] = (action, now)
        return True
