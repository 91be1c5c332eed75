import { Kernel, KernelMessage } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import {
  applyMessage,
  chooseHost,
  hostProcessRows,
  IHostGpusState,
  isHostGpusMessage,
  KernelHostGpus,
  MISSING_HINT,
  START_EXPRESSION,
  startOutcome
} from '../models/host-gpus';

const H200 = {
  index: 0,
  uuid: 'GPU-2cc6da62-3a1f-977c-8ec3-06eda63b09f3',
  name: 'NVIDIA H200',
  memory_total_mib: 143771,
  driver_version: '580.159.04',
  pci_bus_id: null,
  cuda_driver_version: null,
  compute_capability: '9.0',
  mig_mode: null
};
const OK = {
  state: 'ok' as const,
  backend: 'smi',
  code: 'ok',
  reason: null,
  hint: null
};

function watching(over: Partial<IHostGpusState> = {}): IHostGpusState {
  return {
    phase: 'watching',
    host: 'gpu-node-7',
    status: OK,
    devices: [H200],
    samples: [],
    processes: [],
    error: null,
    ...over
  };
}

/** A kernel connection with only what KernelHostGpus uses: iopub and execute. */
class FakeKernel {
  iopubMessage = new Signal<any, KernelMessage.IIOPubMessage>(this);
  isDisposed = false;
  requests: any[] = [];
  constructor(private answer: any) {}
  requestExecute(content: any) {
    this.requests.push(content);
    return {
      done: Promise.resolve({ content: this.answer })
    };
  }
  emitComm(data: any) {
    this.iopubMessage.emit({
      header: { msg_type: 'comm_msg' },
      content: { comm_id: 'c1', data }
    } as any);
  }
}

describe('kernel host GPUs', () => {
  it('accepts only the kernel’s gpus messages', () => {
    expect(
      isHostGpusMessage({ type: 'gpus', event: 'samples', host: 'n' })
    ).toBe(true);
    expect(isHostGpusMessage({ type: 'training', status: 'running' })).toBe(
      false
    );
    expect(isHostGpusMessage({ type: 'gpus', event: 'other', host: 'n' })).toBe(
      false
    );
  });

  it('keeps devices from status messages and readings from samples', () => {
    let s = watching({ devices: [] });
    s = applyMessage(s, {
      type: 'gpus',
      event: 'status',
      host: 'gpu-node-7',
      status: OK,
      devices: [H200]
    });
    s = applyMessage(s, {
      type: 'gpus',
      event: 'samples',
      host: 'gpu-node-7',
      samples: [{ index: 0, uuid: H200.uuid, utilization_gpu: 100 } as any]
    });
    expect(s.devices).toEqual([H200]);
    expect(s.samples[0].utilization_gpu).toBe(100);
  });

  it("shows the kernel's host when it has GPUs the server does not", () => {
    const remote = chooseHost([], watching());
    expect(remote.show).toBe('kernel');
    expect(remote.title).toContain('gpu-node-7');
    // Same GPUs as the server: the kernel runs on the server's host.
    expect(chooseHost([H200.uuid.toUpperCase()], watching()).show).toBe(
      'server'
    );
  });

  it("says why the server's own GPUs are not shown, and keeps the kernel's while its stream restarts", () => {
    const other = { ...H200, uuid: 'GPU-11111111-2222-3333-4444-555555555555' };
    const remote = chooseHost([other.uuid], watching());
    expect(remote.show).toBe('kernel');
    expect(remote.note).toBe(
      "The Jupyter server's own GPU is not shown: this notebook's kernel runs on gpu-node-7."
    );
    expect(chooseHost([], watching()).note).toBe(
      "The Jupyter server itself reads no GPU, and needs none: this notebook's kernel runs on gpu-node-7."
    );
    // The panel hid and shows again: the same kernel's GPUs stand while the stream restarts.
    expect(chooseHost([other.uuid], watching({ phase: 'starting' })).show).toBe(
      'kernel'
    );
    expect(chooseHost([other.uuid], watching({ phase: 'failed' })).show).toBe(
      'server'
    );
  });

  it("names this notebook's kernel among the processes of its host", () => {
    const proc = (pid: number, gpu: number, mib: number, mine: boolean) => ({
      pid,
      gpu_uuid: `GPU-${gpu}`,
      gpu_index: gpu,
      used_memory_mib: mib,
      name: 'python3',
      this_kernel: mine
    });
    const rows = hostProcessRows(
      [
        proc(4242, 0, 40960, false),
        proc(440, 0, 25706, true),
        proc(440, 1, 1024, true)
      ],
      'train.ipynb'
    );
    expect(rows.map(r => [r.label, r.detail])).toEqual([
      ['train.ipynb', "GPU 0,1 · 26.1 GiB · this notebook's kernel, pid 440"],
      ['python3', "GPU 0 · 40.0 GiB · pid 4242 · not this notebook's"]
    ]);
    expect(hostProcessRows([proc(7, 0, 1, true)], null)[0].label).toBe(
      "This notebook's kernel"
    );
  });

  it('says to install the package in the kernel’s environment when it is missing there', () => {
    const missing = watching({ phase: 'missing', devices: [], status: null });
    expect(chooseHost([], missing).hint).toBe(MISSING_HINT);
    // The server has GPUs of its own: no reason to nag.
    expect(chooseHost(['GPU-x'], missing).hint).toBeNull();
  });

  it('reads the start expression’s outcome', () => {
    const ok = {
      user_expressions: {
        kerasgpu: { status: 'ok', data: { 'text/plain': "'watching'" } }
      }
    };
    expect(startOutcome(ok as any).phase).toBe('watching');
    const missing = {
      user_expressions: {
        kerasgpu: {
          status: 'error',
          ename: 'ModuleNotFoundError',
          evalue: "No module named 'kerasgpu'"
        }
      }
    };
    expect(startOutcome(missing as any).phase).toBe('missing');
    expect(startOutcome(null).phase).toBe('failed');
  });

  it('asks the kernel silently and follows its comm messages', async () => {
    const kernel = new FakeKernel({
      status: 'ok',
      user_expressions: {
        kerasgpu: { status: 'ok', data: { 'text/plain': "'watching'" } }
      }
    });
    const model = new KernelHostGpus(
      kernel as unknown as Kernel.IKernelConnection
    );
    await model.watch();
    expect(kernel.requests[0]).toEqual(
      expect.objectContaining({
        code: '',
        silent: true,
        store_history: false,
        user_expressions: { kerasgpu: START_EXPRESSION }
      })
    );
    expect(model.state.phase).toBe('watching');
    kernel.emitComm({ type: 'training', status: 'running' });
    kernel.emitComm({
      type: 'gpus',
      event: 'status',
      host: 'gpu-node-7',
      status: OK,
      devices: [H200]
    });
    expect(chooseHost([], model.state).show).toBe('kernel');
    await model.unwatch();
    expect(kernel.requests).toHaveLength(2);
    model.dispose();
  });
});
