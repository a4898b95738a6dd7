import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseEndpointUrl } from '../../src/link/endpoint-url.js';
import { MavmqError, ErrorCodes } from '../../src/errors.js';

function hostOf(url: string): string {
  const spec = parseEndpointUrl(url);
  assert.ok(spec.kind !== 'serial');
  return spec.host;
}

describe('endpoint URLs', () => {
  test('parses every kind into the union', () => {
    assert.deepEqual(parseEndpointUrl('serial:///dev/ttyAMA0?baud=921600&flow=rtscts'), {
      kind: 'serial', url: 'serial:///dev/ttyAMA0?baud=921600&flow=rtscts', path: '/dev/ttyAMA0', baudRate: 921600, flowControl: 'rtscts', autoBaud: [],
    });
    const byId = parseEndpointUrl('serial:///dev/serial/by-id/usb-ArduPilot_fmuv3-if00?bauds=57600,115200');
    assert.ok(byId.kind === 'serial');
    assert.deepEqual(byId.autoBaud, [57600, 115200]);
    assert.deepEqual(parseEndpointUrl('tcp://127.0.0.1:5760'), { kind: 'tcp', url: 'tcp://127.0.0.1:5760', host: '127.0.0.1', port: 5760 });
    assert.deepEqual(parseEndpointUrl('udp-listen://0.0.0.0:14550'), { kind: 'udp-listen', url: 'udp-listen://0.0.0.0:14550', host: '0.0.0.0', port: 14550 });
    assert.equal(hostOf('udp://[::1]:14550'), '::1');
  });

  test('listening endpoints without a host bind to loopback (secure default)', () => {
    assert.equal(hostOf('tcp-listen://:5760'), '127.0.0.1');
    assert.equal(hostOf('udp-listen://:14550'), '127.0.0.1');
  });

  test('bad URLs are refused with the reason and a hint', () => {
    const cases: [string, RegExp][] = [
      ['ttyACM0', /missing scheme/],
      ['serial://dev/ttyACM0', /absolute/],
      ['serial:///dev/ttyACM0?baud=12345', /standard rate/],
      ['serial:///dev/ttyACM0?speed=1', /unknown parameter/],
      ['tcp://127.0.0.1', /port/],
      ['udp://0.0.0.0:14550', /wildcard/],
      ['udp://127.0.0.1:70000', /port/],
      ['http://x:1', /unknown scheme/],
    ];
    for (const [url, re] of cases) {
      assert.throws(() => parseEndpointUrl(url), (err: unknown) => err instanceof MavmqError && err.code === ErrorCodes.ENDPOINT_URL && re.test(err.message) && (err.problems[0]?.hint ?? '').length > 0, url);
    }
  });
});
