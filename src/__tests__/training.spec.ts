import {
  formatDuration,
  formatEta,
  IPipelineFix,
  isTrainingMessage,
  ITrainingFinding,
  ITrainingMessage,
  pipelineFixOf,
  summarize,
  TrainingModel
} from '../models/training';
import { TrainingCards } from '../views/training-card';
import { labelOf, TrainingConnector } from '../models/training-comm';
import { Signal } from '@lumino/signaling';

/** A message as the kernel's monitor sends it (python_ext/kerasgpu/kernel/train/monitor.py). */
function message(over: Partial<ITrainingMessage> = {}): ITrainingMessage {
  return {
    type: 'training',
    status: 'running',
    fit_id: 1,
    epoch: 2,
    epochs: 10,
    step: 150,
    steps: 500,
    progress: 0.13,
    step_time_s: 0.0123,
    samples_per_s: 5203.4,
    batch_size: 64,
    remaining_s: 5400,
    eta: new Date(2026, 10, 29, 14, 32).getTime() / 1000,
    deadline: null,
    device: 'gpu',
    gpus: [0],
    gpu_util_pct: 31.6,
    finding: {
      code: 'input_starving',
      level: 'warning',
      title: 'The GPU waits for its input',
      evidence: 'GPU 0 busy 30 % on average',
      fix: 'prefetch(tf.data.AUTOTUNE)'
    },
    time: 0,
    ...over
  };
}

const NOW = new Date(2026, 10, 29, 13, 2);

describe('training messages', () => {
  it('accepts what the kernel sends and nothing else on the comm', () => {
    expect(isTrainingMessage(message())).toBe(true);
    expect(isTrainingMessage({ type: 'hello', protocol: 1 })).toBe(false);
    expect(isTrainingMessage(null)).toBe(false);
    expect(isTrainingMessage({ ...message(), status: 'weird' })).toBe(false);
  });

  it('writes durations and ETAs the way the kernel does', () => {
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(5400)).toBe('1.5 h');
    expect(formatDuration(50 * 3600)).toBe('50 h');
    expect(formatDuration(null)).toBe('–');
    // the user's locale decides (one format in every view): 24 h in en-GB, AM/PM in en-US
    const at = (d: Date, locale: string) =>
      formatEta(d.getTime() / 1000, NOW, locale);
    expect(at(new Date(2026, 10, 29, 14, 32), 'en-GB')).toBe('14:32');
    expect(at(new Date(2026, 10, 29, 14, 32), 'en-US')).toBe('02:32 PM');
    expect(at(new Date(2026, 11, 1, 18, 0), 'en-GB')).toBe('Tue 18:00');
    expect(at(new Date(2027, 0, 5, 8, 5), 'en-GB')).toBe('05/01/2027 08:05');
  });

  it('summarizes progress, speed, ETA, GPU use and the latest finding', () => {
    const s = summarize(
      {
        key: 'a/train.ipynb',
        label: 'train.ipynb',
        message: message(),
        receivedAt: 0
      },
      NOW,
      'en-GB'
    );
    expect(s.title).toBe('Training: train.ipynb');
    expect(s.percent).toBeCloseTo(13);
    expect(s.progressText).toBe('epoch 2/10 · step 150/500 · 13 %');
    expect(s.speed).toBe('5,203 samples/s · 12.3 ms/step');
    expect(s.eta).toBe('ETA 14:32 (in 1.5 h)');
    expect(s.gpu).toBe('GPU 0 busy 32 %');
    expect(s.finding?.code).toBe('input_starving');
    expect(s.deadline).toBe('');
    const withDeadline = summarize(
      {
        key: 'k',
        label: 'k',
        message: message({
          deadline: new Date(2026, 11, 1, 18, 0).getTime() / 1000
        }),
        receivedAt: 0
      },
      NOW,
      'en-GB'
    );
    expect(withDeadline.deadline).toBe('deadline Tue 18:00');
    const cpu = summarize(
      {
        key: 'k',
        label: 'k',
        message: message({ gpus: [], device: 'cpu', status: 'done' }),
        receivedAt: 0
      },
      NOW
    );
    expect(cpu.gpu).toBe('on the CPU');
    expect(cpu.eta).toBe('finished');
    // nvidia-smi lists the kernel's pid, but its TensorFlow trains on the CPU: no GPU claim
    const listed = summarize(
      {
        key: 'k',
        label: 'k',
        message: message({ gpus: [0], device: 'cpu' }),
        receivedAt: 0
      },
      NOW
    );
    expect(listed.gpu).toBe('on the CPU');
  });
});

describe('TrainingModel', () => {
  it('keeps one state per notebook, newest fit wins, and forgets on remove', () => {
    const model = new TrainingModel();
    const changes: string[] = [];
    model.changed.connect((_, key) => changes.push(key));
    expect(model.receive('a.ipynb', 'a.ipynb', { type: 'hello' })).toBe(false);
    expect(model.receive('a.ipynb', 'a.ipynb', message({ fit_id: 2 }))).toBe(
      true
    );
    expect(model.receive('a.ipynb', 'a.ipynb', message({ fit_id: 1 }))).toBe(
      false
    );
    expect(model.receive('b.ipynb', 'b.ipynb', message())).toBe(true);
    expect(model.states.map(s => s.key)).toEqual(['a.ipynb', 'b.ipynb']);
    model.remove('a.ipynb');
    model.remove('nothing');
    expect(model.states.map(s => s.key)).toEqual(['b.ipynb']);
    expect(changes).toEqual(['a.ipynb', 'b.ipynb', 'a.ipynb']);
    model.dispose();
    expect(model.receive('c', 'c', message())).toBe(false);
  });
});

describe('TrainingCards', () => {
  it('renders a card per notebook from the model and hides when there is none', () => {
    const model = new TrainingModel();
    const view = new TrainingCards({ model });
    expect(view.node.hidden).toBe(true);
    model.receive('dir/train.ipynb', labelOf('dir/train.ipynb'), message());
    expect(view.node.hidden).toBe(false);
    const card = view.node.querySelector(
      '.jp-kerasgpu-training-card'
    ) as HTMLElement;
    expect(card.dataset.notebook).toBe('dir/train.ipynb');
    expect(card.dataset.warning).toBe('true');
    expect(card.querySelector('h3')?.textContent).toBe('Training: train.ipynb');
    const bar = card.querySelector('[role=progressbar]') as HTMLElement;
    expect(bar.getAttribute('aria-valuenow')).toBe('13');
    expect(card.querySelector('.jp-kerasgpu-training-gpu')?.textContent).toBe(
      'GPU 0 busy 32 %'
    );
    expect(
      card.querySelector('.jp-kerasgpu-training-finding')?.textContent
    ).toContain('The GPU waits for its input: GPU 0 busy 30 % on average');
    model.remove('dir/train.ipynb'); // the kernel stopped
    expect(
      view.node.querySelectorAll('.jp-kerasgpu-training-card')
    ).toHaveLength(0);
    expect(view.node.hidden).toBe(true);
    view.dispose();
    model.dispose();
  });
});

describe('the input wait, the deadline guard and the checkpoint', () => {
  const NOW_S = NOW.getTime() / 1000;
  /** A fit as the monitor sends it with a deadline, a backup, a receipt and a pipeline finding. */
  const guarded = (over: Partial<ITrainingMessage> = {}): ITrainingMessage => {
    const pipeline: ITrainingFinding = {
      code: 'input_bound',
      level: 'warning',
      title: 'Highly input-bound: steps wait for their input',
      evidence: 'Each step waits 25 ms of its 41 ms for the next batch',
      fix: 'In the cell that builds the input: `ds.prefetch(tf.data.AUTOTUNE)`',
      data: {
        input_share: 0.62,
        pipeline_fix: { dataset: 'train_ds', fixes: ['prefetch', 'cache'] }
      }
    };
    const backup: ITrainingFinding = {
      code: 'protect_progress',
      level: 'info',
      title: 'Progress is lost if the kernel stops',
      evidence: 'the run takes 50 h',
      fix: 'Add callbacks=[...]'
    };
    return message({
      input_share: 0.6234,
      input_level: 'highly input-bound',
      deadline: NOW_S + 36 * 3600,
      deadline_verdict: {
        meets: false,
        projected_end: NOW_S + 50 * 3600,
        deadline: NOW_S + 36 * 3600,
        best: {
          change: 'the input pipeline fix',
          saving_s: 20 * 3600,
          how: 'prefetch'
        },
        text: 'will miss the deadline'
      },
      checkpoint_time: NOW_S - 240,
      checkpoint_every: 500,
      resumed: {
        epoch: 2,
        saved_at: new Date(2026, 10, 29, 12, 40).getTime() / 1000
      },
      compare: {
        text: '2.7x faster than the run of 12:02: batch 64 -> 256; input wait 62 % -> 4 %, step 41 ms -> 15 ms (2.7x)',
        speedup: 2.7,
        changes: ['batch 64 -> 256']
      },
      finding: pipeline,
      findings: [pipeline, backup],
      ...over
    });
  };
  const state = (m: ITrainingMessage) => ({
    key: 'work/train.ipynb',
    label: 'train.ipynb',
    message: m,
    receivedAt: 0
  });

  it("says the input share beside the GPU, the verdict in the user's clock, the checkpoint's age", () => {
    const s = summarize(state(guarded()), NOW, 'en-GB');
    expect(s.gpu).toBe('GPU 0 busy 32 %');
    expect(s.input).toBe('input wait 62 %');
    expect(s.inputHelp).toMatch(/^Highly input-bound: each step waits 62 %/);
    expect(s.verdict).toBe(
      'misses Tue 01:02: ends Tue 15:02, 14 h late; largest measured saving: ' +
        'the input pipeline fix, 20 h (ends Mon 19:02, in time)'
    );
    expect(s.late).toBe(true);
    expect(s.checkpoint).toBe(
      'last checkpoint 4 min ago (every 500 steps) · resumed from the checkpoint of 12:40 (epoch 3)'
    );
    expect(s.compare).toBe(
      'vs the last run: input wait 62\u00a0% → 4\u00a0%, step 41\u00a0ms → 15\u00a0ms (2.7x)'
    );
    expect(s.findings).toHaveLength(2);
    expect(s.pipelineFix).toEqual({
      dataset: 'train_ds',
      fixes: ['prefetch', 'cache']
    });
    const onTrack = summarize(
      state(
        guarded({
          deadline_verdict: {
            meets: true,
            projected_end: NOW_S + 3600,
            deadline: NOW_S + 3 * 3600,
            best: null
          }
        })
      ),
      NOW,
      'en-GB'
    );
    expect(onTrack.verdict).toBe(
      'on track for 16:02: ends 14:02, 2.0 h to spare'
    );
    expect(onTrack.late).toBe(false);
  });

  it('shows nothing of them before they are measured (an older kernel sends none)', () => {
    const s = summarize(state(message()), NOW, 'en-GB');
    expect([s.input, s.verdict, s.checkpoint, s.compare]).toEqual([
      '',
      '',
      '',
      ''
    ]);
    expect(s.pipelineFix).toBeNull();
    expect(s.findings).toHaveLength(1);
    expect(
      pipelineFixOf([
        {
          ...message().finding!,
          data: { pipeline_fix: { dataset: '', fixes: ['cache'] } }
        }
      ])
    ).toBeNull();
  });

  it('renders them on the card, the findings in one line, and the fix as a button', () => {
    const model = new TrainingModel();
    const fixes: [string, IPipelineFix][] = [];
    const view = new TrainingCards({
      model,
      fixPipeline: (key, fix) => fixes.push([key, fix])
    });
    model.receive(
      'work/train.ipynb',
      'train.ipynb',
      guarded({ checkpoint_time: Date.now() / 1000 - 240 })
    );
    const card = view.node.querySelector('.jp-kerasgpu-training-card')!;
    const line = card.querySelector<HTMLElement>('.jp-kerasgpu-training-line')!;
    expect(line.dataset.input).toBe('highly');
    expect(card.querySelector('.jp-kerasgpu-training-input')?.textContent).toBe(
      'input wait 62 %'
    );
    // beside the GPU's busy %
    expect(
      card.querySelector('.jp-kerasgpu-training-gpu')?.nextSibling?.textContent
    ).toBe(' · ');
    const verdict = card.querySelector<HTMLElement>(
      '.jp-kerasgpu-training-verdict'
    )!;
    expect(verdict.textContent).toMatch(/^misses /);
    expect(verdict.dataset.meets).toBe('false');
    // a verdict says the deadline: no second "deadline …" on the line
    expect(card.querySelector('.jp-kerasgpu-training-deadline')).toBeNull();
    expect(
      card.querySelector('.jp-kerasgpu-training-checkpoint')?.textContent
    ).toMatch(/^last checkpoint \d+ (s|min) ago \(every 500 steps\)/);
    expect(
      card.querySelector('.jp-kerasgpu-training-compare')?.textContent
    ).toContain('62\u00a0% → 4\u00a0%');
    const findings = card.querySelector<HTMLDetailsElement>(
      'details.jp-kerasgpu-training-findings'
    )!;
    expect(findings.open).toBe(false);
    expect(findings.querySelector('summary')?.textContent).toBe(
      'Highly input-bound: steps wait for their input+1 more'
    );
    expect(
      findings.querySelector('.jp-kerasgpu-training-finding')?.textContent
    ).toContain('Each step waits 25 ms');
    expect(
      findings.querySelector('.jp-kerasgpu-training-finding-more')?.textContent
    ).toContain('Progress is lost if the kernel stops');
    const button = card.querySelector<HTMLButtonElement>(
      '.jp-kerasgpu-training-pipeline-fix'
    )!;
    expect(button.textContent).toBe('Fix the input pipeline');
    button.click();
    expect(fixes).toEqual([
      [
        'work/train.ipynb',
        { dataset: 'train_ds', fixes: ['prefetch', 'cache'] }
      ]
    ]);
    // without a way to run the tool, no button
    const bare = new TrainingCards({ model });
    expect(
      bare.node.querySelector('.jp-kerasgpu-training-pipeline-fix')
    ).toBeNull();
    bare.dispose();
    view.dispose();
    model.dispose();
  });
});

/** Just what the connector uses of a notebook's session context and kernel. */
class FakeKernel {
  targets = new Map<string, (comm: any, msg: any) => void>();
  isDisposed = false;
  registerCommTarget(name: string, cb: (comm: any, msg: any) => void): void {
    this.targets.set(name, cb);
  }
  removeCommTarget(name: string): void {
    this.targets.delete(name);
  }
  /** Comms the kernel opened before the page connected (comm_info_reply). */
  existing: string[] = [];
  created: Record<string, any> = {};
  requestCommInfo(content: { target_name: string }): Promise<any> {
    const comms: Record<string, any> = {};
    if (content.target_name === 'kerasgpu') {
      for (const id of this.existing) {
        comms[id] = { target_name: 'kerasgpu' };
      }
    }
    return Promise.resolve({ content: { status: 'ok', comms } });
  }
  hasComm(id: string): boolean {
    return id in this.created;
  }
  createComm(target: string, id: string): any {
    this.created[id] = { target, id };
    return this.created[id];
  }
  /** The kernel extension opens its comm; returns the frontend's end. */
  open(): { onMsg: (m: any) => void; onClose: (m: any) => void } {
    const comm: any = {};
    this.targets.get('kerasgpu')!(comm, {});
    return comm;
  }
}

class FakeContext {
  path = 'work/train.ipynb';
  kernel = new FakeKernel();
  session = { kernel: this.kernel as any };
  kernelChanged = new Signal<this, any>(this);
  statusChanged = new Signal<this, string>(this);
  disposed = new Signal<this, void>(this);
}

describe('TrainingConnector', () => {
  it('feeds the model from the kernel comm and drops the card when the kernel stops', () => {
    const model = new TrainingModel();
    const ctx = new FakeContext();
    const conn = new TrainingConnector({ model, sessionContext: ctx as any });
    const comm = ctx.kernel.open();
    comm.onMsg({ content: { data: message() } });
    expect(model.get('work/train.ipynb')?.label).toBe('train.ipynb');
    ctx.statusChanged.emit('restarting');
    expect(model.states).toHaveLength(0);

    // a new kernel: the target moves to it, the old kernel's comm is forgotten
    const next = new FakeKernel();
    ctx.kernelChanged.emit({ newValue: next });
    expect(ctx.kernel.targets.size).toBe(0);
    const comm2 = next.open();
    comm2.onMsg({ content: { data: message({ fit_id: 1 }) } });
    expect(model.states).toHaveLength(1);
    comm2.onClose({});
    expect(model.states).toHaveLength(0);
    comm2.onMsg({ content: { data: message({ status: 'done' }) } });
    ctx.disposed.emit(); // the notebook closed
    expect(model.states).toHaveLength(0);
    expect(conn.isDisposed).toBe(true);
  });
});

describe('TrainingConnector after a page reload', () => {
  it('listens to the comm the kernel opened before the page connected', async () => {
    const model = new TrainingModel();
    const ctx = new FakeContext();
    ctx.kernel.existing = ['comm-from-before'];
    const conn = new TrainingConnector({ model, sessionContext: ctx as any });
    await Promise.resolve();
    await Promise.resolve();
    const comm = ctx.kernel.created['comm-from-before'];
    expect(comm.target).toBe('kerasgpu');
    comm.onMsg({ content: { data: message() } });
    expect(model.get('work/train.ipynb')?.message.epoch).toBe(2);
    conn.dispose();
    expect(model.states).toHaveLength(0);
  });
});
