// Starts build/fake-upstream (tests/fake) on a free port for a test.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export async function startFake() {
  const bin = process.env.AP_FAKE_BIN || resolve('build/fake-upstream');
  const child = spawn(bin, ['--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let buf = '';
  const port = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('fake upstream not ready: ' + buf)), 10000);
    child.stderr.on('data', (c) => {
      buf += c;
      const m = buf.match(/"msg":"ready"[^\n]*"port":(\d+)/) || buf.match(/"port":(\d+)[^\n]*"msg":"ready"/);
      if (m) { clearTimeout(timer); res(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`fake upstream exited ${code}: ${buf}`)); });
  });
  child.removeAllListeners('exit');
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    async last(path) {
      const r = await fetch(`${url}/_fake/last?path=${encodeURIComponent(path)}`);
      return r.json();
    },
    async stop() { child.kill('SIGTERM'); await exited; },
  };
}
