import { expect, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

/**
 * Kernels on another host, for real: this JupyterLab has no nvidia-smi and runs its kernels in a
 * Jupyter Enterprise Gateway on loopback (start-gateway.sh, gateway.config.js), whose "gpu"
 * kernels see a node with two H200s (the fake nvidia-smi replaying real H200 captures) and whose
 * "bare" kernels lack kerasgpu. The panel shows the GPUs where the notebook's kernel runs,
 * labelled with that host, its processes named after the notebook, while the server's own
 * telemetry says nvidia-smi was not found.
 */
const dir = process.env.KERASGPU_UI_GATEWAY_DIR!;
const fake = path.resolve(
  __dirname,
  '..',
  '..',
  '..',
  'python_ext',
  'tests',
  'fake_nvidia_smi',
  'nvidia-smi'
);

function kernelFake(state: Record<string, unknown>): void {
  fs.writeFileSync(path.join(dir, 'kernel-state.json'), JSON.stringify(state));
}

function serverFake(state: Record<string, unknown>): void {
  fs.writeFileSync(path.join(dir, 'server-state.json'), JSON.stringify(state));
}

test.use({ autoGoto: false });

// The server starts without nvidia-smi; a test may give it one (a retry starts from scratch:
// the fake fails its running stream, and the server finds no nvidia-smi when it tries again).
test.beforeEach(() => {
  fs.rmSync(path.join(dir, 'server-bin', 'nvidia-smi'), { force: true });
  serverFake({ fail: 'no_driver' });
});

test("the panel shows the GPUs of the kernel's host, not the server's (screenshots)", async ({
  page
}) => {
  await page.setViewportSize({ width: 1200, height: 760 });
  kernelFake({ state: 'load', gpus: 2 });
  await page.goto();
  await page.sidebar.openTab('jp-kerasgpu-panel');
  const panel = page.locator('#jp-kerasgpu-panel');
  const serverState = panel.locator('.jp-kerasgpu-state');
  // The server's own host has no NVIDIA driver, and says so.
  await expect(serverState).toContainText('nvidia-smi was not found');

  // A notebook whose kernel runs in the gateway, where the H200s are.
  const notebook = (await page.notebook.createNew(undefined, {
    kernel: 'gpu'
  }))!;
  await page.notebook.setCell(
    0,
    'code',
    'import os, socket; print(os.getpid(), socket.gethostname())'
  );
  await page.notebook.runCell(0);
  const [pid, host] = (await page.notebook.getCellTextOutput(0))![0]
    .trim()
    .split(' ');
  // Its kernel holds memory on GPU 0; another process of that host on GPU 1.
  kernelFake({
    state: 'load',
    gpus: 2,
    procs: [
      { pid: Number(pid), used_mib: 25706, name: 'python3', gpu: 0 },
      { pid: 4242, used_mib: 20480, name: 'python3', gpu: 1 }
    ]
  });

  const section = panel.locator('.jp-kerasgpu-host');
  await expect(section).toHaveAttribute('data-show', 'kernel');
  await expect(section.locator('.jp-kerasgpu-host-title')).toHaveText(
    `GPUs of ${host}, where this notebook's kernel runs`
  );
  const gpus = section.locator('.jp-kerasgpu-host-gpu');
  await expect(gpus).toHaveCount(2);
  await expect(gpus.nth(0)).toContainText('NVIDIA H200');
  await expect(gpus.nth(0)).toContainText('25.1 GiB / 140.4 GiB');
  await expect(gpus.nth(0)).toContainText('100 % busy');
  await expect(gpus.nth(0)).toContainText('this kernel holds 25.1 GiB');
  // The kernel host's processes: this notebook's kernel by the notebook's name, then the rest.
  const procs = section.getByRole('region', { name: `Processes on ${host}` });
  const rows = procs.locator('.jp-kerasgpu-host-process');
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(0)).toHaveText(
    `${notebook}GPU 0 · 25.1 GiB · this notebook's kernel, pid ${pid}`
  );
  await expect(rows.nth(1)).toHaveText(
    "python3GPU 1 · 20.0 GiB · pid 4242 · not this notebook's"
  );
  // Nothing of the kernel's host is in the server's own process list.
  await expect(panel.locator('.jp-kerasgpu-process')).toHaveCount(0);
  // The server's own "no driver" is said once, as what it is: not a problem for this notebook
  // (its alarm box with "install the NVIDIA driver" is not shown).
  await expect(serverState).toBeHidden();
  await expect(section.locator('.jp-kerasgpu-host-note')).toHaveText(
    `The Jupyter server itself reads no GPU (nvidia-smi was not found on PATH, so no NVIDIA driver seems to be installed on this machine), and needs none: this notebook's kernel runs on ${host}.`
  );
  // The status bar tells this notebook's truth: its kernel's memory on that host's GPU, not
  // the server's "no NVIDIA driver".
  await expect(page.locator('.jp-kerasgpu-status')).toHaveText(
    `GPU 0 on ${host}: 25.1 GiB held · 100 % busy`
  );
  // Nor does the server guess at the TensorFlow of a kernel whose Python is elsewhere.
  await expect(panel.locator('.jp-kerasgpu-tf')).toContainText(
    "This notebook's kernel runs in a Jupyter gateway"
  );

  // The README's picture is rewritten only on request (`make screenshots`).
  const shots = process.env.KERASGPU_SCREENSHOTS_DIR
    ? path.resolve(process.env.KERASGPU_SCREENSHOTS_DIR)
    : path.resolve(__dirname, '..', '..', 'screenshots');
  await page.screenshot({ path: path.join(shots, 'panel-gateway.png') });

  // A kernel whose environment lacks the package: the panel says what to install, where.
  await page.notebook.createNew(undefined, { kernel: 'bare' });
  await expect(section.locator('.jp-kerasgpu-host-hint')).toHaveText(
    "Install jupyterlab-kerasgpu in the kernel's environment to see its GPUs " +
      '(%pip install jupyterlab-kerasgpu in the notebook, then restart the kernel).'
  );
  await page.notebook.close(true);

  // The server gets a GPU of its own (one of the kernel host's two): for the notebook, the
  // kernel host's GPUs take the place of the server's card, which is not that kernel's.
  serverFake({ state: 'idle', gpus: 1 });
  fs.symlinkSync(fake, path.join(dir, 'server-bin', 'nvidia-smi'));
  await page.notebook.activate(notebook);
  const serverCards = panel.locator('.jp-kerasgpu-card');
  await expect(serverCards).toHaveCount(1);
  await expect(serverState).not.toContainText('nvidia-smi was not found');
  await expect(section).toHaveAttribute('data-show', 'kernel');
  await expect(serverCards).toBeHidden();
  await expect(section.locator('.jp-kerasgpu-host-note')).toHaveText(
    `The Jupyter server's own GPU is not shown: this notebook's kernel runs on ${host}.`
  );
  await expect(gpus).toHaveCount(2);

  // The server sees both GPUs of the kernel's host: the same machine, so the server's cards.
  serverFake({ fail: 'no_driver' });
  await expect(serverCards).toHaveCount(0);
  serverFake({ state: 'idle', gpus: 2 });
  await expect(serverCards).toHaveCount(2);
  await expect(serverCards.first()).toBeVisible();
  await expect(section).toHaveAttribute('data-show', 'server');
  await expect(section).toHaveText('');
});
