/* Colours: the choropleth broken at the indicator's target, the no-data grey and layer swatches. Pure: no DOM,
 * no deck.gl.
 *
 * A town's colour says first whether it meets the target (reds short of it, greens at or beyond it), then how far
 * it is from the target: the "short" side spans the target to the town furthest behind, the "met" side the target
 * to the town furthest ahead, each in equal steps. Where every town has the same target (densities, shares) the
 * scale is in the indicator's unit; where targets differ (counts shared out by area) it is the share of the
 * town's own target (100 % = the target). The ramps come from the town layer's `style.ramp` (the catalog). */

/** Ramps used when the town layer declares none: light (near the target) to dark (far from it). */
export const DEFAULT_RAMP = {
  met: [[161, 217, 155], [65, 171, 93], [0, 109, 44]],
  not_met: [[252, 187, 161], [239, 101, 72], [179, 0, 0]],
};
/** Fill of a town without a value. */
export const NODATA = [200, 200, 200, 90];
/** Alpha of a town's fill, and of the selected town's. */
export const FILL_ALPHA = 190;
export const SELECTED_ALPHA = 240;

/** Return [min, max] of the towns' numeric values of an indicator ([0, 1] without any). */
export function valueRange(ind) {
  const values = ((ind && ind.towns) || []).map((r) => r.value).filter((v) => typeof v === 'number');
  if (!values.length) return [0, 1];
  return [Math.min(...values), Math.max(...values)];
}

const measured = (r) => r && typeof r.value === 'number' && typeof r.target === 'number';

/**
 * Return the choropleth scale of an indicator: the break (`target`), the ends (`worst`, `best`), the towns nearest
 * the target on either side (`nearShort`, `nearMet`), whether lower is better, whether values are shares of each
 * town's own target (`relative`), the ramps and `score(row)`.
 *
 * Each side's steps run from its town nearest the target to its town furthest from it (the step next to the target
 * reaches the target itself), so the towns of one side differ in colour even when all are far from the target.
 */
export function choroplethScale(ind, ramp) {
  const rows = ((ind && ind.towns) || []).filter(measured);
  const targets = new Set(rows.map((r) => r.target));
  const relative = targets.size > 1;
  const target = relative ? 100 : rows.length ? rows[0].target : (ind && typeof ind.target === 'number' ? ind.target : 0);
  const score = relative ? (r) => (r.target ? (100 * r.value) / r.target : null) : (r) => r.value;
  const lower = Boolean(ind && ind.lower_is_better);
  const side = (met) => rows.filter((r) => (r.status === 'met') === met).map(score)
    .filter((v) => typeof v === 'number' && Number.isFinite(v));
  const [short, met] = [side(false), side(true)];
  const far = (values) => (values.length ? (lower ? Math.max : Math.min) : () => target)(...values);
  const near = (values) => (values.length ? (lower ? Math.min : Math.max) : () => target)(...values);
  const farMet = (values) => (values.length ? (lower ? Math.min : Math.max) : () => target)(...values);
  const nearMet = (values) => (values.length ? (lower ? Math.max : Math.min) : () => target)(...values);
  return {
    target, relative, lower, score,
    worst: far(short), nearShort: near(short), nearMet: nearMet(met), best: farMet(met),
    ramp: ramp && ramp.met && ramp.not_met ? ramp : DEFAULT_RAMP,
  };
}

/** Return the step (0: next to the target) of `value` on a side of `steps` colours running from `near` (the
 * side's town nearest the target) to `far` (its town furthest from it). */
export function sideStep(value, near, far, steps) {
  const span = Math.abs(far - near);
  if (!(span > 0)) return 0;
  const f = Math.abs(value - near) / span;
  return Math.max(0, Math.min(steps - 1, Math.floor(f * steps)));
}

/** Return the RGB colour of a town row on `scale` (null without a value): its side from its status. */
export function scaleColor(scale, row) {
  if (!measured(row)) return null;
  const value = scale.score(row);
  if (typeof value !== 'number' || !Number.isFinite(value)) return null;
  const met = row.status === 'met';
  const colours = met ? scale.ramp.met : scale.ramp.not_met;
  const [near, far] = sideEnds(scale, met);
  return colours[sideStep(value, near, far, colours.length)];
}

/** Return [near, far] of a side of `scale` (met or not): from the target when the side holds one value only. */
export function sideEnds(scale, met) {
  const [near, far] = met ? [scale.nearMet, scale.best] : [scale.nearShort, scale.worst];
  return [near === far ? scale.target : near, far];
}

/**
 * Return the legend of `scale`: its classes from the worst to the best, each with its colour, side and the
 * range of values it stands for ([low, high], in the scale's terms; the classes next to the target reach it).
 */
export function legendClasses(scale) {
  const classes = [];
  for (const side of ['not_met', 'met']) {
    const [near, far] = sideEnds(scale, side === 'met');
    const colours = scale.ramp[side];
    const n = colours.length;
    const list = colours.map((colour, i) => {
      const a = i === 0 ? scale.target : near + ((far - near) * i) / n;
      const b = near + ((far - near) * (i + 1)) / n;
      return { side, colour, range: [Math.min(a, b), Math.max(a, b)] };
    });
    if (side === 'not_met') list.reverse(); // darkest (furthest behind) first
    classes.push(...list);
  }
  return classes;
}

/** Return the fill of a town's indicator row on `scale` (NODATA without a value; more opaque when selected). */
export function townFill(row, scale, selectedTown) {
  const rgb = scaleColor(scale, row);
  if (!rgb) return NODATA;
  return [...rgb, row.town === selectedTown ? SELECTED_ALPHA : FILL_ALPHA];
}

/** Return a CSS rgb() colour of the first three components of an RGB(A) array. */
export function cssColor(c) {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Return the CSS colour of a layer's swatch: the line colour of lines and unfilled areas, else the fill. */
export function swatchColor(meta) {
  const style = meta && meta.style;
  if (!style) return 'rgb(128,128,128)';
  const lines = (meta.geometry || '').includes('LineString');
  const c = lines || (!meta.is_point && !style.fill[3]) ? style.line : style.fill;
  return cssColor(c);
}

/** Return the CSS gradient of a raster's value legend (/rasters/{name}/legend: stops of value and colour), or
 * null without stops. */
export function rampGradient(legend) {
  const stops = (legend && legend.stops) || [];
  if (stops.length < 2) return null;
  const span = stops[stops.length - 1].value - stops[0].value || 1;
  const parts = stops.map((s) => `${s.color} ${Math.round(((s.value - stops[0].value) / span) * 1000) / 10}%`);
  return `linear-gradient(to right, ${parts.join(', ')})`;
}
