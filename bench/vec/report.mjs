// report.mjs - turns the drivers' tab-separated lines into the markdown
// section of bench/RESULTS.md.
//
//   node bench/vec/report.mjs RAW_FILE META_JSON
//
// RAW lines: "<n> build <who> <n> <secs> <per_s> <bytes>" and
// "<n> search <who> <ef> <recall> <p50_us> <p99_us> <qps> <cpu_p50_us> <cpu_p99_us> <cpu_qps>"
// (ef 0 = exact).
// Equal recall: for each library the queries per second at a target
// recall@10 is interpolated (log qps, linear in recall) between the two ef
// settings that bracket it; the ratio is ours / hnswlib, on queries per
// second of CPU time (steady on a shared machine) and of wall time.
import fs from 'node:fs';

const [raw, metaPath] = process.argv.slice(2);
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
const rows = fs.readFileSync(raw, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
const sizes = [...new Set(rows.map((r) => r[0]))].sort((a, b) => a - b);

const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

function atRecall(points, target) {
  const p = points.filter((x) => x.ef > 0).sort((a, b) => a.ef - b.ef);
  const lerp = (a, b, t, k) => Math.exp(Math.log(a[k]) + t * (Math.log(b[k]) - Math.log(a[k])));
  for (let i = 0; i < p.length; i++) {
    if (p[i].recall >= target) {
      if (i === 0) return { ...p[0] };
      const a = p[i - 1], b = p[i];
      const t = (target - a.recall) / (b.recall - a.recall || 1);
      return { qps: lerp(a, b, t, 'qps'), cqps: lerp(a, b, t, 'cqps'), p99: b.p99, cp99: b.cp99, ef: b.ef };
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
out.push('Wall: what a caller waits (includes preemption by other processes on this shared machine). CPU: the thread\'s CPU time for the query alone (CLOCK_THREAD_CPUTIME_ID), i.e. the latency on an otherwise idle core.');
out.push('');
out.push('| vectors | library | ef | recall@10 | p50 wall | p99 wall | p50 CPU | p99 CPU | queries/s (wall) |');
out.push('|---|---|---|---|---|---|---|---|---|');
const pts = {};
for (const n of sizes) {
  for (const r of rows.filter((x) => x[0] === n && x[1] === 'search')) {
    const p = { ef: +r[3], recall: +r[4], p50: +r[5], p99: +r[6], qps: +r[7], cp50: +r[8], cp99: +r[9], cqps: +r[10] };
    ((pts[n] ??= {})[r[2]] ??= []).push(p);
    out.push(`| ${fmt(+n)} | ${r[2]} | ${p.ef === 0 ? 'exact' : p.ef} | ${p.recall.toFixed(3)} | ${fmt(p.p50 / 1000, 3)} ms | ${fmt(p.p99 / 1000, 3)} ms | ${fmt(p.cp50 / 1000, 3)} ms | ${fmt(p.cp99 / 1000, 3)} ms | ${fmt(p.qps)} |`);
  }
}
out.push('');

out.push('### Equal recall: queries per second, ours / hnswlib');
out.push('');
out.push('Queries per second of one thread at the same recall@10 (interpolated between the two ef settings that bracket it). CPU q/s = queries / CPU time (steady on a shared machine); wall q/s = queries / elapsed time. Ours p99 is at the first ef of the sweep that reaches the recall.');
out.push('');
out.push('| vectors | recall@10 | ours CPU q/s | hnswlib CPU q/s | ratio (CPU) | ours wall q/s | hnswlib wall q/s | ratio (wall) | ours p99 CPU / wall (ef) |');
out.push('|---|---|---|---|---|---|---|---|---|');
for (const n of sizes) {
  for (const target of [0.9, 0.95, 0.99]) {
    const a = atRecall(pts[n]?.ours ?? [], target), b = atRecall(pts[n]?.hnswlib ?? [], target);
    if (!a && !b) continue;
    const r = (k) => (a && b ? (a[k] / b[k]).toFixed(2) : 'n/a');
    out.push(`| ${fmt(+n)} | ${target.toFixed(2)} | ${fmt(a?.cqps)} | ${fmt(b?.cqps)} | ${r('cqps')} | ${fmt(a?.qps)} | ${fmt(b?.qps)} | ${r('qps')} | ${a ? `${fmt(a.cp99 / 1000, 3)} / ${fmt(a.p99 / 1000, 3)} ms (${a.ef})` : 'n/a'} |`);
  }
}
out.push('');
for (const line of meta.notes ?? []) out.push(line);
console.log(out.join('\n'));
