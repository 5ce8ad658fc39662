"""automl: keeps production models tuned while their data drifts.

The library is layered (see ARCHITECTURE.md): ``automl.config``, ``automl.vocab`` and
``automl.errors`` at the base, ``automl.data``, ``automl.drift``, ``automl.tuning`` and
``automl.tracking`` as capabilities, ``automl.service`` combining them into a cycle and a
scheduler, ``automl.cli`` on top. Import the layer you need; this package import stays light
so the CLI starts fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
