import type { Transport, TransportFactory } from './transport.js';
import { SerialTransport } from './serial.js';
import { TcpClientTransport, TcpListenTransport } from './tcp.js';
import { UdpClientTransport, UdpListenTransport } from './udp.js';

export type { ByteLink, Transport, TransportDeps, TransportEvents, TransportFactory, TransportStats } from './transport.js';
export { SerialTransport, type SerialTransportOptions, type SerialBinding, type SerialBindingPort } from './serial.js';
export { TcpClientTransport, TcpListenTransport, TcpPeerLink, type TcpClientOptions, type TcpListenOptions } from './tcp.js';
export { UdpClientTransport, UdpListenTransport, UdpPeerLink, type UdpClientOptions, type UdpListenOptions } from './udp.js';
export { DropOldestQueue, DEFAULT_MAX_QUEUE_BYTES } from './queue.js';
export { Backoff, sleepMs, type BackoffOptions } from './backoff.js';

/** Builds the transport for a parsed endpoint URL. No I/O happens until start(). */
export const createTransport: TransportFactory = (spec, deps): Transport => {
  switch (spec.kind) {
    case 'serial':
      return new SerialTransport(spec, deps);
    case 'tcp':
      return new TcpClientTransport(spec, deps);
    case 'tcp-listen':
      return new TcpListenTransport(spec, deps);
    case 'udp':
      return new UdpClientTransport(spec, deps);
    case 'udp-listen':
      return new UdpListenTransport(spec, deps);
  }
};
