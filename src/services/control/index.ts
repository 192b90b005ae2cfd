export { createControlServer } from './server.js';
export type { ControlServer, ControlServerOptions } from './server.js';
export { createControlClient } from './client.js';
export type { ControlClient } from './client.js';
export { runApprovalsCommand } from './command.js';
export type { ApprovalsCommandArgs, ApprovalsCommandIo } from './command.js';
export { controlBaseDir, controlSocketPath, listSandboxNames, checkSandboxName, checkControlSocket, checkPrivateDir, ensurePrivateDir } from './paths.js';
export type { RuntimeContext } from './paths.js';
