#!/usr/bin/env node
/**
 * Render cost of one GPU panel update in Chromium (a benchmark, not a test).
 *
 *     node bench/frontend.mjs [--updates 200] [--gpus 8] [--history 600] [--dashboard]
 *
 * --dashboard: the main-area dashboard (every GPU a full card with a tall chart) instead of
 * the sidebar panel (dense rows with sparklines from 8 GPUs).
 *
 * Starts a real `jupyter lab` (the .venv's, with the fake nvidia-smi replaying the H200 load
 * capture for --gpus GPUs, KERASGPU_BACKEND=smi, no token: galata's test configuration on a free
 * port), opens /lab in /usr/bin/chromium (playwright-core from ui-tests/node_modules, headless),
 * opens the GPU panel and waits for its cards. Then, in the page:
 *   - closes the page's real stream socket and stops the process poll, so only what this
 *     script feeds reaches the panel;
 *   - sets the model's history window to --history seconds and fills every GPU's series with
 *     that many 1 Hz points (10 minutes by default);
 *   - feeds --updates 'samples' messages (one reading of every GPU, 1 s apart) through the
 *     stream's own message signal, exactly as a websocket message arrives after parsing.
 * One update is timed from the emit until its microtasks ran (uPlot draws in a microtask) and a
 * forced layout returned (the DOM text changes laid out): synchronous main-thread work only,
 * not the compositor's paint.
 * Baseline, interleaved in the same page: the same update with the panel's listener disconnected
 * (the model's bookkeeping, the status bar item, the same flushes and layout). "panel" is the
 * difference: the cards and charts of every GPU redrawn.
 *
 * Target: one update under 2 ms for 8 GPUs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'ui-tests', 'package.json'));
const { chromium } = require('playwright-core');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const UPDATES = arg('updates', 200);
const GPUS = arg('gpus', 8);
const HISTORY = arg('history', 600);
const DASHBOARD = process.argv.includes('--dashboard');
const VIEW = DASHBOARD ? '#jp-kerasgpu-dashboard' : '#jp-kerasgpu-panel';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitFor(url, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      throw new Error(`jupyter lab exited (${proc.exitCode})`);
    }
    try {
      const r = await fetch(url);
      if (r.ok) {
        return;
      }
    } catch {
      // not up yet
    }
    await new Promise(r => setTimeout(r, 300));
  }
  throw new Error(`${url} did not answer in ${timeoutMs} ms`);
}

function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const q = p => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p95: q(0.95), max: s[s.length - 1] };
}

async function main() {
  const tmp = mkdtempSync(path.join(tmpdir(), 'kerasgpu-bench-fe-'));
  const port = await freePort();
  const config = path.join(tmp, 'bench_config.py');
  writeFileSync(
    config,
    [
      'from jupyterlab.galata import configure_jupyter_server',
      'configure_jupyter_server(c)',
      `c.ServerApp.port = ${port}`,
      "c.ServerApp.ip = '127.0.0.1'",
      'c.ServerApp.allow_root = True',
      `c.ServerApp.root_dir = ${JSON.stringify(tmp)}`,
      'c.KerasGPU.interval_ms = 1000',
      ''
    ].join('\n')
  );
  const venvBin = path.join(ROOT, '.venv', 'bin');
  const fakeDir = path.join(ROOT, 'python_ext', 'tests', 'fake_nvidia_smi');
  const env = {
    ...process.env,
    PATH: `${fakeDir}:${venvBin}:${process.env.PATH}`,
    KERASGPU_BACKEND: 'smi',
    FAKE_NVIDIA_SMI_STATE: 'load',
    FAKE_NVIDIA_SMI_GPUS: String(GPUS),
    JUPYTER_RUNTIME_DIR: path.join(tmp, 'runtime')
  };
  delete env.FAKE_NVIDIA_SMI_STATE_FILE;
  const lab = spawn(
    path.join(venvBin, 'jupyter'),
    ['lab', '--config', config, '--no-browser'],
    { env, stdio: ['ignore', 'ignore', 'pipe'] }
  );
  let labLog = '';
  lab.stderr.on('data', d => {
    labLog = (labLog + d).slice(-4000);
  });
  const base = `http://127.0.0.1:${port}`;
  let browser;
  try {
    await waitFor(`${base}/lab`, 90_000, lab);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update'
      ]
    });
    const page = await browser.newPage({
      viewport: { width: 1400, height: 1000 }
    });
    const errors = [];
    page.on('pageerror', e => errors.push(String(e)));
    await page.goto(`${base}/lab`);
    await page.waitForFunction(() => window.jupyterapp !== undefined, null, {
      timeout: 90_000
    });
    await page.evaluate(() => window.jupyterapp.restored);
    await page.evaluate(() =>
      window.jupyterapp.commands.execute('kerasgpu:open-panel')
    );
    if (DASHBOARD) {
      await page.evaluate(() =>
        window.jupyterapp.commands.execute('kerasgpu:open-dashboard')
      );
    }
    await page.waitForFunction(
      ([n, view]) =>
        document.querySelectorAll(`${view} .jp-kerasgpu-card canvas`).length >=
        n,
      [GPUS, VIEW],
      { timeout: 60_000 }
    );
    const result = await page.evaluate(
      async ({ updates, history, dashboard }) => {
        const app = window.jupyterapp;
        const registry = app.pluginRegistry ?? app;
        const model = registry._plugins.get(
          'jupyterlab-kerasgpu:model'
        ).service;
        let panel = null;
        for (const w of app.shell.widgets('right')) {
          if (w.id === 'jp-kerasgpu-panel') panel = w;
        }
        for (const w of app.shell.widgets('left')) {
          if (w.id === 'jp-kerasgpu-panel') panel = w;
        }
        if (dashboard) {
          for (const w of app.shell.widgets('main')) {
            if (w.id === 'jp-kerasgpu-dashboard') panel = w.content;
          }
        }
        if (!model || !panel) throw new Error('GPU model or panel not found');
        const stream = model._stream;
        stream._close(); // the real socket: only what we feed reaches the panel
        model._processPoll.stop();
        model.historySeconds = history;
        const devices = model.devices;
        const templates = devices.map(d => ({ ...model.latest(d.index) }));
        const width = panel.node.querySelector('canvas').clientWidth;

        // 10 minutes of 1 Hz history per GPU.
        let t = Math.floor(Date.now() / 1000) - history;
        for (const d of devices) {
          const s = model.series(d.index);
          s.t.length = s.util.length = s.mem.length = 0;
          for (let i = 0; i < history; i++) {
            s.t.push(t + i);
            s.util.push(50 + 50 * Math.sin((i + d.index) / 17));
            s.mem.push(20 + 15 * Math.sin((i + 3 * d.index) / 29));
          }
        }
        t += history;
        const message = k => ({
          type: 'samples',
          samples: templates.map((s, j) => ({
            ...s,
            timestamp: t + k,
            utilization_gpu: Math.round(50 + 50 * Math.sin((k + j) / 7)),
            memory_used_mib: s.memory_total_mib
              ? Math.round(s.memory_total_mib * (0.2 + 0.1 * Math.sin(k / 11)))
              : s.memory_used_mib,
            power_draw_w:
              s.power_draw_w === null ? null : s.power_draw_w + (k % 10),
            temperature_c: s.temperature_c === null ? null : 40 + (k % 20)
          }))
        });
        const parts = { emit: [], draw: [], layout: [] };
        const one = async (k, record) => {
          const msg = message(k);
          const t0 = performance.now();
          stream._message.emit(msg);
          const t1 = performance.now();
          await Promise.resolve(); // uPlot commits its draw in a microtask
          await Promise.resolve();
          const t2 = performance.now();
          void panel.node.offsetHeight; // forced style + layout of the changed text
          const t3 = performance.now();
          if (record) {
            parts.emit.push(t1 - t0);
            parts.draw.push(t2 - t1);
            parts.layout.push(t3 - t2);
          }
          return t3 - t0;
        };
        const full = [];
        const baseline = [];
        const warmup = 20;
        for (let k = 0; k < 2 * (updates + warmup); k++) {
          const withPanel = k % 2 === 0;
          if (!withPanel) model.changed.disconnect(panel._onChange, panel);
          const ms = await one(k, withPanel && k >= 2 * warmup);
          if (!withPanel) model.changed.connect(panel._onChange, panel);
          if (k >= 2 * warmup) (withPanel ? full : baseline).push(ms);
        }
        return {
          full,
          baseline,
          parts,
          gpus: devices.length,
          points: model.series(devices[0].index).t.length,
          cards: panel.node.querySelectorAll('.jp-kerasgpu-card').length,
          compact: panel.node.querySelector('.jp-kerasgpu-compact') !== null,
          chartWidth: width,
          resolution: performance.now() % 1 !== 0
        };
      },
      { updates: UPDATES, history: HISTORY, dashboard: DASHBOARD }
    );
    const version = browser.version();
    const f = stats(result.full);
    const b = stats(result.baseline);
    const diff = result.full.map((v, i) => v - result.baseline[i]);
    const d = stats(diff);
    console.log(
      `Chromium ${version} headless, ${cpus().length} CPUs; ${DASHBOARD ? 'dashboard' : 'sidebar'}: ` +
        `${result.gpus} GPUs (${result.cards} cards` +
        `${result.compact ? ', compact' : ''}, charts ${result.chartWidth} px wide), ` +
        `${result.points} points of history per GPU; ${UPDATES} updates each, interleaved`
    );
    const row = (name, s, ratio) =>
      console.log(
        `${name.padEnd(36)}${s.median.toFixed(3).padStart(9)}${s.p95.toFixed(3).padStart(9)}` +
          `${s.max.toFixed(3).padStart(9)}${ratio.padStart(9)}`
      );
    console.log(
      `${'ms per update'.padEnd(36)}${'median'.padStart(9)}${'p95'.padStart(9)}${'max'.padStart(9)}${'x base'.padStart(9)}`
    );
    row('baseline (panel not listening)', b, '1.0x');
    row('update with the panel', f, `${(f.median / b.median).toFixed(1)}x`);
    row('panel alone (pairwise difference)', d, '');
    const mean = a => a.reduce((x, y) => x + y, 0) / a.length;
    console.log(
      `with the panel, mean ms: emit (model, DOM text, uPlot setData) ${mean(result.parts.emit).toFixed(2)}, ` +
        `uPlot draw (microtask) ${mean(result.parts.draw).toFixed(2)}, style+layout ${mean(result.parts.layout).toFixed(2)}`
    );
    console.log(
      `target: one update < 2 ms for 8 GPUs: median ${f.median.toFixed(2)} ms, p95 ${f.p95.toFixed(2)} ms`
    );
    if (errors.length) {
      console.log(`page errors: ${errors.join('; ')}`);
    }
  } catch (err) {
    console.error(labLog);
    throw err;
  } finally {
    await browser?.close();
    lab.kill('SIGINT');
    await new Promise(r => {
      const timer = setTimeout(() => {
        lab.kill('SIGKILL');
        r();
      }, 10_000);
      lab.on('exit', () => {
        clearTimeout(timer);
        r();
      });
    });
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
