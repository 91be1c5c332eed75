"""The planner's fixes in the user's own code (kerasgpu.core.planner: Distribute marks a model without
call() built, Mixed Precision edits each trap), its refusals before inserting anything, and the
cell links of its messages. Pure: cells in, a plan out (the kernel tests run what it inserts)."""

from __future__ import annotations

import pytest
from kerasgpu.core.planner import plans

SUBMODELS = """\
import keras
encoder = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)], name="encoder")
decoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)], name="decoder")"""
MODEL_CLASS = """\
class AutoEncoder(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def train_step(self, data):
        return {"loss": self.loss_tracker.result()}"""
CREATE = "ae = AutoEncoder(encoder, decoder)\nae.compile(optimizer='adam')"
FIT = "ae.fit(x, epochs=1, validation_split=0.1)"


def _plan(tool: str, cells: list[str], **options) -> dict:
    cells = [{"source": "# My autoencoder", "cell_type": "markdown"}] + [
        {"source": c, "cell_type": "code"} for c in cells
    ]
    return plans.plan(tool, cells, None, options)


def _applied(plan: dict, cells: list[str]) -> list[str]:
    out = ["# My autoencoder", *cells]
    for e in plan["edits"]:
        if e["op"] == "insert":
            out.insert(e["index"], e["source"])
        else:
            out[e["index"]] = e["source"]
    return out


def test_distribute_marks_a_model_without_call_built_in_the_users_cell():
    cells = [SUBMODELS, MODEL_CLASS, CREATE, FIT]
    plan = _plan("distribute", cells)
    assert plan["ok"]
    after = _applied(plan, cells)
    assert "%gpu_distribute" in after[1]  # above the first model, below the title
    model_cell = after.index(next(c for c in after if c.startswith("ae = AutoEncoder")))
    lines = after[model_cell].split("\n")
    assert lines[0] == "ae = AutoEncoder(encoder, decoder)"
    assert lines[1].startswith("ae.built = True  # kerasgpu: AutoEncoder has no call()")
    assert lines[2] == "ae.compile(optimizer='adam')"
    msg = next(m for m in plan["messages"] if m.get("code") == "model_marked_built")
    assert msg["cell"] == model_cell and msg["cell_line"] == "ae = AutoEncoder(encoder, decoder)"
    assert msg["text"].startswith(f"cell {model_cell + 1}:")


def test_distribute_refuses_before_inserting_when_a_sub_model_is_not_built():
    unbuilt = SUBMODELS.replace("keras.Sequential([keras.Input((4,)), ", "keras.Sequential([")
    plan = _plan("distribute", [unbuilt, MODEL_CLASS, CREATE, FIT])
    assert not plan["ok"] and plan["edits"] == []
    (msg,) = plan["messages"]
    assert msg["text"].startswith("Not distributed: AutoEncoder")
    assert "`decoder` is a Sequential without an Input" in msg["text"]
    assert "trains on one device" in msg["text"]


def test_distribute_refuses_when_compile_hands_keras_metrics_for_a_model_without_call():
    create = CREATE.replace("optimizer='adam'", "optimizer='adam', metrics=['accuracy']")
    plan = _plan("distribute", [SUBMODELS, MODEL_CLASS, create, FIT])
    assert not plan["ok"]
    assert "hands Keras a loss or metrics" in plan["messages"][0]["text"]


def test_distribute_gives_no_uneven_batch_warning_it_cannot_know():
    """validation_split / evaluate / predict: the kernel resizes the one failing case exactly."""
    model = "import keras\nmodel = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])"
    plan = _plan("distribute", [model, "model.fit(x, y, validation_split=0.1)\nmodel.evaluate(x, y)"])
    assert plan["ok"] and all(m["level"] == "info" for m in plan["messages"])


def test_mixed_precision_edits_each_trap_in_the_users_own_code():
    layer = (
        "import keras\nclass Noise(keras.layers.Layer):\n    def call(self, inputs):\n"
        "        return inputs + keras.random.normal(keras.ops.shape(inputs))"
    )
    model = (
        "inputs = keras.Input(shape=(200,))\nx = keras.layers.Embedding(20000, 32)(inputs)\n"
        "x = Noise()(x)\noutputs = keras.layers.Dense(\n    2,\n    activation='softmax',\n)(x)\n"
        "model = keras.Model(inputs, outputs)"
    )
    plan = _plan("mixed_precision", [layer, model], policy="mixed_float16")
    assert plan["ok"], plan["messages"]
    after = _applied(plan, [layer, model])
    layer_at = next(i for i, c in enumerate(after) if c.startswith("import keras\nclass Noise"))
    model_at = next(i for i, c in enumerate(after) if c.startswith("inputs = keras.Input"))
    assert "keras.random.normal(keras.ops.shape(inputs), dtype=self.compute_dtype)" in after[layer_at]
    assert 'keras.Input(shape=(200,), dtype="int32")' in after[model_at]
    assert "activation='softmax',\n    dtype=\"float32\",\n)(x)" in after[model_at]
    assert sum("set_mixed_precision" in c for c in after) == 1
    codes = {m["code"]: m for m in plan["messages"] if m.get("code")}
    assert set(codes) == {"float32_in_custom_layer", "float_input_embedding", "output_not_float32"}
    assert codes["float_input_embedding"]["cell"] == model_at
    assert codes["float32_in_custom_layer"]["cell_line"] == "import keras"
    assert all(m["level"] == "info" for m in plan["messages"])  # nothing left for the user to fix


def test_mixed_precision_refuses_a_custom_train_step_that_does_not_scale_its_loss():
    step = MODEL_CLASS.replace(
        'return {"loss": self.loss_tracker.result()}', "self.optimizer.apply_gradients([])\n        return {}"
    )
    plan = _plan("mixed_precision", [SUBMODELS, step, CREATE], policy="mixed_float16")
    assert not plan["ok"] and plan["edits"] == []
    text = plan["messages"][0]["text"]
    assert text.startswith("Mixed precision was not added: cell 3 (AutoEncoder.train_step)")
    assert "LossScaleOptimizer" in text and "trains in float32" in text
    scaled = step.replace("self.optimizer.apply_gradients([])", "loss = self.optimizer.scale_loss(0.0)")
    assert _plan("mixed_precision", [SUBMODELS, scaled, CREATE], policy="mixed_float16")["ok"]


def test_the_input_pipeline_fix_goes_into_the_cells_that_build_the_dataset():
    cells = [
        "import tensorflow as tf\nds = tf.data.TFRecordDataset(files).map(parse)",
        "ds = ds.map(augment).shuffle(100).batch(32)",
        "model.fit(ds, epochs=2)",
    ]
    plan = _plan("input_pipeline", cells, dataset="ds", fixes=["prefetch", "num_parallel_calls", "cache"])
    after = _applied(plan, cells)
    assert after[1] == (
        "import tensorflow as tf\n"
        "ds = tf.data.TFRecordDataset(files).cache().map(parse, num_parallel_calls=tf.data.AUTOTUNE)"
    )  # cached right after reading: the augmentation still runs every epoch
    assert after[2] == (
        "ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).shuffle(100).batch(32)"
        ".prefetch(tf.data.AUTOTUNE)"
    )
    assert after[3] == "model.fit(ds, epochs=2)"
    assert {m["cell"] for m in plan["messages"]} == {1, 2}


def test_the_input_pipeline_tool_refuses_what_it_cannot_find_or_need_not_do():
    plan = _plan("input_pipeline", ["model.fit(ds)"], dataset="ds", fixes=["prefetch"])
    assert not plan["ok"] and "No cell of this notebook assigns `ds`" in plan["messages"][0]["text"]
    done = _plan("input_pipeline", ["ds = make().prefetch(2)"], dataset="ds", fixes=["prefetch"])
    assert not done["ok"] and "already has" in done["messages"][0]["text"]
    with pytest.raises(plans.PlanError):
        _plan("input_pipeline", ["ds = make()"], dataset="ds; import os", fixes=["prefetch"])


RAW_VARIABLE_LAYER = """\
import keras
import tensorflow as tf
class GraphConv(keras.layers.Layer):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.weight = tf.Variable(keras.initializers.glorot_uniform()(shape=(n, n)), trainable=True)

    def call(self, x):
        return tf.matmul(x, self.weight)"""


def test_a_raw_tf_variable_in_a_layer_makes_distribute_and_mixed_precision_refuse():
    model = "inp = keras.Input((4,))\nmodel = keras.Model(inp, GraphConv(4)(inp))"
    plan = _plan("distribute", [RAW_VARIABLE_LAYER, model])
    assert not plan["ok"] and plan["edits"] == []
    assert plan["messages"][0]["text"].startswith("Not distributed: GraphConv (cell 2) keeps a weight")
    assert "self.add_weight" in plan["messages"][0]["text"]
    mp = _plan("mixed_precision", [RAW_VARIABLE_LAYER, model], policy="mixed_float16")
    assert not mp["ok"] and mp["messages"][0]["code"] == "raw_variable"
    tracked = RAW_VARIABLE_LAYER.replace(
        "tf.Variable(keras.initializers.glorot_uniform()(shape=(n, n)), trainable=True)",
        "self.add_weight(shape=(n, n))",
    )
    assert _plan("distribute", [tracked, model])["ok"]


def test_a_float32_constant_in_a_regularizer_makes_mixed_precision_refuse():
    reg = (
        "import keras, tensorflow as tf\nclass Orthogonal(keras.regularizers.Regularizer):\n"
        "    def __init__(self, n):\n        self.eye = tf.eye(n)\n\n"
        "    def __call__(self, x):\n        return tf.reduce_sum(tf.square(x - self.eye))"
    )
    plan = _plan(
        "mixed_precision", [reg, "model = keras.Sequential([keras.Input((4,))])"], policy="mixed_float16"
    )
    assert not plan["ok"]
    assert "The regularizer Orthogonal makes tf.eye(n) in float32" in plan["messages"][0]["text"]


# A notebook as a user writes one: a title and an introduction in markdown, then the code.
TITLE = "# A small CNN on MNIST"
INTRO = "Trains a small convnet; the GPU tools above add their cells."
IMPORTS = "import numpy as np\nimport keras"
CNN = (
    "model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3), keras.layers.Flatten(),\n"
    "    keras.layers.Dense(10, activation='softmax')])\n"
    "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')"
)
TRAIN = "model.fit(np.zeros((64, 28, 28, 1)), np.zeros(64), batch_size=32, epochs=1)"
LOAD = "%load_ext kerasgpu"


def _users_notebook(*code: str) -> list[dict]:
    return [{"source": TITLE, "cell_type": "markdown"}, {"source": INTRO, "cell_type": "markdown"}] + [
        {"source": c, "cell_type": "code"} for c in code
    ]


def _use(tool: str, cells: list[dict], active=None, **options) -> tuple[list[dict], dict]:
    """The tool as the frontend uses it: plan on the cells, apply the edits (as one undo step)."""
    plan = plans.plan(tool, cells, active, options)
    out = [dict(c) for c in cells]
    for e in plan["edits"]:
        if e["op"] == "insert":
            meta = e["metadata"]
            cell = {"source": e["source"], "cell_type": "code", "tags": meta.get("tags", [])}
            out.insert(e["index"], {**cell, "snippet": meta["kerasgpu"]["snippet"]})
        else:
            out[e["index"]] = {**out[e["index"]], "source": e["source"]}
    return out, plan


def _loads(cells: list[dict]) -> list[int]:
    return [i for i, c in enumerate(cells) for line in c["source"].split("\n") if line.strip() == LOAD]


def test_the_verification_cell_goes_below_the_notebooks_title():
    cells, plan = _use("verify", _users_notebook(IMPORTS, CNN, TRAIN))
    assert [c["source"] for c in cells[:3]] == [TITLE, INTRO, "%load_ext kerasgpu\n%gpu_check"]
    assert cells[2]["tags"] == ["kerasgpu-verify"] and plan["select"] == 2
    assert cells[3]["source"] == IMPORTS
    # Asked again: it is there, nothing moves.
    assert _use("verify", cells)[1]["edits"] == []
    # Memory growth must run before TensorFlow starts: above the imports, below the verification cell.
    cells, _ = _use("snippet", cells, 5, id="memory_growth")
    assert cells[2]["tags"] == ["kerasgpu-verify"] and cells[3]["snippet"] == "memory_growth"
    assert cells[4]["source"] == IMPORTS


def test_cells_for_the_top_of_a_notebook_without_tensorflow_go_below_its_title():
    cells, _ = _use("verify", _users_notebook("x = 1"))
    assert [c["cell_type"] for c in cells] == ["markdown", "markdown", "code", "code"]
    cells, _ = _use("snippet", cells, 3, id="memory_growth")
    assert cells[2]["tags"] == ["kerasgpu-verify"] and cells[3]["snippet"] == "memory_growth"
    # A notebook of markdown only: the verification cell goes after it.
    cells, plan = _use("verify", _users_notebook())
    assert plan["edits"][0]["index"] == 2 and cells[2]["tags"] == ["kerasgpu-verify"]


def test_one_load_ext_when_the_verification_cell_comes_after_distribute():
    cells, _ = _use("distribute", _users_notebook(IMPORTS, CNN, TRAIN))
    assert _loads(cells) == [3] and cells[3]["source"].startswith(LOAD + "\n")
    # The verification cell goes above the strategy cell: the load moves into it, once.
    cells, plan = _use("verify", cells)
    assert cells[2]["source"] == "%load_ext kerasgpu\n%gpu_check"
    assert _loads(cells) == [2]
    assert cells[4]["snippet"] == "distribute_notebook" and "%load_ext" not in cells[4]["source"]
    assert cells[4]["source"].endswith("%gpu_distribute --batch 32")
    moved = next(m for m in plan["messages"] if m["code"] == "load_ext_moved")
    assert moved["cell"] == 4 and moved["text"].startswith("cell 5: its `%load_ext kerasgpu` was taken out")
    assert moved["cell_line"].startswith("# Your batch: fit(batch_size=32)")


def test_one_load_ext_when_distribute_comes_after_the_verification_cell():
    cells, _ = _use("verify", _users_notebook(IMPORTS, CNN, TRAIN))
    cells, plan = _use("distribute", cells)
    assert _loads(cells) == [2]  # the verification cell's, which runs first
    strategy = next(c for c in cells if c.get("snippet") == "distribute_notebook")
    assert "%load_ext" not in strategy["source"] and plan["edits"][0]["index"] == 4


def test_a_load_of_the_users_own_below_the_new_cell_is_taken_out():
    """The user loads kerasgpu in a later cell; Distribute's cell goes above it, loads kerasgpu
    first, and that later load goes (a second one only prints 'already loaded')."""
    cells, _ = _use("distribute", _users_notebook(IMPORTS, CNN, TRAIN, f"{LOAD}\n%gpu_check --deep"))
    assert _loads(cells) == [3] and cells[3]["snippet"] == "distribute_notebook"
    assert cells[-1]["source"] == "%gpu_check --deep"
    # A load above the strategy cell: Distribute adds none.
    cells, _ = _use("distribute", _users_notebook(f"{LOAD}\n{IMPORTS}", CNN, TRAIN))
    assert _loads(cells) == [2] and cells[3]["snippet"] == "distribute_notebook"


def test_an_old_verification_cell_below_a_load_is_brought_to_one_load():
    cells = _users_notebook(f"{LOAD}\n{IMPORTS}", CNN)
    cells.insert(
        3, {"source": "%load_ext kerasgpu\n%gpu_check", "cell_type": "code", "tags": ["kerasgpu-verify"]}
    )
    cells, plan = _use("verify", cells)
    assert plan["messages"][0]["text"] == "The GPU verification cell was updated."
    assert cells[3]["source"] == "%gpu_check" and _loads(cells) == [2]
    assert _use("verify", cells)[1]["edits"] == []
