/* Colours: the choropleth ramps, the no-data grey and layer swatches. Pure: no DOM, no deck.gl. */

/** Three-step ramps (light to dark) for towns that meet and that miss the indicator's target. */
export const RAMP = {
  met: [[199, 233, 192], [116, 196, 118], [35, 139, 69]],
  not_met: [[254, 224, 210], [252, 146, 114], [203, 24, 29]],
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

/** Return the RGBA ramp colour of `value` within `range`, from the met or the not-met ramp. */
export function rampColor(status, value, range) {
  const ramp = RAMP[status === 'met' ? 'met' : 'not_met'];
  const span = range[1] - range[0];
  const f = span > 0 ? (value - range[0]) / span : 0.5;
  const idx = Math.max(0, Math.min(ramp.length - 1, Math.round(f * (ramp.length - 1))));
  return [...ramp[idx], FILL_ALPHA];
}

/** Return the fill of a town's indicator row (NODATA without a value; more opaque when selected). */
export function townFill(row, range, selectedTown) {
  if (!row || typeof row.value !== 'number') return NODATA;
  const color = rampColor(row.status, row.value, range);
  if (selectedTown && row.town === selectedTown) color[3] = SELECTED_ALPHA;
  return color;
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
