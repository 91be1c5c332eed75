"""The one diagnosis: facts about a kernel's GPU stack in, causes with fixes out, most blocking first.

Pure functions on plain data, shared by `%gpu_check` (and `--deep`), the server's
TensorFlow probe and `%gpu_doctor`, so the four name the same cause for the same
environment:

- `logs`: TensorFlow's log read as facts (`parse_log`);
- `facts`: the one view of the facts the rules read (`Facts`);
- `rules` (with `driver` for the causes below TensorFlow): the causes as small rules run in
  order (`diagnose`, `log_causes`, `arch_support`);
- `causes`: a cause, the list the rules fill, and their shared words;
- `verdict`: the status, the summary and the one headline with its fixes (`verdict`,
  `verdict_text`, `fix_commands`).

The names below are the package's interface; its modules import each other, never this package.
"""

from __future__ import annotations

from .causes import BLOCKING, INFO, and_cuda
from .logs import parse_log
from .rules import arch_support, diagnose, log_causes
from .verdict import fix_commands, verdict, verdict_text

__all__ = [
    "BLOCKING",
    "INFO",
    "and_cuda",
    "arch_support",
    "diagnose",
    "fix_commands",
    "log_causes",
    "parse_log",
    "verdict",
    "verdict_text",
]
