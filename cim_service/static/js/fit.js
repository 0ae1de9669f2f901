/* Flying to a place so that it shows in the part of the map the panels leave free. Pure: no DOM, no deck.gl
 * (the camera's projection is passed in), unit-tested with node --test.
 *
 * The town panel, the alert panel, the controls and the legend lie over the map; a town the map flies to must
 * sit beside them, not under them. freeRect finds the largest part of the map no overlay covers; fitInto turns
 * the camera (whatever its pitch and bearing) until the place's points fill that part. */

/** Return the area of a rectangle {left, top, right, bottom} (0 when empty). */
export function area(r) {
  return Math.max(0, r.right - r.left) * Math.max(0, r.bottom - r.top);
}

function intersects(a, b) {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

/**
 * Return the largest rectangle of the map (`width` × `height` pixels, minus `margin` at its edges) that none of
 * `overlays` ({left, top, right, bottom}, map pixels) covers, cutting away for each overlay (largest first) the
 * side of it that keeps most of the map.
 */
export function freeRect(width, height, overlays, margin = 12) {
  let free = { left: margin, top: margin, right: width - margin, bottom: height - margin };
  const sorted = overlays.filter((o) => area(o) > 0).sort((a, b) => area(b) - area(a));
  for (const o of sorted) {
    if (!intersects(free, o)) continue;
    const cuts = [
      Object.assign({}, free, { right: Math.min(free.right, o.left - margin) }), // the part left of it
      Object.assign({}, free, { left: Math.max(free.left, o.right + margin) }), // right of it
      Object.assign({}, free, { bottom: Math.min(free.bottom, o.top - margin) }), // above it
      Object.assign({}, free, { top: Math.max(free.top, o.bottom + margin) }), // below it
    ];
    const best = cuts.reduce((a, b) => (area(b) > area(a) ? b : a));
    if (area(best) > 0) free = best;
  }
  return free;
}

/** Return the screen box {left, top, right, bottom} of points projected with `project` ([lon, lat] -> [x, y]). */
export function screenBox(points, project) {
  const box = { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity };
  for (const p of points) {
    const [x, y] = project(p);
    box.left = Math.min(box.left, x); box.right = Math.max(box.right, x);
    box.top = Math.min(box.top, y); box.bottom = Math.max(box.bottom, y);
  }
  return box;
}

/** Return whether `box` lies inside `rect` (within `slack` pixels). */
export function inside(box, rect, slack = 0.5) {
  return box.left >= rect.left - slack && box.right <= rect.right + slack && box.top >= rect.top - slack
    && box.bottom <= rect.bottom + slack;
}

/**
 * Return the camera that shows `points` ([lon, lat]) filling `fill` of the rectangle `rect` of the map, centred
 * in it, starting from `view` (its pitch and bearing are kept; the zoom is at most `maxZoom`).
 *
 * `viewport(view)` returns {width, height, project([lon, lat]) -> [x, y], unproject([x, y]) -> [lon, lat]} of a
 * camera (deck.gl's WebMercatorViewport in the map). A pitched camera is not linear: a zoom scales the ground
 * about the screen's centre, so a place off the centre moves as it grows, and a place moved up the screen
 * shrinks. Each step therefore first scales the zoom by how much too large or small the points are, then, in
 * the camera of that zoom, moves the centre by the points' offset from the rectangle's centre; the steps go on
 * until neither changes. Should they not settle (a place near the horizon), the camera is zoomed out until
 * the points lie inside the rectangle: the place is never left under what lies over the map.
 */
export function fitInto(viewport, view, points, rect, { fill = 0.9, maxZoom = 16, steps = 60 } = {}) {
  let camera = Object.assign({}, view);
  const cx = (rect.left + rect.right) / 2;
  const cy = (rect.top + rect.bottom) / 2;
  const boxOf = (vp) => screenBox(points, (p) => vp.project(p));
  const recentre = () => {
    const vp = viewport(camera);
    const box = boxOf(vp);
    const dx = cx - (box.left + box.right) / 2;
    const dy = cy - (box.top + box.bottom) / 2;
    const [longitude, latitude] = vp.unproject([vp.width / 2 - dx, vp.height / 2 - dy]);
    camera = Object.assign({}, camera, { longitude, latitude });
    return Math.abs(dx) < 0.5 && Math.abs(dy) < 0.5;
  };
  for (let i = 0; i < steps; i += 1) {
    const box = boxOf(viewport(camera));
    const w = Math.max(box.right - box.left, 1);
    const h = Math.max(box.bottom - box.top, 1);
    const dz = Math.log2(Math.min((fill * (rect.right - rect.left)) / w, (fill * (rect.bottom - rect.top)) / h));
    const zoom = Math.min(maxZoom, camera.zoom + dz);
    const zoomed = Math.abs(zoom - camera.zoom) < 0.002;
    camera = Object.assign({}, camera, { zoom });
    const centred = recentre();
    if (zoomed && centred) break;
  }
  for (let i = 0; i < 100 && !inside(boxOf(viewport(camera)), rect); i += 1) {
    camera = Object.assign({}, camera, { zoom: camera.zoom - 0.02 });
    recentre();
  }
  return camera;
}

/** Return the vertices of a GeoJSON geometry ([lon, lat] each). */
export function geometryPoints(geometry) {
  const out = [];
  const walk = (c) => { if (typeof c[0] === 'number') out.push([c[0], c[1]]); else c.forEach(walk); };
  if (geometry && geometry.coordinates) walk(geometry.coordinates);
  return out;
}
