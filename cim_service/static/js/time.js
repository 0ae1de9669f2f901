/* The time slider: years of the plan (config.time_years) and "now"; play steps through them. A day sets `at=`
 * on the tile URLs of the layers that keep history and loads the indicator as of it (/indicators/{id}?at=). */
import { timeDays } from '#cim/config.js';
import { $ } from '#cim/dom.js';
import { loadIndicatorAt } from '#cim/load.js';
import { setAt } from '#cim/state.js';

/** Milliseconds each year stays on screen while playing. */
export const PLAY_STEP_MS = 1600;

/** Wire the slider and the play button. */
export function wireTime(app) {
  if (app.config.inline) { $('time-bar').hidden = true; return; } // the export holds the present only
  const days = timeDays(app.config);
  const slider = $('time-slider');
  slider.min = '0';
  slider.max = String(days.length); // the last position is now
  slider.value = slider.max;
  slider.addEventListener('input', () => setDay(app, days[Number(slider.value)] || null));
  let timer = null;
  const stop = () => { clearInterval(timer); timer = null; $('time-play').textContent = '▶'; };
  $('time-play').addEventListener('click', () => {
    if (timer) { stop(); return; }
    let i = 0;
    const step = () => {
      if (i >= days.length) { stop(); return; }
      slider.value = String(i);
      setDay(app, days[i]);
      i += 1;
    };
    $('time-play').textContent = '⏸';
    step();
    timer = setInterval(step, PLAY_STEP_MS);
  });
  renderTimeLabel(app);
}

/** Show the map as of `day` (null: now). */
export function setDay(app, day) {
  setAt(app.state, day);
  app.metrics.at = day;
  renderTimeLabel(app);
  app.render();
  loadIndicatorAt(app);
}

/** Write the slider's label: the year shown, or now. */
export function renderTimeLabel(app) {
  const day = app.state.at;
  $('time-label').textContent = day ? day.slice(0, 4) : app.t('now');
}
