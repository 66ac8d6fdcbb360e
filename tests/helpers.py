"""Small blocks built on the fly for tests that need a block with one particular flaw."""
import dataclasses

from torch import nn


def stub_block(name: str, kind: str = "channel", cost: dict | None = None, **attrs) -> type:
    """A block class with an empty Config and a fixed cost; extra class attributes or methods via attrs."""
    fixed = cost if cost is not None else {"params": 0, "flops": 0, "state_bytes": 0}

    @dataclasses.dataclass(frozen=True)
    class Config:
        pass

    body = {"name": name, "kind": kind, "Config": Config, "cost": staticmethod(lambda cfg, d_model, seq_len: fixed),
            **attrs}
    return type(f"Stub_{name}", (nn.Module,), body)
