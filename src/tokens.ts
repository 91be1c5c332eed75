import { Token } from '@lumino/coreutils';

import type { GpuModel } from './model';

/** The page's GPU model: live readings, history and processes, shared by every view. */
export const IGpuModel = new Token<GpuModel>(
  'jupyterlab-kerasgpu:IGpuModel',
  'The live GPU readings of the page.'
);
