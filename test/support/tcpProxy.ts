import net from 'node:net';

/**
 * A TCP proxy in front of one server (PostgreSQL in the relay tests, a subgraph in the live tests)
 * that can be frozen: from then on it moves nothing either way and closes nothing, on connections
 * it already has and on new ones. To a client behind it that is a half-open connection or a hung
 * peer (a partition, a dead NAT entry): its writes succeed, no answer ever comes, and no FIN or
 * RST tells it so, even when the server side closes the connection.
 */
export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  /** Holds every byte and every close, in both directions. */
  freeze(): void;
  /** Moves again: held bytes first; a side that closed meanwhile closes the other now. */
  thaw(): void;
  /** Accepts no new connection (they are refused); the ones it has keep working. */
  stopListening(): void;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  closedWhileFrozen: boolean;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let frozen = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    const pair: Pair = { client, upstream, closedWhileFrozen: false };
    pairs.add(pair);
    if (frozen) for (const socket of [client, upstream]) socket.pause();
    // Paused sockets hold their bytes in the kernel; `end: false` keeps a close from leaking through.
    client.pipe(upstream, { end: false });
    upstream.pipe(client, { end: false });
    const closed = () => {
      if (frozen) {
        pair.closedWhileFrozen = true;
        return;
      }
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', () => undefined); // a reset from either side is part of what tests do
      socket.on('end', closed).on('close', closed);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    urlFor(url) {
      const proxied = new URL(url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.toString();
    },
    freeze() {
      frozen = true;
      for (const { client, upstream } of pairs) for (const socket of [client, upstream]) socket.pause();
    },
    thaw() {
      frozen = false;
      for (const pair of [...pairs]) {
        if (pair.closedWhileFrozen) {
          pairs.delete(pair);
          pair.client.destroy();
          pair.upstream.destroy();
        } else for (const socket of [pair.client, pair.upstream]) socket.resume();
      }
    },
    stopListening() {
      server.close();
    },
    async close() {
      const closed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      await closed;
    },
  };
}
