/* Address search: typed text -> standard addresses (/map/search; in the export, the exported points) -> the
 * result list, a marker and a flight to the first result. */
import { getJSON, searchUrl } from '#cim/data.js';
import { $, element } from '#cim/dom.js';
import { pointCollection } from '#cim/geometry.js';
import { searchInline } from '#cim/inline.js';

/** Zoom of the view a search result flies to. */
export const RESULT_ZOOM = 16.5;

/** Return the search results of `q` ({label, longitude, latitude}, best first). */
export async function search(app, q) {
  const { config, apiKey } = app.state;
  if (config.inline) return searchInline(config.inline, q);
  const data = await getJSON(searchUrl(config, q), apiKey);
  return data.results || [];
}

/** Mark a result on the map and fly to it. */
export function goTo(app, result) {
  app.state.marker = pointCollection(result.longitude, result.latitude, { label: result.label });
  app.render();
  app.flyTo({ longitude: result.longitude, latitude: result.latitude, zoom: RESULT_ZOOM }, 1000);
}

function showResults(app, results) {
  const list = $('search-results');
  list.replaceChildren();
  if (!results.length) list.appendChild(element('li', '', app.t('noResult')));
  for (const r of results) {
    const li = element('li', '', r.label);
    li.addEventListener('click', () => { goTo(app, r); list.hidden = true; });
    list.appendChild(li);
  }
  list.hidden = false;
}

/** Search on submit of the search form and go to the first result. */
export function wireSearch(app) {
  $('search').addEventListener('submit', async (event) => {
    event.preventDefault();
    const q = $('search-input').value.trim();
    if (!q) return;
    try {
      const results = await search(app, q);
      showResults(app, results);
      if (results.length) goTo(app, results[0]);
    } catch (error) {
      console.warn('search failed', error.message);
      showResults(app, []);
    }
  });
}
