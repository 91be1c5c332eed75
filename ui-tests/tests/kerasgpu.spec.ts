import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

/**
 * The server started by start-jupyter.sh has the fake nvidia-smi (real H200
 * captures) linked in .fake-bin, first on PATH; `setFake` changes what it
 * answers, and removing the link makes nvidia-smi "not found".
 */
const fakeBin = path.resolve(__dirname, '..', '.fake-bin');
const fakeLink = path.join(fakeBin, 'nvidia-smi');
const fakeTarget = path.resolve(
  __dirname,
  '..',
  '..',
  'python_ext',
  'tests',
  'fake_nvidia_smi',
  'nvidia-smi'
);

function setFake(state: Record<string, unknown>): void {
  fs.writeFileSync(path.join(fakeBin, 'state'), JSON.stringify(state));
}

function restoreFake(): void {
  setFake({ state: 'load' });
  if (!fs.existsSync(fakeLink)) {
    fs.symlinkSync(fakeTarget, fakeLink);
  }
}

test.use({ autoGoto: false });

test.afterEach(() => {
  restoreFake();
});

test('JupyterLab loads with the extension and no console errors', async ({
  page
}) => {
  const errors: string[] = [];
  page.on('console', message => {
    if (message.type() === 'error') {
      errors.push(message.text());
    }
  });
  page.on('pageerror', error => errors.push(error.message));
  await page.goto();
  const activated = await page.evaluate(() =>
    (window as any).jupyterapp.isPluginActivated('jupyterlab-kerasgpu:panel')
  );
  expect(activated).toBe(true);
  // Let the panel's first request go through before judging the console.
  await page.sidebar.openTab('jp-kerasgpu-panel');
  await expect(page.locator('.jp-kerasgpu-card')).toHaveCount(1);
  expect(errors).toEqual([]);
});

test('the GPU panel shows the H200 under load', async ({ page }) => {
  await page.goto();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  const card = panel.locator('.jp-kerasgpu-card');
  await expect(card.locator('.jp-kerasgpu-name')).toHaveText('NVIDIA H200');
  await expect(card.locator('.jp-kerasgpu-meter-memory')).toContainText(
    '25.1 GiB / 140.4 GiB'
  );
  await expect(card.locator('.jp-kerasgpu-meter-util')).toContainText('100 %');
  await expect(card.getByRole('meter', { name: 'Memory' })).toHaveAttribute(
    'aria-valuenow',
    '18'
  );
  // Memory bus, memory clock, P-state and the versions are on screen, not in a tooltip only.
  const facts = card.locator('.jp-kerasgpu-facts');
  await expect(facts).toContainText('Memory-bus busy24 %');
  await expect(facts).toContainText('Memory clock3201 MHz');
  await expect(facts).toContainText('P-stateP0');
  await expect(facts).toContainText('driver 580.159.04');
});

test('eight GPUs fit a 1280x800 screen as dense rows, each with its details on demand', async ({
  page
}) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  setFake({ state: 'load', gpus: 8 });
  await page.goto();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  const rows = panel.locator('.jp-kerasgpu-card');
  await expect(rows).toHaveCount(8);
  await expect(rows.nth(7).locator('.jp-kerasgpu-meter-util')).toContainText(
    '%'
  );
  // Every row is on screen without scrolling the panel.
  for (let i = 0; i < 8; i++) {
    const box = await rows.nth(i).boundingBox();
    expect(box, `row ${i}`).not.toBeNull();
    expect(box!.y + box!.height, `row ${i} bottom`).toBeLessThanOrEqual(800);
  }
  // Details open for one GPU only.
  await expect(rows.nth(3).locator('.jp-kerasgpu-facts')).toBeHidden();
  await rows.nth(3).getByRole('button', { name: 'Details of GPU 3' }).click();
  await expect(rows.nth(3).locator('.jp-kerasgpu-facts')).toBeVisible();
  await expect(rows.nth(3).locator('.jp-kerasgpu-facts')).toContainText(
    'P-state'
  );
  await expect(rows.nth(2).locator('.jp-kerasgpu-facts')).toBeHidden();
  await rows.nth(3).getByRole('button', { name: 'Details of GPU 3' }).click();
  await expect(rows.nth(3).locator('.jp-kerasgpu-facts')).toBeHidden();
  await panel.screenshot({
    path: path.join(
      process.env.KERASGPU_SCREENSHOTS_DIR ??
        path.resolve(__dirname, '..', 'screenshots'),
      'panel-8gpus.png'
    )
  });
});

test('a notebook holding GPU memory is named, linked and can be shut down', async ({
  page
}) => {
  await page.goto();
  await page.notebook.createNew();
  await page.notebook.setCell(0, 'code', 'import os; print(os.getpid())');
  await page.notebook.runCell(0, true);
  const output = await page.notebook.getCellTextOutput(0);
  const pid = parseInt((output ?? [''])[0].trim(), 10);
  expect(pid).toBeGreaterThan(1);
  // The notebook as the server's session knows it.
  const notebookPath: string = await page.evaluate(
    () =>
      (window as any).jupyterapp.shell.currentWidget.sessionContext.session.path
  );
  const notebookName = notebookPath.split('/').pop() as string;
  expect(notebookName).toMatch(/\.ipynb$/);
  // The replay now says this kernel's process holds ~24 GiB on GPU 0.
  setFake({
    state: 'load',
    procs: [
      { pid, used_mib: 24990, name: 'python3' },
      { pid: 4242, used_mib: 616, name: '/usr/bin/someone-elses-job' }
    ]
  });
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  const ours = panel.locator(`.jp-kerasgpu-process[data-pid="${pid}"]`);
  await expect(ours.locator('.jp-kerasgpu-process-link')).toHaveText(
    notebookName
  );
  await expect(ours).toContainText('24.4 GiB');
  await expect(ours).toContainText('python3');
  const theirs = panel.locator('.jp-kerasgpu-process[data-pid="4242"]');
  await expect(theirs).toContainText('outside this Jupyter server');
  await expect(theirs.getByRole('button')).toHaveCount(0);
  // TensorFlow in this notebook's kernel (the CPU wheel) sees none of the GPU.
  const tf = panel.locator('.jp-kerasgpu-tf');
  await expect(tf.locator('.jp-kerasgpu-tf-text')).toHaveText(
    /^TensorFlow in this notebook sees 0 of 1 GPU: .*CPU-only build$/,
    { timeout: 90_000 }
  );
  await expect(tf).toHaveAttribute('data-kind', 'problem');
  // The notebook's name is whole at the default sidebar width, on a line of its own.
  const link = ours.locator('.jp-kerasgpu-process-link');
  expect(
    await link.evaluate((a: HTMLElement) => a.scrollWidth <= a.clientWidth + 1)
  ).toBe(true);
  await expect(link).toBeVisible();
  // The status bar shows what this notebook's kernel holds on the GPU it uses.
  await expect(page.locator('.jp-kerasgpu-status')).toHaveText(
    'GPU 0: 24.4 GiB held · 100 % busy'
  );
  // The shutdown button shows its words whole at the default sidebar width.
  const shutdown = ours.getByRole('button', { name: /Shut down the kernel/ });
  await expect(shutdown).toHaveText('Shut down');
  const clipped = await shutdown.evaluate(
    (b: HTMLElement) => b.scrollWidth > b.clientWidth + 1
  );
  expect(clipped).toBe(false);

  await ours.getByRole('button', { name: /Shut down the kernel/ }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText(notebookName);
  await dialog.getByRole('button', { name: 'Shut Down' }).click();
  // The kernel is gone: the process is no longer this server's kernel.
  await expect(ours.getByRole('button')).toHaveCount(0, { timeout: 30_000 });
  const kernels = await page.evaluate(async () => {
    const app = (window as any).jupyterapp;
    await app.serviceManager.kernels.refreshRunning();
    return Array.from(app.serviceManager.kernels.running()).length;
  });
  expect(kernels).toBe(0);
});

test('screenshots of the panel in the light and dark themes', async ({
  page
}) => {
  await page.goto();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  await expect(panel.locator('.jp-kerasgpu-name')).toHaveText('NVIDIA H200');
  // Replay the real 10 Hz training trace, in a 30 s window, so the chart has a story.
  setFake({ state: 'trace' });
  await page.evaluate(() => {
    const app = (window as any).jupyterapp;
    const registry = app.pluginRegistry ?? app;
    registry._plugins.get('jupyterlab-kerasgpu:model').service.historySeconds =
      30;
  });
  await expect(panel.locator('.jp-kerasgpu-chart canvas')).toHaveCount(1);
  await page.waitForTimeout(15000);
  // The README's pictures are rewritten only on request (`make screenshots`): a test run
  // leaves the tracked docs/ untouched and writes to ui-tests/screenshots/.
  const docs = process.env.KERASGPU_SCREENSHOTS_DIR
    ? path.resolve(process.env.KERASGPU_SCREENSHOTS_DIR)
    : path.resolve(__dirname, '..', 'screenshots');
  await panel.screenshot({ path: path.join(docs, 'panel-light.png') });
  await page.theme.setDarkTheme();
  await page.waitForTimeout(1000);
  await panel.screenshot({ path: path.join(docs, 'panel-dark.png') });
  await page.theme.setLightTheme();
});

test('Ctrl+Shift+Y opens the panel, and screen readers get labelled meters', async ({
  page
}) => {
  await page.goto();
  await page.locator('#jp-main-dock-panel').click();
  await page.keyboard.press('Control+Shift+Y');
  const panel = page.locator('#jp-kerasgpu-panel');
  await expect(panel).toBeVisible();
  await expect(panel.locator('.jp-kerasgpu-name')).toHaveText('NVIDIA H200');
  // Screen readers get labelled meters and a region.
  await expect(page.getByRole('region', { name: 'GPU monitor' })).toBeVisible();
  await expect(
    panel.getByRole('meter', { name: 'Utilization' })
  ).toHaveAttribute('aria-valuetext', '100 %');
});

test('Ctrl+Shift+Y opens the panel from a notebook, in command mode and in edit mode', async ({
  page
}) => {
  await page.goto();
  await page.notebook.createNew();
  const panel = page.locator('#jp-kerasgpu-panel');
  const close = async () => {
    await page.sidebar.close('right');
    await expect(panel).toBeHidden();
  };
  // Command mode.
  await page.notebook.selectCells(0);
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+Shift+Y');
  await expect(panel).toBeVisible();
  await close();
  // Edit mode: the keys open the panel and type nothing into the cell.
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.type('x = 1');
  await page.keyboard.press('Control+Shift+Y');
  await expect(panel).toBeVisible();
  const source = await page.evaluate(() =>
    (
      window as any
    ).jupyterapp.shell.currentWidget.content.model.sharedModel.cells[0].getSource()
  );
  expect(source).toBe('x = 1');
});

test("the status bar tells a CPU-only TensorFlow kernel's truth, not the machine's 100 %", async ({
  page
}) => {
  test.setTimeout(180_000);
  setFake({ state: 'load' });
  await page.goto();
  await page.notebook.createNew();
  const item = page.locator('.jp-kerasgpu-status');
  // The H200 is 100 % busy and holds 25 GiB, but not for this notebook: its kernel's
  // TensorFlow is the CPU build, so the item says so instead of the machine's numbers.
  await expect(item).toHaveText('CPU only · TensorFlow sees no GPU', {
    timeout: 120_000
  });
  // Its tooltip: the one verdict (the panel's TensorFlow headline), not the GPU's readings.
  await expect(item).toHaveAttribute(
    'title',
    /^TensorFlow in this notebook sees 0 of 1 GPU/
  );
  await expect(item).not.toContainText('100 %');
});

test('the palette command opens the GPU panel', async ({ page }) => {
  await page.goto();
  await page.keyboard.press('Control+Shift+C');
  await page.locator('#modal-command-palette input').fill('Open the GPU Panel');
  await page.keyboard.press('Enter');
  await expect(page.locator('#jp-kerasgpu-panel')).toBeVisible();
});

test('without nvidia-smi the panel says so and what to do', async ({
  page,
  request
}) => {
  fs.unlinkSync(fakeLink);
  // The previous test's page may still be streaming (its nvidia-smi keeps
  // running); wait until the server itself finds no nvidia-smi.
  await expect
    .poll(
      async () =>
        (
          await (
            await request.get('http://localhost:8888/kerasgpu/api/v1/devices')
          ).json()
        ).status.code,
      { timeout: 30_000 }
    )
    .toBe('smi_not_found');
  await page.goto();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  await expect(panel.getByRole('alert')).toContainText(
    'nvidia-smi was not found'
  );
  await expect(panel.locator('.jp-kerasgpu-card')).toHaveCount(0);
  // It recovers by itself once the GPU tools are back.
  restoreFake();
  await expect(panel.locator('.jp-kerasgpu-name')).toHaveText('NVIDIA H200');
});

test("a driver that is not loaded is reported with nvidia-smi's reason", async ({
  page
}) => {
  setFake({ state: 'load', fail: 'no_driver' });
  await page.goto();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  await expect(
    page.locator('#jp-kerasgpu-panel').getByRole('alert')
  ).toContainText(/driver/i);
});

/** A small Keras fit on the CPU, watched: the training card shows what the kernel found. */
const CPU_FIT = [
  '%load_ext kerasgpu',
  '%gpu_watch on',
  'import numpy as np, keras',
  'x = np.random.rand(512, 8).astype("float32"); y = np.random.rand(512, 1).astype("float32")',
  'm = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])',
  'm.compile("sgd", "mse")',
  'm.fit(x, y, epochs=2, batch_size=32, verbose=0);'
].join('\n');

async function notebookWithCpuFit(page: any): Promise<void> {
  await page.notebook.createNew();
  await page.evaluate((source: string) => {
    const shared = (window as any).jupyterapp.shell.currentWidget.content.model
      .sharedModel;
    shared.cells[0].setSource(source);
    shared.insertCell(1, { cell_type: 'code', source: '%gpu_check' });
  }, CPU_FIT);
  await page.notebook.runCell(0, true);
  await page.notebook.runCell(1, true);
}

for (const [fault, fake, headline] of [
  [
    'CPU-only build and driver library missing',
    { state: 'load' },
    "TensorFlow in this notebook sees 0 of 1 GPU: the driver's libcuda.so.1 does not load; CPU-only build"
  ],
  [
    'no driver',
    { state: 'load', fail: 'no_driver' },
    'TensorFlow in this notebook sees no GPU: no NVIDIA driver; CPU-only build'
  ]
] as const) {
  test(`one verdict on the panel, status bar, training card and %gpu_check: ${fault}`, async ({
    page
  }) => {
    test.setTimeout(240_000);
    setFake(fake);
    await page.goto();
    await notebookWithCpuFit(page);
    await page.sidebar.openTab('jp-kerasgpu-panel');
    const panel = page.locator('#jp-kerasgpu-panel');
    const tf = panel.locator('.jp-kerasgpu-tf');
    await expect(tf.locator('.jp-kerasgpu-tf-text')).toHaveText(headline, {
      timeout: 90_000
    });
    // One box for the state: the verdict never says more GPUs than the panel above it.
    if (fault === 'no driver') {
      await expect(panel.getByRole('alert')).toHaveCount(1);
      await expect(tf).not.toContainText('nvidia-smi sees');
    }
    await tf.getByText('Why / Fix').click();
    const commands = (await tf.locator('pre code').textContent()) ?? '';
    const lines = commands.split('\n');
    expect(lines[0]).toBe('%pip uninstall -y tensorflow-cpu');
    expect(lines[1]).toBe('%pip install "tensorflow[and-cuda]==2.21.0"');
    await expect(
      tf.getByRole('button', { name: 'Insert GPU Verification Cell' })
    ).toBeVisible();
    // The status bar: "CPU only" (the kernel said so), and the same verdict as its tooltip.
    const item = page.locator('.jp-kerasgpu-status');
    await expect(item).toContainText('CPU only');
    await expect(item).toHaveAttribute(
      'title',
      `${headline}.\nFix, in this order:\n${commands}\nClick to open the GPU panel.`
    );
    // The training card: the same headline, the same commands as code.
    const training = panel.locator('.jp-kerasgpu-training-card');
    await expect(training.locator('.jp-kerasgpu-training-gpu')).toHaveText(
      'on the CPU',
      {
        timeout: 60_000
      }
    );
    if (fault !== 'no driver') {
      // (Without a driver the machine has no GPU to miss: the card names no GPU problem then.)
      const finding = training.locator('.jp-kerasgpu-training-finding');
      await expect(finding).toContainText(`${headline}.`);
      await expect(finding.locator('pre code')).toHaveText(commands);
    }
    // %gpu_check: the same headline and the same commands, in the same order.
    const check = page
      .locator('.jp-Cell')
      .nth(1)
      .locator('.jp-OutputArea-output');
    await expect(check).toContainText(`GPU check — ${headline}.`);
    await expect(check.locator('.kerasgpu-order pre')).toHaveText(commands);
  });
}

test('eight GPU rows, a notebook and its training card fit 1280x800 together', async ({
  page
}) => {
  test.setTimeout(240_000);
  await page.setViewportSize({ width: 1280, height: 800 });
  setFake({ state: 'load', gpus: 8 });
  await page.goto();
  await notebookWithCpuFit(page);
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  const card = panel.locator('.jp-kerasgpu-training-card');
  await expect(card).toBeVisible({ timeout: 60_000 });
  await expect(panel.locator('.jp-kerasgpu-tf-text')).toContainText(
    'sees 0 of 8 GPUs',
    {
      timeout: 90_000
    }
  );
  const rows = panel.locator('.jp-kerasgpu-card');
  await expect(rows).toHaveCount(8);
  // The shared driver line once, not on each row.
  await expect(panel.locator('.jp-kerasgpu-summary')).toContainText(
    '8 × NVIDIA H200 · driver'
  );
  // Taken before the checks: a failing layout leaves its picture.
  await shoot(page, 'panel-8gpu-notebook-light.png');
  for (const box of [
    ...(await Promise.all(
      [...Array(8).keys()].map(i => rows.nth(i).boundingBox())
    )),
    await card.boundingBox(),
    await page.locator('.jp-NotebookPanel').first().boundingBox()
  ]) {
    expect(box).not.toBeNull();
    expect(box!.y + Math.min(box!.height, 60)).toBeLessThanOrEqual(800);
  }
  for (let i = 0; i < 8; i++) {
    const box = (await rows.nth(i).boundingBox())!;
    expect(box.y + box.height, `row ${i}`).toBeLessThanOrEqual(800);
  }
  const cardBox = (await card.boundingBox())!;
  expect(cardBox.y + cardBox.height).toBeLessThanOrEqual(800);
  await page.theme.setDarkTheme();
  await shoot(page, 'panel-8gpu-notebook-dark.png');
  await page.theme.setLightTheme();
});

async function shoot(page: any, name: string): Promise<void> {
  const dir =
    process.env.KERASGPU_SCREENSHOTS_DIR ??
    path.resolve(__dirname, '..', 'screenshots');
  await page.screenshot({ path: path.join(dir, name) });
}

for (const gpus of [1, 2, 4] as const) {
  test(`${gpus} GPU(s) with a notebook and its training card at 1280x800, light and dark`, async ({
    page
  }) => {
    test.setTimeout(240_000);
    await page.setViewportSize({ width: 1280, height: 800 });
    setFake({ state: 'load', gpus });
    await page.goto();
    await notebookWithCpuFit(page);
    await page.sidebar.openTab('jp-kerasgpu-panel');
    const panel = page.locator('#jp-kerasgpu-panel');
    await expect(panel.locator('.jp-kerasgpu-training-card')).toBeVisible({
      timeout: 60_000
    });
    await expect(panel.locator('.jp-kerasgpu-card')).toHaveCount(gpus);
    await expect(panel.locator('.jp-kerasgpu-tf-text')).toContainText(
      'TensorFlow in this notebook',
      {
        timeout: 90_000
      }
    );
    await shoot(page, `panel-${gpus}gpu-notebook-light.png`);
    await page.theme.setDarkTheme();
    await shoot(page, `panel-${gpus}gpu-notebook-dark.png`);
    await page.theme.setLightTheme();
  });
}

for (const [gpus, width, height] of [
  [1, 1920, 1080],
  [4, 1920, 1080],
  [4, 1280, 800]
] as const) {
  test(`the dashboard fills ${width}x${height} with ${gpus} GPU(s), no scrolling`, async ({
    page
  }) => {
    await page.setViewportSize({ width, height });
    setFake({ state: 'load', gpus });
    await page.goto();
    await page.evaluate(() =>
      (window as any).jupyterapp.commands.execute('kerasgpu:open-dashboard')
    );
    const dash = page.locator('#jp-kerasgpu-dashboard-content');
    const cards = dash.locator('.jp-kerasgpu-card');
    await expect(cards).toHaveCount(gpus);
    await expect(dash.locator('.jp-kerasgpu-summary')).toContainText('busy');
    await page.waitForTimeout(1500); // the charts take their new height after a resize
    const tab = (await dash.boundingBox())!;
    for (let i = 0; i < gpus; i++) {
      const box = (await cards.nth(i).boundingBox())!;
      expect(box.y + box.height, `card ${i}`).toBeLessThanOrEqual(
        tab.y + tab.height + 1
      );
    }
    const chart = (await cards
      .first()
      .locator('.jp-kerasgpu-chart canvas')
      .first()
      .boundingBox())!;
    expect(chart.height).toBeGreaterThanOrEqual(gpus === 1 ? 300 : 120);
    if (gpus === 4) {
      // 2x2: the third card starts a second row under the first
      const [a, c] = [
        (await cards.nth(0).boundingBox())!,
        (await cards.nth(2).boundingBox())!
      ];
      expect(c.x).toBeCloseTo(a.x, 0);
      expect(c.y).toBeGreaterThan(a.y + a.height - 1);
    }
    await shoot(page, `dashboard-${gpus}gpu-${width}x${height}-light.png`);
    await page.theme.setDarkTheme();
    await shoot(page, `dashboard-${gpus}gpu-${width}x${height}-dark.png`);
    await page.theme.setLightTheme();
  });
}
