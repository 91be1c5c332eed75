"""The IPython kernel extension: magics and the plain functions behind them.

Importing this package imports neither TensorFlow nor IPython; each function
imports what it needs when called.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
API = {
    "check": "checks",
    "CheckReport": "checks",
    "arch_support": "checks",
    "verdict": "checks",
    "match_errors": "doctor",
    "match_exception": "doctor",
    "set_memory_growth": "memory",
    "set_memory_limit": "memory",
    "memory_status": "memory",
    "memory_usage": "memory",
    "set_visible_gpus": "settings",
    "set_placement_logging": "settings",
    "set_mixed_precision": "settings",
    "set_tf_log": "settings",
    "make_strategy": "distribute",
    "notebook_strategy": "distribute",
    "distribute_notebook": "distribute",
    "check_mixed_precision": "settings",
    "validate_tf_config": "distribute",
    "runtime_initialized": "runtime",
    "KerasGPUError": "runtime",
    "TrainingMonitor": "train.monitor",
    "watch_on": "train.watch",
    "watch_off": "train.watch",
    "training_findings": "train.findings",
    "estimate": "train.estimate",
    "find_batch_size": "train.batch_size",
}

# earlier public name -> today's (`from kerasgpu import diagnose` keeps working)
ALIASES = {"diagnose": "match_errors", "diagnose_exception": "match_exception"}

__all__ = sorted(API)


def __getattr__(name: str):
    name = ALIASES.get(name, name)
    if name in API:
        return getattr(importlib.import_module(f".{API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
