"""A scalar, line-by-line reading of docs/latents.md in plain Python (no numpy).

Tests compare the vectorised dcgan_rt.latents against it, so the spec, the fast
code and the pinned vectors cannot drift apart silently.
"""

import math
import struct

MASK = 0xFFFFFFFF


def f32(x: float) -> float:
    """Round a Python float (float64) to the nearest float32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def h(x: int) -> int:
    x &= MASK
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK
    x ^= x >> 16
    return x


A = [3.3871327179e00, 5.0434271938e01, 1.5929113202e02, 5.9109374720e01]
B = [1.0, 1.7895169469e01, 7.8757757664e01, 6.7187563600e01]
C = [1.4234372777e00, 2.7568153900e00, 1.3067284816e00, 1.7023821103e-01]
D = [1.0, 7.3700164250e-01, 1.2021132975e-01]
E = [6.6579051150e00, 3.0812263860e00, 4.2868294337e-01, 1.7337203997e-02]
F = [1.0, 2.4197894225e-01, 1.2258202635e-02]


def horner32(coefs, x):
    acc = f32(coefs[-1])
    for c in reversed(coefs[:-1]):
        acc = f32(f32(acc * x) + f32(c))
    return acc


def horner64(coefs, x):
    acc = coefs[-1]
    for c in reversed(coefs[:-1]):
        acc = acc * x + c
    return acc


def z_component(seed: int, index: int, j: int) -> float:
    k = h(seed ^ 0x85EBCA6B)
    a = h(index ^ k)
    c = h(((j * 0x9E3779B9) & MASK) + k)
    b = h(a + c)
    m = (b >> 8) | 1
    q = f32((m - (1 << 23)) * 2.0**-24)
    if abs(q) <= f32(0.425):
        r = f32(f32(0.180625) - f32(q * q))
        return f32(f32(q * horner32(A, r)) / horner32(B, r))
    r = math.sqrt(-math.log(0.5 - abs(q)))
    if r <= 5.0:
        t = horner64(C, r - 1.6) / horner64(D, r - 1.6)
    else:
        t = horner64(E, r - 5.0) / horner64(F, r - 5.0)
    return f32(math.copysign(t, q))


def z_vector(seed: int, index: int, z_dim: int) -> list[float]:
    return [z_component(seed, index, j) for j in range(z_dim)]
