"""Shared fixtures and helpers: dtypes, temperatures, seeded generators, one torch thread, host
reads, and the lab's command lines and their failures."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TEMPERATURES = [1e-3, 1e-2, 0.1, 1.0, 10.0, 1e3]


@pytest.fixture
def gen():
    """A fresh generator with a fixed seed for each test."""
    return torch.Generator().manual_seed(20170101)


@pytest.fixture
def one_thread():
    """torch on one thread for the test: on the shared two-core test machine, tiny lab runs are
    5 to 30 times slower with torch's default two. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cli_argv(exp: str, fields: dict[str, Any]) -> list[str]:
    """The lab command line ``gumbel-softmax <exp> --field value ...`` of config ``fields``
    (booleans as ``--field`` / ``--no-field``)."""
    argv = [exp]
    for key, value in fields.items():
        option = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(option if value else "--no-" + option[2:])
        else:
            argv += [option, str(value)]
    return argv


def assert_cli_fails(argv: list[str], capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    """``argv`` ends with ``gumbel-softmax: error: ...`` holding ``parts``, exit status 2, no
    traceback; returns the error output."""
    from gumbel_softmax.lab import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "gumbel-softmax: error: " in err and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)
    return err


# Tensor methods that read a value back to the host: on CUDA, each one is a synchronisation.
HOST_READS = frozenset(
    {"__bool__", "item", "tolist", "__float__", "__int__", "__index__", "numpy", "cpu"}
)


class HostReads(TorchFunctionMode):
    """Records, in ``seen``, every host read of a tensor (``bool()``, ``.item()``, ...) made
    inside the ``with`` block: on the CPU, what would be a host synchronisation on CUDA."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))
