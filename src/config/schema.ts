import { z } from 'zod';
import { parseEndpointUrl } from '../link/endpoint-url.js';
import { MavmqError } from '../errors.js';
import { budgetSchema } from '../uplink/budget.js';
import { spoolSchema } from '../uplink/spool.js';
import { airPolicyConfigSchema, groundPolicyConfigSchema } from '../policy/config.js';

/**
 * The one source of the configuration's types, defaults and validation (zod: it reports every
 * problem at once with its path, yields the TypeScript types, and exports JSON Schema for editors).
 * Durations are in ms and sizes in bytes, and say so in their names.
 */

const endpointUrl = z.string().superRefine((v, ctx) => {
  try {
    parseEndpointUrl(v);
  } catch (err) {
    const p = err instanceof MavmqError ? err.problems[0] : undefined;
    ctx.addIssue({ code: 'custom', message: p ? `${p.message} (hint: ${p.hint ?? ''})` : String(err) });
  }
});

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "_" or "-", 1 to 64 characters (it is one MQTT topic level)');
const u8 = z.number().int().min(0).max(255);
const u24 = z.number().int().min(0).max(0xffffff);

const filterRule = z.strictObject({
  allowMsgids: z.array(u24).optional(),
  blockMsgids: z.array(u24).optional(),
  allowSysids: z.array(u8).optional(),
  blockSysids: z.array(u8).optional(),
  allowCompids: z.array(u8).optional(),
  blockCompids: z.array(u8).optional(),
});

export const endpointSchema = z.strictObject({
  url: endpointUrl,
  name: z.string().optional(),
  filter: z.strictObject({ in: filterRule.optional(), out: filterRule.optional() }).optional(),
});

const tlogSchema = z.strictObject({
  dir: z.string().min(1),
  maxFileBytes: z.number().int().min(4096).default(64 * 1024 * 1024),
  maxTotalBytes: z.number().int().min(4096).default(1024 * 1024 * 1024),
  flushIntervalMs: z.number().int().min(50).max(10_000).default(1000),
});

const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}).prefault({});

const statsSchema = z.strictObject({
  intervalMs: z.number().int().min(1000).default(10_000),
}).prefault({});

const companionSchema = z.strictObject({
  /** Send our own HEARTBEAT as MAV_COMP_ID_ONBOARD_COMPUTER. */
  heartbeat: z.boolean().default(true),
  /** Our sysid; default: the autopilot's, once heard (a companion shares its vehicle's system id). */
  sysid: u8.min(1).optional(),
  compid: u8.min(1).default(191),
  heartbeatIntervalMs: z.number().int().min(100).default(1000),
  /** Message name -> rate in Hz requested from the autopilot (SET_MESSAGE_INTERVAL, REQUEST_DATA_STREAM fallback). */
  messageRatesHz: z.record(z.string().regex(/^[A-Z0-9_]+$/, 'a MAVLink message name such as ATTITUDE'), z.number().min(0).max(400)).default({}),
}).prefault({});

const mqttSchema = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'mqtt://host:1883 or mqtts://host:8883'),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  username: z.string().optional(),
  password: z.string().optional(),
  clientId: z.string().optional(),
  caFile: z.string().optional(),
  certFile: z.string().optional(),
  keyFile: z.string().optional(),
  rejectUnauthorized: z.boolean().default(true),
  keepaliveS: z.number().int().min(5).max(3600).default(30),
  reconnectPeriodMs: z.number().int().min(100).default(2000),
  connectTimeoutMs: z.number().int().min(1000).default(20_000),
  topicPrefix: z.string().regex(/^[^#+]+$/, 'no MQTT wildcards').default('mavmq'),
});

const batchingSchema = z.strictObject({
  maxBytes: z.number().int().min(64).max(64 * 1024).default(1024),
  maxDelayMs: z.number().int().min(0).max(1000).default(20),
}).prefault({});

export const airConfigSchema = z.strictObject({
  role: z.literal('air').default('air'),
  vehicle: z.strictObject({ id }).optional(),
  /** The autopilot link. */
  link: z.strictObject({ url: endpointUrl }),
  /** Local endpoints for onboard programs (camera, vision, a local GCS). */
  endpoints: z.array(endpointSchema).default([]),
  companion: companionSchema,
  tlog: tlogSchema.optional(),
  log: logSchema,
  stats: statsSchema,
  /** The MQTT broker; without it the air side is a pure local router. */
  mqtt: mqttSchema.optional(),
  keyFile: z.string().optional(),
  batching: batchingSchema,
  /** Opt-in link budget (see config/profiles/): rate caps and a byte budget for the uplink. */
  budget: budgetSchema.optional(),
  /** Store-and-forward while the broker is unreachable; drained as history on reconnect. */
  spool: spoolSchema.optional(),
  /** Frames from the ground that travelled this much longer than the link's best are refused, not run late. */
  commandTtlMs: z.number().int().min(500).max(600_000).default(5000),
  /** Command-safety policy for frames from the ground (on by default; see config/policy.yaml). */
  policy: airPolicyConfigSchema,
}).superRefine((c, ctx) => {
  if (c.mqtt !== undefined) {
    if (c.vehicle === undefined) ctx.addIssue({ code: 'custom', path: ['vehicle'], message: 'required when mqtt is set (the vehicle id is a topic level and part of the crypto binding)' });
    if (c.keyFile === undefined) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'required when mqtt is set: there is no plaintext mode (make one with `mavmq keys new`)' });
  }
});

const gcsVehicleSchema = z.strictObject({
  id,
  keyFile: z.string().min(1),
  /** Endpoints where ground stations reach this vehicle. */
  gcs: z.array(endpointSchema).min(1, 'give at least one GCS endpoint, e.g. udp://127.0.0.1:14550'),
  tlog: tlogSchema.optional(),
});

export const groundConfigSchema = z.strictObject({
  role: z.literal('ground'),
  mqtt: mqttSchema,
  fleet: z.array(gcsVehicleSchema).min(1, 'list at least one vehicle'),
  /** Operator-facing limits on the ground too (defense in depth; off by default): the same engine and file format. */
  policy: groundPolicyConfigSchema,
  log: logSchema,
  stats: statsSchema,
}).superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.fleet.forEach((v, i) => {
    if (seen.has(v.id)) ctx.addIssue({ code: 'custom', path: ['fleet', i, 'id'], message: `vehicle "${v.id}" is listed twice` });
    seen.add(v.id);
  });
});

export type AirConfig = z.infer<typeof airConfigSchema>;
export type AirConfigInput = z.input<typeof airConfigSchema>;
export type GroundConfig = z.infer<typeof groundConfigSchema>;
export type GroundConfigInput = z.input<typeof groundConfigSchema>;
export type EndpointConfig = z.infer<typeof endpointSchema>;
export type TlogConfig = z.infer<typeof tlogSchema>;
export type MqttConfig = z.infer<typeof mqttSchema>;
export type FilterRuleConfig = z.infer<typeof filterRule>;
export { tlogSchema, mqttSchema };
