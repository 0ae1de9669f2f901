import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createMotion, MOTION_PIXEL_RATIO, motionAfterFrame, motionSettled, moving, SETTLE_MS } from '../../cim_service/static/js/motion.js';

const at = (longitude) => ({ longitude, latitude: 31.1, zoom: 14.2, pitch: 55, bearing: -25 });

test('software WebGL: a moving camera lowers the resolution once, the camera at rest restores it', () => {
  const m = createMotion(true);
  assert.equal(motionAfterFrame(m, at(121.38), 0, true), null, 'the first frame has nothing to compare with');
  assert.equal(motionAfterFrame(m, at(121.38), 10, true), null, 'a still camera keeps the full resolution');
  assert.equal(motionAfterFrame(m, at(121.381), 20, true), MOTION_PIXEL_RATIO);
  assert.equal(motionAfterFrame(m, at(121.382), 30, true), null, 'already lowered: nothing to change');
  assert.equal(motionSettled(m, 30 + SETTLE_MS - 1), null, 'not yet at rest');
  assert.equal(motionSettled(m, 30 + SETTLE_MS), true);
  assert.equal(motionSettled(m, 30 + 2 * SETTLE_MS), null, 'restored once');
  assert.equal(motionAfterFrame(m, at(121.382), 40 + SETTLE_MS, true), null, 'the full-resolution frame at rest');
  assert.equal(motionAfterFrame(m, { ...at(121.382), bearing: -20 }, 50 + SETTLE_MS, true), MOTION_PIXEL_RATIO,
    'a rotation is a move too');
});

test('a move that goes on keeps the lowered resolution', () => {
  const m = createMotion(true);
  motionAfterFrame(m, at(1), 0, true);
  motionAfterFrame(m, at(2), 100, true);
  assert.equal(moving(m), true);
  motionAfterFrame(m, at(3), 350, true);
  assert.equal(motionSettled(m, 100 + SETTLE_MS), null, 'moved again at 350');
  assert.equal(moving(m), true, 'the labels wait');
  assert.equal(motionSettled(m, 350 + SETTLE_MS), true);
  assert.equal(moving(m), false);
});

test('a slow frame in the middle of a pan is no rest: one resolution for the whole gesture, two switches', () => {
  // frames of the pan as the page sees them at the start of each frame: a tile arriving makes one take 900 ms;
  // the page asks for the rest at frame starts only, where the move has drawn its next frame
  const m = createMotion(true);
  const ends = [0, 130, 260, 390, 1290, 1420, 1550];
  ends.forEach((t, i) => {
    motionAfterFrame(m, at(i), t, true);
    assert.equal(motionSettled(m, t + 1), null, `frame ${i}: the camera moved in this frame`);
  });
  assert.equal(m.switches, 1, 'lowered once');
  assert.equal(motionSettled(m, 1550 + SETTLE_MS - 1), null);
  assert.equal(motionSettled(m, 1550 + SETTLE_MS), true, 'the rest after the last frame');
  assert.equal(m.switches, 2, 'and restored once');
});

test('full resolution before the first meaningful paint, and always with a GPU', () => {
  const early = createMotion(true);
  motionAfterFrame(early, at(1), 0, false);
  assert.equal(motionAfterFrame(early, at(2), 10, false), null, 'the first meaningful paint is drawn at full resolution');
  assert.equal(motionSettled(early, 10 + SETTLE_MS), null);
  const gpu = createMotion(false);
  motionAfterFrame(gpu, at(1), 0, true);
  assert.equal(motionAfterFrame(gpu, at(2), 10, true), null);
});
