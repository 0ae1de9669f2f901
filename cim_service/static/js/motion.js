/* Resolution while the camera moves, in software WebGL: the frames of a pan, zoom, rotation or flight are drawn
 * into a smaller drawing buffer (MOTION_PIXEL_RATIO of the CSS size, scaled up by the compositor), and the map
 * is drawn again at full resolution once the camera has rested SETTLE_MS. SwiftShader (a machine without a
 * usable GPU) shades and reads back every pixel on the CPU: at 1920×1080 a frame of the 3D view with its
 * buildings, columns and basemap costs several hundred ms, half of it at half the resolution. The first
 * meaningful paint and every view at rest are drawn at full resolution; with a GPU nothing changes. Pure: the
 * page applies the ratio (deck.setProps({useDevicePixels})). */

/** Drawing-buffer pixels per CSS pixel while the camera moves (software WebGL). */
export const MOTION_PIXEL_RATIO = 0.5;
/** Time (ms) the camera must rest before the map is drawn at full resolution again. The rest is judged at the
 * start of a frame (the page asks motionSettled from a requestAnimationFrame callback): a move that goes on has
 * drawn its next frame by then, however long its frames take (a software frame can take longer than SETTLE_MS:
 * judged from a timer between two of them, a slow frame in the middle of a pan, e.g. when a tile arrives, looked
 * like a rest, and the next frames of the pan were drawn at full resolution, each switch resizing the drawing
 * buffer). One resolution holds for the whole gesture. */
export const SETTLE_MS = 300;

/** Return the motion tracker of a page; `software`: the browser's WebGL renders in software. */
export function createMotion(software) {
  return { software: Boolean(software), last: null, movedAt: null, reduced: false, switches: 0 };
}

function moved(a, b) {
  if (!a || !b) return false;
  return ['longitude', 'latitude', 'zoom', 'pitch', 'bearing'].some((k) => (a[k] || 0) !== (b[k] || 0));
}

/**
 * Record a frame drawn with camera `view` at `now` (`ready`: the first meaningful paint is done); return the
 * pixel ratio the next frames are to be drawn at (MOTION_PIXEL_RATIO or true: the device's), or null to keep it.
 */
export function motionAfterFrame(motion, view, now, ready) {
  const change = moved(motion.last, view);
  motion.last = view ? Object.assign({}, view) : motion.last;
  if (!motion.software || !ready) return null;
  if (change) {
    motion.movedAt = now;
    if (!motion.reduced) { motion.reduced = true; motion.switches += 1; return MOTION_PIXEL_RATIO; }
  }
  return null;
}

/** Return the pixel ratio to draw at when the camera may have come to rest at `now`, the start of a frame (true:
 * full, the camera has rested SETTLE_MS), or null to keep the reduced one (it moved since: ask again later) or when
 * nothing is reduced. */
export function motionSettled(motion, now) {
  if (!motion.reduced || motion.movedAt === null || now - motion.movedAt < SETTLE_MS) return null;
  motion.reduced = false;
  motion.switches += 1;
  return true;
}

/** Return whether the map is drawn at the reduced resolution of a moving camera now (what is done at rest, e.g.
 * placing the labels, waits). */
export function moving(motion) {
  return motion.reduced;
}
