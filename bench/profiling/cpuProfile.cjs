/**
 * Preloaded (NODE_OPTIONS=--require) into the bench's platform and baseline processes when
 * BENCH_CPU_PROFILE is set: Node refuses --cpu-prof in NODE_OPTIONS, and the platform processes
 * are started through tools/localStack.ts, whose command line the bench does not own. Profiles
 * from start to exit and writes `<BENCH_PROFILE_DIR>/<BENCH_PROFILE_NAME>-<pid>.cpuprofile`
 * (open it in Chrome DevTools or speedscope). The tsx CLI that only relays to the real process
 * is skipped.
 */
const inspector = require('node:inspector');
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.BENCH_PROFILE_DIR;
const name = process.env.BENCH_PROFILE_NAME || 'process';
const relayOnly = /[\\/]tsx[\\/]dist[\\/]cli\.[cm]?js$/.test(process.argv[1] || '');

if (dir && !relayOnly) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  // A main-thread inspector session answers synchronously, so the profile is written before exit.
  process.on('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (error) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
