"""One resolver for every ``--device`` option: 'auto', 'cpu', 'cuda', 'cuda:N'."""

from __future__ import annotations

import torch

from clawcrane.errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (CUDA when available, else CPU) or a named torch device; ConfigError for anything unusable."""
    name = str(device or "auto").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)")
    return dev
