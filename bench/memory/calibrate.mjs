// Sends recalls one at a time (three random words of the vocabulary, as
// recall.lua) until the server logs the calibration of the agent's index
// partition ("memory index calibrated" with a final choice: the graph, or
// the scan when the graph costs more), at most MAX of them.  Prints
// CAL_SEARCH=<graph|scan> CAL_EF=<beam> CAL_RECALLS=<n> for run.sh.
import { readFileSync } from 'node:fs';

const [url, path, key, vocabFile, logFile, maxStr] = process.argv.slice(2);
const words = readFileSync(vocabFile, 'utf8').trim().split('\n');
const pick = () => words[Math.floor(Math.random() * words.length)];
const max = Number(maxStr || 2000);
let n = 0;
let found = null;
while (n < max && !found) {
  const r = await fetch(url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query: `${pick()} ${pick()} ${pick()}`, limit: 10 }),
  });
  await r.arrayBuffer();
  n++;
  if (n % 10 === 0) {
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (!line.includes('"memory index calibrated"')) continue;
      const rec = JSON.parse(line);
      if (!rec.search.includes('calibrating')) found = rec;
    }
  }
}
if (!found) {
  console.log(`CAL_SEARCH=none CAL_EF=0 CAL_RECALLS=${n}`);
} else {
  console.log(`CAL_SEARCH=${found.search.startsWith('graph') ? 'graph' : 'scan'} CAL_EF=${found.ef} CAL_RECALLS=${n}`);
}
