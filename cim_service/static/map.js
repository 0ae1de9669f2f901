/* CIM一张图 web map: renders the pydeck spec in window.CIM_CONFIG with the bundled deck.gl (createDeck /
 * updateDeck) and drives the panels. Every request goes to the serving origin; the static export passes
 * its data inline (CIM_CONFIG.inline) and makes no request at all. */
(function () {
  'use strict';
  const C = window.CIM_CONFIG;
  const INLINE = C.inline || null;
  const METRICS = (window.__cimMetrics = {
    firstRenderMs: null, firstMeaningfulPaintMs: null, fmpFrameCommittedMs: null, tileRequests: 0, tileErrors: 0, tilesLoaded: {}, frames: [], renders: 0,
  });
  const T = {
    zh: {
      layers: '图层', indicators: '规划指标', search: '搜索', placeholder: '输入地址,如 莲花南路1500弄',
      district: '全区', target: '目标', value: '现状', gap: '缺口', town: '街镇', status: '达标',
      met: '达标', not_met: '未达标', unknown: '无数据', no_data: '无数据', noResult: '未找到匹配的地址', locked: '需授权',
      legendTitle: '街镇指标', tileError: '部分瓦片加载失败', apiKey: 'API 密钥', lang: 'EN',
      keyRejected: 'API 密钥无效',
      noIndicators: '暂无指标数据',
    },
    en: {
      layers: 'Layers', indicators: 'Plan indicators', search: 'Search', placeholder: 'Address, e.g. 莲花南路1500弄',
      district: 'District', target: 'Target', value: 'Value', gap: 'Gap', town: 'Town', status: 'Status',
      met: 'met', not_met: 'not met', unknown: 'no data', no_data: 'no data', noResult: 'No matching address', locked: 'key needed',
      legendTitle: 'Town indicator', tileError: 'Some tiles failed to load', apiKey: 'API key', lang: '中文',
      keyRejected: 'API key rejected',
      noIndicators: 'No indicator data',
    },
  };
  const RAMP = {
    met: [[199, 233, 192], [116, 196, 118], [35, 139, 69]],
    not_met: [[254, 224, 210], [252, 146, 114], [203, 24, 29]],
  };
  const NODATA = [200, 200, 200, 90];
  const GROUPS_EN = {
    基础: 'Base', 指标缺口: 'Plan gaps', 交通: 'Transport', 生活: 'Daily life', 感知设施: 'Sensing',
    一标多实: 'Addresses & residents', 通信: 'Telecom', 规划: 'Planning',
  };
  const layerMeta = Object.fromEntries(C.layers.map((l) => [l.id, l]));
  layerMeta[C.raster.id] = Object.assign({ access: 'public', style: { fill: [250, 160, 40, 200] } }, C.raster);
  const state = {
    lang: 'zh', apiKey: '', visible: {}, opacity: {}, indicators: [], indicatorId: null,
    towns: null, district: null, selectedTown: null, rasterUrl: null,
  };
  const $ = (id) => document.getElementById(id);
  const t = (key) => T[state.lang][key] || key;
  const title = (obj) => (obj ? (state.lang === 'zh' ? obj.title_zh || obj.name_zh : obj.title_en || obj.name_en) : '');

  for (const spec of C.deck.layers) {
    state.visible[spec.id] = spec.visible !== false;
    state.opacity[spec.id] = typeof spec.opacity === 'number' ? spec.opacity : 1;
  }

  // ---- data access -----------------------------------------------------------------------------
  function headers() {
    return state.apiKey ? { 'X-API-Key': state.apiKey } : {};
  }
  async function getJSON(url) {
    const early = window.__cimPrefetch && window.__cimPrefetch[url];
    if (early && !state.apiKey) { // requested by the page before the bundle loaded, without a key: use once
      delete window.__cimPrefetch[url];
      return early;
    }
    const response = await fetch(url, { headers: headers() });
    if (!response.ok) throw new Error(`${response.status} ${url}`);
    return response.json();
  }
  function allowed(id) {
    const meta = layerMeta[id];
    return !meta || meta.access === 'public' || Boolean(state.apiKey);
  }

  // ---- colours ---------------------------------------------------------------------------------
  function indicator() {
    return state.indicators.find((i) => i.id === state.indicatorId) || null;
  }
  function townValues(ind) {
    const out = {};
    for (const row of (ind && ind.towns) || []) out[row.town] = row;
    return out;
  }
  function lookupTown(rows, name) {
    if (!name) return null;
    if (rows[name]) return rows[name];
    // official vs. colloquial names (古美街道 / 古美路街道): match on the stem without the level word
    const stemOf = (n) => n.replace(/(街道|镇|工业区)$/, '');
    const stem = stemOf(name);
    if (stem.length < 2) return null;
    const key = Object.keys(rows).find((k) => stemOf(k).length >= 2 && (k.startsWith(stem) || stem.startsWith(stemOf(k))));
    return key ? rows[key] : null;
  }
  function valueRange(ind) {
    const values = ((ind && ind.towns) || []).map((r) => r.value).filter((v) => typeof v === 'number');
    if (!values.length) return [0, 1];
    return [Math.min(...values), Math.max(...values)];
  }
  function rampColor(status, value, range) {
    const ramp = RAMP[status === 'met' ? 'met' : 'not_met'];
    const span = range[1] - range[0];
    const f = span > 0 ? (value - range[0]) / span : 0.5;
    const idx = Math.max(0, Math.min(ramp.length - 1, Math.round(f * (ramp.length - 1))));
    return [...ramp[idx], 190];
  }
  function choroplethAccessor() {
    const ind = indicator();
    const rows = townValues(ind);
    const range = valueRange(ind);
    return (feature) => {
      const row = lookupTown(rows, feature.properties && feature.properties.name);
      if (!row || typeof row.value !== 'number') return NODATA;
      const color = rampColor(row.status, row.value, range);
      if (state.selectedTown && row.town === state.selectedTown) color[3] = 240;
      return color;
    };
  }

  // ---- layers ----------------------------------------------------------------------------------
  function tileHooks(id) {
    return {
      onViewportLoad: () => {
        METRICS.tilesLoaded[id] = performance.now();
      },
      onTileError: (error) => {
        METRICS.tileErrors += 1;
        showStatus(t('tileError'));
        console.warn('tile error', id, error && error.message);
      },
    };
  }
  function rasterLayer(spec) {
    return Object.assign({}, spec, tileHooks(spec.id), {
      data: state.rasterUrl,
      getTileData: async ({ url, signal }) => {
        const response = await fetch(url, { headers: headers(), signal });
        if (response.status === 204) return null;
        if (!response.ok) throw new Error(`${response.status} ${url}`);
        return createImageBitmap(await response.blob());
      },
      renderSubLayers: (props) => {
        if (!props.data) return null;
        const { west, south, east, north } = props.tile.bbox;
        return new CLS.BitmapLayer(props, { data: null, image: props.data, bounds: [west, south, east, north] });
      },
    });
  }
  function mvtLayer(spec) {
    return Object.assign({}, spec, tileHooks(spec.id), {
      loaders: MVT_LOADERS,
      loadOptions: { core: { worker: false, fetch: { headers: headers() } } },
      updateTriggers: { getTileData: state.apiKey },
    });
  }
  function inlineLayer(spec) {
    const drop = ['minZoom', 'maxZoom', 'uniqueIdProperty', 'loadOptions', 'tileSize', 'data'];
    const out = { '@@type': 'GeoJsonLayer', pointType: 'circle', data: INLINE.layers[spec.id] };
    for (const [k, v] of Object.entries(spec)) if (!drop.includes(k) && k !== '@@type') out[k] = v;
    return out;
  }
  // Boundaries are drawn as LineLayer segments, not as the GeoJsonLayer's PathLayer stroke: in software
  // WebGL (SwiftShader) the first PathLayer frame of the district and town outlines blocked the page for
  // ~0.7 s and every later frame cost ~50 ms more; 1-2 px segments look the same.
  const segmentCache = new WeakMap();
  function ringSegments(collection) {
    if (!collection || !collection.features) return [];
    if (!segmentCache.has(collection)) {
      const out = [];
      for (const feature of collection.features) {
        const g = feature.geometry;
        const polygons = !g ? [] : g.type === 'Polygon' ? [g.coordinates] : g.type === 'MultiPolygon' ? g.coordinates : [];
        for (const ring of polygons.flat()) for (let i = 1; i < ring.length; i++) out.push([ring[i - 1], ring[i]]);
      }
      segmentCache.set(collection, out);
    }
    return segmentCache.get(collection);
  }
  function outlineLayer(spec, id, common, collection) {
    return Object.assign({
      '@@type': 'LineLayer', id, data: ringSegments(collection), pickable: false,
      getSourcePosition: (s) => s[0], getTargetPosition: (s) => s[1], getColor: spec.getLineColor,
      getWidth: Math.max(spec.getLineWidth || 1, spec.lineWidthMinPixels || 0), widthUnits: 'pixels',
    }, common);
  }
  function layerProps(spec) {
    const id = spec.id;
    const common = { visible: state.visible[id] && allowed(id), opacity: state.opacity[id] };
    if (id === 'towns') {
      const fill = Object.assign({}, spec, common, {
        data: state.towns || [], stroked: false, getFillColor: choroplethAccessor(),
        updateTriggers: { getFillColor: [state.indicatorId, state.selectedTown] },
      });
      return [fill, outlineLayer(spec, 'towns__outline', common, state.towns)];
    }
    if (id === 'district') return outlineLayer(spec, 'district', common, state.district);
    if (INLINE) return INLINE.layers && INLINE.layers[id] ? Object.assign(inlineLayer(spec), common) : null;
    if (!common.visible) return null; // hidden tile layers would still fetch tiles: leave them out
    if (spec['@@type'] === 'TileLayer') return state.rasterUrl ? Object.assign(rasterLayer(spec), common) : null;
    return Object.assign(mvtLayer(spec), common);
  }
  function makeLayer(props) {
    const { '@@type': type, ...rest } = props;
    return new CLS[type](rest);
  }
  function searchMarker() {
    if (!state.marker) return null;
    return {
      '@@type': 'GeoJsonLayer', id: '__search_marker', data: state.marker, pointType: 'circle',
      getFillColor: [255, 193, 7, 230], getLineColor: [13, 43, 78, 255], getPointRadius: 9,
      pointRadiusUnits: 'pixels', lineWidthUnits: 'pixels', getLineWidth: 3, stroked: true,
    };
  }
  function render() {
    const layers = C.deck.layers.flatMap(layerProps);
    layers.push(searchMarker());
    deck.setProps({ layers: layers.filter(Boolean).map(makeLayer) });
    renderLegend();
  }

  // ---- deck --------------------------------------------------------------------------------------
  function fitView() {
    const el = $('deck-container');
    const [w, s, e, n] = C.district_bbox;
    const merc = (lat) => Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360));
    const zx = Math.log2((0.92 * el.clientWidth * 360) / ((e - w) * 512));
    const zy = Math.log2((0.92 * el.clientHeight * 2 * Math.PI) / ((merc(n) - merc(s)) * 512));
    return { longitude: (w + e) / 2, latitude: (s + n) / 2, zoom: Math.min(zx, zy), pitch: 0, bearing: 0 };
  }
  // the bundle exports createDeck/updateDeck only: take the layer classes from converted probe layers
  const PROBES = ['GeoJsonLayer', 'MVTLayer', 'TileLayer', 'BitmapLayer', 'LineLayer']
    .map((type) => ({ '@@type': type, id: `__probe_${type}`, visible: false }));
  const deck = window.createDeck({
    container: $('deck-container'),
    jsonInput: { initialViewState: fitView(), views: C.deck.views, layers: PROBES },
    tooltip: false,
  });
  const CLS = {};
  for (const layer of deck.props.layers || []) if (layer) CLS[layer.id.replace('__probe_', '')] = layer.constructor;
  deck.setProps({ layers: [] });
  const MVT_LOADERS = window.loaders && window.loaders.MVTLoader ? [window.loaders.MVTLoader] : undefined;
  window.__cimMap = {
    deck, state, classes: CLS,
    viewState: () => {
      const vp = deck.getViewports()[0];
      return vp ? { longitude: vp.longitude, latitude: vp.latitude, zoom: vp.zoom } : null;
    },
    render,
  };
  deck.setProps({
    pickingRadius: 5,
    getTooltip: tooltip,
    onClick: onClick,
    onAfterRender: afterRender,
    onError: (error) => console.error('deck.gl', error),
  });

  function pendingTiles() {
    return C.deck.layers.filter((s) => (s['@@type'] === 'MVTLayer' || s['@@type'] === 'TileLayer')
      && !INLINE && state.visible[s.id] && allowed(s.id) && !METRICS.tilesLoaded[s.id]
      && (s['@@type'] !== 'TileLayer' || state.rasterUrl));
  }
  let firstFrameDrawn;
  const tileRequestsSent = new Promise((resolve) => { firstFrameDrawn = resolve; })
    .then(() => new Promise((resolve) => setTimeout(resolve, 0))); // deck.gl issues tile requests in a task
  function afterRender() {
    const now = performance.now();
    firstFrameDrawn();
    METRICS.renders += 1;
    if (METRICS.frames.length < 200) METRICS.frames.push(Math.round(now));
    if (METRICS.firstRenderMs === null) METRICS.firstRenderMs = now;
    if (METRICS.firstMeaningfulPaintMs === null && state.district && state.towns && state.indicatorsLoaded
        && pendingTiles().length === 0) {
      METRICS.firstMeaningfulPaintMs = now;
      // the next frame begins once this one is committed (in software WebGL: after its GPU work)
      requestAnimationFrame(() => { METRICS.fmpFrameCommittedMs = performance.now(); });
    }
  }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (entry.name.includes('/tiles/')) METRICS.tileRequests += 1;
  }).observe({ type: 'resource', buffered: true });

  function flyTo(view, duration) {
    const target = Object.assign({}, view, {
      pitch: 0, bearing: 0, transitionDuration: duration === undefined ? 1200 : duration,
      transitionInterpolator: { '@@type': 'FlyToInterpolator' },
    });
    window.updateDeck({ initialViewState: target }, deck);
  }

  // ---- tooltip and click panel -------------------------------------------------------------------
  function featureTitle(layerId, props) {
    const meta = layerMeta[layerId];
    const label = meta && meta.label_field && props ? props[meta.label_field] : null;
    return `${title(meta)}${label ? ' · ' + label : ''}`;
  }
  function tooltip(info) {
    if (!info || !info.object || !info.layer) return null;
    const layerId = rootId(info);
    const props = info.object.properties || {};
    let text = featureTitle(layerId, props);
    if (layerId === 'towns') {
      const row = lookupTown(townValues(indicator()), props.name);
      if (row) text += `\n${title(indicator())}: ${fmt(row.value)} (${t(row.status || 'unknown')})`;
    }
    return { text, style: { fontSize: '12px' } };
  }
  function rootId(info) {
    let layer = info.layer;
    while (layer && layer.parent) layer = layer.parent;
    return layer ? layer.id : null;
  }
  function fieldRows(layerId, props) {
    const meta = layerMeta[layerId];
    const named = meta && meta.fields ? meta.fields : [];
    const rows = [];
    for (const field of named) if (field.name in props) rows.push([title(field), props[field.name]]);
    const internal = ['layerName', 'count', 'id'];
    for (const [k, v] of Object.entries(props)) {
      if (!named.some((f) => f.name === k) && !internal.includes(k)) rows.push([k, v]);
    }
    return rows;
  }
  function showClickPanel(layerId, props) {
    $('click-title').textContent = featureTitle(layerId, props);
    const table = $('click-table');
    table.replaceChildren();
    for (const [k, v] of fieldRows(layerId, props)) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    }
    $('click-panel').hidden = false;
  }
  async function onClick(info) {
    if (!info || !info.object) return;
    const layerId = rootId(info);
    const props = Object.assign({}, info.object.properties || {});
    showClickPanel(layerId, props);
    const fid = info.object.id !== undefined ? info.object.id : props.id;
    if (INLINE || fid === undefined || fid === null || !layerMeta[layerId]) return;
    try {
      const url = C.endpoints.item.replace('{id}', layerId).replace('{fid}', encodeURIComponent(fid));
      const full = await getJSON(url);
      showClickPanel(layerId, Object.assign(props, full.properties || {}));
    } catch (error) {
      console.warn('feature details unavailable', error.message);
    }
  }
  $('click-close').addEventListener('click', () => { $('click-panel').hidden = true; });

  // ---- panels ------------------------------------------------------------------------------------
  function swatchColor(meta) {
    const style = meta && meta.style;
    if (!style) return 'rgb(128,128,128)';
    const lines = (meta.geometry || '').includes('LineString');
    const c = lines || (!meta.is_point && !style.fill[3]) ? style.line : style.fill;
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function renderLayerList() {
    const list = $('layer-list');
    list.replaceChildren();
    const groups = {};
    for (const spec of [...C.deck.layers].reverse()) {
      if (INLINE && !['towns', 'district'].includes(spec.id) && !(INLINE.layers && INLINE.layers[spec.id])) continue;
      const meta = layerMeta[spec.id];
      if (!meta || (spec.id === C.raster.id && !state.rasterUrl)) continue;
      (groups[meta.group] = groups[meta.group] || []).push(meta);
    }
    for (const [group, metas] of Object.entries(groups)) {
      const head = document.createElement('div');
      head.className = 'group-title';
      head.textContent = state.lang === 'en' ? GROUPS_EN[group] || group : group;
      list.appendChild(head);
      for (const meta of metas) list.appendChild(layerRow(meta));
    }
  }
  function layerRow(meta) {
    const row = document.createElement('div');
    row.className = 'layer-row' + (allowed(meta.id) ? '' : ' locked');
    row.dataset.layer = meta.id;
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.id = `toggle-${meta.id}`;
    box.checked = state.visible[meta.id];
    box.disabled = !allowed(meta.id);
    box.addEventListener('change', () => { state.visible[meta.id] = box.checked; render(); });
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = swatchColor(meta);
    const label = document.createElement('label');
    label.htmlFor = box.id;
    label.textContent = title(meta) + (allowed(meta.id) ? '' : ` (${t('locked')})`);
    const range = document.createElement('input');
    range.type = 'range';
    range.min = '0'; range.max = '1'; range.step = '0.05';
    range.value = String(state.opacity[meta.id]);
    range.id = `opacity-${meta.id}`;
    range.setAttribute('aria-label', 'opacity');
    range.addEventListener('input', () => { state.opacity[meta.id] = Number(range.value); render(); });
    row.append(box, swatch, label, range);
    return row;
  }
  function fmt(v) {
    if (typeof v !== 'number') return v === null || v === undefined ? '—' : String(v);
    return Math.abs(v) >= 100 ? v.toLocaleString('zh-CN', { maximumFractionDigits: 0 }) : String(Math.round(v * 100) / 100);
  }
  function statusCell(cell, status) {
    cell.textContent = t(status || 'unknown');
    cell.className = `status-${status === 'met' || status === 'not_met' ? status : 'unknown'}`;
  }
  function renderIndicators() {
    const select = $('indicator-select');
    select.replaceChildren();
    for (const ind of state.indicators) select.add(new Option(title(ind), ind.id, false, ind.id === state.indicatorId));
    const ind = indicator();
    const summary = $('indicator-summary');
    summary.replaceChildren();
    const table = $('indicator-towns');
    table.replaceChildren();
    if (!ind) { summary.textContent = t('noIndicators'); return; }
    const big = document.createElement('div');
    big.className = 'big';
    big.textContent = `${fmt(ind.value)} ${ind.unit || ''}`;
    const line = document.createElement('div');
    line.innerHTML = '';
    line.append(`${t('district')} · ${t('target')} ${fmt(ind.target)} · `);
    const st = document.createElement('span');
    statusCell(st, ind.status);
    line.append(st);
    summary.append(big, line);
    if (ind.gap) {
      const gap = document.createElement('div');
      gap.className = 'gap';
      gap.textContent = (state.lang !== 'en' && ind.gap_zh) || ind.gap;
      summary.append(gap);
    }
    const head = table.createTHead().insertRow();
    for (const key of ['town', 'value', 'target', 'status']) {
      const th = document.createElement('th');
      th.textContent = t(key);
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const row of ind.towns || []) {
      const tr = body.insertRow();
      tr.dataset.town = row.town;
      if (row.town === state.selectedTown) tr.className = 'sel';
      tr.title = (state.lang !== 'en' && row.gap_zh) || row.gap || '';
      tr.insertCell().textContent = state.lang === 'en' && row.name_en ? row.name_en : row.town;
      tr.insertCell().textContent = fmt(row.value);
      tr.insertCell().textContent = fmt(row.target);
      statusCell(tr.insertCell(), row.status);
      tr.addEventListener('click', () => selectTown(row.town));
    }
  }
  function selectTown(name) {
    state.selectedTown = name;
    renderIndicators();
    render();
    const feature = state.towns && state.towns.features.find((f) => lookupTown({ [name]: 1 }, f.properties.name));
    if (feature) flyTo(boundsView(feature.geometry), 800);
  }
  function boundsView(geometry) {
    let w = 180, s = 90, e = -180, n = -90;
    const walk = (c) => {
      if (typeof c[0] === 'number') { w = Math.min(w, c[0]); e = Math.max(e, c[0]); s = Math.min(s, c[1]); n = Math.max(n, c[1]); } else c.forEach(walk);
    };
    walk(geometry.coordinates);
    const el = $('deck-container');
    const zoom = Math.min(16, Math.log2((0.8 * el.clientWidth * 360) / (Math.max(e - w, 1e-4) * 512)));
    return { longitude: (w + e) / 2, latitude: (s + n) / 2, zoom };
  }
  function renderLegend() {
    const legend = $('legend');
    legend.replaceChildren();
    const ind = indicator();
    const head = document.createElement('div');
    head.textContent = ind ? `${t('legendTitle')}: ${title(ind)}${ind.unit ? ' (' + ind.unit + ')' : ''}` : t('legendTitle');
    legend.appendChild(head);
    const range = valueRange(ind);
    for (const status of state.visible.towns && ind ? ['met', 'not_met'] : []) {
      const ramp = document.createElement('div');
      ramp.className = 'ramp';
      for (const c of RAMP[status]) {
        const span = document.createElement('span');
        span.style.background = `rgb(${c.join(',')})`;
        ramp.appendChild(span);
      }
      const label = document.createElement('div');
      label.className = 'ticks';
      label.innerHTML = '';
      const lo = document.createElement('span'); lo.textContent = fmt(range[0]);
      const mid = document.createElement('span'); mid.textContent = t(status);
      const hi = document.createElement('span'); hi.textContent = fmt(range[1]);
      label.append(lo, mid, hi);
      legend.append(ramp, label);
    }
    for (const spec of C.deck.layers) {
      const meta = layerMeta[spec.id];
      if (!meta || spec.id === 'towns' || !state.visible[spec.id] || !allowed(spec.id)) continue;
      if (INLINE && spec.id !== 'district' && !(INLINE.layers && INLINE.layers[spec.id])) continue;
      const row = document.createElement('div');
      row.className = 'row';
      const chip = document.createElement('span');
      chip.className = 'chip';
      chip.style.background = swatchColor(meta);
      row.append(chip, title(meta));
      legend.appendChild(row);
    }
  }
  function applyLanguage() {
    document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
    $('title').textContent = state.lang === 'zh' ? C.title_zh : C.title_en;
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    $('search-input').placeholder = t('placeholder');
    $('search-go').textContent = t('search');
    $('api-key').placeholder = t('apiKey');
    $('lang').textContent = t('lang');
    renderLayerList();
    renderIndicators();
    render();
  }
  function showStatus(text) {
    const el = $('status');
    el.textContent = text;
    el.hidden = false;
    clearTimeout(showStatus.timer);
    showStatus.timer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  // ---- search ------------------------------------------------------------------------------------
  async function search(q) {
    if (INLINE) {
      const hits = [];
      for (const fc of Object.values(INLINE.layers || {})) {
        for (const f of fc.features) {
          const text = Object.values(f.properties || {}).join(' ');
          if (text.includes(q) && f.geometry && f.geometry.type === 'Point') {
            hits.push({ label: f.properties.full_address || text, longitude: f.geometry.coordinates[0], latitude: f.geometry.coordinates[1] });
          }
        }
      }
      return hits.slice(0, 10);
    }
    const data = await getJSON(`${C.endpoints.search}?q=${encodeURIComponent(q)}`);
    return data.results || [];
  }
  function showResults(results) {
    const list = $('search-results');
    list.replaceChildren();
    if (!results.length) {
      const li = document.createElement('li');
      li.textContent = t('noResult');
      list.appendChild(li);
    }
    for (const r of results) {
      const li = document.createElement('li');
      li.textContent = r.label;
      li.addEventListener('click', () => { goTo(r); list.hidden = true; });
      list.appendChild(li);
    }
    list.hidden = false;
  }
  function goTo(result) {
    state.marker = {
      type: 'FeatureCollection',
      features: [{ type: 'Feature', properties: { label: result.label },
        geometry: { type: 'Point', coordinates: [result.longitude, result.latitude] } }],
    };
    render();
    flyTo({ longitude: result.longitude, latitude: result.latitude, zoom: 16.5 }, 1000);
  }
  $('search').addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = $('search-input').value.trim();
    if (!q) return;
    try {
      const results = await search(q);
      showResults(results);
      if (results.length) goTo(results[0]);
    } catch (error) {
      console.warn('search failed', error.message);
      showResults([]);
    }
  });

  // ---- controls and start-up ----------------------------------------------------------------------
  $('lang').addEventListener('click', () => { state.lang = state.lang === 'zh' ? 'en' : 'zh'; applyLanguage(); });
  // the page describes the public layers only; a key's own layers and fields come from /map/config
  async function loadConfig() {
    const response = await fetch(C.endpoints.config, { headers: headers() });
    if (!response.ok) throw new Error(`${response.status} ${C.endpoints.config}`);
    const config = await response.json();
    C.layers = config.layers;
    C.deck = config.deck;
    C.public_layers = config.public_layers;
    for (const id of Object.keys(layerMeta)) if (id !== C.raster.id) delete layerMeta[id];
    for (const meta of C.layers) layerMeta[meta.id] = meta;
    for (const spec of C.deck.layers) {
      if (!(spec.id in state.visible)) {
        state.visible[spec.id] = spec.visible !== false;
        state.opacity[spec.id] = typeof spec.opacity === 'number' ? spec.opacity : 1;
      }
    }
  }
  $('api-key').addEventListener('change', async () => {
    state.apiKey = $('api-key').value.trim();
    if (!INLINE) {
      try {
        await loadConfig();
      } catch (error) {
        console.warn('map configuration unavailable', error.message);
        showStatus(t('keyRejected'));
        state.apiKey = '';
        await loadConfig().catch(() => {});
      }
    }
    renderLayerList();
    render();
    loadIndicators();
  });
  $('indicator-select').addEventListener('change', (event) => {
    state.indicatorId = event.target.value;
    renderIndicators();
    render();
  });
  async function loadIndicators() {
    try {
      const data = INLINE ? INLINE.indicators : await getJSON(C.endpoints.indicators);
      state.indicators = Array.isArray(data) ? data : data.indicators || [];
      const withTowns = state.indicators.find((i) => (i.towns || []).length);
      if (!state.indicators.some((i) => i.id === state.indicatorId)) {
        state.indicatorId = (withTowns || state.indicators[0] || {}).id || null;
      }
    } catch (error) {
      console.warn('indicators unavailable', error.message);
      state.indicators = [];
    }
    state.indicatorsLoaded = true;
    renderIndicators();
    render();
  }
  async function loadRasters() {
    if (INLINE) return;
    try {
      const data = await getJSON(C.endpoints.rasters);
      const wanted = C.raster.id.replace(/_raster$/, '');
      const entry = (data.rasters || []).find((r) => r.id === wanted);
      const link = entry && (entry.links || []).find((l) => l.type === 'image/png');
      state.rasterUrl = link ? link.href.replace(/^https?:\/\/[^/]+/, '') : null;
    } catch (error) {
      console.warn('rasters unavailable', error.message);
    }
    renderLayerList();
    render();
  }
  async function loadBase() {
    const items = (id) => `${C.endpoints.items.replace('{id}', id)}?limit=1000`;
    const [district, towns] = INLINE
      ? [INLINE.district, INLINE.towns]
      : await Promise.all([getJSON(items('district')), getJSON(items('towns'))]);
    // draw the boundaries only once the tile layers have sent their requests: the first draw of the
    // polygon and path layers blocks the main thread while software WebGL compiles their pipelines, and
    // the tiles should be on their way meanwhile, not wait behind it
    if (!INLINE) await tileRequestsSent;
    state.district = district;
    state.towns = towns;
    render();
  }
  renderLayerList();
  applyLanguage();
  loadBase().catch((error) => console.error('base layers failed', error.message));
  loadIndicators();
  loadRasters();
})();
