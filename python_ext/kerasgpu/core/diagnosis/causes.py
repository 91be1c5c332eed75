"""A cause and the list the rules add them to, with the words and links the causes share.

A cause is a dict: code, severity ("blocking": training can't use the GPU until it is
fixed; "info": worth knowing), level (the card's colour), title, why (the evidence),
problem (title and why in one text), fix, commands, link.
"""

from __future__ import annotations

import re
from typing import Any

BLOCKING, INFO = "blocking", "info"

TF_INSTALL_LINK = "https://www.tensorflow.org/install/pip"
TOOLKIT_LINK = "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html"
COMPAT_LINK = "https://docs.nvidia.com/deploy/cuda-compatibility/"


def and_cuda(version: str | None = None) -> str:
    """The install command for TensorFlow's CUDA build with its runtime wheels, run from the notebook."""
    pin = f"=={version}" if version and re.fullmatch(r"[\w.]+", str(version)) else ""
    return f'%pip install "tensorflow[and-cuda]{pin}"'


def gpus(n: int) -> str:
    return f"{n} GPU" + ("" if n == 1 else "s")


def sentence(text: str) -> str:
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?" else text + "."


class Causes:
    """The causes found so far, in the order the rules found them."""

    def __init__(self):
        self.items: list[dict[str, Any]] = []

    def add(self, code, severity, title, why, fix, commands=(), link=None, level=None):
        title, why = title.rstrip("."), sentence(why)
        self.items.append(
            {
                "code": code,
                "severity": severity,
                "level": level or ("error" if severity == BLOCKING else "info"),
                "title": title,
                "why": why,
                "problem": f"{title}. {why}" if why else sentence(title),
                "fix": fix,
                "commands": list(commands),
                "link": link,
            }
        )

    def codes(self) -> set[str]:
        return {c["code"] for c in self.items}

    def blocking(self) -> bool:
        return any(c["severity"] == BLOCKING for c in self.items)

    def ordered(self) -> list[dict[str, Any]]:
        """Blocking causes first (in the order to fix them), then the notes."""
        return [c for c in self.items if c["severity"] == BLOCKING] + [
            c for c in self.items if c["severity"] != BLOCKING
        ]
