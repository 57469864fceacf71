import { SubscriberQueue } from '../../gateway/subscriptions/subscriberQueue';

const result = (n: number) => ({ data: { n } });

describe('SubscriberQueue', () => {
  test('delivers in order, to a waiting reader and from its buffer', async () => {
    const queue = new SubscriberQueue(10, () => undefined, () => undefined);
    const waiting = queue.next();
    queue.push(result(1));
    queue.push(result(2));
    queue.push(result(3));
    expect(await waiting).toEqual({ value: result(1), done: false });
    expect(await queue.next()).toEqual({ value: result(2), done: false });
    expect(await queue.next()).toEqual({ value: result(3), done: false });
  });

  test('at capacity it drops the subscriber once instead of growing', async () => {
    const events: string[] = [];
    const queue = new SubscriberQueue(2, () => events.push('overflow'), () => events.push('end'));
    for (let n = 0; n < 5; n += 1) queue.push(result(n));
    expect(events).toEqual(['end', 'overflow']);
    expect(queue.size).toBe(2);
    expect(await queue.next()).toEqual({ value: result(0), done: false });
    expect(await queue.next()).toEqual({ value: result(1), done: false });
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  test('return() ends it once, releases a pending reader, and ignores later pushes', async () => {
    let ended = 0;
    const queue = new SubscriberQueue(2, () => undefined, () => (ended += 1));
    const pending = queue.next();
    await queue.return();
    await queue.return();
    queue.push(result(1));
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(ended).toBe(1);
  });
});
