import { ResolutionScheduler, type ScheduledWork } from '../../gateway/subscriptions/resolutionScheduler';

/** Work that finishes when the test says so, recording the order in which it started. */
function workLog() {
  const started: string[] = [];
  const finishers: Array<() => void> = [];
  const work = (name: string): ScheduledWork => ({
    run: () =>
      new Promise<void>((resolve) => {
        started.push(name);
        finishers.push(resolve);
      }),
  });
  const finishOne = async () => {
    finishers.shift()?.();
    // Let the scheduler's `finally` hand the slot on.
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { started, work, finishOne };
}

test('a freed slot goes to the next tenant in turn, not to the next work in one shared line', async () => {
  const scheduler = new ResolutionScheduler(1);
  const { started, work, finishOne } = workLog();
  for (let i = 0; i < 5; i++) scheduler.schedule('busy', work(`busy-${i}`));
  scheduler.schedule('quiet', work('quiet-0'));
  for (let i = 0; i < 5; i++) await finishOne();
  // One FIFO would have started all five busy works before the quiet tenant's one.
  expect(started.slice(0, 3)).toEqual(['busy-0', 'busy-1', 'quiet-0']);
});

test('never more than `concurrency` at once; scheduling the same work twice queues it once; cancel forgets it', async () => {
  const scheduler = new ResolutionScheduler(2);
  const { started, work, finishOne } = workLog();
  const twice = work('twice');
  const cancelled = work('cancelled');
  scheduler.schedule('a', work('a-0'));
  scheduler.schedule('b', work('b-0'));
  scheduler.schedule('a', twice);
  scheduler.schedule('a', twice);
  scheduler.schedule('c', cancelled);
  expect(started).toEqual(['a-0', 'b-0']);
  scheduler.cancel('c', cancelled);
  expect(scheduler.queued).toBe(1);
  for (let i = 0; i < 3; i++) await finishOne();
  expect(started).toEqual(['a-0', 'b-0', 'twice']);
});
