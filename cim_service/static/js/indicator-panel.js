/* The indicator panel: the indicator choice, the district's value against its target, and the towns' table
 * (a click selects the town: highlighted on the map, which flies to it). */
import { ROLE, roleLayer } from '#cim/config.js';
import { $, element } from '#cim/dom.js';
import { formatValue, statusKey } from '#cim/format.js';
import { flyToGeometry } from '#cim/fly.js';
import { localText, localUnit } from '#cim/i18n.js';
import { townFeature } from '#cim/indicators.js';
import { currentIndicator } from '#cim/state.js';

function statusCell(app, cell, status) {
  cell.textContent = app.t(status || 'unknown');
  cell.className = `status-${statusKey(status)}`;
}

/** Redraw the indicator panel. */
export function renderIndicators(app) {
  const { state } = app;
  const select = $('indicator-select');
  select.replaceChildren();
  for (const ind of state.indicators) select.add(new Option(app.title(ind), ind.id, false, ind.id === state.indicatorId));
  const ind = currentIndicator(state);
  const summary = $('indicator-summary');
  summary.replaceChildren();
  const table = $('indicator-towns');
  table.replaceChildren();
  if (!ind) { summary.textContent = app.t('noIndicators'); return; }
  const line = element('div');
  line.append(`${app.t('wholeDistrict')} · ${app.t('target')} ${formatValue(ind.target)} · `);
  const st = element('span');
  statusCell(app, st, ind.status);
  line.append(st);
  summary.append(element('div', 'big', `${formatValue(ind.value)} ${localUnit(ind.unit, state.lang)}`.trim()), line);
  if (ind.gap) summary.append(element('div', 'gap', localText(ind.gap_zh, ind.gap, state.lang)));
  const head = table.createTHead().insertRow();
  for (const key of ['town', 'value', 'target', 'status']) head.appendChild(element('th', '', app.t(key)));
  const body = table.createTBody();
  for (const row of ind.towns || []) {
    const tr = body.insertRow();
    tr.dataset.town = row.town;
    if (row.town === state.selectedTown) tr.className = 'sel';
    tr.title = localText(row.gap_zh, row.gap, state.lang);
    tr.insertCell().textContent = state.lang === 'en' && row.name_en ? row.name_en : row.town;
    tr.insertCell().textContent = formatValue(row.value);
    tr.insertCell().textContent = formatValue(row.target);
    statusCell(app, tr.insertCell(), row.status);
    tr.addEventListener('click', () => selectTown(app, row.town));
  }
}

/** Select the town `name`: highlight it in the table and on the map, and fly to it, beside the panels open over
 * the map (fly.js). */
export function selectTown(app, name) {
  const { state } = app;
  state.selectedTown = name;
  renderIndicators(app);
  app.render();
  const feature = townFeature(state.base[roleLayer(state.config, ROLE.towns)], name);
  if (feature) flyToGeometry(app, feature.geometry, 800);
}

/** Show the indicator chosen in the select element. */
export function wireIndicatorSelect(app) {
  $('indicator-select').addEventListener('change', (event) => {
    app.state.indicatorId = event.target.value;
    renderIndicators(app);
    app.render();
    if (app.indicatorChanged) app.indicatorChanged(); // as of the time slider's day
  });
}
