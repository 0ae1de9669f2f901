/* The legend: the choropleth's met / not-met ramps with the value range, and a chip per visible layer. */
import { cssColor, RAMP, swatchColor, valueRange } from '#cim/colour.js';
import { ROLE, roleLayer } from '#cim/config.js';
import { $, element } from '#cim/dom.js';
import { formatValue } from '#cim/format.js';
import { allowed, available, currentIndicator } from '#cim/state.js';

/** Redraw the legend. */
export function renderLegend(app) {
  const { state } = app;
  const legend = $('legend');
  legend.replaceChildren();
  const ind = currentIndicator(state);
  const towns = roleLayer(state.config, ROLE.towns);
  const head = ind ? `${app.t('legendTitle')}: ${app.title(ind)}${ind.unit ? ' (' + ind.unit + ')' : ''}` : app.t('legendTitle');
  legend.appendChild(element('div', '', head));
  const range = valueRange(ind);
  for (const status of towns && state.visible[towns] && ind ? ['met', 'not_met'] : []) {
    const ramp = element('div', 'ramp');
    for (const c of RAMP[status]) {
      const span = element('span');
      span.style.background = cssColor(c);
      ramp.appendChild(span);
    }
    const ticks = element('div', 'ticks');
    ticks.append(element('span', '', formatValue(range[0])), element('span', '', app.t(status)),
      element('span', '', formatValue(range[1])));
    legend.append(ramp, ticks);
  }
  for (const spec of state.config.deck.layers) {
    const meta = state.layers[spec.id];
    if (!meta || spec.id === towns || !state.visible[spec.id] || !allowed(state, spec.id)) continue;
    if (!available(state, spec.id)) continue;
    const row = element('div', 'row');
    const chip = element('span', 'chip');
    chip.style.background = swatchColor(meta);
    row.append(chip, app.title(meta));
    legend.appendChild(row);
  }
}
