#!/usr/bin/env node
// Images start..start+n-1 of seed S from a dcgan-rt ONNX model, as PNG files named by
// their 9-digit global index: the same files, pixel for pixel, as
//
//     dcgan-rt generate MODEL -n N --out DIR --seed S --start I
//
// Usage: node generate.js MODEL -n N --out DIR [--seed S] [--start I] [--batch-size B] [--label L]
//
// Needs only onnxruntime-node (CPU) and pngjs; works with every exported variant
// (fp32, fp16, uint8, fp16-uint8). A conditional model also gets its `label` input: the
// default label rule y(S, i) of docs/latents.md §5, or `--label 7` / `--label dog` /
// `--label Smiling=1,Male=0` as in `dcgan-rt generate`, and labels.csv is written beside
// the images. See docs/embedding.md for the contract.

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import ort from "onnxruntime-node";
import { PNG } from "pngjs";

import { LabelError, labelRule, parseLabel } from "./labels.js";
import { latents } from "./latents.js";
import { readContract } from "./onnx_metadata.js";

const MAX_U32 = 0xffffffff;

class UsageError extends Error {}

function intOption(values, name, fallback) {
  const text = values[name] ?? String(fallback);
  const flag = name.length === 1 ? `-${name}` : `--${name}`;
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a non-negative integer, got '${text}'`);
  return Number(text);
}

/** float32 [-1, 1] -> uint8, in float32 as in the uint8 graph: clip(round_half_to_even((x + 1) * 127.5), 0, 255). */
function toPixel(x) {
  const v = Math.fround(Math.fround(x + 1) * 127.5);
  let r = Math.round(v); // rounds .5 up; make ties go to even like ONNX Round and numpy
  if (r - v === 0.5 && r % 2 !== 0) r -= 1;
  return Math.min(255, Math.max(0, r));
}

/** One image (H, W, C) uint8 out of a batch output, whatever the variant's layout. */
function imagePixels(data, n, io, [c, h, w]) {
  const size = c * h * w;
  if (io.output.dtype === "uint8") return data.subarray(n * size, (n + 1) * size); // already NHWC
  const pixels = new Uint8Array(size); // NCHW float -> NHWC uint8
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < h * w; p++) pixels[p * c + ch] = toPixel(data[n * size + ch * h * w + p]);
  }
  return pixels;
}

function writePng(file, pixels, [c, h, w]) {
  const colorType = c === 1 ? 0 : 2; // grayscale or RGB, 8 bits
  const png = new PNG({ width: w, height: h, colorType, inputColorType: colorType, inputHasAlpha: false });
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const tmp = `${file}.${process.pid}.tmp`; // write then rename: never a half-written PNG
  fs.writeFileSync(tmp, PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false }));
  fs.renameSync(tmp, file);
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      n: { type: "string", short: "n" },
      out: { type: "string" },
      seed: { type: "string" },
      start: { type: "string" },
      "batch-size": { type: "string" },
      label: { type: "string" },
    },
  });
  if (positionals.length !== 1 || values.n === undefined || values.out === undefined) {
    throw new UsageError("usage: node generate.js MODEL -n N --out DIR [--seed S] [--start I] [--batch-size B] [--label L]");
  }
  const [modelPath] = positionals;
  const count = intOption(values, "n", 0);
  const seed = intOption(values, "seed", 0);
  const start = intOption(values, "start", 0);
  const batchSize = Math.max(1, intOption(values, "batch-size", 64));
  if (seed > MAX_U32) throw new UsageError(`--seed must be in 0..${MAX_U32}, got ${seed}`);
  if (start + count - 1 > MAX_U32) throw new UsageError(`image indices must be in 0..${MAX_U32} (--start + -n - 1)`);

  if (!fs.existsSync(modelPath)) throw new UsageError(`model ${modelPath} not found`);
  const bytes = fs.readFileSync(modelPath);
  const { card, io } = readContract(bytes);
  const { z_dim: zDim, img_channels: c, img_resolution: res } = card.model_config;
  const shape = [c, res, res];
  const inputs = io.inputs ?? [io.input]; // files from before labels list only `input`
  const rule = labelRule(card.labels ?? null, parseLabel(values.label));
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["cpu"] });

  fs.mkdirSync(values.out, { recursive: true });
  for (let s = 0; s < count; s += batchSize) {
    const b = Math.min(batchSize, count - s);
    const z = new ort.Tensor("float32", latents(seed, start + s, b, zDim), [b, zDim]);
    const feed = { [inputs[0].name]: z };
    if (rule) {
      const dims = rule.kind === "class" ? [b] : [b, rule.names.length];
      feed[inputs[1].name] = new ort.Tensor(rule.kind === "class" ? "int64" : "float32", rule.labels(seed, start + s, b), dims);
    }
    const result = await session.run(feed);
    const data = result[io.output.name].data;
    for (let n = 0; n < b; n++) {
      const name = String(start + s + n).padStart(9, "0") + ".png";
      writePng(path.join(values.out, name), imagePixels(data, n, io, shape), shape);
    }
  }
  if (rule) {
    const tmp = path.join(values.out, `.labels.csv.${process.pid}.tmp`);
    fs.writeFileSync(tmp, rule.csv(seed, start, count));
    fs.renameSync(tmp, path.join(values.out, "labels.csv"));
  }
  console.log(`wrote ${count} images (seed ${seed}, indices ${start}..${start + count - 1}) to ${values.out}`);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(err instanceof UsageError || err instanceof LabelError || err instanceof RangeError || err.code?.startsWith?.("ERR_PARSE_ARGS") ? 2 : 1);
});
