/* The town panel's trajectory mini chart: a town's value at each year's end, the target line and where the
 * target is due, the on-track mark. Pure: returns the chart's geometry (SVG path data, positions), no DOM. */

/** Width and height (CSS px) of a mini chart and its inner margins. */
export const CHART = { width: 300, height: 64, left: 6, right: 34, top: 8, bottom: 14 };

/** Return the year of an ISO date. */
export function yearOf(iso) {
  return Number(String(iso).slice(0, 4));
}

/**
 * Return the geometry of a trajectory chart of `area` (one area of /indicators/{id}/trajectory: `values`
 * [{date, value}], `target`, `on_track`) up to `targetYear`, or null without any value.
 *
 * x runs over the years from the first value to the target year; y over the values and the target (the
 * target line always shows). The result: `path` (the values), `dots`, `target` {y, label}, `years` ticks,
 * `due` (x of the target year) and `onTrack` (true, false or null: unknown).
 */
export function chartGeometry(area, targetYear, size = CHART) {
  const values = ((area && area.values) || []).filter((v) => typeof v.value === 'number');
  if (!values.length) return null;
  const target = typeof area.target === 'number' ? area.target : null;
  const first = yearOf(values[0].date);
  const last = Math.max(targetYear || first, yearOf(values[values.length - 1].date));
  const ys = values.map((v) => v.value).concat(target === null ? [] : [target]);
  let lo = Math.min(0, ...ys);
  let hi = Math.max(...ys);
  if (hi === lo) hi = lo + 1;
  hi += (hi - lo) * 0.08;
  const w = size.width - size.left - size.right;
  const h = size.height - size.top - size.bottom;
  const x = (year) => size.left + (last === first ? w / 2 : ((year - first) / (last - first)) * w);
  const y = (v) => size.top + h - ((v - lo) / (hi - lo)) * h;
  const round = (n) => Math.round(n * 10) / 10;
  const dots = values.map((v) => ({ x: round(x(yearOf(v.date))), y: round(y(v.value)), value: v.value,
    year: yearOf(v.date) }));
  const path = dots.map((d, i) => `${i ? 'L' : 'M'}${d.x},${d.y}`).join(' ');
  const years = [];
  for (let yr = first; yr <= last; yr += 1) years.push({ x: round(x(yr)), label: String(yr).slice(2) });
  return {
    width: size.width, height: size.height, path, dots, years,
    target: target === null ? null : { y: round(y(target)), value: target },
    due: round(x(last)),
    onTrack: area.on_track === true ? true : area.on_track === false ? false : null,
  };
}

/** Return `text` with the characters markup gives a meaning to escaped. */
export function escapeMarkup(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Return the SVG markup of a chart geometry `g` (chartGeometry): year ticks, the target line (dashed) with
 * `targetLabel`, the values as a line with dots, and ✓ / ✗ after the last value when on track is known.
 * (Markup parsed by the HTML parser, which puts <svg> in the SVG namespace itself.)
 */
export function chartSvg(g, targetLabel) {
  const parts = [`<svg class="trajectory" width="${g.width}" height="${g.height}" viewBox="0 0 ${g.width} ${g.height}"`
    + ` data-on-track="${g.onTrack}">`];
  for (const t of g.years) {
    parts.push(`<text class="tick" x="${t.x}" y="${g.height - 2}" text-anchor="middle">${escapeMarkup(t.label)}</text>`);
  }
  if (g.target) {
    parts.push(`<line class="target-line" x1="4" x2="${g.due}" y1="${g.target.y}" y2="${g.target.y}"></line>`,
      `<text class="target-label" x="${g.due + 3}" y="${g.target.y + 4}">${escapeMarkup(targetLabel)}</text>`);
  }
  parts.push(`<path class="values" d="${g.path}"></path>`);
  for (const d of g.dots) parts.push(`<circle class="dot" cx="${d.x}" cy="${d.y}" r="2.5"></circle>`);
  const last = g.dots[g.dots.length - 1];
  if (g.onTrack !== null) {
    parts.push(`<text class="${g.onTrack ? 'on-track' : 'off-track'}" x="${last.x + 6}" y="${last.y - 4}">`
      + `${g.onTrack ? '✓' : '✗'}</text>`);
  }
  parts.push('</svg>');
  return parts.join('');
}
