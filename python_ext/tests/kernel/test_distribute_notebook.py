"""One strategy per notebook, `%%distribute`, the cell wrap and mixed precision, in a real IPython
shell with real tensorflow-cpu split into two logical CPU devices (so MirroredStrategy has two
replicas without a GPU). Each test is one fresh process: TensorFlow's runtime can't be reset."""

from __future__ import annotations

import re

import pytest
from kerasgpu.core.planner import plans
from kgpu_testlib import TWO_CPUS, run_cells

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

DATA = "import numpy as np\nx = np.random.rand(64, 8).astype('float32')\ny = np.random.randint(0, 3, 64)"
BUILD = (
    "import keras\nmodel = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation='relu'), "
    "keras.layers.Dense(3)])"
)
COMPILE = "model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))"
FIT = (
    "history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)\nprint('LOSS', history.history['loss'][0])"
)
MIRRORED = (
    "from tensorflow.python.distribute.values import MirroredVariable\n"
    "print('MIRRORED', isinstance(model.trainable_variables[0].value, MirroredVariable) or "
    "type(model.trainable_variables[0].value).__name__)\n"
    "print('REPLICAS', tf.distribute.get_strategy().num_replicas_in_sync)"
)


def _plan_cell(tool: str, cells: list[str], **options) -> str:
    plan = plans.plan(tool, [{"source": c, "cell_type": "code"} for c in cells], None, options)
    assert plan["ok"], plan
    return plan["edits"][0]["source"]


def test_distribute_this_notebook_trains_build_compile_fit_in_separate_cells_on_two_replicas():
    user = [DATA, BUILD, COMPILE, FIT]
    cell = _plan_cell("distribute", user)  # what the toolbar button inserts
    cells = run_cells([TWO_CPUS, DATA, cell, BUILD, COMPILE, FIT, MIRRORED, "%gpu_distribute --json"])
    assert all(c.error is None for c in cells), [c.error for c in cells]
    card = cells[2]
    assert "MirroredStrategy with 2 replica(s)" in card.text
    assert "batch_size=16" in cell and "your batch size" in card.text  # the user's own batch, advised on
    assert "LOSS" in cells[5].stdout
    assert "MIRRORED True" in cells[6].stdout and "REPLICAS 2" in cells[6].stdout
    again = cells[7].json
    assert again["reused"] is True and again["replicas"] == 2


def test_a_model_built_before_the_strategy_gets_a_warning_with_the_fix():
    cells = run_cells([TWO_CPUS, DATA, BUILD, "%gpu_distribute --json"])
    card = cells[3].json
    assert card["level"] == "warning"
    assert card["models_built_before"] == ["model"]
    assert any("restart the kernel and run all" in f["fix"] for f in card["fixes"])


def test_percent_distribute_reuses_the_notebook_strategy_and_fails_the_cell_when_its_body_fails():
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "%gpu_distribute",
            "%%distribute\n" + BUILD + "\n" + COMPILE,
            "import kerasgpu\nprint('SAME', strategy is kerasgpu.notebook_strategy(), "
            "strategy is tf.distribute.get_strategy())",
            FIT,
            "%%distribute\nraise ValueError('broken model cell')",
        ]
    )
    assert [c.error for c in cells[:6]] == [None] * 6
    assert "SAME True True" in cells[4].stdout
    assert "LOSS" in cells[5].stdout
    # The body's error fails the cell itself: Run All stops there.
    assert cells[6].error and "the cell failed inside the strategy scope" in cells[6].error
    # The body's traceback names this cell (the 7th run), not the next one.
    shown = re.sub(r"\x1b\[[0-9;]*m", "", cells[6].stdout)
    assert "Cell In[7], line 1" in shown, shown


def test_the_cell_wrap_keeps_strings_magics_and_the_last_expression_and_trains():
    source = (
        "%%time\n"
        'NOTE = """built in\n  the notebook\'s\nstrategy"""\n'
        + BUILD
        + "\n"
        + COMPILE
        + "\nmodel.count_params()"
    )
    wrapped = plans.plan("wrap", [{"source": source, "cell_type": "code"}], 0)["edits"][0]["source"]
    assert wrapped.startswith("%%time\n")
    cells = run_cells([TWO_CPUS, DATA, wrapped, FIT, MIRRORED, "print(repr(NOTE))"])
    assert all(c.error is None for c in cells), [c.error for c in cells]
    assert "Wall time" in cells[2].stdout  # %%time still times the cell
    assert "195" in cells[2].stdout + cells[2].text  # the last expression is still shown (8*16+16+16*3+3)
    assert "MIRRORED True" in cells[4].stdout
    assert repr("built in\n  the notebook's\nstrategy") in cells[5].stdout  # the string is unchanged


def test_mixed_precision_auto_refuses_on_a_cpu_and_sets_nothing():
    cells = run_cells(
        [
            _plan_cell("mixed_precision", [BUILD]),
            "import keras\nprint('POLICY', keras.mixed_precision.global_policy().name)",
            "from kerasgpu.kernel.runtime import runtime_initialized\n"
            "print('STARTED', runtime_initialized())",
        ]
    )
    shown = cells[0].stdout + cells[0].text
    assert "Mixed precision not set" in shown and "sees no GPU" in shown
    assert "POLICY float32" in cells[1].stdout
    assert "STARTED False" in cells[2].stdout  # memory growth could still follow


def test_mixed_precision_check_finds_the_traps_in_a_built_model():
    model = """\
import keras
from keras import layers, ops

class Sampling(layers.Layer):
    def call(self, inputs):
        mean, log_var = inputs
        eps = keras.random.normal(shape=ops.shape(mean))
        return mean + ops.exp(0.5 * log_var) * eps

inputs = keras.Input(shape=(20,))
x = layers.Embedding(20000, 8)(inputs)
x = layers.GlobalAveragePooling1D()(x)
z = Sampling()([layers.Dense(4)(x), layers.Dense(4)(x)])
outputs = layers.Dense(2, activation="softmax")(z)
model = keras.Model(inputs, outputs)
"""
    cells = run_cells(
        [
            model,  # built under float32: it trains, but would break under a 16-bit policy
            "%mixed_precision check --json",
            "%mixed_precision mixed_float16",
            model,  # what happens when the policy is set anyway
            "%gpu_doctor --json",
        ]
    )
    assert cells[0].error is None, cells[0].error
    codes = [t["code"] for t in cells[1].json["traps"]]
    assert codes == ["float_input_embedding", "float32_in_custom_layer"]
    assert "Sampling" in cells[1].json["traps"][1]["problem"]
    assert cells[3].error and "does not match type float16" in cells[3].error
    # The doctor names mixed precision as the cause of TensorFlow's error.
    assert cells[4].json["matches"][0]["code"] == "mixed_dtype_op"


def test_mixed_precision_without_keras_gives_a_card_not_a_traceback():
    cells = run_cells(["import sys\nsys.modules['keras'] = None", "%mixed_precision auto --json"])
    assert cells[1].error is None
    card = cells[1].json
    assert card["level"] == "error" and "%pip install" in card["fixes"][0]["fix"]


def test_a_users_notebook_with_distribute_then_the_verification_cell_loads_kerasgpu_once():
    """A title, then the user's cells; Distribute, then the verification cell: it goes below the
    title, above the strategy cell, and the one `%load_ext kerasgpu` is its own (IPython says
    'already loaded' at a second one)."""
    cells = [{"source": "# My model", "cell_type": "markdown"}] + [
        {"source": c, "cell_type": "code"} for c in (DATA, BUILD, COMPILE, FIT)
    ]
    for tool in ("distribute", "verify"):
        plan = plans.plan(tool, cells, None, {})
        for e in plan["edits"]:
            if e["op"] == "insert":
                cells.insert(e["index"], {"source": e["source"], "cell_type": "code"})
            else:
                cells[e["index"]] = {**cells[e["index"]], "source": e["source"]}
    assert cells[0]["cell_type"] == "markdown" and cells[1]["source"] == "%load_ext kerasgpu\n%gpu_check"
    code = [c["source"] for c in cells if c["cell_type"] == "code"]
    # As in a fresh kernel: kerasgpu not loaded (the test runner loads it for the other tests).
    ran = run_cells(["%unload_ext kerasgpu", TWO_CPUS, *code, MIRRORED])
    assert all(c.error is None for c in ran), [c.error for c in ran]
    assert not any("already loaded" in c.stdout + c.text for c in ran)
    assert "MirroredStrategy with 2 replica(s)" in ran[4].text
    assert "MIRRORED True" in ran[-1].stdout and "REPLICAS 2" in ran[-1].stdout
