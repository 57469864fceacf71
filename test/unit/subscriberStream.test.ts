import { SubscriberStream } from '../../gateway/subscriptions/subscriberStream';

function sink() {
  const frames: string[] = [];
  return { frames, send: (frame: string) => void frames.push(frame) };
}

describe('SubscriberStream', () => {
  test('writes protocol-identical next frames around the shared payload, in order', () => {
    const out = sink();
    const stream = new SubscriberStream(out, 'sub "1"', () => undefined);
    stream.deliver(JSON.stringify({ data: { n: 1 } }));
    stream.deliver(JSON.stringify({ data: { n: 2 } }));
    expect(out.frames.map((f) => JSON.parse(f))).toEqual([
      { id: 'sub "1"', type: 'next', payload: { data: { n: 1 } } },
      { id: 'sub "1"', type: 'next', payload: { data: { n: 2 } } },
    ]);
  });

  test('end() releases graphql-ws once, runs onEnd once, and nothing is written after it', async () => {
    const out = sink();
    let ended = 0;
    const stream = new SubscriberStream(out, '1', () => (ended += 1));
    const waiting = stream.next();
    stream.end();
    await stream.return();
    stream.deliver('{"data":null}');
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(await stream.next()).toEqual({ value: undefined, done: true });
    expect(ended).toBe(1);
    expect(out.frames).toEqual([]);
  });
});
