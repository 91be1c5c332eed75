"""`%load_ext kerasgpu`: the IPython magics. Each one is a thin shell over a plain function."""

from __future__ import annotations

import contextlib
import os
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import checks, distribute, doctor, memory, settings, strategy_guard
from .render import Card, Section
from .runtime import KerasGPUError, quiet_startup

_ATTR = "_kerasgpu_magics"


class _CellFailed(RuntimeError):
    """Fails the outer cell (so Run All stops) after the inner cell showed its own traceback."""

    def _render_traceback_(self):
        return [str(self)]


def _strip_comment(line: str) -> str:
    """A magic's arguments without a trailing `# comment`."""
    return line.split("#", 1)[0]


_OPEN, _CLOSE = "([{", ")]}"


def split_expressions(line: str) -> list[str]:
    """A magic's line split at spaces outside brackets and quotes, a trailing `# comment` dropped
    (pure): `model [x1, x2] y --deadline "2026-12-01 18:00"` -> 5 words, quotes kept."""
    words, word, depth, quote = [], [], 0, ""
    for ch in line:
        if quote:
            word.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "#" and depth == 0:
            break
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch.isspace() and depth == 0:
            if word:
                words.append("".join(word))
                word = []
            continue
        word.append(ch)
    if word:
        words.append("".join(word))
    return words


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
        with quiet_startup() as quiet:
            card = checks.check(deep=args.deep)
        if quiet.notable:
            card.sections.append(Section("TensorFlow start-up log").add("lines", quiet.notable[-12:]))
            card.data["startup_log"] = quiet.notable
        _show(card, args.json)

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
    @argument(
        "policy",
        nargs="?",
        default=None,
        help="auto (bfloat16 on compute capability 8.0+, float16 on 7.x), mixed_float16, mixed_bfloat16, "
        "float32, or check (the model's mixed-precision traps); empty: show",
    )
    @argument("--model", default=None, help="for check: the model's variable name (default: every model)")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def mixed_precision(self, line=""):
        """Sets Keras' global dtype policy (only the policy), or checks a built model for the traps of
        16-bit compute (float Input into an Embedding, float32 tensors in custom layers, 16-bit output)."""
        args = parse_argstring(self.mixed_precision, line)
        if args.policy == "check":
            _run("Mixed precision", args.json, settings.check_mixed_precision, self.shell.user_ns, args.model)
        else:
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
        "strategy",
        nargs="?",
        default="auto",
        choices=list(distribute.DISTRIBUTE_KINDS),
        help="auto: MirroredStrategy on 2+ GPUs, MultiWorker with TF_CONFIG, else the default; off: stop",
    )
    @argument("--batch", type=int, default=None, help="the batch size the notebook uses (for the advice)")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_distribute(self, line=""):
        """One tf.distribute strategy for the whole notebook (tf.distribute.experimental_set_strategy):
        the cells that build, compile and fit models run on it unchanged. Run it before the first model
        is built; run again, it reuses the kernel's strategy."""
        args = parse_argstring(self.gpu_distribute, _strip_comment(line))
        with quiet_startup():  # the first TensorFlow import's chatter stays out of the cell
            distribute.import_tensorflow()
        _run(
            "Distribution",
            args.json,
            distribute.distribute_notebook,
            args.strategy,
            args.batch,
            self.shell.user_ns,
        )

    @magic_arguments()
    @argument(
        "--strategy",
        "-s",
        default=None,
        choices=list(distribute.STRATEGIES),
        help="which strategy (default: the notebook's one, made by %%gpu_distribute or now)",
    )
    @argument("--per-replica-batch", "-b", type=int, default=None, help="batch size per replica")
    @argument("--device", default=None, help="device for onedevice (default /gpu:0, else /cpu:0)")
    @argument("--quiet", "-q", action="store_true", help="don't show the strategy card")
    @cell_magic
    def distribute(self, line, cell):
        """Runs the cell in the notebook's strategy scope; defines `strategy` (and `GLOBAL_BATCH_SIZE`
        with --per-replica-batch). The cell fails (Run All stops) when its body fails."""
        args = parse_argstring(self.distribute, line)
        try:
            with quiet_startup():  # the first TensorFlow import's chatter stays out of the cell
                distribute.import_tensorflow()
            if args.strategy is None:
                strategy = distribute.notebook_strategy()
                kind = "notebook"
            else:
                key = (args.strategy, args.device)
                strategy = self._strategies.get(key)
                if strategy is None:
                    strategy = distribute.make_strategy(args.strategy, args.device)
                    self._strategies[key] = strategy
                kind = args.strategy
        except KerasGPUError as err:
            display(err.card("distribute"))
            raise _CellFailed(f"%%distribute: {err.problem}") from None
        card = distribute.strategy_card(strategy, kind, args.per_replica_batch)
        self.shell.user_ns["strategy"] = strategy
        if args.per_replica_batch:
            self.shell.user_ns["GLOBAL_BATCH_SIZE"] = card.data["global_batch_size"]
        if not args.quiet:
            display(card)
        # IPython already counted this cell: name the body's traceback after it (In[N], not In[N+1]).
        count = self.shell.execution_count
        self.shell.execution_count = max(1, count - 1)
        try:
            with strategy.scope():
                result = self.shell.run_cell(cell, store_history=False)
        finally:
            self.shell.execution_count = count
        if not result.success:
            raise _CellFailed("%%distribute: the cell failed inside the strategy scope (traceback above).")

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
        """Explains the last exception, or an error log pasted as the cell body: a TensorFlow GPU
        failure's cause and fix; for any other training error (shapes, labels, dtypes) that it is
        not a GPU problem, the line of your cell that raised it and what it usually means."""
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
        else:
            card = doctor.report_exception(exc)
        _show(strategy_guard.add_to_card(card), args.json)

    def _post_run_cell(self, result) -> None:
        """post_run_cell hook: offers the doctor's diagnosis when a known GPU error ended the cell."""
        exc = getattr(result, "error_in_exec", None)
        if not self.doctor_auto or exc is None:
            return
        found = doctor.match_exception(exc)
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

    # ------------------------------------------------------------ training insight

    def _ns(self, expr):
        """The value of a Python expression in the user's namespace (None for None): a name, or
        `[x1, x2]`, `{"image": xi, "meta": xm}`, `(x_val, y_val)`, `x[:1000]`."""
        if expr is None:
            return None
        try:
            return eval(expr, self.shell.user_ns)  # noqa: S307 - the user's own expression, in their kernel
        except NameError as err:
            name = getattr(err, "name", None) or expr
            raise KerasGPUError(
                "unknown_name",
                f"No variable named {name!r} in this notebook.",
                "Run the cell that defines it first.",
            ) from None
        except Exception as err:
            raise KerasGPUError(
                "bad_argument",
                f"Could not evaluate {expr!r}: {type(err).__name__}: {err}",
                "Pass Python expressions as you would to fit (names, [x1, x2], {'a': xa}).",
            ) from None

    def _args(self, magic, line: str):
        """The magic's arguments, each positional argument and option value one Python expression:
        split at spaces outside brackets and quotes (`%gpu_estimate model [x1, x2] y`)."""
        return magic.parser.parse_args(split_expressions(line))

    @magic_arguments()
    @argument(
        "state",
        nargs="?",
        default="status",
        choices=["on", "off", "status"],
        help="watch every fit, stop, or show",
    )
    @argument(
        "--deadline",
        default=None,
        help='warn early when training will end after it: 36h, 90min, "2026-12-01 18:00"',
    )
    @argument(
        "--no-card", action="store_true", help="no live card in the cell output (the panel still shows it)"
    )
    @argument(
        "--backup",
        nargs="?",
        const="kerasgpu-backup",
        default=None,
        metavar="DIR",
        help="checkpoint every fit with keras.callbacks.BackupAndRestore in DIR/<model> (default "
        "kerasgpu-backup); the next fit of the same model resumes there",
    )
    @argument(
        "--max-loss",
        default=None,
        help="with --backup: the most training an interruption may lose (default 15min); the checkpoint "
        "interval in steps follows from the measured step time",
    )
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_watch(self, line=""):
        """Shows every Keras fit's progress, ETA, GPU use and input wait live, and what slows it, without
        code changes; with --deadline says early whether it makes it; with --backup it survives restarts."""
        from .train import watch

        args = parse_argstring(self.gpu_watch, line)
        try:
            card = watch.watch_card(
                args.state,
                args.deadline,
                display=not args.no_card,
                backup=args.backup,
                max_loss=args.max_loss,
            )
        except ValueError as err:
            card = KerasGPUError("bad_deadline", str(err), "e.g. --deadline 36h").card("GPU watch")
        _show(card, args.json)

    @magic_arguments()
    @argument("--limit", type=int, default=20, help="how many runs, newest first")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_runs(self, line=""):
        """Lists the watched fits' receipts (versions, device, precision, batch, input wait, steps/s) and
        what changed between runs of the same model."""
        from .train import runs_card

        args = parse_argstring(self.gpu_runs, line)
        _show(runs_card.runs_card(limit=args.limit), args.json)

    @magic_arguments()
    @argument("model", help="the compiled Keras model (a Python expression, e.g. its name)")
    @argument(
        "x",
        help="the training data as given to fit (a Python expression): arrays, [x1, x2] or "
        "{'a': xa} for several inputs, a tf.data.Dataset, a keras.utils.PyDataset / Sequence, "
        "or a generator (with --steps-per-epoch)",
    )
    @argument("y", nargs="?", default=None, help="the targets, when x is arrays ([y1, y2] for several)")
    @argument("--epochs", type=int, default=1, help="epochs of the full run")
    @argument("--batch-size", type=int, default=None, help="batch size (arrays; default 32)")
    @argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="steps per epoch (default: from the data; needed for a generator or a dataset of "
        "unknown length)",
    )
    @argument("--deadline", default=None, help='36h, 90min or "2026-12-01 18:00"')
    @argument("--steps", type=int, default=None, help="warm steps to time per device")
    @argument(
        "--budget",
        type=float,
        default=None,
        help="seconds the estimate may take (default 20; never more than a tenth of a run of minutes)",
    )
    @argument(
        "--validation-data",
        nargs="+",
        default=None,
        metavar="EXPR",
        help="fit's validation_data: x_val y_val, or one expression: (x_val, y_val), a dataset, a "
        "PyDataset or a generator",
    )
    @argument("--validation-split", type=float, default=None, help="fit's validation_split (arrays)")
    @argument(
        "--validation-steps",
        type=int,
        default=None,
        help="fit's validation_steps (needed for a validation generator or a dataset of unknown length)",
    )
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_estimate(self, line=""):
        """Times warm steps of the model on each device (on a copy, within --budget seconds) and says
        when the full run would end. Takes what fit takes, as Python expressions:
        `%gpu_estimate model [x1, x2] y --epochs 10 --validation-data val_ds`."""
        from .train import estimate

        try:
            args = self._args(self.gpu_estimate, line)
        except UsageError as err:
            _show(KerasGPUError("bad_argument", str(err), "See %gpu_estimate?").card("GPU estimate"), False)
            return
        try:
            card = estimate.estimate_card(
                self._ns(args.model),
                self._ns(args.x),
                self._ns(args.y),
                epochs=args.epochs,
                batch_size=args.batch_size,
                steps_per_epoch=args.steps_per_epoch,
                deadline=args.deadline,
                steps=args.steps,
                validation_data=self._validation(args.validation_data),
                validation_split=args.validation_split,
                validation_steps=args.validation_steps,
                budget=args.budget,
                x_name=args.x,
                validation_name=" ".join(args.validation_data or []) or None,
            )
        except ValueError as err:
            card = KerasGPUError("bad_argument", str(err), "See %gpu_estimate?").card("GPU estimate")
        except KerasGPUError as err:
            card = err.card("GPU estimate")
        _show(card, args.json)

    def _validation(self, names: list[str] | None):
        """`--validation-data x_val y_val` -> (x_val, y_val); one expression -> its value (a tuple,
        a dataset, a PyDataset, a generator)."""
        if not names:
            return None
        if len(names) > 3:
            raise KerasGPUError(
                "bad_argument",
                f"--validation-data takes x_val [y_val [sample_weight]], not {len(names)} expressions.",
                "See %gpu_estimate?",
            )
        values = [self._ns(n) for n in names]
        return values[0] if len(values) == 1 else tuple(values)

    @magic_arguments()
    @argument("model", help="the compiled Keras model (a Python expression, e.g. its name)")
    @argument(
        "x",
        help="the training data as given to fit (a Python expression): arrays, [x1, x2] / {'a': xa}, "
        "a tf.data.Dataset, a PyDataset or a generator (its first batch is used)",
    )
    @argument("y", nargs="?", default=None, help="the targets, when x is arrays")
    @argument("--start", type=int, default=None, help="first batch size to try")
    @argument("--max", type=int, default=None, help="largest batch size to try")
    @argument("--budget", type=float, default=None, help="seconds the search may take (default 20)")
    @argument("--json", action="store_true", help="print the result as JSON")
    @line_magic
    def gpu_batch_size(self, line=""):
        """Finds the largest batch that trains a step without running out of GPU memory (on a copy).
        Takes what fit takes, as Python expressions: `%gpu_batch_size model [x1, x2] y`."""
        from .train import batch_size

        try:
            args = self._args(self.gpu_batch_size, line)
        except UsageError as err:
            err = KerasGPUError("bad_argument", str(err), "See %gpu_batch_size?")
            _show(err.card("GPU batch size"), False)
            return
        try:
            card = batch_size.batch_size_card(
                self._ns(args.model),
                self._ns(args.x),
                self._ns(args.y),
                start=args.start,
                max_batch=args.max,
                budget=args.budget,
            )
        except KerasGPUError as err:
            card = err.card("GPU batch size")
        _show(card, args.json)


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
