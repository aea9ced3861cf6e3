"""Which ops the XNNPACK delegate took, and which stayed on built-in kernels.

Speed on a Pi depends less on int8 vs float than on this: every op XNNPACK
refuses splits the graph into another partition with its own hand-off. The
interpreter does not expose its execution plan, so coverage is derived from
the graph: every DELEGATE node stands for one partition; walking back from its
outputs to its inputs visits exactly the original nodes it replaced.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DelegateCoverage:
    partitions: int
    total_ops: int
    delegated_ops: int
    builtin_ops: dict[str, int] = field(default_factory=dict)  # op type -> count left on built-in kernels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        left = ", ".join(f"{k} x{v}" for k, v in self.builtin_ops.items()) or "none"
        return (
            f"XNNPACK: {self.delegated_ops}/{self.total_ops} ops delegated in {self.partitions} partition(s); "
            f"left on built-in kernels: {left}"
        )


def delegate_coverage(interpreter: Any) -> DelegateCoverage:
    """Coverage of an allocated interpreter (call after allocate_tensors)."""
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only per-node view the runtimes offer
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer: dict[int, dict[str, Any]] = {}
    for op in originals:
        for t in op["outputs"]:
            producer[int(t)] = op
    delegated: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in boundary:
                continue
            seen.add(tensor)
            op = producer.get(tensor)
            if op is None or op["index"] in delegated:
                continue
            delegated.add(op["index"])
            stack.extend(int(t) for t in op["inputs"] if int(t) >= 0)
    left = Counter(op["op_name"] for op in originals if op["index"] not in delegated)
    return DelegateCoverage(
        partitions=len(delegates),
        total_ops=len(originals),
        delegated_ops=len(delegated),
        builtin_ops=dict(sorted(left.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
