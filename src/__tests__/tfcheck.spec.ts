import { withCode } from '../views/panel';
import { ServerConnection } from '@jupyterlab/services';

import { ITensorFlowReply } from '../api/tensorflow';
import { describeTensorFlow, TensorFlowCheck } from '../views/tfcheck';

const base: ITensorFlowReply = {
  status: 'ok',
  reason: null,
  hint: null,
  tensorflow: { version: '2.21.0' },
  kernel: { id: 'k', name: 'python3', display_name: 'Python 3' },
  verdict: {
    tf_gpus: 1,
    driver_gpus: 1,
    ok: true,
    reason: null,
    fix: null,
    summary: null
  }
};

const cpuOnly: ITensorFlowReply = {
  ...base,
  verdict: {
    ...base.verdict,
    tf_gpus: 0,
    ok: false,
    reason: 'The NVIDIA driver’s library libcuda.so.1 does not load.',
    headline:
      "TensorFlow in this notebook sees 0 of 1 GPU: the driver's libcuda.so.1 does not load; CPU-only build",
    fix_commands: [
      '%pip uninstall -y tensorflow-cpu',
      '%pip install "tensorflow[and-cuda]==2.21.0"',
      'docker run --gpus all ...'
    ],
    text: 'TensorFlow in this notebook sees 0 of 1 GPU: …',
    problems: [
      {
        code: 'driver_library_missing',
        severity: 'blocking',
        title: 'The NVIDIA driver’s library libcuda.so.1 does not load',
        problem: 'The NVIDIA driver’s library libcuda.so.1 does not load. …',
        fix: 'Give this process the GPU driver: `docker run --gpus all`.',
        commands: ['docker run --gpus all ...'],
        link: null
      },
      {
        code: 'cpu_only_wheel',
        severity: 'blocking',
        title: 'This TensorFlow (tensorflow-cpu 2.21.0) is a CPU-only build',
        problem:
          'This TensorFlow (tensorflow-cpu 2.21.0) is a CPU-only build. …',
        fix: 'Install the CUDA build, then restart the kernel.',
        commands: ['%pip uninstall -y tensorflow-cpu'],
        link: null
      },
      {
        code: 'arch_ptx_jit',
        severity: 'info',
        title: 'a note',
        problem: 'a note.',
        fix: 'fine',
        commands: [],
        link: null
      }
    ]
  }
};

describe('describeTensorFlow', () => {
  it('shows the server’s headline, every blocking cause and its commands, in its order', () => {
    const out = describeTensorFlow(cpuOnly);
    expect(out.headline).toBe(cpuOnly.verdict.headline);
    expect(out.why).toEqual([
      'The NVIDIA driver’s library libcuda.so.1 does not load. …',
      'This TensorFlow (tensorflow-cpu 2.21.0) is a CPU-only build. …'
    ]);
    expect(out.commands).toEqual(cpuOnly.verdict.fix_commands);
    expect(out.ok).toBe(false);
  });

  it('composes no text of its own: a probe that failed shows its reason as the headline', () => {
    const reply = {
      ...base,
      status: 'timeout',
      tensorflow: null,
      reason: 'The TensorFlow probe did not finish within 60 s.',
      hint: 'Run nvidia-smi.',
      verdict: { ...base.verdict, ok: false, tf_gpus: null }
    };
    const out = describeTensorFlow(reply);
    expect(out.headline).toBe(
      'The TensorFlow probe did not finish within 60 s'
    );
    // the reason is the headline already: Why says only what comes on top
    expect(out.why).toEqual(['Run nvidia-smi.']);
    expect(out.commands).toEqual([]);
  });
});

describe('TensorFlowCheck', () => {
  it('renders one headline, a Why / Fix expander with the commands as code, and the insert button', async () => {
    const inserted: number[] = [];
    const check = new TensorFlowCheck(ServerConnection.makeSettings(), {
      insertVerificationCell: () => inserted.push(1)
    });
    (check as any)._kernelId = 'k';
    (check as any)._show(describeTensorFlow(cpuOnly));
    const node = check.node;
    expect(node.querySelectorAll('.jp-kerasgpu-tf-text')).toHaveLength(1);
    expect(node.querySelector('.jp-kerasgpu-tf-text')!.textContent).toBe(
      cpuOnly.verdict.headline
    );
    const details = node.querySelector('details')!;
    expect(details.open).toBe(false);
    expect(details.querySelector('summary')!.textContent).toBe('Why / Fix');
    expect(details.querySelector('pre code')!.textContent).toBe(
      cpuOnly.verdict.fix_commands!.join('\n')
    );
    const button = node.querySelector(
      'button.jp-kerasgpu-tf-insert'
    ) as HTMLButtonElement;
    expect(button.textContent).toBe('Insert GPU Verification Cell');
    button.click();
    expect(inserted).toEqual([1]);
  });
});

describe('hints', () => {
  it('show `backticked` commands as code, never as HTML', () => {
    const box = document.createElement('p');
    box.append(
      ...withCode(
        'Check that `jupyter server extension list` shows <b>kerasgpu</b>.'
      )
    );
    expect(box.querySelector('code')?.textContent).toBe(
      'jupyter server extension list'
    );
    expect(box.textContent).not.toContain('`');
    expect(box.querySelector('b')).toBeNull();
  });
});
