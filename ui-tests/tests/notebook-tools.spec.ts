import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

/**
 * The notebook tools in a real JupyterLab: snippets from the server's catalog
 * inserted by the cell toolbar buttons and commands, each previewed and
 * applied on Apply, undone in one step, and the GPU verification cell run in
 * a real kernel (tensorflow-cpu installed).
 */

const VERIFY_TAG = 'kerasgpu-verify';

/** Replaces the current notebook's cells by code cells with these sources. */
async function setCells(
  page: IJupyterLabPageFixture,
  sources: string[]
): Promise<void> {
  await page.evaluate(sources => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    const shared = panel.content.model.sharedModel;
    shared.transact(() => {
      shared.deleteCellRange(0, shared.cells.length);
      shared.insertCells(
        0,
        sources.map((source: string) => ({ cell_type: 'code', source }))
      );
    });
  }, sources);
  await expect(page.locator('.jp-NotebookPanel .jp-Cell')).toHaveCount(
    sources.length
  );
}

/** The sources of the current notebook's cells. */
async function sources(page: IJupyterLabPageFixture): Promise<string[]> {
  return page.evaluate(() => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.model.sharedModel.cells.map((cell: any) =>
      cell.getSource()
    );
  });
}

/** How many cells carry the verification tag. */
async function verificationCells(
  page: IJupyterLabPageFixture
): Promise<number> {
  return page.evaluate(tag => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.model.sharedModel.cells.filter((cell: any) =>
      ((cell.getMetadata('tags') as string[] | undefined) ?? []).includes(tag)
    ).length;
  }, VERIFY_TAG);
}

/**
 * Starts a JupyterLab command by id, as a toolbar button or the palette does,
 * without waiting for it: a tool waits for its preview's Apply or Cancel.
 */
async function execute(
  page: IJupyterLabPageFixture,
  id: string,
  args: Record<string, unknown> = {}
): Promise<void> {
  await page.evaluate(
    ({ id, args }) => {
      void (window as any).jupyterapp.commands.execute(id, args);
    },
    { id, args }
  );
}

/** The preview dialog of a notebook tool's edits. */
function preview(page: IJupyterLabPageFixture) {
  return page.locator('.jp-Dialog', {
    has: page.locator('.kerasgpu-PlanPreview')
  });
}

/** Clicks a button of the open preview and waits for it to close. */
async function answer(
  page: IJupyterLabPageFixture,
  button: 'Apply' | 'Cancel'
): Promise<void> {
  const dialog = preview(page);
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: button, exact: true }).click();
  await expect(dialog).toHaveCount(0);
}

/** The notebook toolbar's GPU menu button. */
function gpuButton(page: IJupyterLabPageFixture) {
  return page
    .locator('.jp-NotebookPanel-toolbar')
    .getByRole('button', { name: 'GPU tools' });
}

/** Opens the notebook toolbar's GPU menu with a click and returns it. */
async function openGpuMenu(page: IJupyterLabPageFixture) {
  await gpuButton(page).click();
  const menu = page.locator('#jp-kerasgpu-gpu-menu');
  await expect(menu).toBeVisible();
  return menu;
}

/** Picks a tool of the GPU menu by (the start of) its label. */
async function pickFromGpuMenu(page: IJupyterLabPageFixture, label: string) {
  const menu = await openGpuMenu(page);
  await menu.getByRole('menuitem', { name: label }).click();
  await expect(menu).toHaveCount(0);
}

/** A picture of the notebook toolbar with the GPU menu open (for the docs). */
async function shootGpuMenu(page: IJupyterLabPageFixture, name: string) {
  const dir =
    process.env.KERASGPU_SCREENSHOTS_DIR ??
    path.resolve(__dirname, '..', 'screenshots');
  const bar = (await page.locator('.jp-NotebookPanel-toolbar').boundingBox())!;
  const menu = (await page.locator('#jp-kerasgpu-gpu-menu').boundingBox())!;
  const x = Math.max(0, bar.x - 8);
  const y = Math.max(0, bar.y - 2);
  await page.screenshot({
    path: path.join(dir, name),
    clip: {
      x,
      y,
      width: Math.max(bar.x + bar.width, menu.x + menu.width) + 8 - x,
      height: menu.y + menu.height + 16 - y
    }
  });
}

/** How many lines load the kerasgpu extension in the current notebook. */
async function loadExtLines(page: IJupyterLabPageFixture): Promise<number> {
  return (await sources(page)).reduce(
    (n, source) => n + (source.match(/^%load_ext kerasgpu\b/gm) ?? []).length,
    0
  );
}

test.describe('GPU notebook tools', () => {
  test.beforeEach(async ({ page }) => {
    await page.notebook.createNew();
  });

  test('the GPU menu puts memory growth above the TensorFlow import, and one undo removes it', async ({
    page
  }) => {
    const original = [
      'import os',
      'import tensorflow as tf',
      'x = tf.ones((2, 2))'
    ];
    await setCells(page, original);
    await page.notebook.selectCells(2);
    // Not a button on every cell any more: the cell toolbar keeps the strategy wrap only.
    await expect(
      page.locator(
        '.jp-cell-toolbar [data-jp-item-name="kerasgpu-mirrored-strategy"]'
      )
    ).toBeVisible();
    await expect(
      page.locator(
        '.jp-cell-toolbar [data-jp-item-name="kerasgpu-memory-growth"]'
      )
    ).toHaveCount(0);

    await pickFromGpuMenu(
      page,
      'Insert GPU memory growth (above the TensorFlow import)'
    );
    await expect(preview(page)).toContainText(
      'New cell 2, above `import tensorflow as tf`'
    );
    await answer(page, 'Apply');

    await expect.poll(() => sources(page)).toHaveLength(4);
    const after = await sources(page);
    expect(after[0]).toBe('import os');
    expect(after[1]).toContain('tf.config.experimental.set_memory_growth');
    expect(after.slice(2)).toEqual(original.slice(1));
    // None of these cells ran, so no restart is needed.
    await expect(
      page.locator('.Toastify__toast', { hasText: 'needs a kernel restart' })
    ).toHaveCount(0);

    // A second click does not add a second copy, and says so without a preview.
    await execute(page, 'kerasgpu:insert-snippet', { id: 'memory_growth' });
    await expect(
      page.locator('.Toastify__toast', { hasText: 'already in this notebook' })
    ).toBeVisible();
    await expect(preview(page)).toHaveCount(0);
    expect(await sources(page)).toHaveLength(4);

    await execute(page, 'notebook:undo-cell-action');
    await expect.poll(() => sources(page)).toEqual(original);
  });

  test('memory growth warns when the TensorFlow cell already ran in this kernel', async ({
    page
  }) => {
    test.setTimeout(240_000);
    await setCells(page, ['import tensorflow as tf']);
    await page.notebook.runCell(0, { inplace: true });

    await execute(page, 'kerasgpu:insert-snippet', { id: 'memory_growth' });
    await answer(page, 'Apply');
    await expect.poll(() => sources(page)).toHaveLength(2);
    await expect(
      page.locator('.Toastify__toast', { hasText: 'needs a kernel restart' })
    ).toBeVisible();
  });

  test('the wrap keeps a %%time first line and a triple-quoted string, shows its changed lines first, and one undo (Z) restores it', async ({
    page
  }) => {
    const body =
      '%%time\nNOTE = """built\n  in the scope"""\nmodel = keras.Sequential([keras.layers.Dense(1)])\nmodel.compile()\nmodel';
    await setCells(page, ['import keras', body]);
    await page.notebook.selectCells(1);

    await execute(page, 'kerasgpu:insert-snippet', {
      id: 'mirrored_strategy'
    });
    // The preview: the cell's lines, kept, removed and added.
    const dialog = preview(page);
    await expect(dialog.locator('.kerasgpu-PlanPreview-where')).toHaveText([
      /^Cell 2, `%%time`: \d+ lines added, 3 lines removed$/
    ]);
    await expect(
      dialog.locator('.kerasgpu-PlanPreview-line.kerasgpu-mod-removed')
    ).toHaveText([
      '- NOTE = """built',
      '- model = keras.Sequential([keras.layers.Dense(1)])',
      '- model.compile()'
    ]);
    await expect(
      dialog.locator('.kerasgpu-PlanPreview-line.kerasgpu-mod-added').first()
    ).toHaveText('+ import kerasgpu');
    await answer(page, 'Apply');
    await expect
      .poll(async () => (await sources(page))[1])
      .toContain('kerasgpu.notebook_strategy().scope()');
    const wrapped = (await sources(page))[1];
    expect(wrapped).toBe(
      '%%time\n' +
        'import kerasgpu\n\n' +
        "with kerasgpu.notebook_strategy().scope():  # kerasgpu: the notebook's one tf.distribute strategy\n" +
        '    NOTE = """built\n' +
        '  in the scope"""\n' +
        '    model = keras.Sequential([keras.layers.Dense(1)])\n' +
        '    model.compile()\n' +
        'model'
    );
    const cell = await page.notebook.getCellLocator(1);
    await expect(cell!.locator('.cm-content')).toContainText('%%time');
    expect(await sources(page)).toHaveLength(2);

    // Z in command mode: the notebook's undo (Edit > Undo Cell Operation).
    await page.notebook.selectCells(1);
    await page.keyboard.press('z');
    await expect.poll(async () => (await sources(page))[1]).toBe(body);
  });

  test('the wrap refuses a model compiled in another cell and offers Distribute This Notebook, which puts one strategy above the model', async ({
    page
  }) => {
    const cells = [
      'import keras\nimport numpy as np\nBATCH_SIZE = 32',
      'model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])',
      'model.compile(loss="mse")',
      'model.fit(np.zeros((64, 4)), np.zeros(64), batch_size=BATCH_SIZE)'
    ];
    await setCells(page, cells);
    await page.notebook.selectCells(1);
    await execute(page, 'kerasgpu:insert-snippet', {
      id: 'mirrored_strategy'
    });
    const toast = page.locator('.Toastify__toast', {
      hasText: 'is compiled in cell 3'
    });
    await expect(toast).toBeVisible();
    expect(await sources(page)).toEqual(cells); // nothing changed

    await toast
      .getByRole('button', { name: 'Distribute This Notebook' })
      .click();
    await answer(page, 'Apply');
    await expect.poll(() => sources(page)).toHaveLength(5);
    const after = await sources(page);
    expect(after[0]).toBe(cells[0]);
    expect(after[1]).toContain('%gpu_distribute --batch 32');
    expect(after[1]).toContain('# Your batch: BATCH_SIZE = 32 (cell 1)');
    expect(after.slice(2)).toEqual(cells.slice(1));

    // The notebook toolbar's GPU menu has the command too; a second time it says so instead of adding.
    await pickFromGpuMenu(page, 'Distribute This Notebook');
    await expect(
      page.locator('.Toastify__toast', { hasText: 'already distributed' })
    ).toBeVisible();
    expect(await sources(page)).toHaveLength(5);

    await execute(page, 'notebook:undo-cell-action');
    await expect.poll(() => sources(page)).toEqual(cells);
  });

  test('the verification cell runs in a real kernel, shows its report, and stays one cell', async ({
    page
  }) => {
    test.setTimeout(240_000);
    await setCells(page, ['import tensorflow as tf']);

    await pickFromGpuMenu(page, 'Insert GPU Verification Cell and Run It');
    await answer(page, 'Apply');

    await expect.poll(() => verificationCells(page)).toBe(1);
    const [verify, rest] = await sources(page);
    expect(verify).toBe('%load_ext kerasgpu\n%gpu_check');
    expect(rest).toBe('import tensorflow as tf');

    const cell = await page.notebook.getCellLocator(0);
    const card = cell!.locator('.jp-OutputArea-output .kerasgpu-card');
    await expect(card).toBeVisible({ timeout: 180_000 });
    await expect(card).toContainText('GPU check');
    // The card is the cell's first output: no TensorFlow start-up chatter above it.
    await expect(
      cell!.locator('.jp-OutputArea-output').first().locator('.kerasgpu-card')
    ).toBeVisible();
    await expect(
      cell!.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
      )
    ).toHaveCount(0);

    // Running the command again updates that cell instead of adding another.
    await page.evaluate(() => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      panel.content.model.sharedModel.cells[0].setSource('# edited');
    });
    await execute(page, 'kerasgpu:insert-verification-cell');
    await expect(
      preview(page).locator('.kerasgpu-PlanPreview-line.kerasgpu-mod-removed')
    ).toHaveText(['- # edited']);
    await answer(page, 'Apply');
    await expect.poll(async () => (await sources(page))[0]).toBe(verify);
    expect(await verificationCells(page)).toBe(1);
    const again = await sources(page);
    expect(again).toHaveLength(2);
    expect(again[0]).toBe(verify);
    expect(again[1]).toBe('import tensorflow as tf');
  });

  test('Distribute This Notebook shows the cell it adds and where; Cancel changes nothing, Apply adds it, one undo removes it', async ({
    page
  }) => {
    const cells = [
      'import keras\nimport numpy as np',
      'model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nmodel.compile(loss="mse")',
      'model.fit(np.zeros((64, 4)), np.zeros(64), batch_size=32)'
    ];
    await setCells(page, cells);
    await execute(page, 'kerasgpu:distribute-notebook');
    const dialog = preview(page);
    await expect(dialog.locator('.kerasgpu-PlanPreview-where')).toHaveText([
      'New cell 2, above `model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])`'
    ]);
    await expect(
      dialog.locator('.kerasgpu-PlanPreview-line.kerasgpu-mod-added')
    ).toContainText(['%gpu_distribute']);
    await expect(dialog.getByRole('button', { name: 'Apply' })).toBeFocused();
    await answer(page, 'Cancel');
    expect(await sources(page)).toEqual(cells);

    // Keyboard: Escape cancels too; Enter applies.
    await execute(page, 'kerasgpu:distribute-notebook');
    await expect(preview(page)).toBeVisible();
    await page.keyboard.press('Escape');
    await expect(preview(page)).toHaveCount(0);
    expect(await sources(page)).toEqual(cells);
    await execute(page, 'kerasgpu:distribute-notebook');
    await expect(preview(page)).toBeVisible();
    await page.keyboard.press('Enter');
    await expect.poll(() => sources(page)).toHaveLength(4);
    const after = await sources(page);
    expect(after[1]).toContain('%gpu_distribute');
    expect([after[0], ...after.slice(2)]).toEqual(cells);
    expect(
      await page.evaluate(
        () =>
          (window as any).jupyterapp.shell.currentWidget.content.activeCellIndex
      )
    ).toBe(1);

    await execute(page, 'notebook:undo-cell-action');
    await expect.poll(() => sources(page)).toEqual(cells);
  });

  test('a plan that adds a cell and changes another: its preview, one Apply, one undo, and message links that select the right cell', async ({
    page
  }) => {
    const cells = [
      'import keras',
      'model = make_model()\nmodel.compile(loss="mse")',
      'model.fit(ds, epochs=2)'
    ];
    await setCells(page, cells);
    const long =
      'Distiller overrides compile() and has no call(): Keras cannot build it under a strategy, so it is marked built once its sub-models exist (the line added below). ' +
      'Remove that line to undo it; the whole text of this message is kept, however long it is, so nothing of what it says is lost.';
    // The planner's contract: the cell a message is about, numbered after the edits.
    const plan = {
      tool: 'distribute',
      ok: true,
      edits: [
        {
          op: 'insert',
          index: 1,
          source: '%load_ext kerasgpu\n%gpu_distribute',
          metadata: { kerasgpu: { snippet: 'distribute_notebook' } }
        },
        {
          op: 'replace',
          index: 2,
          source:
            'model = make_model()\nmodel.built = True  # kerasgpu\nmodel.compile(loss="mse")'
        }
      ],
      messages: [
        {
          level: 'warning',
          text: long,
          cell: 2,
          cell_line: 'model = make_model()'
        },
        {
          level: 'info',
          text: 'Your fit runs on every replica.',
          cell: 3,
          cell_line: 'model.fit(ds, epochs=2)'
        }
      ],
      select: 1
    };
    // JupyterLab adds a cache-busting query to each request.
    const planRoute = /\/kerasgpu\/api\/v1\/notebook-tools\/plan(\?|$)/;
    await page.route(planRoute, route => route.fulfill({ json: plan }));
    await execute(page, 'kerasgpu:distribute-notebook');
    const dialog = preview(page);
    await expect(dialog.locator('.kerasgpu-PlanPreview-where')).toHaveText([
      'New cell 2, above `model = make_model()`',
      'Cell 3 (was cell 2), `model = make_model()`: 1 line added, 0 lines removed'
    ]);
    await expect(
      dialog.locator('.kerasgpu-PlanPreview-line.kerasgpu-mod-added')
    ).toHaveText([
      '+ %load_ext kerasgpu',
      '+ %gpu_distribute',
      '+ model.built = True  # kerasgpu'
    ]);
    // Messages in full, each with a link to its cell.
    await expect(
      dialog.locator('.kerasgpu-PlanPreview-text').first()
    ).toHaveText(long);
    const links = dialog.locator('.kerasgpu-PlanPreview-cellLink');
    await expect(links).toHaveText([
      'cell 3: model = make_model()',
      'cell 4: model.fit(ds, epochs=2)'
    ]);
    if (process.env.KERASGPU_PREVIEW_SHOTS) {
      await dialog.screenshot({
        path: `${process.env.KERASGPU_PREVIEW_SHOTS}/preview-dialog.png`
      });
    }
    // Cell 4 after the edits is cell 3 now: the link selects it behind the dialog.
    await links.nth(1).click();
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (window as any).jupyterapp.shell.currentWidget.content
              .activeCellIndex
        )
      )
      .toBe(2);
    expect(await sources(page)).toEqual(cells);

    await answer(page, 'Apply');
    await expect.poll(() => sources(page)).toHaveLength(4);
    expect(await sources(page)).toEqual([
      cells[0],
      '%load_ext kerasgpu\n%gpu_distribute',
      plan.edits[1].source,
      cells[2]
    ]);

    // The warning stays as a notification: its start, a link to its cell, its whole text.
    const toast = page.locator('.Toastify__toast', {
      hasText: 'Distiller overrides compile()'
    });
    await expect(toast).toBeVisible();
    await page.notebook.selectCells(0);
    await toast.getByRole('button', { name: 'Cell 3' }).click();
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (window as any).jupyterapp.shell.currentWidget.content
              .activeCellIndex
        )
      )
      .toBe(2);
    const cell = await page.notebook.getCellLocator(2);
    await expect(cell!).toBeInViewport();
    await expect(cell!).toHaveClass(/jp-mod-active/);

    await page
      .locator('.Toastify__toast', {
        hasText: 'Distiller overrides compile()'
      })
      .getByRole('button', { name: 'Details' })
      .click();
    const details = page.locator('.jp-Dialog .kerasgpu-PlanPreview');
    await expect(details.locator('.kerasgpu-PlanPreview-text')).toHaveText(
      long
    );
    if (process.env.KERASGPU_PREVIEW_SHOTS) {
      await page.screenshot({
        path: `${process.env.KERASGPU_PREVIEW_SHOTS}/preview-details.png`
      });
    }
    await page.evaluate(() => {
      (window as any).jupyterapp.shell.currentWidget.content.activeCellIndex =
        0;
    });
    await details
      .getByRole('button', { name: 'cell 3: model = make_model()' })
      .click();
    await expect(details).toHaveCount(0);
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (window as any).jupyterapp.shell.currentWidget.content
              .activeCellIndex
        )
      )
      .toBe(2);

    // One undo: the new cell and the added line both go.
    await execute(page, 'notebook:undo-cell-action');
    await expect.poll(() => sources(page)).toEqual(cells);
    await page.unroute(planRoute);
  });

  test("the server's planner: Distribute marks a model without call() built in the user's own cell (previewed, linked, one undo) or refuses with its whole reason", async ({
    page
  }) => {
    const submodels =
      'import keras\n' +
      'encoder = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)], name="encoder")\n' +
      'decoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)], name="decoder")';
    const modelClass = [
      'class AutoEncoder(keras.Model):',
      '    def __init__(self, encoder, decoder, **kwargs):',
      '        super().__init__(**kwargs)',
      '        self.encoder = encoder',
      '        self.decoder = decoder',
      '        self.loss_tracker = keras.metrics.Mean(name="loss")',
      '',
      '    def train_step(self, data):',
      '        return {"loss": self.loss_tracker.result()}'
    ].join('\n');
    const create =
      "ae = AutoEncoder(encoder, decoder)\nae.compile(optimizer='adam')";
    const cells = [submodels, modelClass, create, 'ae.fit(x, epochs=1)'];
    await setCells(page, cells);
    await execute(page, 'kerasgpu:distribute-notebook');
    const dialog = preview(page);
    const where = dialog.locator('.kerasgpu-PlanPreview-where');
    await expect(where).toHaveCount(2);
    await expect(where.first()).toHaveText(/^New cell \d, above `/);
    await expect(where.nth(1)).toHaveText(
      /^Cell \d \(was cell 3\), `ae = AutoEncoder\(encoder, decoder\)`: 1 line added, 0 lines removed$/
    );
    await expect(
      dialog
        .locator('.kerasgpu-PlanPreview-change.kerasgpu-mod-changed')
        .locator('.kerasgpu-PlanPreview-line.kerasgpu-mod-added')
    ).toHaveText([/^\+ ae\.built = True {2}# kerasgpu/]);
    const message = dialog.locator(
      '.kerasgpu-PlanPreview-message[data-code="model_marked_built"]'
    );
    const link = message.locator('.kerasgpu-PlanPreview-cellLink');
    await expect(link).toHaveText(
      /^cell \d: ae = AutoEncoder\(encoder, decoder\)$/
    );
    await link.click();
    // The cell as numbered now, before the new cell goes in above it.
    await expect
      .poll(() =>
        page.evaluate(
          () =>
            (window as any).jupyterapp.shell.currentWidget.content
              .activeCellIndex
        )
      )
      .toBe(2);
    await answer(page, 'Apply');
    await expect.poll(() => sources(page)).toHaveLength(5);
    const after = await sources(page);
    const model = after.findIndex(source =>
      source.startsWith('ae = AutoEncoder')
    );
    expect(after[model].split('\n')[1]).toMatch(/^ae\.built = True/);
    await execute(page, 'notebook:undo-cell-action');
    await expect.poll(() => sources(page)).toEqual(cells);

    // A sub-model without an Input: refused before inserting, the whole reason a click away.
    const unbuilt = [
      submodels.replace(
        'keras.Sequential([keras.Input((4,)), ',
        'keras.Sequential(['
      ),
      ...cells.slice(1)
    ];
    await setCells(page, unbuilt);
    await execute(page, 'kerasgpu:distribute-notebook');
    const toast = page.locator('.Toastify__toast', {
      hasText: 'Not distributed: AutoEncoder'
    });
    await expect(toast).toBeVisible();
    await expect(preview(page)).toHaveCount(0);
    expect(await sources(page)).toEqual(unbuilt);
    await toast.getByRole('button', { name: 'Details' }).click();
    const details = page.locator('.jp-Dialog .kerasgpu-PlanPreview');
    await expect(details.locator('.kerasgpu-PlanPreview-text')).toContainText(
      'trains on one device'
    );
    await page
      .locator('.jp-Dialog-footer')
      .getByRole('button', { name: 'Close' })
      .click();
    await expect(details).toHaveCount(0);
  });

  test('the GPU menu names the tools, opens from the keyboard, and runs the one picked', async ({
    page
  }) => {
    const cells = [
      'import keras\nimport numpy as np',
      'model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nmodel.compile(loss="mse")',
      'model.fit(np.zeros((64, 4)), np.zeros(64), batch_size=32)'
    ];
    await setCells(page, cells);
    // One labelled button, not a row of icons.
    await expect(gpuButton(page)).toHaveText('GPU');
    await expect(gpuButton(page)).toHaveAttribute('aria-haspopup', 'menu');
    const menu = await openGpuMenu(page);
    const items = menu.getByRole('menuitem');
    await expect(items.first()).toHaveText(
      /Insert GPU Verification Cell and Run It/
    );
    for (const label of [
      'Distribute This Notebook',
      "Run Cell in the Notebook's Strategy",
      'Insert Mixed Precision Policy (above the first model)',
      'Insert GPU memory growth (above the TensorFlow import)',
      'Insert GPU memory limit (above the TensorFlow import)',
      'Insert Log device placement (above the TensorFlow import)'
    ]) {
      await expect(menu.getByRole('menuitem', { name: label })).toBeVisible();
    }
    // No fit has offered a pipeline fix in this notebook: the entry is not there.
    await expect(
      menu.getByRole('menuitem', { name: 'Fix the Input Pipeline' })
    ).toHaveCount(0);
    await shootGpuMenu(page, 'gpu-menu-light.png');
    await page.keyboard.press('Escape');
    await page.theme.setDarkTheme();
    await openGpuMenu(page);
    await shootGpuMenu(page, 'gpu-menu-dark.png');
    await page.keyboard.press('Escape');
    await page.theme.setLightTheme();
    await openGpuMenu(page);
    // Escape closes it and gives the focus back to the button.
    await page.keyboard.press('Escape');
    await expect(menu).toHaveCount(0);
    await expect(gpuButton(page)).toBeFocused();

    // From the keyboard: Enter opens it on its first tool, ArrowDown, Enter picks the next.
    await page.keyboard.press('Enter');
    await expect(menu).toBeVisible();
    await page.keyboard.press('ArrowDown');
    await expect(menu.locator('.lm-Menu-item.lm-mod-active')).toHaveText(
      /Distribute This Notebook/
    );
    await page.keyboard.press('Enter');
    await answer(page, 'Apply');
    await expect.poll(() => sources(page)).toHaveLength(4);
    expect((await sources(page))[1]).toContain('%gpu_distribute');
  });

  test("Run Cell in the Notebook's Strategy works on a one-line cell, from the cell's context menu and the GPU menu", async ({
    page
  }) => {
    const line =
      'model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])';
    const cells = ['import keras', line];
    await setCells(page, cells);
    const wrapped = (source: string) =>
      source.includes('with kerasgpu.notebook_strategy().scope():') &&
      source.endsWith(`\n    ${line}`);

    // The context menu of the one-line cell (JupyterLab hides its cell toolbar over the code).
    const cell = (await page.notebook.getCellLocator(1))!;
    await cell.locator('.jp-InputArea-editor').click({ button: 'right' });
    await page
      .locator('.lm-Menu')
      .getByRole('menuitem', { name: "Run Cell in the Notebook's Strategy" })
      .click();
    await answer(page, 'Apply');
    await expect.poll(async () => wrapped((await sources(page))[1])).toBe(true);
    await execute(page, 'notebook:undo-cell-action');
    await expect.poll(() => sources(page)).toEqual(cells);

    // The notebook toolbar's GPU menu, for the active cell.
    await page.notebook.selectCells(1);
    await pickFromGpuMenu(page, "Run Cell in the Notebook's Strategy");
    await answer(page, 'Apply');
    await expect.poll(async () => wrapped((await sources(page))[1])).toBe(true);
    expect((await sources(page))[0]).toBe('import keras');
  });

  test('the verification cell goes below a leading markdown title', async ({
    page
  }) => {
    await setCells(page, ['import tensorflow as tf']);
    await page.evaluate(() => {
      const shared = (window as any).jupyterapp.shell.currentWidget.content
        .model.sharedModel;
      shared.insertCell(0, { cell_type: 'markdown', source: '# My model' });
    });
    await execute(page, 'kerasgpu:insert-verification-cell');
    await answer(page, 'Apply');
    await expect.poll(() => verificationCells(page)).toBe(1);
    expect(await sources(page)).toEqual([
      '# My model',
      '%load_ext kerasgpu\n%gpu_check',
      'import tensorflow as tf'
    ]);
  });

  test('a notebook that loads kerasgpu itself still loads it once after the verification cell and Distribute', async ({
    page
  }) => {
    await setCells(page, [
      '%load_ext kerasgpu\nimport keras\nimport numpy as np',
      'model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nmodel.compile(loss="mse")',
      'model.fit(np.zeros((64, 4)), np.zeros(64), batch_size=32)'
    ]);
    await execute(page, 'kerasgpu:insert-verification-cell');
    await answer(page, 'Apply');
    await expect.poll(() => verificationCells(page)).toBe(1);
    await execute(page, 'kerasgpu:distribute-notebook');
    await answer(page, 'Apply');
    await expect
      .poll(async () => (await sources(page)).join('\n'))
      .toContain('%gpu_distribute');
    expect(await loadExtLines(page)).toBe(1);
  });

  test('the GPU snippet commands carry labels saying where code goes', async ({
    page
  }) => {
    const labels = await page.evaluate(() => {
      const commands = (window as any).jupyterapp.commands;
      return [
        commands.label('kerasgpu:insert-verification-cell', {}),
        commands.label('kerasgpu:insert-snippet', { id: 'mirrored_strategy' }),
        commands.label('kerasgpu:insert-snippet', { id: 'memory_growth' }),
        commands.label('kerasgpu:distribute-notebook', {}),
        commands.label('kerasgpu:insert-snippet', { id: 'mixed_precision' }),
        commands.label('kerasgpu:insert-snippet', { id: 'tf_data_pipeline' })
      ];
    });
    expect(labels[0]).toBe('Insert GPU Verification Cell');
    expect(labels[1]).toBe("Run Cell in the Notebook's Strategy");
    expect(labels[2]).toMatch(/above the TensorFlow import/);
    expect(labels[3]).toBe('Distribute This Notebook');
    // The planner puts the precision policy above the first model, not below the active cell.
    expect(labels[4]).toBe(
      'Insert Mixed Precision Policy (above the first model)'
    );
    expect(labels[5]).toMatch(/below this cell/);
  });
});

test.describe('preview notebook edits (setting)', () => {
  test('with the preview off, a tool applies at once, still one undo step', async ({
    page
  }) => {
    const id = 'jupyterlab-kerasgpu:notebook-tools';
    await page.evaluate(async id => {
      const settings = (window as any).jupyterapp.serviceManager.settings;
      await settings.save(id, JSON.stringify({ previewEdits: false }));
    }, id);
    try {
      await page.reload();
      await page.notebook.createNew();
      const cells = ['import tensorflow as tf'];
      await setCells(page, cells);
      await execute(page, 'kerasgpu:insert-snippet', { id: 'memory_growth' });
      await expect.poll(() => sources(page)).toHaveLength(2);
      await expect(preview(page)).toHaveCount(0);
      await execute(page, 'notebook:undo-cell-action');
      await expect.poll(() => sources(page)).toEqual(cells);
    } finally {
      await page.evaluate(async id => {
        const settings = (window as any).jupyterapp.serviceManager.settings;
        await settings.save(id, JSON.stringify({}));
      }, id);
    }
  });
});

test.describe('verification cell in new notebooks (setting)', () => {
  test('with the setting on, a new notebook starts with the verification cell', async ({
    page
  }) => {
    const id = 'jupyterlab-kerasgpu:notebook-tools';
    await page.evaluate(async id => {
      const settings = (window as any).jupyterapp.serviceManager.settings;
      await settings.save(id, JSON.stringify({ verifyOnNewNotebook: true }));
    }, id);
    try {
      // The plugin follows the saved settings after a reload, as after the Settings Editor.
      await page.reload();
      await page.notebook.createNew();
      await expect
        .poll(() => verificationCells(page), { timeout: 20_000 })
        .toBe(1);
    } finally {
      await page.evaluate(async id => {
        const settings = (window as any).jupyterapp.serviceManager.settings;
        await settings.save(id, JSON.stringify({}));
      }, id);
    }
  });
});
