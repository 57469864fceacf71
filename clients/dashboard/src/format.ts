/** How the dashboard writes numbers and times: short, fixed width where it helps scanning a list. */

export function age(recordedAt: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(recordedAt)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

export function position(latitude: number, longitude: number): string {
  return `${latitude.toFixed(5)}, ${longitude.toFixed(5)}`;
}

export function speed(metresPerSecond: number | null): string {
  return metresPerSecond === null ? '–' : `${(metresPerSecond * 3.6).toFixed(1)} km/h`;
}

export function heading(degrees: number | null): string {
  if (degrees === null) return '–';
  const points = ['N', 'NE', 'E', 'SE', 'S', 'SW', 'W', 'NW'];
  return `${Math.round(degrees)}° ${points[Math.round(degrees / 45) % 8]}`;
}

/** A graticule label: as many decimals as the grid step needs. */
export function coordinate(value: number, step: number, positive: string, negative: string): string {
  const decimals = Math.max(0, Math.ceil(-Math.log10(step)));
  return `${Math.abs(value).toFixed(decimals)}°${value >= 0 ? positive : negative}`;
}
