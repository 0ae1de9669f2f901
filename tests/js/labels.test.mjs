import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  glyphWidths, labelText, MAX_BEND, placeAlong, placeLabels, rotatedBox, screenAngle, textSize, upright, viewMoved,
} from '../../cim_service/static/js/label-place.js';
import { drawnGlyphs, labelsAfterFrame, labelsAtRest, labelsStale, withOffsets } from '../../cim_service/static/js/labels.js';

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

/** Distance from point p to the polyline `line`. */
function distanceTo(line, p) {
  let best = Infinity;
  for (let i = 1; i < line.length; i += 1) {
    const [a, b] = [line[i - 1], line[i]];
    const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
    const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)));
    best = Math.min(best, Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy));
  }
  return best;
}

const round = (v) => Math.round(v * 1000) / 1000;

test('a name is set along a straight line glyph by glyph, centred on its anchor, read left to right', () => {
  const line = [[0, 100], [200, 100]];
  const widths = [10, 10, 10];
  const glyphs = placeAlong(line, line, 0.5, widths);
  assert.deepEqual(glyphs.map((g) => g.screen.map(round)), [[90, 100], [100, 100], [110, 100]]);
  assert.deepEqual(glyphs.map((g) => round(g.angle)), [0, 0, 0]);
  assert.deepEqual(glyphs.map((g) => g.index), [0, 1, 2]);
  // drawn right to left: read from the other end, still left to right and the right way up
  const back = placeAlong(line.slice().reverse(), line.slice().reverse(), 0.5, widths);
  assert.deepEqual(back.map((g) => g.screen.map(round)), [[90, 100], [100, 100], [110, 100]]);
  assert.deepEqual(back.map((g) => round(g.angle)), [0, 0, 0]);
  // a vertical road reads bottom to top (turned counter-clockwise), whichever way it was drawn
  for (const drawn of [[[50, 200], [50, 0]], [[50, 0], [50, 200]]]) {
    const up = placeAlong(drawn, drawn, 0.5, widths);
    assert.ok(up[0].screen[1] > up[2].screen[1]);
    assert.deepEqual(up.map((g) => round(g.angle)), [90, 90, 90]);
  }
  // world positions are the same places on the path as the screen ones (here world = screen / 2)
  const world = line.map(([x, y]) => [x / 2, y / 2]);
  assert.deepEqual(placeAlong(line, world, 0.5, widths).map((g) => g.position.map(round)), [[45, 50], [50, 50], [55, 50]]);
  // no room on the path: no placement
  assert.equal(placeAlong([[0, 0], [20, 0]], [[0, 0], [20, 0]], 0.5, widths), null);
});

test('along a bending road each glyph sits on the road at its own angle', () => {
  // a road bending by 15° every 20 px (a gentle curve, 60° in all)
  const road = [[0, 0]];
  for (let i = 1; i <= 10; i += 1) {
    const a = (Math.min(i, 5) * 15 * Math.PI) / 180;
    const [x, y] = road[road.length - 1];
    road.push([x + 20 * Math.cos(a), y + 20 * Math.sin(a)]);
  }
  const widths = glyphWidths('沪闵公路', 13);
  const glyphs = placeAlong(road, road, 0.4, widths);
  assert.ok(glyphs, 'a gentle curve takes the name');
  assert.equal(glyphs.length, 4);
  for (const g of glyphs) assert.ok(distanceTo(road, g.screen) < 1.5, `glyph ${g.index} off the road`);
  const angles = glyphs.map((g) => g.angle);
  assert.ok(new Set(angles.map(Math.round)).size > 1, `the glyphs turn with the road: ${angles}`);
  for (let i = 1; i < angles.length; i += 1) assert.ok(Math.abs(angles[i] - angles[i - 1]) <= MAX_BEND);
  // y grows down the screen: a road bending downwards turns the glyphs clockwise (negative angles)
  assert.ok(angles[angles.length - 1] < angles[0] && angles.every((a) => a <= 0 && a > -90), `${angles}`);
  // glyphs follow each other along the road, a glyph's advance apart
  for (let i = 1; i < glyphs.length; i += 1) {
    const gap = Math.hypot(glyphs[i].screen[0] - glyphs[i - 1].screen[0], glyphs[i].screen[1] - glyphs[i - 1].screen[1]);
    assert.ok(Math.abs(gap - (widths[i] + widths[i - 1]) / 2) < 1.5, `gap ${gap}`);
  }
});

test('a name never straddles a sharp bend: it slides off it, or is left out', () => {
  // a right angle at the anchor, long legs: the name moves onto one straight leg
  const corner = [[0, 100], [100, 100], [100, 200]];
  const widths = [12, 12, 12];
  const glyphs = placeAlong(corner, corner, 0.5, widths);
  assert.ok(glyphs);
  const angles = new Set(glyphs.map((g) => Math.round(g.angle)));
  assert.equal(angles.size, 1, `one straight leg: ${[...angles]}`);
  for (const g of glyphs) assert.ok(distanceTo(corner, g.screen) < 0.5);
  // short legs: nowhere to go without crossing the bend
  const tight = [[0, 100], [20, 100], [20, 120]];
  assert.equal(placeAlong(tight, tight, 0.5, widths), null);
  // a hairpin doubling back is refused too
  const hairpin = [[0, 0], [60, 0], [0, 4]];
  assert.equal(placeAlong(hairpin, hairpin, 0.5, [12, 12, 12, 12, 12, 12]), null);
});

test('road names with a path are placed glyph by glyph and keep clear of other labels', () => {
  const path = [[20, 150], [120, 150], [200, 110], [300, 110]];
  const road = layer('roads', 50, [{ zh: '莘松路', position: [120, 150], toward: [125, 148], path, at: 0.3 }],
    { placement: 'line' });
  const [placed] = placeLabels([road], view, project, 'zh');
  assert.equal(placed.text, '莘松路');
  assert.deepEqual(placed.glyphs.map((g) => g.text), ['莘', '松', '路']);
  for (const g of placed.glyphs) assert.ok(distanceTo(path, g.position) < 1e-6);
  // the TextLayer draws each glyph at its own place and angle
  const drawn = drawnGlyphs([placed]);
  assert.deepEqual(drawn.map((d) => d.text), ['莘', '松', '路']);
  assert.deepEqual(drawn.map((d) => d.angle), placed.glyphs.map((g) => g.angle));
  assert.equal(drawn[0].size, 12);
  // a town label of higher priority on the road's glyphs keeps the road's name off that stretch
  const town = layer('towns', 90, [{ zh: '莘庄镇', position: [90, 150], toward: null }]);
  const both = placeLabels([road, town], view, project, 'zh');
  assert.deepEqual(both.map((p) => p.text), ['莘庄镇'], 'the name would cross the town label');
  // English names are set along the line too
  const en = layer('roads', 50, [{ zh: '莘松路', en: 'Xinsong Rd', position: [120, 150], path, at: 0.5 }]);
  const [english] = placeLabels([en], view, project, 'en');
  assert.equal(english.glyphs.map((g) => g.text).join(''), 'Xinsong Rd');
  assert.deepEqual(drawnGlyphs([{ text: '七宝', position: [1, 2], angle: 0, glyphs: null }]),
    [{ text: '七宝', position: [1, 2], angle: 0, glyphs: null }], 'point labels are drawn as they are');
});

test('while the camera moves the labels stay put; at rest they are placed again at once', () => {
  const placedAt = { longitude: 121.4, latitude: 31.1, zoom: 12, pitch: 0, bearing: 0 };
  const town = layer('towns', 90, [{ position: [200, 150], zh: '莘庄镇', en: 'Xinzhuang' }]);
  let renders = 0;
  const app = {
    state: { lang: 'zh', visible: {}, apiKey: '', layers: { towns: { access: 'public' } },
      labels: { layers: [town], placed: [], view: placedAt, lang: 'zh', shown: '1' } },
    deck: { getViewports: () => [{ width: 400, height: 300, zoom: 12, project: (p) => p }] },
    metrics: { labels: {} },
    view: () => moved,
    render: () => { renders += 1; },
  };
  const moved = Object.assign({}, placedAt, { longitude: 121.45 });
  assert.equal(labelsStale(app.state, placedAt), false, 'placed for this camera');
  assert.equal(labelsStale(app.state, moved), true);
  labelsAfterFrame(app, moved, true);
  assert.equal(app.state.labels.timer, undefined, 'nothing scheduled while the camera moves');
  labelsAtRest(app, moved);
  assert.equal(renders, 1, 'placed and drawn at rest');
  assert.deepEqual(app.state.labels.placed.map((p) => p.text), ['莘庄镇']);
  assert.equal(app.state.labels.view, moved);
  labelsAtRest(app, moved);
  assert.equal(renders, 1, 'placed for this camera already: nothing to do');
});
