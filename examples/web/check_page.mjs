#!/usr/bin/env node
// Headless check of the page: open it in Chromium, type a seed and a first index, press
// Draw, and dump what the page shows (status, model card, canvas pixels) as JSON, so a
// test can compare the canvas with `dcgan-rt generate`'s PNGs.
//
// Usage: node check_page.mjs URL --seed S --start I --out result.json [--file MODEL] [--label L] [--screenshot shot.png]
//
// --file opens MODEL with the page's file picker instead of the URL's ?model=.
// --label picks a label in the page's picker as a person would: a class name in the class
// <select>, or attribute values (Smiling=1,Male=0) in the attribute selects.
//
// Uses the system Chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core:
// no browser download.

import fs from "node:fs";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: "string", default: "0" },
    start: { type: "string", default: "0" },
    out: { type: "string" },
    file: { type: "string" },
    label: { type: "string" },
    screenshot: { type: "string" },
    "timeout-ms": { type: "string", default: "30000" },
  },
});
if (positionals.length !== 1 || !values.out) {
  console.error("usage: node check_page.mjs URL --seed S --start I --out result.json [--file MODEL] [--label L] [--screenshot shot.png]");
  process.exit(2);
}
const timeout = Number(values["timeout-ms"]);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: FLAGS,
  timeout,
});
const problems = []; // console errors and uncaught exceptions on the page
try {
  const page = await browser.newPage();
  page.on("console", (msg) => msg.type() === "error" && problems.push(`console: ${msg.text()}`));
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.setDefaultTimeout(timeout);

  await page.goto(positionals[0]);
  const settled = () => ["done", "idle", "error"].includes(document.getElementById("status").dataset.state);
  await page.waitForFunction(settled);
  if (values.file) {
    await page.setInputFiles("#file", values.file);
    await page.waitForFunction(() => document.getElementById("status").dataset.state !== "idle");
    await page.waitForFunction(settled);
  }
  const first = await page.locator("#status").textContent();

  if ((await page.locator("#status").getAttribute("data-state")) === "done") {
    // As a person would: type the seed and the first index, press Draw.
    await page.fill("#seed", values.seed);
    await page.fill("#start", values.start);
    if (values.label !== undefined) {
      if (values.label.includes("=")) {
        for (const part of values.label.split(",")) {
          const [name, value] = part.split("=");
          await page.selectOption(`#attr-picker select[data-attr="${name}"]`, value);
        }
      } else {
        await page.selectOption("#label", values.label);
      }
    }
    await page.click("#draw");
    await page.waitForFunction(
      ([seed, start, label]) => {
        const status = document.getElementById("status").dataset.state;
        const c = document.getElementById("canvas").dataset;
        const labelled = label === null || c.label === label;
        return status === "error" || (status === "done" && c.seed === seed && c.start === start && labelled);
      },
      [values.seed, values.start, values.label ?? null],
    );
  }

  const result = await page.evaluate(() => {
    const canvas = document.getElementById("canvas");
    const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let binary = "";
    for (let i = 0; i < rgba.length; i += 0x8000) binary += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
    const card = {};
    const dl = document.getElementById("card");
    for (const dt of dl.querySelectorAll("dt")) card[dt.textContent] = dt.nextElementSibling.textContent;
    return {
      state: document.getElementById("status").dataset.state,
      status: document.getElementById("status").textContent,
      card,
      metadata: document.getElementById("metadata").textContent,
      canvas: { ...canvas.dataset, width: canvas.width, height: canvas.height, rgba_base64: btoa(binary) },
    };
  });
  result.first_status = first;
  result.problems = problems;
  if (values.screenshot) await page.screenshot({ path: values.screenshot, fullPage: true });
  fs.writeFileSync(values.out, JSON.stringify(result));
  console.log(`${result.state}: ${result.status}`);
} finally {
  await browser.close();
}
