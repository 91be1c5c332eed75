/**
 * The GPU model and its stream against a real `ws` websocket server (and a
 * real HTTP server for the REST calls) that replays messages recorded from a
 * real kerasgpu server (fixtures/stream-load-2gpu.json).
 */
import { ServerConnection } from '@jupyterlab/services';
import * as http from 'http';
import { AddressInfo } from 'net';
import WebSocket, { WebSocketServer } from 'ws';

import { StreamMessage } from '../api/stream';
import { GpuModel } from '../models/model';
import { GpuPanel } from '../views/panel';
import { GpuStream } from '../models/stream';
import { Widget } from '@lumino/widgets';

import recordedJson from './fixtures/stream-load-2gpu.json';

const recorded: any = recordedJson;
const messages: StreamMessage[] = recorded.messages;

/** A kerasgpu server stand-in: real HTTP + websocket, recorded answers. */
class ReplayServer {
  sockets = new Set<WebSocket>();
  connections = 0;
  requests: string[] = [];
  processes: any[] = [];
  shutdowns: number[] = [];

  async start(): Promise<void> {
    this.http = http.createServer((req, res) => {
      this.requests.push(req.url ?? '');
      res.setHeader('Content-Type', 'application/json');
      if (req.url?.startsWith('/kerasgpu/api/v1/history')) {
        res.end(JSON.stringify(recorded.history));
      } else if (req.url?.startsWith('/kerasgpu/api/v1/processes?')) {
        res.end(JSON.stringify({ processes: this.processes }));
      } else if (req.url?.match(/processes\/\d+\/shutdown/)) {
        const pid = Number(req.url.split('/')[5]);
        this.shutdowns.push(pid);
        this.processes = this.processes.filter(p => p.pid !== pid);
        res.end(JSON.stringify({ pid, shutdown: true }));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ message: 'not found' }));
      }
    });
    this.wss = new WebSocketServer({ noServer: true });
    this.http.on('upgrade', (req, socket, head) => {
      if (req.url !== '/kerasgpu/api/v1/stream') {
        socket.destroy();
        return;
      }
      this.wss!.handleUpgrade(req, socket, head, ws => {
        this.connections++;
        this.sockets.add(ws);
        ws.on('close', () => this.sockets.delete(ws));
        ws.send(JSON.stringify(messages[0]));
      });
    });
    await new Promise<void>(resolve =>
      this.http!.listen(0, '127.0.0.1', resolve)
    );
  }

  get port(): number {
    return (this.http!.address() as AddressInfo).port;
  }

  /** Sends a message to every open stream. */
  push(message: unknown): void {
    for (const ws of this.sockets) {
      ws.send(JSON.stringify(message));
    }
  }

  /** Drops every connection, as a server restart would. */
  dropAll(): void {
    for (const ws of this.sockets) {
      ws.terminate();
    }
  }

  async stop(): Promise<void> {
    this.dropAll();
    this.wss?.close();
    await new Promise(resolve => this.http?.close(resolve));
  }

  settings(): ServerConnection.ISettings {
    return ServerConnection.makeSettings({
      baseUrl: `http://127.0.0.1:${this.port}/`,
      wsUrl: `ws://127.0.0.1:${this.port}/`,
      token: '',
      WebSocket: WebSocket as any
    });
  }

  private http: http.Server | null = null;
  private wss: WebSocketServer | null = null;
}

async function until(
  check: () => boolean,
  what: string,
  timeout = 15000
): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeout) {
      throw new Error(`timed out waiting for ${what} (${debug()})`);
    }
    await new Promise(resolve => setTimeout(resolve, 10));
  }
}

let debug = () => '';

describe('GpuModel over a real websocket', () => {
  let server: ReplayServer;
  let model: GpuModel;

  beforeEach(async () => {
    server = new ReplayServer();
    await server.start();
    const serverSettings = server.settings();
    model = new GpuModel({
      serverSettings,
      stream: new GpuStream({ serverSettings, minDelay: 20, maxDelay: 100 }),
      historySeconds: 300
    });
  });

  afterEach(async () => {
    model.dispose();
    await server.stop();
  });

  it('does not connect while no view is visible', async () => {
    await new Promise(resolve => setTimeout(resolve, 100));
    expect(server.connections).toBe(0);
    expect(model.state).toBe('loading');
  });

  it('fills the charts from history on connect, then appends live readings', async () => {
    model.setViewVisible('panel', true);
    await until(() => model.series(0).t.length > 0, 'the history');
    // The first paint comes from the history endpoint: charts are never empty.
    expect(
      server.requests.some(u => u.startsWith('/kerasgpu/api/v1/history'))
    ).toBe(true);
    const fromHistory = model.series(0).t.length;
    expect(fromHistory).toBe(
      recorded.history.samples.filter((s: any) => s.index === 0).length
    );
    for (const message of messages.slice(1)) {
      server.push(message);
    }
    await until(() => model.devices.length === 2, 'the devices');
    await until(() => model.state === 'ok', 'the ok state');
    const live = messages.filter(m => m.type === 'samples') as any[];
    const last = live[live.length - 1].samples[0];
    await until(
      () => model.latest(0)?.timestamp === last.timestamp,
      'the last reading'
    );
    // Readings already in the history are not counted twice.
    const t = model.series(0).t;
    expect(new Set(t).size).toBe(t.length);
    expect([...t].sort()).toEqual(t);
    expect(model.devices[0].name).toBe('NVIDIA H200');
    expect(model.latest(0)?.utilization_gpu).toBe(100);
  });

  it('keeps one connection for every view, and closes it when none is visible', async () => {
    model.setViewVisible('panel', true);
    model.setViewVisible('statusbar', true);
    await until(() => server.sockets.size === 1, 'a connection');
    model.setViewVisible('panel', false);
    await new Promise(resolve => setTimeout(resolve, 50));
    expect(server.sockets.size).toBe(1);
    model.setViewVisible('statusbar', false);
    await until(() => server.sockets.size === 0, 'the close');
    expect(server.connections).toBe(1);
    expect(model.stream.state).toBe('closed');
  });

  it('reconnects after the server drops it, and says so meanwhile', async () => {
    model.setViewVisible('panel', true);
    await until(() => server.sockets.size === 1, 'a connection');
    server.push(messages[1]);
    server.push(messages[2]);
    await until(() => model.state === 'ok', 'ok');
    const states: string[] = [];
    model.changed.connect(() => states.push(model.state));
    server.dropAll();
    await until(() => server.connections === 2, 'a reconnection');
    expect(states).toContain('disconnected');
    await until(() => model.stream.state === 'open', 'open again');
  });

  it('shows a no-GPU status with its reason', async () => {
    model.setViewVisible('panel', true);
    await until(() => server.sockets.size === 1, 'a connection');
    server.push({
      type: 'status',
      status: {
        state: 'unavailable',
        backend: 'smi',
        code: 'smi_not_found',
        reason: 'nvidia-smi was not found on PATH.',
        hint: 'Install the NVIDIA driver.'
      },
      devices: []
    });
    await until(() => model.state === 'unavailable', 'unavailable');
    expect(model.devices).toHaveLength(0);
    expect(model.status?.code).toBe('smi_not_found');
  });

  it('leaves nothing behind after dispose', async () => {
    model.setViewVisible('panel', true);
    await until(() => server.sockets.size === 1, 'a connection');
    model.dispose();
    await until(() => server.sockets.size === 0, 'the close');
    server.push(messages[2]);
    await new Promise(resolve => setTimeout(resolve, 100));
    expect(server.connections).toBe(1);
    expect(model.isDisposed).toBe(true);
  });
});

describe('GpuPanel', () => {
  let server: ReplayServer;
  let model: GpuModel;
  let panel: GpuPanel;

  beforeEach(async () => {
    server = new ReplayServer();
    await server.start();
    const serverSettings = server.settings();
    model = new GpuModel({
      serverSettings,
      stream: new GpuStream({ serverSettings, minDelay: 20 })
    });
    panel = new GpuPanel({ model });
  });

  afterEach(async () => {
    panel.dispose();
    model.dispose();
    await server.stop();
  });

  it('opens the stream when shown and renders a card per GPU', async () => {
    expect(panel.node.textContent).toContain('Looking for GPUs');
    Widget.attach(panel, document.body);
    await until(() => server.sockets.size === 1, 'a connection');
    for (const message of messages.slice(1)) {
      server.push(message);
    }
    await until(
      () => panel.node.querySelectorAll('.jp-kerasgpu-card').length === 2,
      'two cards'
    );
    const card = panel.node.querySelector('.jp-kerasgpu-card')!;
    expect(card.querySelector('.jp-kerasgpu-name')!.textContent).toBe(
      'NVIDIA H200'
    );
    await until(
      () =>
        card
          .querySelector('.jp-kerasgpu-meter-util')!
          .textContent!.includes('100%'),
      'utilization'
    );
    // Two GPUs are one-line rows: each row says what it holds (in full in the tooltip),
    // the shared line says what they are.
    const memory = card.querySelector<HTMLElement>(
      '.jp-kerasgpu-meter-memory'
    )!;
    expect(
      memory.querySelector('.jp-kerasgpu-meter-value')!.textContent
    ).toMatch(/^25\.\dG$/);
    expect(memory.title).toMatch(/25\.\d GiB of 140\.\d GiB \(18 %\)/);
    expect(card.querySelector('.jp-kerasgpu-row-temp')!.textContent).toMatch(
      /^\d+°C$/
    );
    expect(card.querySelector('.jp-kerasgpu-row-power')!.textContent).toMatch(
      /^\d+ W$/
    );
    // The column names once, above the rows.
    expect(
      panel.node.querySelector('.jp-kerasgpu-row-head')!.textContent
    ).toContain('Busy');
    expect(
      panel.node.querySelector('.jp-kerasgpu-summary-shared')!.textContent
    ).toContain('2 × NVIDIA H200');
    const meter = card.querySelector('[role="meter"]')!;
    expect(meter.getAttribute('aria-valuenow')).toBe('18');
    Widget.detach(panel);
    await until(() => server.sockets.size === 0, 'the close when hidden');
  });

  it('lists processes by notebook and offers shutdown only for our kernels', async () => {
    server.processes = [
      {
        pid: 101,
        gpu_uuid: 'GPU-x',
        gpu_index: 0,
        used_memory_mib: 25000,
        name: 'python3',
        kernel: { id: 'k1', name: 'python3', execution_state: 'busy' },
        sessions: [
          { path: 'work/train.ipynb', name: 'train.ipynb', type: 'notebook' }
        ],
        can_shutdown: true
      },
      {
        pid: 202,
        gpu_uuid: 'GPU-x',
        gpu_index: 0,
        used_memory_mib: 600,
        name: 'other',
        kernel: null,
        sessions: [],
        can_shutdown: false
      }
    ];
    const opened: string[] = [];
    panel.dispose();
    panel = new GpuPanel({ model, openPath: path => opened.push(path) });
    debug = () =>
      JSON.stringify([
        server.requests,
        model.processes.length,
        model.stream.wanted,
        panel.node.innerHTML.slice(0, 300)
      ]);
    Widget.attach(panel, document.body);
    await until(
      () => panel.node.querySelectorAll('.jp-kerasgpu-process').length === 2,
      'processes'
    );
    const ours = panel.node.querySelector('[data-pid="101"]')!;
    const link = ours.querySelector('a')! as HTMLAnchorElement;
    expect(link.textContent).toBe('train.ipynb');
    link.click();
    expect(opened).toEqual(['work/train.ipynb']);
    expect(ours.querySelector('button')).not.toBeNull();
    expect(panel.node.querySelector('[data-pid="202"] button')).toBeNull();
    expect(panel.node.querySelector('[data-pid="202"]')!.textContent).toContain(
      'a process outside this Jupyter server'
    );
    await model.shutdownKernelOf(101);
    expect(server.shutdowns).toEqual([101]);
    await until(
      () => panel.node.querySelectorAll('.jp-kerasgpu-process').length === 1,
      'the row gone'
    );
    Widget.detach(panel);
  });

  it('switches to the compact layout from the configured number of GPUs', async () => {
    Widget.attach(panel, document.body);
    await until(() => server.sockets.size === 1, 'a connection');
    const status: any = messages[1];
    const eight = Array.from({ length: 8 }, (_, i) => ({
      ...status.devices[0],
      index: i,
      uuid: `GPU-${i}`
    }));
    server.push({ ...status, devices: eight });
    await until(
      () => panel.node.querySelectorAll('.jp-kerasgpu-card').length === 8,
      'eight cards'
    );
    expect(
      panel.node
        .querySelector('.jp-kerasgpu-cards')!
        .classList.contains('jp-kerasgpu-compact')
    ).toBe(true);
    panel.config = { ...panel.config, compactThreshold: 16 };
    expect(
      panel.node
        .querySelector('.jp-kerasgpu-cards')!
        .classList.contains('jp-kerasgpu-compact')
    ).toBe(false);
    Widget.detach(panel);
  });

  it('says when the GPU service cannot be reached at all', async () => {
    // A server whose port accepts no websocket (the extension is not enabled, say).
    const closed = http.createServer((req, res) => {
      res.statusCode = 404;
      res.end();
    });
    closed.on('upgrade', (req, socket) => socket.destroy());
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    const serverSettings = ServerConnection.makeSettings({
      baseUrl: `http://127.0.0.1:${port}/`,
      wsUrl: `ws://127.0.0.1:${port}/`,
      token: '',
      WebSocket: WebSocket as any
    });
    const lonely = new GpuModel({
      serverSettings,
      stream: new GpuStream({ serverSettings, minDelay: 20, maxDelay: 50 })
    });
    const view = new GpuPanel({ model: lonely });
    Widget.attach(view, document.body);
    await until(() => lonely.state === 'disconnected', 'disconnected');
    expect(view.node.textContent).toContain(
      'Cannot reach the GPU service of the Jupyter server.'
    );
    view.dispose();
    lonely.dispose();
    await new Promise(resolve => closed.close(resolve));
  });
});
