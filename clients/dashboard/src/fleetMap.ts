import L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import { coordinate } from './format';

/**
 * The map: Leaflet on a canvas renderer (hundreds of markers and trails redraw in one pass per
 * frame, no DOM node per device), tiles from the configured server over a plain background with a
 * latitude/longitude grid labelled on the axes, so positions read correctly with no tiles at all.
 */
export interface MapPoint {
  latitude: number;
  longitude: number;
}

/** How many positions a device's trail keeps. */
export const TRAIL_LENGTH = 20;
/** Grid steps in degrees, smallest first; the first giving at most MAX_LINES lines is used. */
const STEPS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 45, 90];
const MAX_LINES = 8;

interface Track {
  marker: L.CircleMarker;
  trail: L.Polyline;
}

export class FleetMap {
  private readonly map: L.Map;
  private readonly renderer = L.canvas({ padding: 0.2 });
  private readonly grid = L.layerGroup();
  private readonly gridRenderer = L.canvas({ pane: 'grid' });
  private readonly tracks = new Map<string, Track>();
  private readonly axes: HTMLElement;
  /** Once the user pans or zooms, the view is theirs: no more framing. */
  private userMoved = false;
  private fitting = false;
  /** The visible area, read once per view change rather than once per location. */
  private view?: L.LatLngBounds;
  /** Nothing framed yet, or a device is out of view. */
  private needsFraming = true;

  constructor(element: HTMLElement, tileUrl: string) {
    this.map = L.map(element, { preferCanvas: true, renderer: this.renderer, worldCopyJump: false, zoomSnap: 0.5 }).setView([20, 0], 2);
    L.tileLayer(tileUrl, { maxZoom: 19, attribution: '&copy; OpenStreetMap contributors' }).addTo(this.map);
    this.map.createPane('grid').style.zIndex = '250'; // above tiles, below markers and trails
    this.grid.addTo(this.map);
    this.axes = L.DomUtil.create('div', 'axes', element);
    this.map.on('moveend zoomend resize', () => this.drawGrid());
    this.map.on('move zoom', () => {
      this.view = undefined;
      this.labelAxes();
    });
    this.map.on('resize viewreset', () => (this.view = undefined));
    this.map.on('movestart zoomstart', () => {
      if (!this.fitting) this.userMoved = true;
    });
    this.drawGrid();
  }

  /** Moves a device's marker and extends its trail (oldest points fall off). */
  move(deviceId: string, label: string, point: MapPoint): void {
    const at = L.latLng(point.latitude, point.longitude);
    if (!this.needsFraming && !this.viewBounds().contains(at)) this.needsFraming = true;
    const track = this.tracks.get(deviceId);
    if (!track) {
      const marker = L.circleMarker(at, { renderer: this.renderer, radius: 5, weight: 1.5, color: '#0b3d91', fillColor: '#2f80ed', fillOpacity: 0.9 }).bindTooltip(label);
      const trail = L.polyline([at], { renderer: this.renderer, weight: 2, color: '#2f80ed', opacity: 0.5, interactive: false });
      trail.addTo(this.map);
      marker.addTo(this.map);
      this.tracks.set(deviceId, { marker, trail });
      return;
    }
    track.marker.setLatLng(at);
    const points = track.trail.getLatLngs() as L.LatLng[];
    points.push(at);
    if (points.length > TRAIL_LENGTH) points.splice(0, points.length - TRAIL_LENGTH);
    track.trail.setLatLngs(points);
  }

  /** Frames every device when one is out of view, until the user takes the view over. */
  frame(): void {
    if (!this.needsFraming || this.userMoved || this.tracks.size === 0) return;
    this.needsFraming = false;
    const bounds = L.latLngBounds([...this.tracks.values()].map((t) => t.marker.getLatLng()));
    this.fitting = true;
    try {
      this.map.fitBounds(bounds.pad(0.2), { maxZoom: 15, animate: false });
    } finally {
      this.fitting = false;
    }
  }

  private viewBounds(): L.LatLngBounds {
    return (this.view ??= this.map.getBounds());
  }

  /** Where a device's marker is on screen (container pixels), for tests and tooling. */
  screenPosition(deviceId: string): { x: number; y: number } | undefined {
    const marker = this.tracks.get(deviceId)?.marker;
    return marker ? this.map.latLngToContainerPoint(marker.getLatLng()) : undefined;
  }

  clear(): void {
    for (const { marker, trail } of this.tracks.values()) {
      marker.remove();
      trail.remove();
    }
    this.tracks.clear();
    this.userMoved = false;
    this.needsFraming = true;
  }

  private step(): number {
    const bounds = this.map.getBounds();
    const span = Math.max(bounds.getNorth() - bounds.getSouth(), bounds.getEast() - bounds.getWest());
    return STEPS.find((step) => span / step <= MAX_LINES) ?? 90;
  }

  private drawGrid(): void {
    this.grid.clearLayers();
    const bounds = this.map.getBounds();
    const step = this.step();
    const style = { pane: 'grid', color: '#8a96a3', weight: 1, opacity: 0.45, interactive: false, renderer: this.gridRenderer };
    const south = Math.max(-90, bounds.getSouth());
    const north = Math.min(90, bounds.getNorth());
    for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
      this.grid.addLayer(L.polyline([[lat, bounds.getWest()], [lat, bounds.getEast()]], style));
    }
    for (let lng = Math.ceil(bounds.getWest() / step) * step; lng <= bounds.getEast(); lng += step) {
      this.grid.addLayer(L.polyline([[south, lng], [north, lng]], style));
    }
    this.labelAxes();
  }

  /** Latitudes along the right edge, longitudes along the top (clear of the zoom buttons and the attribution). */
  private labelAxes(): void {
    const bounds = this.map.getBounds();
    const size = this.map.getSize();
    const step = this.step();
    const labels: string[] = [];
    for (let lat = Math.ceil(Math.max(-90, bounds.getSouth()) / step) * step; lat <= Math.min(90, bounds.getNorth()); lat += step) {
      const y = this.map.latLngToContainerPoint([lat, bounds.getWest()]).y;
      if (y > 26 && y < size.y - 24) labels.push(`<span class="lat" style="top:${y.toFixed(0)}px">${coordinate(lat, step, 'N', 'S')}</span>`);
    }
    for (let lng = Math.ceil(bounds.getWest() / step) * step; lng <= bounds.getEast(); lng += step) {
      const x = this.map.latLngToContainerPoint([bounds.getSouth(), lng]).x;
      if (x > 60 && x < size.x - 50) labels.push(`<span class="lng" style="left:${x.toFixed(0)}px">${coordinate(lng, step, 'E', 'W')}</span>`);
    }
    this.axes.innerHTML = labels.join('');
  }
}
