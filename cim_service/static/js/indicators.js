/* Plan indicators: per-town rows, town-name matching and the default choice. Pure: no DOM. */

/** Return an indicator's town rows keyed by town name. */
export function townValues(ind) {
  const out = {};
  for (const row of (ind && ind.towns) || []) out[row.town] = row;
  return out;
}

/** Return a town name without its level word (街道, 镇, 工业区). */
export function townStem(name) {
  return name.replace(/(街道|镇|工业区)$/, '');
}

/**
 * Return the row of `rows` for the town `name`, or null.
 *
 * Official and colloquial names differ (古美街道 / 古美路街道): without an exact match, the names are matched on
 * their stem (at least two characters), one stem being the start of the other.
 */
export function lookupTown(rows, name) {
  if (!name) return null;
  if (rows[name]) return rows[name];
  const stem = townStem(name);
  if (stem.length < 2) return null;
  const key = Object.keys(rows).find((k) => townStem(k).length >= 2 && (k.startsWith(stem) || stem.startsWith(townStem(k))));
  return key ? rows[key] : null;
}

/** Return the indicator list of an /indicators answer (a list, or an object with `indicators`). */
export function indicatorList(data) {
  return Array.isArray(data) ? data : (data && data.indicators) || [];
}

/** Return the indicator to show: `current` while it exists, else the first with town values, else the first. */
export function defaultIndicatorId(indicators, current) {
  if (indicators.some((i) => i.id === current)) return current;
  const withTowns = indicators.find((i) => (i.towns || []).length);
  return (withTowns || indicators[0] || {}).id || null;
}

/** Return the feature of a town collection whose name matches the town `name`, or undefined. */
export function townFeature(collection, name) {
  if (!collection || !collection.features) return undefined;
  // the boundary of that very name first: towns sharing a stem (莘庄镇, 莘庄工业区) would otherwise give the first
  // of them, and the map flew to the other town's boundary
  const named = (f) => f.properties && f.properties.name;
  return collection.features.find((f) => named(f) === name)
    || collection.features.find((f) => lookupTown({ [name]: true }, named(f)));
}

/** Return the operations screen's KPI cards: each indicator's district value against its target (higher is
 * better), its status and how far along it is (value / target, within 0..1; null without both). */
export function kpiCards(indicators) {
  return indicators.map((ind) => {
    const { value, target } = ind;
    const known = typeof value === 'number' && typeof target === 'number' && target > 0;
    return {
      id: ind.id, name_zh: ind.name_zh, name_en: ind.name_en, unit: ind.unit || '', value, target,
      status: ind.status, progress: known ? Math.max(0, Math.min(1, value / target)) : null,
    };
  });
}
