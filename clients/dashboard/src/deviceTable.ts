import type { LiveLocation } from '../../sdk/src/index';
import { age, heading, position, speed } from './format';

type Shown = Pick<LiveLocation, 'latitude' | 'longitude' | 'speed' | 'heading' | 'recordedAt'>;

interface Row {
  element: HTMLElement;
  cells: { position: HTMLElement; speed: HTMLElement; heading: HTMLElement; age: HTMLElement };
  recordedAt?: string;
}

/**
 * The device list: one row per device, cells written only when their text changes. Rows are grid
 * rows rather than table rows so that rows scrolled out of view skip rendering altogether
 * (`content-visibility`, which table rows cannot have): 500 devices reporting every second then
 * cost the browser the twenty-odd rows on screen.
 */
export class DeviceTable {
  private readonly rows = new Map<string, Row>();

  constructor(private readonly body: HTMLElement) {}

  show(deviceId: string, name: string, location: Shown | null, now: number): void {
    let row = this.rows.get(deviceId);
    if (!row) {
      const element = document.createElement('div');
      element.className = 'row';
      element.setAttribute('role', 'row');
      element.dataset.deviceId = deviceId;
      const cell = () => {
        const span = document.createElement('span');
        span.setAttribute('role', 'cell');
        element.append(span);
        return span;
      };
      const nameCell = cell();
      nameCell.textContent = name;
      row = { element, cells: { position: cell(), speed: cell(), heading: cell(), age: cell() } };
      this.rows.set(deviceId, row);
      this.body.append(element);
    }
    if (!location) return;
    row.recordedAt = location.recordedAt;
    write(row.cells.position, position(location.latitude, location.longitude));
    write(row.cells.speed, speed(location.speed));
    write(row.cells.heading, heading(location.heading));
    write(row.cells.age, age(location.recordedAt, now));
  }

  /** Ages move on with the clock even when no location arrives. */
  tick(now: number): void {
    for (const row of this.rows.values()) if (row.recordedAt) write(row.cells.age, age(row.recordedAt, now));
  }

  clear(): void {
    this.rows.clear();
    this.body.replaceChildren();
  }
}

function write(cell: HTMLElement, text: string): void {
  if (cell.textContent !== text) cell.textContent = text;
}
