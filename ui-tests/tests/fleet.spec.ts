import { expect, test } from '@jupyterlab/galata';
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';

/**
 * The GPU Fleet view against a real Prometheus (Debian's `prometheus`), started here on the
 * port the test server's `c.KerasGPU.prometheus_url` names (jupyter_server_test_config.py),
 * scraping this JupyterLab's own /kerasgpu/metrics (the H200 replay under load) and a
 * loopback exposition with DCGM exporter's and the nvidia-smi exporter's names.
 */
const PROM_PORT = Number(process.env.KERASGPU_UI_PROMETHEUS_PORT || 19091);

const DCGM = [0, 1]
  .map(gpu => {
    const labels =
      `gpu="${gpu}",UUID="GPU-5a1c0e2b-7f3d-4e11-9a2b-0c6d8e1f2a3${gpu}",` +
      `device="nvidia${gpu}",modelName="NVIDIA A100-SXM4-80GB",Hostname="dgx-a100-07"` +
      (gpu === 1
        ? ',container="train",namespace="team-a",pod="bert-finetune-0"'
        : '');
    const [util, used, free] = gpu === 0 ? [0, 0, 81050] : [87, 60000, 21050];
    return [
      `DCGM_FI_DEV_GPU_UTIL{${labels}} ${util}`,
      `DCGM_FI_DEV_FB_USED{${labels}} ${used}`,
      `DCGM_FI_DEV_FB_FREE{${labels}} ${free}`,
      `DCGM_FI_DEV_FB_RESERVED{${labels}} 870`
    ].join('\n');
  })
  .join('\n');

const RTX = [
  'nvidia_smi_gpu_info{name="NVIDIA GeForce RTX 4090",uuid="df6e7a7c-7314-46f8-abc4-b88b36dcf3aa",index="0"} 1',
  'nvidia_smi_utilization_gpu_ratio{uuid="df6e7a7c-7314-46f8-abc4-b88b36dcf3aa"} 0.03',
  'nvidia_smi_memory_used_bytes{uuid="df6e7a7c-7314-46f8-abc4-b88b36dcf3aa"} 4.718592e+08',
  'nvidia_smi_memory_total_bytes{uuid="df6e7a7c-7314-46f8-abc4-b88b36dcf3aa"} 2.5757220864e+10'
].join('\n');

function which(exe: string): string | null {
  try {
    return execFileSync('which', [exe]).toString().trim() || null;
  } catch {
    return null;
  }
}

async function exposition(): Promise<http.Server> {
  const pages: Record<string, string> = { '/dcgm': DCGM, '/rtx': RTX };
  const server = http.createServer((req, res) => {
    const body = pages[(req.url ?? '').split('?')[0]];
    res.writeHead(body ? 200 : 404, { 'Content-Type': 'text/plain' });
    res.end(body ? body + '\n' : '');
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function startPrometheus(dir: string, exporter: string): ChildProcess {
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s' },
    scrape_configs: [
      {
        job_name: 'kerasgpu',
        metrics_path: '/kerasgpu/metrics',
        static_configs: [
          { targets: ['127.0.0.1:8888'], labels: { host: 'gpu-lab-01' } }
        ]
      },
      {
        job_name: 'dcgm',
        metrics_path: '/dcgm',
        static_configs: [{ targets: [exporter] }]
      },
      {
        job_name: 'nvidia_smi',
        metrics_path: '/rtx',
        static_configs: [
          { targets: [exporter], labels: { host: 'rtx-desktop' } }
        ]
      }
    ]
  };
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), JSON.stringify(config));
  return spawn(
    which('prometheus') ?? '/usr/bin/prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--web.listen-address=127.0.0.1:${PROM_PORT}`,
      `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
      '--log.level=warn'
    ],
    { cwd: dir, stdio: 'ignore' }
  );
}

async function stopPrometheus(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return;
  }
  const exited = new Promise(resolve => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  await exited;
}

test.use({ autoGoto: false });

test('the GPU Fleet lists the hosts Prometheus scrapes, and says when it is down (screenshots)', async ({
  page
}) => {
  test.skip(!which('prometheus'), "Debian's prometheus is not installed");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kerasgpu-ui-prom-'));
  const server = await exposition();
  const exporter = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  let prometheus: ChildProcess | null = null;
  try {
    await page.goto();
    await page.keyboard.press('Control+Shift+C');
    await page.keyboard.type('Open the GPU Fleet');
    await page.keyboard.press('Enter');
    const view = page.locator('.jp-kerasgpu-fleet');
    await expect(view).toBeVisible();

    // No Prometheus listening yet: a clear state with the server's reason, not an error page.
    const message = view.locator('.jp-kerasgpu-fleet-message');
    await expect(message).toContainText('Prometheus is unreachable');
    await expect(message).toContainText(`127.0.0.1:${PROM_PORT}`);

    prometheus = startPrometheus(dir, exporter);
    const hosts = view.locator('.jp-kerasgpu-fleet-host');
    await expect(hosts).toHaveCount(3, { timeout: 90_000 });
    // Wait until every GPU of every host has its memory (the first scrapes arrive one by one).
    await expect(view.locator('.jp-kerasgpu-fleet-gpu')).toHaveCount(4, {
      timeout: 60_000
    });
    await expect(view.locator('.jp-kerasgpu-fleet-memory')).not.toContainText(
      ['free memory unknown'],
      { timeout: 60_000 }
    );
    // Best place for a job first: free GPUs by free memory; the busy H200 last.
    const order = await hosts.evaluateAll(nodes =>
      nodes.map(n => (n as HTMLElement).dataset.host)
    );
    expect(order).toEqual(['dgx-a100-07', 'rtx-desktop', 'gpu-lab-01']);
    const lab = view.locator('[data-host="gpu-lab-01"]');
    await expect(lab.locator('.jp-kerasgpu-fleet-gpu')).toHaveAttribute(
      'data-state',
      'busy'
    );
    await expect(lab).toContainText('100 % busy');
    await expect(lab).toContainText('115.3 GiB free of 140.4 GiB');
    await expect(view).toContainText('held by team-a/bert-finetune-0 (train)');
    await expect(view.locator('.jp-kerasgpu-fleet-summary')).toContainText(
      '3 hosts · 2 of 4 GPUs free'
    );

    // The README's pictures are rewritten only on request (`make screenshots`).
    const docs = process.env.KERASGPU_SCREENSHOTS_DIR
      ? path.resolve(process.env.KERASGPU_SCREENSHOTS_DIR)
      : path.resolve(__dirname, '..', 'screenshots');
    await page.setViewportSize({ width: 1400, height: 800 });
    await expect(hosts).toHaveCount(3);
    const box = await view.boundingBox();
    const last = await hosts.last().boundingBox();
    if (box && last) {
      await page.screenshot({
        path: path.join(docs, 'fleet-light.png'),
        clip: {
          x: box.x,
          y: box.y,
          width: box.width,
          height: last.y + last.height + 16 - box.y
        }
      });
    }

    // Prometheus goes away: the view says so with the reason.
    await stopPrometheus(prometheus);
    await expect(message).toContainText('Prometheus is unreachable', {
      timeout: 30_000
    });
    await expect(hosts).toHaveCount(0);
  } finally {
    if (prometheus) {
      await stopPrometheus(prometheus);
    }
    await new Promise(resolve => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
