// Process entry point (compiled to dist/cli/run.js for installs; bin/mavmq.js picks it).
import { runCli } from './main.js';

process.exitCode = await runCli(process.argv.slice(2));
