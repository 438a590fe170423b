"""crossnas: cross-layer neural architecture search for analog PIM accelerators."""

from __future__ import annotations

__version__ = "0.1.0"

from crossnas.errors import CrossnasError

__all__ = ["CrossnasError", "__version__"]
