import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  labelText, placeLabels, rotatedBox, screenAngle, textSize, upright, viewMoved,
} from '../../cim_service/static/js/label-place.js';
import { withOffsets } from '../../cim_service/static/js/labels.js';

const view = { width: 400, height: 300, zoom: 12 };
const project = ([x, y]) => [x, y]; // the tests' positions are screen pixels already

function layer(id, priority, labels, extra = {}) {
  return Object.assign({ id, size: 12, priority, placement: 'point', min_zoom: 0, color: [0, 0, 0, 255], labels }, extra);
}

test('the label text follows the language, Chinese where there is no English', () => {
  assert.equal(labelText({ zh: '莘庄镇', en: 'Xinzhuang Town' }, 'en'), 'Xinzhuang Town');
  assert.equal(labelText({ zh: '莘庄镇', en: 'Xinzhuang Town' }, 'zh'), '莘庄镇');
  assert.equal(labelText({ zh: '莘庄镇', en: null }, 'en'), '莘庄镇');
});

test('line labels are never upside down', () => {
  for (const [a, expected] of [[0, 0], [90, 90], [91, -89], [180, 0], [-90, 90], [-135, 45], [270, 90], [-270, 90]]) {
    assert.equal(upright(a), expected, `${a}`);
  }
  assert.equal(screenAngle([0, 0], [10, 0]), 0);
  assert.equal(screenAngle([10, 0], [0, 0]), 0); // drawn right to left: turned round
  assert.equal(screenAngle([0, 10], [10, 0]), 45); // up and to the right on screen (y down): counter-clockwise
  assert.equal(screenAngle([10, 0], [0, 10]), 45);
});

test('text sizes and rotated boxes', () => {
  assert.deepEqual(textSize('莘庄', 10), [20, 12.5]);
  assert.deepEqual(textSize('ab', 10), [12, 12.5]);
  const box = rotatedBox(0, 0, 20, 10, 90).map((v) => Math.round(v * 1000) / 1000);
  assert.deepEqual(box, [-5, -10, 5, 10]);
});

test('a label overlapping a placed one of higher priority is left out; apart, both are placed', () => {
  const towns = layer('towns', 90, [{ zh: '莘庄镇', en: 'Xinzhuang', position: [100, 100], toward: null }]);
  const metro = layer('metro', 70, [{ zh: '莘庄', position: [105, 102], toward: null },
    { zh: '七宝', position: [300, 200], toward: null }]);
  const placed = placeLabels([metro, towns], view, project, 'zh');
  assert.deepEqual(placed.map((p) => p.text), ['莘庄镇', '七宝']);
  assert.equal(placed[0].priority, 90);
  // off screen, below its zoom, or its layer switched off: not placed
  const far = layer('metro', 70, [{ zh: '远', position: [900, 100], toward: null }]);
  assert.equal(placeLabels([far], view, project, 'zh').length, 0);
  assert.equal(placeLabels([layer('r', 1, metro.labels, { min_zoom: 13 })], view, project, 'zh').length, 0);
  assert.equal(placeLabels([metro], view, project, 'zh', (id) => id !== 'metro').length, 0);
});

test('line labels turn along the line and a name repeats only from z14', () => {
  const road = layer('roads', 50, [
    { zh: '沪闵路', position: [50, 50], toward: [60, 40] },
    { zh: '沪闵路', position: [300, 250], toward: [310, 240] },
  ], { placement: 'line' });
  const placed = placeLabels([road], view, project, 'zh');
  assert.equal(placed.length, 1);
  assert.equal(placed[0].angle, 45);
  assert.equal(placeLabels([road], Object.assign({}, view, { zoom: 14 }), project, 'zh').length, 2);
});

test('point layers put their text below the symbol; the view must move to place again', () => {
  const [withOffset] = withOffsets([layer('metro', 70, [])], { metro: { is_point: true, style: { radius: 5 } } });
  assert.deepEqual(withOffset.offset, [0, 5 + 12 * 0.75]);
  const [town] = withOffsets([layer('towns', 90, [])], { towns: { is_point: false, style: {} } });
  assert.deepEqual(town.offset, [0, 0]);
  const v = { longitude: 121.4, latitude: 31.1, zoom: 12, pitch: 0, bearing: 0 };
  assert.equal(viewMoved(null, v), true);
  assert.equal(viewMoved(v, Object.assign({}, v, { zoom: 12.01 })), false);
  assert.equal(viewMoved(v, Object.assign({}, v, { zoom: 12.2 })), true);
  assert.equal(viewMoved(v, Object.assign({}, v, { longitude: 121.41 })), true);
  assert.equal(viewMoved(v, Object.assign({}, v, { bearing: 10 })), true);
});
