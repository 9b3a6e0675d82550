// node --test client/web/test: the reducer of the node's session events.
import test from "node:test";
import assert from "node:assert/strict";
import { initial, reduce, CHAT_KEPT } from "../store.js";

const session = {
  id: "s1", name: "Jam", recording: null, time_signature: "3/4",
  participants: [{ id: "a", name: "ana", x: 0, y: 0 }, { id: "b", name: "ben", x: 1, y: 1 }],
};

test("a session event replaces the roster", () => {
  const s = reduce(initial(), { type: "session", session });
  assert.equal(s.session.id, "s1");
  assert.deepEqual([...s.participants.keys()], ["a", "b"]);
  assert.equal(s.recording, null);
});

test("joins, updates, moves, turns and leaves, without touching the old state", () => {
  const s0 = reduce(initial(), { type: "session", session });
  const s1 = reduce(s0, { type: "joined", participant: { id: "c", name: "cy", x: 2, y: 0 } });
  assert.equal(s1.participants.size, 3);
  assert.equal(s0.participants.size, 2, "the reducer is pure");
  const s2 = reduce(s1, { type: "participant", participant: { id: "c", connected: true } });
  assert.equal(s2.participants.get("c").name, "cy");
  assert.equal(s2.participants.get("c").connected, true);
  const s3 = reduce(s2, { type: "moved", participant: "a", x: -3, y: 4 });
  assert.deepEqual([s3.participants.get("a").x, s3.participants.get("a").y], [-3, 4]);
  const s4 = reduce(s3, { type: "turned", participant: "a", yaw_deg: 90, pitch_deg: -10 });
  assert.equal(s4.participants.get("a").yaw_deg, 90);
  const s5 = reduce(s4, { type: "left", participant: "b" });
  assert.deepEqual([...s5.participants.keys()], ["a", "c"]);
  assert.equal(reduce(s5, { type: "moved", participant: "zz", x: 1, y: 1 }).participants.size, 2);
});

test("levels, recording, beat, chat and the end", () => {
  let s = reduce(initial(), { type: "session", session });
  s = reduce(s, { type: "levels", levels: { a: 0.5 }, jitter: { a: { delay_ms: 12 } } });
  assert.equal(s.levels.a, 0.5);
  s = reduce(s, { type: "recording", recording: "r1" });
  assert.equal(s.recording, "r1");
  s = reduce(s, { type: "recording", recording: null });
  assert.equal(s.recording, null);
  s = reduce(s, { type: "beat", beat: 7, bar_beat: 1 });
  assert.equal(s.lastBeat, 1);
  for (let i = 0; i < CHAT_KEPT + 5; i++) s = reduce(s, { type: "chat", name: "ana", text: `m${i}` });
  assert.equal(s.chat.length, CHAT_KEPT);
  assert.equal(s.chat.at(-1).text, `m${CHAT_KEPT + 4}`);
  assert.equal(reduce(s, { type: "closed" }).closed, true);
  assert.equal(reduce(s, { type: "pong", t: 1 }), s, "unknown events leave the state as it was");
  assert.equal(reduce(s, null), s);
});
