/* The town panel (a click on a town): every plan indicator of the town with its value, target, gap and its
 * trajectory mini chart (/indicators/{id}/trajectory?town=: the yearly values, the target line, on track or
 * not). What it shows is recorded in window.__cimMetrics.townPanel. */
import { chartGeometry, chartSvg } from '#cim/chart.js';
import { getJSON } from '#cim/data.js';
import { $, element } from '#cim/dom.js';
import { formatValue, statusKey } from '#cim/format.js';
import { localText } from '#cim/i18n.js';
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

function indicatorBlock(app, ind, row) {
  const block = element('div', `town-ind status-${statusKey(row && row.status)}`);
  block.dataset.indicator = ind.id;
  block.append(element('div', 'town-ind-title', app.title(ind)));
  const line = element('div', 'town-ind-line');
  line.append(element('b', '', `${formatValue(row ? row.value : null)} ${ind.unit || ''}`),
    ` · ${app.t('target')} ${formatValue(row ? row.target : null)} · `,
    element('span', `status-${statusKey(row && row.status)}`, app.t((row && row.status) || 'unknown')));
  block.append(line);
  if (row && row.status === 'not_met') block.append(element('div', 'gap', localText(row.gap_zh, row.gap, app.state.lang)));
  const chart = element('div', 'town-chart');
  chart.append(element('span', 'loading', '…'));
  block.append(chart);
  return { block, chart };
}

/** Open the panel of the town `name` (a town boundary's name): its indicators now, their charts as they load. */
export async function openTownPanel(app, name) {
  const { state } = app;
  const panel = $('town-panel');
  const list = $('town-list');
  list.replaceChildren();
  $('click-panel').hidden = true;
  panel.hidden = false;
  $('town-title').textContent = name;
  const seq = (app.townSeq = (app.townSeq || 0) + 1);
  const shown = { town: name, indicators: [], charts: 0, chartsEmpty: 0, chartsFailed: 0, done: false };
  app.metrics.townPanel = shown;
  const jobs = [];
  for (const ind of state.indicators) {
    const row = lookupTown(townValues(ind), name);
    const { block, chart } = indicatorBlock(app, ind, row);
    list.append(block);
    const entry = { id: ind.id, value: row ? row.value : null, target: row ? row.target : null,
      status: row ? row.status : null, chart: false };
    shown.indicators.push(entry);
    if (!row || state.config.inline) { chart.replaceChildren(); continue; }
    jobs.push(getJSON(trajectoryUrl(state.config, ind.id, row.town), state.apiKey, null).then((traj) => {
      if (seq !== app.townSeq) return;
      const area = (traj.towns || [])[0];
      chart.replaceChildren();
      if (area && drawChart(app, chart, area, traj.target_year)) {
        shown.charts += 1;
        entry.chart = true;
      } else {
        chart.append(element('span', 'loading', app.t('noTrajectory')));
        shown.chartsEmpty += 1;
      }
    }).catch((error) => {
      if (seq !== app.townSeq) return;
      chart.replaceChildren();
      shown.chartsFailed += 1;
      console.warn('trajectory unavailable', ind.id, error.message);
    }));
  }
  await Promise.all(jobs);
  if (seq === app.townSeq) shown.done = true;
}

/** Close the town panel with its button. */
export function wireTownPanel(app) {
  $('town-close').addEventListener('click', () => { $('town-panel').hidden = true; app.metrics.townPanel = null; });
}
