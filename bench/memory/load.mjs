// Loads N memories into one agent through the API (POST …/memory), 16
// requests in flight, with synthetic texts of 8–14 words drawn from a
// 3000-word vocabulary (seeded, so every run loads the same texts).
// Prints REMEMBER_PER_S=<rate>.
const [url, tenant, agent, key, nStr] = process.argv.slice(2);
const N = Number(nStr);
let seed = 42;
// Math.imul: seed * 1103515245 in doubles loses its low bits, and the
// generator then repeats after ~16k draws (100k memories were 834 texts).
const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
const syll = ['ka', 'lo', 'mi', 'ne', 'su', 'ta', 'ri', 'po', 've', 'do', 'gu', 'ha', 'zi', 'be', 'fo'];
const vocab = Array.from({ length: 3000 }, () => {
  let w = '';
  const n = 2 + Math.floor(rnd() * 3);
  for (let i = 0; i < n; i++) w += syll[Math.floor(rnd() * syll.length)];
  return w;
});
const types = ['fact', 'experience', 'skill', 'preference', 'relationship', 'procedure'];
const text = () => Array.from({ length: 8 + Math.floor(rnd() * 7) }, () => vocab[Math.floor(rnd() * vocab.length)]).join(' ');
let next = 0;
let failed = 0;
const t0 = Date.now();
async function worker() {
  while (next < N) {
    const i = next++;
    const r = await fetch(`${url}/api/v1/tenants/${tenant}/agents/${agent}/memory`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: text(), memory_type: types[i % 6], importance: Math.round(rnd() * 100) / 100 }),
    });
    if (r.status !== 201) failed++;
    await r.arrayBuffer();
  }
}
await Promise.all(Array.from({ length: 16 }, worker));
const s = (Date.now() - t0) / 1000;
if (failed) { console.error(`${failed} remember calls failed`); process.exit(1); }
console.log(`REMEMBER_PER_S=${(N / s).toFixed(0)} LOAD_S=${s.toFixed(1)}`);
// the vocabulary for the recall script
const { writeFileSync } = await import('node:fs');
writeFileSync(process.argv[7], vocab.slice(0, 500).join('\n') + '\n');
