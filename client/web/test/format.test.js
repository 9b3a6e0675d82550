// node --test client/web/test: the page's pure helpers.
import test from "node:test";
import assert from "node:assert/strict";
import { formatUnits, inSeconds, beatsOf, dbToGain } from "../format.js";

test("amounts show at most four decimals, grouped, and tiny ones say so", () => {
  assert.equal(formatUnits(0n), "0");
  assert.equal(formatUnits("1000000000000000000000"), "1,000");
  assert.equal(formatUnits(4_000_000n * 10n ** 18n), "4,000,000");
  assert.equal(formatUnits(1234567890123456789n), "1.2345");
  assert.equal(formatUnits(975n * 10n ** 15n), "0.975");
  assert.equal(formatUnits(1n), "< 0.0001");
  assert.equal(formatUnits(-5n * 10n ** 17n), "-0.5");
  assert.equal(formatUnits(123456n, 6, 2), "0.12");
});

test("deadlines read as durations", () => {
  assert.equal(inSeconds(42), "in 42 s");
  assert.equal(inSeconds(-30), "30 s ago");
  assert.equal(inSeconds(600), "in 10 min");
  assert.equal(inSeconds(3 * 3600), "in 3 h");
});

test("the beat display follows the metre", () => {
  assert.equal(beatsOf("3/4"), 3);
  assert.equal(beatsOf("7/8"), 7);
  assert.equal(beatsOf("4/4"), 4);
  assert.equal(beatsOf("junk"), 4);
  assert.equal(beatsOf("99/4"), 16);
});

test("fader dB become linear gains", () => {
  assert.equal(dbToGain(0), 1);
  assert.equal(dbToGain(-6), 0.501);
  assert.equal(dbToGain(6), 1.995);
  assert.equal(dbToGain(-40), 0.01);
});
