import { ISignal, Signal } from '@lumino/signaling';

import { formatClockTime } from '../format';
import { DisposableModel } from './disposable';

/** The comm target the kernel extension opens (python_ext/kerasgpu/kernel/comm.py). */
export const COMM_TARGET = 'kerasgpu';

/** A bottleneck finding of the kernel's training monitor. */
export interface ITrainingFinding {
  code: string;
  level: 'warning' | 'info' | string;
  title: string;
  evidence: string;
  fix: string;
  /** The kernel's one verdict, when the finding is about it (fix_commands: in the order to run them). */
  data?: { headline?: string; fix_commands?: string[] } & Record<
    string,
    unknown
  >;
}

/** The notebook tool that makes a finding's pipeline changes in the user's cell (planner "input_pipeline"). */
export interface IPipelineFix {
  /** The user's variable name of the dataset (or arrays) fit was given. */
  dataset: string;
  /** The planner's fixes, e.g. "prefetch", "cache", "parallel_map", "from_tensor_slices". */
  fixes: string[];
}

/** A change with a measured saving on the rest of the run (guard.savings). */
export interface IDeadlineOption {
  change: string;
  saving_s: number;
  how?: string;
  /** The run's end with this change (epoch seconds). */
  projected_end?: number;
}

/** Whether the run makes its deadline at the measured pace (guard.verdict). */
export interface IDeadlineVerdict {
  meets: boolean;
  projected_end: number;
  deadline: number;
  best: IDeadlineOption | null;
  text?: string;
  best_text?: string;
}

/** This run against the last run of the same model (receipts.compare). */
export interface IRunComparison {
  text: string;
  /** > 1: faster than the last run. */
  speedup: number;
  changes: string[];
}

/** One progress message of a running `fit` (the comm's `data`, type "training"). */
export interface ITrainingMessage {
  type: 'training';
  status: 'running' | 'done' | 'stopped';
  fit_id: number;
  epoch: number;
  epochs: number;
  step: number;
  steps: number | null;
  progress: number | null;
  step_time_s: number | null;
  samples_per_s: number | null;
  batch_size: number | null;
  remaining_s: number | null;
  /** Epoch seconds. */
  eta: number | null;
  deadline: number | null;
  device: 'gpu' | 'cpu' | string;
  gpus: number[];
  gpu_util_pct: number | null;
  finding: ITrainingFinding | null;
  /** Every finding, the most important first (`finding` is the first). */
  findings?: ITrainingFinding[];
  /** 0..1 of a warm step spent waiting for its input. */
  input_share?: number | null;
  /** "highly input-bound" | "moderately input-bound" | "not input-bound". */
  input_level?: string | null;
  deadline_verdict?: IDeadlineVerdict | null;
  /** Epoch seconds of the last BackupAndRestore save. */
  checkpoint_time?: number | null;
  /** Its save_freq, in steps. */
  checkpoint_every?: number | null;
  /** When this fit resumed from a backup: the epoch (0-based) and when it was saved. */
  resumed?: { epoch: number; saved_at: number } | null;
  compare?: IRunComparison | null;
  time: number;
}

/** What the panel shows for one notebook's kernel. */
export interface ITrainingState {
  /** The notebook's path (the key). */
  key: string;
  /** The notebook's name. */
  label: string;
  message: ITrainingMessage;
  /** When the latest message arrived (ms, this browser's clock). */
  receivedAt: number;
}

/** Whether `data` is a training progress message (anything else on the comm is ignored). */
export function isTrainingMessage(data: unknown): data is ITrainingMessage {
  const d = data as ITrainingMessage | null;
  return (
    !!d &&
    typeof d === 'object' &&
    d.type === 'training' &&
    typeof d.fit_id === 'number' &&
    typeof d.epochs === 'number' &&
    ['running', 'done', 'stopped'].includes(d.status)
  );
}

/** "3 s", "12 min", "3.5 h", "50 h", "5.2 days" (as the kernel writes durations). */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '–';
  }
  const s = Math.max(0, seconds);
  if (s < 90) {
    return `${Math.round(s)} s`;
  }
  if (s < 90 * 60) {
    return `${Math.round(s / 60)} min`;
  }
  if (s < 100 * 3600) {
    const h = s / 3600;
    return h < 10 ? `${h.toFixed(1)} h` : `${Math.round(h)} h`;
  }
  return `${(s / 86400).toFixed(1)} days`;
}

/** A clock time for an ETA in the user's locale: "14:32" today, "Tue 09:10" within a week, else the date. */
export function formatEta(
  epochSeconds: number | null,
  now: Date = new Date(),
  locale?: string
): string {
  if (epochSeconds === null || !isFinite(epochSeconds)) {
    return '–';
  }
  const t = new Date(epochSeconds * 1000);
  const hm = formatClockTime(t, false, locale);
  const day = (d: Date) =>
    new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(t) - day(now)) / 86_400_000);
  if (days === 0) {
    return hm;
  }
  if (days > 0 && days < 7) {
    return `${t.toLocaleDateString(locale, { weekday: 'short' })} ${hm}`;
  }
  return `${t.toLocaleDateString(locale)} ${hm}`;
}

/** The lines of a training card, from one message (pure: what the view renders). */
export interface ITrainingSummary {
  title: string;
  /** 0..100 for the progress bar. */
  percent: number;
  progressText: string;
  speed: string;
  eta: string;
  gpu: string;
  /** "input wait 39 %" beside the GPU's busy %, or '' before it is measured. */
  input: string;
  /** The input share's level and its rule, for a tooltip. */
  inputHelp: string;
  /** "deadline Tue 18:00", or '' without one. */
  deadline: string;
  /** The deadline verdict: "on track: ends 16:10, 1.8 h to spare", or '' without one. */
  verdict: string;
  /** Whether the deadline will be missed (a deadline finding came, or the verdict says so). */
  late: boolean;
  /** "last checkpoint 4 min ago (every 500 steps)", with "resumed from …" when it did; or ''. */
  checkpoint: string;
  /** The comparison with the last run of the same model, or ''. */
  compare: string;
  finding: ITrainingFinding | null;
  /** Every finding, the most important first. */
  findings: ITrainingFinding[];
  /** The one-click input-pipeline fix a finding offers, or null. */
  pipelineFix: IPipelineFix | null;
}

/** "input wait 39 %" and its level, or '' before it is measured. */
function inputText(m: ITrainingMessage): [string, string] {
  const share = m.input_share;
  if (share === null || share === undefined || !isFinite(share)) {
    return ['', ''];
  }
  const level = m.input_level ?? '';
  return [
    `input wait ${Math.round(share * 100)} %`,
    `${level ? level[0].toUpperCase() + level.slice(1) : 'Input wait'}: each step waits ` +
      `${Math.round(share * 100)} % of its time for its next batch ` +
      "(TensorBoard's Input Pipeline Analyzer: >= 20 % highly, >= 5 % moderately input-bound)"
  ];
}

/** The deadline verdict in the user's clock format. */
function verdictText(
  v: IDeadlineVerdict | null | undefined,
  now: Date,
  locale?: string
): string {
  if (!v) {
    return '';
  }
  const end = formatEta(v.projected_end, now, locale);
  const deadline = formatEta(v.deadline, now, locale);
  if (v.meets) {
    return `on track for ${deadline}: ends ${end}, ${formatDuration(v.deadline - v.projected_end)} to spare`;
  }
  let text = `misses ${deadline}: ends ${end}, ${formatDuration(v.projected_end - v.deadline)} late`;
  const best = v.best;
  if (best) {
    const bestEnd = best.projected_end ?? v.projected_end - best.saving_s;
    text +=
      `; largest measured saving: ${best.change}, ${formatDuration(best.saving_s)} ` +
      `(ends ${formatEta(bestEnd, now, locale)}, ${bestEnd <= v.deadline ? 'in time' : 'still late'})`;
  }
  return text;
}

/** The last checkpoint's age and a resume, or ''. */
function checkpointText(
  m: ITrainingMessage,
  now: Date,
  locale?: string
): string {
  const parts: string[] = [];
  if (m.checkpoint_time) {
    const age = Math.max(0, now.getTime() / 1000 - m.checkpoint_time);
    parts.push(
      `last checkpoint ${formatDuration(age)} ago` +
        (m.checkpoint_every ? ` (every ${m.checkpoint_every} steps)` : '')
    );
  }
  if (m.resumed) {
    parts.push(
      `resumed from the checkpoint of ${formatEta(m.resumed.saved_at, now, locale)} (epoch ${m.resumed.epoch + 1})`
    );
  }
  return parts.join(' · ');
}

/** "vs the last run: input wait 62 % → 4 %, step 41 ms → 15 ms (2.7x)" (what changed is in its finding). */
function compareText(c: IRunComparison | null | undefined): string {
  if (!c?.text) {
    return '';
  }
  // receipts.compare: "<how fast> than the run of <time>: <changes>; <measurements>"
  const cut = c.text.lastIndexOf('; ');
  const measured = cut >= 0 ? c.text.slice(cut + 2) : c.text;
  // a number stays with its unit when the line wraps
  return `vs the last run: ${measured.replace(/ -> /g, ' → ').replace(/ (%|ms)/g, '\u00a0$1')}`;
}

/** The first finding that offers the input-pipeline fix (the notebook tool's options), or null. */
export function pipelineFixOf(
  findings: readonly ITrainingFinding[]
): IPipelineFix | null {
  for (const f of findings) {
    const fix = f.data?.pipeline_fix as IPipelineFix | undefined;
    if (
      fix &&
      typeof fix.dataset === 'string' &&
      fix.dataset &&
      Array.isArray(fix.fixes) &&
      fix.fixes.length > 0
    ) {
      return { dataset: fix.dataset, fixes: fix.fixes.map(String) };
    }
  }
  return null;
}

/** Turns a progress message into what the card shows. */
export function summarize(
  state: ITrainingState,
  now: Date = new Date(),
  locale?: string
): ITrainingSummary {
  const m = state.message;
  const percent = Math.max(0, Math.min(100, (m.progress ?? 0) * 100));
  const word =
    m.status === 'running'
      ? 'Training'
      : m.status === 'done'
        ? 'Trained'
        : 'Stopped';
  const steps = m.steps ? `step ${m.step}/${m.steps}` : `step ${m.step}`;
  const speed = [
    m.samples_per_s !== null
      ? `${Math.round(m.samples_per_s).toLocaleString('en-US')} samples/s`
      : null,
    m.step_time_s !== null
      ? `${(m.step_time_s * 1000).toFixed(1)} ms/step`
      : null
  ]
    .filter(Boolean)
    .join(' · ');
  let eta = '';
  if (m.status === 'running' && m.eta !== null) {
    eta = `ETA ${formatEta(m.eta, now, locale)} (in ${formatDuration(m.remaining_s)})`;
  } else if (m.status === 'done') {
    eta = 'finished';
  } else if (m.status === 'stopped') {
    eta = 'stopped before the end';
  }
  let gpu: string;
  // nvidia-smi may list the kernel's pid while its TensorFlow trains on the CPU: the device decides.
  if (m.gpus.length && m.device === 'gpu') {
    const util =
      m.gpu_util_pct === null ? '–' : `${Math.round(m.gpu_util_pct)} %`;
    gpu = `GPU ${m.gpus.join(', ')} busy ${util}`;
  } else {
    gpu = 'on the CPU';
  }
  const findings = m.findings?.length
    ? m.findings
    : m.finding
      ? [m.finding]
      : [];
  const [input, inputHelp] = inputText(m);
  return {
    title: `${word}: ${state.label}`,
    percent,
    progressText: `epoch ${m.epoch}/${m.epochs} · ${steps} · ${Math.round(percent)} %`,
    speed,
    eta,
    gpu,
    deadline:
      m.deadline !== null
        ? `deadline ${formatEta(m.deadline, now, locale)}`
        : '',
    input,
    inputHelp,
    verdict: verdictText(m.deadline_verdict, now, locale),
    late:
      m.finding?.code === 'deadline_miss' ||
      m.finding?.code === 'deadline_missed' ||
      m.deadline_verdict?.meets === false,
    checkpoint: checkpointText(m, now, locale),
    compare: compareText(m.compare),
    finding: m.finding ?? findings[0] ?? null,
    findings,
    pipelineFix: pipelineFixOf(findings)
  };
}

/**
 * Training progress of each notebook's kernel, fed by the kernels' `kerasgpu`
 * comms (see training-comm.ts). Views listen to `changed`; they never talk to a comm.
 */
export class TrainingModel extends DisposableModel {
  /** Emits the key of the notebook whose training changed (or was removed). */
  get changed(): ISignal<this, string> {
    return this._changed;
  }

  /** Every notebook with a training to show, oldest first. */
  get states(): ITrainingState[] {
    return [...this._states.values()];
  }

  get(key: string): ITrainingState | undefined {
    return this._states.get(key);
  }

  /** The input-pipeline fix the last fit of notebook `key` offers, or null. */
  pipelineFix(key: string): IPipelineFix | null {
    const m = this._states.get(key)?.message;
    if (!m) {
      return null;
    }
    return pipelineFixOf(
      m.findings?.length ? m.findings : m.finding ? [m.finding] : []
    );
  }

  /** Takes one comm message for notebook `key`; returns whether it was a training message. */
  receive(
    key: string,
    label: string,
    data: unknown,
    now = Date.now()
  ): boolean {
    if (this.isDisposed || !isTrainingMessage(data)) {
      return false;
    }
    const prev = this._states.get(key);
    // a late message of an older fit must not replace a newer one
    if (prev && prev.message.fit_id > data.fit_id) {
      return false;
    }
    this._states.set(key, { key, label, message: data, receivedAt: now });
    this._changed.emit(key);
    return true;
  }

  /** Forgets notebook `key` (its kernel stopped, restarted or the notebook closed). */
  remove(key: string): void {
    if (this._states.delete(key)) {
      this._changed.emit(key);
    }
  }

  protected onDispose(): void {
    this._states.clear();
    Signal.clearData(this);
  }

  private _states = new Map<string, ITrainingState>();
  private _changed = new Signal<this, string>(this);
}
