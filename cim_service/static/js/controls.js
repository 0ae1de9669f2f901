/* The map's controls: zoom buttons, the compass (north arrow; a click turns the map north), the 3D switch and
 * the scale bar, kept in step with the camera on every frame. */
import { moveCamera } from '#cim/deck.js';
import { $ } from '#cim/dom.js';
import { scaleBar } from '#cim/geometry.js';
import { setView3d } from '#cim/state.js';

/** Wire the zoom buttons, the compass and the 3D switch. */
export function wireControls(app) {
  $('zoom-in').addEventListener('click', () => moveCamera(app.deck, { zoom: app.view().zoom + 1 }));
  $('zoom-out').addEventListener('click', () => moveCamera(app.deck, { zoom: app.view().zoom - 1 }));
  $('compass').addEventListener('click', () => moveCamera(app.deck, { bearing: 0 }));
  $('view-3d').addEventListener('click', () => switchView(app, !app.state.view3d));
  syncViewButton(app);
}

/** Switch the 3D view on (pitched, rotated, the basemap and extruded layers shown) or off (flat, north up). */
export function switchView(app, on) {
  setView3d(app.state, on);
  const v3 = app.config.view_3d;
  const now = app.view();
  moveCamera(app.deck, on ? { pitch: v3.pitch, bearing: v3.bearing, zoom: Math.max(now.zoom, v3.zoom - 1) }
    : { pitch: 0, bearing: 0 }, 800);
  syncViewButton(app);
  app.renderPanels();
  app.render();
}

function syncViewButton(app) {
  const button = $('view-3d');
  button.textContent = app.state.view3d ? '2D' : '3D';
  button.setAttribute('aria-pressed', String(app.state.view3d));
}

/** Bring the compass and the scale bar in line with the camera `view`; record them in the metrics. */
export function updateControls(app, view) {
  if (!view) return;
  $('compass-needle').style.transform = `rotate(${-view.bearing}deg)`;
  const bar = scaleBar(view.latitude, view.zoom);
  $('scale-line').style.width = `${bar.px}px`;
  $('scale-label').textContent = bar.label;
  app.metrics.scaleBar = bar;
  app.metrics.view = view;
}
