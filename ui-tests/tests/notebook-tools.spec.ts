import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

/**
 * The notebook tools in a real JupyterLab: snippets from the server's catalog
 * inserted by the cell toolbar buttons and commands, undone in one step, and
 * the GPU verification cell run in a real kernel (tensorflow-cpu installed).
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

/** Runs a JupyterLab command by id, as a toolbar button or the palette does. */
async function execute(
  page: IJupyterLabPageFixture,
  id: string,
  args: Record<string, unknown> = {}
): Promise<void> {
  await page.evaluate(
    ({ id, args }) => (window as any).jupyterapp.commands.execute(id, args),
    { id, args }
  );
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

    await expect.poll(() => sources(page)).toHaveLength(4);
    const after = await sources(page);
    expect(after[0]).toBe('import os');
    expect(after[1]).toContain('tf.config.experimental.set_memory_growth');
    expect(after.slice(2)).toEqual(original.slice(1));
    // None of these cells ran, so no restart is needed.
    await expect(
      page.locator('.Toastify__toast', { hasText: 'needs a kernel restart' })
    ).toHaveCount(0);

    // A second click does not add a second copy.
    await execute(page, 'kerasgpu:insert-snippet', { id: 'memory_growth' });
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
    await expect.poll(() => sources(page)).toHaveLength(2);
    await expect(
      page.locator('.Toastify__toast', { hasText: 'needs a kernel restart' })
    ).toBeVisible();
  });

  test('the wrap keeps a %%time first line and a triple-quoted string, and one Ctrl+Z restores it', async ({
    page
  }) => {
    const body =
      '%%time\nNOTE = """built\n  in the scope"""\nmodel = keras.Sequential([keras.layers.Dense(1)])\nmodel.compile()\nmodel';
    await setCells(page, ['import keras', body]);
    await page.notebook.selectCells(1);

    await execute(page, 'kerasgpu:insert-snippet', {
      id: 'mirrored_strategy'
    });
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

    await page.notebook.enterCellEditingMode(1);
    await page.keyboard.press('Control+z');
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
    expect(await verificationCells(page)).toBe(1);
    const again = await sources(page);
    expect(again).toHaveLength(2);
    expect(again[0]).toBe(verify);
    expect(again[1]).toBe('import tensorflow as tf');
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
