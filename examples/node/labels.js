// y(S, i): the label of image i of seed S for a conditional model, exactly as
// docs/latents.md §5 specifies and dcgan_rt/labels.py computes it, and the labels.csv
// that `dcgan-rt generate` writes beside the images. Imports only latents.js, so the same
// file runs in Node.js and in the browser (examples/web imports it).
//
// - classes, by default: y(i) = i mod K; `--label 7` / `--label dog`: that class;
// - attributes, by default: the 0/1 vector V[j] of the card's joint distribution, j the
//   first index with u(S, i) < w[0] + ... + w[j]; `--label Smiling=1,Male=0`: those fixed,
//   the others drawn the same way from the vectors that have the fixed values.
//
// Bit-exactness: u is a 24-bit integer times 2^-24, exact in a double; the cumulative
// weights are float64 sums in numpy's order (cumsum left to right; the renormalising total
// by numpy's pairwise summation), so the same u picks the same vector.

import { hash32 } from "./latents.js";

const LABEL_SALT = 0x4c41424c; // "LABL": the labels' stream, apart from z's

export class LabelError extends Error {}

/** u(seed, i) in [0, 1): the attributes' draw for image i. */
export function labelUniform(seed, index) {
  const key = hash32(seed ^ LABEL_SALT);
  return (hash32(index ^ key) >>> 8) * 2 ** -24;
}

function cumsum(values) {
  let acc = 0;
  return values.map((v) => (acc += v));
}

/** sum(values) as numpy's float64 add.reduce computes it (pairwise, 8-way unrolled). */
export function pairwiseSum(a, lo = 0, n = a.length) {
  if (n < 8) {
    let res = 0;
    for (let i = lo; i < lo + n; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    const r = a.slice(lo, lo + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[lo + i + j];
    let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7]));
    for (; i < n; i++) res += a[lo + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2);
}

/**
 * What a --label text asks for: null (the default rule), {cls: text} (a class by name or
 * index) or {attrs: {name: 0 | 1}}. Checked against a model by labelRule.
 */
export function parseLabel(text) {
  if (text === undefined || text === null) return null;
  const t = String(text).trim();
  if (!t) throw new LabelError("--label is empty: give a class (--label 7) or attribute values (--label Smiling=1,Male=0)");
  if (!t.includes("=")) return { cls: t };
  const attrs = {};
  for (const part of t.split(",")) {
    const [name, value, extra] = part.split("=").map((s) => s.trim());
    if (!name || extra !== undefined || !["0", "1"].includes(value) || name in attrs) {
      throw new LabelError(`--label ${t}: attribute values look like Smiling=1,Male=0 (each attribute once, 0 or 1)`);
    }
    attrs[name] = Number(value);
  }
  return { attrs };
}

/**
 * The label rule of a model card's `labels` (null: an unconditional model) for a request of
 * parseLabel; null for an unconditional model. Returns {kind, names, rule, labels(seed,
 * start, count), csv(seed, start, count)}: labels gives the `label` input's data (a
 * BigInt64Array of class indices, or a Float32Array of count * A 0/1 values).
 */
export function labelRule(cardLabels, request) {
  if (!cardLabels) {
    if (request) throw new LabelError("--label needs a conditional model; this one is unconditional, so drop it");
    return null;
  }
  const { kind } = cardLabels;
  const names = [...cardLabels.names];
  const list = names.join(", ");
  if (kind === "class") {
    if (request?.attrs) throw new LabelError(`--label names attributes, but this model's labels are classes: ${list}`);
    const fixed = request ? classIndex(request.cls, names) : null;
    return {
      kind, names, rule: fixed === null ? "balanced" : "fixed",
      labels(seed, start, count) {
        const out = new BigInt64Array(count);
        for (let n = 0; n < count; n++) out[n] = BigInt(fixed ?? (start + n) % names.length);
        return out;
      },
      csv(seed, start, count) {
        const rows = ["index,label"];
        const y = this.labels(seed, start, count);
        for (let n = 0; n < count; n++) rows.push(`${start + n},${csvCell(names[Number(y[n])])}`);
        return rows.join("\n") + "\n";
      },
    };
  }
  if (request?.cls !== undefined) {
    throw new LabelError(`--label ${request.cls} names a class, but this model's labels are attributes: give values like --label ${names[0]}=1 (attributes: ${list})`);
  }
  let vectors = cardLabels.joint.vectors;
  let cumulative = cumsum(cardLabels.joint.weights);
  if (request) {
    const fixed = Object.entries(request.attrs).map(([name, v]) => {
      const p = names.indexOf(name);
      if (p < 0) throw new LabelError(`--label ${name}: unknown attribute; this model's attributes are ${list}`);
      return [p, v];
    });
    let weights = cumulative.map((c, j) => c - (j ? cumulative[j - 1] : 0));
    if (fixed.length < names.length) {
      const keep = vectors.map((vec) => fixed.every(([p, v]) => vec[p] === v));
      if (!keep.includes(true)) {
        throw new LabelError(`no training image has ${Object.entries(request.attrs).map(([k, v]) => `${k}=${v}`).join(",")}: give every attribute (${list}) to ask for a combination the model never saw`);
      }
      vectors = vectors.filter((_, j) => keep[j]);
      weights = weights.filter((_, j) => keep[j]);
    } else {
      const vec = new Array(names.length);
      for (const [p, v] of fixed) vec[p] = v;
      vectors = [vec];
      weights = [1];
    }
    const total = pairwiseSum(weights);
    cumulative = cumsum(weights.map((w) => w / total));
  }
  const A = names.length;
  const pick = (u) => {
    const j = cumulative.findIndex((c) => u < c);
    return vectors[j < 0 ? vectors.length - 1 : j];
  };
  return {
    kind, names, rule: request ? "fixed" : "joint",
    labels(seed, start, count) {
      const out = new Float32Array(count * A);
      for (let n = 0; n < count; n++) out.set(pick(labelUniform(seed, start + n)), n * A);
      return out;
    },
    csv(seed, start, count) {
      const rows = [["index", ...names.map(csvCell)].join(",")];
      for (let n = 0; n < count; n++) rows.push(`${start + n},${pick(labelUniform(seed, start + n)).join(",")}`);
      return rows.join("\n") + "\n";
    },
  };
}

/** A class given by name (first) or index -> its index. */
export function classIndex(text, names) {
  const t = String(text).trim();
  if (names.includes(String(text))) return names.indexOf(String(text));
  if (/^-?\d+$/.test(t)) {
    const i = Number(t);
    if (i >= 0 && i < names.length) return i;
    throw new LabelError(`--label ${text}: class index out of range; this model has classes 0..${names.length - 1} (${names.join(", ")})`);
  }
  throw new LabelError(`--label '${text}': unknown class; this model's classes are ${names.join(", ")}`);
}

function csvCell(text) {
  return /[,"\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
