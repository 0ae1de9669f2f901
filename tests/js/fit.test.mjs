import assert from 'node:assert/strict';
import { test } from 'node:test';

import { area, fitInto, freeRect, geometryPoints, inside as within, screenBox } from '../../cim_service/static/js/fit.js';

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

/** A pitched, rotated pinhole camera over a flat ground (deck.gl's MapView: the camera 1.5 screen heights from
 * the point it looks at, `scale` = 2^zoom pixels per unit at the centre): far places are smaller. */
function pitchedViewport(width, height) {
  return (view) => {
    const k = 2 ** view.zoom;
    const p = ((view.pitch || 0) * Math.PI) / 180;
    const b = ((view.bearing || 0) * Math.PI) / 180;
    const dist = 1.5 * height;
    return {
      width, height,
      project: ([lon, lat]) => {
        const ex = (lon - view.longitude) * k;
        const ny = (lat - view.latitude) * k;
        const gx = ex * Math.cos(b) - ny * Math.sin(b);
        const gy = ex * Math.sin(b) + ny * Math.cos(b);
        const z = dist + gy * Math.sin(p);
        return [width / 2 + (gx * dist) / z, height / 2 - (gy * Math.cos(p) * dist) / z];
      },
      unproject: ([x, y]) => {
        const sx = x - width / 2;
        const sy = height / 2 - y;
        const gy = (sy * dist) / (dist * Math.cos(p) - sy * Math.sin(p));
        const gx = (sx * (dist + gy * Math.sin(p))) / dist;
        const ex = gx * Math.cos(b) + gy * Math.sin(b);
        const ny = -gx * Math.sin(b) + gy * Math.cos(b);
        return [view.longitude + ex / k, view.latitude + ny / k];
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

test('fitInto puts the place inside an off-centre free part of a pitched, rotated camera', () => {
  // the operations screen at 1920x1080: the map 920x1016, the free part low left between the alert column,
  // the legend and the town panel; the ops camera pitched 55 degrees. Before the fit waited for the zoom to
  // settle before moving the centre, this camera left the town half under the panel.
  const viewport = pitchedViewport(920, 1016);
  const town = [[0, 0], [4, 0], [4, 3], [0, 3], [1, 5]];
  const rect = { left: 251, top: 315, right: 516, bottom: 958 };
  for (const start of [{ longitude: 2, latitude: 2, zoom: 6, pitch: 55, bearing: -25 },
    { longitude: -3, latitude: 8, zoom: 8, pitch: 55, bearing: -25 },
    { longitude: 2, latitude: 2, zoom: 3, pitch: 55, bearing: 20 },
    { longitude: 0, latitude: 0, zoom: 5, pitch: 0, bearing: 0 }]) {
    const camera = fitInto(viewport, start, town, rect);
    const box = screenBox(town, viewport(camera).project);
    assert.ok(inside(box, rect), `${JSON.stringify(start)}: ${JSON.stringify(box)}`);
    assert.ok(within(box, rect));
    const fillW = (box.right - box.left) / (rect.right - rect.left);
    const fillH = (box.bottom - box.top) / (rect.bottom - rect.top);
    assert.ok(Math.abs(Math.max(fillW, fillH) - 0.9) < 0.01, `${JSON.stringify(start)}: ${fillW} ${fillH}`);
    assert.ok(Math.abs((box.left + box.right) / 2 - 383.5) < 1 && Math.abs((box.top + box.bottom) / 2 - 636.5) < 1);
    assert.equal(camera.pitch, start.pitch);
    assert.equal(camera.bearing, start.bearing);
  }
});

test('geometryPoints lists every vertex of a (multi)polygon', () => {
  assert.deepEqual(geometryPoints({ type: 'MultiPolygon', coordinates: [[[[0, 0], [1, 0], [0, 1]]], [[[5, 5], [6, 6], [5, 6]]]] }),
    [[0, 0], [1, 0], [0, 1], [5, 5], [6, 6], [5, 6]]);
  assert.deepEqual(geometryPoints(null), []);
});
