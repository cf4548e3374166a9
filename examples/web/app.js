// A grid of images from a dcgan-rt uint8 ONNX model, run in the browser by onnxruntime-web
// (WebAssembly). Tile k of the grid is image start + k of the seed typed by the user: the
// same pixels as `dcgan-rt generate MODEL --seed S --start I` writes to 0000000I.png.
// A conditional model gets a picker: a class (default: all classes, image i gets class
// i mod K) or attribute values (default "any": drawn from the training data's joint
// distribution), the same labels as generate's default rule or its --label.
//
// The model comes from ?model=URL (default: model.onnx next to this page) or from the
// file picker. Its card is read from the ONNX metadata_props (onnx_metadata.js), since
// onnxruntime-web has no API for custom metadata.

import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";
import { labelRule, parseLabel } from "../node/labels.js";
import { latents } from "../node/latents.js";
import { readContract } from "../node/onnx_metadata.js";

// A plain static server has no cross-origin isolation, hence no SharedArrayBuffer and
// no WASM threads; asking for one thread avoids a warning and a fallback.
ort.env.wasm.numThreads = 1;

const GAP = 2; // canvas pixels between tiles: tile k's top-left is GAP + (col, row) * (size + GAP)
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let model = null; // {session, card, io, inputs}
let drawing = 0; // id of the latest draw; an older one that finishes late is dropped

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showCard({ card, io, props }, source) {
  const cfg = card.model_config;
  const rows = [
    ["source", source],
    ["dataset", card.dataset],
    ["image", `${cfg.img_resolution}×${cfg.img_resolution}, ${cfg.img_channels === 1 ? "grayscale" : "RGB"}`],
    ["z_dim", cfg.z_dim],
    ["training step", card.training_step],
    ["weights", card.weights],
    ["precision", io.precision ?? "fp32"],
    ["labels", card.labels ? `${card.labels.kind}: ${card.labels.names.join(", ")}` : "none (unconditional)"],
    ["output", `${io.output.name} ${io.output.dtype} [${io.output.shape.join(", ")}]`],
    ["dcgan-rt", card.tool_version],
  ];
  $("card").replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = String(v);
      return [dt, dd];
    }),
  );
  // Values are JSON documents except plain-string markers such as dcgan_rt.optimized.
  const parse = (v) => {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  };
  const pretty = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, parse(v)]));
  $("metadata").textContent = JSON.stringify(pretty, null, 2);
}

async function loadModel(bytes, source) {
  setStatus("loading", `Loading ${source}…`);
  $("draw").disabled = true;
  const contract = readContract(bytes);
  if (contract.io.output.dtype !== "uint8") {
    throw new Error(
      `${source} outputs ${contract.io.output.dtype}: this page draws the uint8 variant ` +
        "(dcgan-rt export MODEL --uint8, then open generator.uint8.onnx)",
    );
  }
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  model = { session, ...contract, inputs: contract.io.inputs ?? [contract.io.input] };
  showCard(contract, source);
  showPicker(contract.card.labels ?? null);
  $("draw").disabled = false;
  await draw();
}

/** The class <select> or one any/1/0 <select> per attribute, for a conditional model. */
function showPicker(labels) {
  $("class-picker").hidden = labels?.kind !== "class";
  $("attr-picker").hidden = labels?.kind !== "attributes";
  const option = (value, text) => Object.assign(document.createElement("option"), { value, textContent: text });
  if (labels?.kind === "class") {
    const k = labels.names.length;
    $("label").replaceChildren(option("", `all: image i gets class i mod ${k}`),
      ...labels.names.map((name, i) => option(name, `${i}: ${name}`)));
    const asked = params.get("label") ?? "";
    $("label").value = /^\d+$/.test(asked) && !labels.names.includes(asked) ? (labels.names[Number(asked)] ?? "") : asked;
  }
  const fixed = parseLabel(params.get("label") || null)?.attrs ?? {};
  $("attr-picker").replaceChildren($("attr-picker").querySelector("legend"));
  if (labels?.kind === "attributes") {
    for (const name of labels.names) {
      const select = document.createElement("select");
      select.dataset.attr = name;
      select.append(option("", "any"), option("1", "1"), option("0", "0"));
      select.value = String(fixed[name] ?? "");
      select.addEventListener("change", () => draw().catch(fail));
      const label = document.createElement("label");
      label.append(name, select);
      $("attr-picker").append(label);
    }
  }
}

/** The --label text the picker stands for ("" = the default rule). */
function pickedLabel() {
  if (!$("class-picker").hidden) return $("label").value;
  if ($("attr-picker").hidden) return "";
  return [...$("attr-picker").querySelectorAll("select")]
    .filter((s) => s.value !== "")
    .map((s) => `${s.dataset.attr}=${s.value}`)
    .join(",");
}

function readIndex(id) {
  const text = $(id).value.trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 0xffffffff) throw new RangeError(`${id} must be an integer in 0..4294967295`);
  return value;
}

async function draw() {
  const id = ++drawing;
  const { session, card, io, inputs } = model;
  const seed = readIndex("seed");
  const start = readIndex("start");
  const [cols, rows] = $("grid").value.split("x").map(Number);
  const count = Math.min(cols * rows, 0x100000000 - start);
  const { z_dim: zDim, img_resolution: size, img_channels: channels } = card.model_config;
  const label = pickedLabel();
  const request = !label ? null : $("class-picker").hidden ? parseLabel(label) : { cls: label }; // a name as is
  const rule = labelRule(card.labels ?? null, request);
  setStatus("drawing", `Drawing images ${start}..${start + count - 1} of seed ${seed}…`);

  const t0 = performance.now();
  const z = new ort.Tensor("float32", latents(seed, start, count, zDim), [count, zDim]);
  const feed = { [inputs[0].name]: z };
  if (rule) {
    const dims = rule.kind === "class" ? [count] : [count, rule.names.length];
    feed[inputs[1].name] = new ort.Tensor(rule.kind === "class" ? "int64" : "float32", rule.labels(seed, start, count), dims);
  }
  const pixels = (await session.run(feed))[io.output.name].data; // uint8 (N, H, W, C)
  if (id !== drawing) return;

  const canvas = $("canvas");
  const step = size + GAP;
  canvas.width = cols * step + GAP;
  canvas.height = rows * step + GAP;
  canvas.style.width = `${Math.max(1, Math.floor(512 / canvas.width)) * canvas.width}px`;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const tile = ctx.createImageData(size, size);
  for (let k = 0; k < count; k++) {
    const src = pixels.subarray(k * size * size * channels, (k + 1) * size * size * channels);
    for (let p = 0; p < size * size; p++) {
      const c = p * channels;
      tile.data[4 * p] = src[c];
      tile.data[4 * p + 1] = src[channels === 1 ? c : c + 1];
      tile.data[4 * p + 2] = src[channels === 1 ? c : c + 2];
      tile.data[4 * p + 3] = 255; // opaque, so the canvas stores the pixels unchanged
    }
    ctx.putImageData(tile, GAP + (k % cols) * step, GAP + Math.floor(k / cols) * step);
  }
  Object.assign(canvas.dataset, { seed, start, cols, rows, count, size, gap: GAP, label });
  const ms = Math.round(performance.now() - t0);
  const labels = !rule ? "" : label ? ` Label ${label}.` : rule.kind === "class" ? " Tile k has class (start + k) mod K." : " Attributes drawn from the training data.";
  setStatus("done", `Images ${start}..${start + count - 1} of seed ${seed} (${count} in ${ms} ms). Tile k is image ${start} + k.${labels}`);
}

function fail(err) {
  setStatus("error", `Error: ${err.message}`);
}

$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  if (model) draw().catch(fail);
});
$("grid").addEventListener("change", () => model && draw().catch(fail));
$("label").addEventListener("change", () => model && draw().catch(fail));
$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (file) await loadModel(new Uint8Array(await file.arrayBuffer()), file.name).catch(fail);
});

for (const id of ["seed", "start"]) if (params.has(id)) $(id).value = params.get(id);
if (params.has("grid")) $("grid").value = params.get("grid");

(async () => {
  const url = params.get("model") ?? "model.onnx";
  const response = await fetch(url).catch(() => null);
  if (!response || !response.ok) {
    setStatus("idle", `No model at ${url}: open a uint8 .onnx file above, or pass ?model=URL.`);
    return;
  }
  await loadModel(new Uint8Array(await response.arrayBuffer()), url);
})().catch(fail);
