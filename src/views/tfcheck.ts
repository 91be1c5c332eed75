import { fetchTensorFlow, ITensorFlowReply } from '../api/tensorflow';
import { ServerConnection } from '@jupyterlab/services';

import { el } from './dom';
import { withCode } from './dom';

/** The verdict as the views show it: never composed here, only taken from the server's answer. */
export interface IVerdictView {
  /** "TensorFlow in this notebook sees 0 of 1 GPU: CPU-only build". */
  headline: string;
  /** Why: each blocking cause in full. */
  why: string[];
  /** Fix: each cause's fix in words. */
  fixes: string[];
  /** The commands to run, in order. */
  commands: string[];
  /** Headline and commands as plain text. */
  text: string;
  ok: boolean;
}

/** The server's verdict for the views (headline, why, fix and commands, as the server words them). */
export function describeTensorFlow(reply: ITensorFlowReply): IVerdictView {
  const v = reply.verdict;
  const headline = (v.headline || reply.reason || v.summary || '')
    .trim()
    .replace(/\.$/, '');
  const problems = (v.problems ?? []).filter(p => p.severity === 'blocking');
  const why = problems.length
    ? problems.map(p => p.problem)
    : [v.reason, reply.hint].filter((x): x is string => !!x && x !== headline);
  const fixes = problems.map(p => p.fix);
  const commands = v.fix_commands ?? [];
  return {
    headline: headline || 'TensorFlow could not be checked in this kernel',
    why,
    fixes,
    commands,
    text: v.text ?? (headline ? `${headline}.` : ''),
    ok: v.ok
  };
}

/**
 * The panel's line about the current notebook's kernel: does TensorFlow there
 * see the GPUs the driver has? Asked of the server, which probes the kernel's
 * own Python (cached there), never in the browser.
 */
export class TensorFlowCheck {
  constructor(
    serverSettings: ServerConnection.ISettings,
    options: TensorFlowCheck.IOptions = {}
  ) {
    this._settings = serverSettings;
    this._insertCell = options.insertVerificationCell ?? null;
    this.node = document.createElement('div');
    this.node.className = 'jp-kerasgpu-tf';
    this.node.setAttribute('aria-live', 'polite');
    this.node.hidden = true;
  }

  /** The line's element, placed by the panel. */
  readonly node: HTMLElement;

  /** The latest answer shown (null: none yet, or no notebook). */
  get reply(): ITensorFlowReply | null {
    return this._reply;
  }

  /** Checks the kernel with this id (null: no notebook, nothing shown). */
  async check(kernelId: string | null, refresh = false): Promise<void> {
    if (kernelId && kernelId === this._kernelId && !refresh) {
      return; // already shown (or on its way) for this kernel
    }
    this._kernelId = kernelId;
    this._reply = null;
    if (!kernelId) {
      this.node.hidden = true;
      return;
    }
    this.node.hidden = false;
    this._showBusy();
    await this._ask(kernelId, refresh);
  }

  /**
   * Asks again for the same kernel without re-probing it (the server's cache): the
   * driver's state changed, and the verdict must not contradict the panel above it.
   */
  async recheck(): Promise<void> {
    if (this._kernelId) {
      await this._ask(this._kernelId, false);
    }
  }

  private async _ask(kernelId: string, refresh: boolean): Promise<void> {
    let reply: ITensorFlowReply;
    try {
      reply = await fetchTensorFlow(kernelId, refresh, this._settings);
    } catch (error) {
      if (this._kernelId === kernelId) {
        this._show({
          headline: 'TensorFlow could not be checked in this kernel',
          why: [(error as Error).message],
          fixes: [],
          commands: [],
          text: '',
          ok: false
        });
      }
      return;
    }
    if (this._kernelId !== kernelId) {
      return; // the user moved on to another notebook meanwhile
    }
    this._reply = reply;
    this._show(describeTensorFlow(reply));
  }

  private _showBusy(): void {
    this.node.replaceChildren(
      el(
        'p',
        'jp-kerasgpu-tf-text',
        'Checking TensorFlow in this notebook’s kernel…'
      )
    );
    this.node.dataset.kind = 'busy';
  }

  private _show(view: IVerdictView): void {
    this.node.replaceChildren();
    this.node.dataset.kind = view.ok ? 'ok' : 'problem';
    this.node.appendChild(el('p', 'jp-kerasgpu-tf-text', view.headline));
    const open = this._open;
    if (view.why.length || view.commands.length || view.fixes.length) {
      const details = el(
        'details',
        'jp-kerasgpu-tf-details'
      ) as HTMLDetailsElement;
      details.open = open;
      details.addEventListener('toggle', () => (this._open = details.open));
      details.appendChild(el('summary', '', view.ok ? 'Details' : 'Why / Fix'));
      for (const why of view.why) {
        details.appendChild(el('p', 'jp-kerasgpu-tf-why', why));
      }
      if (view.commands.length) {
        details.appendChild(
          el('p', 'jp-kerasgpu-tf-label', 'Fix, in this order:')
        );
        details.appendChild(commandBlock(view.commands));
      }
      for (const fix of view.fixes) {
        const p = el('p', 'jp-kerasgpu-tf-fix');
        p.append(...withCode(fix));
        details.appendChild(p);
      }
      this.node.appendChild(details);
    }
    if (this._insertCell && !view.ok) {
      const insert = el(
        'button',
        'jp-mod-styled jp-kerasgpu-tf-insert',
        'Insert GPU Verification Cell'
      ) as HTMLButtonElement;
      insert.type = 'button';
      insert.title =
        'Add the GPU verification cell (%gpu_check) at the top of this notebook';
      const run = this._insertCell;
      insert.addEventListener('click', () => run());
      this.node.appendChild(insert);
    }
  }

  private _insertCell: (() => void) | null;
  private _kernelId: string | null = null;
  private _open = false;
  private _reply: ITensorFlowReply | null = null;
  private _settings: ServerConnection.ISettings;
}

export namespace TensorFlowCheck {
  /** Options of the TensorFlow line. */
  export interface IOptions {
    /** Runs the notebook tools' "Insert GPU Verification Cell" command. */
    insertVerificationCell?: () => void;
  }
}

/** Commands as one copyable code block, with a Copy button. */
export function commandBlock(commands: string[]): HTMLElement {
  const box = el('div', 'jp-kerasgpu-commands');
  const pre = el('pre', 'jp-kerasgpu-commands-code');
  pre.appendChild(el('code', '', commands.join('\n')));
  const copy = el('button', 'jp-kerasgpu-copy', 'Copy') as HTMLButtonElement;
  copy.type = 'button';
  copy.title = 'Copy these commands (paste them into a notebook cell)';
  copy.addEventListener('click', () => {
    void navigator.clipboard?.writeText(commands.join('\n')).then(
      () => (copy.textContent = 'Copied'),
      () => undefined
    );
  });
  box.append(pre, copy);
  return box;
}
