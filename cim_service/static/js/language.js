/* The Chinese / English switch: page texts, panels and labels in the chosen language. */
import { renderClickPanel, renderTooltip } from '#cim/click-panel.js';
import { $ } from '#cim/dom.js';
import { otherLanguage } from '#cim/i18n.js';
import { renderIndicators } from '#cim/indicator-panel.js';
import { renderLayerList } from '#cim/layer-panel.js';
import { renderTownPanel } from '#cim/town-panel.js';

/** Write every text of the page in the state's language and redraw. */
export function applyLanguage(app) {
  const { state, config } = app;
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  $('title').textContent = state.lang === 'zh' ? config.title_zh : config.title_en;
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = app.t(el.dataset.i18n); });
  document.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = app.t(el.dataset.i18nTitle); });
  $('search-input').placeholder = app.t('placeholder');
  $('search-go').textContent = app.t('search');
  $('api-key').placeholder = app.t('apiKey');
  $('lang').textContent = app.t('lang');
  renderLayerList(app);
  renderIndicators(app);
  renderTownPanel(app);
  renderClickPanel(app);
  renderTooltip(app);
  if (app.renderPanels) app.renderPanels();
  app.render();
}

/** Switch the language with the language button. */
export function wireLanguageSwitch(app) {
  $('lang').addEventListener('click', () => {
    app.state.lang = otherLanguage(app.state.lang);
    applyLanguage(app);
  });
}
