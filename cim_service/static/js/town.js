/* Selecting a town (a click on it on the map): its panel opens, the town is highlighted and the map flies to it,
 * into the part of the map the panel leaves free. */
import { selectTown } from '#cim/indicator-panel.js';
import { lookupTown, townValues } from '#cim/indicators.js';
import { currentIndicator } from '#cim/state.js';
import { openTownPanel } from '#cim/town-panel.js';

/** Select the town of the boundary named `name` (matched to the indicator's town rows) and open its panel. */
export function openTown(app, name) {
  const row = lookupTown(townValues(currentIndicator(app.state)), name);
  const opened = openTownPanel(app, name); // the panel is shown (at its size) before the flight is planned
  selectTown(app, row ? row.town : name);
  return opened;
}
