/* window.__cimMetrics: what the browser tests and benchmarks/bench_map.py read. Times are on the page's
 * Performance clock (0 = navigation start).
 *   firstRenderMs           the first deck.gl frame
 *   firstMeaningfulPaintMs  the first frame after the base layers, the indicators (choropleth) and every visible
 *                           tile layer's viewport have loaded
 *   fmpFrameCommittedMs     the start of the next frame: the FMP frame's work committed (in software WebGL, after
 *                           its GPU work)
 *   tileRequests            tile requests sent (Resource Timing entries with /tiles/)
 *   tileErrors              tiles that failed to load
 *   tilesLoaded             layer id -> time its viewport's tiles had loaded
 *   frames                  times of the first 200 frames; renders: frames drawn
 *   view                    the camera of the last frame (longitude, latitude, zoom, pitch, bearing)
 *   drawnLayers             ids of the deck layers of the last render; extrudedLayers: those drawn extruded
 *   fmpLayers               ids of the deck layers the first meaningful paint drew
 *   scaleBar                the scale bar shown ({metres, px, label}); at: the time slider's day (null: now)
 *   atTileRequests          tile requests carrying at=; indicatorAtRequests: indicators loaded as of a day
 *   kpis                    the operations screen's KPI cards ({id, value, target, status})
 *   labels                  the map labels (labels.js): {font, fontLoaded, lang, placed, byLayer, texts}
 *   pixelRatio              drawing-buffer pixels per CSS pixel of the frames now drawn: 1, or less while the
 *                           camera moves in software WebGL (motion.js)
 *   resolutionSwitches      how often the drawing-buffer resolution changed (to the reduced one and back: two per
 *                           gesture) */

/** Frames whose times are kept. */
export const MAX_FRAMES = 200;

/** Return fresh metrics, published as `target.__cimMetrics`. */
export function createMetrics(target = globalThis) {
  const metrics = {
    firstRenderMs: null, firstMeaningfulPaintMs: null, fmpFrameCommittedMs: null,
    tileRequests: 0, tileErrors: 0, tilesLoaded: {}, frames: [], renders: 0,
    view: null, drawnLayers: [], extrudedLayers: [], fmpLayers: null, scaleBar: null, at: null, atTileRequests: 0,
    indicatorAtRequests: 0, kpis: [], legend: null, townPanel: null, pixelRatio: 1,
    resolutionSwitches: 0,
  };
  target.__cimMetrics = metrics;
  return metrics;
}

/**
 * Record a drawn frame at `now`; the first one for which `meaningful()` holds is the first meaningful paint.
 *
 * `nextFrame(callback)` runs `callback` at the start of the next frame; `clock()` reads the time then.
 */
export function recordFrame(metrics, now, meaningful, nextFrame, clock) {
  metrics.renders += 1;
  if (metrics.frames.length < MAX_FRAMES) metrics.frames.push(Math.round(now));
  if (metrics.firstRenderMs === null) metrics.firstRenderMs = now;
  if (metrics.firstMeaningfulPaintMs === null && meaningful()) {
    metrics.firstMeaningfulPaintMs = now;
    metrics.fmpLayers = metrics.drawnLayers.slice();
    nextFrame(() => { metrics.fmpFrameCommittedMs = clock(); });
  }
}

/** Record that layer `id`'s viewport tiles have loaded at `now`. */
export function recordTilesLoaded(metrics, id, now) {
  metrics.tilesLoaded[id] = now;
}

/** Record a failed tile. */
export function recordTileError(metrics) {
  metrics.tileErrors += 1;
}

/** Return whether a Resource Timing entry name is a tile request. */
export function isTileRequest(name) {
  return name.includes('/tiles/');
}

/** Count the page's tile requests (buffered: those sent before this call too). */
export function observeTileRequests(metrics) {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (!isTileRequest(entry.name)) continue;
      metrics.tileRequests += 1;
      if (/[?&]at=/.test(entry.name)) metrics.atTileRequests += 1;
    }
  }).observe({ type: 'resource', buffered: true });
}

/** Return a tile layer's hooks that record its loaded viewport and its failed tiles (then call `onError`); `id`
 * may be a list: a layer drawing several catalog layers from the multi-layer tiles records each. */
export function tileHooks(metrics, id, onError) {
  return {
    onViewportLoad: () => { for (const one of [].concat(id)) recordTilesLoaded(metrics, one, performance.now()); },
    onTileError: (error) => {
      recordTileError(metrics);
      onError(id, error);
    },
  };
}
