/* The operations screen (/map?screen=ops): the plan indicators as KPI cards, the district's value against its
 * target, large enough to read across a room; the cards shown are recorded in window.__cimMetrics.kpis. */
import { $, element } from '#cim/dom.js';
import { formatValue, statusKey } from '#cim/format.js';
import { localUnit } from '#cim/i18n.js';
import { kpiCards } from '#cim/indicators.js';

/** Redraw the KPI cards (the operations screen only). */
export function renderKpis(app) {
  const { state } = app;
  if (state.config.screen !== 'ops') return;
  const list = $('kpi-list');
  const alerts = $('kpi-alerts'); // the live map's active-alerts card (live-panel.js) stays the last of the grid
  list.replaceChildren();
  const cards = kpiCards(state.indicators);
  for (const card of cards) {
    const node = element('div', `kpi-card status-${statusKey(card.status)}`);
    node.dataset.indicator = card.id;
    node.append(element('div', 'kpi-title', state.lang === 'en' ? card.name_en : card.name_zh));
    const value = element('div', 'kpi-value', formatValue(card.value));
    value.append(element('span', 'kpi-unit', ` ${localUnit(card.unit, state.lang)}`));
    const bar = element('div', 'kpi-bar');
    const fill = element('span');
    fill.style.width = `${Math.round(100 * (card.progress || 0))}%`;
    bar.append(fill);
    const foot = element('div', 'kpi-foot', `${app.t('target')} ${formatValue(card.target)} · ${app.t(card.status || 'unknown')}`);
    node.append(value, bar, foot);
    list.append(node);
  }
  if (alerts) list.append(alerts);
  app.metrics.kpis = cards.map(({ id, value, target, status }) => ({ id, value, target, status }));
}
