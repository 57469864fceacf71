import net from 'node:net';

/**
 * A TCP proxy in front of one server (PostgreSQL in the relay tests) that can be frozen: from then
 * on it forwards nothing either way and closes nothing, on connections it already has and on new
 * ones. To a client behind it that is a half-open connection (a partition, a dead NAT entry): its
 * writes succeed, no answer ever comes, and no FIN or RST tells it so, even when the server side
 * closes the connection.
 */
export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  freeze(): void;
  /** Accepts no new connection (they are refused); the ones it has keep working. */
  stopListening(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let frozen = false;
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // a reset from either side is part of what tests do
  };
  const server = net.createServer((client) => {
    track(client);
    if (frozen) return; // accepted, then silence: a connect that never completes its handshake
    const upstream = net.connect(target.port, target.host);
    track(upstream);
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => {
        if (!frozen) to.write(chunk);
      });
      from.on('close', () => {
        if (!frozen) to.destroy();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
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
    },
    stopListening() {
      server.close();
    },
    async close() {
      const closed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
