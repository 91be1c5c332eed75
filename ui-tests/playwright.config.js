/**
 * Galata (Playwright) configuration: a real `jupyter lab` with the extension,
 * driven in Debian's Chromium. Browsers are never downloaded.
 */
const path = require('path');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const venvBin = path.resolve(__dirname, '..', '.venv', 'bin');
const fakeBin = path.resolve(__dirname, '.fake-bin');

module.exports = {
  ...baseConfig,
  testDir: './tests',
  // tests/gateway needs a server of its own (gateway.config.js).
  testIgnore: ['**/gateway/**'],
  retries: process.env.CI ? 1 : 0,
  workers: 1,
  timeout: 120_000,
  expect: { timeout: 20_000 },
  reporter: [['list']],
  use: {
    ...baseConfig.use,
    video: 'off',
    trace: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  },
  webServer: {
    command: 'bash ./start-jupyter.sh',
    url: 'http://localhost:8888/lab',
    timeout: 120_000,
    reuseExistingServer: false,
    env: {
      ...process.env,
      PATH: `${fakeBin}:${venvBin}:${process.env.PATH}`,
      KERASGPU_FAKE_BIN: fakeBin
    }
  }
};
