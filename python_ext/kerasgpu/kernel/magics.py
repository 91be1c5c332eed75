"""`%load_ext kerasgpu`: the IPython magics. Each one is a thin shell over a plain function."""

from __future__ import annotations

import contextlib
import os
import sys

from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import checks, distribute, doctor, memory, settings
from .render import Card
from .runtime import KerasGPUError

_ATTR = "_kerasgpu_magics"


def _show(card: Card, as_json: bool) -> None:
    if as_json:
        print(card.json())
    else:
        display(card)


def _run(title: str, as_json: bool, fn, *args, **kwargs) -> None:
    try:
        card = fn(*args, **kwargs)
    except KerasGPUError as err:
        card = err.card(title)
    _show(card, as_json)


@magics_class
class KerasGPUMagics(Magics):
    """Magics that verify, configure and troubleshoot TensorFlow / Keras on NVIDIA GPUs."""

    def __init__(self, shell):
        super().__init__(shell)
        self.doctor_auto = os.environ.get("KERASGPU_DOCTOR_AUTO", "").lower() in ("1", "true", "on", "yes")
        self._strategies: dict = {}

    # ------------------------------------------------------------ checks

    @magic_arguments()
    @argument("--deep", action="store_true", help="also start TensorFlow: device_lib, a matmul, memory info")
    @argument("--json", action="store_true", help="print the report as JSON")
    @line_magic
    def gpu_check(self, line=""):
        """Checks the NVIDIA driver, GPUs, TensorFlow build and Keras backend, and says what to fix.

        Without --deep it does not start TensorFlow's runtime, so memory growth
        and visible GPUs can still be set afterwards.
        """
        args = parse_argstring(self.gpu_check, line)
        _show(checks.check(deep=args.deep), args.json)

    # ------------------------------------------------------------ memory

    @magic_arguments()
    @argument(
        "action",
        nargs="?",
        default="status",
        choices=["growth", "nogrowth", "limit", "status"],
        help="growth: allocate as needed; nogrowth: reserve up front; limit MIB: cap; status: show",
    )
    @argument("mib", nargs="?", type=int, help="the limit in MiB (for 'limit')")
    @argument("--gpu", default=None, help="GPU index or list (0,1); default all")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_memory(self, line=""):
        """Sets TensorFlow's GPU memory growth or a memory limit; must run before TensorFlow starts."""
        args = parse_argstring(self.gpu_memory, line)
        if args.action == "growth":
            _run("GPU memory", args.json, memory.set_memory_growth, True, args.gpu)
        elif args.action == "nogrowth":
            _run("GPU memory", args.json, memory.set_memory_growth, False, args.gpu)
        elif args.action == "limit":
            if args.mib is None:
                err = KerasGPUError(
                    "bad_limit", "%gpu_memory limit needs a size in MiB.", "e.g. %gpu_memory limit 4096"
                )
                _show(err.card("GPU memory"), args.json)
                return
            _run("GPU memory", args.json, memory.set_memory_limit, args.mib, args.gpu)
        else:
            _run("GPU memory", args.json, memory.memory_status, args.gpu)

    @magic_arguments()
    @argument("reset", nargs="?", choices=["reset"], help="reset TensorFlow's peak memory counters")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_mem(self, line=""):
        """TensorFlow's current and peak GPU memory beside the driver's view of this kernel."""
        args = parse_argstring(self.gpu_mem, line)
        _run("GPU memory use", args.json, memory.memory_usage, reset=args.reset == "reset")

    # ------------------------------------------------------------ settings

    @magic_arguments()
    @argument("gpus", nargs="?", default=None, help="GPU indexes like 0,1, or 'all' or 'none'; empty: show")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_visible(self, line=""):
        """Chooses which GPUs TensorFlow uses (before it starts)."""
        args = parse_argstring(self.gpu_visible, line)
        _run("Visible GPUs", args.json, settings.set_visible_gpus, args.gpus)

    @magic_arguments()
    @argument("state", choices=["on", "off"], help="log the device of every op, or stop")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def tf_placement(self, line=""):
        """Turns TensorFlow's device placement log on or off."""
        args = parse_argstring(self.tf_placement, line)
        _run("Placement", args.json, settings.set_placement_logging, args.state == "on")

    @magic_arguments()
    @argument("policy", nargs="?", default=None, help="mixed_float16, mixed_bfloat16 or float32; empty: show")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def mixed_precision(self, line=""):
        """Sets Keras' global dtype policy, warning on GPUs that gain nothing from it."""
        args = parse_argstring(self.mixed_precision, line)
        _run("Mixed precision", args.json, settings.set_mixed_precision, args.policy)

    @magic_arguments()
    @argument("level", nargs="?", default=None, help="DEBUG, INFO, WARNING, ERROR, FATAL or 0-3; empty: show")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def tf_log(self, line=""):
        """Sets how much TensorFlow logs."""
        args = parse_argstring(self.tf_log, line)
        _run("TensorFlow log", args.json, settings.set_tf_log, args.level)

    # ------------------------------------------------------------ distribute

    @magic_arguments()
    @argument(
        "--strategy", "-s", default="mirrored", choices=list(distribute.STRATEGIES), help="which strategy"
    )
    @argument("--per-replica-batch", "-b", type=int, default=None, help="batch size per replica")
    @argument("--device", default=None, help="device for onedevice (default /gpu:0, else /cpu:0)")
    @argument("--quiet", "-q", action="store_true", help="don't show the strategy card")
    @cell_magic
    def distribute(self, line, cell):
        """Runs the cell inside a tf.distribute strategy scope; defines `strategy` and `GLOBAL_BATCH_SIZE`."""
        args = parse_argstring(self.distribute, line)
        key = (args.strategy, args.device)
        try:
            strategy = self._strategies.get(key)
            if strategy is None:
                strategy = distribute.make_strategy(args.strategy, args.device)
                self._strategies[key] = strategy
        except KerasGPUError as err:
            display(err.card("distribute"))
            return
        card = distribute.strategy_card(strategy, args.strategy, args.per_replica_batch)
        self.shell.user_ns["strategy"] = strategy
        if args.per_replica_batch:
            self.shell.user_ns["GLOBAL_BATCH_SIZE"] = card.data["global_batch_size"]
        if not args.quiet:
            display(card)
        with strategy.scope():
            self.shell.run_cell(cell, store_history=False)

    # ------------------------------------------------------------ doctor

    @magic_arguments()
    @argument(
        "--auto",
        choices=["on", "off"],
        default=None,
        help="offer a diagnosis automatically when a known GPU error ends a cell",
    )
    @argument("--json", action="store_true", help="print the diagnosis as JSON")
    @line_cell_magic
    def gpu_doctor(self, line="", cell=None):
        """Explains a TensorFlow GPU failure: the last exception, or an error log pasted as the cell body."""
        args = parse_argstring(self.gpu_doctor, line)
        if args.auto is not None:
            self.doctor_auto = args.auto == "on"
            state = "on" if self.doctor_auto else "off"
            card = Card(
                "GPU doctor", "info", f"Automatic diagnosis is {state}.", data={"auto": self.doctor_auto}
            )
            if cell is None:
                _show(card, args.json)
                return
        if cell is not None:
            _show(doctor.report(cell, "log"), args.json)
            return
        exc = getattr(sys, "last_value", None)
        if exc is None:
            card = Card(
                "GPU doctor",
                "info",
                "No exception in this kernel yet: paste an error log into a %%gpu_doctor cell.",
                data={"kind": "gpu_doctor", "source": "exception", "matches": []},
            )
            _show(card, args.json)
            return
        _show(doctor.report(doctor.exception_text(exc), "exception"), args.json)

    def _post_run_cell(self, result) -> None:
        """post_run_cell hook: offers the doctor's diagnosis when a known GPU error ended the cell."""
        exc = getattr(result, "error_in_exec", None)
        if not self.doctor_auto or exc is None:
            return
        found = doctor.diagnose_exception(exc)
        if not found:
            return
        first = found[0]
        card = Card(
            "GPU doctor",
            "warning",
            f"{first['title']}. {first['fix']} (run %gpu_doctor for details)",
            data={"kind": "gpu_doctor", "source": "auto", "matches": found},
        )
        display(card)


def load_ipython_extension(ipython) -> None:
    """Registers the magics and the doctor hook; a second load changes nothing."""
    if getattr(ipython, _ATTR, None) is not None:
        return
    magics = KerasGPUMagics(ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics._post_run_cell)
    setattr(ipython, _ATTR, magics)


def unload_ipython_extension(ipython) -> None:
    """Removes the magics and the doctor hook."""
    magics = getattr(ipython, _ATTR, None)
    if magics is None:
        return
    with contextlib.suppress(ValueError):
        ipython.events.unregister("post_run_cell", magics._post_run_cell)
    for kind, names in magics.magics.items():
        table = ipython.magics_manager.magics[kind]
        for name in names:
            table.pop(name, None)
    ipython.magics_manager.registry.pop(type(magics).__name__, None)
    setattr(ipython, _ATTR, None)
