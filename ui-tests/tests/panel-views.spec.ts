import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

/**
 * The panel as it is looked at: a history chart that grows with the panel (time
 * axis, legend, values under the pointer), 1, 4 and 8 GPUs narrow and wide, and
 * the main-area dashboard. The fake nvidia-smi replays the real 10 Hz H200
 * training trace (each further GPU from another point of it).
 */
const fakeBin = path.resolve(__dirname, '..', '.fake-bin');
const shots = process.env.KERASGPU_SCREENSHOTS_DIR
  ? path.resolve(process.env.KERASGPU_SCREENSHOTS_DIR)
  : path.resolve(__dirname, '..', 'screenshots');

function setFake(state: Record<string, unknown>): void {
  fs.writeFileSync(path.join(fakeBin, 'state'), JSON.stringify(state));
}

test.use({ autoGoto: false });

test.afterEach(() => {
  setFake({ state: 'load' });
});

/** A short history window so a few seconds of the trace fill the chart. */
async function shortHistory(page: IJupyterLabPageFixture, seconds: number) {
  await page.evaluate(s => {
    const app = (window as any).jupyterapp;
    const registry = app.pluginRegistry ?? app;
    registry._plugins.get('jupyterlab-kerasgpu:model').service.historySeconds =
      s;
  }, seconds);
}

/** Drags the right sidebar's edge so the panel is `width` px wide. */
async function sidebarWidth(page: IJupyterLabPageFixture, width: number) {
  const stack = page.locator('#jp-right-stack');
  const box = (await stack.boundingBox())!;
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x - 1, y);
  await page.mouse.down();
  await page.mouse.move(box.x - 1 - (width - box.width), y, { steps: 8 });
  await page.mouse.up();
  await expect
    .poll(async () => Math.round((await stack.boundingBox())!.width))
    .toBeGreaterThan(width - 20);
}

async function canvasHeight(page: IJupyterLabPageFixture, nth = 0) {
  const canvas = page.locator('#jp-kerasgpu-panel .jp-kerasgpu-chart canvas');
  await expect(canvas.nth(nth)).toBeVisible();
  return (await canvas.nth(nth).boundingBox())!.height;
}

test('the history chart grows with the panel, has a legend, and gives values under the pointer', async ({
  page
}) => {
  await page.setViewportSize({ width: 1440, height: 900 });
  // The input-starved phase of the trace: a busy line that comes and goes.
  setFake({ state: 'trace:starving' });
  await page.goto();
  await shortHistory(page, 20);
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  const legend = panel.locator('.jp-kerasgpu-legend');
  // Without the pointer the legend gives the newest values, named and colored like the lines.
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText('now');
  await expect(legend).toContainText(/Utilization \d+ %/);
  await expect(legend).toContainText(/Memory \d+ % · [\d.]+ GiB/);
  // PCIe / NVLink: nvidia-smi cannot measure them, and the panel says so (and why).
  const pcie = panel
    .locator('.jp-kerasgpu-facts dd.jp-kerasgpu-unmeasured')
    .first();
  await expect(pcie).toHaveText('needs NVML');
  await expect(pcie).toHaveAttribute(
    'title',
    /nvidia-smi does not report PCIe/
  );
  await page.waitForTimeout(12000);
  const narrow = await canvasHeight(page);
  await panel.screenshot({ path: path.join(shots, 'panel-1gpu-narrow.png') });

  await sidebarWidth(page, 560);
  await expect.poll(() => canvasHeight(page)).toBeGreaterThan(narrow + 40);
  // Under the pointer: the time of that reading and its values.
  const canvas = panel.locator('.jp-kerasgpu-chart canvas').first();
  const box = (await canvas.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText(
    /\d{1,2}:\d{2}:\d{2}/
  );
  await expect(legend).toContainText(/Utilization \d+ %/);
  await panel.screenshot({ path: path.join(shots, 'panel-1gpu-wide.png') });
  // An empty part of the chart (an hour's window, a few minutes of readings): no reading
  // there, so the legend keeps the newest values instead of showing the oldest reading.
  await shortHistory(page, 3600);
  await page.mouse.move(box.x + box.width * 0.04, box.y + box.height / 2);
  await page.mouse.move(box.x + box.width * 0.05, box.y + box.height / 2);
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText('now');
  await shortHistory(page, 20);
  // Keyboard: the chart takes focus, arrows step through the readings.
  await page.mouse.move(box.x + box.width / 2, box.y - 200);
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText('now');
  // Screen readers get the chart as one labelled image that says how to step through it.
  await panel.getByRole('img', { name: /arrow keys step through/ }).focus();
  await page.keyboard.press('Shift+ArrowLeft');
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText(
    /\d{1,2}:\d{2}:\d{2}/
  );
  await page.keyboard.press('Escape');
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText('now');
  // Pointer gone: back to the newest values.
  await page.mouse.move(box.x + box.width / 2, box.y - 200);
  await expect(legend.locator('.jp-kerasgpu-legend-when')).toHaveText('now');
});

test('four GPUs as one-line rows, narrow and wide, in the light and dark themes', async ({
  page
}) => {
  await page.setViewportSize({ width: 1440, height: 1400 });
  setFake({ state: 'trace', gpus: 4 });
  await page.goto();
  await shortHistory(page, 20);
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  // From 2 GPUs the sidebar shows a row per GPU (a sparkline, no legend); the dashboard has full cards.
  await expect(panel.locator('.jp-kerasgpu-row')).toHaveCount(4);
  await expect(panel.locator('.jp-kerasgpu-chart canvas')).toHaveCount(4);
  await expect(panel.locator('.jp-kerasgpu-legend')).toHaveCount(0);
  // The GPUs replay different points of the trace: not four copies of one reading.
  await page.waitForTimeout(8000);
  const utils = await panel
    .locator('.jp-kerasgpu-meter-util .jp-kerasgpu-meter-value')
    .allTextContents();
  const mems = await panel
    .locator('.jp-kerasgpu-meter-memory .jp-kerasgpu-meter-value')
    .allTextContents();
  expect(new Set(utils.map((u, i) => u + mems[i])).size).toBeGreaterThan(1);
  await panel.screenshot({ path: path.join(shots, 'panel-4gpus-narrow.png') });
  await sidebarWidth(page, 560);
  await page.waitForTimeout(1500);
  // Wider: still one line per GPU, the sparklines take the room.
  const rowBox = (await panel
    .locator('.jp-kerasgpu-row')
    .first()
    .boundingBox())!;
  expect(rowBox.height).toBeLessThan(40);
  const spark = (await panel
    .locator('.jp-kerasgpu-row .jp-kerasgpu-chart canvas')
    .first()
    .boundingBox())!;
  expect(spark.width).toBeGreaterThan(150);
  await panel.screenshot({ path: path.join(shots, 'panel-4gpus-wide.png') });
  await page.theme.setDarkTheme();
  await page.waitForTimeout(1500);
  await panel.screenshot({ path: path.join(shots, 'panel-4gpus-dark.png') });
  await page.theme.setLightTheme();
});

test('the dashboard opens in the main area, with every GPU as a full card in a grid', async ({
  page
}) => {
  await page.setViewportSize({ width: 1600, height: 1000 });
  setFake({ state: 'trace', gpus: 8 });
  await page.goto();
  await shortHistory(page, 20);
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const sidebar = page.locator('#jp-kerasgpu-panel');
  // Eight GPUs are dense rows in the sidebar; the dashboard has room for full cards.
  await expect(sidebar.locator('.jp-kerasgpu-row')).toHaveCount(8);
  await sidebarWidth(page, 560);
  await page.waitForTimeout(6000);
  await sidebar.screenshot({ path: path.join(shots, 'panel-8gpus-wide.png') });
  await sidebar.getByRole('button', { name: 'Open the GPU dashboard' }).click();
  const dashboard = page.locator('#jp-kerasgpu-dashboard');
  await expect(dashboard).toBeVisible();
  await expect(
    page.locator('.lm-TabBar-tab', { hasText: 'GPU Dashboard' })
  ).toHaveCount(1);
  const cards = dashboard.locator('.jp-kerasgpu-card');
  await expect(cards).toHaveCount(8);
  await expect(dashboard.locator('.jp-kerasgpu-row')).toHaveCount(0);
  await expect(dashboard.locator('.jp-kerasgpu-legend')).toHaveCount(8);
  // A grid: at least three columns at 1600 px (the sidebar closed: the dashboard replaces it).
  await page.sidebar.close('right');
  const xs = new Set<number>();
  for (let i = 0; i < 8; i++) {
    xs.add(Math.round((await cards.nth(i).boundingBox())!.x));
  }
  expect(xs.size).toBeGreaterThanOrEqual(3);
  // Its charts are far taller than the sidebar's 20 px sparklines (eight share the tab's
  // height: 4 x 2 cards with no scrolling).
  const chart = dashboard.locator('.jp-kerasgpu-chart canvas').first();
  await expect(chart).toBeVisible();
  expect((await chart.boundingBox())!.height).toBeGreaterThan(60);
  await page.waitForTimeout(6000);
  await dashboard.screenshot({ path: path.join(shots, 'dashboard-8gpus.png') });

  // The palette command brings the same tab forward instead of opening a second one.
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('kerasgpu:open-dashboard')
  );
  await expect(
    page.locator('.lm-TabBar-tab', { hasText: 'GPU Dashboard' })
  ).toHaveCount(1);
  // Closing the tab stops it for good (the sidebar still works).
  await page
    .locator('.lm-TabBar-tab', { hasText: 'GPU Dashboard' })
    .locator('.lm-TabBar-tabCloseIcon')
    .click();
  await expect(dashboard).toHaveCount(0);
});
