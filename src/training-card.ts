import { Widget } from '@lumino/widgets';

import { ITrainingState, summarize, TrainingModel } from './training';
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
    this.node.replaceChildren(...states.map(s => card(s)));
  }

  private _model: TrainingModel;
}

/** One notebook's card. */
function card(state: ITrainingState): HTMLElement {
  const s = summarize(state);
  const root = el('article', 'jp-kerasgpu-training-card');
  root.dataset.state = state.message.status;
  root.dataset.notebook = state.key;
  if (s.late || s.finding?.level === 'warning') {
    root.dataset.warning = 'true';
  }
  root.appendChild(el('h3', 'jp-kerasgpu-training-title', s.title));
  const bar = el('div', 'jp-kerasgpu-training-bar');
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', String(Math.round(s.percent)));
  const fill = el('div', 'jp-kerasgpu-training-fill');
  fill.style.width = `${s.percent.toFixed(1)}%`;
  bar.appendChild(fill);
  root.appendChild(bar);
  root.appendChild(el('div', 'jp-kerasgpu-training-progress', s.progressText));
  const line = el('div', 'jp-kerasgpu-training-line');
  for (const [cls, text] of [
    ['jp-kerasgpu-training-eta', s.eta],
    ['jp-kerasgpu-training-speed', s.speed],
    ['jp-kerasgpu-training-gpu', s.gpu],
    ['jp-kerasgpu-training-deadline', s.deadline]
  ]) {
    if (text) {
      line.appendChild(el('span', cls, text));
    }
  }
  root.appendChild(line);
  if (s.finding) {
    const f = el('div', 'jp-kerasgpu-training-finding');
    f.dataset.level = s.finding.level;
    f.appendChild(el('strong', '', s.finding.title));
    f.appendChild(document.createTextNode(`: ${s.finding.evidence}`));
    const commands = s.finding.data?.fix_commands;
    if (commands?.length) {
      // The kernel's verdict: its fixes as copyable code, in order (as the panel shows them).
      // Collapsed: the GPU rows stay on screen; the same commands are in the TensorFlow box above.
      const fix = el('details', 'jp-kerasgpu-training-fix');
      fix.appendChild(el('summary', '', 'Fix, in this order'));
      fix.appendChild(commandBlock(commands));
      f.appendChild(fix);
    } else {
      f.title = `Fix: ${s.finding.fix}`;
      f.appendChild(
        el('div', 'jp-kerasgpu-training-fix', `Fix: ${s.finding.fix}`)
      );
    }
    root.appendChild(f);
  }
  return root;
}

export namespace TrainingCards {
  export interface IOptions {
    model: TrainingModel;
  }
}
