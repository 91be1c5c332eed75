/**
 * The remote-kernel UI test (tests/gateway/): a real Jupyter Enterprise Gateway on loopback whose
 * kernels see the H200 replay, and a JupyterLab without nvidia-smi that uses it; start-gateway.sh
 * starts and stops both. Debian's Chromium; browsers are never downloaded.
 */
const os = require('os');
const path = require('path');
const base = require('./playwright.config');

const labPort = Number(process.env.KERASGPU_UI_GATEWAY_LAB_PORT || 18890);
const labUrl = `http://127.0.0.1:${labPort}`;
// Shared with the tests (they switch what the fake nvidia-smi answers there).
process.env.KERASGPU_UI_GATEWAY_DIR =
  process.env.KERASGPU_UI_GATEWAY_DIR ||
  path.join(os.tmpdir(), `kerasgpu-ui-gateway-${labPort}`);

module.exports = {
  ...base,
  testDir: './tests/gateway',
  testIgnore: [],
  use: { ...base.use, baseURL: labUrl },
  webServer: {
    command: 'bash ./start-gateway.sh',
    url: `${labUrl}/lab`,
    timeout: 180_000,
    reuseExistingServer: false,
    // SIGTERM to the script's process group: the lab stops, then the gateway and its kernels.
    gracefulShutdown: { signal: 'SIGTERM', timeout: 20_000 },
    env: { ...process.env, KERASGPU_UI_GATEWAY_LAB_PORT: String(labPort) }
  }
};
