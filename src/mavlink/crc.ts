/** CRC-16/MCRF4XX (the "X.25" accumulate of the MAVLink spec), table driven. */
const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let tmp = i & 0xff;
    tmp ^= (tmp << 4) & 0xff;
    t[i] = ((tmp << 8) ^ (tmp << 3) ^ (tmp >> 4)) & 0xffff;
  }
  return t;
})();

export const CRC_INIT = 0xffff;

/** CRC over buf[start, end), continuing from `crc`. */
export function crc16(buf: Uint8Array, start: number, end: number, crc: number = CRC_INIT): number {
  let c = crc;
  for (let i = start; i < end; i++) {
    c = (c >>> 8) ^ (TABLE[(c ^ (buf[i] as number)) & 0xff] as number);
  }
  return c;
}

export function crc16Byte(crc: number, byte: number): number {
  return (crc >>> 8) ^ (TABLE[(crc ^ byte) & 0xff] as number);
}
