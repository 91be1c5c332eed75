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
});

test('the palette command opens the GPU panel', async ({ page }) => {
  await page.goto();
  await page.keyboard.press('Control+Shift+C');
  await page.locator('#modal-command-palette input').fill('Open the GPU Panel');
  await page.keyboard.press('Enter');
  await expect(page.locator('#jp-kerasgpu-panel')).toBeVisible();
});

test('without nvidia-smi the panel says so and what to do', async ({
  page
}) => {
  fs.unlinkSync(fakeLink);
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

