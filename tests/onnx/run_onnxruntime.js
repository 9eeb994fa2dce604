// node run_onnxruntime.js DIR — ONNX Runtime (npm onnxruntime-node, its CPU
// provider) runs every file write_onnx_cases wrote, at batch 1 and 3, and
// gives rescnn's logits to 1e-4. Where onnxruntime-node is not installed
// (npm ci --ignore-scripts --prefix tests/onnx), it reports RESCNN-SKIPPED,
// or fails with RESCNN_REQUIRE_ONNX_RUNTIMES=1 (as CI sets it).
'use strict';
const fs = require('fs');
const path = require('path');

const TOLERANCE = 1e-4;  // absolute, on logits

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  const reason = 'onnxruntime-node is not installed (npm ci --ignore-scripts --prefix tests/onnx): ' +
                 e.message.split('\n')[0];
  if (process.env.RESCNN_REQUIRE_ONNX_RUNTIMES === '1') {
    console.error('RESCNN_REQUIRE_ONNX_RUNTIMES=1, but ' + reason);
    process.exit(1);
  }
  console.log('RESCNN-SKIPPED: ' + reason);
  process.exit(0);
}

function floats(dir, name) {
  const bytes = fs.readFileSync(path.join(dir, name));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

async function main(dir) {
  const cases = JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8'));
  let worst = 0;
  for (const c of cases) {
    const session = await ort.InferenceSession.create(path.join(dir, c.onnx));
    for (const run of c.runs) {
      const x = new ort.Tensor('float32', floats(dir, run.input), run.input_shape);
      const out = (await session.run({[session.inputNames[0]]: x}))[session.outputNames[0]];
      const expected = floats(dir, run.logits);
      if (JSON.stringify(out.dims) !== JSON.stringify(run.logits_shape))
        throw new Error(`${c.name} batch ${run.batch}: shape ${out.dims} vs ${run.logits_shape}`);
      let diff = 0, scale = 0;
      for (let i = 0; i < expected.length; ++i) {
        const d = Math.abs(out.data[i] - expected[i]);
        diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
        scale = Math.max(scale, Math.abs(expected[i]));
      }
      worst = Math.max(worst, diff);
      console.log(`${c.name} batch ${run.batch}: ONNX Runtime max |diff| ${diff.toPrecision(3)} ` +
                  `(logits up to ${scale.toPrecision(3)})`);
      if (!(diff <= TOLERANCE)) throw new Error(`${c.name} batch ${run.batch}: ${diff} > ${TOLERANCE}`);
    }
  }
  console.log(`ONNX Runtime agrees with rescnn to ${worst.toPrecision(3)} (tolerance ${TOLERANCE})`);
}

if (process.argv.length !== 3) {
  console.error('usage: node run_onnxruntime.js DIR');
  process.exit(2);
}
main(process.argv[2]).catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
