"""The embedding examples feed a conditional model's label as `dcgan-rt generate` does (docs/embedding.md).

A class-conditional and an attribute-conditional generator, exported with the real CLI
(examples_support.py): examples/python, examples/node and examples/web (the page's
picker) give the same pixels and the same labels.csv as `dcgan-rt generate`, with the
default label rule and with `--label`, and refuse a label the model cannot take with one
line. JS label uniforms and numpy's pairwise renormalising sum are checked bit for bit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from examples_support import (
    CLASSES, COUNT, EXAMPLES, GRID, RUN_BLOCKED, SEED, START, VARIANTS, assert_same_images, canvas_tiles, check_page,
    generate_ref, node, read_pngs,
)

# (model, --label or None for the default rule): the conditional cases every example runs.
# Fixing Male=0 leaves 9 of the 20 vectors: the renormalising sum is numpy's pairwise one.
LABELLED = [("class", None), ("class", "two, with a comma"), ("class", "1"), ("attrs", None), ("attrs", "Male=0"),
            ("attrs", "Smiling=1,Male=1,Eyeglasses=0,Bangs=1,Young=1")]


@pytest.fixture(scope="session")
def labelled_refs(conditional, tmp_path_factory) -> dict[tuple[str, str | None], Path]:
    """`dcgan-rt generate` images and labels.csv for every LABELLED case."""
    root = tmp_path_factory.mktemp("generate_labelled")
    refs = {case: root / f"{case[0]}_{n}" for n, case in enumerate(LABELLED)}

    def generate(case):
        model, label = case
        generate_ref(conditional[model], refs[case], *(["--label", label] if label else []))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(generate, refs))
    return refs


def assert_same_labelled_output(got_dir: Path, want_dir: Path, case) -> None:
    assert_same_images(got_dir, want_dir, 0)
    want = (want_dir / "labels.csv").read_bytes()
    assert (got_dir / "labels.csv").read_bytes() == want, f"{case}: labels.csv differs from dcgan-rt generate's"
    rows = want.decode().splitlines()[1:]
    if case == ("class", None):  # the default rule: balanced classes, i mod K
        quoted = [f'"{c}"' if "," in c else c for c in CLASSES]
        assert rows == [f"{i},{quoted[i % 3]}" for i in range(START, START + COUNT)]
    if case == ("attrs", None):  # the default rule draws several of the joint's vectors
        assert len({r.split(",", 1)[1] for r in rows}) > 3, rows


JS_LABELS = """
import { labelUniform, pairwiseSum } from "./labels.js";
const [what, ...args] = process.argv.slice(1);
if (what === "u") process.stdout.write(JSON.stringify(args.map((p) => labelUniform(...p.split(":").map(Number)))));
else process.stdout.write(JSON.stringify(JSON.parse(args[0]).map((a) => pairwiseSum(a))));
"""


def test_js_label_uniforms_equal_the_documented_vectors(node_example):
    from dcgan_rt.labels import label_uniforms

    pairs = [(0, 0), (0, 1), (1, 0), (42, 1234), (2**32 - 1, 2**32 - 1), (7, 4_294_967_000)]
    proc = node("--input-type=module", "-e", JS_LABELS, "u", *(f"{s}:{i}" for s, i in pairs), cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert [round(u * 2**24) for u in got[:4]] == [9770061, 3808002, 9063162, 13443800]  # docs/latents.md §5
    assert got == [float(label_uniforms(s, np.array([i]))[0]) for s, i in pairs]


def test_js_renormalising_sum_is_numpys_bit_for_bit(node_example):
    """labels.js renormalises restricted attribute weights by numpy's pairwise float64 sum: a plain
    left-to-right sum differs from it in the last bit for many lengths (checked here too)."""
    rng = np.random.default_rng(3)
    arrays = [rng.random(n) ** 4 for n in [1, 2, 7, 8, 9, 15, 16, 17, 100, 128, 129, 255, 300, 1000, 2000]]
    proc = node("--input-type=module", "-e", JS_LABELS, "sum", json.dumps([a.tolist() for a in arrays]),
                cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [float(a.sum()) for a in arrays]
    assert any(float(sum(a.tolist())) != float(a.sum()) for a in arrays), "no length where the order matters"


@pytest.mark.parametrize("case", LABELLED, ids=[f"{m}-{label or 'default'}" for m, label in LABELLED])
def test_python_example_feeds_the_label_as_generate_does(conditional, labelled_refs, tmp_path, case):
    model, label = case
    out = tmp_path / "py"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKED, str(EXAMPLES / "python" / "generate.py"), str(conditional[model]),
         "-n", str(COUNT), "--out", str(out), "--seed", str(SEED), "--start", str(START), "--batch-size", "5",
         *(["--label", label] if label else [])],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert_same_labelled_output(out, labelled_refs[case], case)


@pytest.mark.parametrize("case", LABELLED, ids=[f"{m}-{label or 'default'}" for m, label in LABELLED])
def test_node_example_feeds_the_label_as_generate_does(node_example, conditional, labelled_refs, tmp_path, case):
    model, label = case
    out = tmp_path / "node"
    proc = node("generate.js", conditional[model], "-n", COUNT, "--out", out, "--seed", SEED, "--start", START,
                "--batch-size", 5, *(["--label", label] if label else []), cwd=node_example)
    assert proc.returncode == 0, proc.stderr
    assert_same_labelled_output(out, labelled_refs[case], case)


def _bad_label_cases(exported, conditional):
    gray = exported["gray"] / VARIANTS["uint8"]
    return [
        (gray, "1", "needs a conditional model"),
        (conditional["class"], "three", "unknown class"),
        (conditional["class"], "3", "out of range"),
        (conditional["class"], "Smiling=1", "labels are classes"),
        (conditional["attrs"], "Smiling", "labels are attributes"),
        (conditional["attrs"], "Beard=1", "unknown attribute"),
        (conditional["attrs"], "Smiling=2", "0 or 1"),
    ]


def test_examples_refuse_a_label_the_model_cannot_take(node_example, exported, conditional, tmp_path):
    for n, (model, label, needle) in enumerate(_bad_label_cases(exported, conditional)):
        py = subprocess.run([sys.executable, str(EXAMPLES / "python" / "generate.py"), str(model), "-n", "2",
                             "--out", str(tmp_path / f"py{n}"), "--label", label], capture_output=True, text=True)
        js = node("generate.js", model, "-n", 2, "--out", tmp_path / f"js{n}", "--label", label, cwd=node_example)
        for name, proc in (("python", py), ("node", js)):
            assert proc.returncode == 2, (name, label, proc.stderr)
            assert needle in proc.stderr.strip().splitlines()[-1], (name, label, proc.stderr)
            assert "Traceback" not in proc.stderr and "    at " not in proc.stderr, proc.stderr
        assert not (tmp_path / f"py{n}").exists() and not (tmp_path / f"js{n}").exists(), label


@pytest.mark.parametrize("case", [("class", None), ("class", "one"), ("attrs", "Male=0")],
                         ids=["class-default", "class-picked", "attrs-picked"])
def test_web_page_picker_draws_generates_labelled_pixels(web_example, chromium, site, conditional, labelled_refs,
                                                         tmp_path, case):
    model, label = case
    result = check_page(web_example, chromium, f"{site}/web/?model=/{model}.cond.onnx&grid={GRID}", tmp_path,
                        *(["--label", label] if label else []))
    assert result["problems"] == [], result["problems"]
    assert result["state"] == "done", result["status"]
    assert result["canvas"]["label"] == (label or "")
    assert result["card"]["labels"].startswith("class: zero" if model == "class" else "attributes: Smiling")
    ref = labelled_refs.get(case)
    if ref is None:  # a class picked by name: generate --label one
        ref = tmp_path / "ref"
        generate_ref(conditional[model], ref, "--label", label)
    want = read_pngs(ref)
    channels = 1 if model == "class" else 3
    for k, tile in enumerate(canvas_tiles(result)):
        expected = want[f"{START + k:09d}.png"]
        for ch in range(3):
            mismatch = np.count_nonzero(tile[:, :, ch] != expected[:, :, min(ch, channels - 1)])
            assert mismatch == 0, f"{case}: tile {k} (image {START + k}), channel {ch}: {mismatch} pixels differ"
