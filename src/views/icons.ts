import { LabIcon } from '@jupyterlab/ui-components';

/** Icon `kerasgpu:<name>`: one 24x24 path drawn at 16 px in JupyterLab's icon colour (jp-icon3). */
function pathIcon(name: string, path: string): LabIcon {
  const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path ${path}/>
  </g>
</svg>`;
  return new LabIcon({ name: `kerasgpu:${name}`, svgstr });
}

/** The GPU icon of the sidebar tab and the status bar item. */
export const gpuIcon = pathIcon(
  'gpu',
  'd="M2 7h1V5h2v2h14a2 2 0 0 1 2 2v7a2 2 0 0 1-2 2h-6v2H5v-2H3V7H2zm3 2v7h14V9H5zm2 1.5h4v4H7v-4zm6 0h4v1.5h-4V10.5zm0 2.5h4v1.5h-4V13z"'
);

/** The cell toolbar button that puts GPU memory growth above the TensorFlow import. */
export const memoryGrowthIcon = pathIcon(
  'memory-growth',
  'fill-rule="evenodd" d="M3 11h18v7h-1v2h-2v-2H6v2H4v-2H3v-7zm2 2v3h2v-3H5zm4 0v3h2v-3H9zm4 0v3h2v-3h-2zm4 0v3h2v-3h-2zM12 2l4 4h-3v3h-2V6H8l4-4z"'
);

/** The cell toolbar button that wraps a cell in a distribution strategy scope. */
export const strategyIcon = pathIcon(
  'strategy',
  'd="M8 4H6a2 2 0 0 0-2 2v4l-2 2 2 2v4a2 2 0 0 0 2 2h2v-2H6v-4.8L4.8 12 6 10.8V6h2V4zm8 0h2a2 2 0 0 1 2 2v4l2 2-2 2v4a2 2 0 0 1-2 2h-2v-2h2v-4.8l1.2-1.2L18 10.8V6h-2V4zM9 8h6v3H9V8zm0 5h6v3H9v-3z"'
);

/** The notebook toolbar button that adds (or updates) the GPU verification cell. */
export const verifyIcon = pathIcon(
  'verify',
  'd="M2 7h1V5h2v2h9v2H5v7h14v-3h2v3a2 2 0 0 1-2 2h-6v2H5v-2H3V7H2zm13.5-1.5L18 8l4.5-4.5L24 5l-6 6-4-4 1.5-1.5z"'
);

/** Any other GPU snippet. */
export const snippetIcon = pathIcon(
  'snippet',
  'd="M9.4 16.6 4.8 12l4.6-4.6L8 6l-6 6 6 6 1.4-1.4zm5.2 0 4.6-4.6-4.6-4.6L16 6l6 6-6 6-1.4-1.4z"'
);
