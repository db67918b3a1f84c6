// report.mjs - turns the drivers' tab-separated lines into the markdown
// section of bench/RESULTS.md.
//
//   node bench/vec/report.mjs RAW_FILE META_JSON
//
// RAW lines: "<n> build <who> <n> <secs> <per_s> <bytes>" and
// "<n> search <who> <ef> <recall> <p50_us> <p99_us> <qps>" (ef 0 = exact).
// Equal recall: for each library the queries per second at a target
// recall@10 is interpolated (log qps, linear in recall) between the two ef
// settings that bracket it; the ratio is ours / hnswlib.
import fs from 'node:fs';

const [raw, metaPath] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
const rows = fs.readFileSync(raw, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
const sizes = [...new Set(rows.map((r) => r[0]))].sort((a, b) => a - b);

const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

function atRecall(points, target) {
  const p = points.filter((x) => x.ef > 0).sort((a, b) => a.ef - b.ef);
  for (let i = 0; i < p.length; i++) {
    if (p[i].recall >= target) {
      if (i === 0) return { qps: p[0].qps, p99: p[0].p99, exactPoint: true };
      const a = p[i - 1], b = p[i];
      const t = (target - a.recall) / (b.recall - a.recall || 1);
      return { qps: Math.exp(Math.log(a.qps) + t * (Math.log(b.qps) - Math.log(a.qps))), p99: b.p99 };
    }
  }
  return undefined;
}

const out = [];
out.push('## Vector index');
out.push('');
out.push(`Written by \`bench/vec/run.sh\` on ${meta.date} (standalone or from \`make bench\`).`);
out.push('');
out.push(`Machine: ${meta.machine}.`);
out.push(`Data: ${meta.data}`);
out.push(`Both libraries: ${meta.build}`);
out.push(`Method: ${meta.method}`);
out.push('');
out.push('Commands:');
out.push('');
out.push('```sh');
for (const c of meta.commands) out.push(c);
out.push('```');
out.push('');

out.push('### Build (single-threaded inserts)');
out.push('');
out.push('| vectors | library | build time | inserts/s | index memory |');
out.push('|---|---|---|---|---|');
for (const n of sizes) {
  for (const r of rows.filter((x) => x[0] === n && x[1] === 'build')) {
    out.push(`| ${fmt(+n)} | ${r[2]} | ${fmt(+r[4], 1)} s | ${fmt(+r[5])} | ${fmt(+r[6] / 1048576, 0)} MB |`);
  }
}
out.push('');

out.push('### Search: recall@10 and latency of single queries on one thread');
out.push('');
out.push('| vectors | library | ef | recall@10 | p50 | p99 | queries/s |');
out.push('|---|---|---|---|---|---|---|');
const pts = {};
for (const n of sizes) {
  for (const r of rows.filter((x) => x[0] === n && x[1] === 'search')) {
    const p = { ef: +r[3], recall: +r[4], p50: +r[5], p99: +r[6], qps: +r[7] };
    ((pts[n] ??= {})[r[2]] ??= []).push(p);
    out.push(`| ${fmt(+n)} | ${r[2]} | ${p.ef === 0 ? 'exact' : p.ef} | ${p.recall.toFixed(3)} | ${fmt(p.p50 / 1000, 3)} ms | ${fmt(p.p99 / 1000, 3)} ms | ${fmt(p.qps)} |`);
  }
}
out.push('');

out.push('### Equal recall: queries per second, ours / hnswlib');
out.push('');
out.push('| vectors | recall@10 | ours q/s | hnswlib q/s | ratio | ours p99 at that ef |');
out.push('|---|---|---|---|---|---|');
for (const n of sizes) {
  for (const target of [0.9, 0.95, 0.99]) {
    const a = atRecall(pts[n]?.ours ?? [], target), b = atRecall(pts[n]?.hnswlib ?? [], target);
    if (!a && !b) continue;
    const ratio = a && b ? (a.qps / b.qps).toFixed(2) : 'n/a';
    out.push(`| ${fmt(+n)} | ${target.toFixed(2)} | ${fmt(a?.qps)} | ${fmt(b?.qps)} | ${ratio} | ${a ? fmt(a.p99 / 1000, 3) + ' ms' : 'n/a'} |`);
  }
}
out.push('');
for (const line of meta.notes ?? []) out.push(line);
console.log(out.join('\n'));
