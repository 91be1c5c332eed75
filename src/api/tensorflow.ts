/** The TensorFlow endpoint (python_ext/kerasgpu/server/tensorflow.py): what a kernel's TensorFlow sees. */
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';

/** A blocking cause of the verdict (python_ext/kerasgpu/core/diagnosis). */
export interface IVerdictProblem {
  code: string;
  severity: 'blocking' | 'info' | string;
  title: string;
  problem: string;
  fix: string;
  commands: string[];
  link: string | null;
}

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
    /** The one verdict every surface shows, worded by the server (diagnosis.verdict_text). */
    headline?: string | null;
    /** The fixes as code, in the order to run them. */
    fix_commands?: string[];
    /** Headline and fixes as plain text (the status bar's tooltip). */
    text?: string | null;
    problems?: IVerdictProblem[];
  };
}

/** GET tensorflow?kernel_id=…: the verdict for that kernel (`refresh`: past the server's cache). */
export function fetchTensorFlow(
  kernelId: string,
  refresh = false,
  settings?: ServerConnection.ISettings
): Promise<ITensorFlowReply> {
  return requestAPI<ITensorFlowReply>(
    `tensorflow?kernel_id=${encodeURIComponent(kernelId)}${refresh ? '&refresh=1' : ''}`,
    {},
    settings
  );
}
