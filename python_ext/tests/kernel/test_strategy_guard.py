"""The notebook's strategy stays true (kernel/strategy_guard.py), in a real IPython shell with real
tensorflow-cpu split into two logical CPUs: it survives `clear_session()`, models without `call()`
train on both replicas, a first batch that does not split over the replicas is fixed, and what the
card claims is checked at fit. Each test is one fresh process (TensorFlow's runtime can't reset)."""

from __future__ import annotations

import pytest
from kgpu_testlib import TWO_CPUS, run_cells

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf

DATA = "import numpy as np\nx = np.random.rand(64, 8).astype('float32')\ny = np.random.randint(0, 3, 64)"
BUILD = (
    "import keras\nmodel = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation='relu'), "
    "keras.layers.Dense(3)])\nmodel.compile(optimizer='adam', "
    "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])"
)
CHECK = (
    "from tensorflow.python.distribute.values import MirroredVariable\n"
    "print('MIRRORED', all(isinstance(v.value, MirroredVariable) for v in model.trainable_variables))\n"
    "print('REPLICAS', tf.distribute.get_strategy().num_replicas_in_sync)"
)
RESETS = [
    "keras.backend.clear_session()",
    "keras.utils.clear_session()",
    "tf.keras.backend.clear_session()",
    "from keras.backend import clear_session\nclear_session()",
]


@pytest.mark.parametrize("reset", RESETS)
def test_the_strategy_survives_clear_session_in_the_model_cell(reset):
    """keras-io's model cells often start with clear_session(): the model must still be mirrored."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "import keras\n%gpu_distribute",
            reset + "\n" + BUILD,
            "model.fit(x, y, verbose=0)",
            CHECK,
        ]
    )
    assert all(c.error is None for c in cells), [c.error for c in cells]
    assert "MIRRORED True" in cells[5].stdout and "REPLICAS 2" in cells[5].stdout


def test_without_the_guard_clear_session_drops_the_strategy():
    """The fault the guard exists for (TensorFlow 2.21 / Keras 3.15): if this starts passing, the
    guard's reset wrap may no longer be needed."""
    cells = run_cells(
        [
            TWO_CPUS,
            "import keras\ntf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy())",
            "keras.backend.clear_session()\nprint('AFTER', type(tf.distribute.get_strategy()).__name__)",
        ]
    )
    assert "AFTER _DefaultDistributionStrategy" in cells[2].stdout


def test_a_model_built_after_the_strategy_was_dropped_is_called_out_at_fit():
    """Never claim distribution that is not happening: fit says at once that it runs on one device."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "import keras\n%gpu_distribute",
            "tf.distribute.experimental_set_strategy(None)\n" + BUILD,
            # two epochs, each validating: fit's own evaluate runs on one device too
            "model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)\n"
            "print('AFTER', tf.distribute.has_strategy())",
            "%gpu_doctor --json",
        ]
    )
    fit = cells[4]
    assert fit.error is None, fit.error
    assert "AFTER True" in fit.stdout  # the notebook's strategy is current again for the next model
    assert "was built outside the notebook's MirroredStrategy" in fit.text
    assert "runs on one device, not 2 replicas" in fit.text
    doctor = cells[5].json
    assert doctor["level"] == "error" and "runs on one device" in doctor["summary"]
    assert [f["code"] for f in doctor["fixes"]] == ["model_not_distributed"]


def test_a_loop_of_predicts_on_an_outside_model_says_so_once_per_cell():
    """The card is the same at every call: a loop shows it once; the next cell that runs the model
    shows it again (that cell's output is where the user looks)."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "import keras\n%gpu_distribute",
            "tf.distribute.experimental_set_strategy(None)\n" + BUILD,
            "for _ in range(4):\n    model.predict(x[:8], verbose=0)",
            "model.evaluate(x, y, verbose=0)",
        ]
    )
    loop, again = cells[4], cells[5]
    assert loop.error is None and again.error is None, (loop.error, again.error)
    assert loop.text.count("was built outside the notebook's MirroredStrategy") == 1, loop.text
    assert again.text.count("was built outside the notebook's MirroredStrategy") == 1, again.text


VAE_LIKE = """\
import keras, tensorflow as tf
encoder = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)], name="encoder")
decoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)], name="decoder")

class AutoEncoder(keras.Model):
    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean((self.decoder(self.encoder(data)) - data) ** 2)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}
"""


def test_a_model_without_call_trains_on_both_replicas():
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "%gpu_distribute",
            VAE_LIKE + "model = AutoEncoder(encoder, decoder)\nmodel.compile(optimizer='adam')",
            "h = model.fit(x, epochs=1, batch_size=16, verbose=0)\nprint('LOSS', h.history['loss'][0])",
            CHECK,
        ]
    )
    assert all(c.error is None for c in cells), [c.error for c in cells]
    assert "LOSS" in cells[4].stdout
    assert "kerasgpu marked" in cells[4].text and "built (built = True)" in cells[4].text
    assert "MIRRORED True" in cells[5].stdout and "REPLICAS 2" in cells[5].stdout


def test_a_model_without_call_whose_layers_are_unbuilt_is_named_before_keras_fails():
    unbuilt = VAE_LIKE.replace("keras.Sequential([keras.Input((4,)), ", "keras.Sequential([")
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "%gpu_distribute",
            unbuilt + "model = AutoEncoder(encoder, decoder)\nmodel.compile(optimizer='adam')",
            "model.fit(x, epochs=1, batch_size=16, verbose=0)",
        ]
    )
    assert "are not built yet" in cells[4].text and "decoder" in cells[4].text


@pytest.mark.parametrize(
    ("call", "fixed"),
    [
        (
            "model.fit(x, y, batch_size=16, validation_split=0.1, verbose=0)",
            ["training batch", "56 of its 57 samples", "validation batch", "6 of its 7 samples"],
        ),
        (
            "model.fit(x, y, batch_size=16, validation_data=(x[:7], y[:7]), verbose=0)",
            ["validation batch", "6 of its 7 samples (the last 1 left out)"],
        ),
        (
            "model.evaluate(x[:15], y[:15], batch_size=16, verbose=0)",
            ["evaluation batch", "14 of its 15 samples"],
        ),
        ("model.fit(x[:63], y[:63], batch_size=63, verbose=0)", ["62 of its 63 samples"]),
        ("model.fit(x, y, batch_size=15, verbose=0)", ["batches of 14 instead of 15"]),
    ],
)
def test_batches_that_do_not_split_over_the_replicas_are_made_to_and_run(call, fixed):
    cells = run_cells([TWO_CPUS, DATA, "%gpu_distribute", BUILD, call])
    assert cells[4].error is None, cells[4].error
    for words in fixed:
        assert words in cells[4].text, cells[4].text


CONV_BN = (
    "import keras\nimages = np.random.rand(64, 8, 8, 3).astype('float32')\n"
    "inp = keras.Input((8, 8, 3))\nh = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp))\n"
    "conv = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Flatten()(h)))\nconv.compile('adam', 'mse')"
)


def test_a_conv_model_trains_on_17_samples_and_predicts_one_image_on_two_replicas():
    """keras-io's image classifier predicts on one image: with MirroredStrategy one replica gets
    none and TF fails ('Incompatible shapes'); the guard pads the batch and drops the padding."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "%gpu_distribute",
            CONV_BN,
            "conv.fit(images[:17], np.zeros(17), batch_size=16, verbose=0)\n"
            "print('PRED', conv.predict(images[:1], verbose=0).shape)",
        ]
    )
    assert cells[4].error is None, cells[4].error
    assert "PRED (1, 1)" in cells[4].stdout
    assert "16 of its 17 samples" in cells[4].text
    assert "1 copy of its last sample added and its output dropped" in cells[4].text


def test_without_the_guard_a_conv_model_fails_to_predict_one_image():
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "tf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy())",
            CONV_BN,
            "conv.fit(images[:16], np.zeros(16), batch_size=16, verbose=0)\n"
            "conv.predict(images[:1], verbose=0)",
        ]
    )
    assert cells[4].error and "Incompatible shapes" in cells[4].error


def test_an_even_split_is_left_alone():
    """Nothing is changed or said where every batch splits (16 + 12 on two replicas)."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "%gpu_distribute",
            BUILD,
            "model.fit(x, y, batch_size=16, validation_data=(x[:28], y[:28]), verbose=0)\n"
            "model.evaluate(x[:18], y[:18], batch_size=16, verbose=0)\n"
            "print(model.predict(x[:2], verbose=0).shape)",
        ]
    )
    assert cells[4].error is None, cells[4].error
    assert "kerasgpu" not in cells[4].text
    assert "(2, 3)" in cells[4].stdout


def test_without_the_fix_the_uneven_first_batch_fails_as_measured():
    """What the resize prevents (TensorFlow 2.21): evaluate on 15 samples fails on two replicas."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "tf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy())",
            BUILD,
            "model.evaluate(x[:15], y[:15], batch_size=16, verbose=0)",
        ]
    )
    assert cells[4].error and "AddN" in cells[4].error


GAN = """\
import keras, tensorflow as tf
D = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
G = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])

class GAN(keras.Model):
    def __init__(self, discriminator, generator):
        super().__init__()
        self.discriminator, self.generator = discriminator, generator

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def train_step(self, real):
        z = tf.random.normal((tf.shape(real)[0], 4))
        with tf.GradientTape() as tape:
            fake = tf.reduce_mean(self.discriminator(self.generator(z)))
            d_loss = fake - tf.reduce_mean(self.discriminator(real))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self.discriminator(self.generator(z)))
        g_vars = self.generator.trainable_weights
        grads = tape.gradient(g_loss, g_vars)
        self.g_optimizer.apply_gradients(zip(grads, g_vars))
        return {"d_loss": d_loss, "g_loss": g_loss}
"""


def test_a_gan_with_its_own_optimizers_trains_on_both_replicas():
    """A train_step that applies its own optimizers: built inside the distributed step they fail
    ('You must feed a value for placeholder tensor'); the guard builds them before fit."""
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            "%gpu_distribute",
            GAN + "gan = GAN(D, G)\ngan.compile(keras.optimizers.Adam(), keras.optimizers.Adam())",
            "gan.fit(x, batch_size=16, verbose=0)\n"
            "print('SLOTS', type(gan.g_optimizer.variables[-1].value).__name__)",
        ]
    )
    assert cells[4].error is None, cells[4].error
    assert "d_optimizer on discriminator.trainable_weights" in cells[4].text
    assert "g_optimizer on generator.trainable_weights" in cells[4].text
    assert "SLOTS MirroredVariable" in cells[4].stdout


def test_a_model_on_strings_evaluates_on_both_replicas():
    """keras-io's text_classification_from_scratch: an end-to-end model starting with
    TextVectorization, evaluated on a dataset of raw strings. Keras averages the replicas' first
    batches to build it, which strings cannot be ('... string is not in the list of allowed values')."""
    cells = run_cells(
        [
            TWO_CPUS,
            "%gpu_distribute",
            "import keras\nimport tensorflow as tf\n"
            "texts = tf.data.Dataset.from_tensor_slices((['good film', 'bad film', 'so good', 'so bad'] * 4, "
            "[1, 0, 1, 0] * 4)).batch(8)\n"
            "vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)\n"
            "vectorize.adapt(texts.map(lambda x, y: x))\n"
            "inputs = keras.Input(shape=(1,), dtype='string')\n"
            "x = keras.layers.Embedding(20, 4)(vectorize(inputs))\n"
            "x = keras.layers.GlobalAveragePooling1D()(x)\n"
            "outputs = keras.layers.Dense(1, activation='sigmoid')(x)\n"
            "model = keras.Model(inputs, outputs)\n"
            "model.compile(loss='binary_crossentropy', optimizer='adam', metrics=['accuracy'])\n"
            "texts = texts.map(lambda x, y: (tf.expand_dims(x, -1), y))\n"
            "print('EVAL', model.evaluate(texts, verbose=0))\nmodel.fit(texts, verbose=0)",
        ]
    )
    assert cells[2].error is None, cells[2].error
    assert "EVAL" in cells[2].stdout


def test_the_cell_wrap_gets_the_same_fixes_and_leaves_other_models_alone():
    """keras-io antirectifier: build, compile and fit in one wrapped cell, on data whose last batch
    does not split over two replicas; a model built outside the scope trains as before, unremarked."""
    from kerasgpu.core.planner.wrap import wrap_source

    wrapped = wrap_source(BUILD + "\nmodel.fit(x[:39], y[:39], batch_size=20, verbose=0)")
    cells = run_cells(
        [
            TWO_CPUS,
            DATA,
            wrapped,
            "print('WRAPPED', type(model.distribute_strategy).__name__)",
            BUILD.replace("model", "plain") + "\nplain.fit(x[:39], y[:39], batch_size=20, verbose=0)",
            "print('CURRENT', tf.distribute.has_strategy())",
        ]
    )
    assert all(c.error is None for c in cells), [c.error for c in cells]
    assert "WRAPPED MirroredStrategy" in cells[3].stdout
    assert "38 of its 39 samples" in cells[2].text
    assert "kerasgpu" not in cells[4].text and "CURRENT False" in cells[5].stdout
