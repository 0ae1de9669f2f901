/* Selecting a town (a click on it on the map): the town is highlighted, the map flies to it, its panel opens. */
import { selectTown } from '#cim/indicator-panel.js';
import { lookupTown, townValues } from '#cim/indicators.js';
import { currentIndicator } from '#cim/state.js';
import { openTownPanel } from '#cim/town-panel.js';

/** Select the town of the boundary named `name` (matched to the indicator's town rows) and open its panel. */
export function openTown(app, name) {
  const row = lookupTown(townValues(currentIndicator(app.state)), name);
  selectTown(app, row ? row.town : name);
  return openTownPanel(app, name);
}
