/* The legend: the choropleth's classes broken at the indicator's target (reds short of it, greens at or beyond
 * it, each with the range of values it stands for), and a chip per visible layer. What it shows is recorded in
 * window.__cimMetrics.legend. */
import { cssColor, legendClasses, rampGradient, swatchColor } from '#cim/colour.js';
import { ROLE, roleLayer } from '#cim/config.js';
import { $, element } from '#cim/dom.js';
import { formatValue } from '#cim/format.js';
import { localUnit } from '#cim/i18n.js';
import { townScale } from '#cim/layers.js';
import { allowed, available, currentIndicator } from '#cim/state.js';

function choropleth(app, ind) {
  const scale = townScale(app.state, ind);
  const classes = legendClasses(scale);
  const box = element('div', 'choropleth');
  const bar = element('div', 'ramp');
  for (const c of classes) {
    const span = element('span', `side-${c.side}`);
    span.style.background = cssColor(c.colour);
    span.title = `${app.t(c.side)} ${formatValue(c.range[0])} – ${formatValue(c.range[1])}`;
    bar.appendChild(span);
  }
  const unit = scale.relative ? app.t('ofTownTarget') : localUnit(ind.unit, app.state.lang);
  const ticks = element('div', 'ticks');
  const end = (v, sign) => (v === scale.target ? `${sign}${formatValue(v)}` : formatValue(v)); // a side no town is on
  const [lo, hi] = scale.lower ? ['>', '≤'] : ['<', '≥'];
  ticks.append(element('span', '', end(scale.worst, lo)),
    element('span', 'break', `${app.t('target')} ${formatValue(scale.target)}`),
    element('span', '', end(scale.best, hi)));
  const sides = element('div', 'sides');
  sides.append(element('span', 'status-not_met', `◀ ${app.t('not_met')}`), element('span', 'status-met', `${app.t('met')} ▶`));
  box.append(bar, ticks, sides);
  if (unit) box.append(element('div', 'unit', unit));
  app.metrics.legend = {
    indicator: ind.id, target: scale.target, relative: scale.relative, worst: scale.worst, best: scale.best,
    classes: classes.map((c) => ({ side: c.side, colour: c.colour, range: c.range })),
  };
  return box;
}

/** Redraw the legend. */
export function renderLegend(app) {
  const { state } = app;
  const legend = $('legend');
  legend.replaceChildren();
  const ind = currentIndicator(state);
  const towns = roleLayer(state.config, ROLE.towns);
  const head = ind ? `${app.t('legendTitle')}: ${app.title(ind)}` : app.t('legendTitle');
  legend.appendChild(element('div', 'legend-title', head));
  if (towns && state.visible[towns] && ind) legend.appendChild(choropleth(app, ind));
  else app.metrics.legend = null;
  for (const spec of state.config.deck.layers) {
    const meta = state.layers[spec.id];
    if (!meta || spec.id === towns || !state.visible[spec.id] || !allowed(state, spec.id)) continue;
    if (!available(state, spec.id)) continue;
    const row = element('div', 'row');
    const chip = element('span', 'chip');
    chip.style.background = swatchColor(meta);
    row.append(chip, app.title(meta));
    legend.appendChild(row);
    const raster = state.config.raster && spec.id === state.config.raster.id ? state.rasterLegend : null;
    const gradient = rampGradient(raster);
    if (gradient) { // what the raster's colours stand for: its ramp from the lowest to the highest value
      chip.style.background = gradient;
      const ramp = element('div', 'raster-ramp');
      ramp.style.background = gradient;
      const ticks = element('div', 'ticks');
      ticks.append(element('span', '', formatValue(raster.min)), element('span', '', formatValue(raster.max)));
      legend.append(ramp, ticks);
    }
  }
}
