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
