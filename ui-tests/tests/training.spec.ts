import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

/**
 * A watched Keras `fit` in a real kernel (TensorFlow's CPU wheel) while the fake
 * nvidia-smi replays the starving phase of the real H200 trace with this kernel's
 * pid on GPU 0: the cell shows the live card, the GPU panel a training card with the
 * "GPU waits for its input" finding, and the card goes when the kernel stops.
 */
const stateFile = path.resolve(__dirname, '..', '.fake-bin', 'state');

function setFake(state: Record<string, unknown>): void {
  fs.writeFileSync(stateFile, JSON.stringify(state));
}

test.use({ autoGoto: false });

test.afterEach(() => {
  setFake({ state: 'load' });
});

const FIT = [
  '%load_ext kerasgpu',
  '%gpu_watch on',
  'import time, numpy as np, keras, tensorflow as tf',
  'def slow(a, b):  # a slow CPU input pipeline: 20 ms a batch',
  '    time.sleep(0.02)',
  '    return a, b',
  'def slow_map(a, b):',
  '    a2, b2 = tf.py_function(slow, [a, b], [tf.float32, tf.float32])',
  '    a2.set_shape(a.shape); b2.set_shape(b.shape)',
  '    return a2, b2',
  'x = np.random.rand(2400, 8).astype("float32"); y = np.random.rand(2400, 1).astype("float32")',
  'data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).map(slow_map)',
  'm = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])',
  'm.compile("sgd", "mse")',
  'm.fit(data, epochs=2, verbose=0);'
].join('\n');

test('a watched fit shows its training card in the GPU panel', async ({
  page
}) => {
  test.setTimeout(240_000);
  await page.goto();
  await page.notebook.createNew();
  await page.notebook.setCell(0, 'code', 'import os; print(os.getpid())');
  await page.notebook.runCell(0, true);
  const pid = parseInt(
    ((await page.notebook.getCellTextOutput(0)) ?? [''])[0].trim(),
    10
  );
  setFake({
    state: 'trace:starving',
    procs: [{ pid, used_mib: 20000, name: 'python3', gpu: 0 }]
  });
  await page.sidebar.openTab('jp-kerasgpu-panel');
  // Put the code in through the model: typing it would let the editor auto-indent it.
  await page.evaluate(source => {
    const shared = (window as any).jupyterapp.shell.currentWidget.content.model
      .sharedModel;
    shared.insertCell(1, { cell_type: 'code', source });
  }, FIT);
  await page.notebook.runCell(1, true);

  // the cell's live card, updated in place to the end
  const cell = page.locator('.jp-Cell').nth(1);
  await expect(cell.locator('.kerasgpu-training')).toHaveCount(1);
  await expect(cell.locator('.kerasgpu-training')).toContainText(
    'Trained — epoch 2/2'
  );

  // the panel's card for this notebook
  const card = page.locator('#jp-kerasgpu-panel .jp-kerasgpu-training-card');
  await expect(card).toHaveCount(1);
  await expect(card).toHaveAttribute('data-state', 'done');
  await expect(card.locator('h3')).toContainText('Trained: Untitled');
  await expect(card.getByRole('progressbar')).toHaveAttribute(
    'aria-valuenow',
    '100'
  );
  await expect(card.locator('.jp-kerasgpu-training-gpu')).toContainText(
    'GPU 0 busy'
  );
  await expect(card.locator('.jp-kerasgpu-training-finding')).toContainText(
    'The GPU waits for its input'
  );

  await page.locator('#jp-kerasgpu-panel').screenshot({
    path: path.join(
      process.env.KERASGPU_SCREENSHOTS_DIR ??
        path.resolve(__dirname, '..', 'screenshots'),
      'training-card.png'
    )
  });

  // the kernel stops: the card goes
  await page.evaluate(() =>
    (window as any).jupyterapp.shell.currentWidget.sessionContext.shutdown()
  );
  await expect(card).toHaveCount(0, { timeout: 30_000 });
});
