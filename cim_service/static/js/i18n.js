/* Interface strings (Chinese, English) and the localised titles of catalog objects. Pure: no DOM. */

export const STRINGS = {
  zh: {
    layers: '图层', indicators: '规划指标', search: '搜索', placeholder: '输入地址,如 莲花南路1500弄',
    wholeDistrict: '全区', target: '目标', value: '现状', gap: '缺口', town: '街镇', status: '达标',
    met: '达标', not_met: '未达标', unknown: '无数据', no_data: '无数据', noResult: '未找到匹配的地址', locked: '需授权',
    legendTitle: '街镇指标', tileError: '部分瓦片加载失败', apiKey: 'API 密钥', lang: 'EN',
    keyRejected: 'API 密钥无效',
    noIndicators: '暂无指标数据',
    opacity: '透明度', now: '现在', time: '时间', zoomIn: '放大', zoomOut: '缩小', north: '指北(点击复位)',
    view3d: '三维视图', play: '播放', kpis: '规划指标 · 目标对照',
    ofTownTarget: '占本街镇目标 %', targetLine: '目标线', onTrack: '按期可达', offTrack: '进度落后', trajectory: '历年走势',
    townPanel: '街镇指标', noTrajectory: '暂无历年数据', aggregates: '数量(按区域汇总)', zoomForPoints: '放大至 14 级查看点位',
  },
  en: {
    layers: 'Layers', indicators: 'Plan indicators', search: 'Search', placeholder: 'Address, e.g. 莲花南路1500弄',
    wholeDistrict: 'District', target: 'Target', value: 'Value', gap: 'Gap', town: 'Town', status: 'Status',
    met: 'met', not_met: 'not met', unknown: 'no data', no_data: 'no data', noResult: 'No matching address', locked: 'key needed',
    legendTitle: 'Town indicator', tileError: 'Some tiles failed to load', apiKey: 'API key', lang: '中文',
    keyRejected: 'API key rejected',
    noIndicators: 'No indicator data',
    opacity: 'Opacity', now: 'Now', time: 'Time', zoomIn: 'Zoom in', zoomOut: 'Zoom out', north: 'North (click to reset)',
    view3d: '3D view', play: 'Play', kpis: 'Plan indicators against targets',
    ofTownTarget: '% of the town\'s target', targetLine: 'target', onTrack: 'on track', offTrack: 'behind pace',
    trajectory: 'Trajectory', townPanel: 'Town indicators', noTrajectory: 'no yearly values yet', aggregates: 'Counts (aggregated)',
    zoomForPoints: 'zoom to 14 for points',
  },
};

/** Return the interface string `key` in `lang` (the key itself when it has none). */
export function translate(lang, key) {
  return (STRINGS[lang] || STRINGS.zh)[key] || key;
}

/** Return the language the switch turns to. */
export function otherLanguage(lang) {
  return lang === 'zh' ? 'en' : 'zh';
}

/** Return the title of a layer, field, indicator or group in `lang` ('' for none). */
export function localTitle(obj, lang) {
  if (!obj) return '';
  return (lang === 'zh' ? obj.title_zh || obj.name_zh : obj.title_en || obj.name_en) || '';
}

/** Return the title of a layer group (config.groups: group -> titles), falling back to the group's name. */
export function groupTitle(groups, group, lang) {
  return localTitle(groups && groups[group], lang) || group;
}

/** Return the text of an indicator or town row in `lang`: its Chinese text in Chinese, else the English one. */
export function localText(zh, en, lang) {
  return (lang !== 'en' && zh) || en || '';
}

/** English for the indicator catalog's units (Chinese measure words; a count needs none in English). */
export const UNITS_EN = { '个': '', '座': '', '台': '', '处': 'sites', '起': 'events', '个/平方公里': 'per km²',
  '平方公里': 'km²', '公里': 'km', '米': 'm' };

/** Return an indicator's unit in `lang` (the catalog's unit in Chinese; in English its translation if known). */
export function localUnit(unit, lang) {
  if (!unit) return '';
  return lang === 'en' && Object.prototype.hasOwnProperty.call(UNITS_EN, unit) ? UNITS_EN[unit] : unit;
}
