import { Kernel, KernelMessage } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import {
  applyMessage,
  chooseHost,
  IHostGpusState,
  isHostGpusMessage,
  KernelHostGpus,
  MISSING_HINT,
  START_EXPRESSION,
  startOutcome
} from '../host-gpus';

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
