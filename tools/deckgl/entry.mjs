// The map's deck.gl bundle: the part of deck.gl static/js/deck.js uses, with the same two globals as the pydeck
// wheel's "jupyter-widget" bundle (window.createDeck, window.updateDeck), so the map's code is unchanged.
//
// The wheel's bundle (4.3 MB) also carries mapbox-gl, maplibre-gl, Google Maps, the Jupyter widget runtime, jQuery,
// the aggregation, mesh and 3D Tiles layers and every widget; the map uses none of them, and parsing and compiling
// them sat on the page's critical path. What is here: deck.gl core (Deck, views, controllers, interpolators), the
// layers the map makes (GeoJsonLayer, LineLayer, TextLayer, BitmapLayer and their sublayers), the tile layers
// (MVTLayer, TileLayer) and the JSON converter that turns the pydeck spec's '@@type' objects into instances.
import { Deck, COORDINATE_SYSTEM, MapView, FirstPersonView, OrbitView, OrthographicView,
  MapController, FlyToInterpolator, LinearInterpolator, WebMercatorViewport, log } from '@deck.gl/core';
import { GeoJsonLayer, LineLayer, TextLayer, BitmapLayer, ScatterplotLayer, PathLayer, PolygonLayer,
  SolidPolygonLayer, IconLayer, ColumnLayer } from '@deck.gl/layers';
import { MVTLayer, TileLayer } from '@deck.gl/geo-layers';
import { JSONConverter } from '@deck.gl/json';

const CLASSES = {
  MapView, FirstPersonView, OrbitView, OrthographicView, MapController, FlyToInterpolator,
  LinearInterpolator, WebMercatorViewport,
  GeoJsonLayer, LineLayer, TextLayer, BitmapLayer, ScatterplotLayer, PathLayer, PolygonLayer, SolidPolygonLayer,
  IconLayer, ColumnLayer, MVTLayer, TileLayer,
};

const jsonConverter = new JSONConverter({ configuration: { classes: CLASSES, enumerations: { COORDINATE_SYSTEM } } });

const CANVAS_STYLE = { position: 'absolute', left: 0, top: 0, width: '100%', height: '100%' };

/** The DOM of deck.gl's scripting DeckGL without a base map: a map div and the deck's canvas in `container`. */
function canvasIn(container) {
  if (window.getComputedStyle(container).position === 'static') container.style.position = 'relative';
  const mapDiv = document.createElement('div');
  Object.assign(mapDiv.style, CANVAS_STYLE);
  container.appendChild(mapDiv);
  const canvas = document.createElement('canvas');
  Object.assign(canvas.style, CANVAS_STYLE);
  container.appendChild(canvas);
  return canvas;
}

/** Create a deck in `container` from the JSON props `jsonInput` (as the jupyter-widget's createDeck without a map
 * provider; `tooltip: false`: no default tooltip). */
function createDeck({ container, jsonInput, tooltip }) {
  const props = jsonConverter.convert(jsonInput);
  const overlay = document.createElement('div'); // the widget's overlay for description cards, kept for the DOM
  overlay.className = 'deckgl-ui-elements-overlay';
  overlay.style.zIndex = 1;
  container.insertAdjacentElement('beforebegin', overlay);
  if (tooltip) log.warn('this bundle has no default tooltip; pass getTooltip')();
  return new Deck({
    getTooltip: null, ...props, canvas: canvasIn(container),
    onError: (error) => console.error(error), // eslint-disable-line no-console
  });
}

/** Convert the JSON props `inputJson` and set them on `deck`. */
function updateDeck(inputJson, deck) {
  deck.setProps(jsonConverter.convert(inputJson));
}

window.createDeck = createDeck;
window.updateDeck = updateDeck;
