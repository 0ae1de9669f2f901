import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  glyphWidths, labelText, MAX_BEND, placeAlong, placeLabels, REPEAT_PX, REPEAT_ZOOM, rotatedBox, screenAngle,
  screenPath, setAt, textSize, upright, viewMoved, visibleRuns,
} from '../../cim_service/static/js/label-place.js';
import {
  drawnGlyphs, labelsAfterFrame, labelsAtRest, labelsStale, withOffsets,
} from '../../cim_service/static/js/labels.js';

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
  assert.equal(withOffset.symbol, 5 + 2, 'the symbol with its ring, which road names keep off');
  const [town] = withOffsets([layer('towns', 90, [])], { towns: { is_point: false, style: {} } });
  assert.deepEqual(town.offset, [0, 0]);
  assert.equal(town.symbol, 0);
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

function overlap(a, b) {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

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
  // a town label of higher priority on the road's middle: the road's name moves along the road, clear of it
  const town = layer('towns', 90, [{ zh: '莘庄镇', position: [160, 130], toward: null }]);
  const both = placeLabels([road, town], view, project, 'zh');
  assert.deepEqual(both.map((p) => p.text), ['莘庄镇', '莘松路']);
  const townBox = rotatedBox(160, 130, ...textSize('莘庄镇', 12), 0);
  for (const g of both[1].glyphs) {
    assert.ok(distanceTo(path, g.position) < 1e-6);
    assert.ok(!overlap(rotatedBox(g.position[0], g.position[1], 12, 15, g.angle), townBox), 'clear of the town');
  }
  // no room left on the road in view: the name is left out
  const blocking = layer('towns', 90, [[70, 150], [160, 130], [250, 110]].map((position, i) => (
    { zh: `镇${i}镇镇`, position, toward: null })));
  assert.deepEqual(placeLabels([road, blocking], view, project, 'zh').map((p) => p.layer), ['towns', 'towns', 'towns']);
  // English names are set along the line too
  const en = layer('roads', 50, [{ zh: '莘松路', en: 'Xinsong Rd', position: [120, 150], path, at: 0.5 }]);
  const [english] = placeLabels([en], view, project, 'en');
  assert.equal(english.glyphs.map((g) => g.text).join(''), 'Xinsong Rd');
  assert.deepEqual(drawnGlyphs([{ text: '七宝', position: [1, 2], angle: 0, glyphs: null }]),
    [{ text: '七宝', position: [1, 2], angle: 0, glyphs: null }], 'point labels are drawn as they are');
});

test('while the camera moves the labels stay put; at rest they are placed again at once', () => {
  // a map element with nothing over it (placeNow reads the panels over the map from the page)
  const map = { getBoundingClientRect: () => ({ left: 0, top: 0, right: 400, bottom: 300 }), children: [] };
  globalThis.document = { getElementById: () => map };
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
  delete globalThis.document;
});

test('the stretches of a line in view, and a name centred on a point of the line', () => {
  const path = screenPath([[-100, 50], [100, 50], [100, 400], [300, 400], [300, 100], [500, 100]],
    [[-100, 50], [100, 50], [100, 400], [300, 400], [300, 100], [500, 100]]);
  // in the 400×300 view: from x 0 to the corner and down to the bottom edge; up from it to the right edge
  assert.deepEqual(visibleRuns(path, 400, 300).map((r) => r.map(round)), [[100, 450], [850, 1150]]);
  assert.deepEqual(visibleRuns(screenPath([[0, -10], [50, -10]], [[0, 0], [1, 0]]), 400, 300), []);
  const widths = [10, 10, 10];
  const centred = setAt(path, 150, widths);
  assert.deepEqual(centred.map((g) => g.screen.map(round)), [[40, 50], [50, 50], [60, 50]]);
  // a stretch drawn right to left still reads left to right, centred on the same point
  const back = setAt(screenPath([[200, 80], [0, 80]], [[200, 80], [0, 80]]), 50, widths);
  assert.deepEqual(back.map((g) => g.screen.map(round)), [[140, 80], [150, 80], [160, 80]]);
  assert.equal(setAt(path, 10, widths), null, 'off the path\'s start');
  assert.equal(setAt(path, 200, widths), null, 'across the right-angled bend');
});

test('a road crossing the view is named though its anchor is off screen, and repeats its name from z14', () => {
  const wide = { width: 1600, height: 900, zoom: REPEAT_ZOOM };
  const path = [[-2000, 450], [3600, 470]];
  const road = layer('roads', 50, [{ zh: '虹梅路', position: [800, 460], toward: null, path, at: 0.5 }],
    { placement: 'line' });
  road.labels[0].position = [-1800, 451]; // the anchor far off to the left
  const names = placeLabels([road], wide, project, 'zh');
  assert.ok(names.length >= 3 && names.length <= 5, `about every ${REPEAT_PX} px across 1600 px: ${names.length}`);
  const xs = names.map((p) => p.position[0]).sort((a, b) => a - b);
  for (let i = 1; i < xs.length; i += 1) assert.ok(Math.abs(xs[i] - xs[i - 1] - REPEAT_PX) < 60, `${xs}`);
  for (const p of names) assert.ok(p.glyphs.every((g) => g.position[0] > 0 && g.position[0] < 1600));
  // below z14 the name is placed once, at the middle of the stretch in view
  const once = placeLabels([road], Object.assign({}, wide, { zoom: REPEAT_ZOOM - 1 }), project, 'zh');
  assert.equal(once.length, 1);
  assert.ok(Math.abs(once[0].position[0] - 800) < 30, `${once[0].position}`);
});

test('in a street grid every road in view is named, the long ones again further on, none overlapping', () => {
  const wide = { width: 1600, height: 900, zoom: 14 };
  const roads = [];
  for (let i = 0; i < 5; i += 1) roads.push({ zh: `东${i}路`, path: [[-50, 100 + 170 * i], [1650, 110 + 170 * i]] });
  for (let i = 0; i < 8; i += 1) roads.push({ zh: `北${i}街`, path: [[90 + 200 * i, -50], [100 + 200 * i, 950]] });
  // a short lane between two crossings: room for its name once
  roads.push({ zh: '小弄', path: [[300, 180], [390, 180]] });
  const grid = layer('roads', 50, roads.map((r) => Object.assign({ position: r.path[0], toward: null, at: 0.5 }, r)),
    { placement: 'line' });
  const placed = placeLabels([grid], wide, project, 'zh');
  assert.deepEqual([...new Set(placed.map((p) => p.text))].sort(), roads.map((r) => r.zh).sort(), 'every road named');
  assert.ok(placed.filter((p) => p.text === '东2路').length >= 3, 'the long roads repeat their names');
  const boxes = placed.map((p) => p.glyphs.map((g) => rotatedBox(g.position[0], g.position[1], 12, 12, g.angle)));
  for (let i = 0; i < boxes.length; i += 1) {
    for (let j = i + 1; j < boxes.length; j += 1) {
      assert.ok(!boxes[i].some((a) => boxes[j].some((b) => overlap(a, b))), `${placed[i].text} / ${placed[j].text}`);
    }
  }
  for (const p of placed) for (const g of p.glyphs) assert.ok(-90 < g.angle && g.angle <= 90, 'upright');
});

test('road names keep off the symbols of the point layers shown, and lines out of view cost nothing', () => {
  const path = [[0, 150], [400, 150]];
  const road = layer('roads', 50, [{ zh: '七莘路', position: [200, 150], toward: null, path, at: 0.5 }],
    { placement: 'line' });
  const metro = layer('metro', 70, [{ zh: '站', position: [200, 150], toward: null }],
    { min_zoom: 20, symbol: 7 }); // its name not shown at this zoom, its symbol is
  const [name] = placeLabels([road, metro], view, project, 'zh');
  assert.ok(name.glyphs.every((g) => Math.abs(g.position[0] - 200) > 7 + 6), 'clear of the symbol');
  const [over] = placeLabels([road, metro], view, project, 'zh', (id) => id !== 'metro');
  assert.ok(over.glyphs.some((g) => Math.abs(g.position[0] - 200) < 8), 'the symbol switched off: the middle');
  // a panel over the map's middle: the name moves along the road beside it; a panel over the whole road: none
  const [beside] = placeLabels([road], Object.assign({ covered: [[150, 100, 260, 200]] }, view), project, 'zh');
  assert.ok(beside.glyphs.every((g) => g.position[0] < 150 - 6 || g.position[0] > 260 + 6), 'beside the panel');
  assert.deepEqual(placeLabels([road], Object.assign({ covered: [[0, 140, 400, 160]] }, view), project, 'zh'), []);
  // a line whose box is outside the view's bounds is not even projected
  let calls = 0;
  const counting = (p) => { calls += 1; return p; };
  const far = layer('roads', 50, [{ zh: '远路', position: [5000, 5000], path: [[5000, 5000], [5400, 5000]], at: 0.5 }]);
  assert.deepEqual(placeLabels([far], Object.assign({ bounds: [0, 0, 400, 300] }, view), counting, 'zh'), []);
  assert.equal(calls, 0);
});
