// z(S, i): the latent vector of image i of seed S, exactly as docs/latents.md specifies
// and dcgan_rt/latents.py computes it. Plain JavaScript with no imports, so the same
// file runs in Node.js and in the browser (examples/web imports it).
//
// Bit-exactness: the hash is 32-bit unsigned arithmetic (Math.imul, >>> 0); the central
// branch of the inverse normal CDF rounds every +, *, / to float32 with Math.fround
// (float64 holds the exact product of two float32s, and rounding a float64 sum or
// quotient of float32s to float32 gives the correctly rounded float32 result); the
// tails are float64 like the reference, then rounded to float32.

const SEED_SALT = 0x85ebca6b;
const GOLDEN = 0x9e3779b9;
const MAX_U32 = 0xffffffff;

// Wichura's AS241 (PPND7) coefficients, c0 first.
const A = [3.3871327179e0, 5.0434271938e1, 1.5929113202e2, 5.910937472e1].map(Math.fround);
const B = [1.0, 1.7895169469e1, 7.8757757664e1, 6.71875636e1].map(Math.fround);
const C = [1.4234372777e0, 2.75681539e0, 1.3067284816e0, 1.7023821103e-1];
const D = [1.0, 7.370016425e-1, 1.2021132975e-1];
const E = [6.657905115e0, 3.081226386e0, 4.2868294337e-1, 1.7337203997e-2];
const F = [1.0, 2.4197894225e-1, 1.2258202635e-2];
const CENTRAL = Math.fround(0.425);
const R0 = Math.fround(0.180625);

/** lowbias32 (C. Wellons): a bijection on 32-bit words. */
export function hash32(x) {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function horner32(coefs, x) {
  let acc = coefs[coefs.length - 1];
  for (let n = coefs.length - 2; n >= 0; n--) acc = Math.fround(Math.fround(acc * x) + coefs[n]);
  return acc;
}

function horner64(coefs, x) {
  let acc = coefs[coefs.length - 1];
  for (let n = coefs.length - 2; n >= 0; n--) acc = acc * x + coefs[n];
  return acc;
}

/** Inverse normal CDF of u = q + 0.5, q a float32 in (-0.5, 0.5). */
function normal(q) {
  if (Math.abs(q) <= CENTRAL) {
    const r = Math.fround(R0 - Math.fround(q * q));
    return Math.fround(Math.fround(q * horner32(A, r)) / horner32(B, r));
  }
  let r = Math.sqrt(-Math.log(0.5 - Math.abs(q)));
  const t = r <= 5.0 ? horner64(C, r - 1.6) / horner64(D, r - 1.6) : horner64(E, r - 5.0) / horner64(F, r - 5.0);
  return Math.fround(q < 0 ? -Math.abs(t) : Math.abs(t));
}

function checkU32(name, v) {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new RangeError(`${name} must be an integer in 0..${MAX_U32}, got ${v}`);
}

/** z(seed, i) for i in [start, start + count): a Float32Array of count * zDim values, row-major. */
export function latents(seed, start, count, zDim) {
  checkU32("seed", seed);
  checkU32("start", start);
  if (!Number.isInteger(count) || count < 0 || start + count - 1 > MAX_U32) throw new RangeError(`image indices must be in 0..${MAX_U32}`);
  if (!Number.isInteger(zDim) || zDim < 1) throw new RangeError(`zDim must be a positive integer, got ${zDim}`);
  const k = hash32(seed ^ SEED_SALT);
  const c = new Uint32Array(zDim); // per-component keys
  for (let j = 0; j < zDim; j++) c[j] = hash32(Math.imul(j, GOLDEN) + k);
  const out = new Float32Array(count * zDim);
  for (let n = 0; n < count; n++) {
    const a = hash32((start + n) ^ k); // per-image key
    for (let j = 0; j < zDim; j++) {
      const b = hash32(a + c[j]);
      const m = (b >>> 8) | 1; // odd, 24 bits
      out[n * zDim + j] = normal((m - 0x800000) * 2 ** -24); // exact in float32
    }
  }
  return out;
}
