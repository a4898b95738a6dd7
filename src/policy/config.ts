import { z } from 'zod';

/**
 * The `policy:` section of the air (and ground) config: where the policy comes from and where its
 * audit log goes. The policy itself lives in its own file (config/policy.yaml), checked by
 * `mavmq policy check`. The air side enforces by default (the built-in policy when no file is
 * given); the ground side does not unless enabled.
 */
const auditSchema = z.strictObject({
  /** JSON-lines audit file (rotated to FILE.1 at maxBytes). */
  file: z.string().min(1),
  maxBytes: z.number().int().min(4096).default(16 * 1024 * 1024),
  fsyncIntervalMs: z.number().int().min(50).max(60_000).default(1000),
  /** Also audit routine allowed frames (GCS heartbeats, RC override): large. Default: decisions only. */
  includeRoutine: z.boolean().default(false),
});

function sectionSchema(enabledByDefault: boolean) {
  return z.strictObject({
    enabled: z.boolean().default(enabledByDefault),
    /** Policy file; default: the built-in policy (config/policy.yaml's content). */
    file: z.string().min(1).optional(),
    /** Overrides the policy file's dryRun: verdicts logged and audited, every frame allowed. */
    dryRun: z.boolean().optional(),
    audit: auditSchema.optional(),
  }).prefault({});
}

export const airPolicyConfigSchema = sectionSchema(true);
export const groundPolicyConfigSchema = sectionSchema(false);
export type PolicyConfig = z.infer<typeof airPolicyConfigSchema>;
export type PolicyAuditConfig = z.infer<typeof auditSchema>;
