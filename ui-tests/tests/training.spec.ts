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

/** A slow tf.data pipeline of its own cell (no prefetch, a map without num_parallel_calls). */
const SLOW_SETUP = [
  '%load_ext kerasgpu',
  '%gpu_watch on',
  'import time, numpy as np, keras, tensorflow as tf',
  'def slow(a, b):  # 15 ms a batch, sleeping',
  '    time.sleep(0.015)',
  '    return a, b',
  'def slow_map(a, b):',
  '    a2, b2 = tf.py_function(slow, [a, b], [tf.float32, tf.float32])',
  '    a2.set_shape(a.shape); b2.set_shape(b.shape)',
  '    return a2, b2',
  'x = np.random.rand(1024, 8).astype("float32"); y = np.random.rand(1024, 1).astype("float32")',
  'm = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])',
  'm.compile("sgd", "mse")'
].join('\n');
const PIPELINE =
  'train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).map(slow_map)';
const SMALL_FIT = 'm.fit(train_ds, epochs=3, verbose=0);';

test("the training card's Fix the input pipeline: the finding, its preview, Apply edits the pipeline cell, one undo reverts", async ({
  page
}) => {
  test.setTimeout(240_000);
  await page.goto();
  await page.notebook.createNew();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  await page.evaluate(
    ([setup, pipeline, fit]) => {
      const shared = (window as any).jupyterapp.shell.currentWidget.content
        .model.sharedModel;
      shared.transact(() => {
        shared.deleteCellRange(0, shared.cells.length);
        shared.insertCells(
          0,
          [setup, pipeline, fit].map(source => ({ cell_type: 'code', source }))
        );
      });
    },
    [SLOW_SETUP, PIPELINE, SMALL_FIT]
  );
  await page.notebook.run();

  const card = page.locator('#jp-kerasgpu-panel .jp-kerasgpu-training-card');
  await expect(card).toHaveAttribute('data-state', 'done', {
    timeout: 180_000
  });
  // Among the findings (the first may be that training runs on the CPU): steps wait for their input.
  await expect(
    card.locator('.jp-kerasgpu-training-findings summary')
  ).toHaveAttribute('title', /steps wait for their input/);
  const fix = card.getByRole('button', { name: 'Fix the input pipeline' });
  await expect(fix).toBeVisible();
  // The notebook's GPU menu offers the same fix while the finding stands.
  await page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'GPU tools' })
    .click();
  await expect(
    page
      .locator('#jp-kerasgpu-gpu-menu')
      .getByRole('menuitem', { name: 'Fix the Input Pipeline' })
  ).toBeVisible();
  await page.keyboard.press('Escape');

  await fix.click();
  const dialog = page.locator('.jp-Dialog', {
    has: page.locator('.kerasgpu-PlanPreview')
  });
  await expect(dialog).toBeVisible();
  await expect(dialog.locator('.kerasgpu-PlanPreview-where')).toContainText([
    /^Cell 2/
  ]);
  await dialog.getByRole('button', { name: 'Apply', exact: true }).click();
  await expect(dialog).toHaveCount(0);

  const cellSource = (i: number) =>
    page.evaluate(
      i =>
        (
          window as any
        ).jupyterapp.shell.currentWidget.content.model.sharedModel.cells[
          i
        ].getSource(),
      i
    );
  await expect
    .poll(() => cellSource(1))
    .toContain('.prefetch(tf.data.AUTOTUNE)');
  const fixed = await cellSource(1);
  expect(fixed).toContain('num_parallel_calls=tf.data.AUTOTUNE');
  expect(
    fixed.startsWith('train_ds = tf.data.Dataset.from_tensor_slices')
  ).toBe(true);
  // The other cells are the user's, unchanged.
  expect(await cellSource(2)).toBe(SMALL_FIT);

  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('notebook:undo-cell-action')
  );
  await expect.poll(() => cellSource(1)).toBe(PIPELINE);
});
