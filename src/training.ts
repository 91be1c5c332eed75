import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { formatClockTime } from './format';

/** The comm target the kernel extension opens (python_ext/kerasgpu/kernel/train/comm.py). */
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
  /** "deadline Tue 18:00", or '' without one. */
  deadline: string;
  /** Whether the deadline will be missed (a deadline finding came). */
  late: boolean;
  finding: ITrainingFinding | null;
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
    late:
      m.finding?.code === 'deadline_miss' ||
      m.finding?.code === 'deadline_missed',
    finding: m.finding
  };
}

/**
 * Training progress of each notebook's kernel, fed by the kernels' `kerasgpu`
 * comms (see training-comm.ts). Views listen to `changed`; they never talk to a comm.
 */
export class TrainingModel implements IDisposable {
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

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._states.clear();
    Signal.clearData(this);
  }

  private _states = new Map<string, ITrainingState>();
  private _changed = new Signal<this, string>(this);
  private _isDisposed = false;
}
