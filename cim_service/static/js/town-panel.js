/* The town panel (a click on a town): every plan indicator of the town with its value, target, gap and its
 * trajectory mini chart (/indicators/{id}/trajectory?town=: the yearly values, the target line, on track or
 * not). It is drawn from what it loaded, so the language switch redraws it at once (renderTownPanel).
 * What it shows is recorded in window.__cimMetrics.townPanel. */
import { chartGeometry, chartSvg } from '#cim/chart.js';
import { getJSON } from '#cim/data.js';
import { $, element } from '#cim/dom.js';
import { formatValue, statusKey } from '#cim/format.js';
import { localText, localUnit } from '#cim/i18n.js';
import { lookupTown, townValues } from '#cim/indicators.js';

/** Return the URL of an indicator's trajectory for one town. */
export function trajectoryUrl(config, id, town) {
  return `${config.endpoints.trajectory.replace('{id}', encodeURIComponent(id))}?town=${encodeURIComponent(town)}`;
}

/** Draw the trajectory chart of `area` into `slot`; return whether it had values to draw. */
export function drawChart(app, slot, area, targetYear) {
  const g = chartGeometry(area, targetYear);
  if (!g) return false;
  slot.innerHTML = chartSvg(g, app.t('target')); // markup of numbers and our own labels, escaped
  return true;
}

function trackText(app, onTrack) {
  return onTrack === true ? `✓ ${app.t('onTrack')}` : onTrack === false ? `✗ ${app.t('offTrack')}` : '';
}

function indicatorBlock(app, ind, row) {
  const block = element('div', `town-ind status-${statusKey(row && row.status)}`);
  block.dataset.indicator = ind.id;
  block.append(element('div', 'town-ind-title', app.title(ind)));
  const line = element('div', 'town-ind-line');
  line.append(element('b', '', `${formatValue(row ? row.value : null)} ${localUnit(ind.unit, app.state.lang)}`.trim()),
    ` · ${app.t('target')} ${formatValue(row ? row.target : null)} · `,
    element('span', `status-${statusKey(row && row.status)}`, app.t((row && row.status) || 'unknown')));
  block.append(line);
  if (row && row.status === 'not_met') block.append(element('div', 'gap', localText(row.gap_zh, row.gap, app.state.lang)));
  const chart = element('div', 'town-chart');
  block.append(chart);
  return { block, chart };
}

/** Draw one indicator's chart slot from what its trajectory request gave (`got`: undefined while it loads). */
function fillChart(app, chart, got) {
  chart.replaceChildren();
  if (got === undefined) chart.append(element('span', 'loading', '…'));
  else if (got && got.area && drawChart(app, chart, got.area, got.targetYear)) {
    const track = trackText(app, got.area.on_track);
    if (track) chart.append(element('div', `town-track ${got.area.on_track ? 'on-track' : 'off-track'}`, track));
  } else if (got && got.empty) chart.append(element('span', 'loading', app.t('noTrajectory')));
}

/** Return the name of the open town in the page's language (its English name where the indicators give one). */
function townName(app, name) {
  if (app.state.lang !== 'en') return name;
  for (const ind of app.state.indicators) {
    const row = lookupTown(townValues(ind), name);
    if (row && row.name_en) return row.name_en;
  }
  return name;
}

/**
 * Draw the open town panel (app.townPanel: the town and the trajectories loaded so far) in the page's language:
 * called when it opens, as each trajectory arrives, and on the language switch.
 */
export function renderTownPanel(app) {
  const open = app.townPanel;
  if (!open || $('town-panel').hidden) return;
  const list = $('town-list');
  list.replaceChildren();
  $('town-title').textContent = townName(app, open.name);
  for (const ind of app.state.indicators) {
    const row = lookupTown(townValues(ind), open.name);
    const { block, chart } = indicatorBlock(app, ind, row);
    list.append(block);
    fillChart(app, chart, row && !app.state.config.inline ? open.charts[ind.id] : null);
  }
  app.metrics.townPanel.lang = app.state.lang;
}

/** Open the panel of the town `name` (a town boundary's name): its indicators now, their charts as they load. */
export async function openTownPanel(app, name) {
  const { state } = app;
  const panel = $('town-panel');
  $('click-panel').hidden = true;
  app.clickPanel = null;
  panel.hidden = false;
  const seq = (app.townSeq = (app.townSeq || 0) + 1);
  const open = { name, charts: {} };
  app.townPanel = open;
  const shown = { town: name, indicators: [], charts: 0, chartsEmpty: 0, chartsFailed: 0, done: false, lang: state.lang };
  app.metrics.townPanel = shown;
  const jobs = [];
  for (const ind of state.indicators) {
    const row = lookupTown(townValues(ind), name);
    const entry = { id: ind.id, value: row ? row.value : null, target: row ? row.target : null,
      status: row ? row.status : null, chart: false };
    shown.indicators.push(entry);
    if (!row || state.config.inline) continue;
    jobs.push(getJSON(trajectoryUrl(state.config, ind.id, row.town), state.apiKey, null).then((traj) => {
      if (seq !== app.townSeq) return;
      const area = (traj.towns || [])[0];
      const drawable = Boolean(area && chartGeometry(area, traj.target_year));
      open.charts[ind.id] = drawable ? { area, targetYear: traj.target_year } : { empty: true };
      if (drawable) {
        shown.charts += 1;
        entry.chart = true;
      } else {
        shown.chartsEmpty += 1;
      }
    }).catch((error) => {
      if (seq !== app.townSeq) return;
      open.charts[ind.id] = null;
      shown.chartsFailed += 1;
      console.warn('trajectory unavailable', ind.id, error.message);
    }).finally(() => {
      if (seq === app.townSeq) redrawChart(app, ind.id);
    }));
  }
  renderTownPanel(app);
  await Promise.all(jobs);
  if (seq === app.townSeq) shown.done = true;
}

function redrawChart(app, id) {
  const block = $('town-list').querySelector(`.town-ind[data-indicator="${CSS.escape(id)}"] .town-chart`);
  if (block) fillChart(app, block, app.townPanel.charts[id]);
}

/** Close the town panel with its button. */
export function wireTownPanel(app) {
  $('town-close').addEventListener('click', () => {
    $('town-panel').hidden = true;
    app.townPanel = null;
    app.metrics.townPanel = null;
  });
}
