// SPDX-License-Identifier: Apache-2.0
// ONNX Runtime (npm onnxruntime-node, CPU) on the same model and input as
// `cloister infer-local --bench`: node ort_bench.js MODEL INPUT.npy THREADS RUNS
// Prints the median and p99 latency of RUNS runs after one warm-up run, and
// writes the first output to OUT.npy when a fifth argument names it.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(path + ': not a .npy file');
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.toString('latin1', start, start + hlen);
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True"))
    throw new Error(path + ': float32 C-order arrays only');
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s)
    .map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + start + hlen, b.byteOffset + b.length));
  return { shape, data };
}

function writeNpy(path, tensor) {
  const shape = '(' + tensor.dims.join(', ') + (tensor.dims.length === 1 ? ',' : '') + ')';
  let h = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  while ((10 + h.length + 1) % 64) h += ' ';
  h += '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(h.length, 8);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(h, 'latin1'), Buffer.from(tensor.data.buffer)]));
}

async function main() {
  const [model, input, threads, runs, out] = process.argv.slice(2);
  const opts = { intraOpNumThreads: Number(threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all' };
  const session = await ort.InferenceSession.create(model, opts);
  const x = readNpy(input);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  let result = await session.run(feeds);
  if (out) writeNpy(out, result[session.outputNames[0]]);
  const ms = [];
  for (let i = 0; i < Number(runs); i++) {
    const t0 = process.hrtime.bigint();
    result = await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  const p99 = ms[Math.min(ms.length - 1, Math.round((ms.length - 1) * 0.99))];
  console.log(`ort: ${ms.length} runs, median ${ms[(ms.length - 1) >> 1].toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`);
}

main().catch((e) => {
  console.error('ort_bench: ' + e.message);
  process.exit(1);
});
