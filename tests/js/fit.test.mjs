import assert from 'node:assert/strict';
import { test } from 'node:test';

import { area, fitInto, freeRect, geometryPoints, screenBox } from '../../cim_service/static/js/fit.js';

/** A camera of a flat map: `scale` = 2^zoom pixels per unit, or, with `tilt`, y squeezed towards the top
 * (a stand-in for a pitched view: not linear, so fitInto must correct itself). */
function flatViewport(width, height, tilt = 0) {
  return (view) => {
    const k = 2 ** view.zoom;
    const squeeze = (y) => y * (1 - tilt * Math.tanh(y / height));
    return {
      width, height,
      project: ([lon, lat]) => [width / 2 + (lon - view.longitude) * k, height / 2 + squeeze((view.latitude - lat) * k)],
      unproject: ([x, y]) => {
        // invert squeeze by bisection (monotonic for tilt < 1)
        const target = y - height / 2;
        let lo = -1e7, hi = 1e7;
        for (let i = 0; i < 200; i += 1) { const mid = (lo + hi) / 2; if (squeeze(mid) < target) lo = mid; else hi = mid; }
        return [view.longitude + (x - width / 2) / k, view.latitude - (lo + hi) / 2 / k];
      },
    };
  };
}

const inside = (box, rect) => box.left >= rect.left - 1e-6 && box.right <= rect.right + 1e-6
  && box.top >= rect.top - 1e-6 && box.bottom <= rect.bottom + 1e-6;

test('the free part of the map keeps the side of each overlay that leaves most of the map', () => {
  // a panel down the right side: the free part is left of it
  const panel = { left: 700, top: 10, right: 1040, bottom: 800 };
  assert.deepEqual(freeRect(1100, 900, [panel], 10), { left: 10, top: 10, right: 690, bottom: 890 });
  // and a legend in the bottom-left corner: cut above it (keeps more than cutting right of it)
  const legend = { left: 10, top: 780, right: 290, bottom: 890 };
  assert.deepEqual(freeRect(1100, 900, [panel, legend], 10), { left: 10, top: 10, right: 690, bottom: 770 });
  // an overlay outside the free part changes nothing; empty overlays are ignored
  assert.deepEqual(freeRect(1100, 900, [{ left: 0, top: 0, right: 0, bottom: 0 }], 10),
    { left: 10, top: 10, right: 1090, bottom: 890 });
  // the operations screen: an alert column top left and the panel right: below the column would leave less
  const column = { left: 12, top: 12, right: 452, bottom: 300 };
  const free = freeRect(920, 1016, [{ left: 528, top: 10, right: 868, bottom: 1006 }, column], 12);
  assert.deepEqual(free, { left: 12, top: 312, right: 516, bottom: 1004 });
  assert.equal(area({ left: 0, top: 0, right: 10, bottom: 5 }), 50);
  assert.equal(area({ left: 10, top: 0, right: 0, bottom: 5 }), 0);
});

test('fitInto puts the place inside the free part, centred, at any projection', () => {
  const town = [[0, 0], [4, 0], [4, 3], [0, 3], [1, 5]];
  const rect = { left: 10, top: 10, right: 690, bottom: 770 };
  for (const tilt of [0, 0.4]) {
    const viewport = flatViewport(1100, 900, tilt);
    const camera = fitInto(viewport, { longitude: 50, latitude: -20, zoom: 1, pitch: 0, bearing: 0 }, town, rect);
    const box = screenBox(town, viewport(camera).project);
    assert.ok(inside(box, rect), `tilt ${tilt}: ${JSON.stringify(box)}`);
    // it fills 90 % of the free width or height, and its centre is the free part's centre
    const fillW = (box.right - box.left) / (rect.right - rect.left);
    const fillH = (box.bottom - box.top) / (rect.bottom - rect.top);
    assert.ok(Math.abs(Math.max(fillW, fillH) - 0.9) < 0.01, `tilt ${tilt}: ${fillW} ${fillH}`);
    assert.ok(Math.abs((box.left + box.right) / 2 - 350) < 1 && Math.abs((box.top + box.bottom) / 2 - 390) < 1);
    assert.equal(camera.pitch, 0);
  }
  // the zoom is bounded: a tiny place is not flown to beyond maxZoom
  const tiny = [[0, 0], [1e-6, 1e-6]];
  const camera = fitInto(flatViewport(1100, 900), { longitude: 0, latitude: 0, zoom: 1 }, tiny, rect, { maxZoom: 16 });
  assert.equal(camera.zoom, 16);
});

test('geometryPoints lists every vertex of a (multi)polygon', () => {
  assert.deepEqual(geometryPoints({ type: 'MultiPolygon', coordinates: [[[[0, 0], [1, 0], [0, 1]]], [[[5, 5], [6, 6], [5, 6]]]] }),
    [[0, 0], [1, 0], [0, 1], [5, 5], [6, 6], [5, 6]]);
  assert.deepEqual(geometryPoints(null), []);
});
