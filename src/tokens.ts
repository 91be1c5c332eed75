import { Token } from '@lumino/coreutils';

import type { GpuModel } from './models/model';
import type { TrainingModel } from './models/training';

/** The page's GPU model: live readings, history and processes, shared by every view. */
export const IGpuModel = new Token<GpuModel>(
  'jupyterlab-kerasgpu:IGpuModel',
  'The live GPU readings of the page.'
);

/** Each notebook's watched `fit`, from its kernel's `kerasgpu` comm, shared by the panel and the tools. */
export const ITrainingModel = new Token<TrainingModel>(
  'jupyterlab-kerasgpu:ITrainingModel',
  "Each notebook's training progress and findings."
);
