/* Formatting of values and feature attributes for the panels. Pure: no DOM. */
import { localTitle } from '#cim/i18n.js';

/** Properties the tile encoder adds to features, never shown as attributes. */
export const INTERNAL_PROPERTIES = ['layerName', 'count', 'id'];

/** Format an indicator value: thousands separated from 100 on, else at most two decimals; '—' for none. */
export function formatValue(v) {
  if (typeof v !== 'number') return v === null || v === undefined ? '—' : String(v);
  return Math.abs(v) >= 100 ? v.toLocaleString('zh-CN', { maximumFractionDigits: 0 }) : String(Math.round(v * 100) / 100);
}

/** Format an attribute value for the click panel ('—' for none, JSON for objects). */
export function cellText(v) {
  if (v === null || v === undefined) return '—';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Return the status of an indicator row as one of met / not_met / unknown. */
export function statusKey(status) {
  return status === 'met' || status === 'not_met' ? status : 'unknown';
}

/** Return a feature's label: the English label field on the EN switch when the layer has one, else the label field. */
export function featureLabel(meta, props, lang) {
  if (!meta || !props) return null;
  const en = lang === 'en' && meta.label_field_en ? props[meta.label_field_en] : null;
  return en || (meta.label_field ? props[meta.label_field] : null) || null;
}

/** Return the title of a feature: its layer's title and, when the layer names one, its label. */
export function featureTitle(meta, props, lang) {
  const label = featureLabel(meta, props, lang);
  return `${localTitle(meta, lang)}${label ? ' · ' + label : ''}`;
}

/** Return the [title, value] rows of a feature: declared fields first (titled), then any other property. */
export function fieldRows(meta, props, lang) {
  const named = meta && meta.fields ? meta.fields : [];
  const rows = [];
  for (const field of named) if (field.name in props) rows.push([localTitle(field, lang), props[field.name]]);
  for (const [k, v] of Object.entries(props)) {
    if (!named.some((f) => f.name === k) && !INTERNAL_PROPERTIES.includes(k)) rows.push([k, v]);
  }
  return rows;
}
