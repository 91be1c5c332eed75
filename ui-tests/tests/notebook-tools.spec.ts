import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

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

test.describe('GPU notebook tools', () => {
  test.beforeEach(async ({ page }) => {
    await page.notebook.createNew();
  });

  test('the cell toolbar button puts memory growth above the TensorFlow import, and one undo removes it', async ({
    page
  }) => {
    const original = [
      'import os',
      'import tensorflow as tf',
      'x = tf.ones((2, 2))'
    ];
    await setCells(page, original);
    await page.notebook.selectCells(2);

    const button = page.locator(
      '.jp-cell-toolbar [data-jp-item-name="kerasgpu-memory-growth"]'
    );
    await expect(button).toBeVisible();
    await button.click();
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

    // The notebook toolbar has the command too; a second time it says so instead of adding.
    await page
      .locator(
        '.jp-NotebookPanel-toolbar [data-jp-item-name="kerasgpu-distribute"]'
      )
      .click();
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

    await page
      .locator(
        '.jp-NotebookPanel-toolbar [data-jp-item-name="kerasgpu-verify"]'
      )
      .click();
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

  test('the GPU snippet commands carry labels saying where code goes', async ({
    page
  }) => {
    const labels = await page.evaluate(() => {
      const commands = (window as any).jupyterapp.commands;
      return [
        commands.label('kerasgpu:insert-verification-cell', {}),
        commands.label('kerasgpu:insert-snippet', { id: 'mirrored_strategy' }),
        commands.label('kerasgpu:insert-snippet', { id: 'memory_growth' }),
        commands.label('kerasgpu:distribute-notebook', {})
      ];
    });
    expect(labels[0]).toBe('Insert GPU Verification Cell');
    expect(labels[1]).toBe("Run Cell in the Notebook's Strategy");
    expect(labels[2]).toMatch(/above the TensorFlow import/);
    expect(labels[3]).toBe('Distribute This Notebook');
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
