import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import {
  FleetModel,
  fleetMessage,
  fleetSummary,
  gpuSummary,
  hostSummary,
  pollInterval
} from '../models/fleet';
import { IFleet } from '../api/fleet';
import { FleetView } from '../views/fleet-view';

/** What GET kerasgpu/api/v1/fleet answers for the test fleet of python_ext/tests/server/test_fleet.py. */
const FLEET: IFleet = {
  status: 'ok',
  prometheus: 'http://127.0.0.1:9090',
  interval: 15,
  checked_at: 1764421200,
  hosts: [
    {
      host: 'h200-idle',
      source: 'kerasgpu',
      free_gpus: 1,
      gpus: [
        {
          index: 0,
          name: 'NVIDIA H200',
          uuid: 'GPU-8ff5a310-3a68-193f-cf86-6d0d2d1350ce',
          util: 0,
          mem_used_mib: 0,
          mem_total_mib: 143771,
          mem_free_mib: 143771,
          free: true,
          source: 'kerasgpu'
        }
      ]
    },
    {
      host: 'dgx-a100-07',
      source: 'dcgm',
      free_gpus: 1,
      gpus: [
        {
          index: 0,
          name: 'NVIDIA A100-SXM4-80GB',
          uuid: 'GPU-a0',
          util: 0,
          mem_used_mib: 0,
          mem_total_mib: 81920,
          mem_free_mib: 81050,
          free: true,
          source: 'dcgm'
        },
        {
          index: 1,
          name: 'NVIDIA A100-SXM4-80GB',
          uuid: 'GPU-a1',
          util: 87,
          mem_used_mib: 60000,
          mem_total_mib: 81920,
          mem_free_mib: 21050,
          free: false,
          source: 'dcgm',
          holders: ['team-a/bert-finetune-0 (train)']
        }
      ]
    },
    {
      host: '127.0.0.1:8889',
      source: 'kerasgpu',
      free_gpus: 0,
      gpus: [
        {
          index: 0,
          name: 'NVIDIA H200',
          uuid: 'GPU-8ff5a310-3a68-193f-cf86-6d0d2d1350ce',
          util: 100,
          mem_used_mib: 25715,
          mem_total_mib: 143771,
          mem_free_mib: 118056,
          free: false,
          source: 'kerasgpu'
        }
      ]
    }
  ]
};

function settingsAnswering(
  answer: () => Promise<Response>,
  calls: string[]
): ServerConnection.ISettings {
  return ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/',
    fetch: ((request: Request | string) => {
      calls.push(typeof request === 'string' ? request : request.url);
      return answer();
    }) as any
  });
}

function jsonResponse(body: unknown, status = 200): Promise<Response> {
  return Promise.resolve(
    new Response(JSON.stringify(body), {
      status,
      headers: { 'Content-Type': 'application/json' }
    })
  );
}

function nextChange(model: FleetModel): Promise<void> {
  return new Promise(resolve => {
    const once = () => {
      model.changed.disconnect(once);
      resolve();
    };
    model.changed.connect(once);
  });
}

describe('fleet wording', () => {
  it('says how to configure Prometheus when the fleet is off', () => {
    const m = fleetMessage({
      status: 'off',
      reason: 'No Prometheus is configured',
      hosts: []
    });
    expect(m?.kind).toBe('off');
    expect(m?.code).toContain('c.KerasGPU.prometheus_url');
  });

  it("shows the server's reason when Prometheus is down or refuses", () => {
    const reason =
      'Prometheus at http://127.0.0.1:9090 did not answer within 5 s';
    expect(fleetMessage({ status: 'unreachable', reason, hosts: [] })).toEqual(
      expect.objectContaining({ kind: 'unreachable', text: reason })
    );
    expect(
      fleetMessage({ status: 'error', reason: 'HTTP 401', hosts: [] })?.kind
    ).toBe('error');
    expect(fleetMessage(null, 'Failed to fetch')?.title).toContain(
      'Jupyter server'
    );
  });

  it('explains a Prometheus that scrapes no GPU metrics', () => {
    expect(fleetMessage({ status: 'ok', hosts: [] })?.kind).toBe('empty');
    expect(fleetMessage(FLEET)).toBeNull();
  });

  it('reads each GPU as free or busy with its free memory', () => {
    const [idle] = FLEET.hosts[0].gpus;
    expect(gpuSummary(idle)).toEqual(
      expect.objectContaining({
        state: 'free',
        util: '0 % busy',
        memory: '140.4 GiB free of 140.4 GiB',
        usedPercent: 0
      })
    );
    const busy = gpuSummary(FLEET.hosts[2].gpus[0]);
    expect(busy.state).toBe('busy');
    expect(busy.memory).toBe('115.3 GiB free of 140.4 GiB');
    expect(busy.usedPercent).toBeCloseTo(17.9, 1);
    const unknown = gpuSummary({
      ...idle,
      util: null,
      mem_free_mib: null,
      free: false
    });
    expect(unknown.state).toBe('unknown');
    expect(unknown.memory).toBe('free memory unknown');
  });

  it('counts free GPUs per host and for the fleet', () => {
    expect(hostSummary(FLEET.hosts[1])).toBe('1 of 2 GPUs free');
    expect(
      hostSummary({
        host: 'x',
        source: 'kerasgpu',
        gpus: [],
        free_gpus: 0,
        reason: 'kerasgpu on this host cannot read its GPUs'
      })
    ).toContain('cannot read');
    expect(fleetSummary(FLEET)).toBe('3 hosts · 2 of 4 GPUs free');
  });

  it("polls at the server's interval, never faster than 2 s", () => {
    expect(pollInterval(FLEET)).toBe(15000);
    expect(pollInterval({ ...FLEET, interval: 1 })).toBe(2000);
    expect(pollInterval(null)).toBe(15000);
  });
});

describe('FleetView', () => {
  it('lists hosts in the order the server sorted them, only while shown', async () => {
    const calls: string[] = [];
    const model = new FleetModel({
      serverSettings: settingsAnswering(() => jsonResponse(FLEET), calls)
    });
    const view = new FleetView({ model });
    expect(view.node.dataset.status).toBe('loading');
    const changed = nextChange(model);
    Widget.attach(view, document.body);
    await changed;
    // (ServerConnection adds a cache-busting query)
    expect(calls[0]).toMatch(
      /^http:\/\/localhost:8888\/kerasgpu\/api\/v1\/fleet\b/
    );
    const hosts = [
      ...view.node.querySelectorAll<HTMLElement>('.jp-kerasgpu-fleet-host')
    ].map(h => h.dataset.host);
    expect(hosts).toEqual(['h200-idle', 'dgx-a100-07', '127.0.0.1:8889']);
    const states = [
      ...view.node.querySelectorAll<HTMLElement>('.jp-kerasgpu-fleet-gpu')
    ].map(g => g.dataset.state);
    expect(states).toEqual(['free', 'free', 'busy', 'busy']);
    expect(view.node.textContent).toContain(
      'held by team-a/bert-finetune-0 (train)'
    );
    expect(view.node.textContent).toContain('3 hosts · 2 of 4 GPUs free');
    expect(model.watched).toBe(true);
    view.hide();
    expect(model.watched).toBe(false);
    Widget.detach(view);
    view.dispose();
    model.dispose();
  });

  it('shows the set-up when no Prometheus is configured', async () => {
    const model = new FleetModel({
      serverSettings: settingsAnswering(
        () =>
          jsonResponse({ status: 'off', reason: 'not configured', hosts: [] }),
        []
      )
    });
    const view = new FleetView({ model });
    const changed = nextChange(model);
    Widget.attach(view, document.body);
    await changed;
    expect(view.node.dataset.status).toBe('off');
    expect(
      view.node.querySelector('.jp-kerasgpu-fleet-code')?.textContent
    ).toContain('c.KerasGPU.prometheus_url');
    expect(view.node.querySelectorAll('.jp-kerasgpu-fleet-host')).toHaveLength(
      0
    );
    view.dispose();
    model.dispose();
  });
});
