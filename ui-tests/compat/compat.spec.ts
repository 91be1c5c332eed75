import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { expect, Page, test } from '@playwright/test';

/**
 * The extension on the oldest supported JupyterLab and on Notebook 7: the page loads with no
 * console errors, the GPU panel opens (Ctrl+Shift+Y) and shows the H200 replay, the palette has
 * the GPU commands. KERASGPU_COMPAT_ENVS names the folder of environments (scripts/compat_envs.sh).
 */

const ENVS = process.env.KERASGPU_COMPAT_ENVS ?? '';
const FAKE_SMI = path.resolve(
  __dirname,
  '..',
  '..',
  'python_ext',
  'tests',
  'fake_nvidia_smi'
);
const TOKEN = 'kerasgpu-compat';

interface IServer {
  proc: ChildProcess;
  url: string;
  root: string;
  log: string[];
}

async function startServer(
  env: string,
  app: 'lab' | 'notebook',
  port: number
): Promise<IServer> {
  const bin = path.join(ENVS, env, 'bin');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `kerasgpu-${env}-`));
  fs.writeFileSync(
    path.join(root, 'compat.ipynb'),
    JSON.stringify({
      cells: [
        {
          cell_type: 'code',
          metadata: {},
          source: ['import os'],
          outputs: [],
          execution_count: null
        }
      ],
      metadata: {
        kernelspec: {
          name: 'python3',
          display_name: 'Python 3',
          language: 'python'
        }
      },
      nbformat: 4,
      nbformat_minor: 5
    })
  );
  const args = [
    app,
    '--no-browser',
    `--port=${port}`,
    '--ServerApp.ip=127.0.0.1',
    `--IdentityProvider.token=${TOKEN}`,
    `--ServerApp.root_dir=${root}`,
    '--ServerApp.open_browser=False',
    '--LabApp.news_url=None',
    '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'
  ];
  if (process.getuid?.() === 0) {
    args.push('--allow-root');
  }
  const log: string[] = [];
  const proc = spawn(path.join(bin, 'jupyter'), args, {
    cwd: root,
    env: {
      ...process.env,
      PATH: `${FAKE_SMI}:${bin}:${process.env.PATH}`,
      FAKE_NVIDIA_SMI_STATE: 'load',
      KERASGPU_BACKEND: 'smi',
      JUPYTER_CONFIG_DIR: path.join(root, '.jupyter'),
      JUPYTER_DATA_DIR: path.join(root, '.local'),
      JUPYTER_PREFER_ENV_PATH: '1'
    }
  });
  proc.stdout?.on('data', d => log.push(String(d)));
  proc.stderr?.on('data', d => log.push(String(d)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 120; i++) {
    try {
      const r = await fetch(`${url}/api/status?token=${TOKEN}`);
      if (r.ok) {
        return { proc, url, root, log };
      }
    } catch {
      // not up yet
    }
    if (proc.exitCode !== null) {
      break;
    }
    await new Promise(r => setTimeout(r, 500));
  }
  proc.kill('SIGTERM');
  throw new Error(`${app} in ${env} did not start:\n${log.join('')}`);
}

function stopServer(server: IServer | null): void {
  if (server && server.proc.exitCode === null) {
    server.proc.kill('SIGTERM');
  }
}

/** Console errors and uncaught page errors, as a user's browser console would show them. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', msg => {
    if (msg.type() === 'error') {
      errors.push(msg.text());
    }
  });
  page.on('pageerror', err => errors.push(`${err}\n${err.stack ?? ''}`));
  return errors;
}

/**
 * Errors that are not the extension's: the test set-up's, and one that Notebook 7.6.5 logs on
 * every notebook page with no extension installed at all (checked with this package uninstalled).
 */
const setUpNoise = (text: string) =>
  /^TypeError: Cannot read properties of undefined \(reading 'schema'\)[\s\S]*notebook_core/.test(
    text
  ) ||
  /favicon|Failed to load resource: the server responded with a status of 404|lab\/api\/(news|update)/i.test(
    text
  );

const cases: {
  env: string;
  app: 'lab' | 'notebook';
  port: number;
  page: string;
}[] = [
  { env: 'lab40', app: 'lab', port: 8911, page: '/lab/tree/compat.ipynb' },
  { env: 'nb7', app: 'notebook', port: 8912, page: '/notebooks/compat.ipynb' }
];

for (const c of cases) {
  test.describe(`${c.env}`, () => {
    let server: IServer | null = null;
    test.skip(
      !ENVS,
      'KERASGPU_COMPAT_ENVS is not set (make test-compat sets it)'
    );
    test.beforeAll(async () => {
      server = await startServer(c.env, c.app, c.port);
    });
    test.afterAll(() => stopServer(server));

    test(`the GPU panel shows the H200 with no console errors (${c.env})`, async ({
      page
    }) => {
      const errors = watchErrors(page);
      await page.goto(`${server!.url}${c.page}?token=${TOKEN}`);
      // The notebook is open and its kernel started.
      await expect(page.locator('.jp-Notebook .jp-Cell').first()).toBeVisible({
        timeout: 60_000
      });
      // The notebook tools are in the notebook toolbar's GPU menu (JupyterLab 4.0 names items by
      // title only, no data-jp-item-name), which lists them by name.
      const toolbar = page.locator('.jp-NotebookPanel-toolbar');
      const gpuMenu = toolbar.getByRole('button', { name: 'GPU tools' });
      await expect(gpuMenu).toBeVisible();
      await gpuMenu.click();
      const menu = page.locator('#jp-kerasgpu-gpu-menu');
      await expect(
        menu.getByRole('menuitem', { name: /Insert GPU Verification Cell/ })
      ).toBeVisible();
      await expect(
        menu.getByRole('menuitem', { name: 'Distribute This Notebook' })
      ).toBeVisible();
      await page.keyboard.press('Escape');
      await page.locator('.jp-Notebook').click();
      await page.keyboard.press('Escape');
      await page.keyboard.press('Control+Shift+Y');
      const panel = page.locator('#jp-kerasgpu-panel');
      await expect(panel).toBeVisible();
      await expect(panel.locator('.jp-kerasgpu-name').first()).toHaveText(
        'NVIDIA H200'
      );
      await expect(panel).toContainText('GiB');
      const real = errors.filter(e => !setUpNoise(e));
      expect(real, real.join('\n')).toEqual([]);
      // The server log has no traceback of ours.
      expect(server!.log.join('')).not.toMatch(
        /kerasgpu[\s\S]{0,200}Traceback|Traceback[\s\S]{0,2000}kerasgpu/
      );
    });
  });
}
