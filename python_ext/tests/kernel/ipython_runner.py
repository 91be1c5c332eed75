"""Runs cells in a fresh IPython `InteractiveShell` and prints what each one showed, as JSON.

Used by the kernel tests in a subprocess, since TensorFlow's runtime can't be
un-initialised inside one process. Reads a JSON list of cell sources on stdin.
"""

from __future__ import annotations

import json
import sys

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

MARK = "@@KERASGPU-RESULTS@@"


def main() -> None:
    cells = json.load(sys.stdin)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kerasgpu")
    out = []
    for source in cells:
        with capture_output() as cap:
            result = shell.run_cell(source, store_history=True)
        err = result.error_in_exec or result.error_before_exec
        out.append(
            {
                "source": source,
                "stdout": cap.stdout,
                "stderr": cap.stderr,
                "outputs": [o.data for o in cap.outputs],
                "error": f"{type(err).__name__}: {err}" if err else None,
            }
        )
    sys.stdout.write("\n" + MARK + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
