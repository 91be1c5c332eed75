import { requestAPI } from './request';
import { ServerConnection } from '@jupyterlab/services';

/** The verdict part of GET /kerasgpu/api/v1/tensorflow. */
export interface ITensorFlowReply {
  status: string;
  reason: string | null;
  hint: string | null;
  tensorflow: { version: string | null } | null;
  kernel: { id: string | null; name: string; display_name: string } | null;
  verdict: {
    tf_gpus: number | null;
    driver_gpus: number;
    ok: boolean;
    reason: string | null;
    fix: string | null;
    summary: string | null;
  };
}

/** "TensorFlow 2.21.0 sees 0 of 1 GPUs" and whether that is a problem. */
export function describeTensorFlow(reply: ITensorFlowReply): {
  text: string;
  problem: string | null;
  ok: boolean;
} {
  const v = reply.verdict;
  if (reply.status !== 'ok' || !reply.tensorflow) {
    return {
      text: reply.reason ?? 'TensorFlow could not be checked in this kernel.',
      problem: reply.hint,
      ok: false
    };
  }
  const version = reply.tensorflow.version ?? '';
  // "0 of 0 GPUs" reads as a count; with no GPU on the machine say it in words.
  const text =
    v.driver_gpus === 0
      ? `TensorFlow ${version} sees no GPU (the driver reports none)`
      : `TensorFlow ${version} sees ${v.tf_gpus ?? 0} of ${v.driver_gpus} GPU${v.driver_gpus === 1 ? '' : 's'}`;
  return {
    text,
    problem: v.ok ? null : (v.reason ?? v.summary ?? v.fix),
    ok: v.ok
  };
}

/**
 * The panel's line about the current notebook's kernel: does TensorFlow there
 * see the GPUs the driver has? Asked of the server, which probes the kernel's
 * own Python (cached there), never in the browser.
 */
export class TensorFlowCheck {
  constructor(serverSettings: ServerConnection.ISettings) {
    this._settings = serverSettings;
    this.node = document.createElement('div');
    this.node.className = 'jp-kerasgpu-tf';
    this.node.setAttribute('aria-live', 'polite');
    this.node.hidden = true;
  }

  /** The line's element, placed by the panel. */
  readonly node: HTMLElement;

  /** Checks the kernel with this id (null: no notebook, nothing shown). */
  async check(kernelId: string | null, refresh = false): Promise<void> {
    if (kernelId && kernelId === this._kernelId && !refresh) {
      return; // already shown (or on its way) for this kernel
    }
    this._kernelId = kernelId;
    if (!kernelId) {
      this.node.hidden = true;
      return;
    }
    this.node.hidden = false;
    this._show('Checking TensorFlow in this notebook’s kernel…', null, 'busy');
    let reply: ITensorFlowReply;
    try {
      reply = await requestAPI<ITensorFlowReply>(
        `tensorflow?kernel_id=${encodeURIComponent(kernelId)}${refresh ? '&refresh=1' : ''}`,
        {},
        this._settings
      );
    } catch (error) {
      if (this._kernelId === kernelId) {
        this._show(
          'TensorFlow could not be checked in this kernel.',
          (error as Error).message,
          'problem'
        );
      }
      return;
    }
    if (this._kernelId !== kernelId) {
      return; // the user moved on to another notebook meanwhile
    }
    const { text, problem, ok } = describeTensorFlow(reply);
    this._show(text, problem, ok ? 'ok' : 'problem');
  }

  private _show(text: string, problem: string | null, kind: string): void {
    this.node.replaceChildren();
    this.node.dataset.kind = kind;
    const line = document.createElement('p');
    line.className = 'jp-kerasgpu-tf-text';
    line.textContent = text;
    this.node.appendChild(line);
    if (problem) {
      const why = document.createElement('p');
      why.className = 'jp-kerasgpu-tf-problem';
      why.textContent = problem;
      this.node.appendChild(why);
    }
  }

  private _kernelId: string | null = null;
  private _settings: ServerConnection.ISettings;
}
