import { Widget } from '@lumino/widgets';

import {
  IPipelineFix,
  ITrainingFinding,
  ITrainingState,
  summarize,
  TrainingModel
} from '../models/training';
import { el } from './dom';
import { commandBlock } from './tfcheck';

/**
 * The training cards of the GPU panel: one per notebook whose kernel reports a
 * `fit` (progress bar, ETA, samples/s, the GPU's utilization, the latest
 * finding). Renders from the `TrainingModel` only; hidden when there is none.
 */
export class TrainingCards extends Widget {
  constructor(options: TrainingCards.IOptions) {
    super({ node: document.createElement('section') });
    this.addClass('jp-kerasgpu-training');
    this.node.setAttribute('aria-label', 'Training');
    this._model = options.model;
    this._fixPipeline = options.fixPipeline ?? null;
    this._model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const states = this._model.states;
    this.node.hidden = states.length === 0;
    this.node.replaceChildren(...states.map(s => card(s, this._fixPipeline)));
  }

  private _fixPipeline: FixPipeline | null;
  private _model: TrainingModel;
}

/** Runs the input-pipeline fix for notebook `key` (the notebook tools' command). */
export type FixPipeline = (key: string, fix: IPipelineFix) => void;

/** One notebook's card: title, progress, one line of pace, then what needs saying, then the findings in one line. */
function card(
  state: ITrainingState,
  fixPipeline: FixPipeline | null
): HTMLElement {
  const s = summarize(state);
  const root = el('article', 'jp-kerasgpu-training-card');
  root.dataset.state = state.message.status;
  root.dataset.notebook = state.key;
  if (s.late || s.finding?.level === 'warning') {
    root.dataset.warning = 'true';
  }
  root.appendChild(el('h3', 'jp-kerasgpu-training-title', s.title));
  root.appendChild(progressBar(s.percent));
  root.appendChild(el('div', 'jp-kerasgpu-training-progress', s.progressText));
  const line = el('div', 'jp-kerasgpu-training-line');
  for (const [cls, text, help] of [
    ['jp-kerasgpu-training-eta', s.eta, ''],
    ['jp-kerasgpu-training-speed', s.speed, ''],
    ['jp-kerasgpu-training-gpu', s.gpu, ''],
    // beside the GPU's busy %: how much of each step waits for its input
    ['jp-kerasgpu-training-input', s.input, s.inputHelp],
    ['jp-kerasgpu-training-deadline', s.verdict ? '' : s.deadline, '']
  ]) {
    if (text) {
      const span = el('span', cls, text);
      if (help) {
        span.title = help;
      }
      // between the parts, where the line may wrap (each part stays whole)
      if (line.childNodes.length) {
        line.append(' · ');
      }
      line.appendChild(span);
    }
  }
  const level = state.message.input_level;
  if (level) {
    line.dataset.input = level.split(' ')[0];
  }
  root.appendChild(line);
  for (const [cls, text] of [
    ['jp-kerasgpu-training-verdict', s.verdict],
    ['jp-kerasgpu-training-checkpoint', s.checkpoint],
    ['jp-kerasgpu-training-compare', s.compare]
  ]) {
    if (text) {
      const row = el('div', cls, text);
      row.title = text;
      if (cls === 'jp-kerasgpu-training-verdict') {
        row.dataset.meets = String(!s.late);
      }
      root.appendChild(row);
    }
  }
  if (s.findings.length) {
    root.appendChild(findingsView(s.findings));
  }
  const offer = s.pipelineFix;
  if (offer && fixPipeline) {
    const button = el(
      'button',
      'jp-kerasgpu-training-pipeline-fix jp-mod-styled'
    );
    (button as HTMLButtonElement).type = 'button';
    button.textContent = 'Fix the input pipeline';
    button.title =
      `Edits the cell that builds ${offer.dataset} (${offer.fixes.join(', ')}); ` +
      'you see the change before it is made, and one undo takes it back';
    button.addEventListener('click', () => fixPipeline(state.key, offer));
    root.appendChild(button);
  }
  return root;
}

/** The fit's progress as a bar (0..100), exposed as a progressbar. */
function progressBar(percent: number): HTMLElement {
  const bar = el('div', 'jp-kerasgpu-training-bar');
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', String(Math.round(percent)));
  const fill = el('div', 'jp-kerasgpu-training-fill');
  fill.style.width = `${percent.toFixed(1)}%`;
  bar.appendChild(fill);
  return bar;
}

/** The findings, one line until opened: the first one's title (and how many more), then each in full. */
function findingsView(findings: readonly ITrainingFinding[]): HTMLElement {
  const box = el('details', 'jp-kerasgpu-training-findings');
  const first = findings[0];
  const summary = el('summary', '');
  summary.dataset.level = first.level;
  summary.appendChild(
    el('span', 'jp-kerasgpu-training-findings-title', first.title)
  );
  if (findings.length > 1) {
    summary.appendChild(
      el(
        'span',
        'jp-kerasgpu-training-findings-more',
        `+${findings.length - 1} more`
      )
    );
  }
  summary.title = findings.map(f => f.title).join('\n');
  box.appendChild(summary);
  findings.forEach((f, i) => {
    box.appendChild(
      findingView(
        f,
        i === 0
          ? 'jp-kerasgpu-training-finding'
          : 'jp-kerasgpu-training-finding-more'
      )
    );
  });
  return box;
}

/** One finding in full: title, evidence and its fix (the verdict's commands as copyable code). */
function findingView(finding: ITrainingFinding, cls: string): HTMLElement {
  const f = el('div', cls);
  f.dataset.level = finding.level;
  f.appendChild(el('strong', '', finding.title));
  f.appendChild(document.createTextNode(`: ${finding.evidence}`));
  const commands = finding.data?.fix_commands;
  if (commands?.length) {
    // The kernel's verdict: its fixes as copyable code, in order (as the panel shows them).
    f.appendChild(
      el('div', 'jp-kerasgpu-training-fix-head', 'Fix, in this order:')
    );
    f.appendChild(commandBlock(commands));
  } else if (finding.fix) {
    f.appendChild(el('div', 'jp-kerasgpu-training-fix', `Fix: ${finding.fix}`));
  }
  return f;
}

export namespace TrainingCards {
  export interface IOptions {
    model: TrainingModel;
    /** Runs a finding's input-pipeline fix in notebook `key`; without it, no button. */
    fixPipeline?: FixPipeline;
  }
}
