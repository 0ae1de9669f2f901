/* The town panel (a click on a town): every plan indicator of the town with its value, target, gap and its
 * trajectory mini chart (/indicators/{id}/trajectory?town=: the yearly values, the target line, on track or
 * not). What it shows is recorded in window.__cimMetrics.townPanel. */
import { chartGeometry } from '#cim/chart.js';
import { getJSON } from '#cim/data.js';
import { $, element } from '#cim/dom.js';
import { formatValue, statusKey } from '#cim/format.js';
import { localText } from '#cim/i18n.js';
import { lookupTown, townValues } from '#cim/indicators.js';

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** Return the URL of an indicator's trajectory for one town. */
export function trajectoryUrl(config, id, town) {
  return `${config.endpoints.trajectory.replace('{id}', encodeURIComponent(id))}?town=${encodeURIComponent(town)}`;
}

/** Return the SVG element of a trajectory chart (null without values). */
export function chartElement(app, area, targetYear) {
  const g = chartGeometry(area, targetYear);
  if (!g) return null;
  const root = svg('svg', { class: 'trajectory', width: g.width, height: g.height, viewBox: `0 0 ${g.width} ${g.height}` });
  for (const t of g.years) {
    const tick = svg('text', { x: t.x, y: g.height - 2, 'text-anchor': 'middle', class: 'tick' });
    tick.textContent = t.label;
    root.append(tick);
  }
  if (g.target) {
    root.append(svg('line', { x1: 4, x2: g.due, y1: g.target.y, y2: g.target.y, class: 'target-line' }));
    const label = svg('text', { x: g.due + 3, y: g.target.y + 4, class: 'target-label' });
    label.textContent = app.t('target');
    root.append(label);
  }
  root.append(svg('path', { d: g.path, class: 'values' }));
  for (const d of g.dots) root.append(svg('circle', { cx: d.x, cy: d.y, r: 2.5, class: 'dot' }));
  const last = g.dots[g.dots.length - 1];
  if (g.onTrack !== null) {
    const mark = svg('text', { x: last.x + 6, y: last.y - 4, class: g.onTrack ? 'on-track' : 'off-track' });
    mark.textContent = g.onTrack ? '✓' : '✗';
    root.append(mark);
  }
  root.dataset.onTrack = String(g.onTrack);
  return root;
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
      const el = area && chartElement(app, area, traj.target_year);
      chart.replaceChildren();
      if (el) {
        chart.append(el);
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
