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
  await expect(facts).toContainText('Mem bus24 %');
  await expect(facts).toContainText('Mem clock3201 MHz');
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
  await expect(theirs).toContainText("not this server's");
  await expect(theirs.getByRole('button')).toHaveCount(0);
  // TensorFlow in this notebook's kernel (the CPU wheel) sees none of the GPU.
  const tf = panel.locator('.jp-kerasgpu-tf');
  await expect(tf).toContainText(/TensorFlow 2\.\d+\.\d+ sees 0 of 1 GPU/, {
    timeout: 90_000
  });
  await expect(tf).toHaveAttribute('data-kind', 'problem');
  await expect(tf.locator('.jp-kerasgpu-tf-problem')).not.toBeEmpty();
  // The status bar shows what this notebook's kernel holds on the GPU it uses.
  await expect(page.locator('.jp-kerasgpu-status')).toHaveText(
    'GPU 0: 24.4 GiB held · 100 % busy'
  );
  // The shutdown button shows its words whole at the default sidebar width.
  const shutdown = ours.getByRole('button', { name: /Shut down the kernel/ });
  await expect(shutdown).toHaveText('Shut down kernel');
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
  await expect(item).toHaveAttribute('title', /runs on the CPU/);
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
