import { GpuStatusItem, kernelTensorFlow } from '../views/statusbar';
import { GpuModel } from '../models/model';

/** What describe() reads of the model: state, status, devices, processes, latest readings. */
function model(over: Record<string, unknown> = {}): GpuModel {
  const sample = {
    index: 0,
    utilization_gpu: 100,
    memory_used_mib: 25_700,
    memory_total_mib: 143_771
  };
  return {
    state: 'ok',
    status: { state: 'ok', code: 'ok', reason: null },
    devices: [{ index: 0, name: 'NVIDIA H200', memory_total_mib: 143_771 }],
    processes: [
      {
        pid: 10,
        gpu_index: 0,
        used_memory_mib: 25_000,
        kernel: { id: 'other' }
      }
    ],
    latest: () => sample,
    ...over
  } as unknown as GpuModel;
}

describe('the status bar item tells the truth about the current notebook', () => {
  it('says CPU only when its TensorFlow sees no GPU, not the machine 100 %', () => {
    const { text, title } = GpuStatusItem.describe(model(), 'mine', {
      tfGpus: 0,
      why: 'This TensorFlow is a CPU-only build.'
    });
    expect(text).toBe('CPU only · TensorFlow sees no GPU');
    expect(text).not.toContain('100');
    expect(title).toContain('CPU-only build');
  });

  it('never says CPU only before the kernel said so', () => {
    expect(GpuStatusItem.describe(model(), 'mine', null).text).toBe(
      'GPU: none held yet'
    );
    expect(
      GpuStatusItem.describe(model(), 'mine', { tfGpus: 1, why: null }).text
    ).toBe('1 GPU ready · none held yet');
  });

  it("shows the kernel's verdict as its tooltip when the driver is missing", () => {
    const m = model({
      state: 'unavailable',
      status: { state: 'unavailable', code: 'smi_not_found', reason: 'x' },
      devices: []
    });
    const why = 'TensorFlow in this notebook sees no GPU: no NVIDIA driver.';
    const { text, title } = GpuStatusItem.describe(m, 'mine', {
      tfGpus: 0,
      why
    });
    expect(text).toBe('CPU only · no NVIDIA driver');
    expect(title).toBe(why);
  });

  it("shows the memory this kernel holds and its GPU's utilization", () => {
    const m = model({
      processes: [
        {
          pid: 11,
          gpu_index: 0,
          used_memory_mib: 10_240,
          kernel: { id: 'mine' }
        },
        {
          pid: 10,
          gpu_index: 0,
          used_memory_mib: 25_000,
          kernel: { id: 'other' }
        }
      ]
    });
    expect(GpuStatusItem.describe(m, 'mine', null).text).toBe(
      'GPU 0: 10.0 GiB held · 100 % busy'
    );
  });

  it.each([
    ['gpu_lost', 'GPU: GPU lost'],
    ['timeout', 'GPU: nvidia-smi not answering'],
    ['smi_not_found', 'GPU: no NVIDIA driver'],
    ['driver_mismatch', 'GPU: driver/library mismatch']
  ])('says what is wrong when GPUs cannot be read (%s)', (code, words) => {
    const m = model({
      state:
        code === 'timeout' || code === 'gpu_lost' ? 'error' : 'unavailable',
      status: { state: 'error', code, reason: 'the reason' },
      devices: []
    });
    const { text, title } = GpuStatusItem.describe(m, 'mine', null);
    expect(text).toBe(words);
    expect(title).toBe('the reason');
  });

  it('reads the probe: no TensorFlow at all is CPU only too', () => {
    expect(
      kernelTensorFlow({
        status: 'error',
        reason: 'TensorFlow is not installed',
        hint: null,
        tensorflow: null,
        kernel: null,
        verdict: {
          tf_gpus: null,
          driver_gpus: 1,
          ok: false,
          reason: null,
          fix: null,
          summary: null
        }
      })
    ).toEqual({ tfGpus: 0, why: 'TensorFlow is not installed.' });
  });
});

describe('a kernel on another host (a gateway) is described by that host, not the server', () => {
  const h200 = (index: number, util: number): any => ({
    index,
    uuid: `GPU-${index}`,
    timestamp: 1,
    utilization_gpu: util,
    memory_used_mib: 20_000,
    memory_total_mib: 143_771
  });
  // The server has no GPU at all ("no NVIDIA driver"); the kernel runs on gpu-node-7.
  const serverWithout = model({
    state: 'unavailable',
    status: { state: 'unavailable', code: 'smi_not_found', reason: 'x' },
    devices: [],
    processes: []
  });

  it("shows the memory the kernel holds on its host's GPU and that GPU's utilization", () => {
    const { text, title } = GpuStatusItem.describe(serverWithout, 'k', null, {
      host: 'gpu-node-7',
      live: true,
      devices: [],
      samples: [h200(0, 12), h200(1, 97)],
      processes: [
        {
          pid: 5,
          gpu_uuid: 'GPU-1',
          gpu_index: 1,
          used_memory_mib: 30_720,
          name: 'python',
          this_kernel: true
        } as any,
        {
          pid: 6,
          gpu_uuid: 'GPU-0',
          gpu_index: 0,
          used_memory_mib: 9_000,
          name: 'python',
          this_kernel: false
        } as any
      ]
    });
    expect(text).toBe('GPU 1 on gpu-node-7: 30.0 GiB held · 97 % busy');
    expect(text).not.toContain('driver');
    expect(title).toContain('runs on gpu-node-7');
  });

  it('says CPU only on that host when the kernel holds nothing there', () => {
    const { text } = GpuStatusItem.describe(serverWithout, 'k', null, {
      host: 'gpu-node-7',
      live: true,
      devices: [],
      samples: [h200(0, 100)],
      processes: []
    });
    expect(text).toBe('CPU only · no GPU memory held on gpu-node-7');
  });

  it('gives no stale numbers while nothing streams (panel closed)', () => {
    const { text, title } = GpuStatusItem.describe(serverWithout, 'k', null, {
      host: 'gpu-node-7',
      live: false,
      devices: [],
      samples: [h200(0, 100)],
      processes: []
    });
    expect(text).toBe('GPU: kernel on gpu-node-7');
    expect(title).toContain('open the GPU panel');
  });
});

describe('a remote kernel whose driver gives no per-process memory (MIG)', () => {
  it('says it holds memory there, never "0.0 GiB held"', () => {
    const { text } = GpuStatusItem.describeRemote({
      host: 'gpu-node-7',
      live: true,
      devices: [],
      samples: [],
      processes: [
        {
          pid: 5,
          gpu_uuid: 'GPU-1',
          gpu_index: 1,
          used_memory_mib: null,
          name: 'python',
          this_kernel: true
        } as any
      ]
    });
    expect(text).toBe('GPU 1 on gpu-node-7: memory held · – busy');
  });
});
