/* The layer panel: layers by group (titles from config.groups), each with a toggle and a menu (⋯) holding its
 * opacity slider, so the panel does not scroll with a slider per layer. */
import { swatchColor } from '#cim/colour.js';
import { $, element } from '#cim/dom.js';
import { groupTitle } from '#cim/i18n.js';
import { allowed, available } from '#cim/state.js';

/** Return the panel's layers by group, in the order of the deck spec from the top down. */
export function layerGroups(state) {
  const groups = {};
  for (const spec of [...state.config.deck.layers].reverse()) {
    if (!available(state, spec.id)) continue;
    const meta = state.layers[spec.id];
    if (!meta || (state.config.raster && spec.id === state.config.raster.id && !state.rasterUrl)) continue;
    (groups[meta.group] = groups[meta.group] || []).push(meta);
  }
  return groups;
}

/** Redraw the layer panel. */
export function renderLayerList(app) {
  const list = $('layer-list');
  list.replaceChildren();
  for (const [group, metas] of Object.entries(layerGroups(app.state))) {
    list.appendChild(element('div', 'group-title', groupTitle(app.state.config.groups, group, app.state.lang)));
    for (const meta of metas) list.appendChild(layerRow(app, meta));
  }
}

function layerRow(app, meta) {
  const { state } = app;
  const open = allowed(state, meta.id);
  const row = element('div', 'layer-row' + (open ? '' : ' locked'));
  row.dataset.layer = meta.id;
  const box = element('input');
  box.type = 'checkbox';
  box.id = `toggle-${meta.id}`;
  box.checked = state.visible[meta.id];
  box.disabled = !open;
  box.addEventListener('change', () => { state.visible[meta.id] = box.checked; app.render(); });
  const swatch = element('span', 'swatch');
  swatch.style.background = swatchColor(meta);
  const label = element('label', '', app.title(meta) + (open ? '' : ` (${app.t('locked')})`));
  label.htmlFor = box.id;
  const range = element('input');
  range.type = 'range';
  range.min = '0'; range.max = '1'; range.step = '0.05';
  range.value = String(state.opacity[meta.id]);
  range.id = `opacity-${meta.id}`;
  range.setAttribute('aria-label', 'opacity');
  range.addEventListener('input', () => { state.opacity[meta.id] = Number(range.value); app.render(); });
  const menuButton = element('button', 'layer-menu-button', '⋯');
  menuButton.type = 'button';
  menuButton.id = `menu-${meta.id}`;
  menuButton.setAttribute('aria-label', `${app.title(meta)}: ${app.t('opacity')}`);
  menuButton.setAttribute('aria-expanded', 'false');
  const menu = element('div', 'layer-menu');
  menu.hidden = true;
  menu.append(element('span', 'layer-menu-label', app.t('opacity')), range);
  menuButton.addEventListener('click', () => {
    menu.hidden = !menu.hidden;
    menuButton.setAttribute('aria-expanded', String(!menu.hidden));
  });
  row.append(box, swatch, label, menuButton, menu);
  return row;
}
