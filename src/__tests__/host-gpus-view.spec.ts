import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import {
  MISSING_HINT,
  START_EXPRESSION,
  STOP_EXPRESSION
} from '../models/host-gpus';
import { HostGpusSection } from '../views/host-gpus-view';

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

/** The parts of a kernel, a notebook tracker and the server's GPU model the section uses. */
function setUp(answer: any, serverDevices: any[] = []) {
  const requests: any[] = [];
  const kernel = {
    isDisposed: false,
    iopubMessage: new Signal<any, any>({}),
    requestExecute(content: any) {
      requests.push(content);
      const expr = content.user_expressions.kerasgpu;
      const reply =
        expr === STOP_EXPRESSION
          ? {
              user_expressions: {
                kerasgpu: { status: 'ok', data: { 'text/plain': "'stopped'" } }
              }
            }
          : answer;
      return { done: Promise.resolve({ content: reply }) };
    }
  };
  const notebook = {
    context: { path: 'work/train.ipynb' },
    sessionContext: {
      session: { kernel },
      kernelChanged: new Signal<any, any>({}),
      statusChanged: new Signal<any, string>({})
    }
  };
  const notebooks = {
    currentWidget: notebook,
    currentChanged: new Signal<any, any>({})
  };
  const server = { devices: serverDevices, changed: new Signal<any, any>({}) };
  const section = new HostGpusSection({
    notebooks: notebooks as any,
    serverModel: server as any
  });
  const comm = (data: any) =>
    kernel.iopubMessage.emit({
      header: { msg_type: 'comm_msg' },
      content: { comm_id: 'c', data }
    });
  return { section, requests, comm, notebook };
}

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

describe('HostGpusSection', () => {
  it("shows the kernel's host GPUs, labelled, only while visible", async () => {
    const { section, requests, comm } = setUp({
      user_expressions: {
        kerasgpu: { status: 'ok', data: { 'text/plain': "'watching'" } }
      }
    });
    Widget.attach(section, document.body);
    await flush();
    expect(requests).toHaveLength(0); // the panel is not shown: the kernel reads nothing

    section.setVisible(true);
    await flush();
    expect(requests[0].user_expressions.kerasgpu).toBe(START_EXPRESSION);
    comm({
      type: 'gpus',
      event: 'status',
      host: 'gpu-node-7',
      status: {
        state: 'ok',
        backend: 'smi',
        code: 'ok',
        reason: null,
        hint: null
      },
      devices: [H200]
    });
    comm({
      type: 'gpus',
      event: 'samples',
      host: 'gpu-node-7',
      samples: [
        {
          index: 0,
          uuid: H200.uuid,
          utilization_gpu: 100,
          memory_used_mib: 25715,
          memory_total_mib: 143771
        }
      ],
      processes: [
        {
          pid: 440,
          gpu_uuid: H200.uuid,
          gpu_index: 0,
          used_memory_mib: 25706,
          name: 'python3',
          this_kernel: true
        }
      ]
    });
    const text = section.node.textContent ?? '';
    expect(text).toContain('gpu-node-7');
    expect(text).toContain('NVIDIA H200');
    expect(text).toContain('25.1 GiB / 140.4 GiB');
    expect(text).toContain('100 % busy');
    expect(text).toContain('this kernel holds 25.1 GiB');
    // It takes the place of the server's cards (style/host-gpus.css reads data-show).
    expect(section.node.dataset.show).toBe('kernel');
    // The kernel host's processes, this notebook's kernel named after the notebook.
    const procs = section.node.querySelector('.jp-kerasgpu-host-processes')!;
    expect(procs.getAttribute('aria-label')).toBe('Processes on gpu-node-7');
    expect(procs.textContent).toContain(
      "train.ipynbGPU 0 · 25.1 GiB · this notebook's kernel, pid 440"
    );

    section.setVisible(false);
    await flush();
    expect(requests[1].user_expressions.kerasgpu).toBe(STOP_EXPRESSION);
    section.dispose();
  });

  it('says what is missing when the kernel lacks the package', async () => {
    const { section } = setUp({
      user_expressions: {
        kerasgpu: {
          status: 'error',
          ename: 'ModuleNotFoundError',
          evalue: "No module named 'kerasgpu'"
        }
      }
    });
    section.setVisible(true);
    await flush();
    await flush();
    expect(section.node.textContent).toBe(MISSING_HINT);
    section.dispose();
  });

  it("stays empty when the kernel's GPUs are the server's", async () => {
    const { section, comm } = setUp(
      {
        user_expressions: {
          kerasgpu: { status: 'ok', data: { 'text/plain': "'watching'" } }
        }
      },
      [H200]
    );
    section.setVisible(true);
    await flush();
    comm({
      type: 'gpus',
      event: 'status',
      host: 'this-host',
      status: {
        state: 'ok',
        backend: 'smi',
        code: 'ok',
        reason: null,
        hint: null
      },
      devices: [H200]
    });
    expect(section.node.textContent).toBe('');
    expect(section.node.dataset.show).toBe('server');
    section.dispose();
  });

  it("forgets a restarted kernel's readings at once and asks the new process again", async () => {
    const { section, requests, comm, notebook } = setUp({
      user_expressions: {
        kerasgpu: { status: 'ok', data: { 'text/plain': "'watching'" } }
      }
    });
    section.setVisible(true);
    await flush();
    comm({
      type: 'gpus',
      event: 'status',
      host: 'gpu-node-7',
      status: {
        state: 'ok',
        backend: 'smi',
        code: 'ok',
        reason: null,
        hint: null
      },
      devices: [H200]
    });
    comm({
      type: 'gpus',
      event: 'samples',
      host: 'gpu-node-7',
      samples: [{ index: 0, uuid: H200.uuid, utilization_gpu: 95 }],
      processes: [
        {
          pid: 440,
          gpu_uuid: H200.uuid,
          gpu_index: 0,
          used_memory_mib: 40960,
          name: 'python3',
          this_kernel: true
        }
      ]
    });
    expect(section.remote?.live).toBe(true);
    const starts = () =>
      requests.filter(r => r.user_expressions.kerasgpu === START_EXPRESSION)
        .length;
    expect(starts()).toBe(1);

    // Out of GPU memory, the kernel dies and restarts on the same connection.
    notebook.sessionContext.statusChanged.emit('autorestarting');
    expect(section.remote).toBeNull(); // the status bar no longer shows 40 GiB held
    expect(section.node.textContent).toBe('');
    notebook.sessionContext.statusChanged.emit('starting');
    notebook.sessionContext.statusChanged.emit('idle');
    await flush();
    expect(starts()).toBe(2); // the new process is asked to stream
    section.dispose();
  });
});
