import { withCode } from '../panel';
import { describeTensorFlow, ITensorFlowReply } from '../tfcheck';

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

describe('describeTensorFlow', () => {
  it('says how many of the driver’s GPUs TensorFlow sees', () => {
    expect(describeTensorFlow(base)).toEqual({
      text: 'TensorFlow 2.21.0 sees 1 of 1 GPU',
      problem: null,
      ok: true
    });
  });

  it('flags fewer GPUs than the driver has, with the reason', () => {
    const reply = {
      ...base,
      verdict: {
        ...base.verdict,
        tf_gpus: 0,
        driver_gpus: 4,
        ok: false,
        reason: 'This TensorFlow is the CPU-only build.'
      }
    };
    expect(describeTensorFlow(reply)).toEqual({
      text: 'TensorFlow 2.21.0 sees 0 of 4 GPUs',
      problem: 'This TensorFlow is the CPU-only build.',
      ok: false
    });
  });

  it('says "no GPU" in words, not "0 of 0", on a machine without one', () => {
    const reply = {
      ...base,
      verdict: { ...base.verdict, tf_gpus: 0, driver_gpus: 0, ok: false }
    };
    const out = describeTensorFlow(reply);
    expect(out.text).toBe(
      'TensorFlow 2.21.0 sees no GPU (the driver reports none)'
    );
    expect(out.text).not.toContain('0 of 0');
  });

  it('explains a kernel without TensorFlow', () => {
    const reply = {
      ...base,
      status: 'not_installed',
      tensorflow: null,
      reason: 'TensorFlow is not installed in this kernel’s environment.',
      hint: 'pip install tensorflow[and-cuda] in that environment'
    };
    const out = describeTensorFlow(reply);
    expect(out.ok).toBe(false);
    expect(out.text).toContain('not installed');
    expect(out.problem).toContain('pip install');
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
