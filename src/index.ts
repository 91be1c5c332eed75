/**
 * jupyterlab-kerasgpu's plugins. The code is laid out by role:
 * - `api/`: the server's HTTP API, one module per Python handler module (types and calls);
 * - `models/`: state fed by the server and the kernels (GPU readings, training, fleet);
 * - `views/`: widgets and DOM that show the models;
 * - `tools/`: the notebook tools (running the server planner's plans, their commands);
 * - `plugins/`: JupyterLab plugins that only wire the above together.
 */
import { fleetPlugin } from './plugins/fleet';
import { notebookToolsPlugin } from './plugins/notebook-tools';
import { modelPlugin, panelPlugin, trainingPlugin } from './plugins/panel';

export { IGpuModel, ITrainingModel } from './tokens';

export default [
  modelPlugin,
  trainingPlugin,
  panelPlugin,
  notebookToolsPlugin,
  fleetPlugin
];
