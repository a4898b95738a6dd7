export { PolicyEngine, MAV_RESULT_DENIED, type PolicyEngineOptions, type Verdict, type VerdictAction, type VerdictRecord, type PolicyStats, type RuleCounts, type VehicleStateView } from './engine.js';
export { loadPolicy, defaultPolicy, parsePolicy, checkPolicyFile, type PolicyCheckResult } from './load.js';
export { policySchema, type Policy, type PolicyInput, type PolicyRule } from './schema.js';
export { AuditLog, type AuditLogOptions, type AuditLogStats } from './audit.js';
export { airPolicyConfigSchema, groundPolicyConfigSchema, type PolicyConfig, type PolicyAuditConfig } from './config.js';
export { policyCheckCommand } from './cli.js';
